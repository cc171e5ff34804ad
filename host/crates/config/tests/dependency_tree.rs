//! What an embedder compiles: the library's normal dependency tree (default features) has no CLI
//! parser, no HTTP server framework and no OpenAPI generator (docs/ARCHITECTURE.md, "Layering").
//! Asked of cargo itself, as an embedder's `cargo tree` would show it.

use std::process::Command;

/// Crates that belong to the server or the CLI, never to the library an application embeds.
const SERVER_AND_CLI_CRATES: &[&str] = &["clap", "axum", "axum-core", "utoipa", "tonic", "hyper-util", "tower-http", "matchit"];

fn normal_dependencies(features: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command.args(["tree", "--offline", "-p", "potter-config", "-e", "normal", "--prefix", "none", "--format", "{p}"]);
    if !features.is_empty() {
        command.args(["--features", &features.join(",")]);
    }
    let output = command.current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("cargo runs");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn the_library_compiles_no_clap_axum_server_stack_or_utoipa() {
    let crates = normal_dependencies(&[]);
    assert!(crates.iter().any(|name| name == "potter-engine"), "the tree was read: {crates:?}");
    let found: Vec<&String> = crates.iter().filter(|name| SERVER_AND_CLI_CRATES.contains(&name.as_str())).collect();
    assert!(found.is_empty(), "the library's default dependency tree has {found:?}");
}

#[test]
fn the_etcd_feature_is_what_brings_tonic_and_its_router() {
    // The reason the etcd store is a feature: etcd-client needs tonic's default features, whose
    // router and server pull in axum. If this stops holding, the store can be compiled in again.
    let crates = normal_dependencies(&["etcd"]);
    assert!(crates.iter().any(|name| name == "etcd-client"));
    assert!(crates.iter().any(|name| name == "axum"), "etcd-client no longer brings axum: make the store default again");
}
