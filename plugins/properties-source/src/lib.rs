//! Source plugin: reads Java-style `.properties` files from its granted
//! directory (`/data`, read-only) and maps them to nested configuration keys.
//!
//! - `<stem>.properties` fills the keys under `<stem>` (dotted keys nest:
//!   `new_ui.enabled=true` in `feature_flags.properties` is
//!   `feature_flags.new_ui.enabled`); `<stem>.<environment>.properties`
//!   overrides it, key by key, when loading that environment.
//! - `true`/`false` and integers are typed unless the namespace option
//!   `plugins.properties-source.typed_values` is false.
//! - The host polls every `poll_interval_ms` (namespace option, default
//!   2000) and reloads when the directory's change token (names, sizes,
//!   modification times) differs.

pub mod properties;

use std::path::Path;

use potter_sdk::{json, Namespace, Source, Value};

/// Where the host mounts the granted directory.
const DATA_DIR: &str = "/data";
const DEFAULT_POLL_INTERVAL_MS: u32 = 2000;

struct PropertiesSource;

impl Source for PropertiesSource {
    fn load(environment: &str) -> Result<Value, String> {
        let typed = match potter_sdk::namespace_config().get("typed_values") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(typed)) => *typed,
            Some(other) => {
                return Err(format!(
                    "plugins.properties-source.typed_values must be true or false (found {other})"
                ))
            }
        };
        properties::load_dir(Path::new(DATA_DIR), environment, typed)
    }

    fn poll_interval_ms() -> u32 {
        potter_sdk::namespace_config()
            .get("poll_interval_ms")
            .and_then(Value::as_u64)
            .map_or(DEFAULT_POLL_INTERVAL_MS, |ms| {
                u32::try_from(ms).unwrap_or(u32::MAX)
            })
    }

    fn change_token() -> Option<String> {
        Some(properties::change_token(Path::new(DATA_DIR)))
    }
}

impl Namespace for PropertiesSource {
    fn defaults() -> Value {
        json!({"poll_interval_ms": DEFAULT_POLL_INTERVAL_MS, "typed_values": true})
    }
}

potter_sdk::export_source_with_namespace!(PropertiesSource);
