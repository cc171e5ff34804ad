//! Validation as part of every load: per-view reports, rejection keeping the live snapshot, coverage,
//! schema defaults, templates and custom rules — over real files and the real binary.

use crate::common;

use common::{potter_example, potter_with, stderr, stdout, Tree};
use potter_config::{ConfigHost, Error, Options};
use potter_engine::Issue;
use serde_json::{json, Value};

fn example() -> Tree {
    Tree::copy_of("examples/potter")
}

fn root_arg(tree: &Tree) -> String {
    tree.root().to_str().unwrap().to_owned()
}

fn options(tree: &Tree) -> Options {
    let mut options = Options::new(tree.root());
    options.env_vars = Some(common::demo_keys());
    options.history = false;
    options
}

/// A tree with the shipped global schema and nothing secret.
fn schema_tree() -> Tree {
    let tree = Tree::minimal();
    tree.write(
        "global.json",
        r#"{"app": {"version": "1.0", "environment": "development"}, "api": {"rate_limit": 100, "timeout": 30}}"#,
    );
    tree.write("schemas/global_schema.json", &std::fs::read_to_string(common::repo_path("schemas/global_schema.json")).unwrap());
    tree.write(
        "schemas/service_schemas/llm_providers.json",
        &std::fs::read_to_string(common::repo_path("schemas/service_schemas/llm_providers.json")).unwrap(),
    );
    for env in ["development", "staging", "production"] {
        tree.write(&format!("environments/{env}.json"), &format!(r#"{{"app": {{"environment": "{env}"}}}}"#));
    }
    tree
}

#[test]
fn the_example_validates_cleanly_with_full_coverage() {
    let tree = example();
    let output = potter_example(&["--root", &root_arg(&tree), "validate", "--coverage"]);
    assert!(output.status.success(), "{}{}", stdout(&output), stderr(&output));
    let text = stdout(&output);
    assert_eq!(text.matches("coverage 100.0%").count(), 36, "12 base views and each with alice and with bob: {text}");
    assert!(text.contains("36 view(s), 0 error(s), 0 warning(s)"), "{text}");
}

#[test]
fn an_invalid_value_is_reported_per_view_with_its_source_line() {
    let tree = example();
    let file = tree.root().join("environments/production.json");
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replace("\"rate_limit\": 600", "\"rate_limit\": 5000")).unwrap();
    let output = potter_example(&["--root", &root_arg(&tree), "validate"]);
    assert_eq!(output.status.code(), Some(3));
    let text = stdout(&output);
    assert!(
        text.contains("production: api.rate_limit = 5000 at environments/production.json:6:19 — must be ≤ 1000 (global_schema.json#/properties/api/properties/rate_limit/maximum)"),
        "{text}"
    );
    assert!(text.contains("|                   ^^^^"), "the value is marked under its line: {text}");
    // api_service overrides the rate limit, so its view is clean.
    assert!(!text.contains("production/api_service:"), "{text}");

    let json = potter_example(&["--root", &root_arg(&tree), "validate", "--format", "json"]);
    let report: Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(report["valid"], false);
    let issues: Vec<&Value> = report["views"].as_array().unwrap().iter().flat_map(|v| v["issues"].as_array().unwrap()).collect();
    assert!(issues.iter().all(|i| i["path"] == "api.rate_limit" && i["rule"] == "schema:maximum"), "{issues:?}");
    assert_eq!(issues[0]["source"]["line"], 6);
}

#[test]
fn a_rejected_reload_keeps_the_previous_snapshot_live() {
    let tree = schema_tree();
    let host = ConfigHost::open(options(&tree)).unwrap();
    let view = host.view("production", None, None).unwrap();
    let mut subscription = host.subscribe(view.key(), "api").unwrap();
    tree.write("environments/production.json", r#"{"app": {"environment": "production"}, "api": {"timeout": 0.01}}"#);
    match host.reload() {
        Err(Error::Invalid(report)) => {
            let issue = report.issues().next().unwrap();
            assert_eq!(issue.path, "api.timeout");
            assert_eq!(issue.source.as_ref().unwrap().file, "environments/production.json");
        }
        other => panic!("expected the reload to be rejected, got {:?}", other.map(|s| s.version())),
    }
    assert_eq!(view.get::<f64>("api.timeout").unwrap(), 30.0);
    assert!(matches!(subscription.try_recv(), Some(potter_config::events::Event::Rejected { .. })));
    // Overrides are validated too.
    assert!(matches!(host.set("production", "api.rate_limit", json!(0)), Err(Error::Invalid(_))));
    assert_eq!(view.get::<u32>("api.rate_limit").unwrap(), 100);
}

#[test]
fn shipped_schema_rules_hold_in_every_view() {
    let cases = [
        (r#"{"app": {"environment": "qa"}}"#, "app.environment", "schema:enum"),
        (r#"{"api": {"rate_limit": 0}}"#, "api.rate_limit", "schema:minimum"),
        (r#"{"api": {"rate_limit": 1001}}"#, "api.rate_limit", "schema:maximum"),
        (r#"{"api": {"timeout": 0.05}}"#, "api.timeout", "schema:minimum"),
        (r#"{"api": {"timeout": 301}}"#, "api.timeout", "schema:maximum"),
        (r#"{"app": {"version": null}}"#, "app", "schema:required"),
        (r#"{"llm_providers": {"openai": {"model": "gpt-4o"}}}"#, "llm_providers.openai", "schema:required"),
        (r#"{"llm_providers": {"mistral": {"model": "m"}}}"#, "llm_providers.mistral", ""),
    ];
    for (production, path, rule) in cases {
        let tree = schema_tree();
        tree.write("environments/production.json", production);
        let (_, report) = ConfigHost::inspect(&options(&tree)).unwrap();
        let issues: Vec<&Issue> = report.issues().filter(|i| i.severity == potter_engine::Severity::Error).collect();
        assert!(
            issues.iter().any(|i| i.path.starts_with(path) && i.rule.starts_with(rule) && i.view.as_ref().unwrap().environment.as_ref() == "production"),
            "{production}: {issues:?}"
        );
        assert!(issues.iter().all(|i| i.view.as_ref().unwrap().environment.as_ref() == "production"), "other environments stay valid");
    }
}

#[test]
fn undescribed_keys_warn_by_default_and_fail_when_strict() {
    let tree = schema_tree();
    tree.write("environments/staging.json", r#"{"app": {"environment": "staging"}, "mystery": {"knob": 1}}"#);
    let root = root_arg(&tree);
    let relaxed = potter_example(&["--root", &root, "validate", "--coverage"]);
    assert!(relaxed.status.success(), "{}", stdout(&relaxed));
    let text = stdout(&relaxed);
    assert!(text.contains("warning") && text.contains("mystery"), "{text}");
    assert!(text.contains("staging: 0 error(s), 1 warning(s), coverage 87.5% of 8 keys"), "{text}");

    let strict = potter_example(&["--root", &root, "validate", "--strict"]);
    assert_eq!(strict.status.code(), Some(3), "{}", stdout(&strict));

    tree.write("global.json", r#"{"app": {"version": "1.0", "environment": "development"}, "validation": {"strict": true}}"#);
    assert_eq!(potter_example(&["--root", &root, "validate"]).status.code(), Some(3), "validation.strict in global config");
}

#[test]
fn schema_defaults_fill_gaps_and_explain_names_them() {
    let tree = schema_tree();
    let root = root_arg(&tree);
    let output = potter_example(&["--root", &root, "--env", "production", "get", "app.name"]);
    assert_eq!(stdout(&output).trim(), "Potter");
    let explain = potter_example(&["--root", &root, "--env", "production", "explain", "app.debug"]);
    let text = stdout(&explain);
    assert!(text.contains("schema default (global_schema.json#/properties/app/properties/debug)"), "{text}");
    assert!(text.contains("<- wins"), "{text}");
}

#[test]
fn templates_validate_cleanly() {
    for template in ["potter", "minimal"] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("config");
        let root = root.to_str().unwrap();
        assert!(potter_example(&["init", root, "--template", template]).status.success());
        assert!(potter_example(&["--root", root, "template", "service", "billing"]).status.success());
        let output = potter_example(&["--root", root, "validate", "--strict"]);
        assert!(output.status.success(), "{template}: {}", stdout(&output));
        assert_eq!(potter_example(&["init", root]).status.code(), Some(4), "init refuses a non-empty folder");
    }
}

#[test]
fn custom_native_rules_take_part_in_every_load() {
    let tree = schema_tree();
    let mut options = options(&tree);
    options.history = false;
    let rule = |view: &potter_engine::View| {
        let level = view.get("logging.level");
        if view.key().environment.as_ref() == "production" && level == Some(json!("DEBUG")) {
            vec![Issue::error("logging.level", "DEBUG logging is not allowed in production", "")]
        } else {
            vec![]
        }
    };
    let host = ConfigHost::open_with(options.clone(), |checks| checks.add_custom_validator("no-debug-in-production", rule)).unwrap();
    let error = host.set("production", "logging.level", json!("DEBUG")).unwrap_err().to_string();
    assert!(error.contains("DEBUG logging is not allowed in production") && error.contains("native:no-debug-in-production"), "{error}");
    host.set("staging", "logging.level", json!("DEBUG")).unwrap();
}

#[test]
fn bad_schemas_are_refused_with_their_path_and_reason() {
    let cases = [
        ("schemas/global_schema.json", "{\n  \"type\": \"object\",\n  \"properties\": {,}\n}", "global_schema.json:3:"),
        ("schemas/global_schema.json", r#"{"$ref": "https://example.com/remote.json"}"#, "remote"),
        ("schemas/global_schema.json", r#"{"type": "object", "properties": {"a": {"type": "nonsense"}}}"#, "global_schema.json"),
        ("schemas/global_schema.json", r#"{"$ref": "a.json"}"#, "cycle"),
    ];
    for (file, text, expected) in cases {
        let tree = schema_tree();
        tree.write(file, text);
        if expected == "cycle" {
            tree.write("schemas/a.json", r#"{"$ref": "b.json"}"#);
            tree.write("schemas/b.json", r#"{"$ref": "a.json"}"#);
        }
        let output = potter_with(&["--root", &root_arg(&tree), "validate"], &[], None);
        assert_eq!(output.status.code(), Some(3), "{text}");
        assert!(stderr(&output).contains(expected), "{text}: {}", stderr(&output));
    }
}

/// Every file below `dir`, by `/`-separated relative path, with its bytes.
fn files_below(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(base: &std::path::Path, dir: &std::path::Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let relative = path.strip_prefix(base).unwrap().to_string_lossy().replace('\\', "/");
                out.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn the_example_is_self_contained_and_its_schemas_are_the_shipped_ones() {
    let example = common::repo_path("examples/potter/schemas");
    assert!(!std::fs::symlink_metadata(&example).unwrap().file_type().is_symlink(), "a link does not survive `cp -r`");
    let shipped = files_below(&common::repo_path("schemas"));
    assert!(!shipped.is_empty());
    assert_eq!(files_below(&example), shipped, "examples/potter/schemas and schemas/ differ: copy one over the other");

    // `cp -r examples/potter mytree` validates: an invalid value is caught in the copy.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("mytree");
    let status = std::process::Command::new("cp").arg("-r").arg(common::repo_path("examples/potter")).arg(&copy).status().unwrap();
    assert!(status.success());
    std::fs::remove_dir_all(copy.join("plugins")).unwrap();
    let file = copy.join("environments/production.json");
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replace("\"rate_limit\": 600", "\"rate_limit\": 5000")).unwrap();
    let output = potter_example(&["--root", copy.to_str().unwrap(), "validate"]);
    assert_eq!(output.status.code(), Some(3), "{}", stdout(&output));
    assert!(stdout(&output).contains("api.rate_limit = 5000"), "{}", stdout(&output));
}

#[test]
fn a_tree_without_schemas_whose_files_hold_secrets_or_a_schema_key_is_warned_about() {
    let tree = example();
    std::fs::remove_dir_all(tree.root().join("schemas")).unwrap();
    let output = potter_example(&["--root", &root_arg(&tree), "validate"]);
    assert!(output.status.success(), "a warning, not an error: {}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("warning: the tree has no schemas") && text.contains("environments/production.json holds secrets"), "{text}");
    let json = potter_example(&["--root", &root_arg(&tree), "validate", "--format", "json"]);
    let report: Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(report["tree"][0]["rule"], "schemas", "{report}");
    assert_eq!(report["tree"][0]["severity"], "warning", "{report}");

    let plain = Tree::minimal();
    plain.write("global.json", r#"{"$schema": "./schemas/global_schema.json", "api": {"timeout": 30}}"#);
    let (_, report) = ConfigHost::inspect(&options(&plain)).unwrap();
    let warnings: Vec<String> = report.tree.iter().map(|issue| issue.message.clone()).collect();
    assert!(warnings.iter().any(|w| w.contains("global.json names a `$schema`")), "{warnings:?}");

    // A tree with neither has nothing to warn about; one with schemas neither.
    let (_, report) = ConfigHost::inspect(&options(&Tree::minimal())).unwrap();
    assert!(report.tree.is_empty(), "{:?}", report.tree);
    let (_, report) = ConfigHost::inspect(&options(&example())).unwrap();
    assert!(report.tree.is_empty(), "{:?}", report.tree);
}

#[test]
fn an_unusable_schemas_path_is_an_error_naming_it() {
    for (case, make) in [("a broken symlink", 0), ("a file", 1)] {
        let tree = schema_tree();
        // An invalid value that a working schemas folder would catch.
        tree.write("environments/production.json", r#"{"app": {"environment": "production"}, "api": {"rate_limit": 5000}}"#);
        let schemas = tree.root().join("schemas");
        std::fs::remove_dir_all(&schemas).unwrap();
        match make {
            0 => std::os::unix::fs::symlink("../nowhere", &schemas).unwrap(),
            _ => std::fs::write(&schemas, "{}").unwrap(),
        }
        let output = potter_with(&["--root", &root_arg(&tree), "validate"], &[], None);
        assert_eq!(output.status.code(), Some(3), "{case}: {}", stdout(&output));
        assert!(!stdout(&output).contains("0 error(s)"), "{case}: validation silently off: {}", stdout(&output));
        let message = stderr(&output);
        assert!(message.contains("schemas") && message.contains("cannot be used"), "{case}: {message}");
    }
}
