//! Drop-in → live: a signed Rust source plugin copied into the plugins folder of a watching host,
//! until its contribution reaches a subscriber; and deletion until it is gone. The plugin's
//! compiled code is cached (one warm-up drop-in compiles it). A tree-file save → subscriber in
//! the same run is the baseline. Not a criterion bench: what matters is p50 and p99.
//!
//! `cargo bench -p potter-config --bench dropin [-- ROUNDS]` (default 50)

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use potter_config::events::{Event, Subscription};
use potter_config::watch::WatchOptions;
use potter_config::{ConfigHost, Options};
use potter_engine::ViewKey;

mod common;
use common::{count_arg, report};

fn next_change(runtime: &tokio::runtime::Runtime, events: &mut Subscription) -> Event {
    let event = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), events.recv()).await })
        .expect("an event within 10 s")
        .expect("the host is running");
    assert!(matches!(event, Event::Changed { .. }), "unexpected event: {event:?}");
    event
}

/// The signed module, manifest and signature of `source-scripted` as plugin `feed`.
fn signed_feed(repo: &Path, staging: &Path, state: &Path) -> [PathBuf; 3] {
    let built = repo.join("target/plugins");
    let wasm = staging.join("feed.wasm");
    fs::copy(built.join("source-scripted.wasm"), &wasm).unwrap();
    let manifest = fs::read_to_string(built.join("source-scripted.plugin.toml")).unwrap();
    let manifest = manifest.replace("name = \"source-scripted\"", "name = \"feed\"").replace("directory = \"scripted\"", "directory = \"feed\"");
    fs::write(potter_plugin::manifest_path(&wasm), manifest).unwrap();
    let key = potter_plugin::keygen(&staging.join("signer")).unwrap();
    // The feed reads a directory: its key must be allowed `dirs` grants.
    potter_plugin::trust_with(&key.public_key, &state.join("trusted-keys"), &potter_plugin::Allowance::parse("dirs").unwrap()).unwrap();
    let signature = potter_plugin::sign(&wasm, &key.secret_key).unwrap();
    // Copy order of a plain `cp feed.* plugins/`: the module before its signature.
    [potter_plugin::manifest_path(&wasm), wasm, signature]
}

fn main() {
    let rounds: usize = count_arg(50);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let status = Command::new("bash").arg(repo.join("scripts/build-plugins")).status().unwrap();
    assert!(status.success(), "scripts/build-plugins failed");

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    let state = dir.path().join("state");
    let staging = dir.path().join("staging");
    fs::create_dir_all(root.join("environments")).unwrap();
    fs::create_dir_all(root.join("plugins")).unwrap();
    fs::create_dir_all(root.join("feed")).unwrap();
    fs::create_dir_all(&staging).unwrap();
    fs::write(root.join("global.json"), r#"{"api": {"timeout": 30}}"#).unwrap();
    for env in ["development", "staging", "production"] {
        fs::write(root.join(format!("environments/{env}.json")), "{}").unwrap();
    }
    fs::write(root.join("feed/output.json"), r#"{"remote": {"x": 1}}"#).unwrap();
    let files = signed_feed(&repo, &staging, &state);

    let mut options = Options::new(&root);
    options.state_dir = state;
    let host = ConfigHost::open(options).unwrap();
    let _watcher = host.watch(WatchOptions::default()).unwrap();
    let mut events = host.subscribe(&ViewKey::environment("production"), "").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let install = |files: &[PathBuf; 3]| {
        for file in files {
            fs::copy(file, root.join("plugins").join(file.file_name().unwrap())).unwrap();
        }
    };
    let uninstall = |files: &[PathBuf; 3]| {
        for file in files.iter().rev() {
            fs::remove_file(root.join("plugins").join(file.file_name().unwrap())).unwrap();
        }
    };

    // Warm-up: compiles the plugin into the cache.
    install(&files);
    next_change(&runtime, &mut events);
    uninstall(&files);
    next_change(&runtime, &mut events);

    let (mut arrive, mut leave, mut save) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        std::thread::sleep(Duration::from_millis(30));
        let start = Instant::now();
        install(&files);
        next_change(&runtime, &mut events);
        arrive.push(start.elapsed());

        std::thread::sleep(Duration::from_millis(30));
        let start = Instant::now();
        uninstall(&files);
        next_change(&runtime, &mut events);
        leave.push(start.elapsed());

        std::thread::sleep(Duration::from_millis(30));
        let start = Instant::now();
        fs::write(root.join("global.json"), format!(r#"{{"api": {{"timeout": {}}}}}"#, 100 + round)).unwrap();
        next_change(&runtime, &mut events);
        save.push(start.elapsed());
    }
    report("baseline: tree file saved -> subscriber", save);
    report("drop-in: 3 files copied -> contribution live", arrive);
    report("delete: 3 files removed -> contribution gone", leave);
}
