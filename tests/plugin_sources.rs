//! Source plugins and plugin namespaces in a running host, over real compiled components:
//! source layers and their precedence, prefix confinement, both error policies, granted
//! directories and variables, namespace defaults, `on-config-changed`, isolation and schemas.

use crate::common;

use std::fs;
use std::time::Duration;

use common::{value_in, Tree};
use common::logs::captured_logs;
use common::wasm::PluginTree;
use potter_config::events::Event;
use potter_config::runtime::ConfigHost;
use potter_engine::{LayerSource, ViewKey};
use serde_json::{json, Value};

/// A minimal tree (global + development, staging, production) with an empty plugins folder.
fn minimal() -> PluginTree {
    captured_logs();
    PluginTree::new(Tree::minimal())
}

/// Installs `source-scripted` as `name`, reading `<root>/<dir>/`, with a priority and policy.
fn install_scripted(tree: &PluginTree, name: &str, dir: &str, priority: i32, on_error: &str) {
    fs::create_dir_all(tree.tree.root().join(dir)).unwrap();
    tree.install_as("source-scripted", name, |manifest| {
        manifest
            .replace("directory = \"scripted\"", &format!("directory = \"{dir}\""))
            .replace("[grants]", &format!("priority = {priority}\non_error = \"{on_error}\"\n\n[grants]"))
    });
}

/// What `source-scripted` reading `<root>/<dir>/` returns next (verbatim text).
fn script(tree: &PluginTree, dir: &str, output: &str) {
    tree.tree.write(&format!("{dir}/output.json"), output);
}

fn fail_next(tree: &PluginTree, dir: &str, message: &str) {
    tree.tree.write(&format!("{dir}/error"), message);
}


fn open_error(tree: &PluginTree) -> String {
    match ConfigHost::open(tree.options()) {
        Ok(_) => panic!("the host opened"),
        Err(error) => error.to_string(),
    }
}

fn next_event(subscription: &mut potter_config::events::Subscription) -> Event {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    runtime.block_on(async { tokio::time::timeout(Duration::from_secs(10), subscription.recv()).await.ok().flatten() }).expect("an event within 10 s")
}

#[test]
fn properties_files_become_feature_flags_with_the_production_overlay() {
    let tree = PluginTree::new(Tree::copy_of("examples/potter"));
    tree.install("properties-source");
    let host = ConfigHost::open(tree.options()).unwrap();
    assert_eq!(value_in(&host, "development", "feature_flags.new_ui.rollout_percent"), Some(json!(10)));
    assert_eq!(value_in(&host, "development", "feature_flags.new_ui.enabled"), Some(json!(false)));
    assert_eq!(value_in(&host, "development", "feature_flags.search.fallback_engines"), Some(json!("classic, legacy")));
    assert_eq!(value_in(&host, "development", "feature_flags.banner.message"), Some(json!("Welcome to Potter \u{2014} configuration, live.")));
    assert_eq!(value_in(&host, "production", "feature_flags.new_ui.rollout_percent"), Some(json!(0)), "the production overlay wins there");
    assert_eq!(value_in(&host, "production", "feature_flags.banner.message"), Some(json!("Welcome")));
    let snapshot = host.snapshot();
    let view = snapshot.view(&ViewKey::environment("staging")).unwrap();
    let origin = view.origin("feature_flags.new_ui.rollout_percent").unwrap();
    assert_eq!(origin.layer.source, LayerSource::Plugin("properties-source".into()));
    // Namespace defaults of the source itself.
    assert_eq!(view.get("plugins.properties-source.poll_interval_ms"), Some(json!(2000)));
}

#[test]
fn a_file_of_the_tree_overrides_a_source_and_a_source_overrides_defaults() {
    let tree = PluginTree::new(Tree::copy_of("examples/potter"));
    tree.install("properties-source");
    let global: Value = serde_json::from_str(&fs::read_to_string(tree.tree.root().join("global.json")).unwrap()).unwrap();
    let mut global = global;
    global["feature_flags"] = json!({"search": {"engine": "modern"}});
    tree.tree.write("global.json", &serde_json::to_string_pretty(&global).unwrap());
    let host = ConfigHost::open(tree.options()).unwrap();
    assert_eq!(value_in(&host, "development", "feature_flags.search.engine"), Some(json!("modern")), "global.json ranks above sources");
    assert_eq!(value_in(&host, "development", "feature_flags.new_ui.rollout_percent"), Some(json!(10)), "the rest of the source stays");
}

#[test]
fn sources_are_ordered_by_priority_then_name() {
    let tree = minimal();
    install_scripted(&tree, "src-a", "a", 5, "keep");
    install_scripted(&tree, "src-b", "b", 1, "keep");
    install_scripted(&tree, "src-c", "c", 1, "keep");
    script(&tree, "a", r#"{"remote": {"x": "a"}}"#);
    script(&tree, "b", r#"{"remote": {"x": "b", "y": "b", "z": "b"}}"#);
    script(&tree, "c", r#"{"remote": {"x": "c", "y": "c"}}"#);
    let host = ConfigHost::open(tree.options()).unwrap();
    assert_eq!(value_in(&host, "staging", "remote.x"), Some(json!("a")), "the highest priority wins");
    assert_eq!(value_in(&host, "staging", "remote.y"), Some(json!("c")), "equal priority: the later name wins");
    assert_eq!(value_in(&host, "staging", "remote.z"), Some(json!("b")));
}

#[test]
fn a_key_outside_the_declared_prefixes_is_refused_naming_the_plugin_and_the_key() {
    let tree = minimal();
    install_scripted(&tree, "remote-feed", "feed", 0, "keep");
    script(&tree, "feed", r#"{"remote": {"x": 1}, "api": {"timeout": 1}}"#);
    let message = open_error(&tree);
    assert!(message.contains("plugin remote-feed: load: key `api` is outside the plugin's prefixes (remote)"), "{message}");
}

#[test]
fn invalid_json_from_a_source_is_refused_naming_the_plugin() {
    let tree = minimal();
    install_scripted(&tree, "remote-feed", "feed", 0, "keep");
    script(&tree, "feed", r#"{"remote": {"x": 1"#);
    let message = open_error(&tree);
    assert!(message.contains("plugin remote-feed: load: invalid output: not JSON"), "{message}");
}

#[test]
fn a_source_that_never_returns_is_stopped_by_its_time_limit() {
    let tree = minimal();
    tree.install("source-slow");
    let message = open_error(&tree);
    assert!(message.contains("plugin source-slow: load: timed out (limit 100 ms)"), "{message}");
}

#[test]
fn a_failing_source_keeps_its_last_good_output_by_default_and_says_so() {
    let tree = minimal();
    install_scripted(&tree, "remote-feed", "feed", 0, "keep");
    script(&tree, "feed", r#"{"remote": {"x": 1}}"#);
    let host = ConfigHost::open(tree.options()).unwrap();
    let mut events = host.subscribe(&ViewKey::environment("production"), "").unwrap();
    fail_next(&tree, "feed", "upstream is down");
    tree.tree.write("global.json", r#"{"api": {"timeout": 31, "rate_limit": 100}}"#);
    host.reload().expect("a keep-policy failure does not reject the reload");
    assert_eq!(value_in(&host, "production", "remote.x"), Some(json!(1)), "last good output kept");
    assert_eq!(value_in(&host, "production", "api.timeout"), Some(json!(31)), "the rest of the reload applied");
    match next_event(&mut events) {
        Event::Rejected { actor, diagnostics, .. } => {
            assert_eq!(actor, "plugin:remote-feed");
            assert!(diagnostics[0].contains("plugin remote-feed: load failed: upstream is down; keeping its last good output"), "{diagnostics:?}");
        }
        other => panic!("expected the failure reported, got {other:?}"),
    }
    let listed = host.plugin_list();
    assert!(listed[0].last_error.as_deref().unwrap_or_default().contains("upstream is down"), "{listed:?}");
    fs::remove_file(tree.tree.root().join("feed/error")).unwrap();
    script(&tree, "feed", r#"{"remote": {"x": 2}}"#);
    host.reload().unwrap();
    assert_eq!(value_in(&host, "production", "remote.x"), Some(json!(2)));
}

#[test]
fn a_failing_source_with_on_error_reject_rejects_the_whole_reload() {
    let tree = minimal();
    install_scripted(&tree, "strict-feed", "feed", 0, "reject");
    script(&tree, "feed", r#"{"remote": {"x": 1}}"#);
    let host = ConfigHost::open(tree.options()).unwrap();
    fail_next(&tree, "feed", "upstream is down");
    tree.tree.write("global.json", r#"{"api": {"timeout": 31, "rate_limit": 100}}"#);
    let error = host.reload().expect_err("the policy rejects the reload").to_string();
    assert!(error.contains("plugin strict-feed: load failed: upstream is down"), "{error}");
    assert_eq!(value_in(&host, "production", "api.timeout"), Some(json!(30)), "nothing of the reload applied");
    assert_eq!(value_in(&host, "production", "remote.x"), Some(json!(1)));
    fs::remove_file(tree.tree.root().join("feed/error")).unwrap();
    host.reload().unwrap();
    assert_eq!(value_in(&host, "production", "api.timeout"), Some(json!(31)));
}

#[test]
fn a_reload_with_unchanged_source_output_makes_no_new_version() {
    let tree = minimal();
    install_scripted(&tree, "remote-feed", "feed", 0, "keep");
    script(&tree, "feed", r#"{"remote": {"x": 1}}"#);
    let host = ConfigHost::open(tree.options()).unwrap();
    let version = host.snapshot().version();
    host.reload().unwrap();
    assert_eq!(host.snapshot().version(), version, "same change token and output: no new version, no event");
}

#[test]
fn a_source_reads_only_its_granted_directory() {
    let tree = minimal();
    fs::create_dir_all(tree.tree.root().join("escape")).unwrap();
    tree.tree.write("secret.txt", "outside the granted directory");
    tree.install("source-escape");
    let host = ConfigHost::open(tree.options()).unwrap();
    assert_eq!(value_in(&host, "development", "escape"), Some(json!({"parent": false, "root": false, "relative": false, "listed_root": false})));
}

#[test]
fn a_source_sees_only_granted_environment_variables() {
    std::env::set_var("PLUGIN_TEST_GRANTED", "yes");
    let tree = minimal();
    tree.install("env-source");
    let host = ConfigHost::open(tree.options()).unwrap();
    // `other` (HOME, not granted) came back null, and a null in a layer leaves the key unset.
    assert_eq!(value_in(&host, "staging", "fromenv"), Some(json!({"granted": "yes"})));
}

#[test]
fn namespace_defaults_fill_the_plugins_namespace_below_the_files() {
    let tree = minimal();
    tree.install("namespace-probe");
    tree.tree.write("global.json", r#"{"api": {"timeout": 30}, "app": {"name": "potter"}, "plugins": {"namespace-probe": {"limit": 7}, "other-plugin": {"token": "not yours"}}}"#);
    let host = ConfigHost::open(tree.options()).unwrap();
    assert_eq!(value_in(&host, "production", "plugins.namespace-probe"), Some(json!({"greeting": "hello", "limit": 7})));
    let report = host.validate();
    let probe = report.issues().find(|issue| issue.rule == "plugin:namespace-probe").expect("the probe reports what it saw");
    assert_eq!(probe.path, "plugins.namespace-probe");
    let (namespace, config) = probe.message.split_once(" config=").unwrap();
    assert_eq!(namespace, r#"namespace={"greeting":"hello","limit":7}"#);
    let config: Value = serde_json::from_str(config).unwrap();
    assert_eq!(config, json!({"app": {"name": "potter"}, "plugins": {"namespace-probe": {"greeting": "hello", "limit": 7}}}), "its prefixes and its own namespace only");
}

#[test]
fn on_config_changed_receives_the_namespace_after_each_change_that_touches_it() {
    let tree = minimal();
    tree.install("namespace-probe");
    // A greeting only this test uses tells its calls from other tests' in the shared log.
    tree.tree.write("global.json", r#"{"api": {"timeout": 30}, "plugins": {"namespace-probe": {"greeting": "hi from the log test"}}}"#);
    let host = ConfigHost::open(tree.options()).unwrap();
    let calls = || captured_logs().lines().filter(|line| line.contains("plugin=\"namespace-probe\"") && line.contains(r#"on-config-changed: {"greeting":"hi from the log test""#)).map(str::to_owned).collect::<Vec<_>>();
    let starting = calls();
    assert_eq!(starting.len(), 3, "once per environment at start-up: {starting:#?}");
    assert!(starting.iter().all(|line| line.contains(r#"on-config-changed: {"greeting":"hi from the log test","limit":3}"#)), "{starting:#?}");
    host.set("production", "api.timeout", json!(45)).unwrap();
    assert_eq!(calls().len(), 3, "a change outside the namespace is not passed on");
    host.set("production", "plugins.namespace-probe.limit", json!(9)).unwrap();
    let after = calls();
    assert_eq!(after.len(), 4, "only production's namespace changed: {after:#?}");
    assert!(after[3].contains(r#"on-config-changed: {"greeting":"hi from the log test","limit":9}"#), "{after:#?}");
}

#[test]
fn a_namespace_schema_shipped_in_the_manifest_is_validated_like_the_rest() {
    let tree = minimal();
    tree.install_as("namespace-probe", "namespace-probe", |manifest| {
        format!("{manifest}\nnamespace_schema = '''{{\"type\": \"object\", \"properties\": {{\"limit\": {{\"type\": \"integer\", \"maximum\": 10}}}}}}'''\n")
    });
    tree.tree.write("global.json", r#"{"plugins": {"namespace-probe": {"limit": 50}}}"#);
    let message = open_error(&tree);
    assert!(message.contains("plugins.namespace-probe.limit"), "{message}");
    assert!(message.contains("must be ≤ 10"), "{message}");
    tree.tree.write("global.json", r#"{"plugins": {"namespace-probe": {"limit": 5}}}"#);
    ConfigHost::open(tree.options()).unwrap();
}

#[test]
fn a_secret_in_a_plugins_namespace_never_reaches_a_plugin_not_granted_secrets() {
    let tree = minimal();
    tree.install("namespace-probe");
    let key = common::demo_keys().into_iter().find(|(name, _)| name == "POTTER_SECRET_KEY_PRODUCTION").unwrap().1;
    let keyring = potter_secrets::Keyring::from_env_value("production", &key).unwrap();
    let sealed = potter_secrets::encrypt(&keyring, "production", &["plugins", "namespace-probe", "token"], "hush-from-the-namespace-test").unwrap();
    tree.tree.write("environments/production.json", &json!({"plugins": {"namespace-probe": {"token": sealed}}}).to_string());
    let host = ConfigHost::open(tree.options()).unwrap();
    assert_eq!(value_in(&host, "production", "plugins.namespace-probe.token"), Some(json!("hush-from-the-namespace-test")), "the host itself reads it");
    let report = host.validate();
    let probe = report.issues().find(|issue| issue.rule == "plugin:namespace-probe").unwrap();
    assert!(!probe.message.contains("hush"), "validate input and namespace-config(): {}", probe.message);
    assert!(probe.message.starts_with(r#"namespace={"greeting":"hello","limit":3}"#), "{}", probe.message);
    let logged = captured_logs();
    assert!(logged.contains(r#"on-config-changed: {"greeting":"hello","limit":3}"#), "on-config-changed got the namespace without the secret");
    assert!(!logged.contains("hush-from-the-namespace-test"), "on-config-changed never saw the secret");
}

/// A loopback HTTP server answering every request with `body` while `up`, closing connections
/// without an answer while down (a remote that disappears).
fn config_server(body: &'static str, up: std::sync::Arc<std::sync::atomic::AtomicBool>) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if !up.load(std::sync::atomic::Ordering::SeqCst) {
                continue; // dropped: the connection closes unanswered
            }
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let mut stream = stream;
            let _ = write!(stream, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        }
    });
    port
}

#[test]
fn a_host_restarted_with_the_remote_down_starts_from_the_encrypted_cache_marks_the_source_stale_and_recovers() {
    let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let port = config_server(r#"{"remote": {"api": {"timeout": 7}, "token": "sk-live-cache-secret"}}"#, up.clone());
    let tree = minimal();
    tree.tree.write("global.json", &json!({"plugins": {"http-source": {"url": format!("http://127.0.0.1:{port}/config.json")}}}).to_string());
    tree.install_as("http-source", "http-source", |manifest| manifest.replace("http://127.0.0.1:8780", &format!("http://127.0.0.1:{port}")));
    {
        let host = ConfigHost::open(tree.options()).unwrap();
        assert_eq!(value_in(&host, "production", "remote.api.timeout"), Some(json!(7)));
    }
    // The cache holds ciphertext only.
    let cached = fs::read_to_string(tree.tree.state().join("source-cache/http-source/production.json")).unwrap();
    assert!(cached.contains("\"sealed\":\"enc:") && !cached.contains("sk-live-cache-secret") && !cached.contains("timeout"), "{cached}");

    up.store(false, std::sync::atomic::Ordering::SeqCst);
    let host = ConfigHost::open(tree.options()).expect("starts from the cached layer");
    assert_eq!(value_in(&host, "production", "remote.api.timeout"), Some(json!(7)));
    let info = host.plugin_list().into_iter().find(|info| info.name == "http-source").unwrap();
    let stale = info.stale.expect("marked stale");
    assert!(stale.from_cache && stale.cached_at_ms.is_some(), "{stale:?}");
    assert!(stale.last_error.contains(&format!("http://127.0.0.1:{port}/config.json")), "{}", stale.last_error);

    // The remote returns: the retry (backoff from 1 s) picks it up and the source is fresh again.
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1100));
    host.reload_because(potter_config::Cause::new(potter_config::ChangeOrigin::File, "test")).unwrap();
    let info = host.plugin_list().into_iter().find(|info| info.name == "http-source").unwrap();
    assert!(info.stale.is_none(), "{:?}", info.stale);
}

#[test]
fn a_source_written_in_python_reads_its_granted_ini_files_and_follows_their_changes() {
    let tree = minimal();
    fs::create_dir_all(tree.tree.root().join("ini")).unwrap();
    tree.tree.write("ini/billing.ini", "[limits]\nmax_invoices = 250\nenabled = true\nregion = eu-west\n");
    tree.tree.write("secret.txt", "outside the granted directory");
    tree.install("python-ini-source");
    let host = ConfigHost::open(tree.options()).unwrap();
    assert_eq!(value_in(&host, "production", "ini.billing.limits"), Some(json!({"max_invoices": 250, "enabled": true, "region": "eu-west"})));
    let snapshot = host.snapshot();
    let origin = snapshot.view(&ViewKey::environment("production")).unwrap().origin("ini.billing.limits.region").map(|o| o.layer.source.clone());
    assert_eq!(origin, Some(LayerSource::Plugin("python-ini-source".into())));
    let version = host.snapshot().version();
    host.reload().unwrap();
    assert_eq!(host.snapshot().version(), version, "an unchanged folder: same change token, no new version");

    tree.tree.write("ini/billing.ini", "[limits]\nmax_invoices = 300\n");
    host.reload().unwrap();
    assert_eq!(value_in(&host, "production", "ini.billing.limits"), Some(json!({"max_invoices": 300})));

    // A broken file is named with its line; the last good layer stays.
    tree.tree.write("ini/billing.ini", "max_invoices = 1\n");
    host.reload().unwrap();
    assert_eq!(value_in(&host, "production", "ini.billing.limits.max_invoices"), Some(json!(300)));
    let listed = host.plugin_list();
    let error = listed.iter().find(|info| info.name == "python-ini-source").unwrap().last_error.clone().unwrap_or_default();
    assert!(error.contains("plugin python-ini-source") && error.contains("billing.ini") && error.contains("line: 1"), "{error}");
}
