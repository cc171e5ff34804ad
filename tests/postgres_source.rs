//! postgres-source over a real PostgreSQL (one server per test binary, `common::postgres`):
//! rows live as keys of their environment with the connection and table as provenance, updates
//! within the poll interval, a row that is not JSON, the database stopped and back, a connection
//! not granted, and writes from a guest refused by the host.

use crate::common;

use std::fs;
use std::time::{Duration, Instant};

use common::{eventually, value_in, Tree};
use common::logs::captured_logs;
use common::postgres::{PostgresServer, READER, READER_PASSWORD, SUPERUSER};
use common::wasm::PluginTree;
use potter_config::runtime::ConfigHost;
use potter_engine::ViewKey;
use serde_json::{json, Value};

/// The host variable the operator's connection names for the reader's password.
const PASSWORD_VARIABLE: &str = "PG_SOURCE_TEST_READER_PASSWORD";
const SUPERUSER_PASSWORD_VARIABLE: &str = "PG_SOURCE_TEST_SUPERUSER_PASSWORD";



fn info(host: &ConfigHost, plugin: &str) -> potter_plugin::PluginInfo {
    host.plugin_list().into_iter().find(|info| info.name == plugin).unwrap()
}

/// The operator's side: `<state>/sql-connections.toml` with `settings-db` as the read-only role
/// (password in a host variable) and `admin-db` as the superuser, who could write.
fn configure_connections(tree: &PluginTree, server: &PostgresServer) {
    std::env::set_var(PASSWORD_VARIABLE, READER_PASSWORD);
    std::env::set_var(SUPERUSER_PASSWORD_VARIABLE, "potter-test-superuser");
    fs::create_dir_all(tree.tree.state()).unwrap();
    fs::write(
        tree.tree.state().join(potter_plugin::SQL_CONNECTIONS_FILE),
        format!(
            "[connections.settings-db]\nurl = \"{}\"\npassword_env = \"{PASSWORD_VARIABLE}\"\n\n[connections.admin-db]\nurl = \"{}\"\npassword_env = \"{SUPERUSER_PASSWORD_VARIABLE}\"\n",
            server.url(READER),
            server.url(SUPERUSER)
        ),
    )
    .unwrap();
}

/// A tree with postgres-source reading `table` (its namespace plus `extra`), the connections
/// configured.
fn postgres_tree(server: &PostgresServer, table: &str, extra: Value) -> PluginTree {
    captured_logs();
    let tree = PluginTree::new(Tree::minimal());
    let mut namespace = json!({"connection": "settings-db", "table": table, "poll_interval_ms": 100});
    namespace.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    tree.tree.write("global.json", &json!({"api": {"timeout": 30}, "plugins": {"postgres-source": namespace}}).to_string());
    tree.install("postgres-source");
    configure_connections(&tree, server);
    tree
}

fn insert_rows(server: &PostgresServer, table: &str) {
    server.psql(&format!(
        "INSERT INTO {table} (environment, key, value) VALUES
            ('production', 'settings.api.timeout', '30'),
            ('production', 'settings.features', '{{\"beta\": false, \"regions\": [\"eu\", \"us\"]}}'),
            ('staging', 'settings.api.timeout', '5');"
    ));
}

fn set_row(server: &PostgresServer, table: &str, environment: &str, key: &str, value: &str) {
    server.psql(&format!(
        "INSERT INTO {table} (environment, key, value) VALUES ('{environment}', '{key}', '{value}')
         ON CONFLICT (environment, key) DO UPDATE SET value = EXCLUDED.value, version = nextval('{table}_versions');"
    ));
}

#[test]
fn rows_are_live_as_keys_of_their_environment_named_by_connection_and_table_and_follow_updates() {
    let server = PostgresServer::shared();
    let _running = server.in_use();
    let table = server.settings_table("live");
    insert_rows(server, &table);
    let tree = postgres_tree(server, &table, json!({}));
    let host = ConfigHost::open(tree.options()).unwrap();
    assert_eq!(value_in(&host, "production", "settings.api.timeout"), Some(json!(30)));
    assert_eq!(value_in(&host, "production", "settings.features.regions"), Some(json!(["eu", "us"])), "a JSON value keeps its structure");
    assert_eq!(value_in(&host, "staging", "settings.api.timeout"), Some(json!(5)), "each environment its own rows");
    assert_eq!(value_in(&host, "development", "settings.api.timeout"), None, "no rows, no keys");

    let snapshot = host.snapshot();
    let view = snapshot.view(&ViewKey::environment("production")).unwrap();
    let provenance = view.origin("settings.api.timeout").unwrap().provenance();
    assert_eq!(provenance.layer, "plugins/postgres-source/production");
    assert_eq!(provenance.source, format!("plugin:postgres-source (sql settings-db: {table})"), "{provenance:?}");

    // An update (which raises the row's version) is live within the poll interval.
    let _watcher = host.watch(Default::default()).unwrap();
    set_row(server, &table, "production", "settings.api.timeout", "45");
    eventually("the updated row live", || value_in(&host, "production", "settings.api.timeout") == Some(json!(45)));
    set_row(server, &table, "production", "settings.api.retries", "3");
    eventually("a new row live", || value_in(&host, "production", "settings.api.retries") == Some(json!(3)));
    server.psql(&format!("DELETE FROM {table} WHERE key = 'settings.api.retries'"));
    eventually("a deleted row gone", || value_in(&host, "production", "settings.api.retries").is_none());
    assert_eq!(value_in(&host, "staging", "settings.api.timeout"), Some(json!(5)));
}

#[test]
fn a_row_whose_value_is_not_json_is_refused_naming_plugin_connection_and_key_and_the_last_good_layer_stays() {
    let server = PostgresServer::shared();
    let _running = server.in_use();
    let table = server.settings_table("broken");
    insert_rows(server, &table);
    let tree = postgres_tree(server, &table, json!({}));
    let host = ConfigHost::open(tree.options()).unwrap();
    set_row(server, &table, "production", "settings.api.mode", "{fast");
    host.reload().expect("on_error = keep: the reload goes on without the source");
    assert_eq!(value_in(&host, "production", "settings.api.timeout"), Some(json!(30)), "the last good layer is still served");
    assert_eq!(value_in(&host, "production", "settings.api.mode"), None);
    let error = info(&host, "postgres-source").last_error.unwrap_or_default();
    assert!(
        error.contains("plugin postgres-source") && error.contains(&format!("settings-db/{table}")) && error.contains("row `settings.api.mode` (production): value is not JSON"),
        "{error}"
    );
    assert!(info(&host, "postgres-source").stale.is_some(), "marked stale");

    set_row(server, &table, "production", "settings.api.mode", "\"fast\"");
    host.reload().unwrap();
    assert_eq!(value_in(&host, "production", "settings.api.mode"), Some(json!("fast")), "fixed, picked up");
    assert!(info(&host, "postgres-source").stale.is_none());
}

#[test]
fn with_the_database_stopped_the_source_is_stale_and_served_from_its_cache_and_picked_up_when_it_returns() {
    let server = PostgresServer::shared();
    let table = server.settings_table("outage");
    insert_rows(server, &table);
    let tree = postgres_tree(server, &table, json!({}));
    let running = ConfigHost::open(tree.options()).unwrap();
    let _watcher = running.watch(Default::default()).unwrap();
    let _exclusive = server.exclusive();
    server.stop();

    // The running host: stale, its last good layer kept.
    eventually("the source marked stale", || info(&running, "postgres-source").stale.is_some());
    let stale = info(&running, "postgres-source").stale.unwrap();
    assert!(stale.last_error.contains("plugin postgres-source") && stale.last_error.contains("sql connection `settings-db`"), "{stale:?}");
    assert!(!stale.last_error.contains(READER_PASSWORD), "never the password: {stale:?}");
    assert_eq!(value_in(&running, "production", "settings.api.timeout"), Some(json!(30)));

    // A host started now: from the encrypted last-known-good cache, marked stale.
    let restarted = ConfigHost::open(tree.options()).expect("starts from the cached layer");
    assert_eq!(value_in(&restarted, "production", "settings.api.timeout"), Some(json!(30)));
    assert!(info(&restarted, "postgres-source").stale.is_some_and(|stale| stale.from_cache));
    let _restarted_watcher = restarted.watch(Default::default()).unwrap();

    server.restart();
    set_row(server, &table, "production", "settings.api.timeout", "31");
    for host in [&running, &restarted] {
        eventually("the source fresh again with the new row", || {
            info(host, "postgres-source").stale.is_none() && value_in(host, "production", "settings.api.timeout") == Some(json!(31))
        });
    }
}

#[test]
fn a_connection_not_granted_is_refused_by_the_host_named_and_logged_and_the_last_good_layer_stays() {
    let server = PostgresServer::shared();
    let _running = server.in_use();
    let table = server.settings_table("ungranted");
    insert_rows(server, &table);
    let tree = postgres_tree(server, &table, json!({}));
    let host = ConfigHost::open(tree.options()).unwrap();
    // `admin-db` is configured on the host, but the manifest grants only `settings-db`.
    tree.tree.write("global.json", &json!({"api": {"timeout": 31}, "plugins": {"postgres-source": {"connection": "admin-db", "table": table}}}).to_string());
    host.reload().unwrap();
    // Sources are asked with the namespace before the reload: the new connection is used from the next one.
    host.reload().unwrap();
    assert_eq!(value_in(&host, "production", "settings.api.timeout"), Some(json!(30)), "the last good layer is still served");
    assert_eq!(value_in(&host, "production", "api.timeout"), Some(json!(31)), "the rest of the change applied");
    let error = info(&host, "postgres-source").last_error.unwrap_or_default();
    assert!(error.contains("sql connection `admin-db`: refused: not granted to plugin postgres-source (grants.sql: settings-db)"), "{error}");
    assert!(
        captured_logs().lines().any(|line| line.contains("sql query refused") && line.contains("postgres-source") && line.contains("admin-db")),
        "the host logs the refusal with the plugin's name"
    );
}

/// A host whose only plugin, `sql-writes` on `admin-db` (the superuser: only the host's checks
/// stand in the way), sends `statement` at start-up. Returns the host's refusal.
fn write_refused(tree: &PluginTree, statement: &str) -> String {
    tree.tree.write("global.json", &json!({"plugins": {"sql-writes": {"connection": "admin-db", "statement": statement}}}).to_string());
    match ConfigHost::open(tree.options()) {
        Ok(_) => panic!("a host opened although its source wrote: {statement}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn write_statements_from_a_guest_are_refused_and_nothing_is_written() {
    let server = PostgresServer::shared();
    let _running = server.in_use();
    let table = server.settings_table("writes");
    insert_rows(server, &table);
    captured_logs();
    let tree = PluginTree::new(Tree::minimal());
    tree.install_as("sql-writes", "sql-writes", |manifest| manifest.replace("sql = [\"settings-db\"]", "sql = [\"admin-db\"]"));
    configure_connections(&tree, server);

    let insert = write_refused(&tree, &format!("INSERT INTO {table} (environment, key, value) VALUES ('production', 'settings.evil', '1')"));
    assert!(insert.contains("plugin sql-writes") && insert.contains("sql connection `admin-db`: refused: only a read-only SELECT is allowed (the statement begins with `INSERT`)"), "{insert}");
    let update = write_refused(&tree, &format!("update {table} set value = '666'"));
    assert!(update.contains("(the statement begins with `update`)"), "{update}");
    // A write inside a query passes the first check and meets the READ ONLY transaction.
    let hidden = write_refused(&tree, &format!("WITH w AS (DELETE FROM {table} RETURNING key) SELECT * FROM w"));
    // (PostgreSQL names the statement's top-level command: "cannot execute SELECT in a read-only transaction".)
    assert!(hidden.contains("sql connection `admin-db`: ERROR: cannot execute") && hidden.contains("in a read-only transaction"), "{hidden}");
    // Two statements in one: refused by PostgreSQL's extended protocol (one statement per query).
    let chained = write_refused(&tree, &format!("SELECT 1; DELETE FROM {table}"));
    assert!(chained.contains("cannot insert multiple commands into a prepared statement"), "{chained}");

    assert_eq!(server.psql(&format!("SELECT count(*) || ' ' || max(value) FROM {table} WHERE environment = 'production' AND key = 'settings.api.timeout'")), "1 30");
    assert_eq!(server.psql(&format!("SELECT count(*) FROM {table}")), "3", "nothing was written");
}

#[test]
fn a_plugin_asking_for_the_variable_that_holds_a_connections_password_is_refused_at_load() {
    let server = PostgresServer::shared();
    let _running = server.in_use();
    let table = server.settings_table("password");
    captured_logs();
    let tree = PluginTree::new(Tree::minimal());
    tree.tree.write("global.json", &json!({"plugins": {"postgres-source": {"table": table}}}).to_string());
    tree.install_as("postgres-source", "postgres-source", |manifest| manifest.replace("[grants]", &format!("[grants]\nenv = [\"{PASSWORD_VARIABLE}\"]")));
    configure_connections(&tree, server);
    let refused = ConfigHost::open(tree.options()).err().expect("refused").to_string();
    assert!(
        refused.contains(&format!("plugin postgres-source: refused: grants.env `{PASSWORD_VARIABLE}` is never granted: it holds the password of the host's SQL connection `settings-db`")),
        "{refused}"
    );
    assert!(!refused.contains(READER_PASSWORD));
}

#[test]
fn a_query_that_outlasts_the_plugins_time_limit_is_cut_off_at_the_deadline() {
    let server = PostgresServer::shared();
    let _running = server.in_use();
    captured_logs();
    let tree = PluginTree::new(Tree::minimal());
    // The statement timeout allows 10 s; the plugin's call limit is 500 ms, and it holds while the
    // guest waits inside the host's query.
    tree.install_as("sql-writes", "sql-writes", |manifest| manifest.replace("timeout_ms = 3000", "timeout_ms = 500\nsql_statement_ms = 10000"));
    configure_connections(&tree, server);
    tree.tree.write("global.json", &json!({"plugins": {"sql-writes": {"statement": "SELECT pg_sleep(30)"}}}).to_string());
    let started = Instant::now();
    let refused = ConfigHost::open(tree.options()).err().expect("the source timed out").to_string();
    assert!(refused.contains("plugin sql-writes: load: timed out (limit 500 ms)"), "{refused}");
    assert!(started.elapsed() < Duration::from_secs(9), "cut off at the call's deadline, not the statement timeout: {:?}", started.elapsed());
}
