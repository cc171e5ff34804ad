//! Long work reports its progress: the library tells an embedder's [`Progress`] when it compiles
//! a plugin (only on a cache miss), re-encrypts an environment's secrets (step by step) and
//! rebuilds and validates a rollback; the CLI draws it with indicatif on a terminal, never on a
//! pipe.

use crate::common;

use std::process::Command;
use std::sync::{Arc, Mutex};

use common::wasm::PluginTree;
use common::{demo_keys, Tree};
use potter_config::runtime::{ConfigHost, SetRequest};
use potter_config::{ChangeOrigin, Progress, ProgressReport, ProgressTask};
use potter_secrets::{encrypt, Keyring};
use serde_json::json;

/// Every task begun: its name, its total, and the steps reported before it ended.
#[derive(Default, Clone)]
struct Recorder {
    tasks: Arc<Mutex<Vec<(String, Option<u64>, Arc<Mutex<u64>>)>>>,
}

impl Recorder {
    fn names(&self) -> Vec<String> {
        self.tasks.lock().unwrap().iter().map(|(name, _, _)| name.clone()).collect()
    }

    fn task(&self, starting: &str) -> (Option<u64>, u64) {
        let tasks = self.tasks.lock().unwrap();
        let (_, total, steps) = tasks.iter().find(|(name, _, _)| name.starts_with(starting)).unwrap_or_else(|| panic!("no task `{starting}…` in {:?}", tasks.iter().map(|t| &t.0).collect::<Vec<_>>()));
        let steps = *steps.lock().unwrap();
        (*total, steps)
    }
}

struct RecordedTask(Arc<Mutex<u64>>);

impl ProgressTask for RecordedTask {
    fn advance(&mut self, steps: u64) {
        *self.0.lock().unwrap() += steps;
    }
}

impl Progress for Recorder {
    fn begin(&self, task: &str, total: Option<u64>) -> Box<dyn ProgressTask> {
        let steps = Arc::new(Mutex::new(0));
        self.tasks.lock().unwrap().push((task.to_owned(), total, steps.clone()));
        Box::new(RecordedTask(steps))
    }
}

#[test]
fn compiling_rotating_and_rolling_back_report_their_progress() {
    let tree = PluginTree::new(Tree::minimal());
    tree.install("production-safety");
    let keyring = Keyring::create_in_state(&tree.tree.state(), "staging").unwrap();
    let sealed = |path: &[&str], plaintext: &str| encrypt(&keyring, "staging", path, plaintext).unwrap();
    tree.tree.write("environments/staging.json", &json!({"db": {"password": sealed(&["db", "password"], "pw-1"), "token": sealed(&["db", "token"], "tk-1")}}).to_string());

    // The staging keyring is the state directory's (no demo key variables).
    let plain_options = || {
        let mut options = tree.options();
        options.env_vars = Some(Vec::new());
        options
    };
    let recorder = Recorder::default();
    let mut options = plain_options();
    options.progress = ProgressReport::to(Arc::new(recorder.clone()));
    let host = ConfigHost::open(options.clone()).unwrap();
    assert_eq!(recorder.task("compiling plugin production-safety").0, None);
    drop(host);

    // The second open finds the compiled code in the cache: nothing to show.
    let again = Recorder::default();
    let mut cached = plain_options();
    cached.progress = ProgressReport::to(Arc::new(again.clone()));
    let host = ConfigHost::open(cached).unwrap();
    assert!(!again.names().iter().any(|name| name.starts_with("compiling")), "{:?}", again.names());
    drop(host);

    // Rotation counts the environment's ciphertexts and reports each one re-encrypted.
    let report = potter_config::secret_values::rotate(&options, "staging").unwrap();
    assert_eq!(report.reencrypted, 2);
    assert_eq!(recorder.task("re-encrypting the secrets of environments/staging.json"), (Some(2), 2));

    // A rollback shows its two long steps: rebuilding the old version, validating the change.
    let host = ConfigHost::open(options).unwrap();
    let before = host.set("production", "api.timeout", json!(45)).unwrap().version();
    host.set("production", "api.timeout", json!(60)).unwrap();
    potter_config::timeline::rollback(&host, "production", before, SetRequest::new(ChangeOrigin::Rollback, "test"), false).unwrap();
    recorder.task(&format!("rebuilding `production` at version {before} from the history"));
    recorder.task("validating the rollback of 1 key(s) in every view of `production`");
}

/// `validate` on a tree whose plugin was never compiled, under a pseudo-terminal (`script`) and on
/// a pipe: only the terminal shows the compile.
#[test]
fn the_cli_draws_progress_on_a_terminal_only() {
    let run = |on_terminal: bool| {
        let tree = PluginTree::new(Tree::minimal());
        tree.install("production-safety");
        let (root, state) = (tree.tree.root(), tree.tree.state());
        let args = ["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap(), "validate"];
        let binary = env!("CARGO_BIN_EXE_potter-config");
        let mut command = if on_terminal {
            let line = std::iter::once(binary).chain(args).map(|word| format!("'{word}'")).collect::<Vec<_>>().join(" ");
            let mut script = Command::new("script");
            script.args(["-qec", &line, "/dev/null"]);
            script
        } else {
            let mut direct = Command::new(binary);
            direct.args(args);
            direct
        };
        command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("TERM", "xterm");
        for (name, value) in demo_keys() {
            command.env(name, value);
        }
        let output = command.output().expect("the command runs");
        let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "{said}");
        said
    };
    let on_terminal = run(true);
    assert!(on_terminal.contains("compiling plugin production-safety"), "{on_terminal}");
    let on_pipe = run(false);
    assert!(!on_pipe.contains("compiling plugin"), "{on_pipe}");
}
