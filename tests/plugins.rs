//! Signed Wasm plugins in the host and the CLI, over the real binary and real compiled components
//! (built once per test process by `scripts/build-plugins` into `target/plugins/`).

use crate::common;

use std::fs;
use std::process::Output;

use common::wasm::{built_plugins, PluginTree};
use common::{potter_example, stderr, stdout, Tree};
use potter_config::error::Error;
use potter_config::runtime::ConfigHost;
use serde_json::Value;

const REFUSED: i32 = 4;
const INVALID: i32 = 3;

/// A copy of `examples/potter` whose plugins folder holds only what a test installs, with a
/// trusted signing key in the tree's own state directory.
struct Example(PluginTree);

impl std::ops::Deref for Example {
    type Target = PluginTree;

    fn deref(&self) -> &PluginTree {
        &self.0
    }
}

impl Example {
    /// The example with production-safety installed and signed by a trusted key.
    fn signed() -> Self {
        let example = Self::empty_plugins(Tree::copy_of("examples/potter"));
        example.install_signed("production-safety");
        example
    }

    fn empty_plugins(tree: Tree) -> Self {
        Self(PluginTree::new(tree))
    }

    /// Copies a built plugin (module and manifest) into the folder, unsigned.
    fn install_unsigned(&self, name: &str) {
        let built = built_plugins();
        fs::copy(built.join(format!("{name}.wasm")), self.wasm(name)).unwrap();
        fs::copy(built.join(format!("{name}.plugin.toml")), self.plugins().join(format!("{name}.plugin.toml"))).unwrap();
    }

    fn install_signed(&self, name: &str) {
        self.install_unsigned(name);
        potter_plugin::sign(&self.wasm(name), &self.key.secret_key).unwrap();
    }

    /// Runs the binary on the tree with its state directory.
    fn run(&self, args: &[&str]) -> Output {
        let root = self.tree.root();
        let state = self.tree.state();
        let mut all = vec!["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap()];
        all.extend(args);
        potter_example(&all)
    }

    /// Changes one value of an environment's JSON file.
    fn set_in_json(&self, relative: &str, pointer: &str, value: Value) {
        let path = self.tree.root().join(relative);
        let mut document: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = match document.pointer_mut(parent) {
            Some(parent) => parent,
            None => panic!("{relative} has no {parent}"),
        };
        parent.as_object_mut().unwrap().insert(key.to_owned(), value);
        fs::write(&path, serde_json::to_string_pretty(&document).unwrap()).unwrap();
    }
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("the binary exited normally (no signal)")
}

#[test]
fn example_loads_with_the_signed_production_safety_plugin() {
    let example = Example::signed();
    for env in ["development", "staging", "production"] {
        let output = example.run(&["--env", env, "get", "api.timeout"]);
        assert!(output.status.success(), "{env}: {}", stderr(&output));
    }
    let output = example.run(&["plugin", "list", "--format", "json"]);
    let list: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(list[0]["name"], "production-safety");
    assert_eq!(list[0]["status"], "loaded");
    assert_eq!(list[0]["signer_key_id"], example.key.key_id.as_str());
}

#[test]
fn debug_true_in_production_is_rejected_with_the_plugins_message() {
    let example = Example::signed();
    example.set_in_json("environments/production.json", "/app/debug", Value::Bool(true));
    let output = example.run(&["--env", "production", "get", "api.timeout"]);
    assert_eq!(code(&output), INVALID, "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("app.debug must be false in production (found true)"), "{message}");
    assert!(message.contains("plugin:production-safety"), "{message}");
    assert!(message.contains("environments/production.json"), "the issue points at the file: {message}");
}

#[test]
fn staging_rate_limit_above_500_is_rejected() {
    let example = Example::signed();
    let staging = example.tree.root().join("environments/staging.yaml");
    let text = fs::read_to_string(&staging).unwrap().replace("rate_limit: 300", "rate_limit: 900");
    fs::write(&staging, text).unwrap();
    let output = example.run(&["--env", "staging", "get", "api.timeout"]);
    assert_eq!(code(&output), INVALID, "{}", stderr(&output));
    assert!(stderr(&output).contains("api.rate_limit must be at most 500 in staging (found 900)"), "{}", stderr(&output));
}

#[test]
fn unsigned_plugin_in_the_folder_is_refused_naming_it() {
    let example = Example::signed();
    example.install_unsigned("echo-config");
    let output = example.run(&["--env", "development", "get", "api.timeout"]);
    assert_eq!(code(&output), REFUSED, "{}", stderr(&output));
    assert!(stderr(&output).contains("plugin echo-config: refused: it is not signed"), "{}", stderr(&output));
}

#[test]
fn module_changed_after_signing_is_refused() {
    let example = Example::signed();
    let mut bytes = fs::read(example.wasm("production-safety")).unwrap();
    bytes.push(0);
    fs::write(example.wasm("production-safety"), bytes).unwrap();
    let output = example.run(&["get", "api.timeout"]);
    assert_eq!(code(&output), REFUSED, "{}", stderr(&output));
    assert!(stderr(&output).contains("plugin production-safety: refused: the module was modified after signing"), "{}", stderr(&output));
}

#[test]
fn manifest_widened_after_signing_is_refused() {
    let example = Example::signed();
    let manifest = example.plugins().join("production-safety.plugin.toml");
    let text = fs::read_to_string(&manifest).unwrap().replace("secrets = false", "secrets = true");
    fs::write(&manifest, text).unwrap();
    let output = example.run(&["get", "api.timeout"]);
    assert_eq!(code(&output), REFUSED, "{}", stderr(&output));
    assert!(stderr(&output).contains("plugin production-safety: refused: the manifest was modified after signing"), "{}", stderr(&output));
}

#[test]
fn plugin_signed_by_an_untrusted_key_is_refused() {
    let example = Example::signed();
    let stranger = potter_plugin::keygen(&example.tree.root().parent().unwrap().join("stranger")).unwrap();
    potter_plugin::sign(&example.wasm("production-safety"), &stranger.secret_key).unwrap();
    let output = example.run(&["get", "api.timeout"]);
    assert_eq!(code(&output), REFUSED, "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains(&format!("plugin production-safety: refused: it is signed by key {}, which is not in the trust store", stranger.key_id)), "{message}");
}

#[test]
fn allow_unsigned_loads_unsigned_plugins_in_a_development_only_tree() {
    let tree = Tree::minimal();
    tree.remove("environments/production.json");
    let example = Example::empty_plugins(tree);
    example.install_unsigned("production-safety");
    let refused = example.run(&["--env", "development", "get", "api.timeout"]);
    assert_eq!(code(&refused), REFUSED, "{}", stderr(&refused));
    let allowed = example.run(&["--env", "development", "--allow-unsigned", "get", "api.timeout"]);
    assert!(allowed.status.success(), "{}", stderr(&allowed));
    assert_eq!(stdout(&allowed).trim(), "30");
    let list = example.run(&["--allow-unsigned", "plugin", "list", "--format", "json"]);
    let list: Value = serde_json::from_str(&stdout(&list)).unwrap();
    assert_eq!(list[0]["status"], "loaded");
    assert_eq!(list[0]["signer_key_id"], Value::Null);
}

#[test]
fn allow_unsigned_is_refused_in_production_and_wherever_production_is_served() {
    let example = Example::signed();
    let output = example.run(&["--env", "production", "--allow-unsigned", "get", "api.timeout"]);
    assert_eq!(code(&output), REFUSED, "{}", stderr(&output));
    assert!(stderr(&output).contains("--allow-unsigned is refused"), "{}", stderr(&output));
    // The host validates every environment it serves, production's included, whatever --env says.
    let output = example.run(&["--environments", "development,production", "--env", "development", "--allow-unsigned", "get", "api.timeout"]);
    assert_eq!(code(&output), REFUSED, "{}", stderr(&output));
    assert!(stderr(&output).contains("has a `production` environment"), "{}", stderr(&output));
}

#[test]
fn plugin_list_in_json_shows_each_plugins_identity_grants_limits_and_status() {
    let example = Example::signed();
    example.install_unsigned("echo-config");
    let output = example.run(&["plugin", "list", "--format", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let list: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let by_name = |name: &str| list.as_array().unwrap().iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name} listed")).clone();
    let safety = by_name("production-safety");
    assert_eq!(safety["kind"], "validator");
    assert_eq!(safety["status"], "loaded");
    assert_eq!(safety["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(safety["signer_key_id"], example.key.key_id.as_str());
    assert!(safety["grants"].is_object());
    assert_eq!(safety["limits"]["timeout_ms"], 100);
    assert_eq!(safety["limits"]["memory_mib"], 64);
    assert_eq!(safety["last_error"], Value::Null);
    let echo = by_name("echo-config");
    assert_eq!(echo["status"], "refused");
    assert!(echo["last_error"].as_str().unwrap().contains("not signed"), "{echo}");
    assert_eq!(echo["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn plugin_list_shows_a_validators_failure_on_this_tree_as_its_last_error() {
    let example = Example::signed();
    example.install_signed("infinite-loop");
    let output = example.run(&["plugin", "list", "--format", "json"]);
    let list: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let looping = list.as_array().unwrap().iter().find(|p| p["name"] == "infinite-loop").unwrap();
    assert_eq!(looping["status"], "loaded");
    assert!(looping["last_error"].as_str().unwrap().contains("timed out"), "{looping}");
}

#[test]
fn hostile_infinite_loop_fails_the_load_with_a_timeout_naming_it() {
    let example = Example::signed();
    example.install_signed("infinite-loop");
    let output = example.run(&["--env", "production", "get", "api.timeout"]);
    assert_eq!(code(&output), INVALID, "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("plugin infinite-loop: validate: timed out (limit 100 ms)"), "{message}");
    assert!(message.contains("plugin:infinite-loop"), "{message}");
}

#[test]
fn a_host_keeps_serving_while_a_hostile_plugin_times_out_in_the_same_process() {
    let good = Example::signed();
    let host = ConfigHost::open(good.options()).expect("the example opens with production-safety");
    let hostile = Example::signed();
    hostile.install_signed("infinite-loop");
    match ConfigHost::open(hostile.options()) {
        Err(error @ Error::Invalid(_)) => assert!(error.to_string().contains("plugin infinite-loop: validate: timed out"), "{error}"),
        Err(other) => panic!("expected a validation error naming the plugin, got {other}"),
        Ok(_) => panic!("a plugin that never returns cannot pass validation"),
    }
    let view = host.view("production", None, None).unwrap();
    assert_eq!(view.get::<u64>("api.rate_limit").unwrap(), 600);
    host.reload().expect("the healthy host still reloads through its plugin");
}

#[test]
fn a_reload_the_plugin_rejects_keeps_the_previous_snapshot() {
    let example = Example::signed();
    let host = ConfigHost::open(example.options()).unwrap();
    let before = host.snapshot();
    example.set_in_json("environments/production.json", "/app/debug", Value::Bool(true));
    let error = host.reload().expect_err("the plugin rejects debug in production");
    assert!(error.to_string().contains("app.debug must be false in production"), "{error}");
    assert!(std::sync::Arc::ptr_eq(&before, &host.snapshot()), "the old snapshot stays live");
    let view = host.view("production", None, None).unwrap();
    assert!(!view.get::<bool>("app.debug").unwrap(), "readers still see the accepted value");
}

#[test]
fn keygen_sign_trust_and_verify_through_the_cli() {
    let example = Example::empty_plugins(Tree::copy_of("examples/potter"));
    example.install_unsigned("production-safety");
    let key = example.tree.root().parent().unwrap().join("cli-signer");
    let key = key.to_str().unwrap();
    let output = example.run(&["plugin", "keygen", "--out", key]);
    assert!(output.status.success(), "{}", stderr(&output));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(format!("{key}.key")).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let wasm = example.wasm("production-safety");
    let wasm = wasm.to_str().unwrap();
    let output = example.run(&["plugin", "sign", wasm, "--key", &format!("{key}.key")]);
    assert!(output.status.success(), "{}", stderr(&output));
    let untrusted = example.run(&["plugin", "verify", wasm]);
    assert_eq!(code(&untrusted), REFUSED, "{}", stderr(&untrusted));
    let output = example.run(&["plugin", "trust", &format!("{key}.pub")]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = example.run(&["plugin", "verify", wasm]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("signature good"), "{}", stdout(&output));
    let output = example.run(&["--env", "production", "get", "api.timeout"]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn a_plugins_folder_given_with_the_flag_replaces_the_default() {
    let example = Example::signed();
    example.install_unsigned("echo-config");
    let elsewhere = example.tree.root().parent().unwrap().join("other-plugins");
    fs::create_dir_all(&elsewhere).unwrap();
    let output = example.run(&["--plugins", elsewhere.to_str().unwrap(), "get", "api.timeout"]);
    assert!(output.status.success(), "the refused plugin of <root>/plugins is not read: {}", stderr(&output));
}
