//! Write Potter Config plugins in Rust.
//!
//! A validator is a type implementing [`Validator`] plus one macro call:
//!
//! ```ignore
//! use potter_sdk::{Config, Issue, Validator, View};
//!
//! struct NoDebugInProduction;
//!
//! impl Validator for NoDebugInProduction {
//!     fn validate(view: &View, config: &Config) -> Vec<Issue> {
//!         let mut issues = Vec::new();
//!         if view.environment == "production" && config.get("app.debug") == Some(&true.into()) {
//!             issues.push(Issue::error("app.debug", "debug must be off in production"));
//!         }
//!         issues
//!     }
//! }
//!
//! potter_sdk::export_validator!(NoDebugInProduction);
//! ```
//!
//! A source implements [`Source`] and calls [`export_source!`]; a plugin that
//! also ships defaults for its namespace `plugins.<name>` implements
//! [`Namespace`] too and calls [`export_validator_with_namespace!`] or
//! [`export_source_with_namespace!`]. One export macro per crate.
//!
//! Build it with `cargo build --release --target wasm32-wasip2`: the output is
//! already a WebAssembly component. See the README for signing and loading.

// The generated bindings refer to this crate by name (`runtime_path`,
// `default_bindings_module`), including from inside the crate itself.
extern crate self as potter_sdk;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

pub use serde_json::{self, json, Value};

// One bindings module per world. Plugin authors should not need them; they
// are public only for the export macros. The `host` interface is generated
// once, in `bindings_source`, and shared by the other worlds (`with`), so
// [`log`], [`environment`] and [`namespace_config`] work whichever world a
// plugin exports. (Every component built with this crate also declares the
// type-only `types` import, since the validator world's description is linked
// in; it needs nothing from the host.)

/// Raw bindings of world `source`; home of the shared `host` imports.
#[doc(hidden)]
pub mod bindings_source {
    wit_bindgen::generate!({
        world: "source",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_source_bindings",
        default_bindings_module: "::potter_sdk::bindings_source",
        runtime_path: "::potter_sdk::__wit_bindgen::rt",
    });
}

/// Raw bindings of world `validator`; home of the shared `types`.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "validator",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_validator_bindings",
        default_bindings_module: "::potter_sdk::bindings",
        runtime_path: "::potter_sdk::__wit_bindgen::rt",
        with: {
            "potter:config/host@0.2.0": ::potter_sdk::bindings_source::potter::config::host,
        },
    });
}

/// Raw bindings of world `validator-with-namespace` (see [`bindings`]).
#[doc(hidden)]
pub mod bindings_validator_with_namespace {
    wit_bindgen::generate!({
        world: "validator-with-namespace",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_validator_with_namespace_bindings",
        default_bindings_module: "::potter_sdk::bindings_validator_with_namespace",
        runtime_path: "::potter_sdk::__wit_bindgen::rt",
        with: {
            "potter:config/host@0.2.0": ::potter_sdk::bindings_source::potter::config::host,
            "potter:config/types@0.2.0": ::potter_sdk::bindings::potter::config::types,
        },
    });
}

/// Raw bindings of world `live-source` (0.2.0: `provenance` and `watch`; see [`bindings`]).
#[doc(hidden)]
pub mod bindings_live_source {
    wit_bindgen::generate!({
        world: "live-source",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_live_source_bindings",
        default_bindings_module: "::potter_sdk::bindings_live_source",
        runtime_path: "::potter_sdk::__wit_bindgen::rt",
        with: {
            "potter:config/host@0.2.0": ::potter_sdk::bindings_source::potter::config::host,
        },
    });
}

/// Raw bindings of world `source-with-namespace`, generated in a crate of
/// their own (see that crate for why). Its `host` imports name the same Wasm
/// functions as `bindings_source`'s, so [`log`] and friends work there too.
#[doc(hidden)]
pub use potter_sdk_source_with_namespace::bindings as bindings_source_with_namespace;

use bindings::potter::config::types as wit_types;
use bindings_source::potter::config::host as wit_host;

/// The view being validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Environment name, e.g. "production".
    pub environment: String,
    /// Service name when the view is for one service.
    pub service: Option<String>,
}

/// How serious an issue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Rejects the change.
    Error,
    /// Reported only.
    Warning,
}

/// One problem found by a validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Dotted key path, e.g. "app.debug"; must lie under a declared prefix or `plugins.<name>`.
    pub path: String,
    /// Message shown to the operator.
    pub message: String,
    /// Error or warning.
    pub severity: Severity,
}

impl Issue {
    /// An issue that rejects the change.
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            path: path.into(),
            message: message.into(),
            severity: Severity::Error,
        }
    }

    /// An issue that is only reported.
    pub fn warning(path: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            path: path.into(),
            message: message.into(),
            severity: Severity::Warning,
        }
    }
}

/// The configuration a validator receives: only the prefixes its manifest
/// declares plus its own namespace `plugins.<name>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    root: Value,
}

impl Config {
    /// Wrap a JSON value (useful in unit tests of a validator).
    pub fn new(root: Value) -> Self {
        Config { root }
    }

    /// The value at a dotted key path (`"app.debug"`), if present.
    pub fn get(&self, path: &str) -> Option<&Value> {
        path.split('.')
            .try_fold(&self.root, |node, segment| match node {
                Value::Object(map) => map.get(segment),
                Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            })
    }

    /// The whole tree.
    pub fn root(&self) -> &Value {
        &self.root
    }
}

/// Implement this for your validator, then call [`export_validator!`].
pub trait Validator {
    /// Check the view; return every issue found (empty means valid).
    fn validate(view: &View, config: &Config) -> Vec<Issue>;
}

/// Log levels for [`log`].
pub use wit_host::LogLevel;

/// Write a line to the host's log, tagged with this plugin's name.
pub fn log(level: LogLevel, message: &str) {
    wit_host::log(level, message);
}

/// The environment the current call is about.
pub fn environment() -> String {
    wit_host::environment()
}

/// This plugin's own namespace, `plugins.<name>` (an empty object when absent).
pub fn namespace_config() -> Value {
    serde_json::from_str(&wit_host::namespace_config()).unwrap_or(Value::Object(Default::default()))
}

#[doc(hidden)]
pub fn __run_validator<V: Validator>(
    view: wit_types::View,
    config: String,
) -> Vec<wit_types::Issue> {
    // The host always sends a JSON object; anything else is a host bug worth a trap.
    let root: Value = serde_json::from_str(&config).expect("host sent invalid JSON");
    let view = View {
        environment: view.environment,
        service: view.service,
    };
    V::validate(&view, &Config::new(root))
        .into_iter()
        .map(|issue| wit_types::Issue {
            path: issue.path,
            message: issue.message,
            severity: match issue.severity {
                Severity::Error => wit_types::Severity::Error,
                Severity::Warning => wit_types::Severity::Warning,
            },
        })
        .collect()
}

/// Export a [`Validator`] implementation as this component's `validate` function.
/// Call it once, at the top level of your plugin crate.
#[macro_export]
macro_rules! export_validator {
    ($validator:ty) => {
        #[doc(hidden)]
        pub struct __PotterValidatorExport;

        impl $crate::bindings::Guest for __PotterValidatorExport {
            fn validate(
                view: $crate::bindings::potter::config::types::View,
                config: ::std::string::String,
            ) -> ::std::vec::Vec<$crate::bindings::potter::config::types::Issue> {
                $crate::__run_validator::<$validator>(view, config)
            }
        }

        $crate::bindings::__export_validator_bindings!(__PotterValidatorExport);
    };
}

/// Implement this for a source (a plugin that contributes a configuration
/// layer), then call [`export_source!`] (or [`export_source_with_namespace!`]).
///
/// A source whose signed manifest grants a directory (`[grants] directory`)
/// sees it read-only at the guest path `/data`; granted environment variables
/// are readable with `std::env::var`. Nothing else is reachable.
pub trait Source {
    /// The layer for `environment`: a JSON object whose keys lie under the
    /// prefixes the manifest declares, or an error message (name the file and
    /// line it is about). The host keeps the last good layer or rejects the
    /// reload, as the manifest's `on_error` says.
    fn load(environment: &str) -> Result<Value, String>;

    /// How often the host should call [`Source::load`] again, in
    /// milliseconds; 0 (the default) means never.
    fn poll_interval_ms() -> u32 {
        0
    }

    /// A cheap token that changes when the data changes (for example a
    /// digest of file names, sizes and modification times). On each poll the
    /// host calls `load` only when the token differs from the last one; `None`
    /// (the default) means "always reload on poll".
    fn change_token() -> Option<String> {
        None
    }
}

/// Implement this too for a source that names where each key came from and can wait for a
/// change instead of being polled (world `live-source`, new in 0.2.0), then call
/// [`export_live_source!`]. The host calls [`LiveSource::load_with_origins`] instead of
/// [`Source::load`], and [`LiveSource::wait_for_change`] on a thread of its own, over and over.
pub trait LiveSource: Source {
    /// The layer, as [`Source::load`] gives it, with (dotted key path, origin) pairs: where each
    /// key came from in the remote's own terms (e.g. `/config/production/api/timeout @ revision
    /// 42`), shown by `explain` after the plugin's name. A key without one is credited to the plugin.
    fn load_with_origins(environment: &str) -> Result<(Value, Vec<(String, String)>), String>;

    /// Wait until the data no longer matches the change token `known` and return the new token,
    /// or `None` once `budget_ms` has passed without a change. Return well within the budget:
    /// the host cuts off a call at the plugin's time limit. An error says why the remote cannot
    /// be watched now; the host retries after a pause and keeps polling meanwhile.
    fn wait_for_change(known: Option<&str>, budget_ms: u32) -> Result<Option<String>, String>;
}

#[doc(hidden)]
pub fn __run_load_with_origins<S: LiveSource>(environment: String) -> Result<(String, Vec<(String, String)>), String> {
    let (layer, origins) = S::load_with_origins(&environment)?;
    if !layer.is_object() {
        return Err(format!("load returned {}, not a JSON object", json_kind(&layer)));
    }
    Ok((layer.to_string(), origins))
}

/// Implement this for a plugin that owns its namespace `plugins.<name>`, then
/// export it with [`export_validator_with_namespace!`] or
/// [`export_source_with_namespace!`].
pub trait Namespace {
    /// The namespace's defaults (its template), applied at the defaults
    /// precedence level: a JSON object.
    fn defaults() -> Value;

    /// Called with the namespace's new content after each applied change
    /// that touches it. The default does nothing.
    fn on_config_changed(_config: &Value) {}
}

#[doc(hidden)]
pub fn __run_load<S: Source>(environment: String) -> Result<String, String> {
    let layer = S::load(&environment)?;
    if !layer.is_object() {
        return Err(format!(
            "load returned {}, not a JSON object",
            json_kind(&layer)
        ));
    }
    Ok(layer.to_string())
}

#[doc(hidden)]
pub fn __run_defaults<N: Namespace>() -> String {
    N::defaults().to_string()
}

#[doc(hidden)]
pub fn __run_on_config_changed<N: Namespace>(config: String) {
    // The host always sends a JSON object; anything else is a host bug worth a trap.
    let config: Value = serde_json::from_str(&config).expect("host sent invalid JSON");
    N::on_config_changed(&config);
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The `load`, `poll-interval-ms` and `change-token` exports every source world shares, for the
/// `export_*source*!` macros (each world's bindings name their own `Guest` trait).
#[doc(hidden)]
#[macro_export]
macro_rules! __source_guest {
    ($guest:path, $export:ident, $source:ty) => {
        impl $guest for $export {
            fn load(
                environment: ::std::string::String,
            ) -> ::std::result::Result<::std::string::String, ::std::string::String> {
                $crate::__run_load::<$source>(environment)
            }

            fn poll_interval_ms() -> u32 {
                <$source as $crate::Source>::poll_interval_ms()
            }

            fn change_token() -> ::std::option::Option<::std::string::String> {
                <$source as $crate::Source>::change_token()
            }
        }
    };
}

/// Export a [`Source`] implementation (world `source`). Call it once, at the
/// top level of your plugin crate.
#[macro_export]
macro_rules! export_source {
    ($source:ty) => {
        #[doc(hidden)]
        pub struct __PotterSourceExport;

        $crate::__source_guest!($crate::bindings_source::Guest, __PotterSourceExport, $source);

        $crate::bindings_source::__export_source_bindings!(__PotterSourceExport);
    };
}

/// Export a type implementing [`Source`] and [`LiveSource`] (world `live-source`, 0.2.0).
/// Call it once, at the top level of your plugin crate.
#[macro_export]
macro_rules! export_live_source {
    ($source:ty) => {
        #[doc(hidden)]
        pub struct __PotterLiveSourceExport;

        $crate::__source_guest!($crate::bindings_live_source::Guest, __PotterLiveSourceExport, $source);

        impl $crate::bindings_live_source::exports::potter::config::provenance::Guest for __PotterLiveSourceExport {
            fn load_with_origins(
                environment: ::std::string::String,
            ) -> ::std::result::Result<$crate::bindings_live_source::exports::potter::config::provenance::Layer, ::std::string::String> {
                use $crate::bindings_live_source::exports::potter::config::provenance::{KeyOrigin, Layer};
                let (config, origins) = $crate::__run_load_with_origins::<$source>(environment)?;
                Ok(Layer { config, origins: origins.into_iter().map(|(path, origin)| KeyOrigin { path, origin }).collect() })
            }
        }

        impl $crate::bindings_live_source::exports::potter::config::watch::Guest for __PotterLiveSourceExport {
            fn wait_for_change(
                known: ::std::option::Option<::std::string::String>,
                budget_ms: u32,
            ) -> ::std::result::Result<::std::option::Option<::std::string::String>, ::std::string::String> {
                <$source as $crate::LiveSource>::wait_for_change(known.as_deref(), budget_ms)
            }
        }

        $crate::bindings_live_source::__export_live_source_bindings!(__PotterLiveSourceExport);
    };
}

/// Export a type implementing both [`Validator`] and [`Namespace`] (world
/// `validator-with-namespace`). Call it once, at the top level of your plugin crate.
#[macro_export]
macro_rules! export_validator_with_namespace {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __PotterValidatorExport;

        impl $crate::bindings_validator_with_namespace::Guest for __PotterValidatorExport {
            fn validate(
                view: $crate::bindings::potter::config::types::View,
                config: ::std::string::String,
            ) -> ::std::vec::Vec<$crate::bindings::potter::config::types::Issue> {
                $crate::__run_validator::<$plugin>(view, config)
            }
        }

        impl $crate::bindings_validator_with_namespace::exports::potter::config::namespace::Guest
            for __PotterValidatorExport
        {
            fn defaults() -> ::std::string::String {
                $crate::__run_defaults::<$plugin>()
            }

            fn on_config_changed(config: ::std::string::String) {
                $crate::__run_on_config_changed::<$plugin>(config)
            }
        }

        $crate::bindings_validator_with_namespace::__export_validator_with_namespace_bindings!(
            __PotterValidatorExport
        );
    };
}

/// Export a type implementing both [`Source`] and [`Namespace`] (world
/// `source-with-namespace`). Call it once, at the top level of your plugin crate.
#[macro_export]
macro_rules! export_source_with_namespace {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __PotterSourceExport;

        $crate::__source_guest!($crate::bindings_source_with_namespace::Guest, __PotterSourceExport, $plugin);

        impl $crate::bindings_source_with_namespace::exports::potter::config::namespace::Guest
            for __PotterSourceExport
        {
            fn defaults() -> ::std::string::String {
                $crate::__run_defaults::<$plugin>()
            }

            fn on_config_changed(config: ::std::string::String) {
                $crate::__run_on_config_changed::<$plugin>(config)
            }
        }

        $crate::bindings_source_with_namespace::__export_source_with_namespace_bindings!(
            __PotterSourceExport
        );
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Layer;

    impl Source for Layer {
        fn load(environment: &str) -> Result<Value, String> {
            match environment {
                "broken" => Err("data.txt:3: bad line".to_string()),
                "list" => Ok(json!([1, 2])),
                _ => Ok(json!({"app": {"environment": environment}})),
            }
        }
    }

    impl Namespace for Layer {
        fn defaults() -> Value {
            json!({"limit": 3})
        }
    }

    #[test]
    fn load_serializes_an_object_layer() {
        assert_eq!(
            __run_load::<Layer>("staging".into()),
            Ok(r#"{"app":{"environment":"staging"}}"#.to_string())
        );
    }

    #[test]
    fn load_passes_errors_through_and_refuses_non_objects() {
        assert_eq!(
            __run_load::<Layer>("broken".into()),
            Err("data.txt:3: bad line".to_string())
        );
        assert_eq!(
            __run_load::<Layer>("list".into()),
            Err("load returned an array, not a JSON object".to_string())
        );
    }

    #[test]
    fn source_and_namespace_defaults() {
        assert_eq!(Layer::poll_interval_ms(), 0);
        assert_eq!(Layer::change_token(), None);
        assert_eq!(__run_defaults::<Layer>(), r#"{"limit":3}"#);
        // The default on_config_changed does nothing (and must not panic).
        __run_on_config_changed::<Layer>(r#"{"limit":4}"#.into());
    }
}
