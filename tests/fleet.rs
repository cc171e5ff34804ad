//! Many hosts on one etcd (docs/FLEET.md): a real three-member cluster on loopback free ports,
//! Potter Config hosts in-process and as `serve` processes on it, and the faults of issue #16.
//! The tests share one cluster and run one at a time (some kill its members).

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::etcd::{EtcdCluster, Proxy};
use common::serve::Served;
use common::Tree;
use potter_config::options::StoreChoice;
use potter_config::{ConfigHost, Event, Options, SetRequest, ViewKey};
use serde_json::{json, Value};

fn cluster() -> &'static EtcdCluster {
    common::etcd::shared_cluster()
}

fn serial() -> MutexGuard<'static, ()> {
    common::etcd::one_at_a_time()
}

fn options(tree: &Tree, location: &str) -> Options {
    let mut options = Options::new(tree.root());
    options.state_dir = tree.state();
    options.env_vars = Some(Vec::new());
    options.store = StoreChoice::parse(location).unwrap();
    options
}

fn host(tree: &Tree, location: &str) -> ConfigHost {
    ConfigHost::open(options(tree, location)).unwrap()
}

fn strict_tree() -> Tree {
    let tree = Tree::minimal();
    tree.write("schemas/global_schema.json", r#"{"type": "object", "properties": {"api": {"type": "object", "properties": {"rate_limit": {"type": "integer", "maximum": 1000}}}}}"#);
    tree
}

/// Waits up to 30 s for `done` (a liveness wait, not a timing assertion).
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "not within 30 s: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn value(host: &ConfigHost, key: &str) -> Option<Value> {
    host.view("staging", None, None).unwrap().value(key)
}

/// A `potter-config serve` process on the store (killed on drop).
struct Serve(Served);

impl std::ops::Deref for Serve {
    type Target = Served;

    fn deref(&self) -> &Served {
        &self.0
    }
}

impl std::ops::DerefMut for Serve {
    fn deref_mut(&mut self) -> &mut Served {
        &mut self.0
    }
}

impl Serve {
    /// A server that makes the fleet's development token (the token list is shared).
    fn start(tree: &Tree, location: &str, id: &str) -> Serve {
        Self::start_with(tree, location, id, &["--dev-token"])
    }

    /// A server using the token list another made.
    fn joining(tree: &Tree, location: &str, id: &str, first: &Serve, extra: &[&str]) -> Serve {
        let mut server = Self::start_with(tree, location, id, extra);
        server.token = first.token.clone();
        server
    }

    fn start_with(tree: &Tree, location: &str, id: &str, extra: &[&str]) -> Serve {
        let (root, state) = (tree.root(), tree.state());
        let mut args = vec!["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap(), "--store", location];
        args.extend(["serve", "--listen", "127.0.0.1:0", "--instance-id", id, "--instance-ttl", "2"]);
        args.extend_from_slice(extra);
        Serve(Served::start(&args))
    }

    /// The lines of the change stream of `env`, as they arrive.
    fn watch(&self, env: &str) -> std::sync::mpsc::Receiver<String> {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.write_all(self.request("GET", &format!("/v1/watch/{env}"), &[("Accept", "text/event-stream")], None).as_bytes()).unwrap();
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        lines
    }
}

/// A change acknowledged on one host is validated and live on the other (subscribers told), in
/// both directions, with the same version; a change one host cannot validate is refused there
/// (last good snapshot kept, refusal in health and in its registry entry) while the other
/// serves it; the next valid change is taken in again.
#[test]
fn in_process_hosts_share_changes_live_and_each_validates_them() {
    let _serial = serial();
    let location = cluster().location("live");
    let (lenient, strict) = (Tree::minimal(), strict_tree());
    let a = host(&lenient, &location);
    let b = host(&strict, &location);
    b.register_instance(Some("strict-b".into()), None, Duration::from_secs(10)).unwrap();
    let mut subscription = b.subscribe(&ViewKey::environment("staging"), "api").unwrap();

    let applied = a.set("staging", "api.rate_limit", json!(700)).unwrap();
    wait_until("host B serves A's change", || value(&b, "api.rate_limit") == Some(json!(700)));
    assert_eq!(b.snapshot().version(), applied.version());
    let provenance = b.snapshot().view(&ViewKey::environment("staging")).unwrap().origin("api.rate_limit").unwrap().provenance();
    assert_eq!(provenance.source, format!("runtime overrides (version {})", applied.version()), "B names the version A recorded");
    let mut told = None;
    wait_until("B's subscriber is told", || {
        told = subscription.try_recv();
        told.is_some()
    });
    match told.unwrap() {
        Event::Changed { version, changes, .. } => {
            assert_eq!(version, applied.version());
            assert!(changes.iter().any(|change| change.key.ends_with("rate_limit") && change.new == Some(json!(700))), "{changes:?}");
        }
        other => panic!("expected a change, got {other:?}"),
    }

    let back = b.set("staging", "api.timeout", json!(45)).unwrap();
    wait_until("host A serves B's change", || value(&a, "api.timeout") == Some(json!(45)));
    assert_eq!(a.snapshot().version(), back.version());
    assert!(back.version() > applied.version());

    // Over B's schema's maximum: A accepts it, B keeps its last good snapshot and says so.
    let refused = a.set("staging", "api.rate_limit", json!(5000)).unwrap();
    wait_until("B reports the refusal in its registry entry", || {
        b.instances().unwrap().unwrap().iter().any(|entry| entry.id == "strict-b" && entry.last_refusal.as_deref().is_some_and(|why| why.contains(&format!("version {}", refused.version()))))
    });
    assert_eq!(value(&b, "api.rate_limit"), Some(json!(700)));
    assert_eq!(b.snapshot().version(), back.version());
    let health = b.health();
    assert!(health.refusal_outstanding, "{health:?}");
    assert_eq!(value(&a, "api.rate_limit"), Some(json!(5000)));

    a.set("staging", "api.rate_limit", json!(800)).unwrap();
    wait_until("B takes in the next valid change", || value(&b, "api.rate_limit") == Some(json!(800)));
    assert_eq!(b.snapshot().version(), a.snapshot().version());
    b.withdraw_instance().unwrap();
}

/// Two hosts setting the same key with compare-and-set on the version they both saw, at once:
/// exactly one wins, the other gets a conflict and nothing of it is applied; the CLI's stale
/// `--if-version` exits 4.
#[test]
fn two_hosts_setting_the_same_key_at_once_exactly_one_wins() {
    let _serial = serial();
    let location = cluster().location("cas");
    let (tree, other) = (Tree::minimal(), Tree::minimal());
    let hosts = [host(&tree, &location), host(&other, &location)];
    for round in 0..10u64 {
        let seen = hosts[0].snapshot().version();
        wait_until("both hosts at the same version", || hosts[1].snapshot().version() == seen);
        let barrier = Arc::new(Barrier::new(2));
        let outcomes: Vec<Result<u64, potter_config::Error>> = std::thread::scope(|scope| {
            let running: Vec<_> = hosts
                .iter()
                .enumerate()
                .map(|(i, host)| {
                    let barrier = barrier.clone();
                    scope.spawn(move || {
                        let mut request = SetRequest::new(potter_config::ChangeOrigin::Cli, format!("cli:host{i}"));
                        request.if_version = Some(seen);
                        barrier.wait();
                        host.set_with("staging", "api.rate_limit", json!(round * 10 + i as u64), request).map(|snapshot| snapshot.version())
                    })
                })
                .collect();
            running.into_iter().map(|thread| thread.join().unwrap()).collect()
        });
        let winners: Vec<usize> = (0..2).filter(|&i| outcomes[i].is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        let loser = 1 - winners[0];
        assert!(matches!(outcomes[loser], Err(potter_config::Error::History(potter_history::HistoryError::Conflict { .. }))), "round {round}: {outcomes:?}");
        let expected = json!(round * 10 + winners[0] as u64);
        for host in &hosts {
            wait_until("both hosts serve the winner's value", || value(host, "api.rate_limit") == Some(expected.clone()));
        }
    }
    let stale = hosts[0].snapshot().version() - 1;
    let output = common::potter(&["--root", tree.root().to_str().unwrap(), "--state", tree.state().to_str().unwrap(), "--store", &location, "--env", "staging", "set", "api.rate_limit", "1", "--if-version", &stale.to_string()]);
    assert_eq!(output.status.code(), Some(4), "{}", common::stderr(&output));
    assert_ne!(value(&hosts[1], "api.rate_limit"), Some(json!(1)));
}

/// Two `serve` processes on one prefix: a PUT on A is live on B (GET and B's change stream), the
/// registry lists both (`GET /v1/instances`, `potter-config instances`), a PUT built on a stale
/// version is 412; A killed with SIGKILL during a stream of PUTs: every acknowledged one is on B,
/// in order, and A's entry expires.
#[test]
fn serve_processes_share_one_store_and_list_each_other() {
    let _serial = serial();
    let location = cluster().location("serve");
    let (tree_a, tree_b) = (Tree::minimal(), Tree::minimal());
    let mut a = Serve::start(&tree_a, &location, "host-a");
    let mut b = Serve::joining(&tree_b, &location, "host-b", &a, &["--advertise", "config-b.internal:7700"]);
    assert_eq!(b.call("GET", "/v1/health", &[], None).1["status"], "ok");
    let stream = b.watch("staging");

    let (status, answer) = a.call("PUT", "/v1/config/staging/api.rate_limit", &[], Some(json!({"value": 321})));
    assert_eq!(status, 200, "{answer}");
    wait_until("B's change stream carries A's change", || stream.try_iter().any(|line| line.contains("321")));
    let (status, read) = b.call("GET", "/v1/config/staging/api.rate_limit", &[], None);
    assert_eq!((status, &read["value"]), (200, &json!(321)), "{read}");

    let (status, listed) = b.call("GET", "/v1/instances", &[], None);
    assert_eq!(status, 200, "{listed}");
    let ids: Vec<&str> = listed["instances"].as_array().unwrap().iter().map(|entry| entry["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["host-a", "host-b"]);
    assert_eq!(listed["instances"][0]["address"], json!(a.addr));
    assert_eq!(listed["instances"][1]["address"], "config-b.internal:7700");
    let output = common::potter(&["--store", &location, "--format", "json", "instances"]);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let cli: Value = serde_json::from_str(&common::stdout(&output)).unwrap();
    assert_eq!(cli["instances"].as_array().unwrap().len(), 2, "{cli}");

    // One token list for the fleet: a token made with the CLI works on both hosts, and once
    // revoked on neither.
    let made = common::potter(&["--store", &location, "token", "create", "--name", "ops", "--role", "viewer", "--env", "staging"]);
    assert_eq!(made.status.code(), Some(0), "{}", common::stderr(&made));
    let ops = common::stdout(&made).trim().to_owned();
    let admin = std::mem::replace(&mut b.token, ops.clone());
    wait_until("B accepts the new token", || b.call("GET", "/v1/config/staging/api.rate_limit", &[], None).0 == 200);
    let token_of_a = std::mem::replace(&mut a.token, ops);
    wait_until("A accepts it too", || a.call("GET", "/v1/config/staging/api.rate_limit", &[], None).0 == 200);
    assert_eq!(common::potter(&["--store", &location, "token", "revoke", "ops"]).status.code(), Some(0));
    wait_until("both refuse it once revoked", || a.call("GET", "/v1/config/staging/api.rate_limit", &[], None).0 == 401 && b.call("GET", "/v1/config/staging/api.rate_limit", &[], None).0 == 401);
    (a.token, b.token) = (token_of_a, admin);

    // B built on the version before A's change: refused, nothing applied.
    let stale = read["version"].as_u64().unwrap_or(1).saturating_sub(1).to_string();
    let (status, refused) = b.call("PUT", "/v1/config/staging/api.rate_limit", &[("If-Match", &format!("\"{stale}\""))], Some(json!({"value": 9})));
    assert_eq!((status, refused["error"]["code"].as_str()), (412, Some("conflict")), "{refused}");

    // A stream of PUTs on A; A is killed in the middle of it.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let (addr, token, acknowledged) = (a.addr.clone(), a.token.clone(), acknowledged.clone());
        std::thread::spawn(move || {
            let client = Served { child: Command::new("true").spawn().unwrap(), addr, token };
            for n in 0..200u64 {
                let Ok(mut stream) = TcpStream::connect(&client.addr) else { return };
                let request = client.request("PUT", &format!("/v1/config/staging/burst.k{}", n % 5), &[("Connection", "close")], Some(json!({"value": n})));
                if stream.write_all(request.as_bytes()).is_err() {
                    return;
                }
                let mut answer = String::new();
                if stream.read_to_string(&mut answer).is_err() || !answer.starts_with("HTTP/1.1 200") {
                    return;
                }
                acknowledged.lock().unwrap().push(n);
            }
        })
    };
    wait_until("some PUTs acknowledged", || acknowledged.lock().unwrap().len() >= 20);
    let _ = a.child.kill();
    let _ = a.child.wait();
    writer.join().unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    let last = *acknowledged.last().unwrap();
    // The last acknowledged value of each key is what B serves (nothing acknowledged is lost).
    for key in 0..5 {
        let Some(&expected) = acknowledged.iter().rev().find(|n| *n % 5 == key) else { continue };
        wait_until("B serves every acknowledged write", || {
            let (_, answer) = b.call("GET", &format!("/v1/config/staging/burst.k{key}"), &[], None);
            answer["value"].as_u64().is_some_and(|value| value == expected || value > last)
        });
    }
    let (_, history) = b.call("GET", "/v1/history?env=staging&limit=1000", &[], None);
    let mut written: Vec<u64> = history["records"].as_array().unwrap().iter().rev().filter_map(|record| record["keys"].as_array()?.first()?.as_str()?.strip_prefix("burst.k").map(|_| record["version"].as_u64().unwrap())).collect();
    written.dedup();
    assert!(written.len() >= acknowledged.len(), "every acknowledged write has its own record: {} < {}", written.len(), acknowledged.len());
    assert!(written.windows(2).all(|pair| pair[0] < pair[1]));
    wait_until("the killed host's entry expires", || {
        let (_, listed) = b.call("GET", "/v1/instances", &[], None);
        listed["instances"].as_array().is_some_and(|entries| entries.len() == 1 && entries[0]["id"] == "host-b")
    });
}

/// Writes `count` values from `host`, retrying each until acknowledged (an in-flight request to
/// a member that dies fails unacknowledged); `fault(n)` runs before write `n`. Returns the
/// acknowledged (value, version) pairs.
fn writes_through_faults(host: &ConfigHost, count: u64, mut fault: impl FnMut(u64)) -> Vec<(u64, u64)> {
    let mut acknowledged = Vec::new();
    for n in 0..count {
        fault(n);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match host.set("staging", &format!("stream.k{}", n % 4), json!(n)) {
                Ok(snapshot) => {
                    acknowledged.push((n, snapshot.version()));
                    break;
                }
                Err(error) => {
                    assert!(Instant::now() < deadline, "write {n} never acknowledged: {error}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
    acknowledged
}

/// Every acknowledged write is on the other host and in etcd's history, in the same order, once.
fn assert_all_present(writer: &ConfigHost, reader: &ConfigHost, acknowledged: &[(u64, u64)]) {
    wait_until("the reader reaches the writer's version", || reader.snapshot().version() == writer.snapshot().version());
    let versions: Vec<u64> = acknowledged.iter().map(|(_, version)| *version).collect();
    assert!(versions.windows(2).all(|pair| pair[0] < pair[1]), "versions increase: {versions:?}");
    let store = reader.history_store().unwrap().unwrap();
    for (n, version) in acknowledged {
        // The reader can reach the writer's version with no read of its own (it applies the
        // records it watched), so its client's connection to a member restarted moments ago may
        // still be down: its first direct read can fail once, and is retried.
        let mut read = None;
        wait_until("the reader's store answers a read", || match store.get(*version) {
            Ok(record) => {
                read = Some(record);
                true
            }
            Err(_) => false,
        });
        let record = read.flatten().unwrap_or_else(|| panic!("version {version} is recorded"));
        let key = format!("stream.k{}", n % 4);
        let change = record.payload.as_ref().unwrap().changes.iter().find(|change| change.key == key).unwrap_or_else(|| panic!("version {version} changes {key}"));
        assert_eq!(change.after, Some(potter_history::StoredValue::plain(json!(n))));
    }
    for key in 0..4 {
        let last = acknowledged.iter().rev().find(|(n, _)| n % 4 == key).unwrap().0;
        assert_eq!(value(reader, &format!("stream.k{key}")), Some(json!(last)));
    }
}

/// A follower member killed during a stream of writes, brought back, then the leader killed:
/// the writes carry on, and every acknowledged one is on all three hosts, in order (the third
/// host talks to one member only).
#[test]
fn killing_a_member_and_then_the_leader_loses_no_acknowledged_write() {
    let _serial = serial();
    let etcd = cluster();
    let location = etcd.location("members");
    let (tree_a, tree_b) = (Tree::minimal(), Tree::minimal());
    let (writer, reader) = (host(&tree_a, &location), host(&tree_b, &location));
    // A third host, connected to one member only: the leader at the start (never the member
    // killed first; it may be the leader killed later, and catches up once that is back).
    let tree_c = Tree::minimal();
    let lone = host(&tree_c, &format!("etcd://127.0.0.1:{}/members", etcd.client_port(etcd.leader())));
    let mut killed = None;
    let acknowledged = writes_through_faults(&writer, 80, |n| match n {
        15 => {
            let follower = (etcd.leader() + 1) % etcd.size();
            etcd.kill(follower);
            killed = Some(follower);
        }
        35 => etcd.restart(killed.take().unwrap()),
        45 => {
            let leader = etcd.leader();
            etcd.kill(leader);
            killed = Some(leader);
        }
        65 => etcd.restart(killed.take().unwrap()),
        _ => {}
    });
    assert_all_present(&writer, &reader, &acknowledged);
    assert_all_present(&writer, &lone, &acknowledged);
}

/// Every member stopped for a few seconds: `/v1/health` says degraded, writes are refused with
/// 503 (nothing acknowledged), reads keep the last good configuration; when etcd returns the
/// hosts are healthy, writes succeed and another host catches up.
#[test]
fn with_etcd_down_hosts_serve_their_last_snapshot_refuse_writes_and_recover() {
    let _serial = serial();
    let etcd = cluster();
    let location = etcd.location("outage");
    let (tree, other) = (Tree::minimal(), Tree::minimal());
    let server = Serve::start(&tree, &location, "outage-a");
    let peer = host(&other, &location);
    assert_eq!(server.call("PUT", "/v1/config/staging/api.rate_limit", &[], Some(json!({"value": 111}))).0, 200);
    wait_until("the peer has it", || value(&peer, "api.rate_limit") == Some(json!(111)));

    for i in 0..etcd.size() {
        etcd.kill(i);
    }
    wait_until("health says degraded", || {
        let (_, health) = server.call("GET", "/v1/health", &[], None);
        health["status"] == "degraded" && health["store_unreachable"].is_string()
    });
    let (status, refused) = server.call("PUT", "/v1/config/staging/api.rate_limit", &[], Some(json!({"value": 222})));
    assert_eq!((status, refused["error"]["code"].as_str()), (503, Some("store_unavailable")), "{refused}");
    let (status, read) = server.call("GET", "/v1/config/staging/api.rate_limit", &[], None);
    assert_eq!((status, &read["value"]), (200, &json!(111)));
    wait_until("the in-process host's health says degraded", || peer.health().status == potter_config::Status::Degraded && peer.health().store_unreachable.is_some());
    assert!(peer.set("staging", "api.rate_limit", json!(333)).is_err(), "nothing is acknowledged without etcd");
    assert_eq!(value(&peer, "api.rate_limit"), Some(json!(111)));

    std::thread::sleep(Duration::from_secs(2));
    etcd.restart_all();
    wait_until("health is ok again", || server.call("GET", "/v1/health", &[], None).1["status"] == "ok");
    wait_until("writes succeed again", || server.call("PUT", "/v1/config/staging/api.rate_limit", &[], Some(json!({"value": 444}))).0 == 200);
    wait_until("the peer catches up", || value(&peer, "api.rate_limit") == Some(json!(444)));
    wait_until("the in-process host is reachable again", || peer.health().store_unreachable.is_none());
}

/// A host cut off from etcd while the others write and etcd compacts past its revision: when
/// the connection returns it reloads what it missed and serves the fleet's latest version.
#[test]
fn a_host_cut_off_while_etcd_compacts_catches_up() {
    let _serial = serial();
    let etcd = cluster();
    let mut proxy = Proxy::start(etcd);
    let (tree_a, tree_c) = (Tree::minimal(), Tree::minimal());
    let writer = host(&tree_a, &etcd.location("compacted"));
    let cut_off = host(&tree_c, &proxy.location("compacted"));
    writer.set("staging", "api.rate_limit", json!(1)).unwrap();
    wait_until("the cut-off host follows", || value(&cut_off, "api.rate_limit") == Some(json!(1)));

    proxy.cut();
    wait_until("the cut-off host notices", || cut_off.store_unreachable().is_some());
    for n in 2..=40 {
        writer.set("staging", &format!("missed.k{}", n % 6), json!(n)).unwrap();
    }
    writer.set("staging", "api.rate_limit", json!(40)).unwrap();
    etcd.compact_now();
    assert_eq!(value(&cut_off, "api.rate_limit"), Some(json!(1)), "serves its last snapshot meanwhile");

    proxy.resume();
    wait_until("the cut-off host catches up", || cut_off.snapshot().version() == writer.snapshot().version());
    assert_eq!(value(&cut_off, "api.rate_limit"), Some(json!(40)));
    for key in 0..6 {
        assert_eq!(value(&cut_off, &format!("missed.k{key}")), value(&writer, &format!("missed.k{key}")));
    }
    wait_until("reachable again", || cut_off.store_unreachable().is_none());
}

/// etcd's own authentication: a host given the user and password (`EtcdOptions::user`, or
/// `--store-user` with `POTTER_STORE_PASSWORD`) records; without them, or with a wrong password,
/// it does not start, with an error naming the store and never the password.
#[test]
fn a_store_with_authentication_needs_the_user_and_password() {
    let _serial = serial();
    let secured = EtcdCluster::start(1);
    let endpoint = format!("http://{}", secured.endpoints());
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let mut client = etcd_client::Client::connect([endpoint], None).await.unwrap();
        client.user_add("root", "s3cret-pass", None).await.unwrap();
        client.user_grant_role("root", "root").await.unwrap();
        client.auth_enable().await.unwrap();
    });
    let location = secured.location("auth");
    let tree = Tree::minimal();

    let mut with_user = options(&tree, &location);
    let StoreChoice::Etcd(etcd) = with_user.store.clone() else { unreachable!() };
    with_user.store = StoreChoice::Etcd(etcd.clone().user("root", "s3cret-pass"));
    assert!(!format!("{with_user:?}").contains("s3cret-pass"), "Debug shows no password");
    let host = ConfigHost::open(with_user).unwrap();
    host.set("staging", "api.rate_limit", json!(42)).unwrap();

    for store in [etcd.clone(), etcd.clone().user("root", "wrong-pass")] {
        let mut refused = options(&tree, &location);
        refused.store = StoreChoice::Etcd(store);
        let error = ConfigHost::open(refused).err().expect("refused without valid credentials").to_string();
        assert!(error.contains(&location) && !error.contains("wrong-pass") && !error.contains("s3cret"), "{error}");
    }

    let output = common::potter_with(
        &["--root", tree.root().to_str().unwrap(), "--state", tree.state().to_str().unwrap(), "--store", &location, "--store-user", "root", "--env", "staging", "set", "api.timeout", "7"],
        &[("POTTER_STORE_PASSWORD", "s3cret-pass")],
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    wait_until("the host takes in the CLI's change", || value(&host, "api.timeout") == Some(json!(7)));
}

/// A certificate authority and two certificates it signed: etcd's (`127.0.0.1`) and a client's.
/// Returns the PEM files (ca, server cert, server key, client cert, client key).
fn certificates(dir: &std::path::Path) -> [std::path::PathBuf; 5] {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
    let mut authority = CertificateParams::new(Vec::<String>::new()).unwrap();
    authority.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    authority.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let authority = CertifiedIssuer::self_signed(authority, KeyPair::generate().unwrap()).unwrap();
    let leaf = |names: &[&str], usage: ExtendedKeyUsagePurpose| {
        let mut params = CertificateParams::new(names.iter().map(|name| name.to_string()).collect::<Vec<_>>()).unwrap();
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        (params.signed_by(&key, &*authority).unwrap().pem(), key.serialize_pem())
    };
    let (server, server_key) = leaf(&["127.0.0.1", "localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let (client, client_key) = leaf(&["potter-host"], ExtendedKeyUsagePurpose::ClientAuth);
    let files = ["ca.pem", "server.pem", "server.key", "client.pem", "client.key"].map(|name| dir.join(name));
    for (file, text) in files.iter().zip([authority.pem(), server, server_key, client, client_key]) {
        std::fs::write(file, text).unwrap();
    }
    files
}

/// TLS to etcd with client certificates: a member serving HTTPS that requires a certificate its
/// CA signed. The CLI with `--store-ca`, `--store-cert` and `--store-key` records; without the
/// client certificate, or without the CA, it fails naming the store; a host given `TlsOptions`
/// (CA and identity) in `Options` reads what the CLI recorded.
#[test]
fn a_store_over_tls_needs_its_certificate_authority_and_a_client_certificate() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let [ca, server, server_key, client, client_key] = certificates(dir.path());
    let secured = EtcdCluster::start_tls(1, server, server_key, ca.clone());
    let location = secured.location("tls");
    let tree = Tree::minimal();
    let (root, state) = (tree.root(), tree.state());
    let path = |file: &std::path::PathBuf| file.to_str().unwrap().to_owned();
    let cli = |extra: &[String], args: &[&str]| {
        let mut all: Vec<String> = ["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap(), "--store", &location].map(str::to_owned).to_vec();
        all.extend_from_slice(extra);
        all.extend(args.iter().map(|arg| arg.to_string()));
        common::potter(&all.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let identity = ["--store-cert".to_owned(), path(&client), "--store-key".to_owned(), path(&client_key)];

    let set = cli(&[&["--store-ca".to_owned(), path(&ca)][..], &identity[..]].concat(), &["--env", "staging", "set", "api.rate_limit", "64"]);
    assert_eq!(set.status.code(), Some(0), "{}", common::stderr(&set));
    for missing in [vec!["--store-ca".to_owned(), path(&ca)], identity.to_vec()] {
        let refused = cli(&missing, &["--env", "staging", "get", "api.rate_limit"]);
        assert_eq!(refused.status.code(), Some(3), "{:?} {}", refused.status, common::stderr(&refused));
        assert!(common::stderr(&refused).contains(&location), "{}", common::stderr(&refused));
    }

    let mut trusted = options(&tree, &location);
    let StoreChoice::Etcd(etcd) = trusted.store.clone() else { unreachable!() };
    use potter_config::options::etcd::{Certificate, Identity, TlsOptions};
    let read = |file: &std::path::PathBuf| std::fs::read(file).unwrap();
    let tls = TlsOptions::new().ca_certificate(Certificate::from_pem(read(&ca))).identity(Identity::from_pem(read(&client), read(&client_key)));
    trusted.store = StoreChoice::Etcd(etcd.tls(tls));
    let host = ConfigHost::open(trusted).unwrap();
    assert_eq!(value(&host, "api.rate_limit"), Some(json!(64)));
}
