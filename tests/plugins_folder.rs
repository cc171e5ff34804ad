//! The drop-in plugins folder under a watching host: add, replace and delete signed plugins
//! without a restart; half-copied, unsigned and failing new versions are refused while the
//! previous version keeps running.

use crate::common;

use std::fs;
use std::time::Duration;

use common::wasm::PluginTree;
use common::Tree;
use potter_config::events::{Event, Subscription};
use potter_config::runtime::ConfigHost;
use potter_config::watch::WatchOptions;
use potter_engine::ViewKey;
use potter_plugin::PluginStatus;
use serde_json::{json, Value};

/// Long enough for a debounced reload, plus the settle time of a file still arriving.
const WAIT: Duration = Duration::from_secs(15);

fn next_event(subscription: &mut Subscription) -> Option<Event> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    runtime.block_on(async { tokio::time::timeout(WAIT, subscription.recv()).await.ok().flatten() })
}

/// The next change event (skipping none: anything else fails the test).
fn expect_changed(subscription: &mut Subscription) -> (String, Vec<(String, Option<Value>)>) {
    match next_event(subscription) {
        Some(Event::Changed { actor, changes, .. }) => (actor, changes.into_iter().map(|c| (c.key, c.new)).collect()),
        other => panic!("expected a change, got {other:?}"),
    }
}

fn expect_rejected(subscription: &mut Subscription) -> (String, Vec<String>) {
    match next_event(subscription) {
        Some(Event::Rejected { actor, diagnostics, .. }) => (actor, diagnostics),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn value(host: &ConfigHost, key: &str) -> Option<Value> {
    host.snapshot().view(&ViewKey::environment("production")).unwrap().get(key)
}

/// A watched host over a minimal tree, `source-scripted` reading `<root>/feed/` and answering
/// `{"remote": {"x": 1}}`, and a subscription to `remote` in production.
struct Live {
    tree: PluginTree,
    host: ConfigHost,
    _watcher: potter_config::watch::Watcher,
    events: Subscription,
}

impl Live {
    fn start() -> Live {
        let tree = PluginTree::new(Tree::minimal());
        tree.tree.write("feed/output.json", r#"{"remote": {"x": 1}}"#);
        tree.tree.write("feed2/output.json", r#"{"remote": {"x": 2}}"#);
        let host = ConfigHost::open(tree.options()).unwrap();
        let watcher = host.watch(WatchOptions::default()).unwrap();
        let events = host.subscribe(&ViewKey::environment("production"), "").unwrap();
        Live { tree, host, _watcher: watcher, events }
    }

    fn install_feed(&self, directory: &str, version: &str) {
        self.tree.install_as("source-scripted", "feed", |manifest| {
            manifest.replace("directory = \"scripted\"", &format!("directory = \"{directory}\"")).replace("version = \"0.1.0\"", &format!("version = \"{version}\""))
        });
    }
}

#[test]
fn a_dropped_in_plugin_goes_live_a_replacement_swaps_in_and_a_deletion_unloads_it() {
    let mut live = Live::start();
    live.install_feed("feed", "1");
    let (actor, changes) = expect_changed(&mut live.events);
    assert_eq!(actor, "plugin:feed");
    assert_eq!(changes, vec![("remote.x".to_owned(), Some(json!(1)))]);
    assert_eq!(live.host.plugin_list()[0].version.as_deref(), Some("1"));

    live.install_feed("feed2", "2");
    let (_, changes) = expect_changed(&mut live.events);
    assert_eq!(changes, vec![("remote.x".to_owned(), Some(json!(2)))]);
    assert_eq!(live.host.plugin_list()[0].version.as_deref(), Some("2"));

    live.tree.remove("feed");
    let (actor, changes) = expect_changed(&mut live.events);
    assert_eq!(actor, "plugin:feed");
    assert_eq!(changes, vec![("remote.x".to_owned(), None)], "its layer left through a normal change");
    assert!(live.host.plugin_list().is_empty());
    let history = live.tree.tree.state().join("history.db");
    assert!(history.exists(), "the changes were recorded");
}

#[test]
fn an_unsigned_new_version_is_refused_and_the_old_one_keeps_running() {
    let mut live = Live::start();
    live.install_feed("feed", "1");
    expect_changed(&mut live.events);
    // A new module and manifest without a new signature: the old signature no longer matches.
    let (wasm, manifest, _signature) = live.tree.prepare("source-scripted", "feed", |m| m.replace("directory = \"scripted\"", "directory = \"feed2\""));
    fs::copy(&manifest, potter_plugin::manifest_path(&live.tree.wasm("feed"))).unwrap();
    fs::copy(&wasm, live.tree.wasm("feed")).unwrap();
    let (actor, diagnostics) = expect_rejected(&mut live.events);
    assert_eq!(actor, "plugin:feed");
    assert!(diagnostics[0].starts_with("plugin feed: refused: the ") && diagnostics[0].contains("was modified after signing"), "{diagnostics:?}");
    assert_eq!(value(&live.host, "remote.x"), Some(json!(1)), "the old version's output stays");
    let listed = &live.host.plugin_list()[0];
    assert_eq!(listed.status, PluginStatus::Loaded);
    assert_eq!(listed.version.as_deref(), Some("1"));
    assert!(listed.refused_update.as_deref().unwrap_or_default().contains("modified after signing"), "{listed:?}");
}

#[test]
fn a_half_copied_plugin_is_never_loaded_and_loads_once_complete() {
    let mut live = Live::start();
    let (wasm, manifest, signature) = live.tree.prepare("source-scripted", "feed", |m| m.replace("directory = \"scripted\"", "directory = \"feed\""));
    let bytes = fs::read(&wasm).unwrap();
    // Signature and manifest first, then half of the module: the state of an interrupted copy.
    fs::copy(&signature, potter_plugin::signature_path(&live.tree.wasm("feed"))).unwrap();
    fs::copy(&manifest, potter_plugin::manifest_path(&live.tree.wasm("feed"))).unwrap();
    fs::write(live.tree.wasm("feed"), &bytes[..bytes.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(value(&live.host, "remote.x"), None);
    fs::write(live.tree.wasm("feed"), &bytes).unwrap();
    let (_, changes) = expect_changed(&mut live.events);
    assert_eq!(changes, vec![("remote.x".to_owned(), Some(json!(1)))]);
    assert!(live.host.plugin_list()[0].refused_update.is_none(), "nothing was refused on the way");
}

#[test]
fn a_truncated_file_that_stays_truncated_is_refused_after_it_settles() {
    let mut live = Live::start();
    let (wasm, manifest, signature) = live.tree.prepare("source-scripted", "feed", |m| m.replace("directory = \"scripted\"", "directory = \"feed\""));
    let bytes = fs::read(&wasm).unwrap();
    fs::copy(&signature, potter_plugin::signature_path(&live.tree.wasm("feed"))).unwrap();
    fs::copy(&manifest, potter_plugin::manifest_path(&live.tree.wasm("feed"))).unwrap();
    fs::write(live.tree.wasm("feed"), &bytes[..bytes.len() / 3]).unwrap();
    let (actor, diagnostics) = expect_rejected(&mut live.events);
    assert_eq!(actor, "plugin:feed");
    assert!(diagnostics[0].contains("plugin feed: refused: the module was modified after signing"), "{diagnostics:?}");
    assert_eq!(live.host.plugin_list()[0].status, PluginStatus::Refused);
}

#[test]
fn a_new_version_failing_its_first_call_is_refused_and_the_old_one_keeps_running() {
    let mut live = Live::start();
    live.tree.install_as("echo-config", "guard", |m| m.replace("version = \"0.1.0\"", "version = \"1\""));
    // echo-config only reports warnings and adds no keys: no value changes, so wait for the list.
    wait_until(|| live.host.plugin_list().iter().any(|p| p.name == "guard" && p.version.as_deref() == Some("1")));
    // Version 2 traps in `validate`: the reload that would bring it in is rejected.
    live.tree.install_as("panics", "guard", |m| m.replace("version = \"0.1.0\"", "version = \"2\""));
    let (actor, diagnostics) = expect_rejected(&mut live.events);
    assert_eq!(actor, "plugin:guard");
    assert!(diagnostics.iter().any(|d| d.contains("plugin guard: validate: trapped")), "{diagnostics:?}");
    let listed = &live.host.plugin_list()[0];
    assert_eq!((listed.status, listed.version.as_deref()), (PluginStatus::Loaded, Some("1")));
    assert!(listed.refused_update.as_deref().unwrap_or_default().contains("new version refused"), "{listed:?}");
    // The host still serves changes with version 1 validating them.
    live.tree.tree.write("global.json", r#"{"api": {"timeout": 31, "rate_limit": 100}}"#);
    let (_, changes) = expect_changed(&mut live.events);
    assert_eq!(changes, vec![("api.timeout".to_owned(), Some(json!(31)))]);
}

fn wait_until(condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "condition not met within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_source_with_a_poll_interval_is_asked_again_without_any_file_event() {
    let mut live = Live::start();
    live.tree.tree.write("global.json", r#"{"api": {"timeout": 30, "rate_limit": 100}, "plugins": {"feed": {"poll_interval_ms": 100}}}"#);
    expect_changed(&mut live.events);
    live.install_feed("feed", "1");
    expect_changed(&mut live.events);
    // Written in place, outside the tree's watched files' meaning: only the poll notices.
    live.tree.tree.write("feed/output.json", r#"{"remote": {"x": 5}}"#);
    let (actor, changes) = expect_changed(&mut live.events);
    assert!(actor == "plugin-poll" || actor == "file-watch", "{actor}");
    assert_eq!(changes, vec![("remote.x".to_owned(), Some(json!(5)))]);
}

#[test]
fn plugins_deleted_while_reloads_run_leave_a_consistent_configuration() {
    let live = Live::start();
    let files = live.tree.prepare("source-scripted", "feed", |m| m.replace("directory = \"scripted\"", "directory = \"feed\""));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reloader = {
        let host = live.host.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = host.reload();
            }
        })
    };
    let (wasm, manifest, signature) = &files;
    for _ in 0..20 {
        fs::copy(manifest, potter_plugin::manifest_path(&live.tree.wasm("feed"))).unwrap();
        fs::copy(wasm, live.tree.wasm("feed")).unwrap();
        fs::copy(signature, potter_plugin::signature_path(&live.tree.wasm("feed"))).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        live.tree.remove("feed");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    reloader.join().expect("no reload panicked");
    live.host.reload().unwrap();
    assert_eq!(value(&live.host, "remote.x"), None, "the last state of the folder is empty");
    assert!(live.host.plugin_list().is_empty(), "{:?}", live.host.plugin_list());
}

/// A plugin refused because its key is not trusted loads once the operator trusts the key: the
/// watcher follows the trust store too, so its files need not be touched again.
#[test]
fn a_plugin_refused_for_an_untrusted_key_loads_once_the_key_is_trusted() {
    let mut live = Live::start();
    let second = potter_plugin::keygen(&live.tree.tree.root().parent().unwrap().join("second-signer")).unwrap();
    let files = live.tree.prepare_signed_by("source-scripted", "feed", |m| m.replace("directory = \"scripted\"", "directory = \"feed\""), common::wasm::Signing::Checked, &second);
    live.tree.install_prepared("feed", files);
    let (actor, diagnostics) = expect_rejected(&mut live.events);
    assert_eq!(actor, "plugin:feed");
    assert!(diagnostics[0].starts_with("plugin feed: ") && diagnostics[0].contains("trust"), "{diagnostics:?}");
    assert_eq!(value(&live.host, "remote.x"), None);

    potter_plugin::trust_with(&second.public_key, &live.tree.tree.state().join("trusted-keys"), &potter_plugin::Allowance::all()).unwrap();
    let (actor, changes) = expect_changed(&mut live.events);
    assert_eq!(actor, "plugin:feed");
    assert_eq!(changes, vec![("remote.x".to_owned(), Some(json!(1)))]);
    assert_eq!(live.host.plugin_list()[0].status, PluginStatus::Loaded);
}
