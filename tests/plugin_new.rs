//! `potter-config plugin new` for each language × kind: the scaffold, built and installed by its
//! own `install.sh` (build, sign with the project's development key, trust it), loads on first try
//! and does what the template says — the validator refuses `app.debug` in production, the source's
//! greeting is served.
//!
//! Needs the wasm32-wasip2 target, Python 3 with venv and Node 20 with npm (installed by
//! `scripts/setup`); the packages come from the checkout's `sdk/` (`--sdk`), their own
//! dependencies from the registries.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{repo_path, stderr, stdout, Tree};

const POTTER_CONFIG: &str = env!("CARGO_BIN_EXE_potter-config");

fn potter(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(POTTER_CONFIG).arg("--root").arg(root).args(args).env_remove("POTTER_ENV").output().unwrap()
}

/// Scaffolds `name` beside `tree`'s root and runs its `install.sh` into the tree.
fn scaffold_and_install(tree: &Tree, name: &str, language: &str, kind: &str) {
    let project = tree.root().parent().unwrap().join(name);
    let sdk = repo_path("sdk");
    let created = Command::new(POTTER_CONFIG)
        .args(["plugin", "new", name, "--lang", language, "--kind", kind, "--sdk"])
        .arg(&sdk)
        .arg("--dir")
        .arg(&project)
        .output()
        .unwrap();
    assert!(created.status.success(), "plugin new: {}", stderr(&created));
    assert!(project.join("dev-key.key").exists() && project.join("dev-key.pub").exists());
    assert!(std::fs::read_to_string(project.join(".gitignore")).unwrap().contains("dev-key.key"));

    // pip builds a local package inside its source folder (sdk/python/build/): two Python
    // scaffolds installing at once collide there ("File exists"), so they take turns.
    static PYTHON_SDK_BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = (language == "python").then(|| PYTHON_SDK_BUILD.lock().unwrap_or_else(|p| p.into_inner()));
    let installed = Command::new(project.join("install.sh"))
        .arg(tree.root())
        .env("POTTER_CONFIG", POTTER_CONFIG)
        // The Rust scaffolds share one target directory, so the SDK compiles once per run.
        .env("CARGO_TARGET_DIR", repo_path("target/plugin-new"))
        .env_remove("POTTER_ENV")
        .output()
        .unwrap();
    assert!(installed.status.success(), "{name}/install.sh failed:\n{}{}", stdout(&installed), stderr(&installed));

    let listed = potter(&tree.root(), &["--format", "json", "plugin", "list"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let plugins: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let plugin = plugins.as_array().unwrap().iter().find(|plugin| plugin["name"] == name).expect("listed");
    assert_eq!(plugin["status"], "loaded", "{plugin}");
    assert_eq!(plugin["kind"], kind, "{plugin}");
    assert!(plugin["signer_key_id"].as_str().is_some_and(|id| !id.is_empty()), "{plugin}");
}

fn check_validator(language: &str) {
    let tree = Tree::minimal();
    tree.write("global.json", r#"{ "app": { "debug": false } }"#);
    let name = format!("{language}-check");
    scaffold_and_install(&tree, &name, language, "validator");

    let valid = potter(&tree.root(), &["--env", "production", "validate"]);
    assert!(valid.status.success(), "{}{}", stdout(&valid), stderr(&valid));
    tree.write("environments/production.json", r#"{ "app": { "debug": true } }"#);
    let refused = potter(&tree.root(), &["--env", "production", "validate"]);
    assert_eq!(refused.status.code(), Some(3), "{}", stdout(&refused));
    let said = format!("{}{}", stdout(&refused), stderr(&refused));
    assert!(said.contains("debug must be off in production") && said.contains(&format!("plugin:{name}")), "{said}");
}

fn check_source(language: &str) {
    let tree = Tree::minimal();
    let name = format!("{language}-feed");
    scaffold_and_install(&tree, &name, language, "source");

    let key = format!("{}.greeting", name.replace('-', "_"));
    let served = potter(&tree.root(), &["--env", "staging", "get", &key]);
    assert!(served.status.success(), "{}", stderr(&served));
    assert_eq!(stdout(&served).trim(), format!("hello from {name} in staging"));
}

#[test]
fn a_new_rust_validator_builds_signs_and_loads() {
    check_validator("rust");
}

#[test]
fn a_new_rust_source_builds_signs_and_loads() {
    check_source("rust");
}

#[test]
fn a_new_python_validator_builds_signs_and_loads() {
    check_validator("python");
}

#[test]
fn a_new_python_source_builds_signs_and_loads() {
    check_source("python");
}

#[test]
fn a_new_js_validator_builds_signs_and_loads() {
    check_validator("js");
}

#[test]
fn a_new_js_source_builds_signs_and_loads() {
    check_source("js");
}

#[test]
fn plugin_new_refuses_a_bad_name_and_a_folder_in_use() {
    let folder = tempfile::tempdir().unwrap();
    let bad = Command::new(POTTER_CONFIG).args(["plugin", "new", "Bad_Name", "--lang", "rust", "--kind", "validator"]).current_dir(folder.path()).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("`Bad_Name` is not a plugin name"), "{}", stderr(&bad));

    std::fs::create_dir(folder.path().join("taken")).unwrap();
    std::fs::write(folder.path().join("taken/keep.txt"), "mine").unwrap();
    let taken = Command::new(POTTER_CONFIG)
        .args(["plugin", "new", "taken", "--lang", "python", "--kind", "source"])
        .current_dir(folder.path())
        .output()
        .unwrap();
    assert_eq!(taken.status.code(), Some(2));
    assert!(stderr(&taken).contains("exists and is not empty"), "{}", stderr(&taken));
    assert_eq!(std::fs::read_to_string(folder.path().join("taken/keep.txt")).unwrap(), "mine");
}
