//! The HTTP API (`potter-config serve`) over real HTTP: the real binary on 127.0.0.1 with an
//! ephemeral port, real token files, real keyrings and ciphertexts, real file saves.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::serve::dechunk;
use common::{potter_with, stderr, stdout, Tree, API_SCHEMA};
use potter_secrets::Keyring;
use serde_json::{json, Value};

const PLAINTEXT: &str = "sk-live-CANARY-api-5e1d-do-not-leak";

/// A tree with a schema and a production secret `db.password` = PLAINTEXT, encrypted by the CLI.
struct Fixture {
    tree: Tree,
    key_variable: (String, String),
}

impl Fixture {
    fn new() -> Self {
        let tree = Tree::minimal();
        tree.write("schemas/global_schema.json", API_SCHEMA);
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
        let mut args = vec!["token", "create", "--name", name, "--role", role, "--env", environments];
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
        Self::spawn(fixture, extra, Stdio::null())
    }

    /// A server whose log (stderr) the test reads: `child.stderr`.
    fn start_logged(fixture: &Fixture, extra: &[&str]) -> Self {
        Self::spawn(fixture, extra, Stdio::piped())
    }

    fn spawn(fixture: &Fixture, extra: &[&str], log: Stdio) -> Self {
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
            .stderr(log);
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
        ("POST", "/v1/overrides/staging/release", Some(r#"{"keys": ["api.timeout"]}"#)),
        ("GET", "/v1/explain/staging/api.timeout", None),
        ("POST", "/v1/validate", Some(r#"{"environment": "staging"}"#)),
        ("GET", "/v1/watch/staging", None),
        ("GET", "/v1/schemas", None),
        ("GET", "/v1/history?env=staging", None),
        ("GET", "/v1/history/1", None),
        ("POST", "/v1/rollback", Some(r#"{"env": "staging", "version": 1}"#)),
        ("GET", "/v1/plugins", None),
        ("GET", "/v1/audit", None),
        ("GET", "/metrics", None),
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
        // rollback, audit: admin only; the plugin list: every token
        (viewer, "POST", "/v1/rollback", Some(r#"{"env": "staging", "version": 1, "dry_run": true}"#), 403),
        (editor, "POST", "/v1/rollback", Some(r#"{"env": "staging", "version": 1, "dry_run": true}"#), 403),
        (reader, "POST", "/v1/rollback", Some(r#"{"env": "staging", "version": 1, "dry_run": true}"#), 403),
        (admin, "POST", "/v1/rollback", Some(r#"{"env": "staging", "version": 1, "dry_run": true}"#), 200),
        (editor, "GET", "/v1/audit", None, 403),
        (reader, "GET", "/v1/audit", None, 403),
        (admin, "GET", "/v1/audit", None, 200),
        (viewer, "GET", "/v1/plugins", None, 200),
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
    assert_eq!(after.json()["source"]["source"], format!("runtime overrides (version {})", put.json()["version"]), "{after:?}");
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
        ("GET", "/nowhere", None, 404, "unknown_route"),
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
    let duplicate = fixture.cli_output(&["token", "create", "--name", "ops", "--role", "admin", "--env", "staging"], None);
    assert!(!duplicate.status.success() && stderr(&duplicate).contains("already exists"), "{}", stderr(&duplicate));
    // A token's environments are never taken from the global `--env`: leaving them out is a usage error.
    for args in [&["token", "create", "--name", "bot", "--role", "editor"][..], &["--env", "staging", "token", "create", "--name", "bot", "--role", "editor"][..]] {
        let missing = fixture.cli_output(args, None);
        assert_eq!(missing.status.code(), Some(2), "{args:?}: {}", stderr(&missing));
        assert!(stderr(&missing).contains("--env"), "{}", stderr(&missing));
    }
    let root = fixture.tree.root();
    let state = fixture.tree.state();
    let from_variable = potter_with(&["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap(), "token", "create", "--name", "bot", "--role", "editor"], &[("POTTER_ENV", "staging")], None);
    assert_eq!(from_variable.status.code(), Some(2), "POTTER_ENV must not scope a token: {}", stderr(&from_variable));
    assert!(!fixture.cli(&["token", "list"], None).contains("bot"));
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
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer", "{document}");
    for (path, operations) in paths {
        let concrete = path.replace("{env}", "staging").replace("{key}", "api.timeout").replace("{version}", "1").replace("{id}", "1");
        for method in ["get", "put", "delete", "post", "patch"] {
            let listed = operations.get(method).is_some();
            let upper = method.to_ascii_uppercase();
            let body = match method {
                "put" => Some(r#"{"value": 30}"#),
                "post" => Some(r#"{"environment": "staging"}"#),
                "patch" => Some(r#"{"api": {"timeout": 30}}"#),
                _ => None,
            };
            if listed {
                // Generated from the handlers' annotations: the operations that name the bearer
                // scheme are exactly those that refuse a request without a token.
                let secured = operations[method]["security"] == json!([{ "bearer": [] }]);
                let anonymous = server.call(&upper, &concrete, None, &[("X-Potter-Environment", "staging")], body);
                assert_eq!(anonymous.status == 401, secured, "{upper} {path}: security {} but {anonymous:?}", operations[method]["security"]);
                if secured {
                    assert!(operations[method]["responses"]["401"].is_object(), "{upper} {path} does not document its 401");
                }
            }
            if listed && concrete.starts_with("/v1/watch/") {
                let mut lines = open_stream(&server, &concrete, &admin);
                assert_eq!(lines.next().unwrap().unwrap(), "HTTP/1.1 200 OK", "{path}");
                continue;
            }
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
    // If-Match over a batch: refused whole (412) when any of its keys changed after that version.
    let seen = format!("\"{}\"", server.get("/v1/config/staging/api.rate_limit", &editor).json()["version"]);
    assert_eq!(patch(r#"{"api": {"rate_limit": 300}}"#).status, 200);
    let stale = server.call("PATCH", "/v1/config/staging", Some(editor.as_str()), &[("If-Match", &seen)], Some(r#"{"api": {"timeout": 20, "rate_limit": 400}}"#));
    stale.assert_error(412, "conflict");
    assert_eq!(server.get("/v1/config/staging/api.timeout", &editor).json()["value"], 30, "nothing of the batch applied");
    let fresh = format!("\"{}\"", server.get("/v1/config/staging/api.rate_limit", &editor).json()["version"]);
    let current = server.call("PATCH", "/v1/config/staging", Some(editor.as_str()), &[("If-Match", &fresh)], Some(r#"{"api": {"timeout": 20, "rate_limit": 400}}"#));
    assert_eq!(current.status, 200, "{current:?}");
}

#[test]
fn rollback_restores_a_version_as_one_new_recorded_version_admin_only_with_a_dry_run() {
    let fixture = Fixture::new();
    let admin = fixture.token("admin", "admin", "*", None);
    let editor = fixture.token("editor", "editor", "staging", None);
    let server = fixture.serve();
    let first = server.put("/v1/config/staging/api.timeout", &editor, r#"{"value": 11}"#).json()["version"].as_u64().unwrap();
    server.put("/v1/config/staging/api.timeout", &editor, r#"{"value": 12}"#);
    server.put("/v1/config/staging/api.rate_limit", &editor, r#"{"value": 500}"#);
    let rollback = |token: &str, body: &str| server.call("POST", "/v1/rollback", Some(token), &[], Some(body));

    // Only admins roll back.
    rollback(&editor, &format!(r#"{{"env": "staging", "version": {first}}}"#)).assert_error(403, "forbidden");
    // A dry run shows the differences and applies nothing.
    let dry = rollback(&admin, &format!(r#"{{"env": "staging", "version": {first}, "dry_run": true}}"#));
    assert_eq!(dry.status, 200, "{dry:?}");
    let dry = dry.json();
    assert_eq!(dry["outcome"], "dry run, validates", "{dry}");
    assert_eq!(dry["version"], Value::Null);
    let changes = dry["changes"].as_array().unwrap();
    assert!(changes.contains(&json!({"key": "api.timeout", "from": 12, "to": 11})), "{dry}");
    assert!(changes.contains(&json!({"key": "api.rate_limit", "from": 500, "to": 100})), "{dry}");
    assert_eq!(server.get("/v1/config/staging/api.timeout", &admin).json()["value"], 12);

    // Applied: one new version, recorded with the token as actor and origin `rollback`.
    let applied = rollback(&admin, &format!(r#"{{"env": "staging", "version": {first}, "reason": "bad deploy"}}"#));
    assert_eq!(applied.status, 200, "{applied:?}");
    let version = applied.json()["version"].as_u64().unwrap();
    assert_eq!(applied.header("etag"), Some(format!("\"{version}\"").as_str()));
    assert_eq!(server.get("/v1/config/staging/api.timeout", &admin).json()["value"], 11);
    assert_eq!(server.get("/v1/config/staging/api.rate_limit", &admin).json()["value"], 100);
    let record = server.get(&format!("/v1/history/{version}"), &admin).json();
    assert_eq!(record["actor"], "token:admin", "{record}");
    assert_eq!(record["origin"], "rollback", "{record}");
    assert_eq!(record["reason"], "bad deploy", "{record}");
    assert_eq!(server.get("/v1/history?env=staging&limit=1", &admin).json()["records"][0]["version"], version);
    // Rolling back again to the same version changes nothing and records nothing.
    let again = rollback(&admin, &format!(r#"{{"env": "staging", "version": {first}}}"#)).json();
    assert_eq!(again["outcome"], "nothing to change", "{again}");
    assert_eq!(server.get("/v1/history?env=staging&limit=1", &admin).json()["records"][0]["version"], version);

    // The environment may come from the header; bad requests are 4xx.
    let by_header = server.call("POST", "/v1/rollback", Some(&admin), &[("X-Potter-Environment", "staging")], Some(&format!(r#"{{"version": {first}, "dry_run": true}}"#)));
    assert_eq!(by_header.status, 200, "{by_header:?}");
    rollback(&admin, r#"{"env": "staging", "version": 9999}"#).assert_error(404, "version_not_found");
    rollback(&admin, r#"{"env": "nowhere", "version": 1}"#).assert_error(404, "unknown_view");
    rollback(&admin, r#"{"env": "staging"}"#).assert_error(400, "malformed_json");
    rollback(&admin, r#"{"env": "staging", "version": 1, "force": true}"#).assert_error(400, "malformed_json");
}

#[test]
fn a_rollback_that_would_not_validate_is_422_and_its_dry_run_lists_the_issues() {
    let fixture = Fixture::new();
    let admin = fixture.token("admin", "admin", "*", None);
    let server = fixture.serve();
    let first = server.put("/v1/config/staging/api.timeout", &admin, r#"{"value": 11}"#).json()["version"].as_u64().unwrap();
    server.put("/v1/config/staging/api.timeout", &admin, r#"{"value": 25}"#);
    // The schema tightens after version `first`: every environment is still valid, but `first`'s
    // content (timeout 11) no longer is.
    fixture.tree.write("schemas/global_schema.json", &API_SCHEMA.replace(r#""minimum": 1}"#, r#""minimum": 20}"#));
    let dry = server.call("POST", "/v1/rollback", Some(&admin), &[], Some(&format!(r#"{{"env": "staging", "version": {first}, "dry_run": true}}"#)));
    assert_eq!(dry.status, 200, "{dry:?}");
    assert_eq!(dry.json()["valid"], false, "{dry:?}");
    assert!(dry.json()["issues"].to_string().contains("api.timeout"), "{dry:?}");
    let applied = server.call("POST", "/v1/rollback", Some(&admin), &[], Some(&format!(r#"{{"env": "staging", "version": {first}}}"#)));
    applied.assert_error(422, "invalid");
    assert_eq!(server.get("/v1/config/staging/api.timeout", &admin).json()["value"], 25);
}

#[test]
fn plugins_lists_the_plugins_folder_with_each_plugins_status() {
    let fixture = Fixture::new();
    let viewer = fixture.token("viewer", "viewer", "staging", None);
    let server = fixture.serve();
    server.call("GET", "/v1/plugins", None, &[], None).assert_error(401, "unauthorized");
    let none = server.get("/v1/plugins", &viewer);
    assert_eq!(none.status, 200, "{none:?}");
    assert_eq!(none.json(), json!({"plugins": []}));
    // A file dropped in while serving is picked up by the live plugins folder and listed with its
    // status: here refused (no signature, not a component), with the reason.
    fixture.tree.write("plugins/forged.plugin.toml", "name = \"forged\"\nversion = \"1.0.0\"\nkind = \"validator\"\n");
    fixture.tree.write("plugins/forged.wasm", "not wasm");
    let deadline = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let listed = server.get("/v1/plugins", &viewer).json();
        if !listed["plugins"].as_array().unwrap().is_empty() || Instant::now() > deadline {
            break listed;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let plugins = listed["plugins"].as_array().unwrap();
    assert_eq!(plugins.len(), 1, "{listed}");
    assert_eq!(plugins[0]["name"], "forged", "{listed}");
    assert_ne!(plugins[0]["status"], "loaded", "{listed}");
    assert!(plugins[0]["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{listed}");
    for field in ["kind", "version", "sha256", "signer", "grants", "limits", "refused_update"] {
        assert!(plugins[0].get(field).is_some(), "{field} missing: {listed}");
    }
}

/// Installs the built `echo-config` (which echoes its input as an issue) with an output limit of
/// 1 KiB, signed by a key trusted with the CLI, as an operator would.
fn install_echo_config(fixture: &Fixture) {
    let built = common::wasm::built_plugins();
    let plugins = fixture.tree.root().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(built.join("echo-config.wasm"), plugins.join("echo-config.wasm")).unwrap();
    let manifest = std::fs::read_to_string(built.join("echo-config.plugin.toml")).unwrap();
    std::fs::write(plugins.join("echo-config.plugin.toml"), format!("{manifest}\n[limits]\nmax_output_kib = 1\n")).unwrap();
    let key = fixture.tree.root().parent().unwrap().join("operator");
    fixture.cli(&["plugin", "keygen", "--out", key.to_str().unwrap()], None);
    fixture.cli(&["plugin", "trust", key.with_extension("pub").to_str().unwrap()], None);
    fixture.cli(&["plugin", "sign", plugins.join("echo-config.wasm").to_str().unwrap(), "--key", key.with_extension("key").to_str().unwrap()], None);
}

#[test]
fn plugins_shows_each_token_only_the_diagnostics_of_its_environments() {
    let fixture = Fixture::new();
    install_echo_config(&fixture);
    let admin = fixture.token("admin", "admin", "*", None);
    let everywhere = fixture.token("everywhere", "viewer", "*", None);
    let developer = fixture.token("developer", "viewer", "development", None);
    let server = fixture.serve();
    // A value too long for the plugin's output limit makes its call about that environment fail:
    // the write is refused and the failure is kept as that environment's diagnostic.
    let long = format!(r#"{{"value": "{}"}}"#, "x".repeat(2000));
    for environment in ["production", "development"] {
        let refused = server.put(&format!("/v1/config/{environment}/app.banner"), &admin, &long);
        assert_eq!(refused.status, 422, "{refused:?}");
    }
    let echo = |token: &str| {
        let listed = server.get("/v1/plugins", token).json();
        listed["plugins"].as_array().unwrap().iter().find(|p| p["name"] == "echo-config").cloned().unwrap_or_else(|| panic!("listed: {listed}"))
    };
    let all = echo(&everywhere);
    assert_eq!(all["status"], "loaded", "{all}");
    let errors = all["errors"].as_object().unwrap();
    assert_eq!(errors.keys().collect::<Vec<_>>(), ["development", "production"], "{all}");
    assert!(errors["production"].as_str().unwrap().contains("plugin echo-config: validate: output of"), "{all}");
    assert!(all["last_error"].is_string(), "{all}");

    let scoped = echo(&developer);
    assert_eq!(scoped["status"], "loaded", "{scoped}");
    assert_eq!(scoped["errors"].as_object().unwrap().keys().collect::<Vec<_>>(), ["development"], "{scoped}");
    assert_eq!(scoped["last_error"], scoped["errors"]["development"], "{scoped}");
    assert!(!scoped.to_string().contains("production"), "{scoped}");
}

#[test]
fn each_token_has_its_own_rate_limit_answered_with_429_and_retry_after() {
    let fixture = Fixture::new();
    let busy = fixture.token("busy", "viewer", "staging", None);
    let calm = fixture.token("calm", "viewer", "staging", None);
    let server = Server::start(&fixture, &["--rate-limit", "1", "--rate-burst", "5"]);
    let statuses: Vec<u16> = (0..8).map(|_| server.get("/v1/config/staging/api.timeout", &busy).status).collect();
    assert_eq!(&statuses[..5], [200; 5], "the burst is allowed: {statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let limited = server.get("/v1/config/staging/api.timeout", &busy);
    limited.assert_error(429, "rate_limited");
    let retry: u64 = limited.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&retry), "{limited:?}");
    // Another token is not held back, and neither is the health check.
    assert_eq!(server.get("/v1/config/staging/api.timeout", &calm).status, 200);
    assert_eq!(server.call("GET", "/v1/health", None, &[], None).status, 200);
    // The allowance comes back with time.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(server.get("/v1/config/staging/api.timeout", &busy).status, 200);
}

#[test]
fn refused_requests_and_writes_are_audited_with_the_tokens_name_and_admins_read_the_audit() {
    let fixture = Fixture::new();
    let admin = fixture.token("admin", "admin", "*", None);
    let viewer = fixture.token("viewer", "viewer", "staging", None);
    let editor = fixture.token("editor", "editor", "staging", Some("api"));
    let server = fixture.serve();
    server.call("GET", "/v1/config/staging/api.timeout", None, &[], None).assert_error(401, "unauthorized");
    server.get("/v1/config/staging/api.timeout", "pct_guess").assert_error(401, "unauthorized");
    server.get("/v1/config/production/db.host", &viewer).assert_error(403, "forbidden");
    server.put("/v1/config/staging/db.host", &editor, r#"{"value": "x"}"#).assert_error(403, "forbidden");
    assert_eq!(server.put("/v1/config/staging/api.timeout", &editor, r#"{"value": 9}"#).status, 200);
    server.put("/v1/config/staging/api.rate_limit", &editor, r#"{"value": 5000}"#).assert_error(422, "invalid");
    // Allowed reads are not audited.
    assert_eq!(server.get("/v1/config/staging/api.timeout", &viewer).status, 200);
    server.get("/v1/audit", &viewer).assert_error(403, "forbidden");

    // Audit lines are committed in the background: wait for all of them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let entries = loop {
        let audit = server.get("/v1/audit?limit=50", &admin);
        assert_eq!(audit.status, 200, "{audit:?}");
        let entries = audit.json()["entries"].as_array().unwrap().clone();
        if entries.len() >= 7 || Instant::now() > deadline {
            break entries;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let summary: Vec<(String, String, String, u64)> = entries
        .iter()
        .rev()
        .map(|e| (e["actor"].as_str().unwrap().to_owned(), e["method"].as_str().unwrap().to_owned(), e["route"].as_str().unwrap().to_owned(), e["status"].as_u64().unwrap()))
        .collect();
    let expected = [
        ("anonymous", "GET", "/v1/config/staging/api.timeout", 401),
        ("unknown token", "GET", "/v1/config/staging/api.timeout", 401),
        ("viewer", "GET", "/v1/config/production/db.host", 403),
        ("editor", "PUT", "/v1/config/staging/db.host", 403),
        ("editor", "PUT", "/v1/config/staging/api.timeout", 200),
        ("editor", "PUT", "/v1/config/staging/api.rate_limit", 422),
        ("viewer", "GET", "/v1/audit", 403),
    ];
    let expected: Vec<(String, String, String, u64)> = expected.iter().map(|(a, m, r, s)| (a.to_string(), m.to_string(), r.to_string(), *s)).collect();
    assert_eq!(summary, expected);
    let denied = entries.iter().find(|e| e["actor"] == "viewer" && e["status"] == 403 && e["route"] != "/v1/audit").unwrap();
    assert_eq!(denied["env"], "production", "{denied}");
    assert_eq!(denied["key"], "db.host", "{denied}");
    assert!(denied["outcome"].as_str().unwrap().starts_with("denied: token `viewer`"), "{denied}");
    assert!(denied["timestamp"].as_str().unwrap().ends_with('Z'), "{denied}");
    let write = entries.iter().find(|e| e["status"] == 200).unwrap();
    assert_eq!((write["env"].as_str(), write["key"].as_str(), write["outcome"].as_str()), (Some("staging"), Some("api.timeout"), Some("allowed")), "{write}");
    // Filters.
    let only_denied = server.get("/v1/audit?denied=true", &admin).json();
    assert!(only_denied["entries"].as_array().unwrap().iter().all(|e| e["status"].as_u64().unwrap() >= 400), "{only_denied}");
    let by_editor = server.get("/v1/audit?actor=editor&limit=1", &admin).json();
    assert_eq!(by_editor["entries"].as_array().unwrap().len(), 1, "{by_editor}");
    server.get("/v1/audit?limit=ten", &admin).assert_error(400, "bad_query");
}

/// A self-signed certificate for `localhost` / 127.0.0.1, written as PEM files; returns its DER.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, rustls::pki_types::CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key, certified.cert.der().clone())
}

/// One HTTPS request over rustls that trusts only `certificate`; returns the raw response.
fn https_get(addr: &str, path: &str, token: Option<&str>, certificate: &rustls::pki_types::CertificateDer<'static>) -> std::io::Result<String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate.clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions().unwrap().with_root_certificates(roots).with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap().to_owned();
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let socket = TcpStream::connect(addr)?;
    socket.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut tls = rustls::StreamOwned::new(connection, socket);
    let authorization = token.map(|token| format!("Authorization: Bearer {token}\r\n")).unwrap_or_default();
    write!(tls, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{authorization}\r\n")?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // Servers may close without close_notify; what arrived is the response.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

#[test]
fn tls_serves_https_with_the_given_certificate_and_refuses_plain_http() {
    let fixture = Fixture::new();
    let viewer = fixture.token("viewer", "viewer", "staging", None);
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, der) = self_signed(certs.path());
    let root = fixture.tree.root();
    let state = fixture.tree.state();
    let mut child = Command::new(env!("CARGO_BIN_EXE_potter-config"))
        .args(["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
        .args(["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()])
        .env_clear()
        .envs(fixture.env())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the server prints its address").unwrap();
        if let Some(addr) = line.strip_prefix("listening on https://") {
            break addr.to_owned();
        }
    };
    let guard = Server { child, addr: addr.clone(), banner: Vec::new() };
    let health = https_get(&addr, "/v1/health", None, &der).unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains(r#""status":"ok""#), "{health}");
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = guard.call("GET", "/v1/health", None, &[], None);
    assert_ne!(plain.status, 200, "{plain:?}");
    assert!(!plain.body.contains("\"ok\""), "{plain:?}");
    // A client that does not trust the certificate refuses the connection.
    let stranger = self_signed(tempfile::tempdir().unwrap().path()).2;
    assert!(https_get(&addr, "/v1/health", None, &stranger).is_err());
    // Tokens work over HTTPS as over HTTP.
    let read = https_get(&addr, "/v1/config/staging/api.timeout", Some(&viewer), &der).unwrap();
    assert!(read.starts_with("HTTP/1.1 200") && read.contains(r#""value":30"#), "{read}");
    let refused = https_get(&addr, "/v1/config/production/api.timeout", Some(&viewer), &der).unwrap();
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    // Missing key file: the server refuses to start, naming the file.
    let missing = certs.path().join("missing.key");
    let refused = potter_with(
        &["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0", "--tls-cert", cert.to_str().unwrap(), "--tls-key", missing.to_str().unwrap()],
        &fixture.env(),
        None,
    );
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("missing.key"), "{}", stderr(&refused));
}

#[test]
fn a_prefix_scoped_token_sees_history_of_its_keys_in_service_views_too() {
    let fixture = Fixture::new();
    fixture.tree.write("services/api_service.json", r#"{"api": {"timeout": 40}}"#);
    let scoped = fixture.token("timeouts", "viewer", "staging", Some("api.timeout"));
    let admin = fixture.token("admin", "admin", "*", None);
    let server = fixture.serve();
    // Only the service's view changes: recorded as `api_service:api.timeout` in each environment.
    save(&fixture.tree, "services/api_service.json", r#"{"api": {"timeout": 41}}"#);
    let deadline = Instant::now() + Duration::from_secs(20);
    let records = loop {
        let records = server.get("/v1/history?env=staging", &scoped).json();
        if !records["records"].as_array().unwrap().is_empty() || Instant::now() > deadline {
            break records;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(records["records"][0]["keys"], json!(["api_service:api.timeout"]), "{records}");
    let version = records["records"][0]["version"].as_u64().unwrap();
    let record = server.get(&format!("/v1/history/{version}"), &scoped).json();
    assert_eq!(record["changes"], json!([{"key": "api_service:api.timeout", "before": 40, "after": 41}]), "{record}");
    // A change outside the prefix stays invisible to it.
    server.put("/v1/config/staging/api.rate_limit", &admin, r#"{"value": 7}"#);
    let records = server.get("/v1/history?env=staging", &scoped).json();
    assert_eq!(records["records"].as_array().unwrap().len(), 1, "{records}");
}

#[test]
fn a_change_stream_reports_only_the_refusals_within_its_environment_and_prefix() {
    let fixture = Fixture::new();
    let db_viewer = fixture.token("db-viewer", "viewer", "staging", Some("db"));
    let api_viewer = fixture.token("api-viewer", "viewer", "staging", Some("api"));
    let server = fixture.serve();
    let mut db_lines = open_stream(&server, "/v1/watch/staging", &db_viewer);
    let mut api_lines = open_stream(&server, "/v1/watch/staging", &api_viewer);
    assert_eq!(next_event(&mut db_lines, "ready")["prefix"], "db");
    next_event(&mut api_lines, "ready");
    // Refused: api.rate_limit over the maximum. The api stream hears of it, the db stream does not.
    save(&fixture.tree, "environments/staging.json", r#"{"api": {"rate_limit": 99999}}"#);
    let rejected = next_event(&mut api_lines, "rejected");
    let diagnostics = rejected["diagnostics"].as_array().unwrap();
    assert!(!diagnostics.is_empty() && diagnostics.iter().all(|d| d.as_str().unwrap().starts_with("staging")), "{rejected}");
    // The next event on the db stream is the next change under `db`, not the refusal.
    save(&fixture.tree, "environments/staging.json", r#"{"db": {"host": "db.staging"}}"#);
    let mut event = String::new();
    let first = loop {
        let line = db_lines.next().unwrap().unwrap();
        if let Some(name) = line.strip_prefix("event: ") {
            event = name.trim().to_owned();
        } else if let Some(data) = line.strip_prefix("data: ") {
            break (event.clone(), serde_json::from_str::<Value>(data).unwrap());
        }
    };
    assert_eq!(first.0, "changed", "{first:?}");
    assert_eq!(first.1["changes"][0]["key"], "db.host", "{first:?}");
}

/// What a refused request must leave alone: every environment's configuration and its history.
fn running_state(server: &Server, admin: &str) -> Vec<Value> {
    let environments = ["development", "staging", "production"];
    let mut state: Vec<Value> = environments.iter().map(|env| server.get(&format!("/v1/config/{env}"), admin).json()["config"].clone()).collect();
    state.extend(environments.iter().map(|env| server.get(&format!("/v1/history?env={env}"), admin).json()["records"].clone()));
    state
}

#[test]
fn history_is_scoped_by_the_recorded_key_itself_not_by_a_look_alike_view_qualifier() {
    use potter_history::{HistoryStore as _, NewChange, ChangeOrigin, StoredValue};
    let fixture = Fixture::new();
    // Records as an older binary could leave them: `zzz:api.leak` is a key of production's own
    // view (no view is called `zzz`), next to a key the viewer may read.
    let store = potter_history::SqliteStore::open_in_state_dir(fixture.tree.state()).unwrap();
    let own = store.append(NewChange::new("cli:alice", ChangeOrigin::Cli, "production").change("api.timeout", None, Some(StoredValue::Plain(json!(9))))).unwrap();
    let leak = store.append(NewChange::new("cli:alice", ChangeOrigin::Cli, "production").change("zzz:api.leak", None, Some(StoredValue::Plain(json!("LEAKED-VALUE"))))).unwrap();
    drop(store);
    let viewer = fixture.token("api-viewer", "viewer", "production", Some("api"));
    let server = fixture.serve();
    // Direct read: out of scope. History must say no more than that.
    server.get("/v1/config/production/zzz:api.leak", &viewer).assert_error(403, "forbidden");
    let listed = server.get("/v1/history?env=production", &viewer);
    assert_eq!(listed.status, 200, "{listed:?}");
    let versions: Vec<u64> = listed.json()["records"].as_array().unwrap().iter().map(|r| r["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, vec![own], "{listed:?}");
    assert!(!listed.body.contains("leak"), "{listed:?}");
    let shown = server.get(&format!("/v1/history/{leak}"), &viewer);
    shown.assert_error(403, "forbidden");
    assert!(!shown.body.contains("LEAKED-VALUE"), "{shown:?}");
    assert_eq!(server.get(&format!("/v1/history/{own}"), &viewer).json()["changes"], json!([{"key": "api.timeout", "before": null, "after": 9}]));
}

#[test]
fn a_key_whose_first_segment_holds_a_colon_is_refused_at_write_time_naming_it() {
    let fixture = Fixture::new();
    let admin = fixture.token("admin", "admin", "*", None);
    let server = Server::start_logged(&fixture, &[]);
    let before = running_state(&server, &admin);
    for (method, path, body) in [
        ("PUT", "/v1/config/production/zzz:api.leak", r#"{"value": 1}"#),
        ("PATCH", "/v1/config/production", r#"{"zzz:api": {"leak": 1}}"#),
        ("POST", "/v1/validate", r#"{"environment": "production", "changes": {"zzz:api.leak": 1}}"#),
    ] {
        let response = server.call(method, path, Some(admin.as_str()), &[], Some(body));
        response.assert_error(400, "bad_key");
        assert!(response.json()["error"]["message"].as_str().unwrap().contains("`zzz:api`"), "{method} {path}: {response:?}");
    }
    assert_eq!(running_state(&server, &admin), before);
    // The same key saved in a file: the history refuses to record it, naming the file and key;
    // the previous configuration stays live and nothing is recorded.
    save(&fixture.tree, "global.json", r#"{"api": {"timeout": 30, "rate_limit": 100}, "zzz:api": {"leak": 1}}"#);
    let mut log = BufReader::new(server_log(&server)).lines();
    let refusal = log.find(|line| line.as_ref().is_ok_and(|line| line.contains("reload rejected"))).expect("a logged refusal").unwrap();
    assert!(refusal.contains("global.json") && refusal.contains("zzz:api.leak"), "{refusal}");
    assert_eq!(running_state(&server, &admin), before);
}

/// The log (stderr) of a server started with [`Server::start_logged`].
fn server_log(server: &Server) -> std::fs::File {
    use std::os::fd::AsFd as _;
    let stderr = server.child.stderr.as_ref().expect("started with start_logged");
    std::fs::File::from(stderr.as_fd().try_clone_to_owned().unwrap())
}

#[test]
fn validation_answers_list_only_the_issues_of_the_tokens_environments_and_prefix() {
    let fixture = Fixture::new();
    // Staging's `cache` is described by no schema: a warning at environments/staging.json, outside
    // the editor's prefix. (Other environments' issues: the unit tests of `api::scope`.)
    fixture.tree.write("environments/staging.json", r#"{"cache": {"ttl": 5}}"#);
    let editor = fixture.token("api-editor", "editor", "staging", Some("api"));
    let admin = fixture.token("admin", "admin", "*", None);
    let server = fixture.serve();
    let before = running_state(&server, &admin);
    let dry_run = |token: &str| server.call("POST", "/v1/validate", Some(token), &[("X-Potter-Environment", "staging")], Some(r#"{"changes": {"api.rate_limit": 5000}}"#));
    // The admin sees every issue: the premise of this test.
    let full = dry_run(&admin);
    assert!(full.body.contains("environments/staging.json") && full.body.contains("cache"), "{full:?}");
    assert_eq!(full.json()["issues"]["withheld"], 0, "{full:?}");
    let scoped_answers = [
        ("POST /v1/validate", dry_run(&editor).json()["issues"].clone()),
        ("PUT", { let r = server.put("/v1/config/staging/api.rate_limit", &editor, r#"{"value": 5000}"#); r.assert_error(422, "invalid"); r.json()["error"]["issues"].clone() }),
        ("PATCH", { let r = server.call("PATCH", "/v1/config/staging", Some(editor.as_str()), &[], Some(r#"{"api": {"rate_limit": 5000}}"#)); r.assert_error(422, "invalid"); r.json()["error"]["issues"].clone() }),
    ];
    for (what, issues) in scoped_answers {
        let text = issues.to_string();
        assert!(text.contains("rate_limit") && text.contains("1000"), "{what}: {text}");
        assert!(!text.contains("cache") && !text.contains("environments/staging.json"), "{what}: {text}");
        let views = issues["views"].as_array().unwrap();
        assert!(!views.is_empty() && views.iter().all(|v| v["view"]["environment"] == "staging"), "{what}: {text}");
        assert!(issues["withheld"].as_u64().unwrap() > 0, "{what}: {text}");
    }
    assert_eq!(running_state(&server, &admin), before);
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let fixture = Fixture::new();
    let viewer = fixture.token("viewer", "viewer", "staging", None);
    let server = fixture.serve();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let response = server.call("GET", "/v1/config/staging/api.timeout", None, &[("Authorization", &format!("{scheme} {viewer}"))], None);
        assert_eq!(response.status, 200, "{scheme}: {response:?}");
        assert_eq!(response.json()["value"], 30);
    }
    for malformed in [format!("Basic {viewer}"), format!("Bearer{viewer}"), "bearer ".to_owned()] {
        server.call("GET", "/v1/config/staging/api.timeout", None, &[("Authorization", &malformed)], None).assert_error(401, "unauthorized");
    }
}

#[test]
fn a_fifo_in_the_tree_makes_a_write_a_422_naming_the_file_not_a_500() {
    let fixture = Fixture::new();
    let admin = fixture.token("admin", "admin", "*", None);
    let server = fixture.serve();
    let before = running_state(&server, &admin);
    let fifo = fixture.tree.root().join("users/x.json");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success());
    for (method, path, body) in [("PUT", "/v1/config/staging/api.timeout", r#"{"value": 7}"#), ("PATCH", "/v1/config/staging", r#"{"api": {"timeout": 7}}"#), ("DELETE", "/v1/config/staging/api.timeout", "")] {
        let response = server.call(method, path, Some(admin.as_str()), &[], Some(body));
        response.assert_error(422, "invalid_tree");
        assert_eq!(response.json()["error"]["file"], "users/x.json", "{method}: {response:?}");
        assert!(response.json()["error"]["message"].as_str().unwrap().contains("users/x.json"), "{response:?}");
    }
    // The server kept serving the configuration it had, and recorded nothing.
    std::fs::remove_file(&fifo).unwrap();
    assert_eq!(running_state(&server, &admin), before);
}

#[test]
fn the_server_logs_its_warnings_on_stderr_at_the_default_level_and_as_json_lines_on_request() {
    let fixture = Fixture::new();
    let viewer = fixture.token("staging-viewer", "viewer", "staging", None);
    for (extra, json_lines) in [(&[][..], false), (&["--log-format", "json"][..], true)] {
        let mut server = Server::start_logged(&fixture, extra);
        // Refused: a host warning (the denial is logged with the token's name).
        server.get("/v1/config/production/api.timeout", &viewer).assert_error(403, "forbidden");
        let _ = server.child.kill();
        let _ = server.child.wait();
        let mut log = String::new();
        server.child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
        let line = log.lines().find(|line| line.contains("denied")).unwrap_or_else(|| panic!("no denial logged: {log}"));
        assert!(line.contains("staging-viewer") && line.contains("WARN"), "{line}");
        if json_lines {
            for line in log.lines() {
                let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                assert!(event["level"].is_string() && event["fields"].is_object(), "{line}");
            }
        }
    }
}

/// Each sample of a Prometheus text (OpenMetrics) exposition, as `name{labels}` → value; panics
/// naming the line unless every line is a sample or a `# HELP`/`# TYPE`/`# UNIT` line and the
/// text ends with `# EOF`.
fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    let valid_name = |name: &str| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') && !name.starts_with(|c: char| c.is_ascii_digit());
    assert_eq!(text.lines().last(), Some("# EOF"), "{text}");
    let mut samples = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let kind = words.next().unwrap();
            assert!(kind == "EOF" || (matches!(kind, "HELP" | "TYPE" | "UNIT") && words.next().is_some_and(valid_name)), "bad comment line: {line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(valid_name(name), "bad metric name: {line}");
        if let Some(labels) = series.strip_prefix(name).filter(|rest| !rest.is_empty()) {
            let labels = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}')).unwrap_or_else(|| panic!("bad labels: {line}"));
            for pair in labels.split("\",").filter(|pair| !pair.is_empty()) {
                let (label, quoted) = pair.split_once("=\"").unwrap_or_else(|| panic!("bad label: {line}"));
                assert!(valid_name(label) && !quoted.trim_end_matches('"').contains('"'), "bad label: {line}");
            }
        }
        assert!(samples.insert(series.to_owned(), value).is_none(), "a series twice: {line}");
    }
    samples
}

#[test]
fn metrics_need_a_metrics_or_admin_token_and_count_requests_streams_and_changes() {
    let fixture = Fixture::new();
    let admin = fixture.token("admin", "admin", "*", None);
    let scraper = fixture.token("scraper", "metrics", "*", None);
    let viewer = fixture.token("viewer", "viewer", "*", None);
    let server = fixture.serve();
    server.call("GET", "/metrics", None, &[], None).assert_error(401, "unauthorized");
    server.call("GET", "/metrics", Some("pct_not-a-real-token"), &[], None).assert_error(401, "unauthorized");
    server.get("/metrics", &viewer).assert_error(403, "forbidden");
    // A scraper's token opens nothing but the metrics.
    for path in ["/v1/config/staging", "/v1/environments", "/v1/history?env=staging", "/v1/plugins"] {
        server.get(path, &scraper).assert_error(403, "forbidden");
    }
    let scrape = |token: &str| {
        let response = server.get("/metrics", token);
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.header("content-type"), Some("application/openmetrics-text; version=1.0.0; charset=utf-8"));
        parse_metrics(&response.body)
    };
    let scraped = r#"potter_http_requests_total{method="GET",route="/metrics",status="200"}"#;
    let first = scrape(&scraper);
    let second = scrape(&admin);
    // A scrape is counted once answered: the first one shows in the second.
    assert_eq!(first.get(scraped), None, "{first:?}");
    assert_eq!(second[scraped], 1.0, "{second:?}");
    assert_eq!(scrape(&scraper)[scraped], 2.0);
    assert_eq!(second[r#"potter_http_requests_total{method="GET",route="/metrics",status="403"}"#], 1.0, "{second:?}");
    assert_eq!(second[r#"potter_http_requests_total{method="GET",route="/v1/config/{env}",status="403"}"#], 1.0, "{second:?}");
    assert!(second[r#"potter_http_request_duration_seconds_count{method="GET",route="/metrics",status="200"}"#] >= 1.0, "{second:?}");
    assert_eq!(second[r#"potter_watch_clients"#], 0.0, "{second:?}");
    let version = second["potter_config_version"];

    // One change applied through the API and one refused; one change stream open.
    assert_eq!(server.put("/v1/config/staging/api.timeout", &admin, r#"{"value": 5}"#).status, 200);
    server.put("/v1/config/staging/api.rate_limit", &admin, r#"{"value": 5000}"#).assert_error(422, "invalid");
    let mut lines = open_stream(&server, "/v1/watch/staging", &viewer);
    next_event(&mut lines, "ready");
    // The change counters follow the host's outcome stream on their own task: wait for them.
    let deadline = Instant::now() + Duration::from_secs(20);
    let counted = loop {
        let now = scrape(&scraper);
        if now.get(r#"potter_changes_applied_total{origin="api"}"#) == Some(&1.0) && now.get(r#"potter_changes_refused_total{origin="api",cause="validation"}"#) == Some(&1.0) {
            break now;
        }
        assert!(Instant::now() < deadline, "the change counters never showed the two changes: {now:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(counted["potter_config_version"], version + 1.0, "{counted:?}");
    assert_eq!(counted["potter_watch_clients"], 1.0, "{counted:?}");
    // The applied change was recorded in the history: its commit was timed.
    assert!(counted["potter_history_commit_duration_seconds_count"] >= 1.0, "{counted:?}");
    assert_eq!(counted[r#"potter_http_requests_total{method="PUT",route="/v1/config/{env}/{*key}",status="422"}"#], 1.0, "{counted:?}");
    drop(lines);
    let deadline = Instant::now() + Duration::from_secs(20);
    while scrape(&scraper)["potter_watch_clients"] != 0.0 {
        assert!(Instant::now() < deadline, "a closed change stream stayed counted");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `POST /v1/overrides/{env}/release`: the write scope of `DELETE` on every key, one version for
/// every key, a key without an override refused (naming it) with nothing recorded, audited.
#[test]
fn releasing_overrides_needs_write_scope_is_one_version_and_is_audited() {
    let fixture = Fixture::new();
    let admin = fixture.token("admin", "admin", "*", None);
    let viewer = fixture.token("viewer", "viewer", "staging", None);
    let editor = fixture.token("editor", "editor", "staging", None);
    let db_editor = fixture.token("db-editor", "editor", "staging", Some("db"));
    let server = fixture.serve();
    server.put("/v1/config/staging/api.timeout", &editor, r#"{"value": 11}"#);
    let pinned = server.put("/v1/config/staging/api.rate_limit", &editor, r#"{"value": 500}"#).json()["version"].as_u64().unwrap();
    assert_eq!(server.get("/v1/explain/staging/api.timeout", &viewer).json()["runtime_override"], "api.timeout");
    let release = |token: &str, body: &str| server.call("POST", "/v1/overrides/staging/release", Some(token), &[], Some(body));
    let both = r#"{"keys": ["api.timeout", "api.rate_limit"], "reason": "back to the files"}"#;

    release(&viewer, both).assert_error(403, "forbidden");
    release(&db_editor, both).assert_error(403, "forbidden");
    server.call("POST", "/v1/overrides/production/release", Some(&editor), &[], Some(both)).assert_error(403, "forbidden");
    let unknown = release(&editor, r#"{"keys": ["api.timeout", "api.retries"]}"#);
    unknown.assert_error(404, "no_override");
    assert!(unknown.json()["error"]["message"].as_str().unwrap().contains("`api.retries` has no runtime override in `staging`"), "{unknown:?}");
    release(&editor, r#"{"keys": []}"#).assert_error(400, "empty_release");
    release(&editor, r#"{"keys": ["api..timeout"]}"#).assert_error(400, "bad_key");
    assert_eq!(server.get("/v1/history?env=staging&limit=1", &admin).json()["records"][0]["version"], pinned, "nothing recorded");

    let released = release(&editor, both);
    assert_eq!(released.status, 200, "{released:?}");
    let body = released.json();
    assert_eq!(body, json!({"environment": "staging", "keys": ["api.timeout", "api.rate_limit"], "version": pinned + 1}));
    assert_eq!(released.header("etag"), Some(format!("\"{}\"", pinned + 1).as_str()));
    assert_eq!(server.get("/v1/config/staging/api.timeout", &viewer).json()["value"], 30);
    assert_eq!(server.get("/v1/config/staging/api.rate_limit", &viewer).json()["value"], 100);
    assert_eq!(server.get("/v1/explain/staging/api.timeout", &viewer).json()["runtime_override"], Value::Null);
    let record = server.get(&format!("/v1/history/{}", pinned + 1), &admin).json();
    assert_eq!((record["actor"].clone(), record["origin"].clone(), record["reason"].clone()), (json!("token:editor"), json!("api"), json!("back to the files")), "{record}");

    // Audit lines are committed in the background: wait for the release's.
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let entries = server.get("/v1/audit?limit=100", &admin).json()["entries"].as_array().unwrap().clone();
        let lines: Vec<Value> = entries.into_iter().filter(|e| e["route"].as_str().is_some_and(|route| route.starts_with("/v1/overrides/"))).collect();
        if lines.iter().any(|e| e["status"] == 200) || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let allowed = lines.iter().find(|e| e["status"] == 200).unwrap_or_else(|| panic!("no allowed release audited: {lines:?}"));
    assert_eq!((allowed["actor"].as_str(), allowed["method"].as_str(), allowed["env"].as_str(), allowed["key"].as_str(), allowed["outcome"].as_str()), (Some("editor"), Some("POST"), Some("staging"), Some("api.timeout,api.rate_limit"), Some("allowed")), "{allowed}");
    let denied = lines.iter().find(|e| e["actor"] == "viewer").unwrap_or_else(|| panic!("the viewer's refusal is not audited: {lines:?}"));
    assert_eq!((denied["status"].as_u64(), denied["env"].as_str()), (Some(403), Some("staging")), "{denied}");
    assert!(lines.iter().any(|e| e["status"] == 404), "the refused release is audited: {lines:?}");
}

/// The rollback answer lists what it pins and what it releases.
#[test]
fn a_rollback_answer_lists_its_pins_and_releases() {
    let fixture = Fixture::new();
    let admin = fixture.token("admin", "admin", "*", None);
    let server = fixture.serve();
    let first = server.put("/v1/config/staging/api.timeout", &admin, r#"{"value": 11}"#).json()["version"].as_u64().unwrap();
    server.put("/v1/config/staging/api.rate_limit", &admin, r#"{"value": 500}"#);
    let rolled = server.call("POST", "/v1/rollback", Some(&admin), &[], Some(&format!(r#"{{"env": "staging", "version": {first}}}"#))).json();
    assert_eq!((rolled["pinned"].clone(), rolled["released"].clone()), (json!(["api.timeout"]), json!(["api.rate_limit"])), "{rolled}");
    assert_eq!(server.get("/v1/explain/staging/api.timeout", &admin).json()["runtime_override"], "api.timeout");
    assert_eq!(server.get("/v1/explain/staging/api.rate_limit", &admin).json()["runtime_override"], Value::Null);
}
