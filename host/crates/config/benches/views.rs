//! The shared bench's two kinds of work (`shared/bench/PEERS.md`), each against its hand-written
//! serde_json floor in the same run, in time and in peak memory:
//! - per view: for every service its own view, global ← production ← services/<name> at the root
//!   (floor: global and production parsed and merged once into a base, the base cloned per service
//!   and the service merged on top); Potter Config opens the tree (every file read and parsed with a
//!   position for every node) and builds every service's view with its leaf index;
//! - nested: one document, every service under `services.<name>` (floor: the files read, parsed and
//!   merged; Potter Config: the same data as global.json and environments/production.json, the
//!   production view built with its leaf index).
//!
//! Both trees hold only the files that work reads (global, production, the services), so both sides
//! parse the same bytes. History is off (it has its own benches), no schemas.
//!
//! `cargo bench -p potter-config --bench views -- [ROUNDS] [small|medium|large]`
//!
//! Each side runs in a child process of this binary: ROUNDS loads after one warm-up for the median
//! time, and one load alone for the peak RSS (the binary's own pages included, the same on both
//! sides).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use potter_config::{ConfigHost, Options};
use potter_engine::ViewKey;
use serde_json::Value;

mod common;
use common::{corpus, floor_merge_into as merge, service_names as services};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    PerView,
    Nested,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::PerView => "per-view",
            Mode::Nested => "nested",
        }
    }
}

fn read(path: PathBuf) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// Every service file's tree, by service name (the nested form's `services` object).
fn nested_services(corpus: &Path, names: &[String]) -> serde_json::Map<String, Value> {
    names.iter().map(|name| (name.clone(), read(corpus.join(format!("services/{name}.json"))))).collect()
}

/// The floor's work; the merged trees are returned so that they are all held at the end, as a
/// host holds its views.
fn floor(corpus: &Path, names: &[String], mode: Mode) -> Vec<Value> {
    let mut base = read(corpus.join("global.json"));
    merge(&mut base, read(corpus.join("environments/production.json")));
    match mode {
        Mode::PerView => names
            .iter()
            .map(|name| {
                let mut view = base.clone();
                merge(&mut view, read(corpus.join(format!("services/{name}.json"))));
                view
            })
            .collect(),
        Mode::Nested => {
            let nested = nested_services(corpus, names);
            // Not `json!({ "services": nested })`: that serializes the map into a copy.
            let services = Value::Object(serde_json::Map::from_iter([("services".to_owned(), Value::Object(nested))]));
            merge(&mut base, services);
            vec![base]
        }
    }
}

/// The tree Potter Config opens for `mode`, written once into `dir`.
fn potter_tree(corpus: &Path, names: &[String], mode: Mode, dir: &Path) -> PathBuf {
    let root = dir.join(mode.name());
    fs::create_dir_all(root.join("environments")).unwrap();
    fs::copy(corpus.join("global.json"), root.join("global.json")).unwrap();
    match mode {
        Mode::PerView => {
            fs::copy(corpus.join("environments/production.json"), root.join("environments/production.json")).unwrap();
            fs::create_dir_all(root.join("services")).unwrap();
            for name in names {
                fs::copy(corpus.join(format!("services/{name}.json")), root.join(format!("services/{name}.json"))).unwrap();
            }
        }
        Mode::Nested => {
            let mut production = read(corpus.join("environments/production.json"));
            assert!(production.get("services").is_none(), "production's own keys and the nested services do not meet");
            let nested = nested_services(corpus, names);
            production["services"] = Value::Object(nested);
            fs::write(root.join("environments/production.json"), serde_json::to_vec_pretty(&production).unwrap()).unwrap();
        }
    }
    root
}

/// Potter Config's work: open the tree and build the views with their leaf indexes.
fn potter(tree: &Path, names: &[String], mode: Mode) -> ConfigHost {
    let mut options = Options::new(tree);
    options.env_vars = Some(Vec::new());
    options.history = false;
    let host = ConfigHost::open(options).unwrap();
    let snapshot = host.snapshot();
    match mode {
        Mode::PerView => {
            for name in names {
                snapshot.view(&ViewKey::new("production", Some(name), None)).unwrap().build_leaf_index();
            }
        }
        Mode::Nested => snapshot.view(&ViewKey::environment("production")).unwrap().build_leaf_index(),
    }
    drop(snapshot);
    host
}

fn median(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e3
}

/// This process's peak resident set, in MiB.
fn peak_rss_mib() -> f64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
}

/// Runs this binary again with `args` and reads the one number it prints.
fn child(args: &[&str]) -> f64 {
    let output = Command::new(std::env::current_exe().unwrap()).args(args).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().parse().unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with("--")).collect();
    // A child's work: `memory|time <floor|potter> <per-view|nested> <size> <tree> [rounds]`. Each
    // side runs in a process of its own, so that neither's allocator state (what the other left
    // freed and fragmented) moves the other's time.
    if let Some(what) = args.first().filter(|what| *what == "memory" || *what == "time") {
        let (work, mode, size, tree) = (&args[1], if args[2] == "nested" { Mode::Nested } else { Mode::PerView }, &args[3], Path::new(&args[4]));
        let corpus = corpus(size);
        let names = services(&corpus);
        let run = || -> Box<dyn std::any::Any> {
            if work == "floor" {
                Box::new(floor(&corpus, &names, mode))
            } else {
                Box::new(potter(tree, &names, mode))
            }
        };
        if what == "memory" {
            let held = run();
            println!("{}", peak_rss_mib());
            drop(held);
        } else {
            let rounds: usize = args[5].parse().unwrap();
            drop(run()); // the files in the page cache, the code paged in
            let samples = (0..rounds)
                .map(|_| {
                    let start = Instant::now();
                    drop(run());
                    start.elapsed()
                })
                .collect();
            println!("{}", median(samples));
        }
        return;
    }
    let rounds: usize = args.first().and_then(|arg| arg.parse().ok()).unwrap_or(5);
    let sizes: Vec<&str> = match args.iter().find(|arg| ["small", "medium", "large"].contains(&arg.as_str())) {
        Some(size) => vec![size.as_str()],
        None => vec!["small", "medium"],
    };
    for size in sizes {
        let corpus = corpus(size);
        let names = services(&corpus);
        let dir = tempfile::tempdir().unwrap();
        for mode in [Mode::PerView, Mode::Nested] {
            let tree = potter_tree(&corpus, &names, mode, dir.path());
            let path = tree.to_str().unwrap();
            let rounds = rounds.to_string();
            let of = |what: &str, work: &str| child(&[what, work, mode.name(), size, path, &rounds]);
            let (floor_ms, potter_ms) = (of("time", "floor"), of("time", "potter"));
            let (floor_mib, potter_mib) = (of("memory", "floor"), of("memory", "potter"));
            println!(
                "{size:<6} {:<8} load: floor {floor_ms:>9.2} ms  potter {potter_ms:>9.2} ms  ({:.2}x)   peak RSS: floor {floor_mib:>7.1} MiB  potter {potter_mib:>7.1} MiB  ({:.2}x)",
                mode.name(),
                potter_ms / floor_ms,
                potter_mib / floor_mib
            );
        }
    }
}
