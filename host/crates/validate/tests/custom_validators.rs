//! Native rules and other validators plugged into the validation engine.

use crate::common;

use std::sync::Arc;

use common::Tree;
use potter_engine::{Issue, Severity, View, ViewKey};
use potter_validate::{SchemaSet, Validation, Validator, ValidatorError};

/// app.environment must name the view's own environment.
fn environment_matches(view: &View) -> Vec<Issue> {
    match view.get_ref("app.environment").and_then(|v| v.as_str()) {
        Some(env) if env != &*view.key().environment => {
            vec![Issue::error("app.environment", format!("says `{env}` in the `{}` environment", view.key().environment), "")]
        }
        _ => Vec::new(),
    }
}

#[test]
fn a_custom_rule_reports_issues_with_its_name_view_and_position() {
    let tree = Tree::potter().file("environments/staging.json", "{\n  \"app\": {\"environment\": \"production\"}\n}\n");
    let mut validation = tree.validation();
    validation.add_custom_validator("environment_matches", environment_matches);
    let report = validation.validate_snapshot(&tree.snapshot());
    let issues: Vec<&Issue> = report.issues().collect();
    assert_eq!(issues.len(), 1);
    let issue = issues[0];
    assert_eq!(issue.rule, "native:environment_matches");
    assert_eq!(issue.view, Some(ViewKey::environment("staging")));
    assert_eq!(issue.source.as_ref().unwrap().to_string(), "environments/staging.json:2:26");
    assert_eq!(validation.validator_names(), ["native:environment_matches"]);
}

#[test]
fn custom_rules_run_without_any_schema() {
    let tree = Tree::new().file("global.json", r#"{"app": {"environment": "nowhere"}}"#).file("environments/production.json", "{}");
    let mut validation = Validation::new(SchemaSet::empty());
    validation.add_custom_validator("environment_matches", environment_matches);
    assert!(validation.validate_snapshot(&tree.snapshot()).has_errors());
}

#[test]
fn a_rule_may_choose_its_own_rule_name_and_severity() {
    let tree = Tree::potter();
    let mut validation = tree.validation();
    validation.add_custom_validator("debug_off_in_production", |view| {
        let mut issue = Issue::warning("app.debug", "debug is on", "native:debug/production");
        issue.source = None;
        if &*view.key().environment == "production" { vec![issue] } else { vec![] }
    });
    let report = validation.validate_snapshot(&tree.snapshot());
    assert!(!report.has_errors());
    assert_eq!(report.warning_count(), 1);
    assert_eq!(report.issues().next().unwrap().rule, "native:debug/production");
}

struct Broken;

impl Validator for Broken {
    fn name(&self) -> &str {
        "plugin:broken"
    }
    fn validate(&self, _view: &View) -> Result<Vec<Issue>, ValidatorError> {
        Err(ValidatorError::new("trap: out of fuel"))
    }
}

#[test]
fn a_validator_that_fails_becomes_an_error_naming_it() {
    let tree = Tree::potter();
    let mut validation = tree.validation();
    validation.add_validator(Arc::new(Broken));
    let report = validation.validate_snapshot(&tree.snapshot());
    assert_eq!(report.error_count(), 3, "one per view");
    let issue = report.issues().next().unwrap();
    assert_eq!(issue.rule, "plugin:broken");
    assert_eq!(issue.severity, Severity::Error);
    assert_eq!(issue.message, "validator `plugin:broken` failed: trap: out of fuel");
}

#[test]
fn a_rule_that_panics_becomes_an_error_instead_of_a_crash() {
    let tree = Tree::potter();
    let mut validation = tree.validation();
    validation.add_custom_validator("careless", |view| {
        let _: u32 = view.extract("no.such.key").unwrap();
        Vec::new()
    });
    let report = validation.validate_snapshot(&tree.snapshot());
    assert_eq!(report.error_count(), 3);
    assert_eq!(report.issues().next().unwrap().message, "validator `native:careless` panicked");
}

#[test]
fn validation_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Validation>();
}
