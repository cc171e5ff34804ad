//! Test source plugin: returns whatever text a test wrote to its directory, verbatim.
//!
//! - `load` returns `Ok(<text of /data/output.json>)` without parsing it (so a
//!   test can make it return invalid JSON or keys outside its prefixes), unless
//!   `/data/error` exists: then `Err(<its text>)`.
//! - `change-token` is both files' contents concatenated ("missing" when
//!   neither exists), so the host reloads exactly when a test rewrites one.
//! - `poll-interval-ms` is `poll_interval_ms` of its namespace config, else 0.
//!
//! It uses the raw bindings instead of `potter_sdk::Source`, whose `load`
//! returns a parsed JSON value and so could not return invalid JSON.

use potter_sdk::bindings_source::Guest;

const OUTPUT: &str = "/data/output.json";
const ERROR: &str = "/data/error";

struct Scripted;

impl Guest for Scripted {
    fn load(_environment: String) -> Result<String, String> {
        if let Ok(error) = std::fs::read_to_string(ERROR) {
            return Err(error);
        }
        std::fs::read_to_string(OUTPUT).map_err(|error| format!("cannot read {OUTPUT}: {error}"))
    }

    fn poll_interval_ms() -> u32 {
        potter_sdk::namespace_config()
            .get("poll_interval_ms")
            .and_then(|value| value.as_u64())
            .map_or(0, |ms| ms.min(u32::MAX as u64) as u32)
    }

    fn change_token() -> Option<String> {
        let output = std::fs::read_to_string(OUTPUT).ok();
        let error = std::fs::read_to_string(ERROR).ok();
        if output.is_none() && error.is_none() {
            return Some("missing".to_string());
        }
        Some(format!(
            "{}{}",
            output.unwrap_or_default(),
            error.unwrap_or_default()
        ))
    }
}

potter_sdk::bindings_source::__export_source_bindings!(Scripted);
