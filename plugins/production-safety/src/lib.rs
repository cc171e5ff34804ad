//! Safety rules for production and staging:
//! - production: `app.debug` must be false and `logging.level` must not be DEBUG;
//! - staging: `api.rate_limit` must be at most 500.

use potter_sdk::{Config, Issue, Validator, Value, View};

/// Highest request rate allowed in staging, so load tests cannot hit shared upstreams hard.
const STAGING_MAX_RATE_LIMIT: u64 = 500;

struct ProductionSafety;

impl Validator for ProductionSafety {
    fn validate(view: &View, config: &Config) -> Vec<Issue> {
        match view.environment.as_str() {
            "production" => production_rules(config),
            "staging" => staging_rules(config),
            _ => Vec::new(),
        }
    }
}

fn production_rules(config: &Config) -> Vec<Issue> {
    let mut issues = Vec::new();
    if let Some(debug) = config.get("app.debug") {
        if debug != &Value::Bool(false) {
            issues.push(Issue::error(
                "app.debug",
                format!("app.debug must be false in production (found {debug})"),
            ));
        }
    }
    if let Some(Value::String(level)) = config.get("logging.level") {
        if level.eq_ignore_ascii_case("debug") {
            issues.push(Issue::error(
                "logging.level",
                "logging.level must not be DEBUG in production",
            ));
        }
    }
    issues
}

fn staging_rules(config: &Config) -> Vec<Issue> {
    let Some(rate_limit) = config.get("api.rate_limit") else {
        return Vec::new();
    };
    match rate_limit.as_f64() {
        Some(rate) if rate <= STAGING_MAX_RATE_LIMIT as f64 => Vec::new(),
        Some(_) => vec![Issue::error(
            "api.rate_limit",
            format!("api.rate_limit must be at most {STAGING_MAX_RATE_LIMIT} in staging (found {rate_limit})"),
        )],
        None => vec![Issue::error(
            "api.rate_limit",
            format!("api.rate_limit must be a number (found {rate_limit})"),
        )],
    }
}

potter_sdk::export_validator!(ProductionSafety);
