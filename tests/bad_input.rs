//! Bad input, one row per case: what a careless or hostile user can put where the tool reads.
//!
//! Each row spoils a tree that was fine, then is tried where it applies:
//! - at start: the real binary refuses it (never hangs: a child that outlives `HANG` fails the
//!   row), the error names the file and says what is wrong, and nothing is recorded;
//! - live: a running, watching host with durable history meets the same change; the reload is
//!   refused with the same error, the old snapshot keeps serving and no history record is added.
//!
//! Adding a case is adding a row to `ROWS` (and, if needed, a spoiling function).

use crate::common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Tree;
use potter_config::events::Event;
use potter_config::watch::WatchOptions;
use potter_config::{ConfigHost, Options};
use potter_engine::ViewKey;
use potter_secrets::{encrypt, Keyring};

/// Longest a refusing command may take; a FIFO that is waited on never returns.
const HANG: Duration = Duration::from_secs(20);

struct Row {
    case: &'static str,
    /// Makes the bad change in a good fixture.
    spoil: fn(&Fixture),
    /// The error names this file (as the message shows it)...
    names: &'static str,
    /// ...and says this about it.
    says: &'static str,
    /// Arguments after `--root R --state S` of a command that must refuse it at start (None: a
    /// running-host case only).
    at_start: Option<&'static [&'static str]>,
    live: Live,
}

#[derive(Clone, Copy, PartialEq)]
enum Live {
    /// Not tried on a running host (the file is not read by the configuration host).
    No,
    /// A running host's next reload refuses it.
    Reload,
    /// The watcher itself meets it: a `rejected` event naming the file arrives, then a reload
    /// refuses it too.
    Watched,
}

const VALIDATE: &[&str] = &["validate"];

const ROWS: &[Row] = &[
    Row { case: "FIFO at global.json", spoil: |f| f.fifo("global.json"), names: "global.json", says: "is a FIFO", at_start: Some(VALIDATE), live: Live::Watched },
    Row {
        case: "FIFO swapped in for global.json while the host runs",
        spoil: |f| f.fifo_swapped_in("global.json"),
        names: "global.json",
        says: "is a FIFO",
        at_start: None,
        live: Live::Watched,
    },
    Row { case: "FIFO named like a user file", spoil: |f| f.fifo("users/eve.json"), names: "users/eve.json", says: "is a FIFO", at_start: Some(VALIDATE), live: Live::Watched },
    Row {
        case: "directory named like a config file",
        spoil: |f| fs::create_dir_all(f.tree.root().join("users/bob.json")).unwrap(),
        names: "users/bob.json",
        says: "is a directory",
        at_start: Some(VALIDATE),
        live: Live::Watched,
    },
    Row {
        case: "FIFO at a schema file",
        spoil: |f| f.fifo("schemas/global_schema.json"),
        names: "global_schema.json",
        says: "is a FIFO",
        at_start: Some(VALIDATE),
        live: Live::Watched,
    },
    Row {
        case: "schemas is a broken symlink",
        spoil: |f| f.replace_schemas(broken_symlink),
        names: "schemas",
        says: "does not exist",
        at_start: Some(VALIDATE),
        live: Live::Reload,
    },
    Row {
        case: "schemas is a file",
        spoil: |f| f.replace_schemas(|path| fs::write(path, "{}").unwrap()),
        names: "schemas",
        says: "not a folder",
        at_start: Some(VALIDATE),
        live: Live::Reload,
    },
    Row {
        case: "FIFO at a keyring",
        spoil: |f| f.fifo_in_state("keyrings/production.json"),
        names: "keyrings/production.json",
        says: "is a FIFO",
        at_start: Some(VALIDATE),
        live: Live::Reload,
    },
    Row {
        case: "FIFO at tokens.json (serve)",
        spoil: |f| f.fifo_in_state("tokens.json"),
        names: "tokens.json",
        says: "is a FIFO",
        at_start: Some(&["serve", "--listen", "127.0.0.1:0"]),
        live: Live::No,
    },
    Row {
        case: "FIFO at tokens.json (token list)",
        spoil: |f| f.fifo_in_state("tokens.json"),
        names: "tokens.json",
        says: "is a FIFO",
        at_start: Some(&["token", "list"]),
        live: Live::No,
    },
];

/// Makes `path` a symbolic link to a sibling that does not exist.
fn broken_symlink(path: &Path) {
    std::os::unix::fs::symlink("schemas-gone", path).unwrap();
}

#[test]
fn each_bad_input_is_refused_naming_the_file_and_changes_nothing() {
    for row in ROWS {
        if let Some(args) = row.at_start {
            refused_at_start(row, args);
        }
        if row.live != Live::No {
            refused_live(row);
        }
    }
}

/// A good tree: a schema, a secret in production (keyring file in the state directory), a user.
struct Fixture {
    tree: Tree,
}

const SCHEMA: &str = r#"{"type": "object", "properties": {"api": {"type": "object", "properties": {"timeout": {"type": "integer", "maximum": 100}}}}}"#;

impl Fixture {
    fn new() -> Self {
        let tree = Tree::minimal();
        tree.write("schemas/global_schema.json", SCHEMA);
        let keyring = Keyring::create_in_state(&tree.state(), "production").unwrap();
        let sealed = encrypt(&keyring, "production", &["db", "password"], "correct horse").unwrap();
        tree.write("environments/production.json", &format!(r#"{{"db": {{"password": "{sealed}"}}}}"#));
        tree.write("users/ann.json", r#"{"editor": {"theme": "dark"}}"#);
        Self { tree }
    }

    fn options(&self) -> Options {
        let mut options = Options::new(self.tree.root());
        options.state_dir = self.tree.state();
        options.env_vars = Some(Vec::new());
        options
    }

    /// Puts a FIFO at `relative` (replacing what was there).
    fn fifo(&self, relative: &str) {
        let path = self.tree.root().join(relative);
        let _ = fs::remove_file(&path);
        mkfifo(&path);
    }

    /// A FIFO renamed over `relative` in one step: the path never goes missing.
    fn fifo_swapped_in(&self, relative: &str) {
        let path = self.tree.root().join(relative);
        let temp = path.with_file_name(".swap.fifo");
        mkfifo(&temp);
        fs::rename(&temp, &path).unwrap();
    }

    fn fifo_in_state(&self, relative: &str) {
        let path = self.tree.state().join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = fs::remove_file(&path);
        mkfifo(&path);
    }

    fn replace_schemas(&self, make: impl FnOnce(&Path)) {
        let path = self.tree.root().join("schemas");
        fs::remove_dir_all(&path).unwrap();
        make(&path);
    }

    /// Records in the history database (0 when there is none).
    fn history_versions(&self) -> u64 {
        use potter_history::HistoryStore as _;
        potter_config::recording::open_existing(&self.tree.state()).unwrap().map_or(0, |store| store.latest_version().unwrap())
    }
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

fn refused_at_start(row: &Row, args: &[&str]) {
    let fixture = Fixture::new();
    (row.spoil)(&fixture);
    let before = fixture.history_versions();
    let (root, state) = (fixture.tree.root(), fixture.tree.state());
    let mut child = Command::new(env!("CARGO_BIN_EXE_potter-config"))
        .args(["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap()])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > HANG {
            child.kill().unwrap();
            panic!("{}: `{}` hung", row.case, args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = (common::stdout(&output), common::stderr(&output));
    assert!(!output.status.success(), "{}: `{}` accepted it\n{stdout}", row.case, args.join(" "));
    assert!(!stdout.contains("listening on"), "{}: the server started: {stdout}", row.case);
    assert!(stderr.contains(row.names) && stderr.contains(row.says), "{}: {stderr}", row.case);
    assert_eq!(fixture.history_versions(), before, "{}: something was recorded", row.case);
}

fn refused_live(row: &Row) {
    let fixture = Fixture::new();
    let host = ConfigHost::open(fixture.options()).unwrap();
    let mut events = host.subscribe(&ViewKey::environment("production"), "").unwrap();
    let watcher = host.watch(WatchOptions::default()).unwrap();
    let before = host.snapshot();
    let recorded = fixture.history_versions();
    (row.spoil)(&fixture);

    if row.live == Live::Watched {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        match runtime.block_on(async { tokio::time::timeout(HANG, events.recv()).await.ok().flatten() }) {
            Some(Event::Rejected { diagnostics, .. }) => {
                let text = diagnostics.join("\n");
                assert!(text.contains(row.names) && text.contains(row.says), "{}: {text}", row.case);
            }
            other => panic!("{}: expected a rejection, got {other:?}", row.case),
        }
    }
    drop(watcher);
    let error = host.reload().map(|s| s.version()).expect_err(row.case).to_string();
    assert!(error.contains(row.names) && error.contains(row.says), "{}: {error}", row.case);

    let after = host.snapshot();
    assert_eq!(after.version(), before.version(), "{}: a new snapshot went live", row.case);
    let production = after.view(&ViewKey::environment("production")).unwrap();
    assert_eq!(production.get("api.timeout"), Some(serde_json::json!(30)), "{}: the old snapshot serves", row.case);
    assert!(after.view(&ViewKey::new("production", None, Some("ann"))).is_ok(), "{}", row.case);
    assert_eq!(fixture.history_versions(), recorded, "{}: a history record was added", row.case);
}
