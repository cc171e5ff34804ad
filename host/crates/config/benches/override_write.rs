//! What one runtime override costs as the tree grows: `ConfigHost::set` of one key of production,
//! history on, from the call to its return (validated, recorded, live), on the small, medium and
//! large corpus trees. The ratio to the small tree in the same run is the figure that matters:
//! the work of one override should follow the key, not the tree.
//!
//! The host watches its tree, as `potter-config serve` does (the watcher is what vouches that the
//! files did not change between two overrides). The history goes to a tmpfs when the machine has
//! `/dev/shm` (so the figure is the CPU work, not the disk's fsync), and to a temporary directory
//! otherwise; the line says which.
//!
//! `cargo bench -p potter-config --bench override_write [-- SETS] [small|medium|large]` (default
//! 300 sets per size, every size)

use std::path::Path;
use std::time::{Duration, Instant};

use potter_config::watch::WatchOptions;
use potter_config::{ConfigHost, Options};
use serde_json::json;

mod common;
use common::{copy_json_tree, corpus, count_arg, percentile, report, sizes_arg};

fn sets(size: &str, count: u64, state_parent: &Path) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir_in(state_parent).unwrap();
    let root = dir.path().join("config");
    copy_json_tree(&corpus(size), &root);
    let mut options = Options::new(&root);
    options.env_vars = Some(Vec::new());
    options.state_dir = state.path().to_path_buf();
    let host = ConfigHost::open(options).unwrap();
    let _watcher = host.watch(WatchOptions::default()).unwrap();
    // The first sets create the overrides layer and warm the caches.
    for round in 0..20 {
        host.set("production", "bench.counter", json!(round)).unwrap();
    }
    let mut samples = Vec::with_capacity(count as usize);
    for round in 1..=count {
        let started = Instant::now();
        host.set("production", "bench.counter", json!(1_000 + round)).unwrap();
        samples.push(started.elapsed());
    }
    assert_eq!(host.view("production", None, None).unwrap().value("bench.counter"), Some(json!(1_000 + count)));
    samples
}

fn main() {
    let count: u64 = count_arg(300);
    let shm = Path::new("/dev/shm");
    let (state_parent, where_) = if shm.is_dir() { (shm.to_path_buf(), "history on tmpfs") } else { (std::env::temp_dir(), "history on disk") };
    let mut small_p50 = None;
    for size in sizes_arg(&["small", "medium", "large"]) {
        let mut samples = sets(size, count, &state_parent);
        samples.sort();
        let p50 = percentile(&samples, 0.5);
        let ratio = small_p50.map_or_else(String::new, |small: Duration| format!(" ({:.2}x small)", p50.as_secs_f64() / small.as_secs_f64()));
        if size == "small" {
            small_p50 = Some(p50);
        }
        report(&format!("{size} set one key, {where_}{ratio}"), samples);
    }
}
