//! Test plugin owning a namespace: reports what it sees, so a test can check
//! defaults, `on-config-changed` and that `namespace-config()` returns only
//! `plugins.namespace-probe`.
//!
//! - `defaults()` = `{"greeting": "hello", "limit": 3}`;
//! - `on-config-changed(config)` logs `on-config-changed: <config>` at info;
//! - `validate` returns one warning at `plugins.namespace-probe`:
//!   `namespace=<namespace_config()> config=<the config it was given>` (compact JSON).

use potter_sdk::{json, Config, Issue, LogLevel, Namespace, Validator, Value, View};

struct Probe;

impl Validator for Probe {
    fn validate(_view: &View, config: &Config) -> Vec<Issue> {
        vec![Issue::warning(
            "plugins.namespace-probe",
            format!(
                "namespace={} config={}",
                potter_sdk::namespace_config(),
                config.root()
            ),
        )]
    }
}

impl Namespace for Probe {
    fn defaults() -> Value {
        json!({"greeting": "hello", "limit": 3})
    }

    fn on_config_changed(config: &Value) {
        potter_sdk::log(LogLevel::Info, &format!("on-config-changed: {config}"));
    }
}

potter_sdk::export_validator_with_namespace!(Probe);
