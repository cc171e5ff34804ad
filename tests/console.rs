//! The web console in a real browser: headless Chromium (Debian's `chromium`) driven over W3C
//! WebDriver (`chromedriver`, via fantoccini) against one real `potter-config serve` on loopback.
//!
//! One server, one chromedriver and one browser session serve every test (starting Chromium is
//! the slow part), so this binary has its own runner (`harness = false` in Cargo.toml): the tests
//! run in order, each starting from a freshly loaded page (a reload signs out: the token lives in
//! the tab's memory only). Each test leaves a screenshot in `target/console-screenshots/`.
//! Arguments that do not start with `-` filter the tests by name, as with the standard harness.

mod common;

use std::cell::OnceCell;
use std::future::Future;
use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Mutex;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::etcd::EtcdCluster;
use common::loopback::{Loopback, Reply};
use common::serve::Served;
use common::wasm::{PluginTree, Signing};
use common::{potter_with, stderr, stdout, Tree, API_SCHEMA};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use potter_secrets::Keyring;
use serde_json::{json, Value};

/// A secret's plaintext: it must never reach a page that did not reveal it.
const CANARY: &str = "pw-CANARY-console-7f3a-do-not-leak";
/// A value that would run script if it were rendered as markup.
const MARKUP: &str = "<img src=x onerror=alert(1)>";
/// How long the page gets to show what the test waits for (a liveness wait, not a timing check).
const PATIENCE: Duration = Duration::from_secs(10);
/// The issue asks for a change made elsewhere to show within a second; on a loaded CI machine
/// the wait is generous, and the time it took is printed, not asserted.
const LIVE_PATIENCE: Duration = Duration::from_secs(5);

/// The `large` environment: this many groups of this many leaves.
const LARGE_GROUPS: usize = 100;
const LARGE_KEYS: usize = 100;

/// WebDriver's codes of the keys the tests press.
const ENTER: char = '\u{E007}';
const TAB: char = '\u{E004}';
const SHIFT: char = '\u{E008}';
const CONTROL: char = '\u{E009}';
/// A control further than this many Tab presses away counts as unreachable.
const MAX_TABS: usize = 80;

const ROLES: [&str; 4] = ["viewer", "editor", "secret-reader", "admin"];

type Test = fn(&Console);

const TESTS: &[(&str, Test)] = &[
    ("sign_in_shows_the_tree_with_values_and_provenance", sign_in_shows_the_tree_with_values_and_provenance),
    ("sign_in_with_each_role_offers_what_the_role_may_do", sign_in_with_each_role_offers_what_the_role_may_do),
    ("an_unknown_token_is_refused_at_sign_in", an_unknown_token_is_refused_at_sign_in),
    ("a_viewer_receives_no_secret_and_no_edit_controls", a_viewer_receives_no_secret_and_no_edit_controls),
    ("a_secret_reader_reveals_one_secret_and_it_is_audited", a_secret_reader_reveals_one_secret_and_it_is_audited),
    ("markup_in_a_value_is_shown_as_text_and_runs_no_script", markup_in_a_value_is_shown_as_text_and_runs_no_script),
    ("switching_environment_service_and_user", switching_environment_service_and_user),
    ("an_invalid_edit_shows_its_issue_inline_and_cannot_be_saved", an_invalid_edit_shows_its_issue_inline_and_cannot_be_saved),
    ("a_valid_batch_is_saved_as_one_version", a_valid_batch_is_saved_as_one_version),
    ("a_change_made_through_the_api_appears_in_the_open_page", a_change_made_through_the_api_appears_in_the_open_page),
    ("a_compare_and_set_conflict_shows_who_changed_what_and_rebases", a_compare_and_set_conflict_shows_who_changed_what_and_rebases),
    ("history_shows_a_diff_and_rolls_back_after_a_preview", history_shows_a_diff_and_rolls_back_after_a_preview),
    ("a_rejected_reload_shows_its_diagnostics", a_rejected_reload_shows_its_diagnostics),
    ("a_tree_of_ten_thousand_leaves_opens_collapsed_and_searches", a_tree_of_ten_thousand_leaves_opens_collapsed_and_searches),
    ("a_narrow_window_stacks_the_editor_under_the_tree", a_narrow_window_stacks_the_editor_under_the_tree),
    ("a_whole_edit_is_done_with_the_keyboard_alone", a_whole_edit_is_done_with_the_keyboard_alone),
    ("a_subtree_edited_as_yaml_is_validated_and_saved_as_one_version", a_subtree_edited_as_yaml_is_validated_and_saved_as_one_version),
    ("malformed_yaml_names_its_line_and_cannot_be_saved", malformed_yaml_names_its_line_and_cannot_be_saved),
    ("the_plugins_page_shows_a_refused_and_a_stale_plugin", the_plugins_page_shows_a_refused_and_a_stale_plugin),
    ("the_instances_page_lists_each_host_and_the_version_it_serves", the_instances_page_lists_each_host_and_the_version_it_serves),
    ("the_rollouts_page_shows_a_running_rollout_its_cohort_and_the_change_requests", the_rollouts_page_shows_a_running_rollout_its_cohort_and_the_change_requests),
];

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        TESTS.iter().for_each(|(name, _)| println!("{name}: test"));
        return;
    }
    let filters: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with('-')).collect();
    let selected: Vec<&(&str, Test)> = TESTS.iter().filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))).collect();
    println!("\nrunning {} tests", selected.len());
    if selected.is_empty() {
        return;
    }
    let console = Console::start();
    let mut failed = Vec::new();
    for (name, test) in selected.iter().copied() {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| test(&console)));
        console.screenshot(name);
        match outcome {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    console.close();
    if failed.is_empty() {
        println!("\ntest result: ok. {} passed", selected.len());
    } else {
        println!("\nfailures: {failed:?}\ntest result: FAILED. {} passed; {} failed", selected.len() - failed.len(), failed.len());
        std::process::exit(101);
    }
}

// ---------------------------------------------------------------------------------------------
// The tests

fn sign_in_shows_the_tree_with_values_and_provenance(console: &Console) {
    console.sign_in("admin");
    console.wait_for_text("[data-key=\"api.timeout\"] .value", "30");
    let source = console.text("[data-key=\"api.timeout\"] .source");
    assert!(source.starts_with("global.json:"), "file:line:col of api.timeout: {source}");
    let source = console.text("[data-key=\"db.host\"] .source");
    assert!(source.starts_with("environments/development.json:"), "{source}");
    // The layers behind a value (what `explain` shows), the shadowed one included.
    console.click("[data-key=\"api.timeout\"] button[aria-label=\"Layers of api.timeout\"]");
    let layers = console.wait_for("[data-key=\"api.timeout\"] table.layers").text_now(console);
    assert!(layers.contains("global") && layers.contains("(wins)"), "{layers}");
    // The first load: the page and its files (docs/CONSOLE.md states the size); js-yaml only on demand.
    let files = console.script(
        "return [performance.getEntriesByType('navigation')[0], ...performance.getEntriesByType('resource')]
           .filter((e) => { const path = new URL(e.name).pathname; return path === '/' || path.startsWith('/console/'); })
           .map((e) => [new URL(e.name).pathname, e.transferSize])",
    );
    let files = files.as_array().unwrap();
    assert!(files.iter().all(|file| !file[0].as_str().unwrap().contains("js-yaml")), "{files:?}");
    let bytes: u64 = files.iter().map(|file| file[1].as_u64().unwrap_or(0)).sum();
    println!("    (first load: {} files, {bytes} bytes transferred)", files.len());
}

fn sign_in_with_each_role_offers_what_the_role_may_do(console: &Console) {
    // A version in the history, so that the timeline offers something to roll back to.
    let (status, body) = console.api("PUT", "/v1/config/development/ui.motd", "admin", Some(json!({"value": "hello"})));
    assert_eq!(status, 200, "{body}");
    for role in ROLES {
        console.sign_in(role);
        let who = console.text("#who");
        assert!(who.contains(&format!("({role})")), "{role}: {who}");
        let may_write = matches!(role, "editor" | "admin");
        let may_reveal = matches!(role, "secret-reader" | "admin");
        assert_eq!(console.exists("button.edit"), may_write, "{role}: edit buttons");
        assert_eq!(console.exists("button[aria-label^=\"Edit subtree\"]"), may_write, "{role}: subtree editing");
        assert_eq!(console.exists("button.reveal"), may_reveal, "{role}: reveal button");
        console.click("#tab-history");
        console.wait_for("#timeline li");
        assert_eq!(console.exists("button[aria-label^=\"Roll back\"]"), role == "admin", "{role}: rollback");
    }
}

fn an_unknown_token_is_refused_at_sign_in(console: &Console) {
    console.open();
    console.type_into("#token", "pct_not-a-token");
    console.click("#signin button[type=submit]");
    let error = console.wait_for("#signin-error").text_now(console);
    assert!(error.contains("not valid"), "{error}");
    assert!(!console.exists("#who"));
}

fn a_viewer_receives_no_secret_and_no_edit_controls(console: &Console) {
    console.sign_in("viewer");
    console.wait_for_text("[data-key=\"db.password\"] .value", "•••••• (secret)");
    // The layers of the secret as a viewer may see them: redacted by the server.
    console.click("button[aria-label=\"Layers of db.password\"]");
    console.wait_for("[data-key=\"db.password\"] table.layers");
    assert!(!console.exists("button.edit") && !console.exists("button.reveal") && !console.exists("#editor"));
    let page = console.source();
    assert!(!page.contains(CANARY), "the viewer's DOM holds the secret");
    // Every response the page fetched, asked again with the viewer's token: none holds the secret.
    let fetched = console.fetched_urls();
    assert!(fetched.iter().any(|url| url.contains("/v1/console/tree/development")), "{fetched:?}");
    assert!(fetched.iter().any(|url| url.contains("/v1/explain/development/db.password")), "{fetched:?}");
    for url in fetched.iter().filter(|url| !url.contains("/v1/watch/")) {
        let (status, body) = console.api_raw("GET", url, "viewer", None, &[]);
        assert!(!body.contains(CANARY), "{url} ({status}) answers the viewer with the secret");
    }
    // And the server refuses the reveal to a viewer whatever the page offers.
    let (status, body) = console.api("POST", "/v1/console/reveal/development/db.password", "viewer", None);
    assert_eq!(status, 403, "{body}");
}

fn a_secret_reader_reveals_one_secret_and_it_is_audited(console: &Console) {
    console.sign_in("secret-reader");
    console.wait_for_text("[data-key=\"db.password\"] .value", "•••••• (secret)");
    assert!(!console.source().contains(CANARY), "the secret is in the DOM before the click");
    console.click("button.reveal[aria-label=\"Reveal secret db.password\"]");
    console.wait_for_text("[data-key=\"db.password\"] .value", &format!("\"{CANARY}\""));
    let (status, audit) = console.api("GET", "/v1/audit?limit=20", "admin", None);
    assert_eq!(status, 200, "{audit}");
    let revealed = audit["entries"].as_array().unwrap().iter().any(|entry| {
        entry["actor"].as_str().unwrap().contains("secret-reader")
            && entry["route"].as_str().unwrap().starts_with("/v1/console/reveal/")
            && entry["key"] == "db.password"
            && entry["outcome"].as_str().unwrap().contains("revealed")
    });
    assert!(revealed, "no audit record of the reveal: {audit}");
}

fn markup_in_a_value_is_shown_as_text_and_runs_no_script(console: &Console) {
    console.open();
    // Anything that would run script would call alert: count the calls (WebDriver's own script
    // is not subject to the page's CSP).
    console.script("window.__alerts = []; window.alert = (text) => window.__alerts.push(String(text));");
    console.sign_in_here("admin");
    console.wait_for_text("[data-key=\"ui.banner\"] .value", &format!("\"{MARKUP}\""));
    console.click("[data-key=\"ui.banner\"] button[aria-label=\"Layers of ui.banner\"]");
    console.wait_for("[data-key=\"ui.banner\"] table.layers");
    console.click("[data-key=\"ui.banner\"] button.edit");
    console.wait_for("#draft");
    std::thread::sleep(Duration::from_millis(300)); // an onerror handler would have fired by now
    assert_eq!(console.script("return document.querySelectorAll('img').length"), json!(0), "the value became an element");
    assert_eq!(console.script("return window.__alerts.length"), json!(0), "script ran");
    let escaped = console.script("return document.querySelector('[data-key=\"ui.banner\"] .value').innerHTML");
    assert!(escaped.as_str().unwrap().contains("&lt;img"), "{escaped}");
    console.click("#editor button:not(.primary)");
}

fn switching_environment_service_and_user(console: &Console) {
    console.sign_in("admin");
    console.wait_for_text("[data-key=\"db.host\"] .value", "\"dev-db.internal\"");
    console.select("#environment", "staging");
    console.wait_for_text("[data-key=\"db.host\"] .value", "\"staging-db.internal\"");
    assert!(!console.exists("[data-key=\"db.password\"]"), "development's secret shown in staging");
    console.select("#service", "api_service");
    console.wait_for_text("[data-key=\"api.timeout\"] .value", "45");
    let source = console.text("[data-key=\"api.timeout\"] .source");
    assert!(source.starts_with("services/api_service.json:"), "{source}");
    console.wait_for_contains(".tree-tools", "staging/api_service");
    console.select("#user", "alice");
    console.wait_for_text("[data-key=\"ui.theme\"] .value", "\"dark\"");
    console.select("#service", "");
    console.select("#user", "");
    console.wait_until("the user's key gone", || !console.exists("[data-key=\"ui.theme\"]"));
}

fn an_invalid_edit_shows_its_issue_inline_and_cannot_be_saved(console: &Console) {
    let before = console.version();
    console.sign_in("editor");
    console.click("[data-key=\"api.timeout\"] button.edit");
    console.type_into("#draft", "0");
    console.wait_until("the dry run's verdict", || console.has_class("#check", "invalid"));
    let issues = console.text("#draft-issues");
    assert!(issues.contains("api.timeout") && issues.contains("minimum"), "{issues}");
    // Once, although each view of development (its service and user views) reports it.
    assert_eq!(console.texts("#draft-issues li").len(), 1, "{issues}");
    // Shown at the key it concerns, in the tree, with the schema that raised it.
    let inline = console.wait_for("[data-key=\"api.timeout\"] .issues").text_now(console);
    assert!(inline.contains("minimum") && inline.contains("global_schema"), "{inline}");
    assert!(!console.find("#save").is_enabled_now(console), "save offered for an invalid draft");
    console.screenshot("validation-error");
    console.click("#editor button:not(.primary)");
    assert_eq!(console.version(), before, "something was saved");
}

fn a_valid_batch_is_saved_as_one_version(console: &Console) {
    let before = console.version();
    console.sign_in("editor");
    console.click("button[aria-label=\"Edit subtree api\"]");
    console.wait_for("#draft");
    console.type_into("#draft", r#"{"timeout": 60, "rate_limit": 200}"#);
    console.wait_until("the dry run's verdict", || console.has_class("#check", "valid"));
    let diff = console.text("#draft-diff");
    assert!(diff.contains("api.timeout") && diff.contains("api.rate_limit"), "{diff}");
    console.click("#save");
    let saved = console.wait_for(".toast.saved").text_now(console);
    assert!(saved.contains("Saved 2 key(s)"), "{saved}");
    console.wait_for_text("[data-key=\"api.timeout\"] .value", "60");
    console.wait_for_text("[data-key=\"api.rate_limit\"] .value", "200");
    let after = console.version();
    assert_eq!(after, before + 1, "one version for the batch");
    let (_, record) = console.api("GET", &format!("/v1/history/{after}"), "admin", None);
    // The environment's own view (other views' keys are qualified: `api_service:api.timeout`).
    let mut keys: Vec<&str> = record["changes"].as_array().unwrap().iter().map(|change| change["key"].as_str().unwrap()).filter(|key| !key.contains(':')).collect();
    keys.sort();
    assert_eq!(keys, ["api.rate_limit", "api.timeout"], "{record}");
    assert_eq!(record["actor"], "token:editor", "{record}");
}

fn a_change_made_through_the_api_appears_in_the_open_page(console: &Console) {
    console.sign_in("viewer");
    console.wait_for_text("[data-key=\"feature.beta\"] .value", "true");
    console.wait_for_text("#live", "live");
    let (status, body) = console.api("PUT", "/v1/config/development/feature.beta", "admin", Some(json!({"value": false})));
    assert_eq!(status, 200, "{body}");
    let changed = Instant::now();
    console.wait_for_text_within("[data-key=\"feature.beta\"] .value", "false", LIVE_PATIENCE);
    println!("    (the page showed the change {} ms after the API answered)", changed.elapsed().as_millis());
    let note = console.wait_for(".toast.changed").text_now(console);
    assert!(note.contains("feature.beta") && note.contains("admin"), "{note}");
    let source = console.text("[data-key=\"feature.beta\"] .source");
    assert!(source.contains("version") && source.contains("admin"), "a runtime override's version and actor: {source}");
}

fn a_compare_and_set_conflict_shows_who_changed_what_and_rebases(console: &Console) {
    console.sign_in("editor");
    console.click("[data-key=\"api.rate_limit\"] button.edit");
    console.wait_for("#draft");
    // Someone else changes the same key after the editor opened its draft.
    let (status, body) = console.api("PUT", "/v1/config/development/api.rate_limit", "admin", Some(json!({"value": 300})));
    assert_eq!(status, 200, "{body}");
    let theirs = body["version"].as_u64().unwrap();
    console.wait_for("#moved-on");
    console.type_into("#draft", "400");
    console.wait_until("the dry run's verdict", || console.has_class("#check", "valid"));
    console.click("#save");
    let conflict = console.wait_for("#conflict").text_now(console);
    assert!(conflict.contains(&format!("version {theirs} by token:admin")) && conflict.contains("api.rate_limit"), "{conflict}");
    assert_eq!(console.api("GET", "/v1/config/development/api.rate_limit", "admin", None).1["value"], json!(300), "the conflicting save applied");
    console.click("#rebase");
    console.wait_until("the conflict cleared", || !console.exists("#conflict"));
    console.wait_for_contains("#editor", &format!("based on version {theirs}"));
    console.wait_until("the rebased dry run", || console.has_class("#check", "valid"));
    console.click("#save");
    console.wait_for_text("[data-key=\"api.rate_limit\"] .value", "400");
}

fn history_shows_a_diff_and_rolls_back_after_a_preview(console: &Console) {
    let (_, body) = console.api("PUT", "/v1/config/development/api.timeout", "admin", Some(json!({"value": 75})));
    let version = body["version"].as_u64().unwrap();
    console.sign_in("admin");
    console.wait_for_text("[data-key=\"api.timeout\"] .value", "75");
    console.click("#tab-history");
    console.click(&format!("button[aria-label=\"Diff of version {version}\"]"));
    let diff = console.wait_for("#version-diff").text_now(console);
    assert!(diff.contains("api.timeout") && diff.contains("75"), "{diff}");
    // Back to the version before it: a dry run first, nothing applied yet.
    console.click(&format!("button[aria-label=\"Roll back to version {}\"]", version - 1));
    let preview = console.wait_for("#rollback-preview").text_now(console);
    assert!(preview.contains("api.timeout") && preview.contains("75"), "{preview}");
    assert_eq!(console.version(), version, "the preview applied something");
    console.click("#confirm-rollback");
    let note = console.wait_for(".toast.saved").text_now(console);
    assert!(note.contains(&format!("Rolled back to version {}", version - 1)), "{note}");
    assert_eq!(console.api("GET", "/v1/config/development/api.timeout", "admin", None).1["value"], json!(60));
    console.click("#tab-config");
    console.wait_for_text("[data-key=\"api.timeout\"] .value", "60");
}

fn a_rejected_reload_shows_its_diagnostics(console: &Console) {
    console.sign_in("viewer");
    console.wait_for_text("#live", "live");
    let before = console.version();
    let good = std::fs::read_to_string(console.tree.root().join("environments/development.json")).unwrap();
    let broken = good.replacen("\"beta\": true", "\"beta\": true, \"rate\": }", 1);
    assert_ne!(broken, good);
    console.tree.write("environments/development.json", &broken);
    let note = console.wait_for_within(".toast.rejected", LIVE_PATIENCE).text_now(console);
    assert!(note.contains("refused") && note.contains("environments/development.json:3:"), "the diagnostic with file:line:col: {note}");
    console.screenshot("rejected-reload");
    assert_eq!(console.version(), before, "the broken save went live");
    console.tree.write("environments/development.json", &good);
}

fn a_tree_of_ten_thousand_leaves_opens_collapsed_and_searches(console: &Console) {
    console.sign_in("viewer");
    let start = Instant::now();
    console.select("#environment", "large");
    console.wait_for_contains(".tree-tools", &format!("{} leaves", LARGE_GROUPS * LARGE_KEYS + 3));
    println!("    (the page showed the {}-leaf tree {} ms after the switch)", LARGE_GROUPS * LARGE_KEYS, start.elapsed().as_millis());
    // Collapsed: only the top level is in the DOM, not ten thousand rows.
    let rows = console.script("return document.querySelectorAll('section.tree li').length");
    assert!(rows.as_u64().unwrap() < 50, "{rows} rows rendered");
    console.click("button[aria-label=\"Expand bulk\"]");
    console.wait_for("[data-node=\"bulk.g99\"]");
    console.type_into("#search", "k7");
    console.wait_for_contains("#search-count", "first 200 shown");
    assert!(console.texts("section.tree li.leaf").len() <= 200);
    console.type_into("#search", "bulk.g42.k42");
    console.wait_for_text("[data-key=\"bulk.g42.k42\"] .value", "4242");
}

fn a_narrow_window_stacks_the_editor_under_the_tree(console: &Console) {
    console.run(console.browser.set_window_size(480, 800)).unwrap();
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        console.sign_in("editor");
        console.click("[data-key=\"api.timeout\"] button.edit");
        console.wait_for("#draft");
        let fits = console.script("return document.documentElement.scrollWidth <= window.innerWidth");
        assert_eq!(fits, json!(true), "the page scrolls sideways at 480 px");
        let (tree_top, editor_top) = (console.top("section.tree"), console.top("#editor"));
        assert!(editor_top > tree_top, "the editor is not under the tree: {editor_top} vs {tree_top}");
        console.screenshot("narrow-window");
    }));
    console.run(console.browser.set_window_size(1280, 800)).unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn a_whole_edit_is_done_with_the_keyboard_alone(console: &Console) {
    console.sign_in("editor");
    console.assert_every_control_is_named();
    // The environment select: reached with Tab, switched by typing its option's name.
    console.tab_to("#environment");
    console.press("staging");
    console.wait_for_text("[data-key=\"db.host\"] .value", "\"staging-db.internal\"");
    console.tab_to("#search");
    console.press("rate_limit");
    console.wait_for_contains("#search-count", "1 match");
    console.tab_to("[data-key=\"api.rate_limit\"] button.edit");
    console.press(&ENTER.to_string());
    // The editor takes the focus; select its text and type over it.
    console.wait_until("the draft focused", || console.is_focused("#draft"));
    console.assert_every_control_is_named();
    console.press_chord(CONTROL, 'a');
    console.press("250");
    console.wait_until("the dry run's verdict", || console.has_class("#check", "valid"));
    let diff = console.text("[data-diff-key=\"api.rate_limit\"]");
    assert!(diff.contains("100") && diff.contains("250"), "{diff}");
    // Past Save to Cancel, then back with Shift-Tab, and Enter.
    console.tab_to("#editor button:not(.primary)");
    console.shift_tab_to("#save");
    console.press(&ENTER.to_string());
    let saved = console.wait_for(".toast.saved").text_now(console);
    assert!(saved.contains("Saved 1 key(s)") && saved.contains("api.rate_limit"), "{saved}");
    let (_, page) = console.api("GET", "/v1/history?env=staging&limit=1", "admin", None);
    let version = page["records"][0]["version"].as_u64().unwrap();
    let (_, record) = console.api("GET", &format!("/v1/history/{version}"), "admin", None);
    let change = record["changes"].as_array().unwrap().iter().find(|change| change["key"] == "api.rate_limit").unwrap_or_else(|| panic!("{record}"));
    assert_eq!((&change["before"], &change["after"]), (&json!(100), &json!(250)), "{record}");
    assert_eq!((&record["env"], &record["actor"]), (&json!("staging"), &json!("token:editor")), "{record}");
    console.wait_for_text("[data-key=\"api.rate_limit\"] .value", "250");
}

/// `api` as the last tests left it, and the page's text after switching the `api` editor to YAML.
fn open_api_subtree_as_yaml(console: &Console) {
    console.sign_in("editor");
    assert!(!console.loaded_js_yaml(), "js-yaml loaded before YAML editing");
    console.click("button[aria-label=\"Edit subtree api\"]");
    console.wait_for("#draft");
    assert!(!console.loaded_js_yaml(), "js-yaml loaded for JSON editing");
    console.click("#format-yaml");
    console.wait_for_contains("#editor label[for=\"draft\"]", "as YAML");
    assert!(console.loaded_js_yaml(), "js-yaml not loaded for YAML editing");
    console.assert_every_control_is_named();
}

fn a_subtree_edited_as_yaml_is_validated_and_saved_as_one_version(console: &Console) {
    let before = console.version();
    open_api_subtree_as_yaml(console);
    let draft = console.script("return document.querySelector('#draft').value");
    assert!(draft.as_str().unwrap().contains("timeout: "), "the subtree as YAML: {draft}");
    console.type_into("#draft", "timeout: 90\nrate_limit: 5000\n");
    console.wait_until("the dry run's verdict", || console.has_class("#check", "invalid"));
    let inline = console.wait_for("[data-key=\"api.rate_limit\"] .issues").text_now(console);
    assert!(inline.contains("maximum") && inline.contains("global_schema"), "{inline}");
    assert!(!console.find("#save").is_enabled_now(console), "save offered for an invalid draft");
    console.type_into("#draft", "timeout: 90\nrate_limit: 500\n");
    console.wait_until("the dry run's verdict", || console.has_class("#check", "valid"));
    assert!(!console.exists("[data-key=\"api.rate_limit\"] .issues"), "the issue stays after the fix");
    let diff = console.text("#draft-diff");
    assert!(diff.contains("api.timeout") && diff.contains("90") && diff.contains("api.rate_limit") && diff.contains("500"), "{diff}");
    console.click("#save");
    let saved = console.wait_for(".toast.saved").text_now(console);
    assert!(saved.contains("Saved 2 key(s)"), "{saved}");
    let after = console.version();
    assert_eq!(after, before + 1, "one version for the YAML text");
    console.wait_for_text("[data-key=\"api.timeout\"] .value", "90");
    let (_, timeout) = console.api("GET", "/v1/config/development/api.timeout", "admin", None);
    let (_, rate) = console.api("GET", "/v1/config/development/api.rate_limit", "admin", None);
    assert_eq!((&timeout["value"], &rate["value"]), (&json!(90), &json!(500)));
}

fn malformed_yaml_names_its_line_and_cannot_be_saved(console: &Console) {
    let before = console.version();
    open_api_subtree_as_yaml(console);
    console.type_into("#draft", "timeout: 91\n  rate_limit: 7\n");
    console.wait_until("the parse error", || console.has_class("#check", "unparsable"));
    let check = console.text("#check");
    assert!(check.contains("YAML line 2, column"), "the error names the line: {check}");
    assert!(!console.find("#save").is_enabled_now(console), "save offered for unreadable text");
    console.screenshot("malformed-yaml");
    console.click("#editor button:not(.primary)");
    assert_eq!(console.version(), before, "something was saved");
}

fn the_plugins_page_shows_a_refused_and_a_stale_plugin(console: &Console) {
    // The main server has no plugins folder: the page says so.
    console.sign_in("viewer");
    console.click("#tab-plugins");
    console.wait_for("#no-plugins");
    let fleet = console.fleet();
    // The remote of http-source goes away: its layer is kept and marked stale.
    fleet.remote.lock().unwrap().take();
    fleet.install_refused_plugin();
    console.sign_in_at(&fleet.a.origin(), &fleet.a.token);
    console.click("#tab-plugins");
    console.wait_for_contains("[data-plugin=\"http-source\"] .status", "stale");
    console.wait_for_contains("[data-plugin=\"unapproved\"] .status", "refused");
    console.assert_every_control_is_named();
    let stale = |part: &str| console.text(&format!("[data-plugin=\"http-source\"] .{part}"));
    assert!(stale("status").starts_with("loaded") && stale("status").contains("serving its last good layer since"), "{}", stale("status"));
    assert!(stale("limits").contains("timeout_ms: 3000") && stale("limits").contains("memory_mib: "), "{}", stale("limits"));
    assert!(stale("grants").contains(&format!("http: {}", fleet.remote_origin)), "{}", stale("grants"));
    assert!(stale("last-error").contains(&fleet.remote_origin), "the failure names the remote: {}", stale("last-error"));
    let refused = |part: &str| console.text(&format!("[data-plugin=\"unapproved\"] .{part}"));
    assert_eq!(refused("limits"), "not loaded");
    assert_eq!(refused("grants"), "not loaded");
    let error = refused("last-error");
    assert!(error.contains("plugin unapproved") && error.contains("`env` grant") && error.contains("does not allow key"), "{error}");
    console.screenshot("plugins-refused-and-stale");
}

fn the_instances_page_lists_each_host_and_the_version_it_serves(console: &Console) {
    // The main server's history is not shared: the page says so.
    console.sign_in("viewer");
    console.click("#tab-instances");
    console.wait_for_contains("#no-registry", "not shared");
    let fleet = console.fleet();
    console.sign_in_at(&fleet.a.origin(), &fleet.a.token);
    console.click("#tab-instances");
    let version = |id: &str| console.texts(&format!("[data-instance=\"{id}\"] .version")).first().and_then(|text| text.parse::<u64>().ok());
    console.wait_until("both hosts listed", || version("host-a").is_some() && version("host-b").is_some());
    let (_, listed) = fleet.a.get("/v1/instances", Some(&fleet.a.token));
    let newest = listed["instances"].as_array().unwrap().iter().map(|entry| entry["version"].as_u64().unwrap()).max().unwrap();
    console.wait_until("both at the newest version", || version("host-a") == Some(newest) && version("host-b") == Some(newest));
    assert_eq!(console.text("[data-instance=\"host-a\"] .state"), "healthy");
    assert!(console.text("[data-instance=\"host-a\"]").contains("(this page's host)"));
    assert!(console.text("[data-instance=\"host-a\"]").contains("http-source@0.1.0"), "{}", console.text("[data-instance=\"host-a\"]"));
    assert!(console.text("[data-instance=\"host-b\"]").contains(&fleet.b.addr));
    console.assert_every_control_is_named();
    // A change made on host B: the page (on host A) shows both hosts at the new version.
    let (status, body) = fleet.b.call("PUT", "/v1/config/staging/api.rate_limit", &[], Some(json!({"value": 321})));
    assert_eq!(status, 200, "{body}");
    let changed = body["version"].as_u64().unwrap();
    assert!(changed > newest);
    console.wait_until("both hosts at the new version", || version("host-a") == Some(changed) && version("host-b") == Some(changed));
    assert_eq!(console.text("[data-instance=\"host-b\"] .state"), "healthy");
    console.screenshot("instances");
}

fn the_rollouts_page_shows_a_running_rollout_its_cohort_and_the_change_requests(console: &Console) {
    console.sign_in("viewer");
    console.click("#tab-rollouts");
    console.wait_for("#no-rollouts");
    console.wait_for("#no-changes");
    let body = json!({"env": "staging", "title": "Slower upstream", "changes": {"api": {"rate_limit": 120}}, "cohort": {"kind": "users"}, "steps": [{"percent": 100, "bake_seconds": 3600}]});
    let (status, started) = console.api("POST", "/v1/rollouts", "editor", Some(body));
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_u64().unwrap();
    assert_eq!(started["reached_users"], json!(["alice"]), "{started}");
    let (status, drafted) = console.api("POST", "/v1/changes", "editor", Some(json!({"env": "staging", "title": "Faster", "changes": {"api": {"timeout": 20}}})));
    assert_eq!(status, 201, "{drafted}");
    // The page shows both by itself (it asks again on the change's event and every 2 s).
    let row = format!("[data-rollout=\"{id}\"]");
    console.wait_for_text(&format!("{row} .state"), "running");
    assert_eq!(console.text(&format!("{row} .step")), "step 1 of 1 (100% of users)");
    assert_eq!(console.text(&format!("{row} .reached")), "alice");
    assert!(console.text(&row).contains("Slower upstream") && console.text(&row).contains("api.rate_limit"), "{}", console.text(&row));
    let request = format!("[data-change=\"{}\"]", drafted["id"]);
    console.wait_for_text(&format!("{request} .state"), "open");
    assert!(console.text(&format!("{request} .diff")).contains("api.timeout: 30 → 20"), "{}", console.text(&request));
    console.assert_every_control_is_named();
    console.screenshot("rollouts");
    // Aborted elsewhere: the row says so and reaches nobody.
    let (status, ended) = console.api("POST", &format!("/v1/rollouts/{id}/abort"), "editor", Some(json!({"reason": "console test done"})));
    assert_eq!(status, 200, "{ended}");
    console.wait_for_text(&format!("{row} .state"), "rolled-back");
    assert_eq!(console.text(&format!("{row} .reached")), "—");
    let (status, _) = console.api("POST", &format!("/v1/changes/{}/withdraw", drafted["id"]), "editor", None);
    assert_eq!(status, 200);
}

// ---------------------------------------------------------------------------------------------
// The harness

/// The tree, the server, chromedriver and the browser session every test shares.
struct Console {
    runtime: tokio::runtime::Runtime,
    browser: Client,
    http: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
    /// Token per role; each token is named after its role.
    tokens: Vec<(&'static str, String)>,
    screenshots: PathBuf,
    // Dropped in this order: the browser session is closed in `close`, then chromedriver and the
    // server are killed, then the tree removed.
    _driver: ChromeDriver,
    server: Served,
    tree: Tree,
    /// Two more servers on one etcd member, started by the first test that needs them.
    fleet: OnceCell<Fleet>,
}

impl Console {
    fn start() -> Console {
        let tree = Tree::minimal();
        tree.write("schemas/global_schema.json", API_SCHEMA);
        tree.write("global.json", &json!({"api": {"timeout": 30, "rate_limit": 100}, "ui": {"banner": MARKUP}}).to_string());
        tree.write("environments/staging.json", r#"{"db": {"host": "staging-db.internal"}}"#);
        tree.write("services/api_service.json", r#"{"api": {"timeout": 45}}"#);
        tree.write("users/alice.json", r#"{"ui": {"theme": "dark"}}"#);
        let keyring = Keyring::generate("development").unwrap();
        let keys = vec![("POTTER_SECRET_KEY_DEVELOPMENT".to_owned(), keyring.to_env_value().expose().to_owned())];
        let cli = |args: &[&str], stdin: Option<&str>| {
            let (root, state) = (tree.root(), tree.state());
            let mut all = vec!["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap()];
            all.extend(args);
            let env: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let output = potter_with(&all, &env, stdin);
            assert!(output.status.success(), "{args:?}: {}", stderr(&output));
            stdout(&output).trim().to_owned()
        };
        let sealed = cli(&["--env", "development", "secrets", "encrypt", "--key", "db.password"], Some(CANARY));
        // One key per line: the rejected-reload test breaks the file after `beta`.
        tree.write("environments/development.json", &format!("{{\n  \"db\": {{\"host\": \"dev-db.internal\", \"password\": \"{sealed}\"}},\n  \"feature\": {{\"beta\": true}}\n}}\n"));
        // An environment of LARGE_GROUPS × LARGE_KEYS leaves (plus global's three).
        let bulk: serde_json::Map<String, Value> = (0..LARGE_GROUPS)
            .map(|group| (format!("g{group}"), Value::Object((0..LARGE_KEYS).map(|key| (format!("k{key}"), json!(group * 100 + key))).collect())))
            .collect();
        tree.write("environments/large.json", &json!({ "bulk": bulk }).to_string());
        let tokens = ROLES.iter().map(|role| (*role, cli(&["token", "create", "--name", role, "--role", role, "--env", "*"], None))).collect();
        let server = Served::serve_tree(&tree.root(), &tree.state(), &keys);
        let driver = ChromeDriver::start();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let browser = runtime.block_on(driver.session());
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
        let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("console-screenshots");
        std::fs::create_dir_all(&screenshots).unwrap();
        Console { runtime, browser, http, tokens, screenshots, _driver: driver, server, tree, fleet: OnceCell::new() }
    }

    fn close(self) {
        let Console { runtime, browser, .. } = self;
        let _ = runtime.block_on(browser.close());
    }

    fn run<T>(&self, work: impl Future<Output = T>) -> T {
        self.runtime.block_on(work)
    }

    fn token(&self, role: &str) -> &str {
        &self.tokens.iter().find(|(have, _)| *have == role).unwrap().1
    }

    /// A freshly loaded page (signed out).
    fn open(&self) {
        self.open_at(&self.server.origin());
    }

    fn open_at(&self, origin: &str) {
        self.run(self.browser.goto(origin)).unwrap();
        self.wait_for("#token");
    }

    fn sign_in(&self, role: &str) {
        self.open();
        self.sign_in_here(role);
    }

    /// Signs in to the console of the server at `origin` with `token`.
    fn sign_in_at(&self, origin: &str, token: &str) {
        self.open_at(origin);
        self.sign_in_with(token);
    }

    /// Signs in on the page already open, with the keyboard (the token, then Enter); returns once
    /// the tree is shown.
    fn sign_in_here(&self, role: &str) {
        self.sign_in_with(self.token(role));
    }

    fn sign_in_with(&self, token: &str) {
        self.type_into("#token", &format!("{token}{ENTER}"));
        self.wait_for("#who");
        self.wait_for("section.tree li");
    }

    /// The fleet, started on first use.
    fn fleet(&self) -> &Fleet {
        self.fleet.get_or_init(Fleet::start)
    }

    /// Presses each key of `keys` in turn (down, up) through WebDriver key actions, on whatever
    /// has the focus, as a user types.
    fn press(&self, keys: &str) {
        let actions = keys.chars().fold(KeyActions::new("keyboard".into()), |actions, key| actions.then(KeyAction::Down { value: key }).then(KeyAction::Up { value: key }));
        self.run(self.browser.perform_actions(actions)).unwrap();
    }

    /// `key` pressed while `modifier` is held (Shift-Tab, Control-A).
    fn press_chord(&self, modifier: char, key: char) {
        let actions = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: modifier })
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key })
            .then(KeyAction::Up { value: modifier });
        self.run(self.browser.perform_actions(actions)).unwrap();
    }

    fn is_focused(&self, css: &str) -> bool {
        let script = "return !!document.activeElement && document.activeElement.matches(arguments[0])";
        self.run(self.browser.execute(script, vec![json!(css)])).unwrap() == json!(true)
    }

    /// What has the focus, for a failing test's message.
    fn focused(&self) -> String {
        let script = "const e = document.activeElement; return e ? (e.getAttribute('aria-label') || e.id || e.textContent || e.tagName).trim().slice(0, 60) : ''";
        self.script(script).as_str().unwrap_or("").to_owned()
    }

    /// Presses Tab until `css` has the focus: it is reachable with the keyboard.
    fn tab_to(&self, css: &str) {
        self.move_focus_to(css, || self.press(&TAB.to_string()), "Tab");
    }

    /// Presses Shift-Tab until `css` has the focus.
    fn shift_tab_to(&self, css: &str) {
        self.move_focus_to(css, || self.press_chord(SHIFT, TAB), "Shift-Tab");
    }

    fn move_focus_to(&self, css: &str, step: impl Fn(), what: &str) {
        let mut passed = Vec::new();
        for _ in 0..MAX_TABS {
            if self.is_focused(css) {
                return;
            }
            step();
            passed.push(self.focused());
        }
        panic!("`{css}` not reached with {what} in {MAX_TABS} presses; the focus went through {passed:?}");
    }

    /// Every button, field, select and link on the page has an accessible name, as Chromium
    /// computes it for assistive technology (WebDriver's Get Computed Label).
    fn assert_every_control_is_named(&self) {
        let controls = self.run(self.browser.find_all(Locator::Css("button, input, select, textarea, a[href], [role=button]"))).unwrap();
        assert!(!controls.is_empty());
        let session = self.run(self.browser.session_id()).unwrap().unwrap();
        let unnamed: Vec<String> = controls
            .iter()
            .filter(|control| {
                let command = ComputedLabel { session: session.clone(), element: control.element_id().to_string() };
                let label = self.run(self.browser.issue_cmd(command)).unwrap();
                label.as_str().unwrap_or("").trim().is_empty()
            })
            .map(|control| self.run(control.html(false)).unwrap_or_default().chars().take(160).collect())
            .collect();
        assert!(unnamed.is_empty(), "controls without an accessible name: {unnamed:?}");
    }

    /// Whether the page has fetched js-yaml (resource timing).
    fn loaded_js_yaml(&self) -> bool {
        self.script("return performance.getEntriesByType('resource').some((e) => e.name.includes('js-yaml'))") == json!(true)
    }

    fn find(&self, css: &str) -> Element {
        self.wait_for(css)
    }

    fn wait_for(&self, css: &str) -> Element {
        self.wait_for_within(css, PATIENCE)
    }

    fn wait_for_within(&self, css: &str, patience: Duration) -> Element {
        let found = self.run(self.browser.wait().at_most(patience).every(Duration::from_millis(25)).for_element(Locator::Css(css)));
        found.unwrap_or_else(|e| panic!("no `{css}` on the page within {patience:?}: {e}\n{}", self.page_text()))
    }

    fn exists(&self, css: &str) -> bool {
        !self.run(self.browser.find_all(Locator::Css(css))).unwrap().is_empty()
    }

    fn text(&self, css: &str) -> String {
        self.find(css).text_now(self)
    }

    fn wait_until(&self, what: &str, check: impl Fn() -> bool) {
        let start = Instant::now();
        while !check() {
            assert!(start.elapsed() < PATIENCE, "{what}: not within {PATIENCE:?}\n{}", self.page_text());
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn wait_for_text(&self, css: &str, expected: &str) {
        self.wait_for_text_within(css, expected, PATIENCE)
    }

    fn wait_for_text_within(&self, css: &str, expected: &str, patience: Duration) {
        let start = Instant::now();
        loop {
            let texts: Vec<String> = self.texts(css);
            if texts.iter().any(|text| text == expected) {
                return;
            }
            assert!(start.elapsed() < patience, "`{css}` shows {texts:?}, not {expected:?}, after {patience:?}\n{}", self.page_text());
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn wait_for_contains(&self, css: &str, expected: &str) {
        self.wait_until(&format!("`{css}` containing {expected:?}"), || self.texts(css).iter().any(|text| text.contains(expected)));
    }

    /// The text of every element `css` matches now (elements replaced meanwhile are skipped).
    fn texts(&self, css: &str) -> Vec<String> {
        let script = "return Array.from(document.querySelectorAll(arguments[0])).map((e) => e.innerText)";
        let texts = self.run(self.browser.execute(script, vec![json!(css)])).unwrap();
        texts.as_array().unwrap().iter().map(|text| text.as_str().unwrap_or("").trim().to_owned()).collect()
    }

    fn has_class(&self, css: &str, class: &str) -> bool {
        let script = "const e = document.querySelector(arguments[0]); return !!e && e.classList.contains(arguments[1])";
        self.run(self.browser.execute(script, vec![json!(css), json!(class)])).unwrap() == json!(true)
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.run(element.click()).unwrap_or_else(|e| panic!("click `{css}`: {e}"));
    }

    /// Replaces the text of a field the way a user does: emptied, then typed key by key.
    fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.run(self.browser.execute("arguments[0].value = ''; arguments[0].dispatchEvent(new Event('input', { bubbles: true }))", vec![json!(element)])).unwrap();
        self.run(element.send_keys(text)).unwrap();
    }

    fn select(&self, css: &str, value: &str) {
        let element = self.find(css);
        self.run(element.select_by_value(value)).unwrap_or_else(|e| panic!("select {value:?} in `{css}`: {e}"));
    }

    fn script(&self, script: &str) -> Value {
        self.run(self.browser.execute(script, vec![])).unwrap()
    }

    /// The top of the element's box in the page, in CSS pixels.
    fn top(&self, css: &str) -> f64 {
        let top = self.run(self.browser.execute("return document.querySelector(arguments[0]).getBoundingClientRect().top + window.scrollY", vec![json!(css)])).unwrap();
        top.as_f64().unwrap()
    }

    fn source(&self) -> String {
        self.run(self.browser.source()).unwrap()
    }

    /// What the page shows, for a failing test's message.
    fn page_text(&self) -> String {
        self.run(self.browser.execute("return document.body ? document.body.innerText : ''", vec![])).map(|v| v.as_str().unwrap_or("").to_owned()).unwrap_or_default()
    }

    /// The paths of the API this page called (the browser's resource timing entries).
    fn fetched_urls(&self) -> Vec<String> {
        let script = "return performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname + new URL(e.name).search)";
        let urls = self.script(script);
        let mut urls: Vec<String> = urls.as_array().unwrap().iter().map(|url| url.as_str().unwrap().to_owned()).filter(|url| url.starts_with("/v1/")).collect();
        urls.dedup();
        urls
    }

    fn screenshot(&self, name: &str) {
        if let Ok(png) = self.run(self.browser.screenshot()) {
            let _ = std::fs::write(self.screenshots.join(format!("{name}.png")), png);
        }
    }

    /// The live version (the ETag of the admin's view of development).
    fn version(&self) -> u64 {
        let (status, body) = self.api("GET", "/v1/console/tree/development", "admin", None);
        assert_eq!(status, 200, "{body}");
        body["version"].as_u64().unwrap()
    }

    /// Calls the API as `role`; the answer's status and JSON body.
    fn api(&self, method: &str, path: &str, role: &str, body: Option<Value>) -> (u16, Value) {
        let (status, text) = self.api_raw(method, path, role, body, &[]);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn api_raw(&self, method: &str, path: &str, role: &str, body: Option<Value>, headers: &[(&str, &str)]) -> (u16, String) {
        let mut request = http::Request::builder().method(method).uri(format!("{}{path}", self.server.origin())).header("authorization", format!("Bearer {}", self.token(role)));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        self.run(async {
            let response = self.http.request(request.body(Full::new(body)).unwrap()).await.unwrap();
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        })
    }
}

/// Two more `serve` processes on one real etcd member (`--store etcd://…`), sharing one token
/// list: host A also runs plugins (an http-source whose remote the test stops, and a plugin the
/// trust store refuses), host B none. Killed in field order: servers, remote, trees, then etcd.
struct Fleet {
    a: Served,
    b: Served,
    /// http-source's remote; taken (stopped) by the plugins test.
    remote: Mutex<Option<Loopback>>,
    remote_origin: String,
    plugins: PluginTree,
    _tree_b: Tree,
    _cluster: EtcdCluster,
}

impl Fleet {
    fn start() -> Fleet {
        let cluster = EtcdCluster::start(1);
        let location = cluster.location("console");
        let remote = Loopback::plain(|_| Reply::json(200, r#"{"remote": {"greeting": "hello"}}"#));
        let remote_origin = remote.origin("http");
        let plugins = PluginTree::new(Tree::minimal());
        let namespace = json!({"url": format!("{remote_origin}/config.json"), "poll_interval_ms": 200});
        plugins.tree.write("global.json", &json!({"api": {"timeout": 30, "rate_limit": 100}, "plugins": {"http-source": namespace}}).to_string());
        plugins.install_as("http-source", "http-source", |manifest| manifest.replace("http://127.0.0.1:8780", &remote_origin));
        let tree_b = Tree::minimal();
        let serve = |tree: &Tree, id: &str, extra: &[&str]| {
            let (root, state) = (tree.root(), tree.state());
            let mut args = vec!["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap(), "--store", &location];
            args.extend(["serve", "--listen", "127.0.0.1:0", "--instance-id", id, "--instance-ttl", "2"]);
            args.extend_from_slice(extra);
            Served::start(&args)
        };
        // A makes the fleet's development token (admin); B uses the shared token list.
        let a = serve(&plugins.tree, "host-a", &["--dev-token"]);
        let mut b = serve(&tree_b, "host-b", &[]);
        b.token = a.token.clone();
        Fleet { a, b, remote: Mutex::new(Some(remote)), remote_origin, plugins, _tree_b: tree_b, _cluster: cluster }
    }

    /// Drops `env-source` into host A's plugins folder as `unapproved`, signed by a key the trust
    /// store knows but allows no grant kinds: its `env` grant is not approved, so it is refused.
    fn install_refused_plugin(&self) {
        let state = self.plugins.tree.state();
        let key = potter_plugin::keygen(&state.parent().unwrap().join("safe-set-signer")).unwrap();
        potter_plugin::trust_with(&key.public_key, &state.join("trusted-keys"), &potter_plugin::Allowance::default()).unwrap();
        let files = self.plugins.prepare_signed_by("env-source", "unapproved", |manifest| manifest, Signing::Checked, &key);
        self.plugins.install_prepared("unapproved", files);
    }
}

/// W3C WebDriver's Get Computed Label of one element: its accessible name as the browser computes it.
#[derive(Debug)]
struct ComputedLabel {
    session: String,
    element: String,
}

impl fantoccini::wd::WebDriverCompatibleCommand for ComputedLabel {
    fn endpoint(&self, base_url: &url::Url, _session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/element/{}/computedlabel", self.session, self.element))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::GET, None)
    }
}

/// Shorthands on an element found earlier.
trait ElementNow {
    fn text_now(&self, console: &Console) -> String;
    fn is_enabled_now(&self, console: &Console) -> bool;
}

impl ElementNow for Element {
    fn text_now(&self, console: &Console) -> String {
        console.run(self.text()).unwrap()
    }

    fn is_enabled_now(&self, console: &Console) -> bool {
        console.run(self.is_enabled()).unwrap()
    }
}

/// `chromedriver` on a free loopback port, killed on drop (it ends the browsers it started).
struct ChromeDriver {
    child: Child,
    port: u16,
    /// Chromium's profile, removed on drop.
    profile: tempfile::TempDir,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("chromedriver")
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".to_owned()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (scripts/setup installs chromium-driver)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < PATIENCE, "chromedriver does not listen on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        ChromeDriver { child, port, profile: tempfile::tempdir().unwrap() }
    }

    /// A headless Chromium session at 1280×800 with its own profile.
    async fn session(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        // A dialog (alert) stays open instead of being dismissed, so a script that ran is seen.
        capabilities.insert("unhandledPromptBehavior".into(), json!("ignore"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,800", "--no-first-run", "--disable-extensions",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ],
            }),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a headless Chromium session")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
