//! Read + parse with positions against `serde_json::from_slice` on the same bytes (issue 18):
//! every configuration file of the shared corpus, already in memory, parsed by each.
//!
//! `cargo bench -p potter-config --bench parse`

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{corpus, is_config_file};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use potter_engine::{parse_document, Format};

/// The corpus's configuration files, as text.
fn json_files(dir: &Path, into: &mut Vec<(PathBuf, String)>) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            json_files(&path, into);
        } else if is_config_file(&path) {
            into.push((path.clone(), fs::read_to_string(&path).unwrap()));
        }
    }
}

fn parse_corpus(c: &mut Criterion) {
    for size in ["small", "medium"] {
        let mut files = Vec::new();
        json_files(&corpus(size), &mut files);
        let bytes: usize = files.iter().map(|(_, text)| text.len()).sum();
        let mut group = c.benchmark_group(format!("parse_{size}"));
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function("floor_serde_json_from_slice", |b| {
            b.iter(|| files.iter().map(|(_, text)| serde_json::from_slice::<serde_json::Value>(text.as_bytes()).unwrap()).count())
        });
        group.bench_function("parse_document_with_positions", |b| {
            b.iter(|| files.iter().map(|(_, text)| parse_document(text, Format::Json).unwrap().locations.len()).sum::<usize>())
        });
        group.finish();
    }
}

criterion_group!(benches, parse_corpus);
criterion_main!(benches);
