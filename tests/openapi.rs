//! The OpenAPI document's response schemas against what the handlers really answer: one real
//! server (the binary on loopback), every JSON route called once, each body checked with a JSON
//! Schema validator against the document's schema for that route, method and status, and its
//! top-level members compared with the schema's properties (so a field added to a handler but not
//! to its type, or the reverse, fails here).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Tree;
use serde_json::{json, Value};

struct Server {
    child: Child,
    addr: String,
    token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(tree: &Tree) -> Self {
        let (root, state) = (tree.root(), tree.state());
        let mut child = Command::new(env!("CARGO_BIN_EXE_potter-config"))
            .args(["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0", "--dev-token"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut token = String::new();
        let addr = loop {
            let line = lines.next().expect("the server prints its address").unwrap();
            if let Some(addr) = line.strip_prefix("listening on http://") {
                break addr.to_owned();
            }
            if let Some((_, dev)) = line.rsplit_once(": ") {
                token = dev.trim().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        assert!(!token.is_empty(), "the development token is printed");
        Server { child, addr, token }
    }

    /// `(status, JSON body)` of one request with the admin token.
    fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Value>) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {}\r\n", self.addr, self.token);
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, rest) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let text = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(rest) } else { rest.to_owned() };
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}")))
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
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
    ];
    for (route, path, method, headers, body, expected) in calls {
        let (status, answer) = server.call(&method.to_ascii_uppercase(), path, headers, body);
        assert_eq!(status, expected, "{method} {path}: {answer}");
        check(&document, route, method, status, &answer);
    }
}
