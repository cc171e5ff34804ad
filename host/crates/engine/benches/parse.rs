//! Parsing with positions: the same keys minified on one line and indented one per line.
//!
//! `cargo bench -p potter-engine --bench parse`. Counting each column from its line's start made
//! the minified case quadratic (3.5 s for 100,000 keys); both cases are linear now and close.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use potter_engine::{parse_document, Format};

/// `{"k0": 0, …}` with `keys` members, on one line or one member per line.
fn object(keys: usize, indented: bool) -> String {
    let separator = if indented { ",\n  " } else { "," };
    let members: Vec<String> = (0..keys).map(|i| format!("\"k{i}\":{i}")).collect();
    if indented {
        format!("{{\n  {}\n}}\n", members.join(separator))
    } else {
        format!("{{{}}}", members.join(separator))
    }
}

fn json_positions(c: &mut Criterion) {
    let mut group = c.benchmark_group("json_100k_keys");
    group.sample_size(10);
    for (name, indented) in [("minified", false), ("indented", true)] {
        let text = object(100_000, indented);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| b.iter(|| parse_document(&text, Format::Json).unwrap()));
    }
    group.finish();
}

fn yaml_and_toml_one_line(c: &mut Criterion) {
    let mut group = c.benchmark_group("one_line_20k_keys");
    group.sample_size(10);
    let pairs: Vec<String> = (0..20_000).map(|i| format!("k{i}: {i}")).collect();
    let yaml = format!("{{{}}}\n", pairs.join(", "));
    let pairs: Vec<String> = (0..20_000).map(|i| format!("k{i} = {i}")).collect();
    let toml = format!("t = {{ {} }}\n", pairs.join(", "));
    group.bench_function("yaml_flow_mapping", |b| b.iter(|| parse_document(&yaml, Format::Yaml).unwrap()));
    group.bench_function("toml_inline_table", |b| b.iter(|| parse_document(&toml, Format::Toml).unwrap()));
    group.finish();
}

criterion_group!(benches, json_positions, yaml_and_toml_one_line);
criterion_main!(benches);
