//! Plugin host timings: a validator call on a small config (target ≤ 20 µs,
//! JSON in and out included) and loading a plugin whose compiled code is
//! cached (target ≤ 10 ms). Run: `scripts/build-plugins && cargo bench -p potter-plugin`.

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{criterion_group, criterion_main, Criterion};
use potter_plugin::{CompiledFrom, ValidationTarget};
use serde_json::json;

fn small_config() -> serde_json::Value {
    json!({
        "app": {"name": "potter", "debug": true, "port": 8080, "workers": 4, "features": ["a", "b"]},
        "logging": {"level": "DEBUG", "format": "json", "file": "/var/log/potter.log"},
        "api": {"rate_limit": 900, "timeout_ms": 2500, "cors": {"origins": ["https://example.com"]}},
        "db": {"host": "db1", "port": 5432, "pool": 16, "password": "hunter2"},
        "cache": {"ttl": 60, "size": 1000},
        "plugins": {"production-safety": {}}
    })
}

fn benches(c: &mut Criterion) {
    let fixture = common::Fixture::new();
    let wasm = fixture.install("production-safety");
    let host = fixture.host("production");
    let plugin = host.load_file(&wasm).unwrap();
    let config = small_config();
    let view = ValidationTarget {
        environment: "production".into(),
        service: None,
    };
    let is_secret = |path: &str| path == "db.password";
    assert_eq!(
        plugin.validate(&view, &config, &is_secret).unwrap().len(),
        2
    );

    c.bench_function("validate_small_config", |b| {
        b.iter(|| plugin.validate(&view, &config, &is_secret).unwrap())
    });

    c.bench_function("load_cached_plugin", |b| {
        b.iter(|| {
            let loaded = host.load_file(&wasm).unwrap();
            assert_eq!(loaded.compiled_from(), CompiledFrom::Cache);
            loaded
        })
    });

    c.bench_function("load_cached_plugin_and_first_call", |b| {
        b.iter(|| {
            let loaded = host.load_file(&wasm).unwrap();
            loaded.validate(&view, &config, &is_secret).unwrap()
        })
    });
}

criterion_group! {
    name = plugin;
    config = Criterion::default().sample_size(30);
    targets = benches
}
criterion_main!(plugin);
