//! Typed settings (`ConfigHost::bind`), the host's health and the start-up check, against a real
//! tree in a temporary folder with the history kept in a real SQLite file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use potter_config::{ConfigHost, Options, SettingsUpdate, Status, ViewKey};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct ApiSettings {
    rate_limit: u32,
    timeout_ms: u64,
}

struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new(global: &str, production: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("config");
        std::fs::create_dir_all(root.join("environments")).unwrap();
        let tree = Self { _dir: dir, root };
        tree.save("global.json", global);
        tree.save("environments/production.json", production);
        tree
    }

    fn save(&self, relative: &str, text: &str) {
        let path: &Path = &self.root.join(relative);
        std::fs::write(path, text).unwrap();
    }

    fn open(&self) -> ConfigHost {
        ConfigHost::open(Options::new(&self.root)).unwrap()
    }
}

const GLOBAL: &str = r#"{ "api": { "rate_limit": 100, "timeout_ms": 2000 }, "other": { "x": 1 } }"#;

fn production() -> ViewKey {
    ViewKey::environment("production")
}

#[test]
fn a_saved_change_rebuilds_the_value_once_and_the_stream_yields_the_typed_pair() {
    let tree = Tree::new(GLOBAL, r#"{ "api": { "rate_limit": 500 } }"#);
    let host = tree.open();
    let api = host.bind::<ApiSettings>(&production(), "api").unwrap();
    assert_eq!(*api.get(), ApiSettings { rate_limit: 500, timeout_ms: 2000 });
    let mut changes = api.changes();

    tree.save("environments/production.json", r#"{ "api": { "rate_limit": 750 } }"#);
    host.reload().unwrap();

    // Live as soon as the reload returns: the commit rebuilt the value.
    assert_eq!(api.get().rate_limit, 750);
    match changes.try_recv() {
        Some(SettingsUpdate::Changed { old, new, version }) => {
            assert_eq!(old.rate_limit, 500);
            assert_eq!(new.rate_limit, 750);
            assert_eq!(version, host.snapshot().version());
            assert_eq!(version, api.version());
        }
        other => panic!("expected a typed change, got {other:?}"),
    }
    assert!(changes.try_recv().is_none(), "one change, one update");

    // Reads between changes hand out the same allocation: nothing is rebuilt per read.
    let first = api.get();
    let second = api.get();
    assert!(Arc::ptr_eq(&first, &second));
}

#[test]
fn a_change_outside_the_prefix_neither_rebuilds_nor_notifies() {
    let tree = Tree::new(GLOBAL, r#"{ "api": { "rate_limit": 500 } }"#);
    let host = tree.open();
    let api = host.bind::<ApiSettings>(&production(), "api").unwrap();
    let mut changes = api.changes();
    let before = api.get();

    host.set("production", "other.x", 2.into()).unwrap();

    assert!(Arc::ptr_eq(&before, &api.get()), "the value was not rebuilt");
    assert!(changes.try_recv().is_none());
    assert_eq!(host.view("production", None, None).unwrap().get::<u32>("other.x").unwrap(), 2);
}

#[test]
fn a_change_that_does_not_deserialize_is_refused_for_the_binding_naming_file_line_and_column() {
    let tree = Tree::new(GLOBAL, "{ \"api\": { \"rate_limit\": 500 } }");
    let host = tree.open();
    let api = host.bind::<ApiSettings>(&production(), "api").unwrap();
    let mut changes = api.changes();

    // Valid configuration (there is no schema), but not an `ApiSettings`.
    tree.save("environments/production.json", "{\n  \"api\": {\n    \"rate_limit\": \"lots\"\n  }\n}\n");
    host.reload().unwrap();

    // Everyone else reads the new value; the binding keeps its old one.
    let view = host.view("production", None, None).unwrap();
    assert_eq!(view.value("api.rate_limit"), Some("lots".into()));
    assert_eq!(api.get().rate_limit, 500);
    let refusal = match changes.try_recv() {
        Some(SettingsUpdate::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(refusal.message.contains("api.rate_limit"), "{}", refusal.message);
    assert!(refusal.message.contains("environments/production.json:3:19"), "{}", refusal.message);
    assert!(refusal.message.contains("invalid type"), "{}", refusal.message);
    assert_eq!(refusal.prefix, "api");
    assert_eq!(api.refusal().as_ref(), Some(&refusal));

    let health = host.health();
    assert_eq!(health.status, Status::Degraded);
    assert_eq!(health.refused_settings, vec![refusal]);

    // The next change that deserializes is taken, paired with the last good value.
    tree.save("environments/production.json", r#"{ "api": { "rate_limit": 900 } }"#);
    host.reload().unwrap();
    match changes.try_recv() {
        Some(SettingsUpdate::Changed { old, new, .. }) => {
            assert_eq!(old.rate_limit, 500);
            assert_eq!(new.rate_limit, 900);
        }
        other => panic!("expected a typed change, got {other:?}"),
    }
    assert!(api.refusal().is_none());
    assert_eq!(host.health().status, Status::Ok);
}

#[test]
fn a_removed_subtree_is_refused_and_the_value_stays() {
    let tree = Tree::new(r#"{ "other": { "x": 1 } }"#, r#"{ "api": { "rate_limit": 5, "timeout_ms": 10 } }"#);
    let host = tree.open();
    let api = host.bind::<ApiSettings>(&production(), "api").unwrap();
    tree.save("environments/production.json", "{}");
    host.reload().unwrap();
    assert_eq!(api.get().rate_limit, 5);
    let refusal = api.refusal().expect("refused");
    assert!(refusal.message.contains("`api` is not set"), "{}", refusal.message);
}

#[test]
fn binding_fails_now_when_the_current_value_does_not_deserialize() {
    let tree = Tree::new(GLOBAL, "{\n  \"api\": { \"timeout_ms\": -1 }\n}");
    let host = tree.open();
    let error = host.bind::<ApiSettings>(&production(), "api").unwrap_err().to_string();
    assert!(error.contains("api.timeout_ms"), "{error}");
    assert!(error.contains("environments/production.json:2:26"), "{error}");

    let error = host.bind::<ApiSettings>(&ViewKey::environment("nowhere"), "api").unwrap_err().to_string();
    assert!(error.contains("nowhere"), "{error}");
}

#[test]
fn a_dropped_binding_is_no_longer_updated() {
    let tree = Tree::new(GLOBAL, "{}");
    let host = tree.open();
    let api = host.bind::<ApiSettings>(&production(), "api").unwrap();
    drop(api);
    host.set("production", "api.rate_limit", 1.into()).unwrap();
    assert!(host.health().refused_settings.is_empty());
}

#[tokio::test]
async fn the_stream_is_async_and_pairs_chain_across_changes() {
    let tree = Tree::new(GLOBAL, "{}");
    let host = tree.open();
    let api = host.bind::<ApiSettings>(&production(), "api").unwrap();
    let mut changes = api.changes();
    let writer = host.clone();
    tokio::task::spawn_blocking(move || {
        for limit in [1u32, 2, 3] {
            writer.set("production", "api.rate_limit", limit.into()).unwrap();
        }
    })
    .await
    .unwrap();
    let mut pairs = Vec::new();
    for _ in 0..3 {
        match changes.recv().await {
            Some(SettingsUpdate::Changed { old, new, .. }) => pairs.push((old.rate_limit, new.rate_limit)),
            other => panic!("expected a typed change, got {other:?}"),
        }
    }
    assert_eq!(pairs, vec![(100, 1), (1, 2), (2, 3)]);
}

#[test]
fn health_reports_the_service_flag_and_an_outstanding_refusal() {
    let tree = Tree::new(GLOBAL, "{}");
    let host = tree.open();
    let health = host.health();
    assert_eq!(health.status, Status::Ok);
    assert_eq!(health.version, host.snapshot().version());
    assert!(health.last_refusal.is_none());

    host.report_unhealthy("database unreachable");
    let health = host.health();
    assert_eq!(health.status, Status::Unhealthy);
    assert_eq!(health.unhealthy.as_ref().map(|u| u.reason.as_str()), Some("database unreachable"));
    host.report_healthy();
    assert_eq!(host.health().status, Status::Ok);

    // A save that does not parse is refused: the version stays, the refusal is named.
    let version = host.snapshot().version();
    tree.save("environments/production.json", "{ \"api\": ");
    assert!(host.reload().is_err());
    let health = host.health();
    assert_eq!(health.status, Status::Degraded);
    assert_eq!(health.version, version);
    assert!(health.refusal_outstanding);
    let refusal = health.last_refusal.expect("recorded");
    assert!(refusal.diagnostics.join("\n").contains("environments/production.json"), "{:?}", refusal.diagnostics);

    // Fixed: the refusal is history, no longer outstanding.
    tree.save("environments/production.json", r#"{ "api": { "rate_limit": 1 } }"#);
    host.reload().unwrap();
    let health = host.health();
    assert_eq!(health.status, Status::Ok);
    assert!(!health.refusal_outstanding);
    assert!(health.last_refusal.is_some());
}

#[test]
fn validate_on_startup_names_an_unknown_view_and_marks_a_valid_start() {
    let tree = Tree::new(GLOBAL, "{}");
    let host = tree.open();
    assert!(!host.health().validated_on_startup);
    let error = host.validate_on_startup(&[production(), ViewKey::environment("staging")]).unwrap_err().to_string();
    assert!(error.contains("staging"), "{error}");
    assert!(!host.health().validated_on_startup);

    let report = host.validate_on_startup(&[production()]).unwrap();
    assert!(!report.has_errors());
    assert!(report.views.iter().all(|view| view.view == production()));
    assert!(host.health().validated_on_startup);
}
