//! Progressive rollouts on a single host: a real tree with forty users, a real SQLite history,
//! the real `potter-config` binary and the real server (and its rollout driver) over loopback HTTP.

use crate::common;

use common::serve::Served;
use common::{potter_with, stderr, stdout, Tree, API_SCHEMA};
use serde_json::{json, Value};

const USERS: usize = 40;

fn user(n: usize) -> String {
    format!("user{n:02}")
}

/// The API schema, forty users, and an `api_service` whose schema caps the timeout at 100.
fn tree() -> Tree {
    let tree = Tree::minimal();
    tree.write("schemas/global_schema.json", API_SCHEMA);
    for n in 0..USERS {
        tree.write(&format!("users/{}.json", user(n)), r#"{"ui": {"theme": "dark"}}"#);
    }
    tree.write("services/api_service.json", r#"{"service": {"name": "api"}}"#);
    tree.write(
        "schemas/service_schemas/api_service.json",
        r#"{"type": "object", "properties": {"api": {"type": "object", "properties": {"timeout": {"type": "integer", "maximum": 100}}}}}"#,
    );
    tree
}

fn cli(tree: &Tree, args: &[&str]) -> std::process::Output {
    let (root, state) = (tree.root(), tree.state());
    let mut all = vec!["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap()];
    all.extend(args);
    potter_with(&all, &[("POTTER_ACTOR", "carol")], None)
}

fn cli_ok(tree: &Tree, args: &[&str]) -> String {
    let output = cli(tree, args);
    assert!(output.status.success(), "{args:?}: {}{}", stdout(&output), stderr(&output));
    stdout(&output)
}

fn token(tree: &Tree, name: &str, role: &str) -> String {
    cli_ok(tree, &["token", "create", "--name", name, "--role", role, "--env", "*"]).trim().to_owned()
}

struct Host {
    tree: Tree,
    server: Served,
    editor: String,
    admin: String,
}

impl Host {
    fn new() -> Self {
        let tree = tree();
        let editor = token(&tree, "editor", "editor");
        let admin = token(&tree, "admin", "admin");
        let server = Served::serve_tree(&tree.root(), &tree.state(), &[]);
        Host { tree, server, editor, admin }
    }

    fn restart(&mut self) {
        let server = Served::serve_tree(&self.tree.root(), &self.tree.state(), &[]);
        drop(std::mem::replace(&mut self.server, server));
    }

    fn call(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.server.call_as(token, method, path, body)
    }

    fn start(&self, changes: Value, steps: Value) -> (u16, Value) {
        let body = json!({"env": "production", "title": "longer timeout", "changes": changes, "cohort": {"kind": "users"}, "steps": steps});
        self.call(&self.editor, "POST", "/v1/rollouts", Some(body))
    }

    fn rollout(&self, id: u64) -> Value {
        let (status, body) = self.call(&self.editor, "GET", &format!("/v1/rollouts/{id}"), None);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// `api.timeout` of production as `user` (None: the environment's own view) sees it.
    fn timeout(&self, user: Option<&str>) -> Value {
        let query = user.map(|user| format!("?user={user}")).unwrap_or_default();
        let (status, body) = self.call(&self.editor, "GET", &format!("/v1/config/production/api.timeout{query}"), None);
        assert_eq!(status, 200, "{body}");
        body["value"].clone()
    }

    /// The users who see `value` as their timeout.
    fn users_seeing(&self, value: i64) -> Vec<String> {
        (0..USERS).map(user).filter(|name| self.timeout(Some(name)) == value).collect()
    }

    fn history(&self) -> Vec<Value> {
        let (status, body) = self.call(&self.admin, "GET", "/v1/history?env=production", None);
        assert_eq!(status, 200, "{body}");
        body["records"].as_array().unwrap().clone()
    }
}

fn names(value: &Value) -> Vec<String> {
    value.as_array().unwrap().iter().map(|name| name.as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_user_rollout_reaches_the_same_users_at_every_step_and_completes_for_every_view() {
    let host = Host::new();
    let (status, started) = host.start(json!({"api": {"timeout": 45}}), json!([{"percent": 20, "bake_seconds": 3600}, {"percent": 60, "bake_seconds": 3600}, {"percent": 100, "bake_seconds": 0}]));
    assert_eq!(status, 201, "{started}");
    assert_eq!((started["state"].as_str(), started["step"].as_u64(), started["percent"].as_u64()), (Some("running"), Some(1), Some(20)));
    let first = names(&started["reached_users"]);
    assert!(!first.is_empty() && first.len() < USERS / 2, "about a fifth of the users: {first:?}");
    // Exactly the reached users see the change; everyone else and every non-user view does not.
    assert_eq!(host.users_seeing(45), first);
    assert_eq!(host.timeout(None), 30);

    // The step bakes: an editor cannot move it on, nor force it; an admin can.
    let (status, refused) = host.call(&host.editor, "POST", "/v1/rollouts/1/advance", Some(json!({})));
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("rollout_baking")), "{refused}");
    let (status, refused) = host.call(&host.editor, "POST", "/v1/rollouts/1/advance", Some(json!({"force": true})));
    assert_eq!(status, 403, "{refused}");
    let (status, second) = host.call(&host.admin, "POST", "/v1/rollouts/1/advance", Some(json!({"force": true})));
    assert_eq!((status, second["step"].as_u64()), (200, Some(2)), "{second}");
    let widened = names(&second["reached_users"]);
    assert!(first.iter().all(|name| widened.contains(name)), "the first step's users stay in: {first:?} ⊄ {widened:?}");
    assert!(widened.len() > first.len() && widened.len() < USERS, "{widened:?}");
    assert_eq!(host.users_seeing(45), widened);
    assert_eq!(host.timeout(None), 30);

    // The last step reaches every user; it bakes 0 s, so the driver completes it by itself: the
    // change becomes a runtime override for every view.
    let (status, last) = host.call(&host.admin, "POST", "/v1/rollouts/1/advance", Some(json!({"force": true})));
    assert_eq!((status, last["step"].as_u64()), (200, Some(3)), "{last}");
    // Completed once its change is live: the timeline's last event carries the version.
    common::eventually("the driver completes the rollout", || {
        let rollout = host.rollout(1);
        rollout["state"] == "completed" && rollout["timeline"].as_array().unwrap().last().unwrap()["version"].is_u64()
    });
    assert_eq!(host.timeout(None), 45);
    assert_eq!(host.users_seeing(45).len(), USERS);
    let (status, explained) = host.call(&host.editor, "GET", "/v1/explain/production/api.timeout", None);
    assert_eq!(status, 200, "{explained}");
    assert!(explained.to_string().contains("runtime overrides"), "{explained}");

    // Each step is a recorded change by its actor, the completion the driver's.
    let records = host.history();
    let by_rollout: Vec<(String, String)> = records
        .iter()
        .filter(|record| record["origin"] == "rollout")
        .map(|record| (record["actor"].as_str().unwrap().to_owned(), record["reason"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert!(by_rollout.iter().any(|(actor, reason)| actor == "token:editor" && reason.contains("step 1 of 3 (20% of users)")), "{by_rollout:?}");
    assert!(by_rollout.iter().any(|(actor, reason)| actor == "token:admin" && reason.contains("step 2 of 3")), "{by_rollout:?}");
    assert!(by_rollout.iter().any(|(actor, reason)| actor == "rollout driver" && reason.contains("completed")), "{by_rollout:?}");
    let finished = host.rollout(1);
    let timeline: Vec<&str> = finished["timeline"].as_array().unwrap().iter().map(|event| event["milestone"].as_str().unwrap()).collect();
    assert_eq!(timeline, ["started", "forced", "forced", "completed"]);
}

#[test]
fn an_unhealthy_host_rolls_the_rollout_back_by_itself_with_the_reason_in_the_history() {
    let host = Host::new();
    let (status, started) = host.start(json!({"api": {"timeout": 46}}), json!([{"percent": 50, "bake_seconds": 3600}, {"percent": 100, "bake_seconds": 3600}]));
    assert_eq!(status, 201, "{started}");
    assert!(!host.users_seeing(46).is_empty());
    let (status, body) = host.call(&host.editor, "POST", "/v1/instances/self/health", Some(json!({"healthy": false, "reason": "error rate 12%"})));
    assert_eq!((status, body["healthy"].as_bool()), (200, Some(false)), "{body}");
    common::eventually("the health gate rolls it back", || {
        let rollout = host.rollout(1);
        rollout["state"] == "rolled-back" && rollout["timeline"].as_array().unwrap().last().unwrap()["version"].is_u64()
    });
    assert!(host.users_seeing(46).is_empty(), "every user is back on the old value");
    let newest = &host.history()[0];
    assert_eq!(newest["origin"], "rollout", "{newest}");
    assert_eq!(newest["actor"], "rollout driver", "{newest}");
    let reason = newest["reason"].as_str().unwrap();
    assert!(reason.contains("rolled back at step 1") && reason.contains("health gate") && reason.contains("error rate 12%"), "{reason}");

    // While it reports itself unhealthy, no rollout starts; once healthy, one does.
    let (status, refused) = host.start(json!({"api": {"timeout": 47}}), json!([{"percent": 100, "bake_seconds": 60}]));
    assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("bad_rollout")), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("error rate 12%"), "{refused}");
    let (status, _) = host.call(&host.editor, "POST", "/v1/instances/self/health", Some(json!({"healthy": true})));
    assert_eq!(status, 200);
    let (status, body) = host.start(json!({"api": {"timeout": 47}}), json!([{"percent": 100, "bake_seconds": 60}]));
    assert_eq!(status, 201, "{body}");
    // A viewer may not report the host's health.
    let reader = token(&host.tree, "viewer", "viewer");
    let (status, _) = host.call(&reader, "POST", "/v1/instances/self/health", Some(json!({"healthy": false, "reason": "x"})));
    assert_eq!(status, 403);
}

#[test]
fn a_rollout_on_keys_a_running_one_covers_is_refused_and_an_abort_undoes_every_view() {
    let host = Host::new();
    let steps = json!([{"percent": 50, "bake_seconds": 3600}, {"percent": 100, "bake_seconds": 3600}]);
    let (status, first) = host.start(json!({"api": {"timeout": 48}}), steps.clone());
    assert_eq!(status, 201, "{first}");
    for overlapping in [json!({"api": {"timeout": 49}}), json!({"api": {"timeout": {"connect": 3}}})] {
        let (status, refused) = host.start(overlapping, steps.clone());
        assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("rollout_overlap")), "{refused}");
        assert!(refused["error"]["message"].as_str().unwrap().contains("rollout 1"), "{refused}");
    }
    let (status, other) = host.start(json!({"api": {"rate_limit": 200}}), steps.clone());
    assert_eq!(status, 201, "another key starts: {other}");
    let reached = host.users_seeing(48);
    assert!(!reached.is_empty());
    // A direct write of a key a running rollout changes is refused (it would be shadowed for the
    // cohort, then overwritten by the completion); the refusal names the rollout.
    for (method, path, body) in [("PUT", "/v1/config/production/api.timeout", Some(json!({"value": 60}))), ("PATCH", "/v1/config/production", Some(json!({"api": {"timeout": null}})))] {
        let (status, refused) = host.call(&host.admin, method, path, body);
        assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("rollout_running")), "{method}: {refused}");
        assert!(refused["error"]["message"].as_str().unwrap().contains("rollout 1"), "{refused}");
    }

    let (status, refused) = host.call(&host.editor, "POST", "/v1/rollouts/1/abort", Some(json!({"reason": " "})));
    assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("bad_rollout")), "{refused}");
    let (status, ended) = host.call(&host.editor, "POST", "/v1/rollouts/1/abort", Some(json!({"reason": "latency up"})));
    assert_eq!((status, ended["state"].as_str()), (200, Some("rolled-back")), "{ended}");
    assert!(host.users_seeing(48).is_empty());
    assert_eq!(host.timeout(None), 30);
    let (status, refused) = host.call(&host.editor, "POST", "/v1/rollouts/1/abort", Some(json!({"reason": "again"})));
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("rollout_ended")), "{refused}");
    // The key is free again.
    let (status, body) = host.start(json!({"api": {"timeout": 49}}), steps);
    assert_eq!(status, 201, "{body}");
    let (status, listed) = host.call(&host.editor, "GET", "/v1/rollouts?env=production", None);
    assert_eq!(status, 200);
    let states: Vec<(u64, &str)> = listed["rollouts"].as_array().unwrap().iter().map(|r| (r["id"].as_u64().unwrap(), r["state"].as_str().unwrap())).collect();
    assert_eq!(states, [(3, "running"), (2, "running"), (1, "rolled-back")]);
}

#[test]
fn a_restarted_server_resumes_the_rollout_from_its_recorded_step() {
    let mut host = Host::new();
    let (status, _) = host.start(json!({"api": {"timeout": 50}}), json!([{"percent": 20, "bake_seconds": 3600}, {"percent": 60, "bake_seconds": 3600}, {"percent": 100, "bake_seconds": 3600}]));
    assert_eq!(status, 201);
    let (status, second) = host.call(&host.admin, "POST", "/v1/rollouts/1/advance", Some(json!({"force": true})));
    assert_eq!(status, 200, "{second}");
    let reached = host.users_seeing(50);
    let bake_ends = second["bake_ends_at"].clone();
    host.restart();
    let resumed = host.rollout(1);
    assert_eq!((resumed["state"].as_str(), resumed["step"].as_u64()), (Some("running"), Some(2)), "{resumed}");
    assert_eq!(resumed["bake_ends_at"], bake_ends, "the bake counts from when the step started");
    assert_eq!(host.users_seeing(50), reached);
    assert_eq!(names(&resumed["reached_users"]), reached);
}

#[test]
fn a_rollout_that_would_break_a_view_or_has_no_sound_steps_is_refused_and_nothing_is_staged() {
    let host = Host::new();
    let (status, refused) = host.start(json!({"api": {"timeout": 500}}), json!([{"percent": 100, "bake_seconds": 0}]));
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("invalid")), "{refused}");
    assert!(refused.to_string().contains("api_service"), "names the view: {refused}");
    for (steps, why) in [
        (json!([]), "1 to 20 steps"),
        (json!([{"percent": 50, "bake_seconds": 0}]), "rising from above 0 to 100"),
        (json!([{"percent": 60, "bake_seconds": 0}, {"percent": 30, "bake_seconds": 0}, {"percent": 100, "bake_seconds": 0}]), "rising"),
    ] {
        let (status, refused) = host.start(json!({"api": {"timeout": 40}}), steps);
        assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("bad_rollout")), "{refused}");
        assert!(refused["error"]["message"].as_str().unwrap().contains(why), "{refused}");
    }
    let (status, refused) = host.start(json!({"api": {"timeout": null}}), json!([{"percent": 100, "bake_seconds": 0}]));
    assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("bad_rollout")), "{refused}");
    let (status, listed) = host.call(&host.editor, "GET", "/v1/rollouts", None);
    assert_eq!((status, listed["rollouts"].as_array().map(Vec::len)), (200, Some(0)), "{listed}");
    assert!(host.history().is_empty());
}

#[test]
fn the_cli_starts_shows_advances_and_aborts_a_rollout_on_the_tree() {
    let tree = tree();
    let started = cli_ok(&tree, &["--env", "production", "--format", "json", "rollout", "start", "api.timeout=44", "--title", "cli", "--steps", "30,100", "--bake", "3600"]);
    let started: Value = serde_json::from_str(&started).unwrap();
    let reached = names(&started["reached_users"]);
    assert!(!reached.is_empty() && reached.len() < USERS, "{started}");
    for n in 0..USERS {
        let seen = cli_ok(&tree, &["--env", "production", "--user", &user(n), "get", "api.timeout"]);
        assert_eq!(seen.trim() == "44", reached.contains(&user(n)), "{}: {seen}", user(n));
    }
    let baking = cli(&tree, &["--env", "production", "rollout", "advance", "1"]);
    assert_eq!(baking.status.code(), Some(4), "{}", stderr(&baking));
    assert!(stderr(&baking).contains("bakes until"), "{}", stderr(&baking));
    let status = cli_ok(&tree, &["--env", "production", "rollout", "status", "1"]);
    assert!(status.contains("step 1 of 2") && status.contains("reaches users:"), "{status}");
    let aborted = cli_ok(&tree, &["--env", "production", "rollout", "abort", "1", "--reason", "not today"]);
    assert!(aborted.contains("rolled back"), "{aborted}");
    let seen = cli_ok(&tree, &["--env", "production", "--user", &reached[0], "get", "api.timeout"]);
    assert_eq!(seen.trim(), "30");
    let history = cli_ok(&tree, &["--env", "production", "--format", "json", "history", "--limit", "1"]);
    assert!(history.contains("not today") && history.contains("cli:carol"), "{history}");
}

#[test]
fn a_change_request_approved_as_a_rollout_goes_live_for_its_first_step_only() {
    let host = Host::new();
    host.tree.write("policy.toml", "[environments.production]\nreview = \"required\"\n");
    let publisher = token(&host.tree, "publisher", "publisher");
    let (status, drafted) = host.call(&host.editor, "POST", "/v1/changes", Some(json!({"env": "production", "title": "Slower", "changes": {"api": {"timeout": 52}}})));
    assert_eq!(status, 201, "{drafted}");
    let strategy = json!({"rollout": {"cohort": {"kind": "users"}, "steps": [{"percent": 25, "bake_seconds": 3600}, {"percent": 100, "bake_seconds": 3600}]}});
    // The author cannot approve it, as a rollout no more than at once.
    let (status, refused) = host.call(&host.editor, "POST", "/v1/changes/1/approve", Some(strategy.clone()));
    assert_eq!(status, 403, "{refused}");
    let (status, published) = host.call(&publisher, "POST", "/v1/changes/1/approve", Some(strategy));
    assert_eq!((status, published["state"].as_str()), (200, Some("published")), "{published}");
    let last = published["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["milestone"].as_str(), last["note"].as_str()), (Some("published"), Some("as rollout 1")), "{published}");
    let rollout = host.rollout(1);
    assert_eq!((rollout["state"].as_str(), rollout["author"].as_str(), rollout["title"].as_str()), (Some("running"), Some("token:publisher"), Some("Slower")), "{rollout}");
    let reached = names(&rollout["reached_users"]);
    assert!(!reached.is_empty() && reached.len() < USERS, "{rollout}");
    assert_eq!(host.users_seeing(52), reached);
    assert_eq!(host.timeout(None), 30, "the environment's own view waits for the completion");
    // A request that removes an override cannot be a rollout: it stays open, the reason noted.
    let (status, drafted) = host.call(&host.editor, "POST", "/v1/changes", Some(json!({"env": "staging", "title": "Drop", "changes": {"api": {"timeout": null}}})));
    assert_eq!(status, 201, "{drafted}");
    let (status, refused) = host.call(&publisher, "POST", "/v1/changes/2/approve", Some(json!({"rollout": {"cohort": {"kind": "users"}, "steps": [{"percent": 100, "bake_seconds": 0}]}})));
    assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("bad_rollout")), "{refused}");
    let (status, shown) = host.call(&host.editor, "GET", "/v1/changes/2", None);
    assert_eq!((status, shown["state"].as_str()), (200, Some("open")), "{shown}");
}
