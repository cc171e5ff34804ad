//! {{name}}: a Potter Config validator. Edit the rule; the manifest's `prefixes` say which keys
//! it receives (plus its own namespace `plugins.{{name}}`).

use potter_sdk::{Config, Issue, Validator, View};

struct {{type_name}};

impl Validator for {{type_name}} {
    fn validate(view: &View, config: &Config) -> Vec<Issue> {
        let mut issues = Vec::new();
        if view.environment == "production" && config.get("app.debug") == Some(&true.into()) {
            issues.push(Issue::error("app.debug", "debug must be off in production"));
        }
        issues
    }
}

potter_sdk::export_validator!({{type_name}});
