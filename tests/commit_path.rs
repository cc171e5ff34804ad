//! One commit path (issue 14): every change kind — open, file save, set, batch, rollback, adopting
//! another process's change — goes live once, publishes one `Applied` event and calls
//! `on-config-changed` once; and readers (plugin list, validate, overrides) answer while a reload
//! holds the writer inside a slow source plugin. Real compiled guests, real files, real SQLite.

use crate::common;

use std::fs;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::logs::captured_logs;
use common::wasm::PluginTree;
use common::Tree;
use potter_config::events::{ChangeOrigin, Event, Subscription};
use potter_config::runtime::{ConfigHost, SetRequest};
use potter_engine::ViewKey;
use serde_json::json;

/// A tree with one environment (so a namespace plugin is told once per change, not once per
/// environment) and `namespace-probe`, whose `on-config-changed` logs the namespace it gets.
fn one_environment_with_probe(greeting: &str) -> PluginTree {
    captured_logs();
    let tree = PluginTree::new(Tree::minimal());
    tree.tree.remove("environments/development.json");
    tree.tree.remove("environments/staging.json");
    tree.tree.write("global.json", &format!(r#"{{"api": {{"timeout": 30}}, "plugins": {{"namespace-probe": {{"greeting": "{greeting}"}}}}}}"#));
    tree.install("namespace-probe");
    tree
}

/// `on-config-changed` calls that carried `greeting` so far (other tests' calls carry others).
fn calls(greeting: &str) -> Vec<String> {
    let marker = format!(r#"on-config-changed: {{"greeting":"{greeting}""#);
    captured_logs().lines().filter(|line| line.contains("plugin=\"namespace-probe\"") && line.contains(&marker)).map(str::to_owned).collect()
}

/// The `Changed` events ready now (each is one `Applied` that touched the prefix).
fn applied(subscription: &mut Subscription) -> Vec<Event> {
    std::iter::from_fn(|| subscription.try_recv()).collect()
}

/// Asserts the change just made told the plugin exactly once, with `limit`, and published exactly
/// one change event of `origin`.
fn assert_once(kind: &str, greeting: &str, before: usize, limit: u64, subscription: &mut Subscription, origin: ChangeOrigin) {
    let after = calls(greeting);
    assert_eq!(after.len(), before + 1, "{kind}: one on-config-changed call: {after:#?}");
    assert!(after.last().unwrap().contains(&format!(r#""limit":{limit}}}"#)), "{kind}: the plugin got the new namespace: {after:#?}");
    let events = applied(subscription);
    assert_eq!(events.len(), 1, "{kind}: one Applied event: {events:#?}");
    match &events[0] {
        Event::Changed { origin: got, changes, .. } => {
            assert_eq!(*got, origin, "{kind}: {events:#?}");
            assert_eq!(changes.len(), 1, "{kind}: {events:#?}");
            assert_eq!(changes[0].new, Some(json!(limit)), "{kind}: {events:#?}");
        }
        other => panic!("{kind}: expected a change, got {other:?}"),
    }
}

#[test]
fn every_change_kind_goes_live_once_tells_the_plugin_once_and_publishes_one_event() {
    let greeting = "commit path counts";
    let tree = one_environment_with_probe(greeting);
    let production = ViewKey::environment("production");

    // Open: the plugin is told once; the first load's event goes out before anyone can
    // subscribe, so a subscription made right after it finds nothing stale.
    let host = ConfigHost::open(tree.options()).unwrap();
    let opened = calls(greeting);
    assert_eq!(opened.len(), 1, "open: one on-config-changed call: {opened:#?}");
    assert!(opened[0].contains(r#""limit":3}"#), "{opened:#?}");
    let mut subscription = host.subscribe(&production, "plugins.namespace-probe").unwrap();
    assert!(applied(&mut subscription).is_empty(), "nothing pending after open");

    // File save (reload).
    let before = calls(greeting).len();
    tree.tree.write("environments/production.json", r#"{"plugins": {"namespace-probe": {"limit": 4}}}"#);
    host.reload().unwrap();
    assert_once("file save", greeting, before, 4, &mut subscription, ChangeOrigin::File);

    // Set.
    let before = calls(greeting).len();
    host.set("production", "plugins.namespace-probe.limit", json!(5)).unwrap();
    assert_once("set", greeting, before, 5, &mut subscription, ChangeOrigin::Cli);
    let at_five = host.snapshot().version();

    // Batch: several edits, one change.
    let before = calls(greeting).len();
    let edits = [("plugins.namespace-probe.limit".to_owned(), Some(json!(6))), ("api.timeout".to_owned(), Some(json!(31)))];
    host.edit_overrides("production", &edits, SetRequest::new(ChangeOrigin::Api, "batch"), false).unwrap();
    assert_once("batch", greeting, before, 6, &mut subscription, ChangeOrigin::Api);

    // Rollback (ends in edit_overrides).
    let before = calls(greeting).len();
    potter_config::timeline::rollback(&host, "production", at_five, SetRequest::new(ChangeOrigin::Rollback, "test"), false).unwrap();
    assert_once("rollback", greeting, before, 5, &mut subscription, ChangeOrigin::Rollback);

    // Adopt: another host on the same state writes; this one takes it in.
    let other = ConfigHost::open(tree.options()).unwrap();
    other.set("production", "plugins.namespace-probe.limit", json!(7)).unwrap();
    let before = calls(greeting).len();
    assert!(applied(&mut subscription).is_empty(), "nothing live here before syncing");
    host.sync_recorded_overrides().unwrap();
    assert_once("adopt", greeting, before, 7, &mut subscription, ChangeOrigin::Cli);
    assert_eq!(host.snapshot().version(), other.snapshot().version());

    // Syncing again, or a reload that changes nothing, tells nobody anything.
    let before = calls(greeting).len();
    host.sync_recorded_overrides().unwrap();
    host.reload().unwrap();
    assert_eq!(calls(greeting).len(), before);
    assert!(applied(&mut subscription).is_empty());
}

#[test]
fn readers_answer_while_a_reload_holds_the_writer_inside_a_slow_source() {
    captured_logs();
    let tree = PluginTree::new(Tree::minimal());
    let gated = tree.tree.root().join("gated");
    fs::create_dir_all(&gated).unwrap();
    tree.install("source-gated");
    let host = ConfigHost::open(tree.options()).unwrap();
    host.set("production", "api.timeout", json!(45)).unwrap();
    let production = ViewKey::environment("production");
    assert_eq!(host.snapshot().view(&production).unwrap().get("remote.gated"), Some(json!("start")));

    // Hold the next load, and reload in the background.
    let held_before = captured_logs().matches("load held").count();
    fs::write(gated.join("value"), "after").unwrap();
    fs::write(gated.join("hold"), "").unwrap();
    let (done, reloaded) = mpsc::channel();
    let reloader = {
        let host = host.clone();
        std::thread::spawn(move || done.send(host.reload().map(|snapshot| snapshot.version())).unwrap())
    };
    // The reload is inside the plugin's `load` (so it holds the writer) once the guest says so.
    let guard = Instant::now() + Duration::from_secs(60);
    while captured_logs().matches("load held").count() == held_before {
        assert!(Instant::now() < guard, "the source's load never started");
        std::thread::sleep(Duration::from_millis(5));
    }

    // Readers answer now, while the reload cannot finish (the hold file is still there). They
    // run on a thread of their own so that a reader that waits fails the test instead of hanging it.
    let (answered, answers) = mpsc::channel();
    {
        let host = host.clone();
        std::thread::spawn(move || {
            let _ = host.next_plugin_due();
            answered.send((host.plugin_list(), host.validate(), host.overrides("production"))).unwrap();
        });
    }
    let (plugins, report, overrides) = answers.recv_timeout(Duration::from_secs(60)).expect("the readers answered while the reload held the writer");
    assert!(matches!(reloaded.try_recv(), Err(mpsc::TryRecvError::Empty)), "the reload is still running");
    assert!(gated.join("hold").exists());
    assert!(plugins.iter().any(|info| info.name == "source-gated"), "{plugins:?}");
    assert!(!report.has_errors(), "{report:?}");
    assert_eq!(overrides, json!({"api": {"timeout": 45}}).as_object().unwrap().clone());
    // What readers see during the reload is the live configuration from before it.
    assert_eq!(host.snapshot().view(&production).unwrap().get("remote.gated"), Some(json!("start")));

    // Release the load: the reload finishes and its result goes live.
    fs::remove_file(gated.join("hold")).unwrap();
    let version = reloaded.recv_timeout(Duration::from_secs(60)).expect("the reload finished").unwrap();
    reloader.join().unwrap();
    assert_eq!(host.snapshot().version(), version);
    assert_eq!(host.snapshot().view(&production).unwrap().get("remote.gated"), Some(json!("after")));
}

/// A write that meets a file caught half-way through an in-place save (truncated, half written)
/// waits for the save to finish instead of refusing (the soak saw 48 % of PUTs refused this way);
/// a file that has been broken for longer than the settle limit is refused at once, naming it.
#[test]
fn a_write_during_a_half_written_save_waits_for_it_and_a_long_broken_file_is_refused() {
    let tree = Tree::minimal();
    tree.write("users/alice.json", r#"{"theme": "dark"}"#);
    let mut options = potter_config::Options::new(tree.root());
    options.state_dir = tree.state();
    options.env_vars = Some(Vec::new());
    let host = ConfigHost::open(options).unwrap();
    let alice = host.view("production", None, Some("alice")).unwrap();

    // The editor has written the first half of its in-place save; the rest follows 50 ms later.
    tree.write("users/alice.json", r#"{"theme": "li"#);
    let rest = {
        let path = tree.root().join("users/alice.json");
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            fs::write(path, r#"{"theme": "light"}"#).unwrap();
        })
    };
    host.set("production", "api.timeout", json!(45)).unwrap();
    rest.join().unwrap();
    assert_eq!(host.view("production", None, None).unwrap().value("api.timeout"), Some(json!(45)));
    assert_eq!(alice.value("theme"), Some(json!("light")), "the finished save, never the half");

    // Broken and left so (older than the settle limit): refused at once, the file named.
    tree.write("users/alice.json", r#"{"theme": "li"#);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let error = host.set("production", "api.timeout", json!(46)).unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(150), "no wait for a file broken long ago: {:?}", started.elapsed());
    assert!(error.to_string().contains("users/alice.json"), "{error}");
    assert_eq!(host.view("production", None, None).unwrap().value("api.timeout"), Some(json!(45)));
    assert_eq!(alice.value("theme"), Some(json!("light")));
}
