//! Reading typed settings: `Settings::get` (deserialized once per change) against deserializing
//! the same subtree on every read (`ViewHandle::extract`), and an `Arc` clone as the floor, all in
//! the same run. And the cost a change pays per binding: a change outside the prefix (one subtree
//! comparison) and inside it (one deserialization).
//!
//! `cargo bench -p potter-config --bench settings`

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use potter_config::{ConfigHost, Options, ViewKey};
use serde::Deserialize;

#[allow(dead_code)] // read through black_box only
#[derive(Debug, Deserialize)]
struct ApiSettings {
    rate_limit: u32,
    timeout_ms: u64,
    greeting: String,
    upstreams: Vec<String>,
    retries: Retries,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
struct Retries {
    attempts: u32,
    backoff_ms: u64,
}

fn tree() -> (tempfile::TempDir, ConfigHost) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    std::fs::create_dir_all(root.join("environments")).unwrap();
    std::fs::write(
        root.join("global.json"),
        r#"{ "api": { "rate_limit": 100, "timeout_ms": 2000, "greeting": "Hello from Potter",
             "upstreams": ["a.internal:443", "b.internal:443", "c.internal:443"],
             "retries": { "attempts": 3, "backoff_ms": 250 } },
             "other": { "counter": 0 } }"#,
    )
    .unwrap();
    std::fs::write(root.join("environments/production.json"), r#"{ "api": { "rate_limit": 500 } }"#).unwrap();
    let mut options = Options::new(&root);
    options.history = false;
    let host = ConfigHost::open(options).unwrap();
    (dir, host)
}

fn reads(c: &mut Criterion) {
    let (_dir, host) = tree();
    let key = ViewKey::environment("production");
    let settings = host.bind::<ApiSettings>(&key, "api").unwrap();
    let view = host.view("production", None, None).unwrap();
    let floor = Arc::new(view.extract::<ApiSettings>("api").unwrap());
    let mut group = c.benchmark_group("settings_read");
    group.bench_function("floor_arc_clone", |b| b.iter(|| black_box(floor.clone())));
    group.bench_function("settings_get", |b| b.iter(|| black_box(settings.get())));
    group.bench_function("settings_load_guard", |b| b.iter(|| black_box(settings.load().rate_limit)));
    group.bench_function("view_extract_per_read", |b| b.iter(|| black_box(view.extract::<ApiSettings>("api").unwrap())));
    group.finish();
}

fn changes(c: &mut Criterion) {
    let mut group = c.benchmark_group("settings_change");
    for bindings in [0usize, 100] {
        let (_dir, host) = tree();
        let key = ViewKey::environment("production");
        let held: Vec<_> = (0..bindings).map(|_| host.bind::<ApiSettings>(&key, "api").unwrap()).collect();
        let mut counter = 0u64;
        group.bench_function(format!("outside_prefix/{bindings}_bindings"), |b| {
            b.iter(|| {
                counter += 1;
                host.set("production", "other.counter", counter.into()).unwrap();
            })
        });
        group.bench_function(format!("inside_prefix/{bindings}_bindings"), |b| {
            b.iter(|| {
                counter += 1;
                host.set("production", "api.rate_limit", (counter % 1000 + 1).into()).unwrap();
            })
        });
        drop(held);
    }
    group.finish();
}

criterion_group!(benches, reads, changes);
criterion_main!(benches);
