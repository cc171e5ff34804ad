//! The HTTP API (`potter-config serve`) over real HTTP: the real binary on 127.0.0.1 with an
//! ephemeral port, real token files, real keyrings and ciphertexts, real file saves.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{potter_with, stderr, stdout, Tree};
use potter_secrets::Keyring;
use serde_json::{json, Value};

const PLAINTEXT: &str = "sk-live-CANARY-api-5e1d-do-not-leak";

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "api": {
      "type": "object",
      "properties": {
        "timeout": {"type": "integer", "minimum": 1},
        "rate_limit": {"type": "integer", "maximum": 1000}
      }
    }
  }
}"#;

/// A tree with a schema and a production secret `db.password` = PLAINTEXT, encrypted by the CLI.
struct Fixture {
    tree: Tree,
    key_variable: (String, String),
}

impl Fixture {
    fn new() -> Self {
        let tree = Tree::minimal();
        tree.write("schemas/global_schema.json", SCHEMA);
        let keyring = Keyring::generate("production").unwrap();
        let key_variable = ("POTTER_SECRET_KEY_PRODUCTION".to_owned(), keyring.to_env_value().expose().to_owned());
        let fixture = Fixture { tree, key_variable };
        let sealed = fixture.cli(&["--env", "production", "secrets", "encrypt", "--key", "db.password"], Some(PLAINTEXT));
        let sealed = sealed.trim();
        assert!(sealed.starts_with("enc:v1:"), "{sealed}");
        fixture.tree.write("environments/production.json", &format!(r#"{{"db": {{"host": "db.internal", "password": "{sealed}"}}}}"#));
        fixture
    }

    fn env(&self) -> Vec<(&str, &str)> {
        vec![(self.key_variable.0.as_str(), self.key_variable.1.as_str())]
    }

    /// Runs the binary on the tree; panics unless it succeeds; returns stdout.
    fn cli(&self, args: &[&str], stdin: Option<&str>) -> String {
        let output = self.cli_output(args, stdin);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        stdout(&output)
    }

    fn cli_output(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let root = self.tree.root();
        let state = self.tree.state();
        let mut all = vec!["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap()];
        all.extend(args);
        potter_with(&all, &self.env(), stdin)
    }

    /// Creates a token and returns it.
    fn token(&self, name: &str, role: &str, environments: &str, prefix: Option<&str>) -> String {
        let mut args = vec!["--env", environments, "token", "create", "--name", name, "--role", role];
        if let Some(prefix) = prefix {
            args.extend(["--prefix", prefix]);
        }
        self.cli(&args, None).trim().to_owned()
    }

    fn serve(&self) -> Server {
        Server::start(self, &[])
    }
}

/// The running binary; killed on drop.
struct Server {
    child: Child,
    addr: String,
    /// Lines printed before the address (the development token).
    banner: Vec<String>,
}

impl Server {
    fn start(fixture: &Fixture, extra: &[&str]) -> Self {
        let root = fixture.tree.root();
        let state = fixture.tree.state();
        let mut command = Command::new(env!("CARGO_BIN_EXE_potter-config"));
        command
            .args(["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(fixture.env())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().expect("the server starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        let addr = loop {
            let line = lines.next().expect("the server prints its address").unwrap();
            if let Some(addr) = line.strip_prefix("listening on http://") {
                break addr.to_owned();
            }
            banner.push(line);
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr, banner }
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, headers: &[(&str, &str)], body: Option<&str>) -> Response {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        if let Some(token) = token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = body.unwrap_or("");
        if !body.is_empty() || method == "PUT" || method == "POST" {
            request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).unwrap();
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        Response::parse(&raw)
    }

    fn get(&self, path: &str, token: &str) -> Response {
        self.call("GET", path, Some(token), &[], None)
    }

    fn put(&self, path: &str, token: &str, body: &str) -> Response {
        self.call("PUT", path, Some(token), &[], Some(body))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn parse(raw: &[u8]) -> Self {
        let text = String::from_utf8_lossy(raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.split("\r\n");
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
        let headers: Vec<(String, String)> = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned())).collect();
        let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked { dechunk(body) } else { body.to_owned() };
        Response { status, headers, body }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Asserts the status and a JSON error body with `code`.
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.json()["error"]["code"], code, "{self:?}");
        assert!(self.json()["error"]["message"].is_string(), "{self:?}");
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

#[test]
fn health_needs_no_token() {
    let fixture = Fixture::new();
    let server = fixture.serve();
    let response = server.call("GET", "/v1/health", None, &[], None);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.json()["status"], "ok");
}

#[test]
fn every_endpoint_refuses_a_missing_or_unknown_token_with_401() {
    let fixture = Fixture::new();
    let server = fixture.serve();
    let endpoints = [
        ("GET", "/v1/environments", None),
        ("GET", "/v1/config/staging", None),
        ("GET", "/v1/config/staging/api.timeout", None),
        ("PUT", "/v1/config/staging/api.timeout", Some(r#"{"value": 5}"#)),
        ("DELETE", "/v1/config/staging/api.timeout", None),
        ("GET", "/v1/explain/staging/api.timeout", None),
        ("POST", "/v1/validate", Some(r#"{"environment": "staging"}"#)),
        ("GET", "/v1/watch/staging", None),
        ("GET", "/v1/schemas", None),
        ("GET", "/v1/history?env=staging", None),
        ("GET", "/v1/history/1", None),
    ];
    for (method, path, body) in endpoints {
        server.call(method, path, None, &[], body).assert_error(401, "unauthorized");
        server.call(method, path, Some("pct_not-a-real-token"), &[], body).assert_error(401, "unauthorized");
        server.call(method, path, None, &[("Authorization", "Basic YTpi")], body).assert_error(401, "unauthorized");
    }
}

#[test]
fn rbac_matrix_each_role_in_and_out_of_scope() {
    let fixture = Fixture::new();
    let viewer = fixture.token("viewer", "viewer", "staging", None);
    let editor = fixture.token("editor", "editor", "staging", None);
    let api_editor = fixture.token("api-editor", "editor", "staging", Some("api"));
    let reader = fixture.token("reader", "secret-reader", "staging", None);
    let admin = fixture.token("admin", "admin", "development", None);
    let (viewer, editor, api_editor, reader, admin) = (viewer.as_str(), editor.as_str(), api_editor.as_str(), reader.as_str(), admin.as_str());
    let server = fixture.serve();
    // (token, method, path, body, expected status)
    let put = r#"{"value": 7}"#;
    let cases: Vec<(&str, &str, &str, Option<&str>, u16)> = vec![
        // viewer: reads in its environment, nothing else
        (viewer, "GET", "/v1/config/staging", None, 200),
        (viewer, "GET", "/v1/config/production", None, 403),
        (viewer, "GET", "/v1/config/staging/api.timeout", None, 200),
        (viewer, "GET", "/v1/config/production/api.timeout", None, 403),
        (viewer, "GET", "/v1/explain/staging/api.timeout", None, 200),
        (viewer, "GET", "/v1/explain/production/api.timeout", None, 403),
        (viewer, "PUT", "/v1/config/staging/api.timeout", Some(put), 403),
        (viewer, "DELETE", "/v1/config/staging/api.timeout", None, 403),
        (viewer, "POST", "/v1/validate", Some(r#"{"environment": "staging", "changes": {"api.timeout": 7}}"#), 403),
        (viewer, "POST", "/v1/validate", Some(r#"{"environment": "staging"}"#), 200),
        (viewer, "POST", "/v1/validate", Some(r#"{"environment": "production"}"#), 403),
        // editor: writes in its environment only
        (editor, "PUT", "/v1/config/staging/api.timeout", Some(put), 200),
        (editor, "PUT", "/v1/config/production/api.timeout", Some(put), 403),
        (editor, "DELETE", "/v1/config/staging/api.timeout", None, 200),
        (editor, "DELETE", "/v1/config/production/api.timeout", None, 403),
        (editor, "POST", "/v1/validate", Some(r#"{"environment": "staging", "changes": {"api.timeout": 7}}"#), 200),
        (editor, "GET", "/v1/config/development", None, 403),
        // prefix-scoped editor: only keys under `api`
        (api_editor, "PUT", "/v1/config/staging/api.rate_limit", Some(put), 200),
        (api_editor, "PUT", "/v1/config/staging/db.host", Some(r#"{"value": "x"}"#), 403),
        (api_editor, "PUT", "/v1/config/production/api.rate_limit", Some(put), 403),
        (api_editor, "GET", "/v1/config/staging/api.timeout", None, 200),
        (api_editor, "GET", "/v1/config/staging/apis", None, 403),
        (api_editor, "GET", "/v1/explain/staging/db.host", None, 403),
        (api_editor, "DELETE", "/v1/config/staging/db.host", None, 403),
        (api_editor, "GET", "/v1/watch/staging?prefix=db", None, 403),
        // secret-reader: reads (revealed), never writes
        (reader, "GET", "/v1/config/staging", None, 200),
        (reader, "GET", "/v1/config/production", None, 403),
        (reader, "PUT", "/v1/config/staging/api.timeout", Some(put), 403),
        // admin: everything, whatever its listed environments
        (admin, "GET", "/v1/config/production", None, 200),
        (admin, "PUT", "/v1/config/production/api.timeout", Some(put), 200),
        (admin, "DELETE", "/v1/config/production/api.timeout", None, 200),
    ];
    for (token, method, path, body, expected) in cases {
        let response = server.call(method, path, Some(token), &[], body);
        assert_eq!(response.status, expected, "{method} {path} with {token}: {response:?}");
        if expected == 403 {
            response.assert_error(403, "forbidden");
        }
    }
    // A prefix-scoped token sees only its branch of the whole configuration.
    let config = server.get("/v1/config/staging", api_editor).json();
    assert_eq!(config["config"].as_object().unwrap().keys().collect::<Vec<_>>(), vec!["api"], "{config}");
    // Environments are listed only where the token may go.
    assert_eq!(server.get("/v1/environments", viewer).json()["environments"], json!(["staging"]));
    assert_eq!(server.get("/v1/environments", admin).json()["environments"], json!(["development", "production", "staging"]));
}

#[test]
fn secrets_are_absent_from_every_response_without_secret_reader() {
    let fixture = Fixture::new();
    let viewer = fixture.token("viewer", "viewer", "production", None);
    let editor = fixture.token("editor", "editor", "production", None);
    let reader = fixture.token("reader", "secret-reader", "production", None);
    let admin = fixture.token("admin", "admin", "*", None);
    let server = fixture.serve();
    let reads = ["/v1/config/production", "/v1/config/production/db", "/v1/config/production/db.password", "/v1/explain/production/db.password", "/v1/explain/production/db"];
    for token in [viewer.as_str(), editor.as_str()] {
        for path in reads {
            let response = server.get(path, token);
            assert_eq!(response.status, 200, "{path}: {response:?}");
            assert!(!response.body.contains(PLAINTEXT), "{path} leaked: {}", response.body);
            assert!(response.body.contains("<redacted>"), "{path}: {}", response.body);
        }
        let headers = [("X-Potter-Environment", "production")];
        let response = server.call("GET", "/v1/config", Some(token), &headers, None);
        assert!(!response.body.contains(PLAINTEXT) && response.status == 200, "{response:?}");
    }
    let validate = server.call("POST", "/v1/validate", Some(editor.as_str()), &[], Some(r#"{"environment": "production", "changes": {"api.timeout": 9}}"#));
    assert!(!validate.body.contains(PLAINTEXT), "{validate:?}");
    for token in [reader.as_str(), admin.as_str()] {
        let response = server.get("/v1/config/production/db.password", token);
        assert_eq!(response.json()["value"], PLAINTEXT, "{response:?}");
        assert_eq!(response.json()["secret"], true);
        assert_eq!(server.get("/v1/config/production", token).json()["config"]["db"]["password"], PLAINTEXT);
    }
}

#[test]
fn a_key_read_carries_its_value_provenance_and_version_etag() {
    let fixture = Fixture::new();
    let viewer = fixture.token("viewer", "viewer", "*", None);
    let server = fixture.serve();
    let response = server.get("/v1/config/staging/api.timeout", &viewer);
    assert_eq!(response.status, 200, "{response:?}");
    let body = response.json();
    assert_eq!(body["value"], 30);
    assert_eq!(body["source"]["file"], "global.json", "{body}");
    assert_eq!(body["source"]["line"], 1);
    assert_eq!(response.header("etag"), Some(format!("\"{}\"", body["version"]).as_str()));
    let explain = server.get("/v1/explain/staging/api.timeout", &viewer).json();
    assert_eq!(explain["value"], 30);
    assert_eq!(explain["env_var"], "POTTER_API__TIMEOUT");
    assert!(explain["layers"].as_array().unwrap().iter().any(|l| l["won"] == true && l["layer"] == "global"), "{explain}");
    server.get("/v1/config/staging/api.nothing", &viewer).assert_error(404, "key_not_set");
    let schemas = server.get("/v1/schemas", &viewer).json();
    assert_eq!(schemas["schemas"][0]["file"], "schemas/global_schema.json");
    assert_eq!(schemas["schemas"][0]["schema"]["type"], "object");
}

#[test]
fn put_sets_an_override_delete_removes_it_and_a_stale_if_match_is_a_412_conflict() {
    let fixture = Fixture::new();
    let editor = fixture.token("editor", "editor", "staging", None);
    let server = fixture.serve();
    let first = server.get("/v1/config/staging/api.timeout", &editor);
    let seen = first.header("etag").unwrap().to_owned();
    let put = server.call("PUT", "/v1/config/staging/api.timeout", Some(editor.as_str()), &[("If-Match", &seen)], Some(r#"{"value": 12, "reason": "load test"}"#));
    assert_eq!(put.status, 200, "{put:?}");
    let after = server.get("/v1/config/staging/api.timeout", &editor);
    assert_eq!(after.json()["value"], 12);
    assert_eq!(after.json()["source"]["layer"], "overrides/staging", "{after:?}");
    assert_ne!(after.header("etag").unwrap(), seen);
    // Another writer changed the key after `seen`: the stale compare-and-set is refused.
    let stale = server.call("PUT", "/v1/config/staging/api.timeout", Some(editor.as_str()), &[("If-Match", &seen)], Some(r#"{"value": 13}"#));
    stale.assert_error(412, "conflict");
    assert_eq!(server.get("/v1/config/staging/api.timeout", &editor).json()["value"], 12);
    // The history records the token as the actor.
    let history = fixture.cli(&["--env", "staging", "history", "--format", "json"], None);
    assert!(history.contains("token:editor"), "{history}");
    let records = server.get("/v1/history?env=staging&key=api.timeout", &editor).json();
    let newest = &records["records"][0];
    assert_eq!(newest["actor"], "token:editor", "{records}");
    assert_eq!(newest["reason"], "load test", "{records}");
    let version = newest["version"].as_u64().unwrap();
    let shown = server.get(&format!("/v1/history/{version}"), &editor).json();
    assert!(shown["changes"].as_array().unwrap().iter().any(|c| c["key"] == "api.timeout" && c["after"] == 12), "{shown}");
    server.get("/v1/history?env=production", &editor).assert_error(403, "forbidden");
    server.get("/v1/history/99999", &editor).assert_error(404, "version_not_found");
    let deleted = server.call("DELETE", "/v1/config/staging/api.timeout", Some(editor.as_str()), &[], None);
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(server.get("/v1/config/staging/api.timeout", &editor).json()["value"], 30);
}

#[test]
fn an_invalid_put_is_422_with_the_issues_and_changes_nothing() {
    let fixture = Fixture::new();
    let editor = fixture.token("editor", "editor", "staging", None);
    let server = fixture.serve();
    let before = server.get("/v1/config/staging/api.rate_limit", &editor).json();
    let response = server.put("/v1/config/staging/api.rate_limit", &editor, r#"{"value": 5000}"#);
    response.assert_error(422, "invalid");
    assert!(response.body.contains("rate_limit") && response.body.contains("1000"), "{response:?}");
    assert_eq!(server.get("/v1/config/staging/api.rate_limit", &editor).json(), before);
    // The same change as a dry run: reported, not applied.
    let dry = server.call("POST", "/v1/validate", Some(editor.as_str()), &[("X-Potter-Environment", "staging")], Some(r#"{"changes": {"api.rate_limit": 5000}}"#));
    assert_eq!(dry.status, 200, "{dry:?}");
    assert_eq!(dry.json()["valid"], false);
    assert!(dry.body.contains("rate_limit"), "{dry:?}");
    let fine = server.call("POST", "/v1/validate", Some(editor.as_str()), &[("X-Potter-Environment", "staging")], Some(r#"{"changes": {"api.rate_limit": 500}}"#));
    assert_eq!(fine.json()["valid"], true, "{fine:?}");
    assert_eq!(server.get("/v1/config/staging/api.rate_limit", &editor).json(), before);
}

/// Reads SSE lines until an event named `name` arrives; returns its data.
fn next_event(lines: &mut impl Iterator<Item = std::io::Result<String>>, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut current = String::new();
    while Instant::now() < deadline {
        let line = lines.next().expect("the stream stays open").expect("a line before the timeout");
        if let Some(event) = line.strip_prefix("event: ") {
            current = event.trim().to_owned();
        } else if let Some(data) = line.strip_prefix("data: ") {
            if current == name {
                return serde_json::from_str(data).unwrap();
            }
        }
    }
    panic!("no `{name}` event");
}

fn open_stream(server: &Server, path: &str, token: &str) -> impl Iterator<Item = std::io::Result<String>> {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nAuthorization: Bearer {token}\r\n\r\n").unwrap();
    BufReader::new(stream).lines()
}

/// Saves a file of the tree the way editors do: a temp file outside the tree, then a rename.
fn save(tree: &Tree, relative: &str, text: &str) {
    let temp = tree.root().parent().unwrap().join("save.tmp");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, tree.root().join(relative)).unwrap();
}

#[test]
fn watch_streams_a_saved_file_change_and_a_rejected_save_over_sse() {
    let fixture = Fixture::new();
    let viewer = fixture.token("viewer", "viewer", "staging", None);
    let server = fixture.serve();
    let mut lines = open_stream(&server, "/v1/watch/staging?prefix=api", &viewer);
    assert_eq!(lines.next().unwrap().unwrap(), "HTTP/1.1 200 OK");
    let ready = next_event(&mut lines, "ready");
    assert_eq!(ready["prefix"], "api");
    save(&fixture.tree, "environments/staging.json", r#"{"api": {"timeout": 45}}"#);
    let changed = next_event(&mut lines, "changed");
    assert_eq!(changed["changes"][0]["key"], "api.timeout", "{changed}");
    assert_eq!(changed["changes"][0]["new"], 45, "{changed}");
    assert_eq!(changed["actor"], "file-watch");
    // A save that does not validate is refused and reported; the old value stays live.
    save(&fixture.tree, "environments/staging.json", r#"{"api": {"rate_limit": 99999}}"#);
    let rejected = next_event(&mut lines, "rejected");
    assert!(rejected["diagnostics"].to_string().contains("rate_limit"), "{rejected}");
    assert_eq!(server.get("/v1/config/staging/api.timeout", &viewer).json()["value"], 45);
}

#[test]
fn bad_input_is_a_4xx_with_a_json_error_and_never_a_500() {
    let fixture = Fixture::new();
    let admin = fixture.token("admin", "admin", "*", None);
    let server = fixture.serve();
    let big = format!(r#"{{"value": "{}"}}"#, "x".repeat(100 * 1024));
    let cases: Vec<(&str, &str, Option<&str>, u16, &str)> = vec![
        ("GET", "/v1/config/staging/api..timeout", None, 400, "bad_key"),
        ("GET", "/v1/config/staging/..", None, 400, "bad_key"),
        ("GET", "/v1/config/staging/api/timeout", None, 400, "bad_key"),
        ("GET", "/v1/config/staging/api%2Ftimeout", None, 400, "bad_key"),
        ("GET", "/v1/config/staging/.api", None, 400, "bad_key"),
        ("GET", "/v1/config/staging/api.", None, 400, "bad_key"),
        ("GET", "/v1/config/staging/api%01x", None, 400, "bad_key"),
        ("PUT", "/v1/config/staging/api%0Ax", Some(r#"{"value": 1}"#), 400, "bad_key"),
        ("GET", "/v1/config/staging/api%FF", None, 400, "bad_path"),
        ("GET", "/v1/config/nowhere", None, 404, "unknown_view"),
        ("GET", "/v1/config/nowhere/api.timeout", None, 404, "unknown_view"),
        ("PUT", "/v1/config/nowhere/api.timeout", Some(r#"{"value": 1}"#), 404, "unknown_view"),
        ("GET", "/v1/config/staging?service=nobody", None, 404, "unknown_view"),
        ("GET", "/v1/watch/nowhere", None, 404, "unknown_view"),
        ("GET", "/v1/nothing-here", None, 404, "unknown_route"),
        ("GET", "/", None, 404, "unknown_route"),
        ("POST", "/v1/environments", None, 405, "method_not_allowed"),
        ("DELETE", "/v1/config/staging", None, 405, "method_not_allowed"),
        ("PUT", "/v1/config/staging/api.timeout", Some("{not json"), 400, "malformed_json"),
        ("PUT", "/v1/config/staging/api.timeout", Some(r#"{"valu": 1}"#), 400, "malformed_json"),
        ("PUT", "/v1/config/staging/api.timeout", Some(""), 400, "malformed_json"),
        ("PUT", "/v1/config/staging/api.timeout", Some(big.as_str()), 413, "body_too_large"),
        ("POST", "/v1/validate", Some(r#"{"changes": {}}"#), 400, "missing_environment"),
        ("POST", "/v1/validate", Some(r#"{"environment": "staging", "changes": {"a..b": 1}}"#), 400, "bad_key"),
    ];
    for (method, path, body, status, code) in cases {
        let response = server.call(method, path, Some(admin.as_str()), &[], body);
        assert_eq!(response.status, status, "{method} {path}: {response:?}");
        response.assert_error(status, code);
    }
    let bad_if_match = server.call("PUT", "/v1/config/staging/api.timeout", Some(admin.as_str()), &[("If-Match", "\"yesterday\"")], Some(r#"{"value": 3}"#));
    bad_if_match.assert_error(400, "bad_if_match");
    // Nothing above changed anything.
    assert_eq!(server.get("/v1/config/staging/api.timeout", &admin).json()["value"], 30);
}

#[test]
fn tokens_file_keeps_only_hashes_private_and_revocation_applies_to_a_running_server() {
    let fixture = Fixture::new();
    let token = fixture.token("ops", "viewer", "staging,production", Some("api"));
    assert!(token.starts_with("pct_") && token.len() == 68, "{token}");
    let path = fixture.tree.state().join("tokens.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&token) && !text.contains(&token[4..]), "{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let list = fixture.cli(&["token", "list", "--format", "json"], None);
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["tokens"][0]["environments"], json!(["staging", "production"]));
    assert_eq!(list["tokens"][0]["prefix"], "api");
    let duplicate = fixture.cli_output(&["--env", "staging", "token", "create", "--name", "ops", "--role", "admin"], None);
    assert!(!duplicate.status.success() && stderr(&duplicate).contains("already exists"), "{}", stderr(&duplicate));
    let server = fixture.serve();
    assert_eq!(server.get("/v1/config/production/api.timeout", &token).status, 200);
    fixture.cli(&["token", "revoke", "ops"], None);
    server.get("/v1/config/production/api.timeout", &token).assert_error(401, "unauthorized");
    let again = fixture.cli_output(&["token", "revoke", "ops"], None);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
}

#[test]
fn dev_token_is_printed_and_works_at_once_and_sigterm_ends_the_server_with_a_stream_open() {
    let fixture = Fixture::new();
    let mut server = Server::start(&fixture, &["--dev-token"]);
    let token = server.banner.iter().find_map(|line| line.rsplit(' ').next().filter(|t| t.starts_with("pct_"))).expect("a printed token").to_owned();
    assert_eq!(server.get("/v1/config/production/db.password", &token).json()["value"], PLAINTEXT);
    let mut lines = open_stream(&server, "/v1/watch/production", &token);
    next_event(&mut lines, "ready");
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "graceful shutdown exits 0: {status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the server did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_openapi_document_lists_exactly_the_methods_each_route_serves() {
    let fixture = Fixture::new();
    let admin = fixture.token("admin", "admin", "*", None);
    let server = fixture.serve();
    let document = server.call("GET", "/v1/openapi.json", None, &[], None).json();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 12, "{document}");
    for (path, operations) in paths {
        let concrete = path.replace("{env}", "staging").replace("{key}", "api.timeout").replace("{version}", "1");
        for method in ["get", "put", "delete", "post", "patch"] {
            let listed = operations.get(method).is_some();
            let upper = method.to_ascii_uppercase();
            if listed && concrete.starts_with("/v1/watch/") {
                let mut lines = open_stream(&server, &concrete, &admin);
                assert_eq!(lines.next().unwrap().unwrap(), "HTTP/1.1 200 OK", "{path}");
                continue;
            }
            let body = match method {
                "put" => Some(r#"{"value": 30}"#),
                "post" => Some(r#"{"environment": "staging"}"#),
                "patch" => Some(r#"{"api": {"timeout": 30}}"#),
                _ => None,
            };
            let response = server.call(&upper, &concrete, Some(admin.as_str()), &[("X-Potter-Environment", "staging")], body);
            if listed {
                let code = serde_json::from_str::<Value>(&response.body).ok().map(|v| v["error"]["code"].clone());
                assert!(response.status < 400 || !matches!(code.as_ref().and_then(Value::as_str), Some("unknown_route" | "method_not_allowed")), "{upper} {path} is listed but not served: {response:?}");
            } else {
                assert_eq!(response.status, 405, "{upper} {path} is served but not listed: {response:?}");
            }
        }
    }
}

#[test]
fn patch_applies_a_merge_patch_as_one_version_or_nothing() {
    let fixture = Fixture::new();
    let editor = fixture.token("editor", "editor", "staging", Some("api"));
    let server = fixture.serve();
    let patch = |body: &str| server.call("PATCH", "/v1/config/staging", Some(editor.as_str()), &[], Some(body));
    let applied = patch(r#"{"api": {"timeout": 11, "rate_limit": 200}}"#);
    assert_eq!(applied.status, 200, "{applied:?}");
    let version = applied.json()["version"].as_u64().unwrap();
    let config = server.get("/v1/config/staging", &editor).json();
    assert_eq!(config["config"]["api"], json!({"timeout": 11, "rate_limit": 200}));
    let records = server.get("/v1/history?env=staging", &editor).json();
    assert_eq!(records["records"][0]["version"], version, "{records}");
    assert_eq!(records["records"][0]["keys"].as_array().unwrap().len(), 2, "{records}");
    // One invalid member refuses the whole batch.
    patch(r#"{"api": {"timeout": 12, "rate_limit": 5000}}"#).assert_error(422, "invalid");
    assert_eq!(server.get("/v1/config/staging/api.timeout", &editor).json()["value"], 11);
    // `null` removes an override; keys outside the token's prefix are refused.
    assert_eq!(patch(r#"{"api": {"timeout": null}}"#).status, 200);
    assert_eq!(server.get("/v1/config/staging/api.timeout", &editor).json()["value"], 30);
    patch(r#"{"db": {"host": "x"}}"#).assert_error(403, "forbidden");
    patch(r#"{"api.timeout": 3}"#).assert_error(400, "bad_key");
    patch(r#"[1, 2]"#).assert_error(400, "malformed_json");
    patch(r#"{}"#).assert_error(400, "empty_patch");
}
