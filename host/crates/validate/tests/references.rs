//! References resolved by `$id` inside the schemas folder, as JSON Schema says, and never outside it:
//! a schema's own `$id`, relative references under an `$id` base, references between files by
//! `$id`, `$dynamicRef`, and custom metaschemas. Also: a default its own schema refuses.

use crate::common;

use common::Tree;
use potter_engine::Severity;
use potter_validate::{defaults_layer, SchemaError, SchemaSet};

/// The error paths of a tree with these schema files and this global file.
fn errors(schemas: &[(&str, &str)], global: &str) -> Vec<String> {
    let tree = Tree::new().file("global.json", global).file("environments/production.json", "{}");
    for (rel, text) in schemas {
        tree.write(&format!("schemas/{rel}"), text);
    }
    let report = tree.validation().validate_snapshot(&tree.snapshot());
    report.issues().filter(|issue| issue.severity == Severity::Error).map(|issue| format!("{}: {}", issue.path, issue.message)).collect()
}

fn load_error(schemas: &[(&str, &str)]) -> SchemaError {
    let tree = Tree::new();
    for (rel, text) in schemas {
        tree.write(&format!("schemas/{rel}"), text);
    }
    SchemaSet::load(&tree.schemas_dir()).expect_err("the folder must be refused")
}

#[test]
fn a_ref_to_the_schemas_own_urn_id_is_local() {
    let schema = r##"{"$id": "urn:uuid:deadbeef-1234-ffff-ffff-4321feebdaed", "definitions": {"port": {"type": "integer"}},
        "properties": {"port": {"$ref": "urn:uuid:deadbeef-1234-ffff-ffff-4321feebdaed#/definitions/port"}}}"##;
    assert!(errors(&[("global_schema.json", schema)], r#"{"port": 80}"#).is_empty());
    assert_eq!(errors(&[("global_schema.json", schema)], r#"{"port": "80"}"#), ["port: must be of type integer"]);
}

#[test]
fn a_relative_ref_under_an_absolute_id_resolves_to_the_folder_schema_declaring_it() {
    let global = r#"{"$id": "https://example.com/root.json", "properties": {"api": {"$ref": "api.json"}}}"#;
    let api = r#"{"$id": "https://example.com/api.json", "properties": {"timeout": {"type": "number", "maximum": 30}}}"#;
    let files = [("global_schema.json", global), ("lib/whatever-the-file-is-called.json", api)];
    assert!(errors(&files, r#"{"api": {"timeout": 10}}"#).is_empty());
    assert_eq!(errors(&files, r#"{"api": {"timeout": 60}}"#), ["api.timeout: must be ≤ 30"]);
}

#[test]
fn an_anchor_in_another_file_is_found_by_its_id() {
    let global = r##"{"properties": {"name": {"$ref": "https://example.com/lib#name"}}}"##;
    let lib = r#"{"$id": "https://example.com/lib", "$defs": {"n": {"$anchor": "name", "type": "string", "minLength": 2}}}"#;
    let files = [("global_schema.json", global), ("lib.json", lib)];
    assert!(errors(&files, r#"{"name": "ok"}"#).is_empty());
    assert_eq!(errors(&files, r#"{"name": "x"}"#), ["name: must be at least 2 characters long"]);
}

#[test]
fn dynamic_refs_follow_the_dynamic_scope() {
    // A generic list whose items the referring schema decides (the 2020-12 `$dynamicRef` pattern).
    let list = r##"{"$id": "https://example.com/list", "$defs": {"item": {"$dynamicAnchor": "item"}}, "type": "array", "items": {"$dynamicRef": "#item"}}"##;
    let global = r##"{"$id": "https://example.com/global", "properties": {"ports": {"$ref": "https://example.com/list"}},
        "$defs": {"port": {"$dynamicAnchor": "item", "type": "integer"}}}"##;
    let files = [("global_schema.json", global), ("list.json", list)];
    assert!(errors(&files, r#"{"ports": [80, 443]}"#).is_empty());
    assert_eq!(errors(&files, r#"{"ports": [80, "443"]}"#), ["ports.1: must be of type integer"]);
}

#[test]
fn a_custom_metaschema_in_the_folder_decides_the_vocabularies() {
    // Without the validation vocabulary, `maximum` is no assertion.
    let meta = r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://example.com/meta/no-validation",
        "$vocabulary": {"https://json-schema.org/draft/2020-12/vocab/applicator": true, "https://json-schema.org/draft/2020-12/vocab/core": true},
        "$dynamicAnchor": "meta", "allOf": [{"$ref": "https://json-schema.org/draft/2020-12/meta/applicator"}, {"$ref": "https://json-schema.org/draft/2020-12/meta/core"}]}"#;
    let global = r#"{"$schema": "https://example.com/meta/no-validation", "properties": {"port": {"maximum": 10}}}"#;
    assert!(errors(&[("global_schema.json", global), ("meta.json", meta)], r#"{"port": 80}"#).is_empty());
}

#[test]
fn a_metaschema_outside_the_folder_is_refused_without_fetching() {
    let error = load_error(&[("global_schema.json", r#"{"$schema": "https://example.com/my-meta", "type": "object"}"#)]);
    assert!(matches!(&error, SchemaError::RemoteMetaschema { reference, .. } if reference == "https://example.com/my-meta"), "{error}");
    assert!(error.to_string().contains("metaschemas are never fetched"), "{error}");
}

#[test]
fn an_id_no_folder_schema_declares_is_still_remote() {
    let error = load_error(&[("global_schema.json", r#"{"$id": "https://example.com/root.json", "properties": {"api": {"$ref": "api.json"}}}"#)]);
    assert!(matches!(&error, SchemaError::RemoteRef { reference, .. } if reference == "https://example.com/api.json"), "{error}");
}

#[test]
fn the_draft_metaschemas_are_known_without_fetching() {
    let global = r#"{"properties": {"schema": {"$ref": "https://json-schema.org/draft/2020-12/schema"}}}"#;
    assert!(errors(&[("global_schema.json", global)], r#"{"schema": {"type": "string"}}"#).is_empty());
    assert_eq!(errors(&[("global_schema.json", global)], r#"{"schema": {"type": 12}}"#).len(), 1);
}

#[test]
fn a_default_its_own_schema_refuses_is_not_filled_in_and_is_named() {
    let tree = Tree::new().file("global.json", "{}").file("environments/production.json", "{}").file(
        "schemas/global_schema.json",
        r#"{"properties": {"retries": {"type": "integer", "maximum": 3, "default": 5}, "timeout": {"type": "number", "default": 10}}}"#,
    );
    let schemas = tree.schemas();
    let layer = defaults_layer(&schemas);
    assert_eq!(layer.data, serde_json::json!({"timeout": 10}));
    let report = tree.validation().validate_snapshot(&tree.snapshot_with(vec![layer]));
    assert!(!report.has_errors());
    let warnings: Vec<&str> = report.tree.iter().map(|issue| issue.message.as_str()).collect();
    assert_eq!(warnings, ["the default of global_schema.json#/properties/retries is not used: its own schema refuses it (must be ≤ 3)"]);
}
