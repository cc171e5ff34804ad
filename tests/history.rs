//! History, runtime overrides and rollback through the real `potter-config` binary and a real
//! SQLite file (`<state>/history.db`), plus library-level checks of a locked database.

use crate::common;

use std::process::Output;

use common::{demo_keys, stderr, stdout, Tree};
use serde_json::Value;

const PLANTED: &str = "sk-planted-PLAINTEXT-4242-do-not-store";

/// The real binary with the example's demo keyrings in its environment.
fn potter_with_keys(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let keys = demo_keys();
    let mut all: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(env);
    common::potter_with(args, &all, stdin)
}

/// The example tree (schemas, secrets, three environments) in a temporary directory.
fn example() -> Tree {
    Tree::copy_of("examples/potter")
}

fn run(tree: &Tree, env: &str, args: &[&str]) -> Output {
    run_stdin(tree, env, args, None)
}

fn run_stdin(tree: &Tree, env: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let root = tree.root();
    let mut all = vec!["--root", root.to_str().unwrap(), "--env", env];
    all.extend_from_slice(args);
    potter_with_keys(&all, &[("USER", "alice")], stdin)
}

/// Every environment's records, newest first, as JSON (no `--env`: history lists them all).
fn history_json(tree: &Tree, extra: &[&str]) -> Vec<Value> {
    let root = tree.root();
    let mut args = vec!["--root", root.to_str().unwrap(), "history", "--format", "json"];
    args.extend_from_slice(extra);
    let output = potter_with_keys(&args, &[], None);
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_str::<Value>(&stdout(&output)).unwrap().as_array().unwrap().clone()
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "exit {:?}\nstdout: {}\nstderr: {}", output.status.code(), stdout(&output), stderr(&output));
    stdout(&output)
}

fn rate_limit(tree: &Tree) -> String {
    ok(run(tree, "production", &["get", "api.rate_limit", "--format", "json"])).trim().to_owned()
}

fn json(output: Output) -> Value {
    serde_json::from_str(&ok(output)).unwrap()
}

#[test]
fn an_override_set_in_one_process_is_served_by_the_next_and_recorded_with_its_actor() {
    let tree = example();
    let said = ok(run(&tree, "production", &["set", "api.rate_limit", "700", "--reason", "the sale"]));
    assert!(said.contains("version 1"), "{said}");
    assert_eq!(rate_limit(&tree), "700");

    let records = history_json(&tree, &[]);
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record["version"], 1);
    assert_eq!(record["actor"], "cli:alice");
    assert_eq!(record["origin"], "cli");
    assert_eq!(record["env"], "production");
    assert_eq!(record["reason"], "the sale");
    let keys: Vec<&str> = record["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert!(keys.contains(&"api.rate_limit"), "{keys:?}");
    assert!(keys.contains(&"api_service:api.rate_limit") || keys.iter().any(|k| k.ends_with(":api.rate_limit")), "{keys:?}");
}

#[test]
fn unset_brings_back_the_file_value_as_a_new_version() {
    let tree = example();
    ok(run(&tree, "production", &["set", "api.rate_limit", "700"]));
    let said = ok(run(&tree, "production", &["unset", "api.rate_limit"]));
    assert!(said.contains("version 2"), "{said}");
    assert_eq!(rate_limit(&tree), "600");
    let records = history_json(&tree, &["--key", "api.rate"]);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["version"], 2);
}

#[test]
fn history_filters_by_environment_actor_and_limit() {
    let tree = example();
    ok(run(&tree, "production", &["set", "api.rate_limit", "700"]));
    ok(run(&tree, "staging", &["set", "api.timeout", "9"]));
    let root = tree.root();
    let staging = json(potter_with_keys(&["--root", root.to_str().unwrap(), "--env", "staging", "history", "--format", "json"], &[], None));
    assert_eq!(staging.as_array().unwrap().len(), 1);
    assert_eq!(staging[0]["env"], "staging");
    assert_eq!(history_json(&tree, &["--actor", "cli:alice"]).len(), 2);
    assert_eq!(history_json(&tree, &["--actor", "cli:bob"]).len(), 0);
    assert_eq!(history_json(&tree, &["--limit", "1"]).len(), 1);
    assert_eq!(history_json(&tree, &["--since", "1h"]).len(), 2);
    assert_eq!(history_json(&tree, &["--since", "2999-01-01T00:00:00Z"]).len(), 0);
    let text = ok(potter_with_keys(&["--root", root.to_str().unwrap(), "history"], &[], None));
    assert!(text.contains("cli:alice") && text.contains("api.rate_limit"), "{text}");
}

#[test]
fn a_stale_if_version_is_a_conflict_with_exit_4_and_changes_nothing() {
    let tree = example();
    ok(run(&tree, "production", &["set", "api.rate_limit", "700"]));
    ok(run(&tree, "production", &["set", "api.rate_limit", "800", "--if-version", "1"]));
    let refused = run(&tree, "production", &["set", "api.rate_limit", "900", "--if-version", "1"]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("conflict on `api.rate_limit`"), "{}", stderr(&refused));
    assert_eq!(rate_limit(&tree), "800");
    assert_eq!(history_json(&tree, &[]).len(), 2);
    // A subtree counts: `api` changed at version 2.
    let refused = run(&tree, "production", &["set", "api", r#"{"rate_limit": 10, "timeout": 1}"#, "--if-version", "1"]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    ok(run(&tree, "production", &["set", "api.rate_limit", "900", "--if-version", "2"]));
}

#[test]
fn a_set_that_fails_validation_exits_3_with_the_issue_and_records_nothing() {
    let tree = example();
    let refused = run(&tree, "production", &["set", "api.rate_limit", "5000"]);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("rate_limit"), "{}", stderr(&refused));
    assert_eq!(rate_limit(&tree), "600");
    assert!(history_json(&tree, &[]).is_empty());
}

#[test]
fn history_show_prints_each_key_before_and_after() {
    let tree = example();
    ok(run(&tree, "production", &["set", "api.rate_limit", "700"]));
    let root = tree.root();
    let record = json(potter_with_keys(&["--root", root.to_str().unwrap(), "history", "show", "1", "--format", "json"], &[], None));
    let change = record["changes"].as_array().unwrap().iter().find(|c| c["key"] == "api.rate_limit").unwrap().clone();
    assert_eq!((change["before"].clone(), change["after"].clone()), (Value::from(600), Value::from(700)));
    assert_eq!(record["overrides"][0]["set"], "api.rate_limit");
    let text = ok(potter_with_keys(&["--root", root.to_str().unwrap(), "history", "show", "1"], &[], None));
    assert!(text.contains("api.rate_limit: 600 -> 700"), "{text}");
    let missing = potter_with_keys(&["--root", root.to_str().unwrap(), "history", "show", "99"], &[], None);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn diff_shows_the_effective_view_at_two_versions() {
    let tree = example();
    ok(run(&tree, "production", &["set", "api.rate_limit", "700"]));
    ok(run(&tree, "production", &["set", "logging.level", "\"DEBUG\""]));
    let document = json(run(&tree, "production", &["diff", "0", "2", "--format", "json"]));
    let changes = document["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[0]["key"], "api.rate_limit");
    assert_eq!((changes[0]["from"].clone(), changes[0]["to"].clone()), (Value::from(600), Value::from(700)));
    assert_eq!(document["a"]["config"]["logging"]["level"], "WARNING");
    assert_eq!(document["b"]["config"]["logging"]["level"], "DEBUG");
    // Secrets stay redacted in both configurations.
    assert_eq!(document["a"]["config"]["llm_providers"]["openai"]["api_key"], "<redacted>");
    let one_to_two = json(run(&tree, "production", &["diff", "1", "2", "--format", "json"]));
    assert_eq!(one_to_two["changes"].as_array().unwrap().len(), 1);
    // A service view is reconstructed from its own recorded keys.
    let service = json(run(&tree, "production", &["--service", "api_service", "diff", "0", "1", "--format", "json"]));
    assert!(!service["changes"].as_array().unwrap().is_empty() || service["a"]["config"] == service["b"]["config"]);
    let beyond = run(&tree, "production", &["diff", "0", "9"]);
    assert_eq!(beyond.status.code(), Some(1), "{}", stderr(&beyond));
}

#[test]
fn rollback_shows_the_diff_and_applies_old_content_as_a_new_version() {
    let tree = example();
    ok(run(&tree, "production", &["set", "api.rate_limit", "700"]));
    ok(run(&tree, "production", &["set", "api.rate_limit", "800"]));
    let dry = ok(run(&tree, "production", &["rollback", "1", "--dry-run"]));
    assert!(dry.contains("api.rate_limit: 800 -> 700"), "{dry}");
    assert_eq!(rate_limit(&tree), "800");
    let applied = ok(run(&tree, "production", &["rollback", "1"]));
    assert!(applied.contains("applied as version 3"), "{applied}");
    assert_eq!(rate_limit(&tree), "700");
    let newest = &history_json(&tree, &[])[0];
    assert_eq!((newest["version"].clone(), newest["origin"].clone()), (Value::from(3), Value::from("rollback")));
    // Back to before any override: the file's value (the override is released, nothing pinned).
    ok(run(&tree, "production", &["rollback", "0"]));
    assert_eq!(rate_limit(&tree), "600");
}

#[test]
fn a_rollback_whose_content_fails_todays_validation_is_refused_with_the_issues() {
    let tree = example();
    ok(run(&tree, "production", &["set", "api.rate_limit", "5"]));
    ok(run(&tree, "production", &["set", "api.rate_limit", "700"]));
    let schema_file = tree.root().join("schemas/global_schema.json");
    let schema = std::fs::read_to_string(&schema_file).unwrap();
    let tightened = schema.replacen("\"minimum\": 1,\n          \"maximum\": 1000", "\"minimum\": 10,\n          \"maximum\": 1000", 1);
    assert_ne!(schema, tightened);
    std::fs::write(&schema_file, tightened).unwrap();
    let refused = run(&tree, "production", &["rollback", "1"]);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("rate_limit"), "{}", stderr(&refused));
    let dry = run(&tree, "production", &["rollback", "1", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(3));
    assert_eq!(rate_limit(&tree), "700");
    assert_eq!(history_json(&tree, &[]).len(), 2);
}

#[test]
fn prune_keeps_the_audit_lines_and_drops_old_values() {
    let tree = example();
    for value in ["700", "800", "900"] {
        ok(run(&tree, "production", &["set", "api.rate_limit", value]));
    }
    let said = ok(run(&tree, "production", &["history", "prune", "--keep-versions", "1"]));
    assert!(said.contains("up to version 2"), "{said}");
    let records = history_json(&tree, &[]);
    assert_eq!(records.len(), 3);
    assert_eq!((records[0]["pruned"].clone(), records[2]["pruned"].clone()), (Value::Bool(false), Value::Bool(true)));
    let show = ok(run(&tree, "production", &["history", "show", "1"]));
    assert!(show.contains("values pruned") && show.contains("api.rate_limit"), "{show}");
    let undo = run(&tree, "production", &["diff", "0", "3"]);
    assert!(!undo.status.success());
    assert!(stderr(&undo).contains("pruned"), "{}", stderr(&undo));
    let usage = run(&tree, "production", &["history", "prune"]);
    assert_eq!(usage.status.code(), Some(2));
}

fn database_bytes(tree: &Tree) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(mut data) = std::fs::read(tree.state().join(format!("history.db{suffix}"))) {
            bytes.append(&mut data);
        }
    }
    assert!(!bytes.is_empty());
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[test]
fn a_secret_set_as_an_override_never_reaches_the_database_in_plaintext_and_rolls_back() {
    let tree = example();
    let key = "llm_providers.openai.api_key";
    let original = ok(run(&tree, "production", &["get", key, "--reveal"])).trim().to_owned();
    assert!(!original.is_empty() && !original.starts_with("enc:"));
    let ciphertext = ok(run_stdin(&tree, "production", &["secrets", "encrypt", "--key", key], Some(PLANTED))).trim().to_owned();
    assert!(ciphertext.starts_with("enc:v1:"), "{ciphertext}");

    ok(run(&tree, "production", &["set", key, &ciphertext]));
    assert_eq!(ok(run(&tree, "production", &["get", key, "--reveal"])).trim(), PLANTED);
    let root = tree.root();
    let shown = ok(potter_with_keys(&["--root", root.to_str().unwrap(), "history", "show", "1"], &[], None));
    assert!(shown.contains(&format!("{key}: \"<redacted>\" -> \"<redacted>\"")), "{shown}");
    assert!(!shown.contains(PLANTED) && !shown.contains(&original));

    ok(run(&tree, "production", &["rollback", "0"]));
    assert_eq!(ok(run(&tree, "production", &["get", key, "--reveal"])).trim(), original);

    let bytes = database_bytes(&tree);
    assert!(!contains(&bytes, PLANTED), "the planted plaintext is in history.db");
    assert!(!contains(&bytes, &original), "the file's secret plaintext is in history.db");
}

#[test]
fn a_secret_changed_in_a_file_and_reloaded_is_recorded_sealed() {
    let tree = example();
    let options = library_options(&tree);
    let host = potter_config::ConfigHost::open(options).unwrap();
    let key = "llm_providers.anthropic.api_key";
    let ciphertext = ok(run_stdin(&tree, "production", &["secrets", "encrypt", "--key", key], Some(PLANTED))).trim().to_owned();
    let file = tree.root().join("environments/production.json");
    let text = std::fs::read_to_string(&file).unwrap();
    let start = text.find("\"anthropic\"").unwrap();
    let value_start = start + text[start..].find("enc:v1:").unwrap();
    let value_end = value_start + text[value_start..].find('"').unwrap();
    std::fs::write(&file, format!("{}{}{}", &text[..value_start], ciphertext, &text[value_end..])).unwrap();
    let snapshot = host.reload_because(potter_config::events::Cause::new(potter_config::events::ChangeOrigin::File, "file-watch")).unwrap();
    assert_eq!(snapshot.version(), 1);
    let records = history_json(&tree, &[]);
    assert_eq!((records[0]["actor"].clone(), records[0]["origin"].clone()), (Value::from("file-watch"), Value::from("file")));
    assert!(!contains(&database_bytes(&tree), PLANTED));
}

/// An override's provenance is the history version that set it: `explain` names it in every
/// later process (each CLI call is one), and a later change of another key leaves it as it was.
#[test]
fn explain_names_the_history_version_that_set_each_override() {
    let tree = example();
    ok(run(&tree, "production", &["set", "api.rate_limit", "700"]));
    let first = history_json(&tree, &[])[0]["version"].as_u64().unwrap();
    ok(run(&tree, "production", &["set", "api.timeout", "25"]));
    let second = history_json(&tree, &[])[0]["version"].as_u64().unwrap();
    assert!(second > first);
    let explained = ok(run(&tree, "production", &["explain", "api.rate_limit"]));
    assert!(explained.contains(&format!("runtime overrides (version {first})")), "{explained}");
    let explained = ok(run(&tree, "production", &["explain", "api.timeout"]));
    assert!(explained.contains(&format!("runtime overrides (version {second})")), "{explained}");
}

/// A host names the version of an override another process recorded once it takes it in, of its
/// own change once it is live, and a typed read of the wrong type says which version set the value;
/// a dry run's proposed value is not recorded yet and says so.
#[test]
fn a_host_locates_each_override_at_its_version_in_views_and_type_errors() {
    use potter_config::{ChangeOrigin, SetRequest, ViewKey};
    let tree = example();
    let host = potter_config::ConfigHost::open(library_options(&tree)).unwrap();
    ok(run(&tree, "production", &["set", "api.rate_limit", "700"]));
    host.sync_recorded_overrides().unwrap();
    let theirs = host.snapshot().version();
    assert!(theirs > 0);
    let production = host.view("production", None, None).unwrap();
    let error = production.get::<String>("api.rate_limit").unwrap_err().to_string();
    assert!(error.contains(&format!("runtime overrides (version {theirs})")), "{error}");

    let ours = host.set("production", "api.timeout", Value::from(25)).unwrap().version();
    assert!(ours > theirs);
    let source = |snapshot: &potter_config::engine::Snapshot, key: &str| {
        snapshot.view(&ViewKey::environment("production")).unwrap().origin(key).unwrap().provenance().source
    };
    let live = host.snapshot();
    assert_eq!(source(&live, "api.timeout"), format!("runtime overrides (version {ours})"));
    assert_eq!(source(&live, "api.rate_limit"), format!("runtime overrides (version {theirs})"), "another key's change leaves it alone");

    let proposed = host.edit_overrides("production", &[("api.timeout".to_owned(), Some(Value::from(26)))], SetRequest::new(ChangeOrigin::Api, "dry"), true).unwrap();
    assert_eq!(source(&proposed, "api.timeout"), "runtime overrides (not recorded yet)");
    assert_eq!(source(&host.snapshot(), "api.timeout"), format!("runtime overrides (version {ours})"));
}

fn library_options(tree: &Tree) -> potter_config::Options {
    let mut options = potter_config::Options::new(tree.root());
    options.state_dir = tree.state();
    options.env_vars = Some(demo_keys());
    options
}

#[test]
fn a_corrupt_history_database_is_a_clear_error_and_nothing_changes() {
    let tree = example();
    std::fs::create_dir_all(tree.state()).unwrap();
    let garbage = b"this is not an SQLite database, just bytes ".repeat(200);
    std::fs::write(tree.state().join("history.db"), &garbage).unwrap();
    let refused = run(&tree, "production", &["set", "api.rate_limit", "700"]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(message.contains("history.db") && message.contains("corrupt"), "{message}");
    assert_eq!(std::fs::read(tree.state().join("history.db")).unwrap(), garbage);
}

#[test]
fn a_locked_database_refuses_the_change_and_the_running_configuration_keeps_serving() {
    let tree = example();
    let host = potter_config::ConfigHost::open(library_options(&tree)).unwrap();
    let production = host.view("production", None, None).unwrap();
    host.set("production", "api.rate_limit", Value::from(700)).unwrap();
    let version = host.snapshot().version();

    let locker = rusqlite::Connection::open(tree.state().join("history.db")).unwrap();
    // Another process holding the write lock (the host waits its busy timeout, 5 s, then gives up).
    locker.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    let error = host.set("production", "api.rate_limit", Value::from(800)).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("locked") && message.contains("history.db"), "{message}");
    assert_eq!(production.get::<u32>("api.rate_limit").unwrap(), 700);
    assert_eq!(host.snapshot().version(), version);

    locker.execute_batch("ROLLBACK;").unwrap();
    host.set("production", "api.rate_limit", Value::from(800)).unwrap();
    assert_eq!(production.get::<u32>("api.rate_limit").unwrap(), 800);
}

/// A schema tightened under an existing override makes the configuration invalid: every command
/// refuses it (naming the override and how to remove it), a change that leaves it invalid is
/// refused and not recorded, and `unset` — the repair — goes through.
#[test]
fn an_override_a_new_schema_refuses_can_still_be_unset() {
    let tree = example();
    ok(run(&tree, "staging", &["set", "api.rate_limit", "900"]));
    let schema_path = tree.root().join("schemas/global_schema.json");
    let mut schema: Value = serde_json::from_str(&std::fs::read_to_string(&schema_path).unwrap()).unwrap();
    schema["properties"]["api"]["properties"]["rate_limit"]["maximum"] = serde_json::json!(800);
    std::fs::write(&schema_path, schema.to_string()).unwrap();

    let read = run(&tree, "staging", &["get", "api.rate_limit"]);
    assert_eq!(read.status.code(), Some(3), "{}", stderr(&read));
    let said = stderr(&read);
    assert!(said.contains("api.rate_limit") && said.contains("must be ≤ 800"), "{said}");
    assert!(said.contains("`api.rate_limit` in staging is a runtime override") && said.contains("potter-config --env staging unset api.rate_limit"), "{said}");

    let versions = history_json(&tree, &[]).len();
    let unrelated = run(&tree, "staging", &["set", "api.timeout", "20"]);
    assert_eq!(unrelated.status.code(), Some(3), "a change that leaves the override invalid: {}", stderr(&unrelated));
    assert!(stderr(&unrelated).contains("this change is recorded only if every view is valid after it"), "{}", stderr(&unrelated));
    assert_eq!(history_json(&tree, &[]).len(), versions, "the refused change was recorded");

    let unset = run(&tree, "staging", &["unset", "api.rate_limit"]);
    assert!(unset.status.success(), "{}", stderr(&unset));
    assert_eq!(history_json(&tree, &[]).len(), versions + 1);
    assert_eq!(ok(run(&tree, "staging", &["get", "api.rate_limit"])), "300\n", "the files' value again");
}

/// The minimal tree (`api.timeout` 30 and `api.rate_limit` 100 in `global.json`, no schemas) with
/// production's own file holding `api.retries` and `feature.beta`.
fn plain_tree(retries: u32, feature: &str) -> Tree {
    let tree = Tree::minimal();
    tree.write("environments/production.json", &format!(r#"{{"api": {{"retries": {retries}}}, "feature": {feature}}}"#));
    tree
}

fn production_view(host: &potter_config::ConfigHost) -> Value {
    host.snapshot().view(&potter_engine::ViewKey::environment("production")).unwrap().value().clone()
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().unwrap_or_else(|| panic!("not an array: {value}")).iter().map(|item| item.as_str().unwrap()).collect()
}

/// Issue 19: a rollback pins only the keys whose value then differs from what the files give now;
/// every other override is released in the same change, and later file edits of those keys count.
#[test]
fn a_rollback_pins_only_the_keys_whose_value_then_differs_from_the_files_now() {
    let tree = plain_tree(3, r#"{"beta": false}"#);
    let host = potter_config::ConfigHost::open(library_options(&tree)).unwrap();
    // Up to the target: an override, and a file edit the running host records.
    host.set("production", "api.timeout", serde_json::json!(45)).unwrap();
    tree.write("environments/production.json", r#"{"api": {"retries": 5}, "feature": {"beta": false}}"#);
    host.reload().unwrap();
    let target = host.snapshot().version();
    let target_view = production_view(&host);
    // After it: files edited again, overrides set (one of them to what the files say anyway).
    tree.write("environments/production.json", r#"{"api": {"retries": 7}, "feature": {"beta": false, "new": true}}"#);
    host.reload().unwrap();
    host.set("production", "api.rate_limit", serde_json::json!(200)).unwrap();
    host.set("production", "api.timeout", serde_json::json!(50)).unwrap();
    host.set("production", "feature.beta", serde_json::json!(false)).unwrap();
    let before = host.snapshot().version();
    drop(host);

    let rolled = json(run(&tree, "production", &["rollback", &target.to_string(), "--format", "json"]));
    assert_eq!(rolled["outcome"], "applied", "{rolled}");
    assert_eq!(rolled["version"], before + 1, "one new version: {rolled}");
    // Differing from the files now: retries (5 then, 7 now), timeout (45, 30), feature.new (absent then).
    assert_eq!(strings(&rolled["pinned"]), ["api.retries", "api.timeout", "feature.new"], "{rolled}");
    assert_eq!(strings(&rolled["released"]), ["api.rate_limit", "feature.beta"], "{rolled}");
    let held = json(run(&tree, "production", &["overrides", "list", "--format", "json"]));
    assert_eq!(held["overrides"], serde_json::json!({"api.retries": 5, "api.timeout": 45, "feature.new": null}), "{held}");
    let now = json(run(&tree, "production", &["dump", "--format", "json"]));
    assert_eq!(now, target_view, "the view is the target version's");
    let records = history_json(&tree, &[]);
    assert_eq!((records.len() as u64, records[0]["origin"].clone()), (before + 1, Value::from("rollback")));
    let text = ok(run(&tree, "production", &["rollback", &target.to_string(), "--dry-run"]));
    assert!(text.contains("nothing to change") && text.contains("pinned as runtime overrides (the files give another value now): api.retries, api.timeout, feature.new"), "{text}");
    assert!(text.contains("release a pin with: potter-config --env production overrides release KEY"), "{text}");

    // A pinned key's explain names its override and how to release it; an unpinned key has none.
    let explained = ok(run(&tree, "production", &["explain", "api.timeout"]));
    assert!(explained.contains("pinned by the runtime override `api.timeout` of production"), "{explained}");
    assert!(explained.contains("release with: potter-config --env production overrides release api.timeout"), "{explained}");
    let explained = json(run(&tree, "production", &["explain", "api.timeout", "--format", "json"]));
    assert_eq!(explained["runtime_override"], "api.timeout", "{explained}");
    let unpinned = json(run(&tree, "production", &["explain", "api.rate_limit", "--format", "json"]));
    assert_eq!(unpinned["runtime_override"], Value::Null, "{unpinned}");

    // The point: editing an unpinned key's file takes effect; a pinned one stays pinned.
    tree.write("global.json", r#"{"api": {"timeout": 31, "rate_limit": 150}}"#);
    assert_eq!(rate_limit(&tree), "150");
    assert_eq!(ok(run(&tree, "production", &["get", "api.timeout"])).trim(), "45");
    let host = potter_config::ConfigHost::open(library_options(&tree)).unwrap();
    tree.write("environments/production.json", r#"{"api": {"retries": 7}, "feature": {"beta": true, "new": true}}"#);
    host.reload().unwrap();
    assert_eq!(common::value_in(&host, "production", "feature.beta"), Some(Value::Bool(true)), "a reload takes in the released key's file edit");
    assert_eq!(common::value_in(&host, "production", "feature.new"), None, "still pinned to absent");
}

/// An override whose key's value then equals what the files give now is released by the rollback,
/// even when the view does not change at all.
#[test]
fn a_rollback_releases_an_override_the_files_now_agree_with() {
    let tree = plain_tree(3, r#"{"beta": false}"#);
    ok(run(&tree, "production", &["set", "api.timeout", "45"]));
    tree.write("global.json", r#"{"api": {"timeout": 45, "rate_limit": 100}}"#);
    let dry = json(run(&tree, "production", &["rollback", "1", "--dry-run", "--format", "json"]));
    assert_eq!((dry["outcome"].clone(), dry["changes"].clone()), (Value::from("dry run, validates"), serde_json::json!([])), "{dry}");
    assert_eq!(strings(&dry["released"]), ["api.timeout"], "{dry}");
    let rolled = json(run(&tree, "production", &["rollback", "1", "--format", "json"]));
    assert_eq!((rolled["outcome"].clone(), rolled["version"].clone()), (Value::from("applied"), Value::from(2)), "{rolled}");
    assert!(strings(&rolled["pinned"]).is_empty(), "{rolled}");
    let record = json(run(&tree, "production", &["history", "show", "2", "--format", "json"]));
    assert_eq!((record["origin"].clone(), record["overrides"].clone()), (Value::from("rollback"), serde_json::json!([{"remove": "api.timeout"}])), "{record}");
    assert_eq!(json(run(&tree, "production", &["overrides", "list", "--format", "json"]))["overrides"], serde_json::json!({}));
    assert_eq!(ok(run(&tree, "production", &["get", "api.timeout"])).trim(), "45");
    tree.write("global.json", r#"{"api": {"timeout": 50, "rate_limit": 100}}"#);
    assert_eq!(ok(run(&tree, "production", &["get", "api.timeout"])).trim(), "50", "the key follows its file again");
}

#[test]
fn overrides_release_removes_pins_as_one_change_and_refuses_a_key_without_one() {
    let tree = plain_tree(3, r#"{"beta": false}"#);
    ok(run(&tree, "production", &["set", "api.timeout", "45"]));
    ok(run(&tree, "production", &["set", "api.rate_limit", "200"]));
    let listed = ok(run(&tree, "production", &["overrides", "list"]));
    assert!(listed.contains("api.rate_limit = 200") && listed.contains("api.timeout = 45"), "{listed}");

    let refused = run(&tree, "production", &["overrides", "release", "api.timeout", "api.retries"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("`api.retries` has no runtime override in `production`; nothing was released"), "{}", stderr(&refused));
    assert_eq!(history_json(&tree, &[]).len(), 2, "nothing recorded");
    assert_eq!(ok(run(&tree, "production", &["get", "api.timeout"])).trim(), "45");

    let said = ok(run(&tree, "production", &["overrides", "release", "api.timeout", "api.rate_limit", "--reason", "back to the files"]));
    assert_eq!(said.trim(), "released api.timeout, api.rate_limit in production (version 3)");
    let records = history_json(&tree, &[]);
    assert_eq!(records.len(), 3, "one change");
    let newest = &records[0];
    assert_eq!((newest["origin"].clone(), newest["actor"].clone(), newest["reason"].clone()), (Value::from("cli"), Value::from("cli:alice"), Value::from("back to the files")), "{newest}");
    assert_eq!(ok(run(&tree, "production", &["get", "api.timeout"])).trim(), "30");
    assert_eq!(rate_limit(&tree), "100");
    assert_eq!(ok(run(&tree, "production", &["overrides", "list"])).trim(), "no runtime overrides in production");
    let again = run(&tree, "production", &["overrides", "release", "api.timeout"]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    let usage = run(&tree, "production", &["overrides", "release"]);
    assert_eq!(usage.status.code(), Some(2), "a key is required: {}", stderr(&usage));
}

/// A key that was an object then and is a scalar in the files now (or the reverse) is pinned by
/// its leaves then alone: no `null` override is left for what those leaves replace anyway.
#[test]
fn a_rollback_across_a_change_of_shape_pins_only_the_leaves_it_had_then() {
    let roll_back_to_start = |then: &str, now: &str| {
        let tree = Tree::minimal();
        tree.write("environments/production.json", &format!(r#"{{"limits": {then}}}"#));
        let host = potter_config::ConfigHost::open(library_options(&tree)).unwrap();
        let start = host.snapshot().version();
        let view_then = production_view(&host);
        tree.write("environments/production.json", &format!(r#"{{"limits": {now}}}"#));
        host.reload().unwrap();
        let request = potter_config::runtime::SetRequest::new(potter_config::ChangeOrigin::Rollback, "test");
        let rolled = potter_config::timeline::rollback(&host, "production", start, request, false).unwrap();
        assert!(rolled.applied.is_some() && rolled.released.is_empty(), "{rolled:?}");
        assert_eq!(production_view(&host), view_then, "{then} → {now} → back");
        (rolled.pinned, host.overrides("production"))
    };
    let (pinned, held) = roll_back_to_start(r#"{"max": 1, "min": 0}"#, "5");
    assert_eq!(pinned, ["limits.max", "limits.min"]);
    assert_eq!(Value::Object(held), serde_json::json!({"limits": {"max": 1, "min": 0}}));
    let (pinned, held) = roll_back_to_start("5", r#"{"max": 1}"#);
    assert_eq!(pinned, ["limits"]);
    assert_eq!(Value::Object(held), serde_json::json!({"limits": 5}));
}
