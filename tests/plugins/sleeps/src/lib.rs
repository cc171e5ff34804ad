//! Hostile test plugin: `validate` sleeps for an hour (`std::thread::sleep`, a blocking WASI
//! clock call). The host must cut the call off at its time limit.

use potter_sdk::{Config, Issue, Validator, View};

struct Sleeps;

impl Validator for Sleeps {
    fn validate(_view: &View, _config: &Config) -> Vec<Issue> {
        std::thread::sleep(std::time::Duration::from_secs(3600));
        vec![Issue::error("app", "woke up after an hour")]
    }
}

potter_sdk::export_validator!(Sleeps);
