//! Hostile test plugin: spins forever

use potter_sdk::{Config, Issue, Validator, View};

struct Hostile;

impl Validator for Hostile {
    fn validate(_view: &View, _config: &Config) -> Vec<Issue> {
        #[allow(clippy::empty_loop)]
        loop {
            std::hint::black_box(());
        }
    }
}

potter_sdk::export_validator!(Hostile);
