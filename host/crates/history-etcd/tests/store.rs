//! The etcd history store against a real etcd process (Debian's `etcd-server`), started once for
//! this test binary on free loopback ports in a temporary directory. Each test uses its own prefix.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

#[path = "common/etcd.rs"]
mod etcd;

use etcd::{free_port, Etcd};
use potter_history::{ChangeOrigin, HistoryError, HistoryQuery, HistoryStore, NewChange, Retention, StoredValue};
use potter_history_etcd::{EtcdLocation, EtcdOptions, EtcdStore, FollowEvent};
use serde_json::json;

fn shared_etcd() -> &'static Etcd {
    static ETCD: OnceLock<Etcd> = OnceLock::new();
    ETCD.get_or_init(Etcd::start)
}

fn store(prefix: &str) -> EtcdStore {
    EtcdStore::connect(EtcdOptions::new(shared_etcd().location(prefix))).unwrap()
}

fn plain(value: serde_json::Value) -> Option<StoredValue> {
    Some(StoredValue::plain(value))
}

#[test]
fn records_overrides_and_queries_like_the_sqlite_store() {
    let store = store("roundtrip");
    assert_eq!(store.latest_version().unwrap(), 0);
    let first = store
        .append(
            NewChange::new("cli:alice", ChangeOrigin::Cli, "prod")
                .reason("more connections")
                .change("db.pool", plain(json!(10)), plain(json!(20)))
                .set_override("db.pool", StoredValue::plain(json!(20))),
        )
        .unwrap();
    let versions = store
        .append_all(vec![
            NewChange::new("api:bob", ChangeOrigin::Api, "prod")
                .change("api.timeout", None, plain(json!(30)))
                .set_override("api.timeout", StoredValue::plain(json!(30))),
            NewChange::new("api:bob", ChangeOrigin::Api, "staging")
                .change("db.pool", None, plain(json!(5)))
                .set_override("db.pool", StoredValue::plain(json!(5))),
        ])
        .unwrap();
    assert_eq!((first, versions.clone()), (1, vec![2, 3]));
    let removed = store
        .append(
            NewChange::new("cli:alice", ChangeOrigin::Cli, "prod")
                .change("db.pool", plain(json!(20)), plain(json!(10)))
                .remove_override("db.pool"),
        )
        .unwrap();
    assert_eq!(removed, 4);

    assert_eq!(store.latest_version().unwrap(), 4);
    let overrides = store.overrides("prod").unwrap();
    assert_eq!(overrides.len(), 1);
    assert_eq!(overrides["api.timeout"], StoredValue::plain(json!(30)));
    assert_eq!(store.key_version("prod", "db.pool").unwrap(), 4);
    assert_eq!(store.key_version("staging", "db.pool").unwrap(), 3);
    assert_eq!(store.key_version("prod", "never").unwrap(), 0);

    let record = store.get(1).unwrap().unwrap();
    assert_eq!((record.actor.as_str(), record.origin, record.reason.as_deref()), ("cli:alice", ChangeOrigin::Cli, Some("more connections")));
    assert_eq!(record.keys, ["db.pool"]);
    assert!(store.get(99).unwrap().is_none());

    let newest_first: Vec<u64> = store.query(&HistoryQuery::new()).unwrap().iter().map(|r| r.version).collect();
    assert_eq!(newest_first, [4, 3, 2, 1]);
    let prod_db: Vec<u64> = store
        .query(&HistoryQuery::new().env("prod").key_prefix("db."))
        .unwrap()
        .iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(prod_db, [4, 1]);
    let bob: Vec<u64> = store.query(&HistoryQuery::new().actor("api:bob").limit(1)).unwrap().iter().map(|r| r.version).collect();
    assert_eq!(bob, [3]);

    let after: Vec<u64> = store.changes_after("prod", 1).unwrap().iter().map(|r| r.version).collect();
    assert_eq!(after, [2, 4]);

    // Malformed changes are refused before anything reaches etcd.
    let error = store.append(NewChange::new("", ChangeOrigin::Cli, "prod").change("a", None, None)).unwrap_err();
    assert!(matches!(error, HistoryError::InvalidChange(_)), "{error}");
    assert_eq!(store.latest_version().unwrap(), 4);

    // Retention: payloads go, audit lines (who, when, which keys) stay, rollbacks past it refuse.
    let report = store.prune(Retention::KeepVersions(2)).unwrap();
    assert_eq!((report.pruned_through, report.records_pruned), (2, 2));
    assert!(store.get(1).unwrap().unwrap().is_pruned());
    assert_eq!(store.get(1).unwrap().unwrap().keys, ["db.pool"]);
    assert!(!store.get(3).unwrap().unwrap().is_pruned());
    assert!(matches!(store.changes_after("prod", 1), Err(HistoryError::PayloadPruned { requested: 1, pruned_through: 2 })));
    assert_eq!(store.prune(Retention::KeepVersions(2)).unwrap().records_pruned, 0);
}

#[test]
fn pages_through_more_records_than_one_range_request_returns() {
    let store = store("paging");
    let changes = (0..600)
        .map(|n| {
            NewChange::new("cli:alice", ChangeOrigin::Cli, if n % 2 == 0 { "even" } else { "odd" })
                .change(format!("k{n}"), None, plain(json!(n)))
        })
        .collect::<Vec<_>>();
    for batch in changes.chunks(50) {
        store.append_all(batch.to_vec()).unwrap();
    }
    let all = store.query(&HistoryQuery::new().limit(1000)).unwrap();
    assert_eq!(all.len(), 600);
    assert!(all.windows(2).all(|pair| pair[0].version == pair[1].version + 1));
    let odd = store.changes_after("odd", 0).unwrap();
    assert_eq!(odd.len(), 300);
    assert!(odd.iter().all(|record| record.env == "odd"));
    assert!(odd.windows(2).all(|pair| pair[0].version < pair[1].version));
}

/// Two hosts (two stores, two connections) build a change on the same key version and commit at
/// once: exactly one wins, the other gets a conflict, and the loser recorded nothing.
#[test]
fn of_two_hosts_writing_the_same_key_at_once_exactly_one_wins() {
    let hosts = [Arc::new(store("race")), Arc::new(store("race"))];
    for round in 0..20u64 {
        let barrier = Arc::new(Barrier::new(2));
        let outcomes: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(index, host)| {
                let (host, barrier) = (host.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let seen = host.key_version("prod", "api.timeout").unwrap();
                    barrier.wait();
                    host.append(
                        NewChange::new(format!("host{index}"), ChangeOrigin::Api, "prod")
                            .change("api.timeout", None, plain(json!(round * 10 + index as u64)))
                            .set_override("api.timeout", StoredValue::plain(json!(round * 10 + index as u64)))
                            .expect_unchanged_since("api.timeout", seen),
                    )
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .collect();
        let winners: Vec<u64> = outcomes.iter().filter_map(|outcome| outcome.as_ref().ok().copied()).collect();
        let conflicts = outcomes.iter().filter(|outcome| matches!(outcome, Err(HistoryError::Conflict { .. }))).count();
        assert_eq!((winners.len(), conflicts), (1, 1), "round {round}: {outcomes:?}");
        assert_eq!(winners[0], round + 1, "versions stay contiguous: the loser took none");
        // Both hosts see the winner's value.
        let winner_value = hosts[0].get(winners[0]).unwrap().unwrap().payload.unwrap().changes[0].after.clone();
        for host in &hosts {
            assert_eq!(Some(host.overrides("prod").unwrap()["api.timeout"].clone()), winner_value);
        }
    }
}

/// Many writers on two hosts, different keys: every change commits exactly once, versions are
/// unique and contiguous across the fleet, and each caller's versions increase.
#[test]
fn concurrent_writers_on_two_hosts_get_unique_contiguous_versions() {
    let hosts = [Arc::new(store("fleet")), Arc::new(store("fleet"))];
    let threads: Vec<_> = (0..6)
        .map(|writer| {
            let host = hosts[writer % 2].clone();
            std::thread::spawn(move || {
                (0..20)
                    .map(|n| {
                        host.append(
                            NewChange::new(format!("writer{writer}"), ChangeOrigin::Api, "prod")
                                .change(format!("w{writer}.k{n}"), None, plain(json!(n)))
                                .set_override(format!("w{writer}.k{n}"), StoredValue::plain(json!(n))),
                        )
                        .unwrap()
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut all = Vec::new();
    for thread in threads {
        let versions = thread.join().unwrap();
        assert!(versions.windows(2).all(|pair| pair[0] < pair[1]));
        all.extend(versions);
    }
    all.sort();
    assert_eq!(all, (1..=120).collect::<Vec<u64>>());
    assert_eq!(hosts[1].overrides("prod").unwrap().len(), 120);
    for version in [1, 60, 120] {
        let record = hosts[0].get(version).unwrap().unwrap();
        let key = &record.keys[0];
        assert_eq!(hosts[1].key_version("prod", key).unwrap(), version);
    }
}

#[test]
fn an_unreachable_cluster_is_an_error_naming_the_location() {
    let location: EtcdLocation = format!("etcd://127.0.0.1:{}/nobody", free_port()).parse().unwrap();
    let mut options = EtcdOptions::new(location);
    options.connect_timeout = Duration::from_secs(1);
    options.request_timeout = Duration::from_secs(1);
    let error = EtcdStore::connect(options).unwrap_err();
    assert!(matches!(error, HistoryError::Storage { .. }), "{error:?}");
    assert!(error.to_string().contains("etcd://127.0.0.1:"), "{error}");
}

/// etcd stops while a host is connected: appends fail (nothing acknowledged), reads fail rather
/// than invent data, and once etcd is back the same store carries on where it was.
#[test]
fn a_stopped_cluster_refuses_writes_and_the_store_recovers_when_it_returns() {
    let mut etcd = Etcd::start();
    let mut options = EtcdOptions::new(etcd.location("outage"));
    options.request_timeout = Duration::from_secs(2);
    let store = EtcdStore::connect(options).unwrap();
    let change = |n: u64| NewChange::new("cli:alice", ChangeOrigin::Cli, "prod").change("k", None, plain(json!(n)));
    assert_eq!(store.append(change(1)).unwrap(), 1);

    etcd.signal_member("-STOP");
    let error = store.append(change(2)).unwrap_err();
    assert!(matches!(error, HistoryError::Storage { .. }), "{error:?}");
    assert!(error.to_string().contains("nothing was acknowledged") || error.to_string().contains("etcd request failed"), "{error}");
    assert!(store.latest_version().is_err());

    etcd.signal_member("-CONT");
    let deadline = Instant::now() + Duration::from_secs(20);
    let version = loop {
        match store.append(change(3)) {
            Ok(version) => break version,
            Err(error) => {
                assert!(Instant::now() < deadline, "the store did not recover: {error}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    // A timed-out append was not acknowledged but may have committed (etcd had received it): the
    // versions stay contiguous either way, and nothing is recorded twice.
    assert!(version == 2 || version == 3, "{version}");
    let records = store.query(&HistoryQuery::new()).unwrap();
    assert_eq!(records.len() as u64, version);
    etcd.stop();
}

fn next_records(follower: &potter_history_etcd::Follower, count: usize, events: &mut Vec<FollowEvent>) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut versions = Vec::new();
    while versions.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = follower.next_timeout(left).unwrap_or_else(|| panic!("only {versions:?} arrived; events {events:?}"));
        if let FollowEvent::Record(record) = &event {
            versions.push(record.version);
        }
        events.push(event);
    }
    versions
}

/// Host B follows what host A commits: first the records already there, then new ones as they
/// commit, in version order, each once.
#[test]
fn a_follower_on_another_host_receives_every_record_in_order() {
    let writer = store("follow");
    let reader = store("follow");
    for n in 0..5 {
        writer.append(NewChange::new("cli:a", ChangeOrigin::Cli, "prod").change("k", None, plain(json!(n)))).unwrap();
    }
    let follower = reader.follow(2);
    let mut events = Vec::new();
    assert_eq!(next_records(&follower, 3, &mut events), [3, 4, 5]);
    for n in 0..300 {
        writer.append(NewChange::new("cli:a", ChangeOrigin::Cli, "prod").change("k", None, plain(json!(n)))).unwrap();
    }
    assert_eq!(next_records(&follower, 300, &mut events), (6..=305).collect::<Vec<u64>>());
    assert!(events.iter().all(|event| matches!(event, FollowEvent::Record(_))), "{events:?}");
}

/// An etcd gRPC proxy between the follower and the member, so the follower can be cut off while
/// the writer carries on.
struct Proxy {
    child: Child,
}

impl Proxy {
    fn start(member_port: u16, port: u16) -> Proxy {
        let child = Command::new("etcd")
            .args(["grpc-proxy", "start", &format!("--endpoints=127.0.0.1:{member_port}"), &format!("--listen-addr=127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the etcd grpc-proxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Proxy { child }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The follower loses its connection, the fleet writes on and etcd compacts past the follower's
/// last revision; when the connection returns the follower reloads the records after its last
/// version and carries on: nothing missed, nothing twice.
#[test]
fn a_follower_cut_off_while_etcd_compacts_catches_up_without_a_gap() {
    let etcd = shared_etcd();
    let proxy_port = free_port();
    let proxy = Proxy::start(etcd.client_port, proxy_port);
    let writer = store("compacted");
    let location: EtcdLocation = format!("etcd://127.0.0.1:{proxy_port}/compacted").parse().unwrap();
    let reader = EtcdStore::connect(EtcdOptions::new(location)).unwrap();
    let follower = reader.follow(0);
    let change = |n: u64| NewChange::new("cli:a", ChangeOrigin::Cli, "prod").change(format!("k{}", n % 7), None, plain(json!(n)));
    for n in 0..10 {
        writer.append(change(n)).unwrap();
    }
    let mut events = Vec::new();
    assert_eq!(next_records(&follower, 10, &mut events), (1..=10).collect::<Vec<u64>>());

    drop(proxy);
    for n in 10..60 {
        writer.append(change(n)).unwrap();
    }
    // Compact etcd's history up to now: a watch resumed from the follower's old revision would
    // be refused.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut client = etcd_client::Client::connect([format!("http://127.0.0.1:{}", etcd.client_port)], None).await.unwrap();
        let revision = client.get("x", None).await.unwrap().header().unwrap().revision();
        client.compact(revision, None).await.unwrap();
    });

    let _proxy = Proxy::start(etcd.client_port, proxy_port);
    assert_eq!(next_records(&follower, 50, &mut events), (11..=60).collect::<Vec<u64>>());
    assert!(events.iter().any(|event| matches!(event, FollowEvent::Interrupted(_))), "{events:?}");
    // Reported once caught up, i.e. after the records it reloaded.
    match follower.next_timeout(Duration::from_secs(10)) {
        Some(FollowEvent::Resumed { after_version: 60, .. }) => {}
        other => panic!("expected Resumed after version 60, got {other:?}"),
    }
    writer.append(change(60)).unwrap();
    assert_eq!(next_records(&follower, 1, &mut events), [61]);
}

fn instance(id: &str, version: u64) -> potter_history_etcd::InstanceInfo {
    potter_history_etcd::InstanceInfo {
        id: id.to_owned(),
        address: Some(format!("127.0.0.1:80{version}")),
        version,
        plugins: vec!["geo@1.2.0".to_owned()],
        last_refusal: None,
        refused_version: None,
        labels: Default::default(),
        unhealthy: None,
    }
}

/// Hosts publish themselves under a lease: listed while alive (past the TTL, since the lease is
/// renewed), updated in place, gone at once on a clean withdraw, and gone after the TTL when a
/// host stops renewing (as a killed host does).
#[test]
fn the_instance_registry_lists_live_hosts_and_forgets_dead_ones() {
    let host_a = store("registry");
    let host_b = store("registry");
    let ttl = Duration::from_secs(2);
    let a = host_a.register(&instance("host-a", 3), ttl).unwrap();
    let b = host_b.register(&instance("host-b", 3), ttl).unwrap();
    let ids = |store: &EtcdStore| store.instances().unwrap().into_iter().map(|info| info.id).collect::<Vec<_>>();
    assert_eq!(ids(&host_a), ["host-a", "host-b"]);

    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ids(&host_b), ["host-a", "host-b"], "renewed leases outlive their TTL");

    let mut refused = instance("host-a", 3);
    refused.last_refusal = Some("version 4: plugin `geo` 1.3.0 is not installed here".to_owned());
    a.update(&refused).unwrap();
    assert_eq!(host_b.instances().unwrap()[0], refused);

    b.withdraw().unwrap();
    assert_eq!(ids(&host_a), ["host-a"]);

    drop(a); // stops renewing, like a host killed with SIGKILL
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ids(&host_b).is_empty() {
        assert!(Instant::now() < deadline, "the dead host's entry did not expire");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Audit lines from two hosts share one sequence of ids; queries filter and return newest first.
#[test]
fn audit_lines_from_two_hosts_share_one_increasing_sequence() {
    use potter_history::{AuditQuery, NewAuditEntry};
    let hosts = [Arc::new(store("audit")), Arc::new(store("audit"))];
    let line = |actor: &str, status: u16| NewAuditEntry {
        actor: actor.to_owned(),
        method: "PUT".to_owned(),
        route: "/v1/config/prod/api.timeout".to_owned(),
        env: Some("prod".to_owned()),
        key: Some("api.timeout".to_owned()),
        status,
        outcome: if status < 400 { "allowed".to_owned() } else { "denied".to_owned() },
    };
    let threads: Vec<_> = (0..4)
        .map(|writer| {
            let host = hosts[writer % 2].clone();
            std::thread::spawn(move || {
                for n in 0..10u16 {
                    host.append_audit(vec![line(&format!("token{writer}"), if n % 5 == 0 { 403 } else { 200 })]).unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|thread| thread.join().unwrap());
    let all = hosts[0].audit(&AuditQuery { limit: 1000, ..AuditQuery::default() }).unwrap();
    assert_eq!(all.iter().map(|entry| entry.id).collect::<Vec<_>>(), (1..=40).rev().collect::<Vec<u64>>());
    let refused = hosts[1].audit(&AuditQuery { min_status: Some(400), actor: Some("token1".to_owned()), ..AuditQuery::default() }).unwrap();
    assert_eq!(refused.len(), 2);
    assert!(refused.iter().all(|entry| entry.entry.status == 403 && entry.entry.actor == "token1"));
}
