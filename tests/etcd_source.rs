//! etcd-source against a real etcd (Debian's `etcd-server`, one member for the whole binary):
//! values live under the host, a put and a delete arrive through the push form (0.2.0 `watch`,
//! with polling switched off so only the watch can bring them), per-key provenance in `explain`,
//! a bad key named with the plugin, the origin and the etcd key, etcd stopped (stale, the host
//! serving) and back (picked up), and a 0.1.0-built source loading beside the 0.2.0 etcd-source.

use crate::common;

use std::sync::{Mutex, MutexGuard, OnceLock};

use common::{eventually, potter_example, stdout, value_in, Tree};
use common::etcd::EtcdCluster;
use common::wasm::PluginTree;
use potter_config::runtime::ConfigHost;
use potter_engine::{Provenance, ViewKey};
use serde_json::json;

/// The binary's etcd, and a lock: one test stops it, so tests take turns.
fn etcd() -> (&'static EtcdCluster, MutexGuard<'static, ()>) {
    static ETCD: OnceLock<EtcdCluster> = OnceLock::new();
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    (ETCD.get_or_init(|| EtcdCluster::start(1)), turn)
}

fn origin(cluster: &EtcdCluster) -> String {
    format!("http://127.0.0.1:{}", cluster.client_port(0))
}

fn client_run<T>(cluster: &EtcdCluster, work: impl AsyncFnOnce(&mut etcd_client::Client) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut client = etcd_client::Client::connect([origin(cluster)], None).await.unwrap();
        work(&mut client).await
    })
}

fn put(cluster: &EtcdCluster, key: &str, value: &str) -> i64 {
    client_run(cluster, async |client| client.put(key, value, None).await.unwrap().header().unwrap().revision())
}

fn delete(cluster: &EtcdCluster, key: &str) {
    client_run(cluster, async |client| client.delete(key, None).await.unwrap());
}

/// A tree with etcd-source granted the cluster's origin, reading `/<test>/{environment}/` with
/// polling off (so changes arrive only through the watch).
fn tree(cluster: &EtcdCluster, test: &str, extra: impl FnOnce(&PluginTree)) -> PluginTree {
    let tree = PluginTree::new(Tree::minimal());
    let namespace = json!({"endpoint": origin(cluster), "prefix": format!("/{test}/{{environment}}/"), "poll_interval_ms": 0});
    tree.tree.write("global.json", &json!({"api": {"timeout": 30}, "plugins": {"etcd-source": namespace}}).to_string());
    tree.install_as("etcd-source", "etcd-source", |manifest| manifest.replace("http://127.0.0.1:2379", &origin(cluster)));
    extra(&tree);
    tree
}



fn winner(host: &ConfigHost, environment: &str, key: &str) -> String {
    let snapshot = host.snapshot();
    let view = snapshot.view(&ViewKey::environment(environment)).unwrap();
    let won = view.explain(key).into_iter().find(|c| c.won).expect("a winning layer");
    Provenance::of(won.layer, won.location).source
}

#[test]
fn values_live_a_put_and_a_delete_arrive_by_watch_and_explain_names_the_etcd_key_and_revision() {
    let (cluster, _turn) = etcd();
    let revision = put(cluster, "/live/production/remote/api/timeout", "42");
    put(cluster, "/live/production/remote/name", "not json: a string");
    let tree = tree(cluster, "live", |_| {});
    let host = ConfigHost::open(tree.options()).unwrap();
    assert_eq!(value_in(&host, "production", "remote.api.timeout"), Some(json!(42)));
    assert_eq!(value_in(&host, "production", "remote.name"), Some(json!("not json: a string")), "a value that is not JSON is a string");
    assert_eq!(value_in(&host, "staging", "remote.api.timeout"), None, "each environment reads its own prefix");
    assert_eq!(winner(&host, "production", "remote.api.timeout"), format!("etcd-source: /live/production/remote/api/timeout @ revision {revision}"));
    // The CLI's explain (a process of its own, loading the plugin itself) names the same.
    let root = tree.tree.root();
    let explained = potter_example(&["--root", root.to_str().unwrap(), "--env", "production", "explain", "remote.api.timeout"]);
    let shown = stdout(&explained);
    assert!(explained.status.success() && shown.contains(&format!("etcd-source: /live/production/remote/api/timeout @ revision {revision}")), "{shown}{}", common::stderr(&explained));

    let _watcher = host.watch(Default::default()).unwrap();
    put(cluster, "/live/production/remote/api/timeout", "43");
    eventually("the put in the host", || value_in(&host, "production", "remote.api.timeout") == Some(json!(43)));
    put(cluster, "/live/staging/remote/added", "true");
    eventually("a key put under another environment", || value_in(&host, "staging", "remote.added") == Some(json!(true)));
    delete(cluster, "/live/production/remote/name");
    eventually("the delete in the host", || value_in(&host, "production", "remote.name").is_none());
    assert_eq!(value_in(&host, "production", "remote.api.timeout"), Some(json!(43)));
}

#[test]
fn a_key_that_does_not_map_is_named_with_the_plugin_origin_and_etcd_key_and_the_host_keeps_serving() {
    let (cluster, _turn) = etcd();
    put(cluster, "/bad/production/remote/x", "1");
    let tree = tree(cluster, "bad", |_| {});
    let host = ConfigHost::open(tree.options()).unwrap();
    let _watcher = host.watch(Default::default()).unwrap();
    // `remote/x` holds a value, so `remote/x/y` cannot become a key below it.
    put(cluster, "/bad/production/remote/x/y", "2");
    eventually("the failure reported", || host.plugin_list().into_iter().any(|info| info.name == "etcd-source" && info.stale.is_some()));
    let error = host.plugin_list().into_iter().find(|info| info.name == "etcd-source").unwrap().stale.unwrap().last_error;
    assert!(error.contains("plugin etcd-source") && error.contains(&origin(cluster)) && error.contains("/bad/production/remote/x/y"), "{error}");
    assert_eq!(value_in(&host, "production", "remote.x"), Some(json!(1)), "the last good layer is served");
    assert_eq!(value_in(&host, "production", "api.timeout"), Some(json!(30)));
    delete(cluster, "/bad/production/remote/x/y");
    put(cluster, "/bad/production/remote/x", "3");
    eventually("the source recovers", || value_in(&host, "production", "remote.x") == Some(json!(3)));
}

#[test]
fn etcd_stopped_marks_the_source_stale_while_the_host_serves_and_etcd_back_is_picked_up() {
    let (cluster, _turn) = etcd();
    put(cluster, "/outage/production/remote/v", "1");
    let tree = tree(cluster, "outage", |_| {});
    let host = ConfigHost::open(tree.options()).unwrap();
    let _watcher = host.watch(Default::default()).unwrap();
    cluster.kill(0);
    eventually("marked stale", || host.stale_sources().contains_key("etcd-source"));
    assert_eq!(value_in(&host, "production", "remote.v"), Some(json!(1)), "the last good layer is served");
    let stale = host.stale_sources()["etcd-source"].last_error.clone();
    assert!(stale.contains("plugin etcd-source") && stale.contains(&origin(cluster)), "{stale}");
    cluster.restart(0);
    put(cluster, "/outage/production/remote/v", "2");
    eventually("picked up after etcd is back", || value_in(&host, "production", "remote.v") == Some(json!(2)));
    eventually("no longer stale", || !host.stale_sources().contains_key("etcd-source"));
}

#[test]
fn a_source_built_against_0_1_0_loads_beside_the_0_2_0_etcd_source() {
    let (cluster, _turn) = etcd();
    put(cluster, "/versions/production/remote/v", "\"0.2.0\"");
    let tree = tree(cluster, "versions", |tree| tree.install("source-v010"));
    let wasm = std::fs::read(tree.wasm("source-v010")).unwrap();
    let has = |needle: &str| wasm.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(has("potter:config/host@0.1.0") && !has("potter:config/host@0.2.0"), "source-v010 is a 0.1.0 component");
    let etcd_wasm = std::fs::read(tree.wasm("etcd-source")).unwrap();
    assert!(etcd_wasm.windows(24).any(|w| w == b"potter:config/host@0.2.0"), "etcd-source is a 0.2.0 component");
    let host = ConfigHost::open(tree.options()).unwrap();
    assert_eq!(value_in(&host, "production", "legacy.contract"), Some(json!("0.1.0")));
    assert_eq!(value_in(&host, "production", "remote.v"), Some(json!("0.2.0")));
    assert_eq!(winner(&host, "production", "legacy.contract"), "plugin:source-v010", "a 0.1.0 source is credited as a whole");
}
