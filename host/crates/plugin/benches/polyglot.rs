//! Timings of the Python (componentize-py) and JavaScript (componentize-js) validators:
//! first load of the Python guest with an empty compiled-code cache (target ≤ 15 s), its cached
//! load (target ≤ 300 ms), and one validate call of each guest.
//! Run: `scripts/build-plugins && cargo bench -p potter-plugin --bench polyglot`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{environment_view, JS_VALIDATOR, PYTHON_VALIDATOR};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use potter_plugin::CompiledFrom;
use serde_json::json;

fn small_config() -> serde_json::Value {
    json!({
        "api": {"timeout": 30, "rate_limit": 900},
        "llm_providers": {
            "openai": {"model": "gpt-4o", "timeout": 20, "retry_attempts": 3},
            "anthropic": {"model": "claude-sonnet-4-5", "timeout": 20, "retry_attempts": 3},
            "google": {"model": "gemini-1.5-pro", "timeout": 25, "retry_attempts": 2},
        },
        "plugins": {
            "python-validator": {"allowed_models": ["gpt-4o", "claude-sonnet-4-5", "gemini-1.5-pro"]},
            "js-validator": {},
        }
    })
}

fn benches(c: &mut Criterion) {
    let fixture = common::Fixture::new();
    let python_wasm = fixture.install(PYTHON_VALIDATOR);
    let js_wasm = fixture.install(JS_VALIDATOR);
    let cache_dir = fixture.state.join("plugin-cache");
    let view = environment_view("production");
    let config = small_config();
    let no_secrets = |_: &str| false;

    // Loads take seconds: one load per sample, ten samples.
    let mut loads = c.benchmark_group("python_load");
    loads.sample_size(10).sampling_mode(SamplingMode::Flat);
    loads.measurement_time(Duration::from_secs(60));
    loads.bench_function("first_load_empty_cache", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                // A new host over an empty cache: verify, compile, write the cache entry.
                let _ = std::fs::remove_dir_all(&cache_dir);
                let host = fixture.host("production");
                let start = Instant::now();
                let loaded = host.load_file(&python_wasm).unwrap();
                total += start.elapsed();
                assert_eq!(loaded.compiled_from(), CompiledFrom::Compiler);
            }
            total
        })
    });
    let host = fixture.host("production");
    host.load_file(&python_wasm).unwrap();
    loads.bench_function("cached_load", |b| {
        b.iter(|| {
            let loaded = host.load_file(&python_wasm).unwrap();
            assert_eq!(loaded.compiled_from(), CompiledFrom::Cache);
            loaded
        })
    });
    loads.bench_function("cached_load_and_first_call", |b| {
        b.iter(|| {
            let loaded = host.load_file(&python_wasm).unwrap();
            loaded.validate(&view, &config, &no_secrets).unwrap()
        })
    });
    loads.finish();

    let python = host.load_file(&python_wasm).unwrap();
    let js = host.load_file(&js_wasm).unwrap();
    assert!(python
        .validate(&view, &config, &no_secrets)
        .unwrap()
        .is_empty());
    assert!(js.validate(&view, &config, &no_secrets).unwrap().is_empty());
    c.bench_function("python_validate_small_config", |b| {
        b.iter(|| python.validate(&view, &config, &no_secrets).unwrap())
    });
    c.bench_function("js_validate_small_config", |b| {
        b.iter(|| js.validate(&view, &config, &no_secrets).unwrap())
    });
}

criterion_group! {
    name = polyglot;
    config = Criterion::default().sample_size(30);
    targets = benches
}
criterion_main!(polyglot);
