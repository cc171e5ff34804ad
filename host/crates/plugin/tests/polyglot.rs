//! Validators written in Python (componentize-py) and JavaScript (componentize-js), built from
//! `examples/plugins/` with the real toolchains, signed, loaded and run by the real host.
//!
//! Compiling a ~20 MB guest takes seconds, so the tests share one fixture and one host that
//! compiles each guest once (with an empty cache); the second-host test then proves the cache.

use crate::common;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use common::{environment_view, Fixture, JS_VALIDATOR, PYTHON_VALIDATOR};
use potter_plugin::{CompiledFrom, LoadedPlugin, PluginHost, PluginIssue, Severity};
use serde_json::{json, Value};

struct Loaded {
    fixture: Fixture,
    _host: PluginHost,
    python: Arc<LoadedPlugin>,
    js: Arc<LoadedPlugin>,
}

/// Both guests, signed by the fixture's trusted key and loaded by one production host.
fn loaded() -> &'static Loaded {
    static LOADED: OnceLock<Loaded> = OnceLock::new();
    LOADED.get_or_init(|| {
        // A static is never dropped, so its directory (with ~100 MB of compiled code) would
        // outlive the run: keep it under this target dir's scratch space and clear the last run's.
        let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("polyglot-tests");
        let _ = std::fs::remove_dir_all(&scratch);
        let fixture = Fixture::new_in(&scratch);
        let host = fixture.host("production");
        let load = |name: &str| {
            let plugin = host.load_file(&fixture.install(name)).unwrap();
            assert!(plugin.signer_key_id().is_some(), "{name} loaded unsigned");
            assert_eq!(plugin.compiled_from(), CompiledFrom::Compiler, "{name}");
            plugin
        };
        let python = load(PYTHON_VALIDATOR);
        let js = load(JS_VALIDATOR);
        Loaded {
            fixture,
            _host: host,
            python,
            js,
        }
    })
}

fn no_secrets(_: &str) -> bool {
    false
}

fn validate(plugin: &LoadedPlugin, config: &Value) -> Vec<PluginIssue> {
    plugin
        .validate(&environment_view("production"), config, &no_secrets)
        .unwrap()
}

fn summary(issues: &[PluginIssue]) -> Vec<(&str, Severity)> {
    issues
        .iter()
        .map(|i| (i.path.as_str(), i.severity))
        .collect()
}

// --- Python: every llm_providers.*.model is in plugins.python-validator.allowed_models ---------

fn providers(openai_model: &str) -> Value {
    json!({
        "openai": {"model": openai_model, "timeout": 20},
        "anthropic": {"model": "claude-sonnet-4-5", "timeout": 20},
    })
}

fn allowed_models() -> Value {
    json!({"python-validator": {"allowed_models": ["gpt-4o", "claude-sonnet-4-5"]}})
}

#[test]
fn python_accepts_allowed_models() {
    let config = json!({"llm_providers": providers("gpt-4o"), "plugins": allowed_models()});
    let issues = validate(&loaded().python, &config);
    assert!(issues.is_empty(), "{issues:?}");
}

#[test]
fn python_rejects_a_model_outside_the_allowed_list() {
    let config = json!({"llm_providers": providers("gpt-3.5-turbo"), "plugins": allowed_models()});
    let issues = validate(&loaded().python, &config);
    assert_eq!(
        summary(&issues),
        [("llm_providers.openai.model", Severity::Error)]
    );
    assert_eq!(issues[0].rule(), "plugin:python-validator");
    assert!(
        issues[0].message.contains(
            "'gpt-3.5-turbo' is not an allowed model (allowed: gpt-4o, claude-sonnet-4-5"
        ),
        "{}",
        issues[0].message
    );
}

#[test]
fn python_warns_when_the_allowed_list_is_missing() {
    let config = json!({"llm_providers": providers("gpt-3.5-turbo")});
    let issues = validate(&loaded().python, &config);
    assert_eq!(
        summary(&issues),
        [("plugins.python-validator.allowed_models", Severity::Warning)]
    );
    assert!(
        issues[0].message.contains("allowed_models is missing"),
        "{}",
        issues[0].message
    );
}

#[test]
fn python_guest_loads_from_the_compiled_cache_on_a_second_host() {
    let fixture = &loaded().fixture;
    let second_host = fixture.host("production");
    let wasm = fixture.plugins.join(format!("{PYTHON_VALIDATOR}.wasm"));
    let cached = second_host.load_file(&wasm).unwrap();
    assert_eq!(cached.compiled_from(), CompiledFrom::Cache);
    // The cached code runs the same check.
    let config = json!({"llm_providers": providers("gpt-3.5-turbo"), "plugins": allowed_models()});
    assert_eq!(
        summary(&validate(&cached, &config)),
        [("llm_providers.openai.model", Severity::Error)]
    );
}

// --- JavaScript: every llm_providers.*.timeout is below api.timeout ----------------------------

#[test]
fn js_accepts_provider_timeouts_below_the_api_timeout() {
    let config = json!({
        "api": {"timeout": 30},
        "llm_providers": {"openai": {"timeout": 20}, "anthropic": {"timeout": 29.5}, "google": {}},
    });
    let issues = validate(&loaded().js, &config);
    assert!(issues.is_empty(), "{issues:?}");
}

#[test]
fn js_rejects_a_provider_timeout_not_below_the_api_timeout() {
    let config = json!({
        "api": {"timeout": 30},
        "llm_providers": {"openai": {"timeout": 60}, "anthropic": {"timeout": 30}, "google": {"timeout": 10}},
    });
    let issues = validate(&loaded().js, &config);
    assert_eq!(
        summary(&issues),
        [
            ("llm_providers.anthropic.timeout", Severity::Error),
            ("llm_providers.openai.timeout", Severity::Error),
        ]
    );
    assert_eq!(issues[1].rule(), "plugin:js-validator");
    assert!(
        issues[1]
            .message
            .starts_with("llm_providers.openai.timeout (60) must be less than api.timeout (30)"),
        "{}",
        issues[1].message
    );
}

#[test]
fn js_has_nothing_to_compare_without_an_api_timeout() {
    let config = json!({"llm_providers": {"openai": {"timeout": 60}}});
    let issues = validate(&loaded().js, &config);
    assert!(issues.is_empty(), "{issues:?}");
}
