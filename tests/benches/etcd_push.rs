//! Benchmark: an etcd put until the value is visible in a host reading it through etcd-source
//! (0.2.0 watch, polling off), over 200 changes, beside etcd's own put→watch-event latency
//! measured in the same run against the same member. Prints p50/p99 of both.
//! Run: `cargo bench -p potter-cli --bench etcd_push` (needs `scripts/build-plugins`; ~1 min).

#[path = "../common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use common::etcd::EtcdCluster;
use common::wasm::PluginTree;
use common::Tree;
use potter_config::runtime::ConfigHost;
use potter_engine::ViewKey;
use serde_json::json;

const CHANGES: usize = 200;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let cluster = EtcdCluster::start(1);
    let origin = format!("http://127.0.0.1:{}", cluster.client_port(0));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut client = runtime.block_on(etcd_client::Client::connect([origin.clone()], None)).unwrap();
    runtime.block_on(client.put("/bench/production/remote/n", "0", None)).unwrap();

    let tree = PluginTree::new(Tree::minimal());
    let namespace = json!({"endpoint": origin, "prefix": "/bench/{environment}/", "poll_interval_ms": 0});
    tree.tree.write("global.json", &json!({"plugins": {"etcd-source": namespace}}).to_string());
    tree.install_as("etcd-source", "etcd-source", |manifest| manifest.replace("http://127.0.0.1:2379", &origin));
    let host = ConfigHost::open(tree.options()).unwrap();
    let _watcher = host.watch(Default::default()).unwrap();
    let visible = |n: usize| host.snapshot().view(&ViewKey::environment("production")).unwrap().get("remote.n") == Some(json!(n));

    // etcd's own put → watch event, on a key outside the host's prefix.
    let mut etcd_latency = Vec::with_capacity(CHANGES);
    runtime.block_on(async {
        let (_watcher, mut stream) = client.watch("/bench-own/key", None).await.unwrap();
        for n in 1..=CHANGES {
            let started = Instant::now();
            client.put("/bench-own/key", n.to_string(), None).await.unwrap();
            loop {
                let response = stream.message().await.unwrap().unwrap();
                if !response.events().is_empty() {
                    break;
                }
            }
            etcd_latency.push(started.elapsed());
        }
    });

    let mut host_latency = Vec::with_capacity(CHANGES);
    for n in 1..=CHANGES {
        let started = Instant::now();
        runtime.block_on(client.put("/bench/production/remote/n", n.to_string(), None)).unwrap();
        while !visible(n) {
            assert!(started.elapsed() < Duration::from_secs(30), "change {n} not visible within 30 s");
            std::thread::sleep(Duration::from_micros(500));
        }
        host_latency.push(started.elapsed());
    }
    let (e50, e99) = (percentile(&mut etcd_latency, 0.5), percentile(&mut etcd_latency, 0.99));
    let (h50, h99) = (percentile(&mut host_latency, 0.5), percentile(&mut host_latency, 0.99));
    println!("etcd put -> watch event      ({CHANGES} changes): p50 {e50:?}  p99 {e99:?}");
    println!("etcd put -> visible in host  ({CHANGES} changes): p50 {h50:?}  p99 {h99:?}");
    println!("ratio host/etcd: p50 {:.1}x  p99 {:.1}x; target p99 < 1 s: {}", h50.as_secs_f64() / e50.as_secs_f64(), h99.as_secs_f64() / e99.as_secs_f64(), if h99 < Duration::from_secs(1) { "met" } else { "MISSED" });
}
