//! Change requests end to end: a real tree with a review policy, a real SQLite history, the real
//! `potter-config` binary and the real server over loopback HTTP with real tokens.

use crate::common;

use common::serve::Served;
use common::{potter, potter_with, stderr, stdout, Tree, API_SCHEMA};
use serde_json::{json, Value};

/// The review policy the tests use: production requires review, staging does not.
const POLICY: &str = "[environments.production]\nreview = \"required\"\n";

/// A tree with the API schema, the review policy, and an `api_service` whose schema allows a
/// timeout of at most 100 (so a draft can be valid in the environment's view but not the service's).
fn tree() -> Tree {
    let tree = Tree::minimal();
    tree.write("schemas/global_schema.json", API_SCHEMA);
    tree.write("services/api_service.json", r#"{"service": {"name": "api"}}"#);
    tree.write(
        "schemas/service_schemas/api_service.json",
        r#"{"type": "object", "properties": {"api": {"type": "object", "properties": {"timeout": {"type": "integer", "maximum": 100}}}}}"#,
    );
    tree.write("policy.toml", POLICY);
    tree
}

/// Runs the binary on the tree as `actor`; returns the output whatever it is.
fn cli_as(tree: &Tree, actor: &str, args: &[&str]) -> std::process::Output {
    let (root, state) = (tree.root(), tree.state());
    let mut all = vec!["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap()];
    all.extend(args);
    potter_with(&all, &[("POTTER_ACTOR", actor)], None)
}

/// Runs the binary on the tree as `actor`; panics unless it succeeds; returns stdout.
fn cli_ok(tree: &Tree, actor: &str, args: &[&str]) -> String {
    let output = cli_as(tree, actor, args);
    assert!(output.status.success(), "{args:?}: {}{}", stdout(&output), stderr(&output));
    stdout(&output)
}

fn token(tree: &Tree, name: &str, role: &str, environments: &str) -> String {
    cli_ok(tree, "setup", &["token", "create", "--name", name, "--role", role, "--env", environments]).trim().to_owned()
}

fn serve(tree: &Tree) -> Served {
    Served::serve_tree(&tree.root(), &tree.state(), &[])
}

/// The value at `key` of production as `token` sees it.
fn value(server: &Served, token: &str, environment: &str, key: &str) -> Value {
    let (status, body) = server.call_as(token, "GET", &format!("/v1/config/{environment}/{key}"), None);
    assert_eq!(status, 200, "{body}");
    body["value"].clone()
}

fn history(server: &Served, token: &str, environment: &str) -> Vec<Value> {
    let (status, body) = server.call_as(token, "GET", &format!("/v1/history?env={environment}"), None);
    assert_eq!(status, 200, "{body}");
    body["records"].as_array().unwrap().clone()
}

fn draft(server: &Served, token: &str, environment: &str, title: &str, changes: Value) -> (u16, Value) {
    server.call_as(token, "POST", "/v1/changes", Some(json!({ "env": environment, "title": title, "changes": changes })))
}

#[test]
fn a_change_request_in_a_review_required_environment_needs_a_second_person() {
    let tree = tree();
    let alice = token(&tree, "alice", "editor", "production");
    let carol = token(&tree, "carol", "publisher", "production");
    let bob = token(&tree, "bob", "publisher", "production");
    let admin = token(&tree, "admin", "admin", "*");
    let server = serve(&tree);

    let (status, created) = draft(&server, &alice, "production", "Slower upstream", json!({"api": {"timeout": 45}}));
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["state"], "open");
    assert_eq!(created["author"], "token:alice");
    assert_eq!(created["diff"], json!([{"key": "api.timeout", "current": 30, "proposed": 45}]));
    let id = created["id"].as_u64().unwrap();
    let versions_before = history(&server, &admin, "production").len();

    // An editor may draft but not approve; a publisher may not approve their own request here.
    let (status, refused) = server.call_as(&alice, "POST", &format!("/v1/changes/{id}/approve"), None);
    assert_eq!((status, refused["error"]["code"].as_str()), (403, Some("forbidden")), "{refused}");
    let (status, own) = draft(&server, &carol, "production", "Carol's own", json!({"api": {"rate_limit": 200}}));
    assert_eq!(status, 201, "{own}");
    let own_id = own["id"].as_u64().unwrap();
    let (status, refused) = server.call_as(&carol, "POST", &format!("/v1/changes/{own_id}/approve"), None);
    assert_eq!((status, refused["error"]["code"].as_str()), (403, Some("self_approval")), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("cannot approve it"), "{refused}");
    assert_eq!(value(&server, &admin, "production", "api.rate_limit"), 100, "nothing published");
    assert_eq!(value(&server, &admin, "production", "api.timeout"), 30, "nothing published");
    assert_eq!(history(&server, &admin, "production").len(), versions_before, "no version recorded");

    // A second person publishes it: live, as one new version whose reason names everyone.
    let (status, published) = server.call_as(&bob, "POST", &format!("/v1/changes/{id}/approve"), None);
    assert_eq!(status, 200, "{published}");
    assert_eq!(published["state"], "published");
    assert_eq!(published["approver"], "token:bob");
    assert_eq!(value(&server, &alice, "production", "api.timeout"), 45);
    let records = history(&server, &admin, "production");
    assert_eq!(records.len(), versions_before + 1, "{records:?}");
    assert_eq!(records[0]["version"], published["published_version"]);
    let reason = records[0]["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("change request {id}")) && reason.contains("token:alice") && reason.contains("token:bob"), "{reason}");
    assert_eq!(records[0]["actor"], "token:bob");
    let milestones: Vec<&str> = published["timeline"].as_array().unwrap().iter().map(|event| event["milestone"].as_str().unwrap()).collect();
    assert_eq!(milestones, ["created", "approved", "published"]);

    // A request drafted on the key before another publication moved it is refused, naming the key.
    let (status, stale) = draft(&server, &alice, "production", "Stale", json!({"api": {"timeout": 60}}));
    assert_eq!(status, 201, "{stale}");
    let stale_id = stale["id"].as_u64().unwrap();
    let (status, _) = draft(&server, &alice, "production", "Moves the key", json!({"api": {"timeout": 50}}));
    assert_eq!(status, 201);
    let (status, moved) = server.call_as(&bob, "POST", &format!("/v1/changes/{}/approve", stale_id + 1), None);
    assert_eq!(status, 200, "{moved}");
    let (status, conflict) = server.call_as(&bob, "POST", &format!("/v1/changes/{stale_id}/approve"), None);
    assert_eq!((status, conflict["error"]["code"].as_str()), (409, Some("change_conflict")), "{conflict}");
    assert_eq!(conflict["error"]["conflicts"][0]["key"], "api.timeout", "{conflict}");
    assert_eq!(value(&server, &admin, "production", "api.timeout"), 50);

    // The audit log (written without waiting) has the draft, the refused self-approval and the publication.
    let expected = [
        vec!["alice".to_owned(), "/v1/changes ".to_owned(), "201".to_owned(), format!("change request {id} drafted")],
        vec!["carol".to_owned(), format!("/v1/changes/{own_id}/approve"), "403".to_owned(), "cannot approve it".to_owned()],
        vec!["bob".to_owned(), format!("/v1/changes/{id}/approve"), "200".to_owned(), "published as version".to_owned()],
    ];
    common::eventually("the change requests are audited", || {
        let lines = audit_lines(&server, &admin);
        expected.iter().all(|needle| lines.iter().any(|line| needle.iter().all(|part| line.contains(part.as_str()))))
    });
}

/// Each audit line as `actor route status outcome`.
fn audit_lines(server: &Served, admin: &str) -> Vec<String> {
    let (status, audit) = server.call_as(admin, "GET", "/v1/audit?limit=200", None);
    assert_eq!(status, 200, "{audit}");
    audit["entries"].as_array().unwrap().iter().map(|line| format!("{} {} {} {} {}", line["actor"].as_str().unwrap(), line["route"].as_str().unwrap(), line["status"], line["env"], line["outcome"].as_str().unwrap())).collect()
}

#[test]
fn direct_writes_where_review_is_required_need_a_change_request_or_an_admin() {
    let tree = tree();
    let editor = token(&tree, "editor", "editor", "production,staging");
    let admin = token(&tree, "admin", "admin", "*");
    let server = serve(&tree);
    for (method, path, body) in [
        ("PUT", "/v1/config/production/api.timeout", Some(json!({"value": 40}))),
        ("PATCH", "/v1/config/production", Some(json!({"api": {"timeout": 40}}))),
        ("DELETE", "/v1/config/production/api.timeout", None),
    ] {
        let (status, refused) = server.call_as(&editor, method, path, body);
        assert_eq!((status, refused["error"]["code"].as_str()), (403, Some("review_required")), "{method} {path}: {refused}");
        assert!(refused["error"]["message"].as_str().unwrap().contains("open a change request"), "{refused}");
    }
    assert_eq!(value(&server, &editor, "production", "api.timeout"), 30);
    // An admin breaks the glass (audited as such); an editor elsewhere writes as before.
    let (status, body) = server.call_as(&admin, "PUT", "/v1/config/production/api.timeout", Some(json!({"value": 40, "reason": "incident 7"})));
    assert_eq!(status, 200, "{body}");
    assert_eq!(value(&server, &editor, "production", "api.timeout"), 40);
    let (status, body) = server.call_as(&editor, "PUT", "/v1/config/staging/api.timeout", Some(json!({"value": 41})));
    assert_eq!(status, 200, "{body}");
    common::eventually("the break-glass write is audited as such", || {
        audit_lines(&server, &admin).iter().any(|line| line.starts_with("admin /v1/config/production/api.timeout 200 \"production\" allowed: break-glass"))
    });
    // The running server reads an edited policy at the next write (it keeps the parsed file
    // between writes, but not past an edit).
    tree.write("policy.toml", "[environments.production]\nreview = \"required\"\n\n[environments.staging]\nreview = \"required\"\n");
    let (status, refused) = server.call_as(&editor, "PUT", "/v1/config/staging/api.timeout", Some(json!({"value": 44})));
    assert_eq!((status, refused["error"]["code"].as_str()), (403, Some("review_required")), "{refused}");
    tree.write("policy.toml", POLICY);
    let (status, body) = server.call_as(&editor, "PUT", "/v1/config/staging/api.timeout", Some(json!({"value": 44})));
    assert_eq!(status, 200, "{body}");
    drop(server);

    // The CLI's direct writes on the tree: refused in production unless --break-glass.
    let refused = cli_as(&tree, "alice", &["--env", "production", "set", "api.timeout", "42"]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("open a change request"), "{}", stderr(&refused));
    let refused = cli_as(&tree, "alice", &["--env", "production", "unset", "api.timeout"]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    cli_ok(&tree, "alice", &["--env", "production", "set", "api.timeout", "42", "--break-glass", "--reason", "pager"]);
    cli_ok(&tree, "alice", &["--env", "staging", "set", "api.timeout", "43"]);
    let recorded = cli_ok(&tree, "alice", &["--env", "production", "--format", "json", "history", "--limit", "1"]);
    assert!(recorded.contains("break-glass: pager"), "{recorded}");
    assert_eq!(cli_ok(&tree, "alice", &["--env", "production", "get", "api.timeout"]).trim(), "42");
    // Releasing an override and rolling back are direct writes too (a dry run is not).
    let refused = cli_as(&tree, "alice", &["--env", "production", "overrides", "release", "api.timeout"]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    let refused = cli_as(&tree, "alice", &["--env", "production", "rollback", "0"]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    cli_ok(&tree, "alice", &["--env", "production", "rollback", "0", "--dry-run"]);
    assert_eq!(cli_ok(&tree, "alice", &["--env", "production", "get", "api.timeout"]).trim(), "42");
    cli_ok(&tree, "alice", &["--env", "production", "overrides", "release", "api.timeout", "--break-glass"]);
    assert_ne!(cli_ok(&tree, "alice", &["--env", "production", "get", "api.timeout"]).trim(), "42");
}

#[test]
fn an_invalid_draft_is_refused_naming_the_view_and_the_key() {
    let tree = tree();
    let editor = token(&tree, "editor", "editor", "production");
    let server = serve(&tree);
    // Valid for the production view (minimum 1), not for production/api_service (maximum 100).
    let (status, refused) = draft(&server, &editor, "production", "Too slow", json!({"api": {"timeout": 500}}));
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("invalid")), "{refused}");
    let text = refused["error"]["issues"].to_string();
    assert!(text.contains("api_service") && text.contains("api.timeout"), "{refused}");
    let (status, listed) = server.call_as(&editor, "GET", "/v1/changes", None);
    assert_eq!(status, 200);
    assert_eq!(listed["requests"], json!([]), "nothing was drafted");
    drop(server);
    let refused = cli_as(&tree, "alice", &["--env", "production", "change", "create", "api.timeout=500", "--title", "Too slow"]);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("production/api_service: api.timeout"), "{}", stderr(&refused));
}

#[test]
fn a_draft_whose_key_moved_is_refused_and_one_whose_base_moved_elsewhere_is_rebased() {
    let tree = tree();
    let created = cli_ok(&tree, "alice", &["--env", "staging", "change", "create", "api.timeout=45", "--title", "Timeout"]);
    assert!(created.contains("change request 1 drafted in staging"), "{created}");
    assert!(created.contains("api.timeout: 30 -> 45"), "{created}");
    cli_ok(&tree, "alice", &["--env", "staging", "change", "create", "api.rate_limit=200", "--title", "Rate"]);
    // Someone moves request 1's key, then an unrelated key: request 2's base moved, not its key.
    cli_ok(&tree, "carol", &["--env", "staging", "set", "api.timeout", "50"]);
    cli_ok(&tree, "carol", &["--env", "staging", "set", "db.pool", "8"]);

    let shown = cli_ok(&tree, "bob", &["change", "show", "1"]);
    assert!(shown.contains("conflict: `api.timeout` changed"), "{shown}");
    let refused = cli_as(&tree, "bob", &["change", "approve", "1"]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("`api.timeout`") && stderr(&refused).contains("changed after its base"), "{}", stderr(&refused));
    assert_eq!(cli_ok(&tree, "bob", &["--env", "staging", "get", "api.timeout"]).trim(), "50", "nothing published");

    let shown = cli_ok(&tree, "bob", &["--format", "json", "change", "show", "2"]);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["rebased"], true, "{shown}");
    assert_eq!(shown["conflicts"], json!([]), "{shown}");
    assert_eq!(shown["diff"], json!([{"key": "api.rate_limit", "current": 100, "proposed": 200}]), "{shown}");
    let approved = cli_ok(&tree, "bob", &["change", "approve", "2"]);
    assert!(approved.contains("approved and published as version"), "{approved}");
    assert_eq!(cli_ok(&tree, "bob", &["--env", "staging", "get", "api.rate_limit"]).trim(), "200");
    assert_eq!(cli_ok(&tree, "bob", &["--env", "staging", "get", "db.pool"]).trim(), "8", "the rebased publication keeps the other change");
    let records = cli_ok(&tree, "bob", &["--env", "staging", "--format", "json", "history", "--limit", "1"]);
    assert!(records.contains("change request 2 \\\"Rate\\\" by cli:alice, approved by cli:bob"), "{records}");
}

#[test]
fn rejection_and_withdrawal_end_a_request_and_change_nothing() {
    let tree = tree();
    let alice = token(&tree, "alice", "editor", "production");
    let bob = token(&tree, "bob", "publisher", "production");
    let server = serve(&tree);
    let (_, first) = draft(&server, &alice, "production", "First", json!({"api": {"timeout": 45}}));
    let (_, second) = draft(&server, &alice, "production", "Second", json!({"api": {"rate_limit": null, "timeout": 46}}));
    let (first, second) = (first["id"].as_u64().unwrap(), second["id"].as_u64().unwrap());

    let (status, refused) = server.call_as(&bob, "POST", &format!("/v1/changes/{first}/reject"), Some(json!({"reason": ""})));
    assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("incomplete_change")), "{refused}");
    let (status, rejected) = server.call_as(&bob, "POST", &format!("/v1/changes/{first}/reject"), Some(json!({"reason": "not during the sale"})));
    assert_eq!(status, 200, "{rejected}");
    assert_eq!(rejected["state"], "rejected");
    assert_eq!(rejected["timeline"][1]["note"], "not during the sale");
    let (status, refused) = server.call_as(&bob, "POST", &format!("/v1/changes/{second}/withdraw"), None);
    assert_eq!((status, refused["error"]["code"].as_str()), (403, Some("not_author")), "{refused}");
    let (status, withdrawn) = server.call_as(&alice, "POST", &format!("/v1/changes/{second}/withdraw"), None);
    assert_eq!(status, 200, "{withdrawn}");
    assert_eq!(withdrawn["state"], "withdrawn");
    let (status, closed) = server.call_as(&bob, "POST", &format!("/v1/changes/{first}/approve"), None);
    assert_eq!((status, closed["error"]["code"].as_str()), (409, Some("change_closed")), "{closed}");

    assert_eq!(value(&server, &alice, "production", "api.timeout"), 30);
    assert_eq!(value(&server, &alice, "production", "api.rate_limit"), 100);
    let ids = |query: &str| {
        let (status, listed) = server.call_as(&alice, "GET", &format!("/v1/changes{query}"), None);
        assert_eq!(status, 200, "{listed}");
        listed["requests"].as_array().unwrap().iter().map(|request| (request["id"].as_u64().unwrap(), request["state"].as_str().unwrap().to_owned())).collect::<Vec<_>>()
    };
    assert_eq!(ids("?env=production&state=rejected"), [(first, "rejected".to_owned())]);
    assert_eq!(ids("?state=withdrawn"), [(second, "withdrawn".to_owned())]);
    assert_eq!(ids("").len(), 2);
    let (status, _) = server.call_as(&alice, "GET", "/v1/changes?env=staging", None);
    assert_eq!(status, 403, "staging is outside alice's token");
    drop(server);
    let listed = cli_ok(&tree, "alice", &["change", "list"]);
    assert!(listed.contains("rejected") && listed.contains("withdrawn") && listed.contains("First"), "{listed}");
    let listed = cli_ok(&tree, "alice", &["--env", "production", "change", "list", "--status", "withdrawn"]);
    assert!(listed.contains("Second") && !listed.contains("First"), "{listed}");
}

#[test]
fn the_cli_needs_a_second_person_too() {
    let tree = tree();
    cli_ok(&tree, "alice", &["--env", "production", "change", "create", "api.timeout=45", "--title", "Slower"]);
    let refused = cli_as(&tree, "alice", &["change", "approve", "1"]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("`cli:alice` drafted it and cannot approve it"), "{}", stderr(&refused));
    assert_eq!(cli_ok(&tree, "alice", &["--env", "production", "get", "api.timeout"]).trim(), "30");
    cli_ok(&tree, "bob", &["change", "approve", "1"]);
    assert_eq!(cli_ok(&tree, "alice", &["--env", "production", "get", "api.timeout"]).trim(), "45");
    // A server on the same state lists what the CLI did.
    let admin = token(&tree, "admin", "admin", "*");
    let server = serve(&tree);
    let (status, shown) = server.call_as(&admin, "GET", "/v1/changes/1", None);
    assert_eq!(status, 200, "{shown}");
    assert_eq!((shown["state"].as_str(), shown["author"].as_str(), shown["approver"].as_str()), (Some("published"), Some("cli:alice"), Some("cli:bob")));
}

#[test]
fn init_requires_review_in_production_and_a_malformed_policy_names_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("config");
    let root_text = root.to_str().unwrap();
    assert!(potter(&["init", root_text, "--template", "minimal"]).status.success());
    let policy = std::fs::read_to_string(root.join("policy.toml")).unwrap();
    assert!(policy.contains("[environments.production]\nreview = \"required\""), "{policy}");
    assert!(potter(&["--root", root_text, "validate"]).status.success());
    let refused = potter(&["--root", root_text, "--env", "production", "set", "anything", "1"]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("requires review"), "{}", stderr(&refused));

    std::fs::write(root.join("policy.toml"), "[environments.production]\nreview = \"sometimes\"\n").unwrap();
    let invalid = potter(&["--root", root_text, "validate"]);
    assert_eq!(invalid.status.code(), Some(3));
    assert!(stderr(&invalid).contains("policy.toml:2:10: `review` must be \"required\" or \"optional\""), "{}", stderr(&invalid));
    let invalid = potter(&["--root", root_text, "--env", "staging", "set", "anything", "1"]);
    assert!(stderr(&invalid).contains("policy.toml:2:10:"), "a write cannot tell what the policy wants: {}", stderr(&invalid));
    std::fs::write(root.join("policy.toml"), "[environments.production\n").unwrap();
    let invalid = potter(&["--root", root_text, "validate"]);
    assert!(stderr(&invalid).contains("policy.toml:1:"), "{}", stderr(&invalid));
}
