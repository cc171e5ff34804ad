//! Host-level fleet figures against a real etcd member, each beside its baseline in the same run:
//!
//! - propagation: `ConfigHost::set` acknowledged on host A → a subscriber on host B holds the
//!   value (B's follower, validation, swap and event included), beside etcd's own put → watch
//!   and the cost of building, validating and swapping the same change on a host without history;
//! - writes: 50 concurrent writers spread over three hosts on one prefix, beside 50 writers on
//!   one host with the SQLite store.
//!
//! `cargo bench -p potter-config --bench fleet` (see docs/PERFORMANCE.md).

#[path = "../../history-etcd/tests/common/etcd.rs"]
mod etcd;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use potter_config::options::StoreChoice;
use potter_config::{ConfigHost, Event, Options, ViewKey};
use serde_json::json;

const CHANGES: usize = 500;
const WRITERS: usize = 50;
const WRITES_PER_WRITER: usize = 20;

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

/// A tree of its own (global + `prod`) and a host on `store`.
fn host(store: StoreChoice) -> (tempfile::TempDir, ConfigHost) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    std::fs::create_dir_all(root.join("environments")).unwrap();
    std::fs::write(root.join("global.json"), r#"{"api": {"timeout": 30}}"#).unwrap();
    std::fs::write(root.join("environments/prod.json"), "{}").unwrap();
    let mut options = Options::new(&root);
    options.state_dir = dir.path().join(".potter");
    options.env_vars = Some(Vec::new());
    options.store = store;
    let host = ConfigHost::open(options).unwrap();
    (dir, host)
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return; // `cargo test --benches` asks for a list; nothing to run there
    }
    let mut etcd = etcd::Etcd::start();
    let on_etcd = |prefix: &str| StoreChoice::Etcd(potter_config::options::etcd::EtcdOptions::new(etcd.location(prefix)));
    let raw = etcd.put_to_watch_latencies(CHANGES);

    // A's acknowledgement -> B's subscriber holds the value.
    let (_tree_a, a) = host(on_etcd("bench-host-propagation"));
    let (_tree_b, b) = host(on_etcd("bench-host-propagation"));
    let mut subscription = b.subscribe(&ViewKey::environment("prod"), "bench").unwrap();
    let (seen, arrivals) = mpsc::channel();
    std::thread::spawn(move || {
        while let Some(event) = subscription.recv_blocking() {
            if let Event::Changed { changes, .. } = event {
                let at = Instant::now();
                for change in changes {
                    if let Some(value) = change.new.and_then(|value| value.as_u64()) {
                        let _ = seen.send((value, at));
                    }
                }
            }
        }
    });
    let (mut after_ack, mut total) = (Vec::new(), Vec::new());
    for n in 0..CHANGES as u64 {
        let started = Instant::now();
        a.set("prod", "bench.value", json!(n)).unwrap();
        let acknowledged = Instant::now();
        let at = loop {
            let (value, at) = arrivals.recv_timeout(Duration::from_secs(10)).expect("host B stalled");
            if value == n {
                break at;
            }
        };
        after_ack.push(at.saturating_duration_since(acknowledged));
        total.push(at - started);
    }
    let (raw_p50, raw_p99) = percentiles(raw);
    let (ack_p50, ack_p99) = percentiles(after_ack);
    let (total_p50, total_p99) = percentiles(total);
    println!("propagation over {CHANGES} changes:");
    println!("  etcd put -> watch event (raw client)          p50 {raw_p50:>10.2?}  p99 {raw_p99:>10.2?}");
    println!("  set acknowledged on A -> B's subscriber       p50 {ack_p50:>10.2?}  p99 {ack_p99:>10.2?}");
    println!("  set started on A -> B's subscriber            p50 {total_p50:>10.2?}  p99 {total_p99:>10.2?}");
    drop((a, b));

    // The validation cost in the target: the same change built, validated and swapped in on a
    // host that records nothing.
    let (_tree_local, local) = host(StoreChoice::Sqlite);
    let mut local_options = local.options().clone();
    local_options.history = false;
    drop(local);
    let local = ConfigHost::open(local_options).unwrap();
    let applying: Vec<Duration> = (0..CHANGES as u64)
        .map(|n| {
            let started = Instant::now();
            local.set("prod", "bench.value", json!(n)).unwrap();
            started.elapsed()
        })
        .collect();
    let (apply_p50, apply_p99) = percentiles(applying);
    println!("  build + validate + swap, no history          p50 {apply_p50:>10.2?}  p99 {apply_p99:>10.2?}");
    println!("  target: p99 <= 2 x etcd's + validation = {:.2?}", raw_p99 * 2 + apply_p99);

    // Writes: 50 writers over three etcd hosts vs 50 writers on one SQLite host.
    let etcd_hosts: Vec<_> = (0..3).map(|_| host(on_etcd("bench-host-writes"))).collect();
    let sqlite_hosts = vec![host(StoreChoice::Sqlite)];
    for (label, hosts) in [("etcd, 3 hosts", &etcd_hosts), ("sqlite, 1 host", &sqlite_hosts)] {
        let started = Instant::now();
        let samples: Vec<Duration> = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..WRITERS)
                .map(|writer| {
                    let host = &hosts[writer % hosts.len()].1;
                    scope.spawn(move || {
                        (0..WRITES_PER_WRITER)
                            .map(|n| {
                                let begun = Instant::now();
                                host.set("prod", &format!("bench.k{writer}"), json!(n)).unwrap();
                                begun.elapsed()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            writers.into_iter().flat_map(|writer| writer.join().unwrap()).collect()
        });
        let elapsed = started.elapsed();
        let count = samples.len();
        let (p50, p99) = percentiles(samples);
        println!("writes, {WRITERS} writers, {label}: {count} changes in {elapsed:.2?} = {:.0} changes/s, p50 {p50:.2?}, p99 {p99:.2?}", count as f64 / elapsed.as_secs_f64());
    }
    drop(etcd_hosts);
    etcd.stop();
}
