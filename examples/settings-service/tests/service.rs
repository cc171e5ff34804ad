//! The example service as a process, over real loopback HTTP, against a copy of its sample tree in
//! a temporary folder: it serves its typed settings per environment, follows a saved file (the
//! typed pair on its change stream), keeps its value when a save does not fit the type (naming
//! file:line:col), refuses to start on an invalid view naming each issue, and drains on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_settings-service");

/// A copy of `examples/settings-service/config` in a temporary folder.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn sample() -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config"), &dir.path().join("config"));
        Self { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn save(&self, relative: &str, text: &str) {
        std::fs::write(self.root().join(relative), text).unwrap();
    }

    fn command(&self, extra: &[&str]) -> Command {
        let mut command = Command::new(BINARY);
        command
            .args(["--root", self.root().to_str().unwrap(), "--state-dir", self.dir.path().join("state").to_str().unwrap()])
            .args(["--environments", "production,staging", "--default", "production", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "info");
        command
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The running service; killed when dropped.
struct Service {
    child: Child,
    address: String,
}

impl Service {
    fn start(tree: &Tree, extra: &[&str]) -> Self {
        let mut child = tree.command(extra).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let address = line.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("unexpected first line {line:?}")).to_owned();
        Self { child, address }
    }

    /// One GET over a fresh connection: (status, body).
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.address);
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    }

    fn json(&self, path: &str, headers: &[(&str, &str)]) -> Value {
        let (status, body) = self.get(path, headers);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Polls `path` until `done` holds (the watcher reloads within milliseconds of a save; the
    /// limit only keeps a broken build from hanging).
    fn wait_for(&self, path: &str, headers: &[(&str, &str)], done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let value = self.json(path, headers);
            if done(&value) {
                return value;
            }
            assert!(Instant::now() < deadline, "{path} never satisfied the condition; last: {value}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serves_its_typed_settings_per_environment_and_follows_a_saved_file() {
    let tree = Tree::sample();
    let service = Service::start(&tree, &[]);

    let production = service.json("/settings.json", &[]);
    assert_eq!(production["environment"], "production");
    assert_eq!(production["chosen_by"], "default");
    assert_eq!(production["api"]["rate_limit"], 500);
    assert_eq!(production["api"]["greeting"], "Hello from Potter");
    let staging = service.json("/settings.json", &[("X-Environment", "staging")]);
    assert_eq!(staging["chosen_by"], "header");
    assert_eq!(staging["api"]["rate_limit"], 100);
    assert_eq!(staging["features"]["new_checkout"], true);
    // `development` is in the tree, but this service was not started for it.
    let (status, body) = service.get("/settings.json", &[("X-Environment", "development")]);
    assert_eq!(status, 400);
    assert!(body.contains("environment `development` is not served here (served: production, staging)"), "{body}");

    let (status, page) = service.get("/settings", &[("X-Environment", "staging")]);
    assert_eq!(status, 200);
    assert!(page.contains("<h1>Settings of staging</h1>") && page.contains("<tr><th>api.greeting</th><td>Hello from staging</td></tr>"), "{page}");
    assert_eq!(service.get("/", &[]).1, "Hello from Potter\n");

    // A saved file: the typed settings change, and the change stream yielded the typed pair.
    tree.save("environments/production.json", "{ \"api\": { \"rate_limit\": 750, \"greeting\": \"Hello again\" } }\n");
    let changed = service.wait_for("/settings.json", &[], |settings| settings["api"]["rate_limit"] == 750);
    assert_eq!(changed["api"]["greeting"], "Hello again");
    assert_eq!(service.get("/", &[]).1, "Hello again\n");
    let changes = service.wait_for("/changes.json", &[], |changes| !changes.as_array().unwrap().is_empty());
    let change = &changes[0];
    assert_eq!(change["environment"], "production");
    assert_eq!(change["prefix"], "api");
    assert_eq!(change["kind"], "changed");
    assert_eq!(change["old"]["rate_limit"], 500);
    assert_eq!(change["new"]["rate_limit"], 750);
    assert_eq!(change["old"]["greeting"], "Hello from Potter");
    assert_eq!(change["new"]["greeting"], "Hello again");
    // Staging's settings did not change, so its stream said nothing.
    assert!(changes.as_array().unwrap().iter().all(|change| change["environment"] == "production"), "{changes}");
    assert_eq!(service.json("/healthz", &[])["status"], "ok");
}

#[test]
fn a_save_that_does_not_fit_the_type_keeps_the_old_value_and_names_the_place() {
    let tree = Tree::sample();
    let service = Service::start(&tree, &[]);

    // The schema leaves `features` free-form, so the configuration is valid and goes live, but
    // `banner` is no string: the typed settings refuse it and keep their value.
    // (Staging's api settings are kept as they were, so only `features` changes.)
    tree.save("environments/staging.json", "{\n  \"features\": {\n    \"new_checkout\": false,\n    \"banner\": 42\n  },\n  \"api\": { \"greeting\": \"Hello from staging\" }\n}\n");
    let changes = service.wait_for("/changes.json", &[], |changes| !changes.as_array().unwrap().is_empty());
    assert_eq!(changes.as_array().unwrap().len(), 1, "{changes}");
    let refusal = &changes[0];
    assert_eq!(refusal["environment"], "staging");
    assert_eq!(refusal["prefix"], "features");
    assert_eq!(refusal["kind"], "refused");
    let message = refusal["message"].as_str().unwrap();
    assert!(message.contains("features.banner") && message.contains("environments/staging.json:4:15") && message.contains("invalid type"), "{message}");
    let staging = service.json("/settings.json", &[("X-Environment", "staging")]);
    assert_eq!(staging["features"]["new_checkout"], true, "the old value stays");

    let health = service.json("/healthz", &[]);
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["refused_settings"][0]["prefix"], "features");

    // A save the schema refuses never goes live: the settings stay, the health names the refusal.
    tree.save("environments/production.json", "{ \"api\": { \"rate_limit\": 0 } }\n");
    let health = service.wait_for("/healthz", &[], |health| health["refusal_outstanding"] == true);
    let diagnostics = health["last_refusal"]["diagnostics"].to_string();
    assert!(diagnostics.contains("environments/production.json") && diagnostics.contains("api.rate_limit"), "{diagnostics}");
    assert_eq!(service.json("/settings.json", &[])["api"]["rate_limit"], 500);
}

#[test]
fn refuses_to_start_on_an_invalid_view_naming_each_issue() {
    let tree = Tree::sample();
    tree.save("environments/production.json", "{\n  \"api\": {\n    \"rate_limit\": 0\n  }\n}\n");
    tree.save("environments/staging.json", "{\n  \"api\": {\n    \"timeout_ms\": \"soon\"\n  }\n}\n");
    let output = tree.command(&[]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty(), "it never listened");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("environments/production.json:3:19"), "{stderr}");
    assert!(stderr.contains("environments/staging.json:3:19"), "{stderr}");
    assert!(stderr.contains("api.rate_limit") && stderr.contains("api.timeout_ms"), "{stderr}");
}

#[test]
fn refuses_to_start_when_its_settings_do_not_fit_their_types() {
    let tree = Tree::sample();
    tree.save("environments/staging.json", "{\n  \"features\": { \"banner\": [1] }\n}\n");
    let output = tree.command(&[]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("staging: key `features`: `features.banner` at environments/staging.json:2:27"), "{stderr}");
}

#[test]
fn reports_unhealthy_while_draining_after_sigterm() {
    let tree = Tree::sample();
    let mut service = Service::start(&tree, &["--drain-ms", "3000"]);
    assert_eq!(service.get("/healthz", &[]).0, 200);
    let killed = Command::new("kill").args(["-TERM", &service.child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        let (status, body) = service.get("/healthz", &[]);
        if status != 200 || Instant::now() > deadline {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status, 503, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(health["unhealthy"]["reason"], "shutting down");
    let exit = service.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}
