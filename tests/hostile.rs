//! The hostile-plugin suite: plugins built from source (`tests/plugins/`) that spin, sleep,
//! poll, eat memory and stack, trap, flood their output, reach for capabilities they were not
//! granted, import what the host does not provide, or (as sources) try to leave their directory,
//! their prefixes or their namespace; and plugins `plugin sign` would refuse (a grant of the tool's
//! own variables, limits above the maxima), signed by other means, and plugin files that are not
//! regular files (a link to a device, a FIFO, a link to a FIFO).
//!
//! Every case (one row of [`CASES`]) is checked twice, with the real binary:
//! - **at start-up**: `validate` and `serve` with the plugin in the folder — refused, naming the
//!   plugin, or contained (the host opens and what the plugin could reach is empty);
//! - **dropped into a running `serve`** (127.0.0.1, a free port, temporary directories): health
//!   and one read polled every 200 ms throughout, the plugin dropped in and judged, writes (one
//!   accepted, one refused by the other plugin of the folder, `production-safety`), the plugin
//!   removed, then SIGTERM. The host must have answered every poll, exited within 2 s of SIGTERM
//!   and kept its memory (VmRSS) bounded.
//!
//! To add a case, add a row: the guest, its manifest changes, how its files are installed, files
//! of the tree it needs, what must happen.

use crate::common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::wasm::{built_plugins, PluginTree, Signing};
use common::{demo_keys, Tree};
use serde_json::{json, Value};

/// What the host must make of a case.
#[derive(Clone, Copy)]
enum Expect {
    /// Refused, with an error naming the plugin and containing this text: start-up fails, and
    /// dropped into a running server it is listed as refused while the host goes on.
    Refused(&'static str),
    /// Loaded, and what it could reach is empty or refused.
    Contained(Contained),
}

/// How a contained case shows that nothing was reached.
#[derive(Clone, Copy)]
enum Contained {
    /// These keys read as these JSON values in production.
    Reads(&'static [(&'static str, &'static str)]),
    /// Nothing beyond loading and the host's own bounds (memory, log).
    Loads,
}

/// How a case's three files are put into the plugins folder (prepared aside, renamed in).
#[derive(Clone, Copy)]
enum Install {
    /// Signed by `plugin sign`.
    Signed,
    /// Signed without `sign`'s checks, which refuse the manifest: signed by some other tool.
    Forged,
    /// Signed, then this file replaced by something that is not a regular file.
    Replaced(PluginFile, NotRegular),
}

#[derive(Clone, Copy)]
enum PluginFile {
    Module,
    Manifest,
    Signature,
}

#[derive(Clone, Copy)]
enum NotRegular {
    /// A symbolic link to this device.
    LinkTo(&'static str),
    /// A FIFO (opening it for reading would wait for a writer for ever).
    Fifo,
    /// A symbolic link to a FIFO outside the plugins folder.
    LinkToFifo,
}

impl NotRegular {
    fn make(self, path: &std::path::Path) {
        match self {
            NotRegular::LinkTo(device) => std::os::unix::fs::symlink(device, path).unwrap(),
            NotRegular::Fifo => mkfifo(path),
            NotRegular::LinkToFifo => {
                let fifo = path.with_extension("fifo");
                mkfifo(&fifo);
                std::os::unix::fs::symlink(&fifo, path).unwrap();
            }
        }
    }
}

fn mkfifo(path: &std::path::Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

struct Case {
    /// The plugin's name in the folder.
    name: &'static str,
    /// The guest built into `target/plugins/`.
    guest: &'static str,
    /// Changes to the built manifest (after its name is set to `name`).
    manifest: fn(String) -> String,
    install: Install,
    /// Files of the configuration tree the case needs (a source's directory).
    files: &'static [(&'static str, &'static str)],
    expect: Expect,
}

fn as_built(manifest: String) -> String {
    manifest
}

/// One row per hostile behaviour.
const CASES: &[Case] = &[
    Case { name: "busy-loop", guest: "infinite-loop", manifest: as_built, install: Install::Signed, files: &[], expect: Expect::Refused("validate: timed out (limit 100 ms)") },
    Case { name: "blocking-sleep", guest: "sleeps", manifest: as_built, install: Install::Signed, files: &[], expect: Expect::Refused("validate: timed out (limit 100 ms)") },
    Case { name: "clock-poll", guest: "polls-clock", manifest: as_built, install: Install::Signed, files: &[], expect: Expect::Refused("validate: timed out (limit 100 ms)") },
    Case { name: "memory-bomb", guest: "memory-bomb", manifest: as_built, install: Install::Signed, files: &[], expect: Expect::Refused("validate: exceeded its memory limit of 64 MiB") },
    Case { name: "deep-recursion", guest: "deep-recursion", manifest: as_built, install: Install::Signed, files: &[], expect: Expect::Refused("validate: trapped: wasm trap: call stack exhausted") },
    Case { name: "trap", guest: "panics", manifest: as_built, install: Install::Signed, files: &[], expect: Expect::Refused("validate: trapped: wasm trap: wasm `unreachable` instruction executed") },
    Case { name: "output-flood", guest: "floods-output", manifest: as_built, install: Install::Signed, files: &[], expect: Expect::Contained(Contained::Loads) },
    Case {
        name: "ungranted-wasi",
        guest: "ungranted-wasi",
        manifest: as_built,
        install: Install::Signed,
        files: &[],
        expect: Expect::Contained(Contained::Reads(&[
            ("probe.file", r#""denied""#),
            ("probe.dir", r#""denied""#),
            ("probe.env", "0"),
            ("probe.keyring", r#""absent""#),
            ("probe.tcp", r#""denied""#),
            ("probe.dns", r#""denied""#),
        ])),
    },
    Case { name: "unknown-import", guest: "unknown-import", manifest: as_built, install: Install::Signed, files: &[], expect: Expect::Refused("imports `acme:exfiltrate/send@0.1.0`, not granted (the host does not provide this interface to plugins)") },
    Case { name: "http-request", guest: "fetches", manifest: as_built, install: Install::Signed, files: &[], expect: Expect::Refused("imports `wasi:http/handler@0.3.0-rc-2025-09-16`, not granted (network access is never granted to plugins)") },
    Case {
        name: "source-escape",
        guest: "source-escape",
        manifest: as_built,
        install: Install::Signed,
        files: &[("escape/inside.txt", "inside"), ("secret.txt", "outside the granted directory")],
        expect: Expect::Contained(Contained::Reads(&[("escape.parent", "false"), ("escape.root", "false"), ("escape.relative", "false"), ("escape.listed_root", "false")])),
    },
    Case {
        name: "source-outside-prefix",
        guest: "source-scripted",
        manifest: as_built,
        install: Install::Signed,
        files: &[("scripted/output.json", r#"{"remote": {"ok": 1}, "api": {"timeout": 1}}"#)],
        expect: Expect::Refused("load: key `api` is outside the plugin's prefixes (remote)"),
    },
    // A prefix reaching into `plugins.<other>` is refused by `sign` itself (and at load): what
    // is left to try is `namespace-config()`, which must give only the plugin's own namespace.
    Case {
        name: "source-other-namespace",
        guest: "namespace-thief",
        manifest: as_built,
        install: Install::Signed,
        files: &[],
        expect: Expect::Contained(Contained::Reads(&[("stolen.seen", r#""{\"mine\":1}""#)])),
    },
    // `plugin sign` refuses these manifests; signed by other means, the load refuses them again.
    Case {
        name: "grant-keyring",
        guest: "reads-env",
        manifest: |m| format!("{m}\n[grants]\nenv = [\"POTTER_SECRET_KEY_PRODUCTION\"]\n"),
        install: Install::Forged,
        files: &[],
        expect: Expect::Refused("refused: grants.env `POTTER_SECRET_KEY_PRODUCTION` is never granted: it holds an environment's keyring"),
    },
    Case {
        name: "grant-token",
        guest: "reads-env",
        manifest: |m| format!("{m}\n[grants]\nenv = [\"POTTER_TOKEN\"]\n"),
        install: Install::Forged,
        files: &[],
        expect: Expect::Refused("refused: grants.env `POTTER_TOKEN` is never granted: it holds the tool's API token"),
    },
    // Grants name variables exactly (`*` is just a character of a name); the prefix itself, a
    // pattern, any name under the prefix is refused.
    Case {
        name: "grant-prefix",
        guest: "reads-env",
        manifest: |m| format!("{m}\n[grants]\nenv = [\"HOME\", \"POTTER_\"]\n"),
        install: Install::Forged,
        files: &[],
        expect: Expect::Refused("refused: grants.env `POTTER_` is never granted: it is under the tool's own variable prefix `POTTER_`"),
    },
    Case {
        name: "grant-pattern",
        guest: "reads-env",
        manifest: |m| format!("{m}\n[grants]\nenv = [\"POTTER_SECRET_KEY_*\"]\n"),
        install: Install::Forged,
        files: &[],
        expect: Expect::Refused("refused: grants.env `POTTER_SECRET_KEY_*` is never granted: it holds an environment's keyring"),
    },
    Case {
        name: "limits-above-maxima",
        guest: "reads-env",
        manifest: |m| format!("{m}\n[limits]\nmemory_mib = 4096\ntimeout_ms = 600000\n"),
        install: Install::Forged,
        files: &[],
        expect: Expect::Refused("limits.memory_mib = 4096 exceeds the host maximum of 512"),
    },
    Case {
        name: "manifest-dev-zero",
        guest: "reads-env",
        manifest: as_built,
        install: Install::Replaced(PluginFile::Manifest, NotRegular::LinkTo("/dev/zero")),
        files: &[],
        expect: Expect::Refused("manifest-dev-zero.plugin.toml is a character device, not a regular file"),
    },
    Case {
        name: "module-dev-null",
        guest: "reads-env",
        manifest: as_built,
        install: Install::Replaced(PluginFile::Module, NotRegular::LinkTo("/dev/null")),
        files: &[],
        expect: Expect::Refused("module-dev-null.wasm is a character device, not a regular file"),
    },
    Case {
        name: "module-dev-zero",
        guest: "reads-env",
        manifest: as_built,
        install: Install::Replaced(PluginFile::Module, NotRegular::LinkTo("/dev/zero")),
        files: &[],
        expect: Expect::Refused("module-dev-zero.wasm is a character device, not a regular file"),
    },
    Case {
        name: "manifest-fifo",
        guest: "reads-env",
        manifest: as_built,
        install: Install::Replaced(PluginFile::Manifest, NotRegular::Fifo),
        files: &[],
        expect: Expect::Refused("manifest-fifo.plugin.toml is a FIFO, not a regular file"),
    },
    Case {
        name: "signature-fifo",
        guest: "reads-env",
        manifest: as_built,
        install: Install::Replaced(PluginFile::Signature, NotRegular::Fifo),
        files: &[],
        expect: Expect::Refused("signature-fifo.wasm.sig is a FIFO, not a regular file"),
    },
    Case {
        name: "module-fifo-link",
        guest: "reads-env",
        manifest: as_built,
        install: Install::Replaced(PluginFile::Module, NotRegular::LinkToFifo),
        files: &[],
        expect: Expect::Refused("module-fifo-link.wasm is a FIFO, not a regular file"),
    },
];

/// Cases run at once (each with its own server and directories).
const PARALLEL_CASES: usize = 3;
/// Longest wait for a dropped-in plugin to be judged, or a removed one to leave.
const JUDGED_WITHIN: Duration = Duration::from_secs(20);
/// How often health and a read are polled.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// Slowest answer to a poll still counted as serving (a loaded machine runs many tests at once).
const POLL_ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// SIGTERM to exit.
const EXIT_WITHIN: Duration = Duration::from_secs(2);
/// The server's resident memory must stay below this (a plugin's memory is capped at 64 MiB).
const RSS_BOUND_KIB: u64 = 512 * 1024;
/// What the server may write to its log over a case (the flood is 150 MB).
const LOG_BOUND_BYTES: u64 = 8 * 1024 * 1024;

#[test]
fn every_hostile_plugin_is_refused_or_contained() {
    built_plugins();
    let next = Mutex::new(CASES.iter());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_CASES {
            scope.spawn(|| loop {
                let Some(case) = next.lock().unwrap().next() else { break };
                let checked = std::panic::catch_unwind(|| {
                    check_at_start_up(case);
                    check_dropped_into_a_running_server(case);
                });
                if let Err(panic) = checked {
                    let message = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                    failures.lock().unwrap().push(format!("{}: {message}", case.name));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} of {} cases not contained:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}

/// A blocked call holds a reload (and so the writer lock) for its whole limit; shutdown must not
/// wait for it, and listing plugins must not either.
#[test]
fn serve_stops_within_2_s_of_sigterm_while_a_plugin_is_blocked_in_a_call() {
    built_plugins();
    let site = Site::new(&[]);
    let server = Server::start(&site);
    let started = Instant::now();
    site.tree.install_as("sleeps", "sleeps-long", |manifest| format!("{manifest}\n[limits]\ntimeout_ms = 10000\n"));
    // The reload is compiling it, then inside its first call, which ends only at 10 s.
    std::thread::sleep(Duration::from_secs(3));
    for path in ["/v1/health", "/v1/plugins", "/v1/config/production/api.timeout"] {
        let asked = Instant::now();
        let (status, body) = server.call("GET", path, None).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(status, 200, "{path}: {body}");
        assert!(asked.elapsed() < POLL_ANSWER_WITHIN, "{path} took {:?} while a plugin was blocked", asked.elapsed());
        if path == "/v1/plugins" {
            assert!(!body.contains("sleeps-long"), "the reload with the blocked plugin was still running: {body}");
        }
    }
    assert!(started.elapsed() < Duration::from_secs(9), "too slow to be inside the call: {:?}", started.elapsed());
    let stopped = server.terminate();
    assert!(stopped < EXIT_WITHIN, "exited {stopped:?} after SIGTERM");
}

/// `validate` and `serve` with the plugin in the folder from the start.
fn check_at_start_up(case: &Case) {
    let site = Site::new(case.files);
    site.install(case);
    let validate = site.cli(&["validate"]);
    let said = format!("{}{}", String::from_utf8_lossy(&validate.stdout), String::from_utf8_lossy(&validate.stderr));
    match case.expect {
        Expect::Refused(reason) => {
            assert!(!validate.status.success(), "validate accepted it: {said}");
            assert!(said.contains(&format!("plugin {}: ", case.name)) && said.contains(reason), "validate: {said}");
            let serve = site.serve_command().stdout(Stdio::null()).stderr(Stdio::piped()).output().unwrap();
            let said = String::from_utf8_lossy(&serve.stderr);
            assert!(!serve.status.success(), "serve started with it");
            assert!(said.contains(&format!("plugin {}: ", case.name)) && said.contains(reason), "serve: {said}");
        }
        Expect::Contained(contained) => {
            assert!(validate.status.success(), "validate: {said}");
            if let Contained::Reads(keys) = contained {
                for (key, value) in keys {
                    let read = site.cli(&["--env", "production", "get", key]);
                    // `get` prints a string as it is, anything else as JSON.
                    let shown = match serde_json::from_str::<Value>(value).unwrap() {
                        Value::String(text) => text,
                        other => other.to_string(),
                    };
                    assert_eq!(String::from_utf8_lossy(&read.stdout).trim(), shown, "{key}: {}", String::from_utf8_lossy(&read.stderr));
                }
            }
            let server = Server::start(&site);
            let stopped = server.terminate();
            assert!(stopped < EXIT_WITHIN, "exited {stopped:?} after SIGTERM");
        }
    }
}

/// The plugin dropped into a serving host, judged, written around, removed; then SIGTERM.
fn check_dropped_into_a_running_server(case: &Case) {
    let site = Site::new(case.files);
    let server = Arc::new(Server::start(&site));
    let watch = Watch::start(server.clone());
    site.install(case);
    let entry = server.wait_for_plugin(case.name, |entry| entry.is_some_and(|e| e["status"] == "loaded" || e["status"] == "refused"));
    let entry = entry.unwrap_or_default();
    match case.expect {
        Expect::Refused(reason) => {
            assert_eq!(entry["status"], "refused", "{entry}");
            let error = entry["last_error"].as_str().unwrap_or_default();
            assert!(error.starts_with(&format!("plugin {}: ", case.name)) && error.contains(reason), "{error}");
            server.assert_failed_call_counted(case.name, reason);
        }
        Expect::Contained(contained) => {
            assert_eq!(entry["status"], "loaded", "{entry}");
            server.assert_contained(contained);
        }
    }
    server.assert_writes_work();
    site.tree.remove(case.name);
    let gone = server.wait_for_plugin(case.name, |entry| entry.is_none());
    assert!(gone.is_none(), "still listed after removal: {gone:?}");
    let watched = watch.stop();
    let log_bytes = fs::metadata(&server.log).map(|m| m.len()).unwrap_or(0);
    let stopped = Arc::into_inner(server).expect("the watch released the server").terminate();
    assert!(stopped < EXIT_WITHIN, "exited {stopped:?} after SIGTERM");
    watched.assert_served();
    assert!(log_bytes < LOG_BOUND_BYTES, "the server logged {log_bytes} bytes");
}

/// A configuration tree whose plugins folder holds `production-safety` (signed), trusted by its
/// state directory; `plugins.ungranted-wasi.probe_port` names a loopback port that is listening.
struct Site {
    tree: PluginTree,
    _listening: TcpListener,
}

impl Site {
    fn new(files: &[(&str, &str)]) -> Site {
        let tree = PluginTree::new(Tree::minimal());
        let listening = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listening.local_addr().unwrap().port();
        let plugins = json!({"ungranted-wasi": {"probe_port": port}, "source-other-namespace": {"mine": 1}, "production-safety": {"private": "not for other plugins"}});
        tree.tree.write("global.json", &json!({"api": {"timeout": 30, "rate_limit": 100}, "plugins": plugins}).to_string());
        for (path, text) in files {
            tree.tree.write(path, text);
        }
        tree.install("production-safety");
        Site { tree, _listening: listening }
    }

    fn install(&self, case: &Case) {
        let signing = if matches!(case.install, Install::Forged) { Signing::Forged } else { Signing::Checked };
        let files = self.tree.prepare_signed(case.guest, case.name, case.manifest, signing);
        if let Install::Replaced(file, replacement) = case.install {
            let staged = match file {
                PluginFile::Module => &files.0,
                PluginFile::Manifest => &files.1,
                PluginFile::Signature => &files.2,
            };
            fs::remove_file(staged).unwrap();
            replacement.make(staged);
        }
        self.tree.install_prepared(case.name, files);
    }

    fn command(&self) -> Command {
        let root = self.tree.tree.root();
        let state = self.tree.tree.state();
        let mut command = Command::new(env!("CARGO_BIN_EXE_potter-config"));
        command.args(["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap()]).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).envs(demo_keys());
        command
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        self.command().args(args).stdin(Stdio::null()).output().unwrap()
    }

    fn serve_command(&self) -> Command {
        let mut command = self.command();
        command.args(["serve", "--listen", "127.0.0.1:0", "--dev-token"]).stdin(Stdio::null());
        command
    }
}

/// A running `serve`, its address, its admin token and the file its log goes to.
struct Server {
    child: Child,
    pid: u32,
    addr: String,
    token: String,
    log: std::path::PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Server {
    fn start(site: &Site) -> Server {
        let log_dir = tempfile::tempdir().unwrap();
        let log = log_dir.path().join("serve.log");
        let mut child = site.serve_command().stdout(Stdio::piped()).stderr(fs::File::create(&log).unwrap()).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut token = String::new();
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!("serve did not start: {}", fs::read_to_string(&log).unwrap_or_default());
            };
            if let Some(addr) = line.strip_prefix("listening on http://") {
                break addr.to_owned();
            }
            if let Some((_, printed)) = line.rsplit_once(": ") {
                token = printed.to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server { pid: child.id(), child, addr, token, log, _log_dir: log_dir }
    }

    /// A first call that got the plugin refused for its time, memory or a trap is counted in
    /// `/metrics` under the plugin's name, although the plugin never went live.
    fn assert_failed_call_counted(&self, plugin: &str, reason: &str) {
        let counter = if reason.contains("timed out") {
            "timeouts"
        } else if reason.contains("memory limit") {
            "memory_limits"
        } else if reason.contains("trapped") {
            "traps"
        } else {
            return;
        };
        let (status, metrics) = self.call("GET", "/metrics", None).expect("GET /metrics");
        assert_eq!(status, 200, "{metrics}");
        let count = |family: &str| -> f64 {
            let series = format!("potter_plugin_{family}_total{{plugin=\"{plugin}\"}} ");
            metrics.lines().find_map(|line| line.strip_prefix(&series)).and_then(|value| value.trim().parse().ok()).unwrap_or_else(|| panic!("no {series}in:\n{metrics}"))
        };
        assert!(count(counter) >= 1.0 && count("calls") >= count(counter), "{metrics}");
    }

    /// One request; the status and the body.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(&self.addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            self.token,
            body.len()
        );
        stream.write_all(request.as_bytes())?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response.split(' ').nth(1).and_then(|code| code.parse().ok()).ok_or_else(|| std::io::Error::other(format!("no status line: {response:?}")))?;
        let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
        Ok((status, body))
    }

    fn json(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let (status, text) = self.call(method, path, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Polls `GET /v1/plugins` until `done` holds for the entry of `name` (None: not listed).
    fn wait_for_plugin(&self, name: &str, done: impl Fn(Option<&Value>) -> bool) -> Option<Value> {
        let deadline = Instant::now() + JUDGED_WITHIN;
        loop {
            let (status, list) = self.json("GET", "/v1/plugins", None);
            assert_eq!(status, 200, "{list}");
            let entry = list["plugins"].as_array().and_then(|plugins| plugins.iter().find(|p| p["name"] == name)).cloned();
            if done(entry.as_ref()) {
                return entry;
            }
            assert!(Instant::now() < deadline, "plugin {name} not judged in time: {entry:?}; log: {}", self.log_tail());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn assert_contained(&self, contained: Contained) {
        match contained {
            Contained::Reads(keys) => {
                for (key, value) in keys {
                    let (status, read) = self.json("GET", &format!("/v1/config/production/{key}"), None);
                    assert_eq!(status, 200, "{read}");
                    assert_eq!(read["value"].to_string(), *value, "{key}");
                }
            }
            Contained::Loads => {}
        }
    }

    /// One write the host accepts, one that `production-safety` (still running) refuses.
    fn assert_writes_work(&self) {
        let (status, answer) = self.json("PUT", "/v1/config/development/api.timeout", Some(&json!({"value": 31})));
        assert_eq!(status, 200, "{answer}");
        let (status, answer) = self.json("PUT", "/v1/config/production/app.debug", Some(&json!({"value": true})));
        assert_eq!(status, 422, "{answer}");
        assert!(answer.to_string().contains("plugin:production-safety"), "{answer}");
    }

    fn rss_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        log[log.len().saturating_sub(2000)..].to_owned()
    }

    /// SIGTERM; how long the server took to exit (it is killed after 10 s).
    fn terminate(self) -> Duration {
        let mut child = self.child;
        let sent = Instant::now();
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let exited: Option<ExitStatus> = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if sent.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = sent.elapsed();
        assert!(exited.is_some_and(|status| status.success()), "serve did not exit cleanly ({exited:?})");
        took
    }
}

/// Polls health and one read every [`POLL_EVERY`] and samples the server's memory.
struct Watch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Watched>,
}

#[derive(Default)]
struct Watched {
    polls: usize,
    failures: Vec<String>,
    slowest: Duration,
    max_rss_kib: u64,
}

impl Watch {
    fn start(server: Arc<Server>) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut watched = Watched::default();
            // At least two rounds, however fast the case: a drop judged and removed within one
            // poll interval still gets the server polled after it.
            while !stopping.load(Ordering::Relaxed) || watched.polls < 4 {
                for path in ["/v1/health", "/v1/config/production/api.timeout"] {
                    let asked = Instant::now();
                    let answer = server.call("GET", path, None);
                    let took = asked.elapsed();
                    watched.polls += 1;
                    watched.slowest = watched.slowest.max(took);
                    match answer {
                        Ok((200, _)) if took < POLL_ANSWER_WITHIN => {}
                        other => watched.failures.push(format!("{path} after {took:?}: {other:?}")),
                    }
                }
                watched.max_rss_kib = watched.max_rss_kib.max(server.rss_kib().unwrap_or(0));
                std::thread::sleep(POLL_EVERY);
            }
            watched
        });
        Watch { stop, thread }
    }

    fn stop(self) -> Watched {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

impl Watched {
    fn assert_served(&self) {
        assert!(self.polls >= 4, "only {} polls", self.polls);
        assert!(self.failures.is_empty(), "the host stopped serving: {:?}", self.failures);
        assert!(self.max_rss_kib > 0 && self.max_rss_kib < RSS_BOUND_KIB, "VmRSS reached {} KiB", self.max_rss_kib);
    }
}
