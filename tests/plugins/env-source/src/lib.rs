//! Test source plugin: reports a granted environment variable
//! (`PLUGIN_TEST_GRANTED`) and an ungranted one (`HOME`), null when unset.

use potter_sdk::{json, Source, Value};

struct EnvSource;

impl Source for EnvSource {
    fn load(_environment: &str) -> Result<Value, String> {
        Ok(json!({
            "fromenv": {
                "granted": std::env::var("PLUGIN_TEST_GRANTED").ok(),
                "other": std::env::var("HOME").ok(),
            }
        }))
    }
}

potter_sdk::export_source!(EnvSource);
