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
//! Build it with `cargo build --release --target wasm32-wasip2`: the output is
//! already a WebAssembly component. See the README for signing and loading.

// The generated bindings refer to this crate by name (`runtime_path`,
// `default_bindings_module`), including from inside the crate itself.
extern crate self as potter_sdk;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

pub use serde_json::{self, json, Value};

/// Raw bindings generated from `wit/` (world `validator`). Plugin authors
/// should not need these; they are public only for the export macro.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "validator",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_validator_bindings",
        default_bindings_module: "::potter_sdk::bindings",
        runtime_path: "::potter_sdk::__wit_bindgen::rt",
    });
}

use bindings::potter::config::{host as wit_host, types as wit_types};

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
