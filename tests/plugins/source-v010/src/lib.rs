//! A source exactly as a plugin built before 0.2.0 is: bindings of world `source` of the frozen
//! `potter:config@0.1.0` (imports `potter:config/host@0.1.0`), so the host's tests can show such a
//! component still loads beside 0.2.0 ones.

wit_bindgen::generate!({ world: "source", path: "../../../wit/v0.1.0" });

struct Legacy;

impl Guest for Legacy {
    fn load(environment: String) -> Result<String, String> {
        potter::config::host::log(potter::config::host::LogLevel::Debug, "built against 0.1.0");
        Ok(format!(r#"{{"legacy": {{"environment": "{environment}", "contract": "0.1.0"}}}}"#))
    }

    fn poll_interval_ms() -> u32 {
        0
    }

    fn change_token() -> Option<String> {
        None
    }
}

export!(Legacy);
