//! Validating every view of the medium corpus (50 services × 3 environments = 153 views) with
//! potter-validate (schema + coverage + report) against the bare `jsonschema` crate on the same
//! merged documents with the same schema. Target: ≤ 3× the bare cost.
//!
//! Corpus: `python3 scripts/gen_corpus.py --out target/corpus --size medium` (run here when
//! missing; `POTTER_BENCH_CORPUS` points elsewhere). Service files are nested under
//! `services.<name>`, as the corpus's merge convention says.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use potter_engine::{parse_document, Axes, Format, Layer, LayerSource, Rank, Scope, Snapshot, View};
use potter_validate::{SchemaSet, Validation};
use serde_json::{json, Map, Value};

fn corpus_dir() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let out = repo.join("target/corpus");
    let dir = std::env::var("POTTER_BENCH_CORPUS").map(PathBuf::from).unwrap_or_else(|_| out.join("medium"));
    if !dir.join("global.json").exists() {
        let status = std::process::Command::new("python3")
            .arg(repo.join("scripts/gen_corpus.py"))
            .args(["--out", out.to_str().unwrap(), "--size", "medium"])
            .status()
            .expect("run gen_corpus.py");
        assert!(status.success(), "gen_corpus.py failed");
    }
    dir
}

fn layer(dir: &Path, rel: &str, name: &str, rank: Rank, scope: Scope, nest_under: Option<&str>) -> (Layer, Value) {
    let text = std::fs::read_to_string(dir.join(rel)).unwrap();
    let parsed = parse_document(&text, Format::Json).unwrap();
    let data = Value::Object(parsed.data.clone());
    let layer = match nest_under {
        None => Layer::with_locations(name, rank, scope, LayerSource::File(rel.into()), parsed.data, parsed.locations),
        Some(service) => {
            let nested = json!({"services": {service: Value::Object(parsed.data)}});
            let Value::Object(nested) = nested else { unreachable!() };
            Layer::new(name, rank, scope, LayerSource::File(rel.into()), nested)
        }
    };
    (layer, data)
}

/// A schema describing every key of `values` with its type (omitted where files disagree).
fn schema_for(values: &[&Value]) -> Value {
    let objects: Vec<&Map<String, Value>> = values.iter().filter_map(|v| v.as_object()).filter(|m| !m.is_empty()).collect();
    if !objects.is_empty() {
        let mut keys: Vec<&String> = Vec::new();
        for object in &objects {
            for key in object.keys() {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
        let properties: Map<String, Value> = keys
            .into_iter()
            .map(|key| {
                let children: Vec<&Value> = objects.iter().filter_map(|o| o.get(key)).collect();
                (key.clone(), schema_for(&children))
            })
            .collect();
        let mut schema = json!({"properties": properties});
        if objects.len() == values.len() {
            schema["type"] = json!("object");
        }
        return schema;
    }
    let mut types: Vec<&str> = values
        .iter()
        .map(|v| match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_f64() => "number",
            Value::Number(_) => "integer",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        })
        .collect();
    if types.contains(&"number") {
        types.retain(|t| *t != "integer");
    }
    types.sort_unstable();
    types.dedup();
    match types.as_slice() {
        [single] => json!({"type": single}),
        _ => json!({}),
    }
}

struct Setup {
    snapshot: Snapshot,
    validation: Validation,
    bare: jsonschema::Validator,
    views: Vec<Arc<View>>,
    schemas_dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = corpus_dir();
    let (global, global_data) = layer(&dir, "global.json", "global", Rank::GlobalFile, Scope::everywhere(), None);
    let mut layers = vec![Arc::new(global)];
    let mut top_level = vec![global_data];
    let mut axes = Axes::default();
    for env in ["development", "staging", "production"] {
        let (env_layer, data) = layer(&dir, &format!("environments/{env}.json"), &format!("environments/{env}"), Rank::EnvironmentFile, Scope::environment(env), None);
        layers.push(Arc::new(env_layer));
        top_level.push(data);
        axes.environments.push(env.into());
    }
    let mut service_data = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(dir.join("services")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    for name in &names {
        let service = name.strip_suffix(".json").unwrap();
        let scope = Scope { service: Some(service.into()), ..Scope::everywhere() };
        let (service_layer, data) = layer(&dir, &format!("services/{name}"), &format!("services/{service}"), Rank::ServiceFile, scope, Some(service));
        layers.push(Arc::new(service_layer));
        service_data.push(data);
        axes.services.push(service.into());
    }

    let mut schema = schema_for(&top_level.iter().collect::<Vec<_>>());
    schema["$schema"] = json!("http://json-schema.org/draft-07/schema#");
    schema["properties"]["services"] = json!({"type": "object", "additionalProperties": schema_for(&service_data.iter().collect::<Vec<_>>())});
    let schemas_dir = tempfile::tempdir().unwrap();
    std::fs::write(schemas_dir.path().join("global_schema.json"), serde_json::to_vec_pretty(&schema).unwrap()).unwrap();

    let validation = Validation::new(SchemaSet::load(schemas_dir.path()).unwrap());
    let bare = jsonschema::options().should_validate_formats(true).build(&schema).unwrap();
    let snapshot = Snapshot::new(0, layers, axes);
    // Merge every view before measuring: both sides validate the same, already merged documents.
    let views: Vec<Arc<View>> = snapshot.base_view_keys().iter().map(|key| snapshot.view(key).unwrap().clone()).collect();
    let report = validation.validate_snapshot(&snapshot);
    assert_eq!(report.views.len(), 153);
    assert!(!report.has_errors() && report.warning_count() == 0, "the schema must cover the corpus");
    assert!(report.views.iter().all(|v| v.coverage.unwrap().percent == 100.0));
    assert!(views.iter().all(|view| bare.is_valid(view.value())));
    let leaves: usize = views.iter().map(|v| v.leaf_count()).sum();
    eprintln!("medium corpus: {} views, {leaves} leaves in all", views.len());
    Setup { snapshot, validation, bare, views, schemas_dir }
}

fn bench(c: &mut Criterion) {
    let setup = setup();
    let mut group = c.benchmark_group("validate_medium_153_views");
    group.sample_size(20);
    group.bench_function("potter_validate_snapshot", |b| b.iter(|| setup.validation.validate_snapshot(&setup.snapshot)));
    group.bench_function("jsonschema_bare_is_valid", |b| b.iter(|| setup.views.iter().filter(|view| setup.bare.is_valid(view.value())).count()));
    group.bench_function("jsonschema_bare_iter_errors", |b| b.iter(|| setup.views.iter().map(|view| setup.bare.iter_errors(view.value()).count()).sum::<usize>()));
    group.finish();

    let mut group = c.benchmark_group("schema_cache");
    group.sample_size(20);
    let mut set = SchemaSet::load(setup.schemas_dir.path()).unwrap();
    group.bench_function("reload_unchanged_folder", |b| b.iter(|| set.reload().unwrap()));
    group.bench_function("load_and_compile_folder", |b| b.iter(|| SchemaSet::load(setup.schemas_dir.path()).unwrap()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
