//! Test source plugin whose `load` a test can hold, so a reload stays inside a plugin call (and
//! holds the host's writer) for as long as the test wants.
//!
//! - While `/data/hold` exists, `load` logs `load held` once and sleeps in 5 ms steps until the
//!   file is gone (a blocking WASI clock call, like a slow remote source).
//! - It then returns `{"remote": {"gated": <text of /data/value, or "start">}}`.
//! - No change token: every reload asks it again.

use potter_sdk::{json, LogLevel, Source, Value};

const HOLD: &str = "/data/hold";
const VALUE: &str = "/data/value";

struct Gated;

impl Source for Gated {
    fn load(_environment: &str) -> Result<Value, String> {
        if std::path::Path::new(HOLD).exists() {
            potter_sdk::log(LogLevel::Info, "load held");
            while std::path::Path::new(HOLD).exists() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        let value = std::fs::read_to_string(VALUE).unwrap_or_else(|_| "start".to_owned());
        Ok(json!({"remote": {"gated": value.trim()}}))
    }
}

potter_sdk::export_source!(Gated);
