//! Hostile test plugin: panics mid-call

use potter_sdk::{Config, Issue, Validator, View};

struct Hostile;

impl Validator for Hostile {
    fn validate(_view: &View, _config: &Config) -> Vec<Issue> {
        panic!("boom: hostile plugin panicked on purpose")
    }
}

potter_sdk::export_validator!(Hostile);
