//! The shipped schemas' rules, per-view reports, issue details and rendering, drafts and formats.

use crate::common;

use common::{view, Tree};
use potter_engine::{Severity, ViewKey};
use potter_validate::{render_issue, Validation};

fn errors_of(tree: &Tree) -> Vec<potter_engine::Issue> {
    let report = tree.validation().validate_snapshot(&tree.snapshot());
    report.issues().filter(|issue| issue.severity == Severity::Error).cloned().collect()
}

#[test]
fn a_valid_tree_is_clean_in_every_view() {
    let tree = Tree::potter();
    let report = tree.validation().validate_snapshot(&tree.snapshot());
    let keys: Vec<String> = report.views.iter().map(|v| v.view.to_string()).collect();
    assert_eq!(keys, ["development", "production", "staging"]);
    assert_eq!(report.issues().count(), 0, "{:#?}", report.issues().collect::<Vec<_>>());
    assert!(report.views.iter().all(|v| v.coverage.unwrap().percent == 100.0));
}

#[test]
fn rate_limit_above_1000_names_view_file_position_and_schema_location() {
    let tree = Tree::potter().file(
        "environments/production.json",
        "{\n  \"app\": {\"environment\": \"production\"},\n  \"api\": {\n    \"rate_limit\": 5000\n  }\n}\n",
    );
    let report = tree.validation().validate_snapshot(&tree.snapshot());
    let production = report.view(&ViewKey::environment("production")).unwrap();
    assert_eq!(production.issues.len(), 1);
    let issue = &production.issues[0];
    assert_eq!(issue.path, "api.rate_limit");
    assert_eq!(issue.rule, "schema:maximum");
    assert_eq!(issue.message, "must be ≤ 1000");
    assert_eq!(issue.schema_location.as_deref(), Some("global_schema.json#/properties/api/properties/rate_limit/maximum"));
    assert_eq!(issue.source.as_ref().unwrap().to_string(), "environments/production.json:4:19");
    assert!(!report.view(&ViewKey::environment("staging")).unwrap().has_errors());

    let text = render_issue(issue, Some(&tree.text("environments/production.json")));
    let expected = "production: api.rate_limit = 5000 at environments/production.json:4:19 — must be ≤ 1000 \
                    (global_schema.json#/properties/api/properties/rate_limit/maximum)\n   \
                    4 |     \"rate_limit\": 5000\n     |                   ^^^^";
    assert_eq!(text, expected);
}

#[test]
fn rate_limit_must_be_an_integer_of_at_least_1() {
    for (value, rule) in [("0", "schema:minimum"), ("-3", "schema:minimum"), ("2.5", "schema:type"), ("\"100\"", "schema:type")] {
        let tree = Tree::potter().file("environments/staging.json", &format!(r#"{{"app": {{"environment": "staging"}}, "api": {{"rate_limit": {value}}}}}"#));
        let errors = errors_of(&tree);
        assert_eq!(errors.len(), 1, "{value}: {errors:#?}");
        assert_eq!((errors[0].path.as_str(), errors[0].rule.as_str()), ("api.rate_limit", rule), "{value}");
    }
    for value in ["1", "1000"] {
        let tree = Tree::potter().file("environments/staging.json", &format!(r#"{{"app": {{"environment": "staging"}}, "api": {{"rate_limit": {value}}}}}"#));
        assert!(errors_of(&tree).is_empty(), "{value} refused");
    }
}

#[test]
fn timeout_must_lie_between_0_1_and_300() {
    for (value, ok) in [("0.05", false), ("0.1", true), ("300", true), ("300.5", false), ("12.5", true)] {
        let tree = Tree::potter().file("environments/staging.json", &format!(r#"{{"app": {{"environment": "staging"}}, "api": {{"timeout": {value}}}}}"#));
        let errors = errors_of(&tree);
        assert_eq!(errors.is_empty(), ok, "timeout {value}: {errors:#?}");
        if !ok {
            assert_eq!(errors[0].path, "api.timeout");
        }
    }
}

#[test]
fn environment_outside_the_enum_is_an_error() {
    let tree = Tree::potter().file("environments/staging.json", r#"{"app": {"environment": "qa"}}"#);
    let errors = errors_of(&tree);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "app.environment");
    assert_eq!(errors[0].rule, "schema:enum");
    assert_eq!(errors[0].message, r#"must be one of "development", "staging", "production""#);
    assert_eq!(errors[0].view, Some(ViewKey::environment("staging")));
}

#[test]
fn logging_level_and_max_size_are_checked() {
    let tree = Tree::potter().file("environments/development.json", r#"{"app": {"environment": "development"}, "logging": {"level": "TRACE", "max_size": 0}}"#);
    let mut paths: Vec<String> = errors_of(&tree).into_iter().map(|i| i.path).collect();
    paths.sort();
    assert_eq!(paths, ["logging.level", "logging.max_size"]);
}

#[test]
fn missing_required_app_keys_are_reported_by_key() {
    let tree = Tree::potter().file("global.json", r#"{"app": {"name": "Potter"}}"#).file("environments/production.json", "{}");
    let report = tree.validation().validate_snapshot(&tree.snapshot());
    let production = report.view(&ViewKey::environment("production")).unwrap();
    let mut missing: Vec<(&str, &str)> = production.issues.iter().map(|i| (i.path.as_str(), i.rule.as_str())).collect();
    missing.sort();
    assert_eq!(missing, [("app.environment", "schema:required"), ("app.version", "schema:required")]);
    let issue = &production.issues[0];
    assert_eq!(issue.message, "is required but missing");
    assert_eq!(issue.schema_location.as_deref(), Some("global_schema.json#/properties/app/required"));
    // The position is the object that lacks the key.
    assert_eq!(issue.source.as_ref().unwrap().to_string(), "global.json:1:9");
}

#[test]
fn llm_providers_require_api_key_and_model_and_known_names() {
    let tree = Tree::potter().file(
        "environments/production.json",
        r#"{"app": {"environment": "production"}, "llm_providers": {
            "openai": {"api_key": "enc:v1:abc", "model": "gpt-4o", "timeout": 30, "retry_attempts": 3},
            "anthropic": {"model": "claude"},
            "google": {"api_key": "enc:v1:def", "model": "gemini", "retry_attempts": 9},
            "mistral": {"api_key": "enc:v1:ghi", "model": "large"}}}"#,
    );
    let mut found: Vec<(String, String, Option<String>)> = errors_of(&tree).into_iter().map(|i| (i.path, i.rule, i.schema_location)).collect();
    found.sort();
    let pattern = "service_schemas/llm_providers.json#/properties/llm_providers/patternProperties/^(openai|anthropic|google)$";
    assert_eq!(
        found,
        [
            ("llm_providers.anthropic.api_key".to_owned(), "schema:required".to_owned(), Some(format!("{pattern}/required"))),
            ("llm_providers.google.retry_attempts".to_owned(), "schema:maximum".to_owned(), Some(format!("{pattern}/properties/retry_attempts/maximum"))),
            (
                "llm_providers.mistral".to_owned(),
                "schema:additionalProperties".to_owned(),
                Some("service_schemas/llm_providers.json#/properties/llm_providers/additionalProperties".to_owned())
            ),
        ]
    );
}

#[test]
fn llm_provider_timeout_must_be_at_least_1() {
    let tree = Tree::potter().file(
        "environments/production.json",
        r#"{"app": {"environment": "production"}, "llm_providers": {"openai": {"api_key": "k", "model": "m", "timeout": 0.5}}}"#,
    );
    let errors = errors_of(&tree);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "llm_providers.openai.timeout");
}

#[test]
fn each_view_reports_its_own_issues_and_service_schemas_apply_to_their_service_only() {
    let tree = Tree::potter()
        .file("services/api_service.json", "{\n  \"api\": {\"rate_limit\": 250, \"timeout\": 45}\n}\n")
        .file("services/theme_service.json", r#"{"theme": {"default": "dark"}}"#);
    let report = tree.validation().validate_snapshot(&tree.snapshot());
    assert_eq!(report.views.len(), 9, "3 environments × (no service + 2 services)");
    for env in ["development", "staging", "production"] {
        let api = report.view(&ViewKey::new(env, Some("api_service"), None)).unwrap();
        assert_eq!(api.issues.len(), 1, "{env}");
        assert_eq!(api.issues[0].path, "api.timeout");
        assert_eq!(api.issues[0].schema_location.as_deref(), Some("service_schemas/api_service.json#/properties/api/properties/timeout/maximum"));
        assert_eq!(api.issues[0].source.as_ref().unwrap().to_string(), "services/api_service.json:2:41");
        assert!(report.view(&ViewKey::new(env, Some("theme_service"), None)).unwrap().issues.is_empty());
        assert!(report.view(&ViewKey::environment(env)).unwrap().issues.is_empty());
    }
    assert_eq!(report.error_count(), 3);
}

#[test]
fn report_serializes_every_issue_detail_to_json() {
    let tree = Tree::potter().file("environments/production.json", r#"{"app": {"environment": "production"}, "api": {"rate_limit": 5000}}"#);
    let json = tree.validation().validate_snapshot(&tree.snapshot()).to_json();
    let production = json["views"].as_array().unwrap().iter().find(|v| v["view"]["environment"] == "production").unwrap();
    let issue = &production["issues"][0];
    assert_eq!(issue["path"], "api.rate_limit");
    assert_eq!(issue["rule"], "schema:maximum");
    assert_eq!(issue["severity"], "error");
    assert_eq!(issue["schema_location"], "global_schema.json#/properties/api/properties/rate_limit/maximum");
    assert_eq!(issue["source"]["file"], "environments/production.json");
    assert_eq!(production["coverage"]["percent"], 100.0);
}

#[test]
fn messages_never_echo_the_offending_value() {
    let tree = Tree::potter().file(
        "environments/production.json",
        r#"{"app": {"environment": "production"}, "llm_providers": {"openai": {"api_key": 81726354, "model": "m"}}}"#,
    );
    let validation: Validation = tree.validation();
    let snapshot = tree.snapshot();
    let report = validation.validate_snapshot(&snapshot);
    let issue = report.issues().next().unwrap();
    assert_eq!(issue.path, "llm_providers.openai.api_key");
    assert!(!issue.to_string().contains("81726354"), "{issue}");
    assert!(validation.is_secret(view(&snapshot, "production", None), &issue.path));
    let text = potter_validate::render_issue_redacted(issue, Some(&tree.text("environments/production.json")));
    assert!(!text.contains("81726354"), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
}

#[test]
fn draft_2020_12_schemas_are_honoured() {
    // prefixItems, items: false, $defs and dependentRequired (reported as the missing key) are 2020-12 keywords.
    let tree = Tree::new()
        .file(
            "schemas/global_schema.json",
            r##"{"$schema": "https://json-schema.org/draft/2020-12/schema",
                "properties": {"pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false},
                               "feature": {"$ref": "#/$defs/flag"}},
                "$defs": {"flag": {"type": "boolean"}},
                "dependentRequired": {"pair": ["feature"]}}"##,
        )
        .file("global.json", r#"{"pair": ["a", "b", 3]}"#)
        .file("environments/production.json", "{}");
    let mut rules: Vec<String> = errors_of(&tree).into_iter().map(|i| format!("{} {}", i.path, i.rule)).collect();
    rules.sort();
    assert_eq!(rules, ["feature schema:required", "pair.1 schema:type", "pair.2 schema:falseSchema"]);
}

#[test]
fn draft_7_schemas_use_draft_7_semantics() {
    // In draft 7 an `items` array checks positions; 2020-12 would reject it as a schema.
    let tree = Tree::new()
        .file("schemas/global_schema.json", r#"{"$schema": "http://json-schema.org/draft-07/schema#", "properties": {"pair": {"items": [{"type": "string"}, {"type": "integer"}]}}}"#)
        .file("global.json", r#"{"pair": ["a", "b"]}"#)
        .file("environments/production.json", "{}");
    let errors = errors_of(&tree);
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].path.as_str(), errors[0].rule.as_str()), ("pair.1", "schema:type"));
}

#[test]
fn format_assertions_are_enforced() {
    let notifications = |from: &str| format!(r#"{{"notifications": {{"channels": ["email"], "email": {{"from": "{from}", "smtp_host": "smtp.example.com"}}}}}}"#);
    let tree = Tree::potter().file("services/notification_service.json", &notifications("not an address"));
    let errors = errors_of(&tree);
    assert_eq!(errors.len(), 3, "one per environment: {errors:#?}");
    assert!(errors.iter().all(|i| i.path == "notifications.email.from" && i.rule == "schema:format" && i.message == "must be a valid `email`"));
    let fixed = Tree::potter().file("services/notification_service.json", &notifications("ops@example.com"));
    assert!(errors_of(&fixed).is_empty());
}

#[test]
fn a_missing_key_is_shown_at_the_object_that_lacks_it() {
    let tree = Tree::potter().file("environments/production.json", "{\n  \"app\": {\"environment\": \"production\"},\n  \"llm_providers\": {\n    \"openai\": {\"model\": \"gpt-4o\"}\n  }\n}\n");
    let report = tree.validation().validate_snapshot(&tree.snapshot());
    let issue = report.issues().next().unwrap();
    assert_eq!(issue.path, "llm_providers.openai.api_key");
    let text = potter_validate::render_issue_redacted(issue, Some(&tree.text("environments/production.json")));
    assert!(text.starts_with("production: llm_providers.openai.api_key at environments/production.json:4:15 — is required but missing"), "{text}");
    assert!(text.ends_with("   4 |     \"openai\": {\"model\": \"gpt-4o\"}\n     |               ^"), "{text}");
}
