//! Loading a schemas folder: every kind of bad schema is refused clearly and whole, and compiled
//! schemas are reused until a file that went into them changes.

use crate::common;

use common::Tree;
use potter_validate::{SchemaError, SchemaSet, MAX_SCHEMA_BYTES};

fn load_error(files: &[(&str, &str)]) -> SchemaError {
    let tree = Tree::new();
    for (rel, text) in files {
        tree.write(&format!("schemas/{rel}"), text);
    }
    SchemaSet::load(&tree.schemas_dir()).expect_err("the folder must be refused")
}

#[test]
fn shipped_schemas_load_with_their_services_and_secret_paths() {
    let set = SchemaSet::load(&common::shipped_schemas()).unwrap();
    assert!(set.has_global());
    assert_eq!(set.service_names(), ["api_service", "llm_providers", "notification_service", "theme_service"]);
    // llm_providers.json sits in service_schemas/ but no service has that name: it is a $ref library.
    let secrets: Vec<String> = set.secret_patterns().iter().filter(|p| p.service.as_deref() != Some("llm_providers")).map(|p| format!("{:?} {p}", p.service)).collect();
    assert_eq!(
        secrets,
        [r#"None llm_providers.{^(openai|anthropic|google)$}.api_key"#, r#"Some("notification_service") notifications.email.smtp_password"#]
    );
}

#[test]
fn an_invalid_schema_is_refused_with_its_file_and_place() {
    let error = load_error(&[("global_schema.json", r#"{"properties": {"api": {"type": "strin"}}}"#)]);
    match &error {
        SchemaError::Invalid { file, pointer, .. } => {
            assert_eq!(file, "global_schema.json");
            assert_eq!(pointer, "/properties/api/type");
        }
        other => panic!("unexpected: {other}"),
    }
    assert!(error.to_string().starts_with("invalid schema global_schema.json#/properties/api/type: "), "{error}");
}

#[test]
fn an_invalid_service_schema_refuses_the_whole_folder() {
    let error = load_error(&[
        ("global_schema.json", r#"{"type": "object"}"#),
        ("service_schemas/api_service.json", r#"{"properties": {"port": {"minimum": "one"}}}"#),
    ]);
    assert!(matches!(&error, SchemaError::Invalid { file, .. } if file == "service_schemas/api_service.json"), "{error}");
}

#[test]
fn a_schema_that_is_not_json_names_file_line_and_column() {
    let error = load_error(&[("global_schema.json", "{\n  \"type\": \"object\",\n  \"properties\": {,}\n}\n")]);
    match &error {
        SchemaError::NotJson { file, line, column, .. } => assert_eq!((file.as_str(), *line, *column), ("global_schema.json", 3, 18)),
        other => panic!("unexpected: {other}"),
    }
    assert!(error.to_string().contains("global_schema.json:3:18"), "{error}");
}

#[test]
fn a_ref_cycle_between_files_is_refused() {
    let error = load_error(&[
        ("global_schema.json", r#"{"properties": {"a": {"$ref": "lib/a.json"}}}"#),
        ("lib/a.json", r#"{"$ref": "b.json"}"#),
        ("lib/b.json", r#"{"allOf": [{"$ref": "a.json"}]}"#),
    ]);
    match &error {
        SchemaError::RefCycle { chain } => assert!(chain.contains("lib/a.json#") && chain.contains("lib/b.json#/allOf/0"), "{chain}"),
        other => panic!("unexpected: {other}"),
    }
}

#[test]
fn a_schema_referring_to_itself_in_place_is_a_cycle() {
    let error = load_error(&[("global_schema.json", r##"{"definitions": {"loop": {"$ref": "#/definitions/loop"}}, "properties": {"a": {"$ref": "#/definitions/loop"}}}"##)]);
    assert!(matches!(error, SchemaError::RefCycle { .. }), "{error}");
}

#[test]
fn a_recursive_schema_that_descends_is_not_a_cycle() {
    let tree = Tree::new().file(
        "schemas/global_schema.json",
        r##"{"properties": {"menu": {"$ref": "#/definitions/item"}},
             "definitions": {"item": {"type": "object", "properties": {"label": {"type": "string"}, "children": {"type": "object", "additionalProperties": {"$ref": "#/definitions/item"}}}}}}"##,
    );
    tree.schemas();
}

#[test]
fn a_10000_level_deep_schema_is_refused_without_overflowing() {
    let depth = 10_000;
    let text = format!("{}{{}}{}", r#"{"properties": {"a": "#.repeat(depth), "}}".repeat(depth));
    let error = load_error(&[("global_schema.json", &text)]);
    assert!(matches!(error, SchemaError::TooDeep { limit: 128, .. }), "{error}");
    assert!(error.to_string().contains("nested deeper than 128 levels"), "{error}");
}

#[test]
fn a_schema_larger_than_the_limit_is_refused() {
    let padding = "x".repeat(MAX_SCHEMA_BYTES as usize + 1);
    let error = load_error(&[("global_schema.json", &format!(r#"{{"description": "{padding}"}}"#))]);
    assert!(matches!(&error, SchemaError::TooLarge { file, .. } if file == "global_schema.json"), "{error}");
}

#[test]
fn a_large_but_legal_schema_loads() {
    let properties: Vec<String> = (0..5_000).map(|i| format!(r#""key{i}": {{"type": "integer", "minimum": {i}}}"#)).collect();
    let tree = Tree::new().file("schemas/global_schema.json", &format!(r#"{{"properties": {{{}}}}}"#, properties.join(",")));
    assert!(tree.schemas().has_global());
}

#[test]
fn a_remote_ref_is_refused_without_fetching() {
    let error = load_error(&[("global_schema.json", r#"{"properties": {"api": {"$ref": "https://example.com/schemas/api.json"}}}"#)]);
    match &error {
        SchemaError::RemoteRef { file, pointer, reference } => {
            assert_eq!((file.as_str(), pointer.as_str(), reference.as_str()), ("global_schema.json", "/properties/api", "https://example.com/schemas/api.json"));
        }
        other => panic!("unexpected: {other}"),
    }
    assert!(error.to_string().contains("only refer to files inside the schemas folder"), "{error}");
}

#[test]
fn a_remote_ref_through_an_absolute_id_is_refused_too() {
    let error = load_error(&[("global_schema.json", r#"{"$id": "https://example.com/root.json", "properties": {"api": {"$ref": "api.json"}}}"#)]);
    assert!(error.to_string().contains("remote $ref"), "{error}");
}

#[test]
fn a_ref_to_a_missing_file_names_the_file() {
    let error = load_error(&[("global_schema.json", r#"{"properties": {"api": {"$ref": "service_schemas/nope.json"}}}"#)]);
    assert!(matches!(&error, SchemaError::UnresolvedRef { reference, .. } if reference == "service_schemas/nope.json"), "{error}");
    assert!(error.to_string().contains("no schema file `service_schemas/nope.json`"), "{error}");
}

#[test]
fn a_ref_cannot_climb_out_of_the_schemas_folder() {
    let tree = Tree::new()
        .file("outside.json", r#"{"type": "string"}"#)
        .file("schemas/global_schema.json", r#"{"properties": {"api": {"$ref": "../outside.json"}}}"#);
    let error = SchemaSet::load(&tree.schemas_dir()).expect_err("escaped the folder");
    assert!(error.to_string().contains("no schema file `outside.json`"), "{error}");
}

#[test]
fn reload_without_changes_compiles_nothing() {
    let tree = Tree::potter();
    let mut set = tree.schemas();
    let compiled = set.compile_count();
    assert_eq!(compiled, 5);
    let summary = set.reload().unwrap();
    assert!(summary.recompiled.is_empty(), "{summary:?}");
    assert_eq!(summary.reused.len(), 5);
    assert_eq!(set.compile_count(), compiled);
}

#[test]
fn changing_a_referenced_file_recompiles_only_the_schemas_that_use_it() {
    let tree = Tree::potter();
    let mut set = tree.schemas();
    let path = "schemas/service_schemas/llm_providers.json";
    tree.write(path, &tree.text(path).replace(r#""maximum": 5"#, r#""maximum": 7"#));
    let mut recompiled = set.reload().unwrap().recompiled;
    recompiled.sort();
    assert_eq!(recompiled, ["global_schema.json", "service_schemas/llm_providers.json"]);

    tree.write("environments/production.json", r#"{"app": {"environment": "production"}, "llm_providers": {"openai": {"api_key": "k", "model": "m", "retry_attempts": 6}}}"#);
    let validation = potter_validate::Validation::new(set);
    assert!(!validation.validate_snapshot(&tree.snapshot()).has_errors(), "the new maximum applies");
}

#[test]
fn a_failed_reload_keeps_the_schemas_that_were_loaded() {
    let tree = Tree::potter();
    let mut set = tree.schemas();
    tree.write("schemas/global_schema.json", "{ not json");
    assert!(matches!(set.reload(), Err(SchemaError::NotJson { .. })));
    assert!(set.has_global());
    let validation = potter_validate::Validation::new(set);
    tree.write("environments/production.json", r#"{"app": {"environment": "production"}, "api": {"rate_limit": 5000}}"#);
    assert!(validation.validate_snapshot(&tree.snapshot()).has_errors(), "old schemas still validate");
}

#[test]
fn a_missing_folder_is_an_io_error_naming_it() {
    let error = SchemaSet::load(std::path::Path::new("/nonexistent/schemas")).unwrap_err();
    assert!(error.to_string().contains("/nonexistent/schemas"), "{error}");
}
