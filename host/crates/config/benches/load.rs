//! Load + merge + snapshot and `get`, on the shared deterministic corpus, against a hand-written
//! serde_json floor measured in the same run (see docs/PERFORMANCE.md).
//!
//! `cargo bench -p potter-config --bench load`

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use potter_config::{ConfigHost, Options};
use potter_engine::ViewKey;
use serde_json::Value;

mod common;
use common::{copy_json_tree, corpus, floor_merge_into as merge, service_names as services};

fn open(tree: &Path) -> ConfigHost {
    let mut options = Options::new(tree);
    options.env_vars = Some(Vec::new());
    // History has its own benchmark; here the load itself is measured.
    options.history = false;
    ConfigHost::open(options).unwrap()
}

/// The floor: read + parse + deep-merge global ← production ← every service nested under `services.<name>`.
fn floor_merge(tree: &Path) -> Value {
    let read = |p: PathBuf| -> Value { serde_json::from_slice(&fs::read(p).unwrap()).unwrap() };
    let mut merged = read(tree.join("global.json"));
    merge(&mut merged, read(tree.join("environments/production.json")));
    let mut nested = serde_json::Map::new();
    for name in services(tree) {
        nested.insert(name.clone(), read(tree.join(format!("services/{name}.json"))));
    }
    // Not `json!({ "services": nested })`: that serializes the map into a copy.
    merge(&mut merged, Value::Object(serde_json::Map::from_iter([("services".to_owned(), Value::Object(nested))])));
    merged
}

fn load(c: &mut Criterion) {
    let mut group = c.benchmark_group("load");
    for size in ["small", "medium"] {
        let tree = corpus(size);
        let names = services(&tree);
        group.bench_with_input(BenchmarkId::new("floor_serde_json_merge", size), &tree, |b, tree| b.iter(|| floor_merge(tree)));
        // Full load (every file read and parsed with positions) + the production view merged and indexed.
        group.bench_with_input(BenchmarkId::new("one_view", size), &tree, |b, tree| {
            b.iter(|| {
                let host = open(tree);
                let snapshot = host.snapshot();
                let view = snapshot.view(&ViewKey::environment("production")).unwrap();
                view.leaf_count()
            })
        });
        // The peers' work: every service's production view, merged and indexed.
        group.bench_with_input(BenchmarkId::new("every_service_view", size), &tree, |b, tree| {
            b.iter(|| {
                let host = open(tree);
                let snapshot = host.snapshot();
                for name in &names {
                    snapshot.view(&ViewKey::new("production", Some(name), None)).unwrap().build_leaf_index();
                }
                names.len()
            })
        });
    }
    group.finish();
}

fn get(c: &mut Criterion) {
    let mut group = c.benchmark_group("get");
    for size in ["small", "medium"] {
        let tree = corpus(size);
        let host = open(&tree);
        // keys.txt holds paths of the merged production view with services nested; in Potter Config
        // `services.<name>.<rest>` is `<rest>` in the view of service <name>.
        let keys: Vec<(Option<String>, String)> = fs::read_to_string(tree.join("keys.txt"))
            .unwrap()
            .lines()
            .map(|line| match line.strip_prefix("services.") {
                Some(rest) => {
                    let (service, key) = rest.split_once('.').unwrap();
                    (Some(service.to_owned()), key.to_owned())
                }
                None => (None, line.to_owned()),
            })
            .collect();
        let mut handles = BTreeMap::new();
        for (service, _) in &keys {
            handles.entry(service.clone()).or_insert_with(|| host.view("production", service.as_deref(), None).unwrap());
        }
        let lookups: Vec<(&potter_config::ViewHandle, &str)> = keys.iter().map(|(s, k)| (&handles[s], k.as_str())).collect();
        for (handle, key) in &lookups {
            assert!(handle.value(key).is_some(), "{key}");
        }
        let floor: std::collections::HashMap<String, Value> = {
            let merged = floor_merge(&tree);
            let mut flat = std::collections::HashMap::new();
            fn walk(v: &Value, p: String, out: &mut std::collections::HashMap<String, Value>) {
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        for (k, c) in m {
                            walk(c, if p.is_empty() { k.clone() } else { format!("{p}.{k}") }, out)
                        }
                    }
                    other => {
                        out.insert(p, other.clone());
                    }
                }
            }
            walk(&merged, String::new(), &mut flat);
            flat
        };
        let floor_keys: Vec<String> = fs::read_to_string(tree.join("keys.txt")).unwrap().lines().map(str::to_owned).collect();
        group.bench_function(BenchmarkId::new("floor_flat_hashmap", size), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % floor_keys.len();
                floor.get(&floor_keys[i]).cloned()
            })
        });
        group.bench_function(BenchmarkId::new("view_handle_value", size), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % lookups.len();
                let (handle, key) = lookups[i];
                handle.value(key)
            })
        });
    }
    group.finish();
}

/// A copy of the small tree with two signed Wasm validators (production-safety under two names),
/// trusted in the copy's own state directory. Needs `scripts/build-plugins` to have run.
fn tree_with_two_validators(dir: &Path) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let built = repo.join("target/plugins");
    assert!(built.join("production-safety.wasm").exists(), "run scripts/build-plugins first");
    let root = dir.join("config");
    copy_json_tree(&corpus("small"), &root);
    let plugins = root.join("plugins");
    fs::create_dir_all(&plugins).unwrap();
    let key = potter_plugin::keygen(&dir.join("bench-signer")).unwrap();
    potter_plugin::trust(&key.public_key, &dir.join(".potter/trusted-keys")).unwrap();
    let manifest = fs::read_to_string(built.join("production-safety.plugin.toml")).unwrap();
    for name in ["production-safety", "production-safety-2"] {
        fs::copy(built.join("production-safety.wasm"), plugins.join(format!("{name}.wasm"))).unwrap();
        let renamed = manifest.replace("name = \"production-safety\"", &format!("name = \"{name}\""));
        fs::write(plugins.join(format!("{name}.plugin.toml")), renamed).unwrap();
        potter_plugin::sign(&plugins.join(format!("{name}.wasm")), &key.secret_key).unwrap();
    }
    root
}

fn wasm_validators(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let with_plugins = tree_with_two_validators(dir.path());
    let plain = dir.path().join("plain");
    copy_json_tree(&corpus("small"), &plain);
    open(&with_plugins); // compiles once into the state directory's cache
    let mut group = c.benchmark_group("load_with_wasm_validators");
    group.bench_function("small_without_plugins", |b| b.iter(|| open(&plain).snapshot().version()));
    group.bench_function("small_two_cached_validators", |b| b.iter(|| open(&with_plugins).snapshot().version()));
    group.finish();
}

/// The small tree plus 1,000 values in environments/production.json: ciphertexts (decrypted by the
/// load) or the same number of plain strings (the baseline, same run).
fn tree_with_values(dir: &Path, encrypted: bool, keyring: &potter_secrets::Keyring) -> PathBuf {
    let root = dir.join(if encrypted { "encrypted" } else { "plain" });
    copy_json_tree(&corpus("small"), &root);
    let mut values = serde_json::Map::new();
    for i in 0..1000 {
        let key = format!("k{i:04}");
        let text = format!("value-{i}-with-some-length");
        let value = if encrypted { potter_secrets::encrypt(keyring, "production", &["vault", key.as_str()], &text).unwrap() } else { text };
        values.insert(key, Value::String(value));
    }
    let file = root.join("environments/production.json");
    let mut production: Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    production["vault"] = Value::Object(values);
    fs::write(&file, serde_json::to_vec_pretty(&production).unwrap()).unwrap();
    root
}

fn secrets_in_a_load(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let keyring = potter_secrets::Keyring::generate("production").unwrap();
    let env_value = keyring.to_env_value();
    let plain = tree_with_values(dir.path(), false, &keyring);
    let encrypted = tree_with_values(dir.path(), true, &keyring);
    let open_with = |root: &Path, env_vars: Vec<(String, String)>| {
        let mut options = Options::new(root);
        options.env_vars = Some(env_vars);
        options.history = false;
        ConfigHost::open(options).unwrap()
    };
    let key = || vec![("POTTER_SECRET_KEY_PRODUCTION".to_owned(), env_value.expose().to_owned())];
    let mut group = c.benchmark_group("load_1000_values");
    group.bench_function("plain_strings", |b| b.iter(|| open_with(&plain, key()).snapshot().version()));
    group.bench_function("ciphertexts_decrypted", |b| b.iter(|| open_with(&encrypted, key()).snapshot().version()));
    // No key: the ciphertexts are checked structurally and stay sealed (issue 20).
    group.bench_function("ciphertexts_sealed_without_key", |b| b.iter(|| open_with(&encrypted, Vec::new()).snapshot().version()));
    group.finish();
}

criterion_group!(benches, load, get, wasm_validators, secrets_in_a_load);
criterion_main!(benches);
