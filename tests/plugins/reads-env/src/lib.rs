//! Hostile test plugin: reads an environment variable it was not granted

use potter_sdk::{Config, Issue, Validator, View};

struct Hostile;

impl Validator for Hostile {
    fn validate(_view: &View, _config: &Config) -> Vec<Issue> {
        let home = std::env::var("HOME").unwrap_or_default();
        vec![Issue::warning("app", format!("HOME is {home}"))]
    }
}

potter_sdk::export_validator!(Hostile);
