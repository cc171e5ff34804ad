//! Append throughput (sequential, and concurrent through group commit) and key-prefix queries
//! over a 1,000,000-record history. Run: `cargo bench -p potter-history`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use potter_history::{HistoryQuery, HistoryStore, NewChange, ChangeOrigin, SqliteStore, StoredValue};
use serde_json::json;

const FIXTURE_RECORDS: u64 = 1_000_000;
const ENVS: [&str; 4] = ["prod", "staging", "dev", "qa"];

/// Change `n`: one of 1,000 keys (`section00.key000` .. `section19.key049`) in one of 4 envs
/// (175 distinct keys per env; `section07.` covers 5 of them in `prod`, about 7,000 records).
fn change(n: u64) -> NewChange {
    let key = format!("section{:02}.key{:03}", (n / 7) % 20, n % 50);
    let value = StoredValue::plain(json!({ "n": n, "note": "benchmark value" }));
    NewChange::new(
        format!("cli:user{}", n % 13),
        ChangeOrigin::Cli,
        ENVS[(n % 4) as usize],
    )
    .change(key.clone(), None, Some(value.clone()))
    .set_override(key, value)
}

/// Fixture records: like [`change`] without the override operation (queries never read it).
fn fixture_change(n: u64) -> NewChange {
    let key = format!("section{:02}.key{:03}", (n / 7) % 20, n % 50);
    NewChange::new(
        format!("cli:user{}", n % 13),
        ChangeOrigin::Cli,
        ENVS[(n % 4) as usize],
    )
    .change(
        key,
        None,
        Some(StoredValue::plain(
            json!({ "n": n, "note": "benchmark value" }),
        )),
    )
}

fn append_sequential(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("history.db")).unwrap();
    let mut group = c.benchmark_group("append");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    let mut n = 0;
    group.bench_function("sequential", |b| {
        b.iter(|| {
            n += 1;
            store.append(change(n)).unwrap()
        })
    });
    group.finish();
}

fn append_concurrent(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_group_commit");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for threads in [8u64, 32, 128] {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path().join("history.db")).unwrap());
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{threads}_threads")),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    let per_thread = iters.div_ceil(threads);
                    let start = Instant::now();
                    let workers: Vec<_> = (0..threads)
                        .map(|t| {
                            let store = Arc::clone(&store);
                            std::thread::spawn(move || {
                                for i in 0..per_thread {
                                    store.append(change(t * 1_000_000 + i)).unwrap();
                                }
                            })
                        })
                        .collect();
                    workers
                        .into_iter()
                        .for_each(|worker| worker.join().unwrap());
                    // Report the time per append actually made (per_thread * threads >= iters).
                    start
                        .elapsed()
                        .mul_f64(iters as f64 / (per_thread * threads) as f64)
                })
            },
        );
    }
    group.finish();
}

fn prefix_query(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("history.db")).unwrap();
    let start = Instant::now();
    for chunk_start in (0..FIXTURE_RECORDS).step_by(100_000) {
        store
            .append_all(
                (chunk_start..chunk_start + 100_000)
                    .map(fixture_change)
                    .collect(),
            )
            .unwrap();
    }
    eprintln!(
        "fixture: {FIXTURE_RECORDS} records in {:.1?}",
        start.elapsed()
    );
    assert_eq!(store.latest_version().unwrap(), FIXTURE_RECORDS);

    let mut group = c.benchmark_group("query_1M_records");
    let cases = [
        (
            "env_section_prefix_limit_50",
            HistoryQuery::new()
                .env("prod")
                .key_prefix("section07.")
                .limit(50),
        ),
        (
            "env_exact_key_limit_50",
            HistoryQuery::new()
                .env("prod")
                .key_prefix("section07.key022")
                .limit(50),
        ),
        (
            "any_env_section_prefix_limit_50",
            HistoryQuery::new().key_prefix("section07.").limit(50),
        ),
        (
            "env_all_keys_limit_50",
            HistoryQuery::new().env("prod").key_prefix("").limit(50),
        ),
        (
            "env_section_prefix_actor_limit_50",
            HistoryQuery::new()
                .env("prod")
                .key_prefix("section07.")
                .actor("cli:user3")
                .limit(50),
        ),
        (
            "env_no_prefix_limit_50",
            HistoryQuery::new().env("prod").limit(50),
        ),
    ];
    for (name, query) in cases {
        let found = store.query(&query).unwrap();
        assert_eq!(found.len(), 50, "{name}");
        group.bench_function(name, |b| b.iter(|| store.query(&query).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, append_sequential, append_concurrent, prefix_query);
criterion_main!(benches);
