//! Hostile test plugin: reports the configuration it received (to test input restriction)

use potter_sdk::{Config, Issue, Validator, View};

struct Hostile;

impl Validator for Hostile {
    fn validate(_view: &View, config: &Config) -> Vec<Issue> {
        let namespace = potter_sdk::namespace_config();
        potter_sdk::log(potter_sdk::LogLevel::Info, "echo-config called");
        println!("echo-config wrote to stdout");
        eprintln!("echo-config wrote to stderr");
        vec![
            Issue::warning("app", config.root().to_string()),
            Issue::warning(
                "app",
                format!(
                    "environment={} namespace={namespace}",
                    potter_sdk::environment()
                ),
            ),
        ]
    }
}

potter_sdk::export_validator!(Hostile);
