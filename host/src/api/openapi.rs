//! The OpenAPI 3.1 description of the API, served at `/v1/openapi.json`. Written by hand from
//! [`ROUTES`]; the integration tests call every route listed here, so it cannot drift silently.

use serde_json::{json, Map, Value};

/// One operation: method, path (OpenAPI `{param}` syntax), summary, and whether it needs a token.
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub authenticated: bool,
}

const fn op(method: &'static str, path: &'static str, summary: &'static str, authenticated: bool) -> Operation {
    Operation { method, path, summary, authenticated }
}

/// Every operation the router serves.
pub const ROUTES: &[Operation] = &[
    op("get", "/v1/health", "Liveness and the current version", false),
    op("get", "/v1/openapi.json", "This document", false),
    op("get", "/v1/environments", "Environments (in the token's scope), services and users", true),
    op("get", "/v1/config", "Effective configuration of the view; environment from X-Potter-Environment", true),
    op("get", "/v1/config/{env}", "Effective configuration of the view (secrets redacted unless secret-reader)", true),
    op("patch", "/v1/config/{env}", "JSON Merge Patch of runtime overrides (null removes), validated and applied as one version; If-Match refuses it when any of its keys changed after that version", true),
    op("get", "/v1/config/{env}/{key}", "One value with its provenance; ETag is the version", true),
    op("put", "/v1/config/{env}/{key}", "Set a runtime override ({\"value\", \"reason\"?}); If-Match for compare-and-set", true),
    op("delete", "/v1/config/{env}/{key}", "Remove a runtime override", true),
    op("get", "/v1/explain/{env}/{key}", "Every layer's value for a key and the winner", true),
    op("post", "/v1/validate", "Dry run of proposed overrides ({\"environment\"?, \"changes\"})", true),
    op("get", "/v1/watch/{env}", "Server-Sent Events: ready, changed, rejected, lagged", true),
    op("get", "/v1/schemas", "The tree's JSON Schemas", true),
    op("get", "/v1/history", "Recorded changes of an environment, newest first (?env=&key=&since_ms=&limit=)", true),
    op("get", "/v1/history/{version}", "One recorded change with its (redacted) values", true),
    op("post", "/v1/rollback", "Admin: bring an environment back to a recorded version as one new version ({\"env\"?, \"version\", \"dry_run\"?, \"reason\"?})", true),
    op("get", "/v1/plugins", "The plugins folder: name, kind, version, sha256, signer, status, last error, grants, limits", true),
    op("get", "/v1/audit", "Admin: the audit log of writes and refused requests, newest first (?limit=&actor=&env=&denied=)", true),
];

fn parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": if name == "version" { "integer" } else { "string" } } }))
        .collect()
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for operation in ROUTES {
        let entry = paths.entry(operation.path.to_owned()).or_insert_with(|| json!({}));
        let mut described = json!({
            "summary": operation.summary,
            "parameters": parameters(operation.path),
            "responses": {
                "200": { "description": "OK" },
                "4XX": { "description": "A JSON error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
            }
        });
        if operation.authenticated {
            described["security"] = json!([{ "bearer": [] }]);
        }
        entry[operation.method] = described;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Potter Config API", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } }
                }
            }
        }
    })
}
