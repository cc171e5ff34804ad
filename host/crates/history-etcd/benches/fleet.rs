//! Store-level fleet figures against a real etcd member, each beside its baseline in the same run:
//!
//! - propagation: `append` acknowledged on store A → the record delivered by a follower on store B,
//!   beside etcd's own put → watch event on a raw client;
//! - writes: 50 concurrent writers spread over three stores, beside 50 writers on one SQLite store.
//!
//! `cargo bench -p potter-history-etcd --bench fleet` (see docs/PERFORMANCE.md).

#[path = "../tests/common/etcd.rs"]
mod etcd;

use std::sync::Arc;
use std::time::{Duration, Instant};

use potter_history::{ChangeOrigin, HistoryStore, NewChange, SqliteStore, StoredValue};
use potter_history_etcd::{EtcdOptions, EtcdStore, FollowEvent};
use serde_json::json;

const CHANGES: usize = 500;
const WRITERS: usize = 50;
const WRITES_PER_WRITER: usize = 40;

fn change(n: usize) -> NewChange {
    NewChange::new("bench", ChangeOrigin::Api, "prod")
        .change(format!("k{}", n % 50), None, Some(StoredValue::plain(json!(n))))
        .set_override(format!("k{}", n % 50), StoredValue::plain(json!(n)))
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return; // `cargo test --benches` asks for a list; nothing to run there
    }
    let etcd = etcd::Etcd::start();
    let connect = |prefix: &str| EtcdStore::connect(EtcdOptions::new(etcd.location(prefix))).unwrap();

    // etcd's own put -> watch latency.
    let raw = etcd.put_to_watch_latencies(CHANGES);

    // Potter: append on A (acknowledged) -> follower on B delivers the record.
    let host_a = connect("bench-propagation");
    let host_b = connect("bench-propagation");
    let follower = host_b.follow(0);
    let mut potter = Vec::new();
    let mut potter_total = Vec::new();
    for n in 0..CHANGES {
        let started = Instant::now();
        let version = host_a.append(change(n)).unwrap();
        let acknowledged = started.elapsed();
        loop {
            match follower.next_timeout(Duration::from_secs(10)).expect("the follower stalled") {
                FollowEvent::Record(record) if record.version == version => break,
                _ => {}
            }
        }
        // Propagation: from the acknowledgement to the peer holding the record.
        let total = started.elapsed();
        potter.push(total - acknowledged);
        potter_total.push(total);
    }
    let (raw_p50, raw_p99) = percentiles(raw);
    let (potter_p50, potter_p99) = percentiles(potter);
    let (total_p50, total_p99) = percentiles(potter_total);
    println!("propagation over {CHANGES} changes (ack on A -> record on B's follower):");
    println!("  etcd put -> watch        p50 {raw_p50:>10.2?}  p99 {raw_p99:>10.2?}");
    println!("  potter ack -> follower   p50 {potter_p50:>10.2?}  p99 {potter_p99:>10.2?}");
    println!("  potter append start -> follower  p50 {total_p50:>10.2?}  p99 {total_p99:>10.2?}");

    // Writes: 50 writers over three stores vs 50 writers on one SQLite store.
    let etcd_hosts: Vec<Arc<dyn HistoryStore>> = (0..3).map(|_| Arc::new(connect("bench-writes")) as Arc<dyn HistoryStore>).collect();
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn HistoryStore> = Arc::new(SqliteStore::open_in_state_dir(dir.path()).unwrap());
    for (label, hosts) in [("etcd, 3 stores", etcd_hosts), ("sqlite, 1 store", vec![sqlite])] {
        let started = Instant::now();
        let threads: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let host = hosts[writer % hosts.len()].clone();
                std::thread::spawn(move || {
                    (0..WRITES_PER_WRITER)
                        .map(|n| {
                            let begun = Instant::now();
                            host.append(change(writer * WRITES_PER_WRITER + n)).unwrap();
                            begun.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let samples: Vec<Duration> = threads.into_iter().flat_map(|thread| thread.join().unwrap()).collect();
        let elapsed = started.elapsed();
        let count = samples.len();
        let (p50, p99) = percentiles(samples);
        println!(
            "writes, {WRITERS} writers, {label}: {count} changes in {elapsed:.2?} = {:.0} changes/s, p50 {p50:.2?}, p99 {p99:.2?}",
            count as f64 / elapsed.as_secs_f64()
        );
    }
    let mut etcd = etcd;
    etcd.stop();
}
