//! The SDK packages' READMEs, followed literally: in an empty folder, each block marked
//! `<!-- test: file PATH -->` is written to PATH and each block marked `<!-- test: run -->` is run
//! with bash (fails on the first failing command), with `POTTER_REPO` set to this checkout and the
//! `potter-config` under test first on the `PATH`. Then the plugin the README built must be listed
//! as loaded and signed, and must refuse what it was written to refuse.
//!
//! Needs Python 3 with venv and Node 20 with npm (installed by `scripts/setup`); the packages'
//! own dependencies come from the registries through pip and npm, as for a user.

use std::path::{Path, PathBuf};
use std::process::Command;

const POTTER_CONFIG: &str = env!("CARGO_BIN_EXE_potter-config");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..").canonicalize().unwrap()
}

enum Step {
    File { path: String, contents: String },
    Run(String),
}

/// The marked blocks of a README, in order.
fn steps(readme: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(marker) = line.trim().strip_prefix("<!-- test: ").and_then(|rest| rest.strip_suffix(" -->")) else { continue };
        let fence = lines.next().unwrap_or_default();
        assert!(fence.starts_with("```"), "a test marker must be followed by a fenced block: {line}");
        let body: Vec<&str> = lines.by_ref().take_while(|line| !line.starts_with("```")).collect();
        let body = body.join("\n") + "\n";
        match marker.split_once(' ') {
            Some(("file", path)) => steps.push(Step::File { path: path.to_owned(), contents: body }),
            None if marker == "run" => steps.push(Step::Run(body)),
            _ => panic!("unknown test marker {line}"),
        }
    }
    steps
}

/// Follows `readme` in a fresh folder and returns it.
fn follow(readme: &str) -> tempfile::TempDir {
    let text = std::fs::read_to_string(repo().join(readme)).unwrap();
    let steps = steps(&text);
    assert!(steps.iter().filter(|step| matches!(step, Step::Run(_))).count() >= 4, "{readme} lost its test markers");
    let folder = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(POTTER_CONFIG).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    for step in steps {
        match step {
            Step::File { path, contents } => {
                let target = folder.path().join(path);
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::write(target, contents).unwrap();
            }
            Step::Run(script) => {
                let output = Command::new("bash")
                    .args(["-euo", "pipefail", "-c", &script])
                    .current_dir(folder.path())
                    .env("POTTER_REPO", repo())
                    .env("PATH", &path)
                    .env_remove("POTTER_ENV")
                    .output()
                    .unwrap();
                assert!(
                    output.status.success(),
                    "{readme}: the block\n{script}failed ({}):\n{}{}",
                    output.status,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }
    folder
}

fn potter(folder: &Path, args: &[&str]) -> std::process::Output {
    Command::new(POTTER_CONFIG).arg("--root").arg(folder.join("config")).args(args).env_remove("POTTER_ENV").output().unwrap()
}

/// The README's plugin is loaded, signed by the key it made, and refuses debug in production.
fn assert_plugin_works(folder: &Path) {
    let listed = potter(folder, &["--format", "json", "plugin", "list"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let plugins: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let plugin = plugins.as_array().unwrap().iter().find(|plugin| plugin["name"] == "no-debug").expect("listed");
    assert_eq!(plugin["status"], "loaded", "{plugin}");
    assert!(plugin["signer_key_id"].as_str().is_some_and(|id| !id.is_empty()), "{plugin}");

    std::fs::write(folder.join("config/environments/production.json"), r#"{ "app": { "debug": true } }"#).unwrap();
    let refused = potter(folder, &["--env", "production", "validate"]);
    assert!(!refused.status.success());
    let said = format!("{}{}", String::from_utf8_lossy(&refused.stdout), String::from_utf8_lossy(&refused.stderr));
    assert!(said.contains("debug must be off in production") && said.contains("plugin:no-debug"), "{said}");
}

#[test]
fn the_python_sdk_readme_builds_signs_and_loads_its_plugin() {
    let folder = follow("sdk/python/README.md");
    assert_plugin_works(folder.path());
}

#[test]
fn the_js_sdk_readme_builds_signs_and_loads_its_plugin() {
    let folder = follow("sdk/js/README.md");
    assert_plugin_works(folder.path());
}
