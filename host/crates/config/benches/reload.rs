//! Save → subscriber latency for each save style, with the raw `notify` event latency (the floor)
//! measured in the same run. Not a criterion bench: what matters is the distribution (p50, p99).
//!
//! `cargo bench -p potter-config --bench reload [-- SAVES] [small|medium|large]` (default 200 saves
//! per style, small and medium)

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};
use potter_config::events::Event;
use potter_config::watch::WatchOptions;
use potter_config::{ConfigHost, Options};
use potter_engine::ViewKey;
use serde_json::json;

mod common;
use common::{copy_json_tree, corpus, count_arg, report, sizes_arg};

#[derive(Clone, Copy, Debug)]
enum Style {
    InPlace,
    Rename,
    DeleteCreate,
    SymlinkSwap,
}

/// The file every save rewrites: environments/production.json with a `bench.counter` key.
fn production_text(base: &serde_json::Value, counter: u64) -> String {
    let mut doc = base.clone();
    doc["bench"] = json!({ "counter": counter });
    serde_json::to_string_pretty(&doc).unwrap()
}

fn save(style: Style, root: &Path, text: &str, round: u64) {
    let file = root.join("environments/production.json");
    match style {
        Style::InPlace => fs::write(&file, text).unwrap(),
        Style::Rename => {
            let temp = root.join("environments/.production.json.tmp");
            fs::write(&temp, text).unwrap();
            fs::rename(&temp, &file).unwrap();
        }
        Style::DeleteCreate => {
            fs::remove_file(&file).unwrap();
            fs::write(&file, text).unwrap();
        }
        Style::SymlinkSwap => {
            // root/environments -> ..data/environments; ..data -> ..<round>
            let version = root.join(format!("..v{round}"));
            fs::create_dir_all(version.join("environments")).unwrap();
            fs::write(version.join("environments/production.json"), text).unwrap();
            for other in ["development", "staging"] {
                fs::copy(root.join("..seed").join(format!("{other}.json")), version.join(format!("environments/{other}.json"))).unwrap();
            }
            let temp = root.join("..data_tmp");
            symlink(format!("..v{round}"), &temp).unwrap();
            fs::rename(&temp, root.join("..data")).unwrap();
        }
    }
}

fn prepare(size: &str, style: Style, dir: &Path) -> (PathBuf, serde_json::Value) {
    let root = dir.join("config");
    copy_json_tree(&corpus(size), &root);
    let base: serde_json::Value = serde_json::from_str(&fs::read_to_string(root.join("environments/production.json")).unwrap()).unwrap();
    if let Style::SymlinkSwap = style {
        let seed = root.join("..seed");
        fs::create_dir_all(&seed).unwrap();
        for env in ["development", "staging"] {
            fs::copy(root.join(format!("environments/{env}.json")), seed.join(format!("{env}.json"))).unwrap();
        }
        let first = root.join("..v0");
        fs::rename(root.join("environments"), &first).unwrap();
        fs::create_dir_all(root.join("..v0tmp")).unwrap();
        fs::rename(&first, root.join("..v0tmp/environments")).unwrap();
        fs::rename(root.join("..v0tmp"), &first).unwrap();
        symlink("..v0", root.join("..data")).unwrap();
        symlink("..data/environments", root.join("environments")).unwrap();
    }
    (root, base)
}

fn pipeline(size: &str, style: Style, saves: u64) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let (root, base) = prepare(size, style, dir.path());
    let mut options = Options::new(&root);
    options.env_vars = Some(Vec::new());
    let host = ConfigHost::open(options).unwrap();
    let mut subscription = host.subscribe(&ViewKey::environment("production"), "bench").unwrap();
    let _watcher = host.watch(WatchOptions::default()).unwrap();
    let mut samples = Vec::new();
    for round in 1..=saves {
        let text = production_text(&base, round);
        save(style, &root, &text, round);
        let written = Instant::now();
        loop {
            match subscription.recv_blocking() {
                Some(Event::Changed { changes, .. }) if changes.iter().any(|c| c.new == Some(json!(round))) => break,
                Some(_) => continue,
                None => panic!("host gone"),
            }
        }
        samples.push(written.elapsed());
        std::thread::sleep(Duration::from_millis(30)); // let the debounce window close between saves
    }
    samples
}

fn raw_notify(size: &str, style: Style, saves: u64) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let (root, base) = prepare(size, style, dir.path());
    let (sender, receiver) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = sender.send(Instant::now());
        }
    })
    .unwrap();
    watcher.watch(&root, RecursiveMode::Recursive).unwrap();
    let mut samples = Vec::new();
    for round in 1..=saves {
        let text = production_text(&base, round);
        while receiver.try_recv().is_ok() {}
        save(style, &root, &text, round);
        let written = Instant::now();
        let first = receiver.recv_timeout(Duration::from_secs(5)).expect("notify event");
        samples.push(first.saturating_duration_since(written));
        std::thread::sleep(Duration::from_millis(30));
    }
    samples
}

fn main() {
    let saves: u64 = count_arg(200);
    // `large` (500 services) only when asked for by name: its corpus takes a while to generate.
    for size in sizes_arg(&["small", "medium"]) {
        for style in [Style::InPlace, Style::Rename, Style::DeleteCreate, Style::SymlinkSwap] {
            report(&format!("{size} {style:?} notify floor"), raw_notify(size, style, saves));
            report(&format!("{size} {style:?} save -> subscriber"), pipeline(size, style, saves));
        }
    }
}
