//! Every view is validated, users' included: a bad user file, or a change that breaks only a user's
//! view, is refused with that view named — at load, reload, write and rollback.

use crate::common;

use common::{potter_example, stdout, Tree};
use potter_config::{timeline, ChangeOrigin, ConfigHost, Error, Options, SetRequest};
use potter_engine::{Issue, Severity};
use serde_json::json;

fn example() -> Tree {
    Tree::copy_of("examples/potter")
}

fn options(tree: &Tree, history: bool) -> Options {
    let mut options = Options::new(tree.root());
    options.env_vars = Some(common::demo_keys());
    options.history = history;
    options
}

fn error_views(error: Error) -> Vec<String> {
    match error {
        Error::Invalid(report) => report.issues().filter(|i| i.severity == Severity::Error).map(|i| i.view.as_ref().unwrap().to_string()).collect(),
        other => panic!("expected a validation refusal, got {other}"),
    }
}

#[test]
fn a_user_file_that_breaks_the_global_schema_is_refused_in_each_of_that_users_views() {
    let tree = example();
    tree.write("users/alice.json", r#"{"theme": {"default": "solarized"}, "api": {"rate_limit": 5000}}"#);
    let root = tree.root().to_str().unwrap().to_owned();
    let output = potter_example(&["--root", &root, "validate"]);
    assert_eq!(output.status.code(), Some(3), "{}", stdout(&output));
    let text = stdout(&output);
    assert!(text.contains("production@alice: api.rate_limit = 5000 at users/alice.json:1:59 — must be ≤ 1000"), "{text}");
    // A user's file is above the service files, so alice's value wins in every service view too.
    assert!(text.contains("production/api_service@alice: api.rate_limit = 5000"), "{text}");
    assert!(!text.contains("@bob"), "bob's views are untouched: {text}");
    // The host never serves the user's view with the refused value.
    let get = potter_example(&["--root", &root, "get", "--user", "alice", "api.rate_limit"]);
    assert!(!get.status.success(), "{}", stdout(&get));
}

#[test]
fn a_user_value_that_only_a_service_schema_refuses_is_refused_in_that_service_and_user_view() {
    let tree = example();
    // theme_service's schema closes `theme` (additionalProperties: false); the global schema doesn't.
    tree.write("users/alice.json", r#"{"theme": {"default": "solarized", "sparkle": true}}"#);
    let (_, report) = ConfigHost::inspect(&options(&tree, false)).unwrap();
    let errors: Vec<&Issue> = report.issues().filter(|i| i.severity == Severity::Error).collect();
    assert!(!errors.is_empty());
    for issue in &errors {
        let view = issue.view.as_ref().unwrap();
        assert_eq!((view.service.as_deref(), view.user.as_deref()), (Some("theme_service"), Some("alice")), "{issue}");
        assert_eq!(issue.source.as_ref().unwrap().file, "users/alice.json");
    }
    assert_eq!(errors.len(), 3, "one per environment: {errors:?}");
}

#[test]
fn an_issue_the_base_view_already_has_is_reported_once_not_per_user() {
    let tree = example();
    let file = tree.root().join("environments/production.json");
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replace("\"rate_limit\": 600", "\"rate_limit\": 5000")).unwrap();
    let (_, report) = ConfigHost::inspect(&options(&tree, false)).unwrap();
    let views: Vec<String> = report.issues().filter(|i| i.severity == Severity::Error).map(|i| i.view.as_ref().unwrap().to_string()).collect();
    assert!(views.iter().any(|v| v == "production"), "{views:?}");
    assert!(views.iter().all(|v| !v.contains('@')), "the users inherit it silently: {views:?}");
    assert!(report.views.iter().any(|v| v.view.user.is_some()), "user views are in the report");
}

#[test]
fn a_reload_that_breaks_a_users_view_is_refused_and_the_user_keeps_the_old_value() {
    let tree = example();
    let host = ConfigHost::open(options(&tree, false)).unwrap();
    let alice = host.view("production", Some("theme_service"), Some("alice")).unwrap();
    assert_eq!(alice.get::<u32>("theme.font_size").unwrap(), 16);
    tree.write("users/alice.json", r#"{"theme": {"default": "solarized", "font_size": 100}}"#);
    let views = error_views(host.reload().unwrap_err());
    assert!(views.contains(&"production/theme_service@alice".to_owned()), "{views:?}");
    assert_eq!(alice.get::<u32>("theme.font_size").unwrap(), 16, "the live snapshot stays");
}

/// A rule across two keys: a write can be valid for every view without a user and break one
/// user's, whose own file sets the other key.
fn font_rule(view: &potter_engine::View) -> Vec<Issue> {
    let (Some(size), Some(max)) = (view.get("theme.font_size").and_then(|v| v.as_u64()), view.get("ui.max_font").and_then(|v| v.as_u64())) else {
        return Vec::new();
    };
    if size > max {
        vec![Issue::error("theme.font_size", format!("{size} is larger than ui.max_font ({max})"), "native:font")]
    } else {
        Vec::new()
    }
}

#[test]
fn a_write_or_a_rollback_that_breaks_only_a_users_view_is_refused_naming_it() {
    let tree = example();
    let host = ConfigHost::open_with(options(&tree, true), |checks| checks.add_custom_validator("font", font_rule)).unwrap();
    let request = || SetRequest::new(ChangeOrigin::Api, "tester");
    // bob's 18 and alice's 16 both fit under 20.
    let fits = host.set_with("production", "ui.max_font", json!(20), request()).unwrap().version();
    // 15 fits the base views (14) but not alice (16) nor bob (18).
    let views = error_views(host.set_with("production", "ui.max_font", json!(15), request()).unwrap_err());
    assert!(views.iter().any(|v| v.ends_with("@alice")) && views.iter().any(|v| v.ends_with("@bob")), "{views:?}");
    assert!(views.iter().all(|v| v.contains('@')), "only user views break: {views:?}");
    assert_eq!(host.view("production", None, None).unwrap().get::<u32>("ui.max_font").unwrap(), 20);

    // A later value that fits everyone, then a rollback to a version only the users' files break.
    host.set_with("production", "ui.max_font", json!(30), request()).unwrap();
    tree.write("users/alice.json", r#"{"theme": {"default": "solarized", "font_size": 25}}"#);
    host.reload().unwrap();
    let views = error_views(timeline::rollback(&host, "production", fits, request(), true).unwrap_err());
    assert!(views.iter().all(|v| v.ends_with("@alice")) && !views.is_empty(), "{views:?}");
    assert_eq!(host.view("production", None, Some("alice")).unwrap().get::<u32>("ui.max_font").unwrap(), 30);
}
