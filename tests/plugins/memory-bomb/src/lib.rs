//! Hostile test plugin: allocates until memory runs out

use potter_sdk::{Config, Issue, Validator, View};

struct Hostile;

impl Validator for Hostile {
    fn validate(_view: &View, _config: &Config) -> Vec<Issue> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(Vec::<u8>::with_capacity(1 << 20));
            std::hint::black_box(&hoard);
        }
    }
}

potter_sdk::export_validator!(Hostile);
