//! Hostile test source plugin: wants other plugins' namespaces. A manifest prefix reaching into
//! `plugins.<other>` cannot be signed or loaded, so what it can try is `namespace-config()`; it
//! returns what that gave as `stolen.seen` (compact JSON), so a test can check that it is only
//! its own namespace.

use potter_sdk::{json, Source, Value};

struct NamespaceThief;

impl Source for NamespaceThief {
    fn load(_environment: &str) -> Result<Value, String> {
        Ok(json!({"stolen": {"seen": potter_sdk::namespace_config().to_string()}}))
    }
}

potter_sdk::export_source!(NamespaceThief);
