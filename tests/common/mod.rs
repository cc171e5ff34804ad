//! Helpers shared by the end-to-end tests: temporary config trees and the real binary.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary config tree (with a state directory beside it) removed on drop.
pub struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    /// global + three environments, nothing else.
    pub fn minimal() -> Self {
        let tree = Tree { dir: tempfile::tempdir().unwrap() };
        fs::create_dir_all(tree.root()).unwrap();
        tree.write("global.json", r#"{"api": {"timeout": 30, "rate_limit": 100}}"#);
        for env in ["development", "staging", "production"] {
            tree.write(&format!("environments/{env}.json"), "{}");
        }
        fs::create_dir_all(tree.root().join("services")).unwrap();
        fs::create_dir_all(tree.root().join("users")).unwrap();
        tree
    }

    /// A copy of a tree from the repository (e.g. `examples/potter`).
    /// The plugins folder is left out: plugins signed for the repository's own state directory
    /// would be untrusted in the copy's (plugin tests set up their own).
    pub fn copy_of(relative: &str) -> Self {
        let tree = Tree { dir: tempfile::tempdir().unwrap() };
        copy_dir(&repo_path(relative), &tree.root());
        let _ = fs::remove_dir_all(tree.root().join("plugins"));
        tree
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join(".potter")
    }

    pub fn write(&self, relative: &str, text: &str) {
        self.write_bytes(relative, text.as_bytes());
    }

    pub fn write_bytes(&self, relative: &str, bytes: &[u8]) {
        let path = self.root().join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    pub fn remove(&self, relative: &str) {
        fs::remove_file(self.root().join(relative)).unwrap();
    }
}

/// The global schema the server tests share: `api.timeout` at least 1, `api.rate_limit` at most 1000.
pub const API_SCHEMA: &str = r#"{
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

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..").join(relative)
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        // Follows symlinks (the example's schemas/ links to the shipped ones).
        if fs::metadata(entry.path()).unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Runs the real `potter-config` binary with a clean environment.
pub fn potter(args: &[&str]) -> Output {
    potter_with(args, &[], None)
}

pub fn potter_with(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut command = Command::new(env!("CARGO_BIN_EXE_potter-config"));
    command.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        command.env(k, v);
    }
    command.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    // A relative path argument (`init DIR`) lands in a scratch folder, never in the repository.
    let scratch = tempfile::tempdir().unwrap();
    command.current_dir(scratch.path());
    let mut child = command.spawn().expect("the potter-config binary runs");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// Runs the binary with the example's demo keyrings in its environment.
pub fn potter_example(args: &[&str]) -> Output {
    let keys = demo_keys();
    let env: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    potter_with(args, &env, None)
}

/// The example's public demo keyrings (`examples/demo-keys.env`), as `POTTER_SECRET_KEY_<ENV>` pairs.
pub fn demo_keys() -> Vec<(String, String)> {
    let text = fs::read_to_string(repo_path("examples/demo-keys.env")).unwrap_or_default();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
pub mod etcd;
pub mod logs;
pub mod postgres;
pub mod loopback;
pub mod serve;
pub mod wasm;

/// The value at `key` in the environment's view of the host's live snapshot.
pub fn value_in(host: &potter_config::runtime::ConfigHost, environment: &str, key: &str) -> Option<serde_json::Value> {
    host.snapshot().view(&potter_engine::ViewKey::environment(environment)).unwrap().get(key)
}

/// Polls `condition` until it holds (a liveness wait, at most 20 s).
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "not within 20 s: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A shell that waits for this test process to end, however it ends, then runs `cleanup` with `$1`
/// = `dir`: a server a test binary started is stopped and its directory removed even when the
/// binary is killed.
pub fn watchdog(name: &str, dir: &Path, cleanup: &str) -> std::process::Child {
    let script = format!("while kill -0 \"$2\" 2>/dev/null; do sleep 0.3; done\n{cleanup}");
    Command::new("sh")
        .args(["-c", &script, name])
        .arg(dir)
        .arg(std::process::id().to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}
