//! Grants a plugin may never have (the tool's own variables and state directory), grant kinds the
//! trust store allows a key, limits above the host's maxima, and plugin files that are not regular
//! files (a link to a device, a FIFO) or a missing module: each refused by name, at `sign` where it
//! applies and again at load, while the host keeps serving.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};

use common::Fixture;
use potter_plugin::{
    manifest_path, sign, sign_with, signature_path, trust_with, Allowance, GrantKind, GrantRules, PluginError,
};

/// Installs `reads-env` (signed) with `[grants]` text appended to its manifest, unsigned.
fn with_grants(fixture: &Fixture, grants: &str) -> PathBuf {
    let wasm = fixture.install_unsigned("reads-env");
    let manifest = manifest_path(&wasm);
    let text = fs::read_to_string(&manifest).unwrap();
    fs::write(&manifest, format!("{text}{grants}")).unwrap();
    wasm
}

/// A manifest edited by hand and signed with some other tool: a real signature, no checks.
fn forge_signature(wasm: &Path, key: &Path) {
    potter_plugin::testing::forge_signature(wasm, key).unwrap();
}

/// The same host still loads a good plugin (installed under another name, beside the bad files).
fn assert_serves(fixture: &Fixture, host: &potter_plugin::PluginHost) {
    let plugin = host.load_file(&fixture.install("reads-env")).expect("the host still loads good plugins");
    assert_eq!(plugin.name(), "reads-env");
}

#[test]
fn sign_refuses_every_grant_of_the_tools_own_variables() {
    for variable in ["POTTER_SECRET_KEY_PRODUCTION", "POTTER_TOKEN", "POTTER_ENV", "POTTER_APP__DEBUG"] {
        let fixture = Fixture::new();
        let wasm = with_grants(&fixture, &format!("[grants]\nenv = [\"HOME\", \"{variable}\"]\n"));
        let error = sign(&wasm, &fixture.key.secret_key).unwrap_err();
        assert!(matches!(error, PluginError::ForbiddenGrant { .. }), "{variable}: {error}");
        assert!(error.to_string().contains(&format!("grants.env `{variable}` is never granted")), "{error}");
        assert!(error.is_refusal());
        assert!(!signature_path(&wasm).exists(), "nothing is signed");
    }
    // An embedder's own prefix is reserved as well; POTTER_SECRET_KEY_* stays reserved with it.
    let fixture = Fixture::new();
    let rules = GrantRules { env_prefix: "ACME_".into(), ..GrantRules::default() };
    let wasm = with_grants(&fixture, "[grants]\nenv = [\"ACME_DB__PASSWORD\"]\n");
    let error = sign_with(&wasm, &fixture.key.secret_key, &rules).unwrap_err();
    assert!(error.to_string().contains("under the tool's own variable prefix `ACME_`"), "{error}");
    let wasm = with_grants(&fixture, "[grants]\nenv = [\"POTTER_SECRET_KEY_STAGING\"]\n");
    assert!(sign_with(&wasm, &fixture.key.secret_key, &rules).unwrap_err().to_string().contains("keyring"));
}

#[test]
fn a_hand_signed_manifest_granting_a_keyring_is_refused_at_load() {
    let fixture = Fixture::new();
    let wasm = with_grants(&fixture, "[grants]\nenv = [\"POTTER_SECRET_KEY_PRODUCTION\"]\n");
    forge_signature(&wasm, &fixture.key.secret_key);
    let host = fixture.host("development");
    let error = host.load_file(&wasm).unwrap_err();
    assert!(error.to_string().contains("plugin reads-env: refused: grants.env `POTTER_SECRET_KEY_PRODUCTION` is never granted"), "{error}");
    assert!(potter_plugin::verify(&wasm, &fixture.state.join("trusted-keys")).is_err(), "verify refuses it too");
    fs::remove_file(manifest_path(&wasm)).unwrap();
    assert_serves(&fixture, &host);
}

#[test]
fn a_directory_grant_reaching_the_state_directory_is_refused() {
    let fixture = Fixture::new();
    let root = fixture.temp.path().to_path_buf();
    fs::create_dir_all(fixture.state.join("keyrings")).unwrap();
    let wasm = fixture.install_unsigned("env-source");
    let manifest = manifest_path(&wasm);
    let text = fs::read_to_string(&manifest).unwrap();
    let text = text.replace("env = [\"PLUGIN_TEST_GRANTED\"]", "");
    fs::write(&manifest, format!("{text}directory = \"state\"\n")).unwrap();
    let rules = GrantRules { grants_root: Some(root.clone()), protected: vec![fixture.state.clone()], ..GrantRules::default() };
    let error = sign_with(&wasm, &fixture.key.secret_key, &rules).unwrap_err();
    assert!(error.to_string().contains("grants.directory `state` is never granted"), "{error}");
    // The whole root contains the state directory: refused as well, and at load.
    fs::write(&manifest, format!("{text}directory = \"state/keyrings\"\n")).unwrap();
    forge_signature(&wasm, &fixture.key.secret_key);
    let mut options = fixture.options("development");
    options.grants_root = Some(root);
    let host = potter_plugin::PluginHost::new(options).unwrap();
    let error = host.load_file(&wasm).unwrap_err();
    assert!(error.to_string().contains("grants.directory `state/keyrings` is never granted"), "{error}");
}

#[test]
fn sign_refuses_limits_above_the_hosts_maxima_naming_limit_and_maximum() {
    let fixture = Fixture::new();
    for (limit, value, maximum) in [("memory_mib", 4096, 512), ("timeout_ms", 60_000, 10_000), ("max_output_kib", 8192, 4096)] {
        let wasm = with_grants(&fixture, &format!("[limits]\n{limit} = {value}\n"));
        let error = sign(&wasm, &fixture.key.secret_key).unwrap_err();
        assert!(error.to_string().contains(&format!("limits.{limit} = {value} exceeds the host maximum of {maximum}")), "{error}");
    }
}

#[test]
fn a_grant_kind_the_key_was_not_allowed_is_refused_at_load_naming_grant_and_key() {
    let fixture = Fixture::new();
    let trust_dir = fixture.state.join("trusted-keys");
    // Trusted with the safe set (as every key trusted before allowances existed).
    trust_with(&fixture.key.public_key, &trust_dir, &Allowance::default()).unwrap();
    let wasm = with_grants(&fixture, "[grants]\nenv = [\"HOME\"]\n");
    sign(&wasm, &fixture.key.secret_key).unwrap();
    let host = fixture.host("production");
    let error = host.load_file(&wasm).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("grants.env `HOME` is a `env` grant"), "{text}");
    assert!(text.contains(&format!("key {}", fixture.key.key_id)), "{text}");
    assert!(error.is_refusal());
    // A trust file of the old format (two lines) loads, with the safe set.
    let trusted = trust_dir.join(format!("{}.pub", fixture.key.key_id));
    let old: String = fs::read_to_string(&trusted).unwrap().lines().take(2).map(|l| format!("{l}\n")).collect();
    fs::write(&trusted, old).unwrap();
    assert!(host.load_file(&wasm).is_err());
    assert!(host.load_file(&fixture.install("production-safety")).is_ok(), "a plugin without grants loads");

    // Allowed: it loads, and the listing shows grants and allowance.
    trust_with(&fixture.key.public_key, &trust_dir, &Allowance::parse("env").unwrap()).unwrap();
    host.load_file(&wasm).expect("env grants are allowed now");
    let info = host.list().into_iter().find(|info| info.name == "reads-env").unwrap();
    assert_eq!(info.grants.unwrap().env, vec!["HOME".to_owned()]);
    assert!(info.signer_allowance.unwrap().allows(GrantKind::Env));
    assert!(Allowance::parse("env,http").unwrap_err().contains("unknown grant kind `http`"));
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn a_manifest_linked_to_dev_zero_is_refused_by_name_without_reading_it() {
    let fixture = Fixture::new();
    let wasm = fixture.install("production-safety");
    fs::remove_file(manifest_path(&wasm)).unwrap();
    std::os::unix::fs::symlink("/dev/zero", manifest_path(&wasm)).unwrap();
    let host = fixture.host("production");
    let error = host.load_file(&wasm).unwrap_err();
    assert!(error.to_string().contains("production-safety.plugin.toml is a character device, not a regular file"), "{error}");
    assert!(sign(&wasm, &fixture.key.secret_key).is_err());
    assert_serves(&fixture, &host);
}

#[test]
fn a_fifo_manifest_or_signature_is_refused_without_blocking() {
    for fifo_of in [manifest_path as fn(&Path) -> PathBuf, signature_path] {
        let fixture = Fixture::new();
        let wasm = fixture.install("production-safety");
        let target = fifo_of(&wasm);
        fs::remove_file(&target).unwrap();
        mkfifo(&target);
        let host = fixture.host("production");
        let error = host.load_file(&wasm).unwrap_err();
        let name = target.file_name().unwrap().to_string_lossy().into_owned();
        assert!(error.to_string().contains(&format!("{name} is a FIFO, not a regular file")), "{error}");
        assert!(host.load_dir(&fixture.plugins).iter().all(Result::is_err));
        assert_serves(&fixture, &host);
    }
}

#[test]
fn a_manifest_whose_module_is_a_device_link_missing_or_empty_is_refused_by_name() {
    for replace in ["/dev/null", "/dev/zero", "missing", "empty"] {
        let fixture = Fixture::new();
        let wasm = fixture.install("production-safety");
        fs::remove_file(&wasm).unwrap();
        match replace {
            "missing" => {}
            "empty" => fs::write(&wasm, b"").unwrap(),
            device => std::os::unix::fs::symlink(device, &wasm).unwrap(),
        }
        let host = fixture.host("production");
        let results = host.load_dir(&fixture.plugins);
        assert_eq!(results.len(), 1, "{replace}: the plugin is listed, not skipped");
        let error = results.into_iter().next().unwrap().unwrap_err();
        assert!(error.to_string().contains("production-safety.wasm"), "{replace}: {error}");
        assert_eq!(error.plugin(), Some("production-safety"));
    }
}
