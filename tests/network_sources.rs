//! Sources that reach the network, over real loopback servers: http-source (ETag and max-age,
//! bearer token, TLS with a grant's CA file, another Potter Config server as its remote),
//! vault-source against a Vault KV v2 stand-in (its values secret everywhere), staleness in
//! `plugin list`, `GET /v1/plugins` and `/v1/health` across a restart with the remote down, and
//! the hostile remotes: each refused or contained, named, with the last good configuration kept.

use crate::common;

use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{demo_keys, eventually, value_in, Tree};
use common::logs::captured_logs;
use common::loopback::{Loopback, Reply, Request};
use common::serve::Served;
use common::wasm::PluginTree;
use potter_config::runtime::ConfigHost;
use potter_engine::ViewKey;
use serde_json::{json, Value};


/// A tree with `built` installed as itself, granted `origin` (replacing the manifest's example
/// origin, whose text is `example`), its namespace set to `namespace`; `edit` changes the manifest further.
fn tree_with(built: &str, example: &str, origin: &str, namespace: Value, edit: impl FnOnce(String) -> String) -> PluginTree {
    captured_logs();
    let tree = PluginTree::new(Tree::minimal());
    tree.tree.write("global.json", &json!({"api": {"timeout": 30}, "plugins": {built: namespace}}).to_string());
    tree.install_as(built, built, |manifest| edit(manifest.replace(example, origin)));
    tree
}

fn http_tree(server: &Loopback, namespace: Value) -> PluginTree {
    tree_with("http-source", "http://127.0.0.1:8780", &server.origin("http"), namespace, |m| m)
}


fn last_error(host: &ConfigHost, plugin: &str) -> String {
    host.plugin_list().into_iter().find(|info| info.name == plugin).and_then(|info| info.last_error).unwrap_or_default()
}

// --- http-source -------------------------------------------------------------------------------

#[test]
fn an_unchanged_document_is_a_304_and_parses_nothing_and_max_age_sends_no_request_at_all() {
    let document = Arc::new(Mutex::new(("\"v1\"", r#"{"remote": {"x": 1}}"#)));
    let bodies = Arc::new(AtomicUsize::new(0));
    let (served, sent) = (document.clone(), bodies.clone());
    let server = Loopback::plain(move |request| {
        let (etag, body) = *served.lock().unwrap();
        if request.header("if-none-match") == Some(etag) {
            return Reply::Send { status: 304, headers: vec![("etag", etag.into())], body: Vec::new() };
        }
        sent.fetch_add(1, Ordering::SeqCst);
        Reply::Send { status: 200, headers: vec![("content-type", "application/json".into()), ("etag", etag.into())], body: body.as_bytes().to_vec() }
    });
    let tree = http_tree(&server, json!({"url": format!("{}/config.json", server.origin("http"))}));
    let host = ConfigHost::open(tree.options()).unwrap();
    assert_eq!(value_in(&host, "production", "remote.x"), Some(json!(1)));
    let (version, full) = (host.snapshot().version(), bodies.load(Ordering::SeqCst));
    let asked = server.requests.load(Ordering::SeqCst);
    host.reload().unwrap();
    assert!(server.requests.load(Ordering::SeqCst) > asked, "the reload asked the server");
    assert_eq!(bodies.load(Ordering::SeqCst), full, "every answer was a 304: no body sent, none parsed");
    assert_eq!(host.snapshot().version(), version, "no new version");

    *document.lock().unwrap() = ("\"v2\"", r#"{"remote": {"x": 2}}"#);
    host.reload().unwrap();
    assert_eq!(value_in(&host, "production", "remote.x"), Some(json!(2)), "a new ETag is a new document");

    // Within Cache-Control: max-age the source does not ask at all.
    let cached = Loopback::plain(|_| Reply::Send { status: 200, headers: vec![("content-type", "application/json".into()), ("cache-control", "max-age=600".into())], body: br#"{"remote": {"y": 1}}"#.to_vec() });
    let tree = http_tree(&cached, json!({"url": format!("{}/c.json", cached.origin("http"))}));
    let host = ConfigHost::open(tree.options()).unwrap();
    assert_eq!(value_in(&host, "staging", "remote.y"), Some(json!(1)));
    let asked = cached.requests.load(Ordering::SeqCst);
    host.reload().unwrap();
    assert_eq!(cached.requests.load(Ordering::SeqCst), asked, "fresh by max-age: no request");
}

#[test]
fn a_bearer_token_comes_from_a_granted_variable_and_never_appears_in_errors() {
    std::env::set_var("HTTP_SOURCE_TEST_TOKEN", "t0ken-from-the-environment");
    let server = Loopback::plain(|request| match request.header("authorization") {
        Some("Bearer t0ken-from-the-environment") => Reply::json(200, r#"{"remote": {"authorized": true}}"#),
        _ => Reply::json(401, r#"{"error": "unauthorized"}"#),
    });
    let url = format!("{}/private.json", server.origin("http"));
    let granted = tree_with("http-source", "http://127.0.0.1:8780", &server.origin("http"), json!({"url": url, "bearer_token_env": "HTTP_SOURCE_TEST_TOKEN"}), |m| m.replace("[grants]", "[grants]\nenv = [\"HTTP_SOURCE_TEST_TOKEN\"]"));
    let host = ConfigHost::open(granted.options()).unwrap();
    assert_eq!(value_in(&host, "development", "remote.authorized"), Some(json!(true)));

    // Not granted: the plugin cannot read the variable, says which, and nothing is sent.
    let ungranted = http_tree(&server, json!({"url": url, "bearer_token_env": "HTTP_SOURCE_TEST_TOKEN"}));
    let error = ConfigHost::open(ungranted.options()).err().expect("refused").to_string();
    assert!(error.contains("plugin http-source") && error.contains("HTTP_SOURCE_TEST_TOKEN is not set or not granted"), "{error}");
    assert!(!error.contains("t0ken-from-the-environment") && !captured_logs().contains("t0ken-from-the-environment"));
}

/// A certificate authority made for one test and a server certificate for 127.0.0.1 it signed.
fn test_ca() -> (String, Arc<rustls::ServerConfig>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Potter test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&server_key, &issuer).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rustls::pki_types::PrivateKeyDer::try_from(server_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider).with_safe_default_protocol_versions().unwrap().with_no_client_auth().with_single_cert(vec![server_cert.der().clone()], key).unwrap();
    (ca.pem(), Arc::new(config))
}

#[test]
fn https_with_the_grants_ca_file_loads_and_the_same_server_is_refused_without_it() {
    let (ca_pem, config) = test_ca();
    let server = Loopback::tls(config, |_| Reply::json(200, r#"{"remote": {"over_tls": true}}"#));
    let origin = server.origin("https");
    let url = format!("{origin}/config.json");
    let with_ca = tree_with("http-source", "http://127.0.0.1:8780", &origin, json!({"url": url}), |m| m.replace("[limits]", &format!("http_ca = {{ \"{origin}\" = \"test-ca.pem\" }}\n\n[limits]")));
    with_ca.tree.write("test-ca.pem", &ca_pem);
    let host = ConfigHost::open(with_ca.options()).unwrap();
    assert_eq!(value_in(&host, "production", "remote.over_tls"), Some(json!(true)));

    let without = tree_with("http-source", "http://127.0.0.1:8780", &origin, json!({"url": url}), |m| m);
    let error = ConfigHost::open(without.options()).err().expect("an unknown issuer is refused").to_string();
    assert!(error.contains("plugin http-source") && error.contains(&url) && error.contains("TLS"), "{error}");
}

/// `serve --dev-token` over `tree` with the demo keyrings and `env`.
fn serve(tree: &Tree, env: &[(&str, &str)]) -> Served {
    let mut variables = demo_keys();
    variables.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Served::dev_server(tree, &variables)
}

#[test]
fn one_potter_config_server_feeds_another_host_through_http_source() {
    let upstream_tree = Tree::minimal();
    upstream_tree.write("environments/production.json", r#"{"api": {"timeout": 75}}"#);
    let upstream = serve(&upstream_tree, &[]);
    std::env::set_var("UPSTREAM_POTTER_TOKEN", &upstream.token);
    let origin = format!("http://{}", upstream.addr);
    let namespace = json!({"url": format!("{origin}/v1/config/{{environment}}"), "format": "potter", "at": "remote.upstream", "bearer_token_env": "UPSTREAM_POTTER_TOKEN", "poll_interval_ms": 200});
    let downstream = tree_with("http-source", "http://127.0.0.1:8780", &origin, namespace, |m| m.replace("[grants]", "[grants]\nenv = [\"UPSTREAM_POTTER_TOKEN\"]"));
    let host = ConfigHost::open(downstream.options()).unwrap();
    assert_eq!(value_in(&host, "production", "remote.upstream.api.timeout"), Some(json!(75)));
    assert_eq!(value_in(&host, "staging", "remote.upstream.api.timeout"), Some(json!(30)), "each environment reads its own");

    // A change upstream arrives downstream within the poll interval (the watcher drives the polls).
    let _watcher = host.watch(Default::default()).unwrap();
    upstream_tree.write("environments/production.json", r#"{"api": {"timeout": 76}}"#);
    eventually("the upstream change downstream", || value_in(&host, "production", "remote.upstream.api.timeout") == Some(json!(76)));
}

// --- hostile remotes ---------------------------------------------------------------------------

/// What a switchable remote answers: good JSON until the test changes it.
type Behaviour = Arc<Mutex<Box<dyn Fn(&Request) -> Reply + Send>>>;

fn switchable() -> (Loopback, Behaviour) {
    let behaviour: Behaviour = Arc::new(Mutex::new(Box::new(|_: &Request| Reply::json(200, r#"{"remote": {"x": 1}}"#))));
    let current = behaviour.clone();
    (Loopback::plain(move |request| (current.lock().unwrap())(request)), behaviour)
}

/// A host reading a good remote, which then turns into `hostile`: the reload is contained (the
/// last good value kept) and the error names the plugin and the URL and contains `expected`.
fn contained(hostile: impl Fn(&Request) -> Reply + Send + 'static, expected: &str) {
    let (server, behaviour) = switchable();
    let url = format!("{}/config.json", server.origin("http"));
    let tree = http_tree(&server, json!({"url": url}));
    let host = ConfigHost::open(tree.options()).unwrap();
    *behaviour.lock().unwrap() = Box::new(hostile);
    host.reload().expect("on_error = keep: the reload goes on without the source");
    assert_eq!(value_in(&host, "production", "remote.x"), Some(json!(1)), "the last good layer is still served");
    let error = last_error(&host, "http-source");
    assert!(error.contains("plugin http-source") && error.contains(&url) && error.contains(expected), "{error}");
    let stale = host.plugin_list().into_iter().find(|info| info.name == "http-source").unwrap().stale.expect("marked stale");
    assert!(stale.last_error.contains(expected), "{stale:?}");
}

#[test]
fn a_redirect_to_an_origin_not_granted_is_refused() {
    contained(|_| Reply::Send { status: 302, headers: vec![("location", "http://127.0.0.1:9/steal".into())], body: Vec::new() }, "redirect refused");
}

#[test]
fn a_server_that_never_answers_is_cut_at_the_total_time_limit() {
    contained(|_| Reply::Hang, "limits.http_total_ms");
}

#[test]
fn a_server_answering_byte_by_byte_is_cut_at_the_total_time_limit() {
    contained(|_| Reply::Drip(br#"{"remote": {"x": 2}}"#.to_vec()), "limits.http_total_ms");
}

#[test]
fn a_hundred_megabyte_answer_is_refused_past_the_response_limit() {
    contained(|_| Reply::Flood(100 * 1024 * 1024), "limits.http_response_kib");
}

#[test]
fn malformed_json_from_the_remote_is_refused() {
    contained(|_| Reply::json(200, r#"{"remote": {"x": "#), "not JSON");
}

#[test]
fn a_plugin_granted_one_origin_asking_another_is_refused_by_the_host() {
    let (server, _) = switchable();
    let other = Loopback::plain(|_| Reply::json(200, r#"{"remote": {"x": 666}}"#));
    let tree = http_tree(&server, json!({"url": format!("{}/config.json", server.origin("http"))}));
    let host = ConfigHost::open(tree.options()).unwrap();
    tree.tree.write("global.json", &json!({"api": {"timeout": 31}, "plugins": {"http-source": {"url": format!("{}/x.json", other.origin("http"))}}}).to_string());
    host.reload().unwrap();
    assert_eq!(value_in(&host, "production", "remote.x"), Some(json!(1)), "the last good layer is still served");
    assert_eq!(value_in(&host, "production", "api.timeout"), Some(json!(31)), "the rest of the change applied");
    // Sources are asked with the namespace of the configuration before the reload: the new URL is
    // used from the next one.
    host.reload().unwrap();
    assert_eq!(value_in(&host, "production", "remote.x"), Some(json!(1)), "still the last good layer");
    let error = last_error(&host, "http-source");
    assert!(error.contains(&format!("refused: origin {} is not granted to plugin http-source", other.origin("http"))), "{error}");
    assert_eq!(other.requests.load(Ordering::SeqCst), 0, "nothing reached the other origin");
    assert!(captured_logs().lines().any(|line| line.contains("http-source") && line.contains(&other.origin("http"))), "the host logs the refusal with the plugin's name");
}

#[test]
fn a_remote_that_disappears_mid_run_leaves_the_last_good_layer_marked_stale_until_it_returns() {
    let (server, behaviour) = switchable();
    let tree = http_tree(&server, json!({"url": format!("{}/config.json", server.origin("http")), "poll_interval_ms": 100}));
    let host = ConfigHost::open(tree.options()).unwrap();
    let _watcher = host.watch(Default::default()).unwrap();
    *behaviour.lock().unwrap() = Box::new(|_: &Request| Reply::Close);
    let stale = || host.plugin_list().into_iter().find(|info| info.name == "http-source").unwrap().stale;
    eventually("the source marked stale", || stale().is_some());
    assert!(stale().unwrap().last_error.contains(&server.origin("http")), "{:?}", stale());
    assert_eq!(value_in(&host, "production", "remote.x"), Some(json!(1)));
    *behaviour.lock().unwrap() = Box::new(|_: &Request| Reply::json(200, r#"{"remote": {"x": 2}}"#));
    eventually("the source fresh again", || stale().is_none() && value_in(&host, "production", "remote.x") == Some(json!(2)));
}

// --- staleness across a restart, in all three places -------------------------------------------

#[test]
fn a_server_restarted_with_the_remote_down_serves_the_cache_and_shows_staleness_in_cli_plugins_and_health() {
    let (server, behaviour) = switchable();
    let url = format!("{}/config.json", server.origin("http"));
    let tree = http_tree(&server, json!({"url": url, "poll_interval_ms": 500}));
    drop(ConfigHost::open(tree.options()).unwrap()); // fills the cache
    *behaviour.lock().unwrap() = Box::new(|_: &Request| Reply::Close);
    let serve = serve(&tree.tree, &[]);
    let (status, health) = serve.get("/v1/health", None);
    assert_eq!(status, 200);
    let stale = &health["stale_sources"][0];
    assert_eq!(stale["plugin"], "http-source", "{health}");
    assert!(stale["from_cache"] == true && stale["since_ms"].as_u64().is_some() && stale["cached_at_ms"].as_u64().is_some(), "{health}");
    assert!(stale["last_error"].as_str().unwrap().contains(&url), "{health}");
    // The OpenAPI document types both answers' staleness members.
    let (_, document) = serve.get("/v1/openapi.json", None);
    let schemas = &document["components"]["schemas"];
    let documented = |schema: &str| schemas[schema]["properties"].as_object().map(|p| p.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    let mut members: Vec<String> = stale.as_object().unwrap().keys().cloned().collect();
    members.sort();
    let mut flattened: Vec<String> = schemas["StaleSource"]["allOf"].as_array().into_iter().flatten().flat_map(|part| part["properties"].as_object().map(|p| p.keys().cloned().collect::<Vec<_>>()).unwrap_or_default()).chain(documented("StaleSource")).chain(documented("SourceStaleness")).collect();
    flattened.sort();
    flattened.dedup();
    assert_eq!(flattened, members, "{}", schemas["StaleSource"]);
    assert!(documented("PluginEntry").contains(&"stale".to_owned()) && documented("Health").contains(&"stale_sources".to_owned()));
    let (_, listed) = serve.get("/v1/plugins", Some(&serve.token));
    let entry = listed["plugins"].as_array().unwrap().iter().find(|p| p["name"] == "http-source").unwrap().clone();
    assert!(entry["stale"]["from_cache"] == true && entry["stale"]["last_error"].as_str().unwrap().contains(&url), "{entry}");
    let (_, config) = serve.get("/v1/config/production/remote.x", Some(&serve.token));
    assert_eq!(config["value"], json!(1), "served from the cache: {config}");

    let root = tree.tree.root();
    let state = tree.tree.state();
    let keys = demo_keys();
    let env: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let output = common::potter_with(&["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap(), "plugin", "list"], &env, None);
    let printed = common::stdout(&output);
    assert!(printed.contains("stale       serving its cached layer since") && printed.contains(&url), "{printed}");

    // The remote returns: the server's retries pick it up and every place says fresh again.
    *behaviour.lock().unwrap() = Box::new(|_: &Request| Reply::json(200, r#"{"remote": {"x": 3}}"#));
    eventually("fresh in /v1/health", || serve.get("/v1/health", None).1["stale_sources"] == json!([]));
    let (_, listed) = serve.get("/v1/plugins", Some(&serve.token));
    assert!(listed["plugins"].as_array().unwrap().iter().all(|p| p["stale"].is_null()), "{listed}");
    assert_eq!(serve.get("/v1/config/production/remote.x", Some(&serve.token)).1["value"], json!(3));
}

// --- vault-source ------------------------------------------------------------------------------

const VAULT_TOKEN: &str = "s.vault-test-token";
const DB_PASSWORD: &str = "hunter2-straight-from-vault";

/// A stand-in for Vault's KV version 2 API (Vault itself cannot be installed here): `GET
/// /v1/<mount>/data/<path>` with `X-Vault-Token`, answering as Vault documents it (`data.data`,
/// `data.metadata.version`; 403 `permission denied`; 404 with empty `errors`).
fn vault_stand_in(secrets: Arc<Mutex<Vec<(&'static str, u64, Value)>>>) -> Loopback {
    Loopback::plain(move |request| {
        if request.header("x-vault-token") != Some(VAULT_TOKEN) {
            return Reply::json(403, r#"{"errors":["permission denied"]}"#);
        }
        let secrets = secrets.lock().unwrap();
        match secrets.iter().find(|(path, _, _)| request.path == format!("/v1/secret/data/{path}")) {
            Some((_, version, data)) => Reply::json(200, &json!({"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0, "data": {"data": data, "metadata": {"created_time": "2026-01-01T00:00:00Z", "custom_metadata": null, "deletion_time": "", "destroyed": false, "version": version}}, "wrap_info": null, "warnings": null, "auth": null}).to_string()),
            None => Reply::json(404, r#"{"errors":[]}"#),
        }
    })
}

fn vault_tree(vault: &Loopback, token_variable: &str) -> PluginTree {
    let namespace = json!({"address": vault.origin("http"), "secrets": {"db": "{environment}/db"}, "token_env": token_variable});
    tree_with("vault-source", "http://127.0.0.1:8200", &vault.origin("http"), namespace, |m| m.replace("env = [\"VAULT_TOKEN\"]", &format!("env = [\"{token_variable}\"]")))
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes())) {
            found.push(path.display().to_string());
        }
    }
    found
}

#[test]
fn vault_secrets_are_live_and_secret_in_the_api_history_cache_logs_and_errors() {
    std::env::set_var("VAULT_TEST_TOKEN", VAULT_TOKEN);
    let secrets = Arc::new(Mutex::new(vec![("production/db", 3, json!({"password": DB_PASSWORD, "user": "app"})), ("staging/db", 1, json!({"password": "staging-pw", "user": "app"})), ("development/db", 1, json!({"password": "dev-pw", "user": "app"}))]));
    let vault = vault_stand_in(secrets.clone());
    let tree = vault_tree(&vault, "VAULT_TEST_TOKEN");
    let host = ConfigHost::open(tree.options()).unwrap();
    assert_eq!(value_in(&host, "production", "vault.db.password"), Some(json!(DB_PASSWORD)), "the host itself reads it");
    let snapshot = host.snapshot();
    let view = snapshot.view(&ViewKey::environment("production")).unwrap();
    assert!(view.is_secret("vault.db.password") && view.is_secret("vault.db.user"), "every value vault-source yields is secret");
    // A change in Vault (a new version) is picked up.
    secrets.lock().unwrap()[0] = ("production/db", 4, json!({"password": "rotated-in-vault", "user": "app"}));
    host.reload().unwrap();
    assert_eq!(value_in(&host, "production", "vault.db.password"), Some(json!("rotated-in-vault")));
    // An override of another key is recorded in the history; the secrets are not.
    host.set("production", "api.timeout", json!(44)).unwrap();
    drop(host);

    // Through the API: a token that may not read secrets sees them redacted, and so does the list of plugins.
    let serve = serve(&tree.tree, &[("VAULT_TEST_TOKEN", VAULT_TOKEN)]);
    let root = tree.tree.root();
    let state = tree.tree.state();
    let keys = demo_keys();
    let env: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let viewer = common::potter_with(&["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap(), "token", "create", "--name", "viewer", "--role", "viewer", "--env", "production"], &env, None);
    let viewer = common::stdout(&viewer).trim().to_owned();
    let (status, config) = serve.get("/v1/config/production", Some(&viewer));
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["config"]["vault"]["db"]["password"], json!(potter_config::secret_values::REDACTED), "{config}");
    let (_, key) = serve.get("/v1/config/production/vault.db.password", Some(&viewer));
    assert!(!key.to_string().contains("rotated-in-vault"), "{key}");
    let (_, explained) = serve.get("/v1/explain/production/vault.db.password", Some(&viewer));
    assert!(!explained.to_string().contains("rotated-in-vault"), "{explained}");
    drop(serve);

    // Nowhere in the state directory (history, cache) in plaintext, nor in the logs.
    for plaintext in [DB_PASSWORD, "rotated-in-vault"] {
        assert_eq!(files_containing(&tree.tree.state(), plaintext), Vec::<String>::new(), "{plaintext} in plaintext");
        assert!(!captured_logs().contains(plaintext));
    }
    let cached = fs::read_to_string(tree.tree.state().join("source-cache/vault-source/production.json")).unwrap();
    assert!(cached.contains("\"sealed\":\"enc:"), "{cached}");
}

#[test]
fn a_vault_refusal_names_the_plugin_and_the_url_and_never_the_token() {
    std::env::set_var("VAULT_WRONG_TOKEN", "s.not-the-right-one");
    let vault = vault_stand_in(Arc::new(Mutex::new(vec![])));
    let tree = vault_tree(&vault, "VAULT_WRONG_TOKEN");
    let error = ConfigHost::open(tree.options()).err().expect("refused").to_string();
    assert!(error.contains("plugin vault-source") && error.contains(&format!("{}/v1/secret/data/", vault.origin("http"))) && error.contains("HTTP 403: permission denied"), "{error}");
    assert!(!error.contains("s.not-the-right-one") && !captured_logs().contains("s.not-the-right-one"));
}
