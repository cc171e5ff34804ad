//! The embedding API over real files: loads, reloads, bad input, overrides and concurrent readers.

use crate::common;

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::Tree;
use potter_config::{ConfigHost, Error, Options};
use serde_json::json;

fn open(tree: &Tree) -> Result<ConfigHost, Error> {
    let mut options = Options::new(tree.root());
    options.env_vars = Some(Vec::new());
    ConfigHost::open(options)
}

fn open_err(tree: &Tree) -> String {
    match open(tree) {
        Ok(_) => panic!("the tree loaded but should not have"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn typed_reads_follow_the_view() {
    let tree = Tree::minimal();
    tree.write("services/api.json", r#"{"api": {"timeout": 5}}"#);
    let host = open(&tree).unwrap();
    let production = host.view("production", None, None).unwrap();
    let api = host.view("production", Some("api"), None).unwrap();
    assert_eq!(production.get::<u32>("api.timeout").unwrap(), 30);
    assert_eq!(api.get::<u32>("api.timeout").unwrap(), 5);
    assert_eq!(api.get_or::<u32>("api.missing", 7).unwrap(), 7);
    assert!(matches!(api.get::<u32>("api.missing"), Err(Error::NotFound(_))));
    assert!(api.get_or::<String>("api.timeout", "x".into()).is_err(), "a wrong type is an error, not the default");
    #[derive(serde::Deserialize)]
    struct ApiSettings {
        timeout: u32,
        rate_limit: u32,
    }
    let settings: ApiSettings = api.extract("api").unwrap();
    assert_eq!((settings.timeout, settings.rate_limit), (5, 100));
}

#[test]
fn a_load_merges_only_the_views_that_are_read() {
    // Views are merged on first use. A load that merged every view of a tree without secrets or
    // schemas (to look for sealed secrets) took 1.5 GB and 2.8 s for 500 services.
    let tree = Tree::minimal();
    for service in ["api", "web", "batch"] {
        tree.write(&format!("services/{service}.json"), r#"{"api": {"timeout": 5}}"#);
    }
    let host = open(&tree).unwrap();
    assert_eq!(host.snapshot().merged_view_count(), 0);
    assert_eq!(host.view("production", Some("api"), None).unwrap().get::<u32>("api.timeout").unwrap(), 5);
    // The service's view and the environment's view it is built on; no other service's.
    assert_eq!(host.snapshot().merged_view_count(), 2);
}

#[test]
fn an_unknown_environment_is_refused() {
    let tree = Tree::minimal();
    let host = open(&tree).unwrap();
    let error = host.view("prod", None, None).err().expect("refused").to_string();
    assert!(error.contains("unknown environment `prod`"), "{error}");
}

#[test]
fn a_failed_reload_keeps_the_previous_snapshot() {
    let tree = Tree::minimal();
    let host = open(&tree).unwrap();
    let view = host.view("production", None, None).unwrap();
    let before = host.snapshot().version();
    tree.write("environments/production.json", "{\n  \"api\": {\"timeout\": }\n}\n");
    let error = host.reload().unwrap_err().to_string();
    assert!(error.contains("environments/production.json:2:"), "{error}");
    assert_eq!(host.snapshot().version(), before);
    assert_eq!(view.get::<u32>("api.timeout").unwrap(), 30);
    // The next good save is applied normally.
    tree.write("environments/production.json", r#"{"api": {"timeout": 12}}"#);
    host.reload().unwrap();
    assert_eq!(view.get::<u32>("api.timeout").unwrap(), 12);
}

#[test]
fn runtime_overrides_win_and_can_be_removed() {
    let tree = Tree::minimal();
    let host = open(&tree).unwrap();
    let view = host.view("production", None, None).unwrap();
    host.set("production", "api.timeout", json!(99)).unwrap();
    assert_eq!(view.get::<u32>("api.timeout").unwrap(), 99);
    assert_eq!(host.view("staging", None, None).unwrap().get::<u32>("api.timeout").unwrap(), 30, "overrides are per environment");
    host.unset("production", "api.timeout").unwrap();
    assert_eq!(view.get::<u32>("api.timeout").unwrap(), 30);
    assert!(host.set("nowhere", "api.timeout", json!(1)).is_err());
    assert!(host.set("production", "api..timeout", json!(1)).is_err());
}

#[test]
fn readers_see_the_old_or_the_new_snapshot_never_a_mix() {
    let tree = Tree::minimal();
    tree.write("global.json", r#"{"pair": {"a": 0, "b": 0}}"#);
    let host = open(&tree).unwrap();
    let view = host.view("production", None, None).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (view, stop) = (view.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                let mut last_version = 0;
                while !stop.load(Ordering::Relaxed) {
                    let current = view.current().unwrap();
                    let a = current.get("pair.a").unwrap();
                    let b = current.get("pair.b").unwrap();
                    assert_eq!(a, b, "a half-applied reload was visible");
                    let version = a.as_u64().unwrap();
                    assert!(version >= last_version, "snapshots went backwards");
                    last_version = version;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for i in 1..=200 {
        tree.write("global.json", &format!(r#"{{"pair": {{"a": {i}, "b": {i}}}}}"#));
        host.reload().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().expect("reader panicked") > 0);
    }
    assert_eq!(view.get::<u64>("pair.a").unwrap(), 200);
}

#[test]
fn malformed_files_name_file_line_and_column() {
    for (file, text, expected) in [
        ("global.json", "{\n  \"a\": [1, 2,,]\n}\n", "global.json:2:"),
        ("global.yaml", "a:\n  b: [1, 2\n", "global.yaml:"),
        ("global.toml", "a = 1\nb = \n", "global.toml:2:"),
        ("environments/production.json", "{\"a\": 1, \"a\": 2}", "environments/production.json:1:"),
    ] {
        let tree = Tree::minimal();
        if file.starts_with("global.") {
            tree.remove("global.json");
        }
        tree.write(file, text);
        let error = open_err(&tree);
        assert!(error.contains(expected), "{file}: {error}");
    }
}

#[test]
fn invalid_utf8_is_refused_with_its_position() {
    let tree = Tree::minimal();
    tree.write_bytes("global.json", b"{\n  \"name\": \"caf\xe9\"\n}\n");
    let error = open_err(&tree);
    assert!(error.contains("global.json:2:") && error.contains("UTF-8"), "{error}");
}

#[test]
fn a_100_mb_file_is_refused_before_it_is_read() {
    let tree = Tree::minimal();
    let path = tree.root().join("global.json");
    fs::File::create(&path).unwrap().set_len(100 * 1024 * 1024).unwrap();
    let error = open_err(&tree);
    assert!(error.contains("global.json") && error.contains("larger than"), "{error}");
}

#[test]
fn ten_thousand_levels_of_nesting_are_refused() {
    let tree = Tree::minimal();
    tree.write("global.json", &format!("{}{}", "{\"a\":".repeat(10_000), "}".repeat(10_000)));
    let error = open_err(&tree);
    assert!(error.contains("global.json:1:") && error.contains("nesting"), "{error}");
}

#[test]
fn a_directory_or_unreadable_entry_is_refused_by_name() {
    let tree = Tree::minimal();
    fs::create_dir(tree.root().join("services/web.json")).unwrap();
    let error = open_err(&tree);
    assert!(error.contains("services/web.json") && error.contains("not a regular file"), "{error}");

    // A dangling symlink cannot be read even by root.
    let tree = Tree::minimal();
    std::os::unix::fs::symlink(tree.root().join("missing.json"), tree.root().join("users/ghost.json")).unwrap();
    let error = open_err(&tree);
    assert!(error.contains("ghost.json"), "{error}");
}

#[test]
fn two_files_for_one_layer_are_refused_naming_both() {
    let tree = Tree::minimal();
    tree.write("global.yaml", "a: 1\n");
    let error = open_err(&tree);
    assert!(error.contains("global.json") && error.contains("global.yaml"), "{error}");
}

#[test]
fn environment_variables_override_files() {
    let tree = Tree::minimal();
    let mut options = Options::new(tree.root());
    options.env_vars = Some(vec![("POTTER_API__TIMEOUT".into(), "45".into()), ("POTTER_API__RATE_LIMIT".into(), "7".into())]);
    let host = ConfigHost::open(options).unwrap();
    let view = host.view("production", None, None).unwrap();
    assert_eq!(view.get::<u32>("api.timeout").unwrap(), 45);
    assert_eq!(view.get::<u32>("api.rate_limit").unwrap(), 7);
}

#[test]
fn options_debug_never_shows_environment_values() {
    let mut options = Options::new("config");
    options.env_vars = Some(vec![("POTTER_SECRET_KEY_PRODUCTION".into(), "c2VjcmV0LWtleS1tYXRlcmlhbA==".into())]);
    let shown = format!("{options:?}");
    assert!(shown.contains("POTTER_SECRET_KEY_PRODUCTION"), "{shown}");
    assert!(!shown.contains("c2VjcmV0"), "{shown}");
}

#[test]
fn a_change_revalidates_only_what_it_can_affect_but_a_schema_change_revalidates_everything() {
    let tree = Tree::minimal();
    tree.write("schemas/global_schema.json", r#"{"properties": {"api": {"properties": {"timeout": {"type": "integer", "maximum": 100}}}}}"#);
    let host = open(&tree).unwrap();
    host.set("staging", "api.timeout", json!(90)).unwrap();
    let error = host.set("production", "api.timeout", json!(500)).unwrap_err().to_string();
    assert!(error.contains("api.timeout") && error.contains("must be ≤ 100"), "{error}");
    // A tighter schema makes every environment invalid, including those no layer change touched.
    tree.write("schemas/global_schema.json", r#"{"properties": {"api": {"properties": {"timeout": {"type": "integer", "maximum": 10}}}}}"#);
    let error = host.reload().unwrap_err().to_string();
    assert!(error.contains("development"), "an environment no change touched is checked again: {error}");
    assert!(error.contains("must be ≤ 10"), "{error}");
}

#[test]
fn concurrent_writers_share_commits_yet_go_live_in_order_and_lose_nothing() {
    let tree = Tree::minimal();
    let host = open(&tree).unwrap();
    let mut events = host.subscribe(&potter_config::engine::ViewKey::environment("production"), "").unwrap();
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let host = host.clone();
            std::thread::spawn(move || {
                let mut versions = Vec::new();
                for round in 0..25 {
                    let snapshot = host.set("production", &format!("load.writer{writer}"), json!(round)).unwrap();
                    versions.push(snapshot.version());
                }
                versions
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for writer in writers {
        let versions = writer.join().unwrap();
        assert!(versions.windows(2).all(|pair| pair[0] < pair[1]), "one writer's changes go live in order: {versions:?}");
        acknowledged.extend(versions);
    }
    let snapshot = host.snapshot();
    let view = snapshot.view(&potter_config::engine::ViewKey::environment("production")).unwrap();
    for writer in 0..8 {
        assert_eq!(view.get(&format!("load.writer{writer}")), Some(json!(24)), "writer {writer}'s last value is live");
    }
    acknowledged.sort();
    acknowledged.dedup();
    assert_eq!(acknowledged.len(), 200, "every change got its own version");
    assert_eq!(snapshot.version(), *acknowledged.last().unwrap());
    // Subscribers see the versions in increasing order, none skipped.
    let mut seen = Vec::new();
    while let Some(event) = events.try_recv() {
        if let potter_config::events::Event::Changed { version, .. } = event {
            seen.push(version);
        }
    }
    assert_eq!(seen, acknowledged, "events in version order, one per change");
    // A fresh host reads the same overrides back from the history.
    drop(host);
    let reopened = open(&tree).unwrap();
    assert_eq!(reopened.snapshot().view(&potter_config::engine::ViewKey::environment("production")).unwrap().get("load.writer3"), Some(json!(24)));
}

#[test]
fn a_type_error_names_the_file_line_and_column_of_the_offending_value() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Limits {
        burst: u32,
        window: u32,
    }
    let tree = Tree::minimal();
    let text = "{\n  \"limits\": {\n    \"burst\": 10,\n    \"window\": \"a minute\"\n  }\n}\n";
    tree.write("services/api.json", text);
    let host = open(&tree).unwrap();
    let api = host.view("production", Some("api"), None).unwrap();
    let leaf = api.get::<u32>("limits.window").unwrap_err();
    assert!(matches!(&leaf, Error::Type { path, .. } if path == "limits.window"), "{leaf:?}");
    let leaf = leaf.to_string();
    assert!(leaf.contains("services/api.json:4:") && leaf.contains("expected u32"), "{leaf}");
    let subtree = api.extract::<Limits>("limits").unwrap_err().to_string();
    assert!(subtree.contains("`limits.window` at services/api.json:4:") && subtree.contains("expected u32"), "{subtree}");
    // A value set by no file (a runtime override) has no file position: its key path is still
    // named, with the history version that set it.
    let version = host.set("production", "limits.burst", json!("many")).unwrap().version();
    let api = host.view("production", Some("api"), None).unwrap();
    let overridden = api.extract::<Limits>("limits").unwrap_err().to_string();
    assert!(overridden.contains(&format!("`limits.burst` at runtime overrides (version {version}): ")) && !overridden.contains("services/api.json"), "{overridden}");
}

