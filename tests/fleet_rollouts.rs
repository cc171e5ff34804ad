//! Progressive rollouts across hosts (docs/ROLLOUT.md): three `potter-config serve` processes on
//! a real three-member etcd cluster, each with its instance id, stepping through an instance
//! cohort, rolling back on one host's failure or death, resuming after a restart, and taking no
//! step while etcd is down. The tests share the cluster and run one at a time (one stops it).

use crate::common;

use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use common::etcd::EtcdCluster;
use common::serve::Served;
use common::Tree;
use serde_json::{json, Value};

fn cluster() -> &'static EtcdCluster {
    common::etcd::shared_cluster()
}

fn serial() -> MutexGuard<'static, ()> {
    common::etcd::one_at_a_time()
}

/// Waits up to 30 s for `done` (a liveness wait, not a timing assertion).
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "not within 30 s: {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

const IDS: [&str; 3] = ["host-a", "host-b", "host-c"];

/// Three hosts on one prefix, each over its own copy of the tree; A made the fleet's admin token.
struct Fleet {
    location: String,
    /// Seconds a killed host's registry entry outlives it.
    ttl: String,
    trees: Vec<Tree>,
    hosts: Vec<Option<Served>>,
}

impl Fleet {
    /// Hosts whose registry entries outlive them by `ttl` seconds: short where a test waits for a
    /// dead host to drop out, long where a restart or an outage must not look like a death.
    fn new(prefix: &str, ttl: u64) -> Fleet {
        let location = cluster().location(prefix);
        let trees: Vec<Tree> = IDS.iter().map(|_| Tree::minimal()).collect();
        let mut fleet = Fleet { location, ttl: ttl.to_string(), trees, hosts: vec![None, None, None] };
        for i in 0..IDS.len() {
            fleet.start(i);
        }
        fleet
    }

    fn start(&mut self, i: usize) {
        let (root, state) = (self.trees[i].root(), self.trees[i].state());
        let mut args = vec!["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap(), "--store", &self.location];
        args.extend(["serve", "--listen", "127.0.0.1:0", "--instance-id", IDS[i], "--instance-ttl", self.ttl.as_str(), "--label", if i == 0 { "zone=one" } else { "zone=two" }]);
        if i == 0 && self.hosts.iter().all(Option::is_none) {
            args.push("--dev-token");
        }
        let mut server = Served::start(&args);
        if let Some(token) = self.hosts.iter().flatten().map(|host| host.token.clone()).find(|token| !token.is_empty()) {
            server.token = token;
        }
        self.hosts[i] = Some(server);
        wait_until("the host is in the registry", || self.registered().contains(&IDS[i].to_owned()));
    }

    fn host(&self, i: usize) -> &Served {
        self.hosts[i].as_ref().expect("running")
    }

    /// Any running host.
    fn any(&self) -> &Served {
        self.hosts.iter().flatten().next().expect("a running host")
    }

    fn kill(&mut self, i: usize) {
        self.hosts[i] = None;
    }

    fn registered(&self) -> Vec<String> {
        let (status, listed) = self.any().call("GET", "/v1/instances", &[], None);
        if status != 200 {
            return Vec::new();
        }
        listed["instances"].as_array().unwrap().iter().map(|entry| entry["id"].as_str().unwrap().to_owned()).collect()
    }

    fn timeout_on(&self, i: usize) -> Value {
        let (status, body) = self.host(i).call("GET", "/v1/config/staging/api.timeout", &[], None);
        assert_eq!(status, 200, "{body}");
        body["value"].clone()
    }

    fn rollout(&self, id: u64) -> Value {
        let (status, body) = self.any().call("GET", &format!("/v1/rollouts/{id}"), &[], None);
        assert_eq!(status, 200, "{body}");
        body
    }

    fn start_rollout(&self, on: usize, value: u64, cohort: Value, steps: Value) -> Value {
        let body = json!({"env": "staging", "title": "timeout", "changes": {"api": {"timeout": value}}, "cohort": cohort, "steps": steps});
        let (status, started) = self.host(on).call("POST", "/v1/rollouts", &[], Some(body));
        assert_eq!(status, 201, "{started}");
        started
    }

    /// Waits until exactly the hosts in `reached` serve `value` and the others 30.
    fn wait_serving(&self, value: u64, reached: &[String]) {
        wait_until(&format!("{reached:?} serve {value}, the others 30"), || {
            (0..IDS.len()).filter(|&i| self.hosts[i].is_some()).all(|i| self.timeout_on(i) == if reached.contains(&IDS[i].to_owned()) { json!(value) } else { json!(30) })
        });
    }

    fn newest_record(&self) -> Value {
        let (status, history) = self.any().call("GET", "/v1/history?env=staging&limit=1", &[], None);
        assert_eq!(status, 200, "{history}");
        history["records"][0].clone()
    }
}

fn reached(rollout: &Value) -> Vec<String> {
    rollout["reached_instances"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()).collect()
}

/// Steps that reach the hosts one at a time (by their buckets in rollout 1), then everyone.
fn one_host_per_step() -> Value {
    let mut buckets: Vec<u32> = IDS.iter().map(|id| potter_config::source::rollout::bucket(1, id)).collect();
    buckets.sort();
    let mut shares: Vec<u32> = buckets[..2].iter().map(|bucket| bucket / 100 + 1).collect();
    shares.push(100);
    assert!(shares.windows(2).all(|pair| pair[0] < pair[1]), "two hosts share a percent: {buckets:?}");
    Value::Array(shares.into_iter().map(|percent| json!({"percent": percent, "bake_seconds": 3600})).collect())
}

#[test]
fn an_instance_rollout_steps_through_its_cohort_and_completes_on_every_host() {
    let _serial = serial();
    let fleet = Fleet::new("rollout-steps", 30);
    let started = fleet.start_rollout(0, 41, json!({"kind": "instances"}), one_host_per_step());
    let first = reached(&started);
    assert_eq!(first.len(), 1, "{started}");
    fleet.wait_serving(41, &first);
    // The step is a record every host took in; the others serve the old value.
    let record = fleet.newest_record();
    assert_eq!((record["origin"].as_str(), record["actor"].as_str()), (Some("rollout"), Some("token:dev")), "{record}");
    assert!(record["reason"].as_str().unwrap().contains("step 1 of 3"), "{record}");

    // A second rollout on the same key is refused while this one runs, from any host.
    let body = json!({"env": "staging", "title": "again", "changes": {"api": {"timeout": 42}}, "cohort": {"kind": "instances"}, "steps": [{"percent": 100, "bake_seconds": 0}]});
    let (status, refused) = fleet.host(2).call("POST", "/v1/rollouts", &[], Some(body));
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("rollout_overlap")), "{refused}");

    let (status, second) = fleet.host(1).call("POST", "/v1/rollouts/1/advance", &[], Some(json!({"force": true})));
    assert_eq!(status, 200, "{second}");
    let widened = reached(&second);
    assert_eq!(widened.len(), 2, "{second}");
    assert!(widened.contains(&first[0]), "the first step's host stays in: {widened:?}");
    fleet.wait_serving(41, &widened);
    let (status, last) = fleet.host(2).call("POST", "/v1/rollouts/1/advance", &[], Some(json!({"force": true})));
    assert_eq!((status, reached(&last).len()), (200, 3), "{last}");
    fleet.wait_serving(41, &IDS.map(str::to_owned));
    let (status, done) = fleet.host(0).call("POST", "/v1/rollouts/1/advance", &[], Some(json!({"force": true})));
    assert_eq!((status, done["state"].as_str()), (200, Some("completed")), "{done}");
    // Completed: a runtime override now, on every host, recorded once.
    wait_until("every host serves the completed change as an override", || {
        (0..3).all(|i| {
            let (_, explained) = fleet.host(i).call("GET", "/v1/explain/staging/api.timeout", &[], None);
            fleet.timeout_on(i) == 41 && explained.to_string().contains("runtime overrides")
        })
    });
}

#[test]
fn one_hosts_failure_rolls_the_rollout_back_on_every_host() {
    let _serial = serial();
    let fleet = Fleet::new("rollout-gate", 30);
    let started = fleet.start_rollout(0, 43, json!({"kind": "label", "label": "zone=two"}), json!([{"percent": 100, "bake_seconds": 3600}]));
    assert_eq!(reached(&started), ["host-b", "host-c"], "the label's hosts: {started}");
    fleet.wait_serving(43, &reached(&started));
    let (status, body) = fleet.host(2).call("POST", "/v1/instances/self/health", &[], Some(json!({"healthy": false, "reason": "5xx at 9%"})));
    assert_eq!(status, 200, "{body}");
    wait_until("the rollout rolls back", || fleet.rollout(1)["state"] == "rolled-back");
    fleet.wait_serving(43, &[]);
    let record = fleet.newest_record();
    let reason = record["reason"].as_str().unwrap();
    // Host C's own driver or another host's (through C's registry entry) rolls it back, whichever looks first.
    assert!(reason.contains("rolled back at step 1: health gate") && reason.contains("(5xx at 9%)"), "{record}");
    assert_eq!(record["actor"], "rollout driver");
}

#[test]
fn a_host_dying_during_bake_rolls_the_rollout_back_instead_of_waiting_for_it() {
    let _serial = serial();
    let mut fleet = Fleet::new("rollout-death", 2);
    let started = fleet.start_rollout(0, 44, json!({"kind": "instances"}), json!([{"percent": 100, "bake_seconds": 3600}]));
    assert_eq!(reached(&started).len(), 3, "{started}");
    fleet.wait_serving(44, &IDS.map(str::to_owned));
    fleet.kill(2); // killed: its entry lives until its 2 s lease runs out
    wait_until("the rollout rolls back once host-c's entry expired", || fleet.rollout(1)["state"] == "rolled-back");
    fleet.wait_serving(44, &[]);
    let reason = fleet.newest_record()["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("instance `host-c` left during step 1"), "{reason}");
}

#[test]
fn a_restarted_host_resumes_the_rollout_from_its_recorded_step() {
    let _serial = serial();
    let mut fleet = Fleet::new("rollout-restart", 30);
    // Chosen hosts: A and B get the change first; its one step bakes 5 s, then the driver completes
    // it by itself (every host, C included).
    let started = fleet.start_rollout(0, 45, json!({"kind": "chosen", "instances": ["host-a", "host-b"]}), json!([{"percent": 100, "bake_seconds": 5}]));
    assert_eq!(reached(&started), ["host-a", "host-b"], "{started}");
    fleet.wait_serving(45, &reached(&started));
    // The host that started it is killed and restarted within its lease (30 s): it serves the
    // recorded step, and nobody saw it leave.
    fleet.kill(0);
    fleet.start(0);
    let resumed = fleet.rollout(1);
    assert_eq!((resumed["state"].as_str(), resumed["step"].as_u64()), (Some("running"), Some(1)), "{resumed}");
    assert_eq!(resumed["bake_ends_at"], started["bake_ends_at"], "the bake counts from the recorded step's start");
    fleet.wait_serving(45, &reached(&started));
    wait_until("the driver completes it after the bake", || fleet.rollout(1)["state"] == "completed");
    fleet.wait_serving(45, &IDS.map(str::to_owned));
}

#[test]
fn with_etcd_down_no_step_is_taken_and_nothing_is_half_applied() {
    let _serial = serial();
    let fleet = Fleet::new("rollout-outage", 30);
    let started = fleet.start_rollout(0, 46, json!({"kind": "instances"}), one_host_per_step());
    let first = reached(&started);
    fleet.wait_serving(46, &first);
    for member in 0..cluster().size() {
        cluster().kill(member);
    }
    let (status, refused) = fleet.host(0).call("POST", "/v1/rollouts/1/advance", &[], Some(json!({"force": true})));
    assert_eq!(status, 503, "{refused}");
    // Every host serves what it served: the last good snapshot.
    for i in 0..3 {
        assert_eq!(fleet.timeout_on(i), if first.contains(&IDS[i].to_owned()) { json!(46) } else { json!(30) });
    }
    cluster().restart_all();
    wait_until("the store answers again", || fleet.host(0).call("GET", "/v1/rollouts/1", &[], None).0 == 200);
    let after = fleet.rollout(1);
    assert_eq!((after["step"].as_u64(), after["state"].as_str()), (Some(1), Some("running")), "no step was taken: {after}");
    fleet.wait_serving(46, &first);
}
