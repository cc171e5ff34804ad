//! The OpenAPI document's response schemas against what the handlers really answer: one real
//! server (the binary on loopback), every JSON route called once, each body checked with a JSON
//! Schema validator against the document's schema for that route, method and status, and its
//! top-level members compared with the schema's properties (so a field added to a handler but not
//! to its type, or the reverse, fails here).

use crate::common;

use common::serve::Served;
use common::Tree;
use serde_json::{json, Value};

/// The real server on a free loopback port with a development admin token.
struct Server;

impl Server {
    fn start(tree: &Tree) -> Served {
        let (root, state) = (tree.root(), tree.state());
        let served = Served::start(&["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0", "--dev-token"]);
        assert!(!served.token.is_empty(), "the development token is printed");
        served
    }
}

/// The document's schema of `method path` answering `status`, with the document's components
/// beside it so its `$ref`s resolve.
fn response_schema(document: &Value, path: &str, method: &str, status: u16) -> Value {
    let operation = &document["paths"][path][method];
    let schema = &operation["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} {status}: the document gives no JSON schema");
    let mut schema = schema.clone();
    schema["components"] = document["components"].clone();
    schema
}

/// The schema `schema` stands for, following one `$ref` into the components.
fn resolved<'d>(document: &'d Value, schema: &'d Value) -> &'d Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => document.pointer(reference.trim_start_matches('#')).unwrap_or_else(|| panic!("{reference} is not in the document")),
        None => schema,
    }
}

/// Checks `body` against the document for `method path status`.
fn check(document: &Value, path: &str, method: &str, status: u16, body: &Value) {
    let schema = response_schema(document, path, method, status);
    let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{method} {path} {status}: the schema does not compile: {e}"));
    let errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{method} {path} {status}: the body does not match the document:\n{}\nbody: {body}", errors.join("\n"));
    let declared = resolved(document, &document["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]["schema"]);
    if let (Some(properties), Some(members)) = (declared.get("properties").and_then(Value::as_object), body.as_object()) {
        let mut declared: Vec<&String> = properties.keys().collect();
        let mut answered: Vec<&String> = members.keys().collect();
        declared.sort();
        answered.sort();
        // Optional members (skipped when absent) may be missing from the body, never extra in it.
        assert!(answered.iter().all(|member| declared.contains(member)), "{method} {path} {status}: members {answered:?}, the document declares {declared:?}");
    }
}

#[test]
fn every_json_response_matches_the_schema_the_document_declares() {
    let tree = Tree::minimal();
    tree.write("schemas/global_schema.json", r#"{"type": "object", "properties": {"api": {"type": "object", "properties": {"rate_limit": {"type": "integer", "maximum": 1000}}}}}"#);
    let server = Server::start(&tree);
    let (status, document) = server.call("GET", "/v1/openapi.json", &[], None);
    assert_eq!(status, 200);
    let env = [("X-Potter-Environment", "staging")];
    let calls: Vec<(&str, &str, &str, &[(&str, &str)], Option<Value>, u16)> = vec![
        ("/v1/health", "/v1/health", "get", &[], None, 200),
        ("/v1/environments", "/v1/environments", "get", &[], None, 200),
        ("/v1/config", "/v1/config", "get", &env, None, 200),
        ("/v1/config/{env}", "/v1/config/staging", "get", &[], None, 200),
        ("/v1/config/{env}/{key}", "/v1/config/staging/api.timeout", "put", &[], Some(json!({"value": 45, "reason": "slow"})), 200),
        ("/v1/config/{env}/{key}", "/v1/config/staging/api.timeout", "get", &[], None, 200),
        ("/v1/overrides/{env}/release", "/v1/overrides/staging/release", "post", &[], Some(json!({"keys": ["api.timeout"], "reason": "back to the files"})), 200),
        ("/v1/overrides/{env}/release", "/v1/overrides/staging/release", "post", &[], Some(json!({"keys": ["api.timeout"]})), 404),
        ("/v1/config/{env}", "/v1/config/staging", "patch", &[], Some(json!({"api": {"rate_limit": 200, "timeout": null}})), 200),
        ("/v1/config/{env}/{key}", "/v1/config/staging/api.rate_limit", "delete", &[], None, 200),
        ("/v1/explain/{env}/{key}", "/v1/explain/staging/api.timeout", "get", &[], None, 200),
        ("/v1/validate", "/v1/validate", "post", &env, Some(json!({"changes": {"api.rate_limit": 5}})), 200),
        ("/v1/validate", "/v1/validate", "post", &env, Some(json!({"changes": {"api.rate_limit": 5000}})), 200),
        ("/v1/schemas", "/v1/schemas", "get", &[], None, 200),
        ("/v1/history", "/v1/history", "get", &env, None, 200),
        ("/v1/history/{version}", "/v1/history/1", "get", &[], None, 200),
        ("/v1/rollback", "/v1/rollback", "post", &env, Some(json!({"version": 1, "dry_run": true})), 200),
        ("/v1/rollback", "/v1/rollback", "post", &env, Some(json!({"version": 0})), 200),
        ("/v1/plugins", "/v1/plugins", "get", &[], None, 200),
        ("/v1/audit", "/v1/audit", "get", &[], None, 200),
        ("/v1/instances", "/v1/instances", "get", &[], None, 404),
        ("/v1/config/{env}/{key}", "/v1/config/staging/no.such.key", "get", &[], None, 404),
        ("/v1/config/{env}/{key}", "/v1/config/staging/api.rate_limit", "put", &[], Some(json!({"value": 5000})), 422),
        ("/v1/changes", "/v1/changes", "post", &[], Some(json!({"env": "staging", "title": "Raise", "changes": {"api": {"rate_limit": 300}}})), 201),
        ("/v1/changes", "/v1/changes", "get", &[], None, 200),
        ("/v1/changes/{id}", "/v1/changes/1", "get", &[], None, 200),
        ("/v1/changes/{id}/approve", "/v1/changes/1/approve", "post", &[], None, 200),
        ("/v1/changes/{id}/approve", "/v1/changes/1/approve", "post", &[], None, 409),
        ("/v1/changes", "/v1/changes", "post", &env, Some(json!({"title": "Again", "changes": {"api": {"rate_limit": 400}}})), 201),
        ("/v1/changes/{id}/reject", "/v1/changes/2/reject", "post", &[], Some(json!({"reason": "not now"})), 200),
        ("/v1/changes", "/v1/changes", "post", &[], Some(json!({"env": "staging", "title": "Later", "changes": {"api": {"rate_limit": null}}})), 201),
        ("/v1/changes/{id}/withdraw", "/v1/changes/3/withdraw", "post", &[], None, 200),
        ("/v1/changes", "/v1/changes", "post", &[], Some(json!({"env": "staging", "title": "Too much", "changes": {"api": {"rate_limit": 5000}}})), 422),
        ("/v1/changes/{id}", "/v1/changes/99", "get", &[], None, 404),
        ("/v1/rollouts", "/v1/rollouts", "post", &[], Some(json!({"env": "staging", "title": "Slowly", "changes": {"api": {"timeout": 50}}, "cohort": {"kind": "users"}, "steps": [{"percent": 50, "bake_seconds": 3600}, {"percent": 100, "bake_seconds": 3600}]})), 201),
        ("/v1/rollouts", "/v1/rollouts", "post", &env, Some(json!({"title": "Again", "changes": {"api": {"timeout": 51}}, "cohort": {"kind": "users"}, "steps": [{"percent": 100, "bake_seconds": 0}]})), 409),
        ("/v1/rollouts", "/v1/rollouts", "get", &[], None, 200),
        ("/v1/rollouts/{id}", "/v1/rollouts/1", "get", &[], None, 200),
        ("/v1/rollouts/{id}/advance", "/v1/rollouts/1/advance", "post", &[], Some(json!({})), 409),
        ("/v1/rollouts/{id}/advance", "/v1/rollouts/1/advance", "post", &[], Some(json!({"force": true})), 200),
        ("/v1/rollouts/{id}/abort", "/v1/rollouts/1/abort", "post", &[], Some(json!({"reason": "not yet"})), 200),
        ("/v1/rollouts/{id}", "/v1/rollouts/99", "get", &[], None, 404),
        ("/v1/instances/self/health", "/v1/instances/self/health", "post", &[], Some(json!({"healthy": true})), 200),
    ];
    for (route, path, method, headers, body, expected) in calls {
        let (status, answer) = server.call(&method.to_ascii_uppercase(), path, headers, body);
        assert_eq!(status, expected, "{method} {path}: {answer}");
        check(&document, route, method, status, &answer);
    }
}
