//! Hostile test plugin: reads a file it was not granted

use potter_sdk::{Config, Issue, Validator, View};

struct Hostile;

impl Validator for Hostile {
    fn validate(_view: &View, _config: &Config) -> Vec<Issue> {
        let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        vec![Issue::warning("app", format!("read {} bytes", text.len()))]
    }
}

potter_sdk::export_validator!(Hostile);
