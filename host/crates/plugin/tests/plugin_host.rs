//! The plugin host over real components built from `plugins/` and `tests/plugins/`.

use crate::common;

use std::fs;

use common::Fixture;
use potter_plugin::{
    keygen, sign, verify, CompiledFrom, PluginError, PluginHost, PluginIssue, PluginStatus,
    Refusal, Severity, ValidationTarget,
};
use serde_json::{json, Value};

fn view(environment: &str) -> ValidationTarget {
    ValidationTarget {
        environment: environment.into(),
        service: None,
    }
}

fn no_secrets(_: &str) -> bool {
    false
}

fn validate_with(
    host: &PluginHost,
    fixture: &Fixture,
    name: &str,
    environment: &str,
    config: &Value,
) -> Result<Vec<PluginIssue>, PluginError> {
    let wasm = fixture.install(name);
    let plugin = host.load_file(&wasm).unwrap();
    plugin.validate(&view(environment), config, &no_secrets)
}

/// production-safety still answers correctly: the host survived whatever came before.
fn assert_host_still_serves(host: &PluginHost, fixture: &Fixture) {
    let issues = validate_with(
        host,
        fixture,
        "production-safety",
        "production",
        &json!({"app": {"debug": true}}),
    )
    .unwrap();
    assert_eq!(issues.len(), 1, "{issues:?}");
}

// --- production-safety --------------------------------------------------------

#[test]
fn production_rejects_debug_and_debug_logging() {
    let fixture = Fixture::new();
    let host = fixture.host("production");
    let config =
        json!({"app": {"debug": true}, "logging": {"level": "DEBUG"}, "api": {"rate_limit": 9000}});
    let issues =
        validate_with(&host, &fixture, "production-safety", "production", &config).unwrap();
    let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, ["app.debug", "logging.level"]);
    assert!(issues
        .iter()
        .all(|i| i.severity == Severity::Error && i.rule() == "plugin:production-safety"));
    assert!(
        issues[0]
            .message
            .contains("app.debug must be false in production"),
        "{}",
        issues[0].message
    );
}

#[test]
fn production_accepts_safe_settings() {
    let fixture = Fixture::new();
    let host = fixture.host("production");
    let config = json!({"app": {"debug": false}, "logging": {"level": "INFO"}});
    assert!(
        validate_with(&host, &fixture, "production-safety", "production", &config)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn staging_caps_rate_limit_at_500() {
    let fixture = Fixture::new();
    let host = fixture.host("staging");
    let plugin = host
        .load_file(&fixture.install("production-safety"))
        .unwrap();
    let staging = view("staging");
    let too_high = plugin.validate(
        &staging,
        &json!({"api": {"rate_limit": 501}, "app": {"debug": true}}),
        &no_secrets,
    );
    let issues = too_high.unwrap();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].path, "api.rate_limit");
    assert!(
        issues[0].message.contains("at most 500"),
        "{}",
        issues[0].message
    );
    assert!(plugin
        .validate(&staging, &json!({"api": {"rate_limit": 500}}), &no_secrets)
        .unwrap()
        .is_empty());
    // Other environments have no rules.
    let dev = plugin.validate(
        &view("dev"),
        &json!({"app": {"debug": true}, "api": {"rate_limit": 1e6}}),
        &no_secrets,
    );
    assert!(dev.unwrap().is_empty());
}

// --- hostile guests ---------------------------------------------------------------

#[test]
fn infinite_loop_times_out_and_host_keeps_serving() {
    let fixture = Fixture::new();
    let host = fixture.host("production");
    let plugin = host.load_file(&fixture.install("infinite-loop")).unwrap();
    for _ in 0..2 {
        let started = std::time::Instant::now();
        let error = plugin
            .validate(&view("production"), &json!({}), &no_secrets)
            .unwrap_err();
        assert!(
            matches!(error, PluginError::Timeout { limit_ms: 100, .. }),
            "{error}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert_eq!(
            error.to_string(),
            "plugin infinite-loop: validate: timed out (limit 100 ms)"
        );
    }
    assert!(plugin.last_error().unwrap().contains("timed out"));
    assert_host_still_serves(&host, &fixture);
}

#[test]
fn memory_bomb_hits_the_memory_cap() {
    let fixture = Fixture::new();
    let host = fixture.host("production");
    let error =
        validate_with(&host, &fixture, "memory-bomb", "production", &json!({})).unwrap_err();
    assert!(
        matches!(error, PluginError::MemoryLimit { limit_mib: 64, .. }),
        "{error}"
    );
    assert!(error
        .to_string()
        .contains("plugin memory-bomb: validate: exceeded its memory limit of 64 MiB"));
    assert_host_still_serves(&host, &fixture);
}

#[test]
fn panic_is_reported_as_a_trap_with_the_panic_message() {
    let fixture = Fixture::new();
    let host = fixture.host("production");
    let plugin = host.load_file(&fixture.install("panics")).unwrap();
    // Twice: the trapped instance is thrown away, the second call gets a fresh one.
    for _ in 0..2 {
        let error = plugin
            .validate(&view("production"), &json!({}), &no_secrets)
            .unwrap_err();
        assert!(matches!(error, PluginError::Trap { .. }), "{error}");
        let text = error.to_string();
        assert!(
            text.starts_with("plugin panics: validate: trapped: wasm trap"),
            "{text}"
        );
        assert!(
            text.contains("boom: hostile plugin panicked on purpose"),
            "{text}"
        );
        assert!(!text.contains("wasm backtrace"), "{text}");
    }
    assert_host_still_serves(&host, &fixture);
}

#[test]
fn a_validator_has_no_directory_to_read_from() {
    let fixture = Fixture::new();
    let host = fixture.host("production");
    // The filesystem interface is linked (language runtimes import it), but no directory is
    // preopened for a validator, so the read fails inside the guest.
    let plugin = host.load_file(&fixture.install("reads-file")).unwrap();
    let issues = plugin
        .validate(&view("production"), &json!({}), &no_secrets)
        .unwrap();
    assert_eq!(issues[0].message, "read 0 bytes");
}

#[test]
fn environment_is_empty_unless_variables_are_granted() {
    let fixture = Fixture::new();
    let host = fixture.host("production");
    let plugin = host.load_file(&fixture.install("reads-env")).unwrap();
    let issues = plugin
        .validate(&view("production"), &json!({}), &no_secrets)
        .unwrap();
    assert_eq!(
        issues[0].message, "HOME is ",
        "HOME was not granted, so the plugin must not see it"
    );

    // With a signed grant it sees exactly the granted variable.
    let wasm = fixture.install_unsigned("reads-env");
    let manifest = fixture.plugins.join("reads-env.plugin.toml");
    let text = fs::read_to_string(&manifest).unwrap();
    fs::write(&manifest, format!("{text}[grants]\nenv = [\"HOME\"]\n")).unwrap();
    sign(&wasm, &fixture.key.secret_key).unwrap();
    let plugin = host.load_file(&wasm).unwrap();
    let issues = plugin
        .validate(&view("production"), &json!({}), &no_secrets)
        .unwrap();
    let home = std::env::var("HOME").unwrap_or_default();
    assert_eq!(issues[0].message, format!("HOME is {home}"));
}

#[test]
fn oversized_output_is_refused() {
    let fixture = Fixture::new();
    let host = fixture.host("production");
    let error = validate_with(
        &host,
        &fixture,
        "oversized-output",
        "production",
        &json!({}),
    )
    .unwrap_err();
    match &error {
        PluginError::OutputTooLarge {
            plugin,
            size,
            limit,
            ..
        } => {
            assert_eq!(plugin, "oversized-output");
            assert_eq!(*limit, 64 * 1024);
            assert!(size > limit);
        }
        other => panic!("expected oversized output, got {other}"),
    }
    assert_host_still_serves(&host, &fixture);
}

#[test]
fn garbage_issue_path_is_refused() {
    let fixture = Fixture::new();
    let host = fixture.host("production");
    let error =
        validate_with(&host, &fixture, "garbage-output", "production", &json!({})).unwrap_err();
    assert!(
        matches!(error, PluginError::InvalidOutput { .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("plugin garbage-output: validate: invalid output: issue 0: path"),
        "{error}"
    );
}

#[test]
fn core_module_is_refused_as_not_a_component() {
    let fixture = Fixture::new();
    let host = fixture.host("production");
    let wasm = fixture.install_bytes("core-module", b"\0asm\x01\0\0\0");
    let error = host.load_file(&wasm).unwrap_err();
    assert!(
        matches!(error, PluginError::InvalidModule { .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("core WebAssembly module, not a component"),
        "{error}"
    );
}

#[test]
fn random_bytes_are_refused() {
    let fixture = Fixture::new();
    let host = fixture.host("production");
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let error = host
        .load_file(&fixture.install_bytes("noise", &noise))
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("plugin noise: not a loadable component: not a WebAssembly file"),
        "{error}"
    );
    let truncated = fs::read(common::built_plugins().join("production-safety.wasm")).unwrap();
    let error = host
        .load_file(&fixture.install_bytes("truncated", &truncated[..truncated.len() / 2]))
        .unwrap_err();
    assert!(
        matches!(error, PluginError::InvalidModule { .. }),
        "{error}"
    );
}

// --- signatures ---------------------------------------------------------------------

fn refusal(error: PluginError) -> Refusal {
    match error {
        PluginError::Refused { reason, .. } => reason,
        other => panic!("expected a refusal, got {other}"),
    }
}

#[test]
fn unsigned_plugin_is_refused() {
    let fixture = Fixture::new();
    let host = fixture.host("production");
    let error = host
        .load_file(&fixture.install_unsigned("production-safety"))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "plugin production-safety: refused: it is not signed (no production-safety.wasm.sig beside it)"
    );
    assert!(error.is_refusal());
}

#[test]
fn allow_unsigned_works_in_development_and_is_refused_in_production() {
    let fixture = Fixture::new();
    let wasm = fixture.install_unsigned("production-safety");
    let mut options = fixture.options("dev");
    options.allow_unsigned = true;
    let host = PluginHost::new(options).unwrap();
    let plugin = host.load_file(&wasm).unwrap();
    assert_eq!(plugin.signer_key_id(), None);

    let mut production = fixture.options("production");
    production.allow_unsigned = true;
    let error = PluginHost::new(production)
        .err()
        .expect("allow_unsigned must be refused in production");
    assert!(
        error.to_string().contains("never allowed in production"),
        "{error}"
    );
}

#[test]
fn tampered_module_is_refused() {
    let fixture = Fixture::new();
    let wasm = fixture.install("production-safety");
    let mut bytes = fs::read(&wasm).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&wasm, bytes).unwrap();
    assert_eq!(
        refusal(fixture.host("production").load_file(&wasm).unwrap_err()),
        Refusal::ModuleTampered
    );
    assert_eq!(
        refusal(verify(&wasm, &fixture.state.join("trusted-keys")).unwrap_err()),
        Refusal::ModuleTampered
    );
}

#[test]
fn manifest_widened_after_signing_is_refused() {
    let fixture = Fixture::new();
    let wasm = fixture.install("production-safety");
    let manifest = fixture.plugins.join("production-safety.plugin.toml");
    let widened = fs::read_to_string(&manifest)
        .unwrap()
        .replace("secrets = false", "secrets = true");
    fs::write(&manifest, widened).unwrap();
    assert_eq!(
        refusal(fixture.host("production").load_file(&wasm).unwrap_err()),
        Refusal::ManifestTampered
    );
}

#[test]
fn forged_signature_is_refused() {
    let fixture = Fixture::new();
    let wasm = fixture.install("production-safety");
    let sig_path = fixture.plugins.join("production-safety.wasm.sig");
    let text = fs::read_to_string(&sig_path).unwrap();
    let line = text.lines().find(|l| l.starts_with("signature ")).unwrap();
    let (head, last) = line.split_at(line.len() - 1);
    let flipped = format!("{head}{}", if last == "0" { "1" } else { "0" });
    fs::write(&sig_path, text.replace(line, &flipped)).unwrap();
    assert_eq!(
        refusal(fixture.host("production").load_file(&wasm).unwrap_err()),
        Refusal::BadSignature
    );
}

#[test]
fn plugin_signed_by_an_untrusted_key_is_refused() {
    let fixture = Fixture::new();
    let wasm = fixture.install_unsigned("production-safety");
    let stranger = keygen(&fixture.temp.path().join("stranger")).unwrap();
    sign(&wasm, &stranger.secret_key).unwrap();
    let error = fixture.host("production").load_file(&wasm).unwrap_err();
    assert_eq!(refusal(error), Refusal::UnknownKey(stranger.key_id.clone()));
}

#[test]
fn keygen_writes_a_private_key_only_the_owner_can_read() {
    let fixture = Fixture::new();
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&fixture.key.secret_key)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        keygen(&fixture.temp.path().join("author")).is_err(),
        "keygen must not overwrite a key"
    );
}

// --- compiled cache -------------------------------------------------------------------

#[test]
fn second_load_comes_from_the_compiled_cache() {
    let fixture = Fixture::new();
    let wasm = fixture.install("production-safety");
    let first = fixture.host("production").load_file(&wasm).unwrap();
    assert_eq!(first.compiled_from(), CompiledFrom::Compiler);
    let second_host = fixture.host("production");
    let second = second_host.load_file(&wasm).unwrap();
    assert_eq!(second.compiled_from(), CompiledFrom::Cache);
    let issues = second
        .validate(
            &view("production"),
            &json!({"app": {"debug": true}}),
            &no_secrets,
        )
        .unwrap();
    assert_eq!(issues.len(), 1);
}

#[test]
fn cache_entry_not_written_by_the_host_is_never_deserialized() {
    let fixture = Fixture::new();
    let wasm = fixture.install("production-safety");
    fixture.host("production").load_file(&wasm).unwrap();
    let cache_dir = fixture.state.join("plugin-cache");
    let entry = fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .unwrap();
    let mut forged = fs::read(&entry).unwrap();
    let last = forged.len() - 1;
    forged[last] ^= 0xff;
    fs::write(&entry, forged).unwrap();
    let reloaded = fixture.host("production").load_file(&wasm).unwrap();
    assert_eq!(
        reloaded.compiled_from(),
        CompiledFrom::Compiler,
        "a forged entry must be recompiled"
    );
}

// --- namespace sandbox and list -------------------------------------------------------------

#[test]
fn validator_sees_only_its_prefixes_and_namespace_and_no_secrets() {
    let fixture = Fixture::new();
    let host = fixture.host("staging");
    let plugin = host.load_file(&fixture.install("echo-config")).unwrap();
    let config = json!({
        "app": {"name": "potter"},
        "db": {"host": "db1", "password": "hunter2"},
        "billing": {"card": "4111"},
        "plugins": {"echo-config": {"strict": true}, "other": {"token": "x"}}
    });
    let is_secret = |path: &str| path == "db.password";
    let issues = plugin.validate(
        &ValidationTarget {
            environment: "staging".into(),
            service: Some("web".into()),
        },
        &config,
        &is_secret,
    );
    let issues = issues.unwrap();
    let seen: Value = serde_json::from_str(&issues[0].message).unwrap();
    assert_eq!(
        seen,
        json!({"app": {"name": "potter"}, "db": {"host": "db1"}, "plugins": {"echo-config": {"strict": true}}})
    );
    assert_eq!(
        issues[1].message,
        "environment=staging namespace={\"strict\":true}"
    );
}

#[test]
fn list_reports_loaded_and_refused_plugins() {
    let fixture = Fixture::new();
    fixture.install("production-safety");
    fixture.install_unsigned("panics");
    let host = fixture.host("production");
    let results = host.load_dir(&fixture.plugins);
    assert_eq!(results.len(), 2);
    let list = host.list();
    let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["panics", "production-safety"]);
    assert_eq!(list[0].status, PluginStatus::Refused);
    assert!(list[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("not signed"));
    let loaded = &list[1];
    assert_eq!(loaded.status, PluginStatus::Loaded);
    assert_eq!(
        loaded.signer_key_id.as_deref(),
        Some(fixture.key.key_id.as_str())
    );
    assert_eq!(loaded.limits.unwrap().memory_mib, 64);
    assert_eq!(loaded.sha256.as_ref().unwrap().len(), 64);
    assert_eq!(host.plugins().len(), 1);
}

#[test]
fn manifest_asking_above_host_maximum_is_refused() {
    let fixture = Fixture::new();
    let wasm = fixture.install_unsigned("production-safety");
    let manifest = fixture.plugins.join("production-safety.plugin.toml");
    let text = fs::read_to_string(&manifest).unwrap();
    // `plugin sign` refuses what no host would load (issue 20)...
    fs::write(&manifest, format!("{text}[limits]\nmemory_mib = 100000\n")).unwrap();
    let error = sign(&wasm, &fixture.key.secret_key).unwrap_err();
    assert!(error.to_string().contains("memory_mib = 100000 exceeds the host maximum"), "{error}");
    // ...and a host whose maxima are lower than the signer's refuses it at load.
    fs::write(&manifest, format!("{text}[limits]\nmemory_mib = 400\n")).unwrap();
    sign(&wasm, &fixture.key.secret_key).unwrap();
    let mut options = fixture.options("production");
    options.max_limits.memory_mib = 256;
    let error = PluginHost::new(options).unwrap().load_file(&wasm).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("memory_mib = 400 exceeds the host maximum of 256"),
        "{error}"
    );
}

#[test]
fn host_and_plugins_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PluginHost>();
    assert_send_sync::<potter_plugin::LoadedPlugin>();

    let fixture = Fixture::new();
    let host = fixture.host("production");
    let plugin = host
        .load_file(&fixture.install("production-safety"))
        .unwrap();
    std::thread::scope(|scope| {
        for round in 0..4 {
            let plugin = &plugin;
            scope.spawn(move || {
                for _ in 0..20 {
                    let debug = round % 2 == 0;
                    let issues = plugin.validate(
                        &view("production"),
                        &json!({"app": {"debug": debug}}),
                        &no_secrets,
                    );
                    assert_eq!(issues.unwrap().len(), usize::from(debug));
                }
            });
        }
    });
}

#[test]
fn guest_log_and_stdio_go_to_the_host_log_tagged_with_the_plugin() {
    let fixture = Fixture::new();
    let host = fixture.host("production");
    let plugin = host.load_file(&fixture.install("echo-config")).unwrap();
    let log = common::CapturedLog::default();
    tracing::subscriber::with_default(log.clone(), || {
        plugin
            .validate(&view("production"), &json!({}), &no_secrets)
            .unwrap();
    });
    let text = log.text();
    assert!(
        text.contains(r#"INFO message=echo-config called plugin="echo-config""#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"message=echo-config wrote to stdout plugin="echo-config" stream="stdout""#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"message=echo-config wrote to stderr plugin="echo-config" stream="stderr""#
        ),
        "{text}"
    );
}

#[test]
fn signed_secrets_grant_lets_a_validator_see_secret_values() {
    let fixture = Fixture::new();
    let wasm = fixture.install_unsigned("echo-config");
    let manifest = fixture.plugins.join("echo-config.plugin.toml");
    let text = fs::read_to_string(&manifest).unwrap();
    fs::write(&manifest, format!("{text}secrets = true\n")).unwrap();
    sign(&wasm, &fixture.key.secret_key).unwrap();
    let host = fixture.host("production");
    let plugin = host.load_file(&wasm).unwrap();
    let config = json!({"db": {"password": "hunter2"}});
    let issues = plugin.validate(&view("production"), &config, &|path: &str| {
        path == "db.password"
    });
    let seen: Value = serde_json::from_str(&issues.unwrap()[0].message).unwrap();
    assert_eq!(seen, json!({"db": {"password": "hunter2"}}));
}
