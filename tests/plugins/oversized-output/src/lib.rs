//! Hostile test plugin: returns a result far over the output limit

use potter_sdk::{Config, Issue, Validator, View};

struct Hostile;

impl Validator for Hostile {
    fn validate(_view: &View, _config: &Config) -> Vec<Issue> {
        (0..20_000)
            .map(|i| Issue::warning("app", format!("issue {i} {}", "x".repeat(100))))
            .collect()
    }
}

potter_sdk::export_validator!(Hostile);
