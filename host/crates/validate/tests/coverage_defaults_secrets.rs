//! Coverage warnings and figures, schema defaults with provenance, and secret paths.

use crate::common;

use common::{view, Tree};
use potter_engine::{Location, Severity, ViewKey};
use potter_validate::{defaults_layer, defaults_layers, is_secret, secret_leaf_paths, Coverage, SchemaSet};

#[test]
fn a_key_no_schema_describes_is_a_warning_with_its_position() {
    let tree = Tree::potter().file("environments/staging.json", "{\n  \"app\": {\"environment\": \"staging\"},\n  \"api\": {\"retries\": 3}\n}\n");
    let report = tree.validation().validate_snapshot(&tree.snapshot());
    assert!(!report.has_errors());
    let staging = report.view(&ViewKey::environment("staging")).unwrap();
    assert_eq!(staging.issues.len(), 1);
    let issue = &staging.issues[0];
    assert_eq!((issue.path.as_str(), issue.rule.as_str(), issue.severity), ("api.retries", "coverage", Severity::Warning));
    assert_eq!(issue.message, "is not described by any schema");
    assert_eq!(issue.source.as_ref().unwrap().to_string(), "environments/staging.json:3:22");
}

#[test]
fn an_undescribed_subtree_is_reported_once_with_its_size() {
    let tree = Tree::potter().file("environments/staging.json", r#"{"app": {"environment": "staging"}, "cache": {"redis": {"host": "h", "port": 1}, "ttl": 5}}"#);
    let report = tree.validation().validate_snapshot(&tree.snapshot());
    let staging = report.view(&ViewKey::environment("staging")).unwrap();
    assert_eq!(staging.issues.len(), 1);
    assert_eq!(staging.issues[0].path, "cache");
    assert_eq!(staging.issues[0].message, "is not described by any schema (nor are the 3 keys below it)");
}

#[test]
fn strict_mode_turns_undescribed_keys_into_errors() {
    let tree = Tree::potter().file("environments/staging.json", r#"{"app": {"environment": "staging"}, "extra": 1}"#);
    let mut validation = tree.validation();
    validation.set_strict(true);
    let report = validation.validate_snapshot(&tree.snapshot());
    assert!(report.has_errors());
    assert_eq!(report.issues().next().unwrap().severity, Severity::Error);
}

#[test]
fn validation_strict_in_the_config_turns_undescribed_keys_into_errors() {
    let tree = Tree::potter().file("environments/production.json", r#"{"app": {"environment": "production"}, "validation": {"strict": true}, "extra": 1}"#);
    let report = tree.validation().validate_snapshot(&tree.snapshot());
    assert!(report.view(&ViewKey::environment("production")).unwrap().has_errors());
    let development = report.view(&ViewKey::environment("development")).unwrap();
    assert_eq!(development.issues.len(), 0, "no extra key there");
}

#[test]
fn coverage_is_the_share_of_described_leaves() {
    // global has 8 leaves; staging adds 2 undescribed ones => 8 + 1 (environment replaces) + 2.
    let tree = Tree::potter().file("environments/staging.json", r#"{"app": {"environment": "staging"}, "x": 1, "y": [1, 2]}"#);
    let report = tree.validation().validate_snapshot(&tree.snapshot());
    let coverage = report.view(&ViewKey::environment("staging")).unwrap().coverage.unwrap();
    assert_eq!(coverage, Coverage::new(8, 10));
    assert_eq!(coverage.percent, 80.0);
    assert_eq!(report.view(&ViewKey::environment("production")).unwrap().coverage.unwrap().percent, 100.0);
}

#[test]
fn pattern_and_additional_properties_count_as_described() {
    let tree = Tree::potter().file(
        "environments/staging.json",
        r#"{"app": {"environment": "staging"},
            "llm_providers": {"openai": {"api_key": "k", "model": "m"}},
            "plugins": {"props": {"anything": {"deep": true}}, "other": 1}}"#,
    );
    let report = tree.validation().validate_snapshot(&tree.snapshot());
    let staging = report.view(&ViewKey::environment("staging")).unwrap();
    assert!(staging.issues.is_empty(), "{:#?}", staging.issues);
    assert_eq!(staging.coverage.unwrap().percent, 100.0);
}

#[test]
fn an_object_schema_that_names_no_children_describes_none() {
    let tree = Tree::new()
        .file("schemas/global_schema.json", r#"{"properties": {"logging": {"type": "object"}, "open": {"additionalProperties": true}}}"#)
        .file("global.json", r#"{"logging": {"levle": "INFO"}, "open": {"a": {"b": 1}}}"#)
        .file("environments/production.json", "{}");
    let report = tree.validation().validate_snapshot(&tree.snapshot());
    let paths: Vec<&str> = report.issues().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, ["logging.levle"]);
}

#[test]
fn views_without_any_schema_have_no_coverage_figure() {
    let tree = Tree::new().file("global.json", r#"{"a": 1}"#).file("environments/production.json", "{}");
    std::fs::create_dir_all(tree.schemas_dir()).unwrap();
    let report = tree.validation().validate_snapshot(&tree.snapshot());
    assert_eq!(report.issues().count(), 0);
    assert_eq!(report.views[0].coverage, None);
}

#[test]
fn schema_defaults_fill_a_defaults_layer_located_in_the_schema() {
    let tree = Tree::potter();
    let schemas = tree.schemas();
    let layer = defaults_layer(&schemas);
    assert_eq!(layer.rank, potter_engine::Rank::Defaults);
    assert_eq!(layer.data, serde_json::json!({"app": {"name": "Potter", "debug": false}, "validation": {"strict": false}}));
    assert_eq!(layer.locations.get("app.debug"), Some(&Location::Pointer("global_schema.json#/properties/app/properties/debug".into())));

    let snapshot = tree.snapshot_with(vec![layer]);
    let production = view(&snapshot, "production", None);
    assert!(!production.extract::<bool>("app.debug").unwrap());
    let origin = production.origin("app.debug").unwrap();
    assert_eq!(origin.layer.name, "schema-defaults");
    assert_eq!(origin.location, &Location::Pointer("global_schema.json#/properties/app/properties/debug".into()));
    // A file value wins over the default, and explain still lists the default below it.
    assert_eq!(production.origin("app.name").unwrap().layer.name, "global");
    assert!(production.explain("app.name").iter().any(|c| c.layer.name == "schema-defaults" && !c.won));
}

#[test]
fn a_default_satisfies_a_required_key() {
    let tree = Tree::potter().file("global.json", r#"{"app": {"version": "1.0"}}"#);
    let schemas = tree.schemas();
    let snapshot = tree.snapshot_with(defaults_layers(&schemas));
    let validation = potter_validate::Validation::new(schemas);
    let report = validation.validate_snapshot(&snapshot);
    assert!(!report.has_errors(), "{:#?}", report.issues().collect::<Vec<_>>());
}

#[test]
fn service_schema_defaults_apply_only_to_that_service() {
    let tree = Tree::potter().file("services/theme_service.json", r#"{"theme": {"default": "dark"}}"#);
    let schemas = tree.schemas();
    let layers = defaults_layers(&schemas);
    let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["schema-defaults", "schema-defaults/notification_service", "schema-defaults/theme_service"]);
    let snapshot = tree.snapshot_with(layers);
    let theme = view(&snapshot, "staging", Some("theme_service"));
    assert_eq!(theme.extract::<u8>("theme.font_size").unwrap(), 14);
    assert_eq!(theme.extract::<String>("theme.default").unwrap(), "dark");
    assert_eq!(theme.origin("theme.font_size").unwrap().location, &Location::Pointer("service_schemas/theme_service.json#/properties/theme/properties/font_size".into()));
    assert!(view(&snapshot, "staging", None).get("theme").is_none());
    let validation = potter_validate::Validation::new(schemas);
    assert!(!validation.validate_snapshot(&snapshot).has_errors());
}

#[test]
fn schema_secret_paths_follow_pattern_properties() {
    let tree = Tree::potter().file("environments/production.json", r#"{"app": {"environment": "production"}, "llm_providers": {"openai": {"api_key": "k", "model": "m"}}}"#);
    let schemas = tree.schemas();
    let snapshot = tree.snapshot();
    let production = view(&snapshot, "production", None);
    assert!(is_secret(&schemas, production, "llm_providers.openai.api_key"));
    assert!(is_secret(&schemas, production, "llm_providers.google.api_key"));
    assert!(!is_secret(&schemas, production, "llm_providers.openai.model"));
    assert!(!is_secret(&schemas, production, "llm_providers.mistral.api_key"));
    assert!(!is_secret(&schemas, production, "api.timeout"));
    assert_eq!(secret_leaf_paths(&schemas, production), ["llm_providers.openai.api_key"]);
}

#[test]
fn service_schema_secrets_apply_to_that_service_only() {
    let tree = Tree::potter().file("services/notification_service.json", r#"{"notifications": {"channels": ["email"], "email": {"from": "a@b.c", "smtp_host": "h", "smtp_password": "p"}}}"#);
    let schemas = tree.schemas();
    let snapshot = tree.snapshot();
    assert!(is_secret(&schemas, view(&snapshot, "staging", Some("notification_service")), "notifications.email.smtp_password"));
    assert!(!is_secret(&schemas, view(&snapshot, "staging", None), "notifications.email.smtp_password"));
}

#[test]
fn secrets_paths_in_the_config_add_secret_paths_with_wildcards() {
    let tree = Tree::potter().file(
        "global.json",
        &common::GLOBAL.replacen('{', r#"{"secrets": {"paths": ["database.*.password", "tokens"]}, "database": {"main": {"password": "p", "user": "u"}}, "tokens": {"a": "x"},"#, 1),
    );
    let schemas = SchemaSet::load(&tree.schemas_dir()).unwrap();
    let snapshot = tree.snapshot();
    let staging = view(&snapshot, "staging", None);
    assert!(is_secret(&schemas, staging, "database.main.password"));
    assert!(is_secret(&schemas, staging, "database.replica.password"));
    assert!(!is_secret(&schemas, staging, "database.main.user"));
    assert!(!is_secret(&schemas, staging, "database.password"));
    assert!(is_secret(&schemas, staging, "tokens.a"), "a secret object makes everything below it secret");
    assert_eq!(secret_leaf_paths(&schemas, staging), ["database.main.password", "tokens.a"]);
}
