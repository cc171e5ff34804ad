//! Hostile test plugin: returns an issue whose path is not a key path

use potter_sdk::{Config, Issue, Validator, View};

struct Hostile;

impl Validator for Hostile {
    fn validate(_view: &View, _config: &Config) -> Vec<Issue> {
        vec![Issue::error("../../etc/passwd\n\u{7}", "gotcha")]
    }
}

potter_sdk::export_validator!(Hostile);
