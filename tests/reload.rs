//! Hot reload over real files and a real inotify watcher: every save style, bursts, rejection and
//! recovery, subscriptions, and the `watch` command.

use crate::common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Tree;
use potter_config::events::{Event, Subscription};
use potter_config::watch::{WatchOptions, Watcher};
use potter_config::{ConfigHost, Options};
use potter_engine::ViewKey;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

fn open(root: &Path) -> ConfigHost {
    let mut options = Options::new(root);
    options.env_vars = Some(Vec::new());
    // These tests are about watching and events; durable history has its own tests.
    options.history = false;
    ConfigHost::open(options).unwrap()
}

fn production() -> ViewKey {
    ViewKey::environment("production")
}

/// The next event, or None if nothing arrives in time.
fn next(subscription: &mut Subscription, within: Duration) -> Option<Event> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    runtime.block_on(async { tokio::time::timeout(within, subscription.recv()).await.ok().flatten() })
}

fn watching(host: &ConfigHost) -> Watcher {
    host.watch(WatchOptions::default()).unwrap()
}

fn expect_change(subscription: &mut Subscription, key: &str, new: Value) -> u64 {
    match next(subscription, WAIT) {
        Some(Event::Changed { version, changes, actor, .. }) => {
            assert_eq!(actor, "file-watch");
            let change = changes.iter().find(|c| c.key == key).unwrap_or_else(|| panic!("{key} not in {changes:?}"));
            assert_eq!(change.new, Some(new));
            version
        }
        other => panic!("expected a change of {key}, got {other:?}"),
    }
}

fn write_atomically(path: &Path, text: &str) {
    let temp = path.with_extension("tmp~");
    fs::write(&temp, text).unwrap();
    fs::rename(&temp, path).unwrap();
}

#[test]
fn every_save_style_is_picked_up() {
    let tree = Tree::minimal();
    let host = open(&tree.root());
    let mut subscription = host.subscribe(&production(), "api").unwrap();
    let _watcher = watching(&host);
    let file = tree.root().join("environments/production.json");

    fs::write(&file, r#"{"api": {"timeout": 1}}"#).unwrap(); // in-place write
    expect_change(&mut subscription, "api.timeout", json!(1));

    write_atomically(&file, r#"{"api": {"timeout": 2}}"#); // temp file + rename
    expect_change(&mut subscription, "api.timeout", json!(2));

    fs::remove_file(&file).unwrap(); // delete, then create
    fs::write(&file, r#"{"api": {"timeout": 3}}"#).unwrap();
    // Deleting drops the environment for a moment; what counts is that the new content arrives.
    let mut seen = None;
    while let Some(event) = next(&mut subscription, WAIT) {
        if let Event::Changed { changes, .. } = &event {
            if changes.iter().any(|c| c.key == "api.timeout" && c.new == Some(json!(3))) {
                seen = Some(event);
                break;
            }
        }
    }
    assert!(seen.is_some(), "delete + create was not picked up");
    assert_eq!(host.view("production", None, None).unwrap().get::<u32>("api.timeout").unwrap(), 3);
}

#[test]
fn a_save_goes_live_when_it_is_finished_without_waiting_out_the_debounce() {
    let tree = Tree::minimal();
    let host = open(&tree.root());
    let mut subscription = host.subscribe(&production(), "api").unwrap();
    // Only an event that finishes a save can end a window: the debounce never closes here.
    let forever = Duration::from_secs(600);
    let _watcher = host.watch(WatchOptions { debounce: forever, max_delay: forever, ..WatchOptions::default() }).unwrap();
    let file = tree.root().join("environments/production.json");

    // Written but still open: not finished, so not read.
    let mut open_file = fs::File::create(&file).unwrap();
    std::io::Write::write_all(&mut open_file, br#"{"api": {"timeout": 1}}"#).unwrap();
    assert!(next(&mut subscription, Duration::from_millis(300)).is_none(), "a file still open for writing was read");
    drop(open_file);
    expect_change(&mut subscription, "api.timeout", json!(1));

    // An editor's hidden temp file, written and closed, is not the save; its rename into place is.
    // A write left open meanwhile shows any reload the temp file would start.
    let mut pending = fs::File::create(tree.root().join("global.json")).unwrap();
    std::io::Write::write_all(&mut pending, br#"{"api": {"timeout": 30, "rate_limit": 99}}"#).unwrap();
    let temp = tree.root().join("environments/.production.json.tmp");
    fs::write(&temp, r#"{"api": {"timeout": 2}}"#).unwrap();
    assert!(next(&mut subscription, Duration::from_millis(300)).is_none(), "a temp file's close started a reload");
    fs::rename(&temp, &file).unwrap();
    expect_change(&mut subscription, "api.timeout", json!(2));
    assert_eq!(common::value_in(&host, "production", "api.rate_limit"), Some(json!(99)));
}

#[test]
fn many_files_changed_at_once_become_one_reload() {
    let tree = Tree::minimal();
    let host = open(&tree.root());
    let mut subscription = host.subscribe(&production(), "").unwrap();
    // A generous window keeps the burst inside it even on a loaded machine.
    let window = Duration::from_millis(500);
    let _watcher = host.watch(WatchOptions { debounce: window, finished_debounce: window, max_delay: Duration::from_secs(5), ..WatchOptions::default() }).unwrap();
    let before = host.snapshot().version();
    // Like `git checkout`: several files rewritten in a burst.
    tree.write("global.json", r#"{"api": {"timeout": 30, "rate_limit": 100}, "a": 1}"#);
    tree.write("environments/production.json", r#"{"b": 2}"#);
    tree.write("services/web.json", r#"{"c": 3}"#);
    tree.write("users/ann.json", r#"{"d": 4}"#);
    match next(&mut subscription, WAIT) {
        Some(Event::Changed { version, changes, .. }) => {
            assert!(version > before);
            let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
            assert_eq!(keys, ["a", "b"]);
        }
        other => panic!("expected one change, got {other:?}"),
    }
    assert!(next(&mut subscription, Duration::from_millis(1000)).is_none(), "a burst must not cause a second reload");
    assert!(host.view("production", Some("web"), Some("ann")).is_ok(), "new service and user files joined the tree");
}

#[test]
fn a_configmap_symlink_swap_is_picked_up() {
    // Kubernetes mounts: root/global.json -> ..data/global.json, ..data -> ..<timestamp>/
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    fs::create_dir_all(&root).unwrap();
    let write_version = |name: &str, timeout: u32| {
        let version_dir = root.join(name);
        fs::create_dir_all(version_dir.join("environments")).unwrap();
        fs::write(version_dir.join("global.json"), format!(r#"{{"api": {{"timeout": {timeout}}}}}"#)).unwrap();
        fs::write(version_dir.join("environments/production.json"), "{}").unwrap();
    };
    write_version("..2026_11_27_10_00_00.123", 30);
    symlink("..2026_11_27_10_00_00.123", root.join("..data")).unwrap();
    symlink("..data/global.json", root.join("global.json")).unwrap();
    symlink("..data/environments", root.join("environments")).unwrap();
    let host = open(&root);
    let mut subscription = host.subscribe(&production(), "api").unwrap();
    let _watcher = watching(&host);

    write_version("..2026_11_27_10_05_00.456", 45);
    symlink("..2026_11_27_10_05_00.456", root.join("..data_tmp")).unwrap();
    fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    expect_change(&mut subscription, "api.timeout", json!(45));
}

#[test]
fn a_config_root_that_is_a_symlink_is_watched_through_it() {
    let tree = Tree::minimal();
    let link_dir = tempfile::tempdir().unwrap();
    let link = link_dir.path().join("current");
    symlink(tree.root(), &link).unwrap();
    let host = open(&link);
    let mut subscription = host.subscribe(&production(), "api").unwrap();
    let _watcher = watching(&host);
    tree.write("global.json", r#"{"api": {"timeout": 31, "rate_limit": 100}}"#);
    expect_change(&mut subscription, "api.timeout", json!(31));
}

#[test]
fn a_bad_save_is_rejected_and_the_next_good_save_applies() {
    let tree = Tree::minimal();
    let host = open(&tree.root());
    let view = host.view("production", None, None).unwrap();
    let mut subscription = host.subscribe(&production(), "api").unwrap();
    let _watcher = watching(&host);

    tree.write("environments/production.json", "{\n  \"api\": {\"timeout\": 5,,}\n}\n");
    match next(&mut subscription, WAIT) {
        Some(Event::Rejected { diagnostics, actor, .. }) => {
            assert_eq!(actor, "file-watch");
            assert!(diagnostics.iter().any(|d| d.contains("environments/production.json:2:")), "{diagnostics:?}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(view.get::<u32>("api.timeout").unwrap(), 30, "the bad save never went live");

    tree.write("environments/production.json", r#"{"api": {"timeout": 6}}"#);
    expect_change(&mut subscription, "api.timeout", json!(6));
    assert_eq!(view.get::<u32>("api.timeout").unwrap(), 6);
}

#[test]
fn subscribers_get_only_their_prefix() {
    let tree = Tree::minimal();
    let host = open(&tree.root());
    let mut api = host.subscribe(&production(), "api.timeout").unwrap();
    let mut logging = host.subscribe(&production(), "logging").unwrap();
    host.set("production", "logging.level", json!("DEBUG")).unwrap();
    host.set("production", "api.rate_limit", json!(5)).unwrap();
    host.set("production", "api.timeout", json!(9)).unwrap();
    match next(&mut api, WAIT) {
        Some(Event::Changed { changes, .. }) => assert_eq!(changes.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["api.timeout"]),
        other => panic!("{other:?}"),
    }
    match next(&mut logging, WAIT) {
        Some(Event::Changed { changes, .. }) => assert_eq!(changes[0].key, "logging.level"),
        other => panic!("{other:?}"),
    }
    assert!(next(&mut api, Duration::from_millis(100)).is_none());
    assert!(next(&mut logging, Duration::from_millis(100)).is_none());
}

#[test]
fn a_thousand_rapid_changes_arrive_complete_and_in_order() {
    let tree = Tree::minimal();
    let host = open(&tree.root());
    let mut subscription = host.subscribe(&production(), "counter").unwrap();
    let writer = {
        let host = host.clone();
        std::thread::spawn(move || {
            for i in 1..=1000 {
                host.set("production", "counter", json!(i)).unwrap();
            }
        })
    };
    let mut last_version = 0;
    for expected in 1..=1000 {
        match next(&mut subscription, WAIT) {
            Some(Event::Changed { version, changes, .. }) => {
                assert!(version > last_version, "events out of order");
                last_version = version;
                assert_eq!(changes[0].new, Some(json!(expected)), "an event was lost");
            }
            other => panic!("change {expected}: {other:?}"),
        }
    }
    writer.join().unwrap();
}

#[test]
fn a_subscriber_that_falls_behind_is_told_and_caught_up() {
    let tree = Tree::minimal();
    let host = open(&tree.root());
    let mut subscription = host.subscribe(&production(), "counter").unwrap();
    for i in 1..=5000 {
        host.set("production", "counter", json!(i)).unwrap();
    }
    match next(&mut subscription, WAIT) {
        Some(Event::Lagged { missed, current, .. }) => {
            assert!(missed > 0);
            assert_eq!(current, Some(json!(5000)), "handed the latest value");
        }
        other => panic!("expected a lag notice, got {other:?}"),
    }
    // Nothing stale follows the catch-up.
    if let Some(event) = next(&mut subscription, Duration::from_millis(50)) {
        panic!("stale event after catch-up: {event:?}");
    }
}

#[test]
fn polling_works_where_events_do_not() {
    let tree = Tree::minimal();
    let host = open(&tree.root());
    let mut subscription = host.subscribe(&production(), "api").unwrap();
    let _watcher = host.watch(WatchOptions { poll_interval: Some(Duration::from_millis(50)), ..WatchOptions::default() }).unwrap();
    tree.write("environments/production.json", r#"{"api": {"timeout": 77}}"#);
    expect_change(&mut subscription, "api.timeout", json!(77));
}

#[test]
fn unchanged_files_are_not_parsed_again() {
    let tree = Tree::minimal();
    let host = open(&tree.root());
    let before = host.snapshot();
    let after = host.reload().unwrap();
    assert_eq!(after.version(), before.version(), "a reload that changes nothing is not a new version");
    tree.write("environments/production.json", r#"{"x": 1}"#);
    let after = host.reload().unwrap();
    let same = |name: &str| {
        let find = |s: &potter_engine::Snapshot| s.layers().iter().find(|l| l.name == name).unwrap().clone();
        std::sync::Arc::ptr_eq(&find(&before), &find(&after))
    };
    assert!(same("global"), "global.json was parsed again");
    assert!(!same("environments/production"));
}

#[test]
fn the_watch_command_prints_changes_and_rejections() {
    let tree = Tree::minimal();
    let mut child = Command::new(env!("CARGO_BIN_EXE_potter-config"))
        .args(["--root", tree.root().to_str().unwrap(), "--env", "production", "--format", "json", "watch", "api"])
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    stderr.read_line(&mut banner).unwrap();
    assert!(banner.contains("watching"), "{banner}");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    tree.write("environments/production.json", r#"{"api": {"timeout": 8}}"#);
    let changed: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(changed["event"], "changed");
    assert_eq!(changed["changes"][0]["key"], "api.timeout");
    assert_eq!(changed["changes"][0]["new"], 8);

    tree.write("environments/production.json", "{oops");
    let rejected: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(rejected["event"], "rejected");
    assert!(rejected["diagnostics"][0].as_str().unwrap().contains("environments/production.json:1:"));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Options with durable history (in the tree's own state directory).
fn recorded(root: &Path) -> Options {
    let mut options = Options::new(root);
    options.env_vars = Some(Vec::new());
    options
}

#[test]
fn overrides_another_process_records_are_taken_in_and_never_overwritten() {
    let tree = Tree::minimal();
    let server = ConfigHost::open(recorded(&tree.root())).unwrap();
    let mut events = server.subscribe(&ViewKey::environment("production"), "api").unwrap();
    // The real command beside a running host, on the same state directory.
    let cli_set = |value: &str| {
        let root = tree.root();
        let output = common::potter(&["--root", root.to_str().unwrap(), "--env", "production", "set", "api.timeout", value]);
        assert!(output.status.success(), "{}", common::stderr(&output));
    };
    cli_set("77");

    // The server's own next edit goes onto the recorded overrides, not its stale copy.
    server.set("production", "api.rate_limit", json!(500)).unwrap();
    let view = server.snapshot();
    let view = view.view(&ViewKey::environment("production")).unwrap();
    assert_eq!(view.get("api.timeout"), Some(json!(77)), "the other process's override survived");
    assert_eq!(view.get("api.rate_limit"), Some(json!(500)));
    match next(&mut events, WAIT) {
        Some(Event::Changed { actor, changes, .. }) => {
            assert_eq!(actor, "another process");
            assert_eq!(changes[0].key, "api.timeout");
        }
        other => panic!("expected the adopted change first, got {other:?}"),
    }

    // And the other way round, without any edit: the watcher's poller takes it in.
    let _watcher = server.watch(WatchOptions::default()).unwrap();
    cli_set("78");
    let mut seen = None;
    for _ in 0..3 {
        if let Some(Event::Changed { changes, .. }) = next(&mut events, WAIT) {
            if changes.iter().any(|c| c.key == "api.timeout" && c.new == Some(json!(78))) {
                seen = Some(());
                break;
            }
        }
    }
    assert!(seen.is_some(), "the poller took in the override");
}

/// The keys every recorded change removed (none when nothing was recorded).
fn recorded_removals(options: &Options) -> Vec<String> {
    use potter_history::HistoryStore as _;
    let Some(store) = potter_config::recording::open_existing(&options.state_dir).unwrap() else { return Vec::new() };
    let records = store.query(&potter_history::HistoryQuery { limit: 10_000, ..potter_history::HistoryQuery::default() }).unwrap();
    records
        .iter()
        .flat_map(|record| record.payload.iter().flat_map(|payload| &payload.changes))
        .filter(|change| change.after.is_none())
        .map(|change| change.key.clone())
        .collect()
}

/// Counts reads of `check` that fail, on a thread of its own, until the returned guard is finished.
struct Reader {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(u64, u64)>,
}

impl Reader {
    fn start(check: impl Fn() -> bool + Send + 'static) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut reads, mut failures) = (0u64, 0u64);
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                reads += 1;
                failures += u64::from(!check());
                std::thread::yield_now();
            }
            (reads, failures)
        });
        Self { stop, thread }
    }

    /// (reads, failed reads)
    fn finish(self) -> (u64, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Waits until `done` holds (panics after WAIT).
fn eventually(what: &str, done: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn user_text(round: u64) -> String {
    format!(r#"{{"editor": {{"theme": "dark", "round": {round}}}}}"#)
}

#[test]
fn in_place_saves_caught_half_written_are_never_published() {
    use std::io::Write as _;
    let tree = Tree::minimal();
    tree.write("users/ann.json", &user_text(0));
    let options = recorded(&tree.root());
    let host = ConfigHost::open(options.clone()).unwrap();
    let _watcher = watching(&host);
    let view = host.view("production", None, Some("ann")).unwrap();
    let reader = Reader::start({
        let view = view.clone();
        move || view.value("editor.theme").is_some()
    });
    let file = tree.root().join("users/ann.json");
    const ROUNDS: u64 = 8;
    for round in 1..=ROUNDS {
        // Like an editor writing in place or `>` redirection: truncate, pause, write.
        let mut handle = fs::OpenOptions::new().write(true).truncate(true).open(&file).unwrap();
        std::thread::sleep(Duration::from_millis(5 + 5 * (round % 4)));
        handle.write_all(user_text(round).as_bytes()).unwrap();
        drop(handle);
        eventually(&format!("round {round} is live"), || view.get::<u64>("editor.round").ok() == Some(round));
    }
    let (reads, missing) = reader.finish();
    assert!(reads > 0);
    assert_eq!(missing, 0, "{missing} of {reads} reads saw ann's keys gone");
    let removals = recorded_removals(&options);
    assert!(removals.is_empty(), "history recorded removals: {removals:?}");
}

#[test]
fn delete_and_create_saves_never_make_a_view_disappear() {
    let tree = Tree::minimal();
    tree.write("users/ann.json", &user_text(0));
    tree.write("environments/staging.json", r#"{"round": 0}"#);
    let host = open(&tree.root());
    let _watcher = watching(&host);
    let reader = Reader::start({
        let host = host.clone();
        move || {
            let snapshot = host.snapshot();
            snapshot.view(&ViewKey::new("production", None, Some("ann"))).is_ok() && snapshot.view(&ViewKey::environment("staging")).is_ok()
        }
    });
    let view = host.view("staging", None, Some("ann")).unwrap();
    for round in 1..=6u64 {
        // Delete, a few milliseconds, create (and write): both a user and an environment.
        for (file, text) in [("users/ann.json", user_text(round)), ("environments/staging.json", format!(r#"{{"round": {round}}}"#))] {
            tree.remove(file);
            std::thread::sleep(Duration::from_millis(2 + 4 * (round % 3)));
            tree.write(file, &text);
        }
        eventually(&format!("round {round} is live"), || view.get::<u64>("editor.round").ok() == Some(round) && view.get::<u64>("round").ok() == Some(round));
    }
    let (reads, missing) = reader.finish();
    assert!(reads > 0);
    assert_eq!(missing, 0, "{missing} of {reads} reads found the user or the environment gone");
}

#[test]
fn an_intentional_deletion_or_emptying_still_applies() {
    let tree = Tree::minimal();
    tree.write("users/ann.json", &user_text(1));
    tree.write("users/bob.json", &user_text(2));
    let options = recorded(&tree.root());
    let host = ConfigHost::open(options.clone()).unwrap();
    let _watcher = watching(&host);
    let bob = host.view("production", None, Some("bob")).unwrap();

    tree.remove("users/ann.json");
    eventually("ann is gone", || host.view("production", None, Some("ann")).is_err());
    tree.write("users/bob.json", "");
    eventually("bob's keys are gone", || bob.value("editor").is_none());
    assert!(host.view("production", None, Some("bob")).is_ok(), "an empty user file is still a user");
    let removed = recorded_removals(&options);
    assert!(removed.iter().any(|key| key.starts_with("@bob:editor")), "the emptying was recorded: {removed:?}");

    // And a plain `reload()` with nobody watching takes a deletion in, once it has stayed.
    let quiet = ConfigHost::open(options).unwrap();
    tree.remove("users/bob.json");
    quiet.reload().unwrap();
    assert!(quiet.view("production", None, Some("bob")).is_err());
}

/// A watcher whose own reload never comes within a test: any file change a change of the
/// overrides shows was read by that change itself.
fn watching_without_reloads(host: &ConfigHost) -> Watcher {
    let forever = Duration::from_secs(600);
    host.watch(WatchOptions { debounce: forever, finished_debounce: forever, max_delay: forever, poll_interval: None }).unwrap()
}

/// The environment-variable layer of the live snapshot (a full build makes it anew).
fn env_var_layer(host: &ConfigHost) -> std::sync::Arc<potter_engine::Layer> {
    host.snapshot().layers().iter().find(|layer| matches!(layer.source, potter_engine::LayerSource::EnvVars { .. })).unwrap().clone()
}

#[test]
fn overrides_set_while_watching_build_on_the_tree_as_read_until_a_file_event_comes() {
    let tree = Tree::minimal();
    let mut options = Options::new(tree.root());
    options.env_vars = Some(vec![("POTTER_API__NAME".to_owned(), "from-env".to_owned())]);
    options.history = false;
    let host = ConfigHost::open(options).unwrap();
    let watcher = watching_without_reloads(&host);
    // The first change after the watcher started reads everything (the tree may have changed
    // before the watcher saw anything); the next ones build on what it read.
    host.set("production", "api.round", json!(1)).unwrap();
    let read = env_var_layer(&host);
    host.set("production", "api.round", json!(2)).unwrap();
    assert!(std::sync::Arc::ptr_eq(&read, &env_var_layer(&host)), "the second override was built over the tree as read");
    assert_eq!(common::value_in(&host, "production", "api.name"), Some(json!("from-env")));

    // A save the watcher has seen (but not reloaded yet) is read by the next override change.
    tree.write("environments/production.json", r#"{"api": {"timeout": 7}}"#);
    let mut round = 3;
    common::eventually("an override change reads the saved file", || {
        round += 1;
        host.set("production", "api.round", json!(round)).unwrap();
        common::value_in(&host, "production", "api.timeout") == Some(json!(7))
    });
    assert!(!std::sync::Arc::ptr_eq(&read, &env_var_layer(&host)), "the tree was read again");
    assert_eq!(common::value_in(&host, "production", "api.round"), Some(json!(round)));

    // Without a watcher nothing vouches for the files: each change reads them.
    drop(watcher);
    tree.write("environments/production.json", r#"{"api": {"timeout": 8}}"#);
    host.set("production", "api.round", json!(100)).unwrap();
    assert_eq!(common::value_in(&host, "production", "api.timeout"), Some(json!(8)));
}

#[test]
fn an_override_built_on_the_watched_tree_is_validated_like_any_change() {
    let tree = Tree::minimal();
    tree.write("schemas/global_schema.json", r#"{"type": "object", "properties": {"api": {"type": "object", "properties": {"timeout": {"type": "integer", "maximum": 60}}}}}"#);
    let host = open(&tree.root());
    let _watcher = watching_without_reloads(&host);
    host.set("production", "api.timeout", json!(40)).unwrap();
    host.set("production", "api.timeout", json!(50)).unwrap();
    let refused = host.set("production", "api.timeout", json!(61)).unwrap_err();
    assert!(refused.to_string().contains("api.timeout"), "{refused}");
    assert_eq!(common::value_in(&host, "production", "api.timeout"), Some(json!(50)));
    // A schema saved meanwhile applies to the next override (the event makes it read again).
    tree.write("schemas/global_schema.json", r#"{"type": "object", "properties": {"api": {"type": "object", "properties": {"timeout": {"type": "integer", "maximum": 90}}}}}"#);
    common::eventually("the saved schema allows 70", || host.set("production", "api.timeout", json!(70)).is_ok());
    assert_eq!(common::value_in(&host, "production", "api.timeout"), Some(json!(70)));
}
