//! Potter Config source plugin: configuration rows of a PostgreSQL table.
//!
//! The table has one row per key and environment:
//!
//! ```sql
//! CREATE TABLE settings (
//!     environment text   NOT NULL,
//!     key         text   NOT NULL,             -- dotted key path, e.g. settings.api.timeout
//!     value       text   NOT NULL,             -- JSON text (a jsonb column works too)
//!     version     bigint NOT NULL DEFAULT 1,   -- raised by every write (a sequence or a trigger)
//!     PRIMARY KEY (environment, key)
//! );
//! ```
//!
//! Configured by its namespace, `plugins.postgres-source` (set in the tree like any key):
//!
//! | key | meaning |
//! |---|---|
//! | `connection` | the host's connection to query (default `settings-db`; must be in the manifest's `grants.sql`) |
//! | `table` | the table, `name` or `schema.name` (default `settings`) |
//! | `poll_interval_ms` | how often the host asks again (default 1000; 0: never) |
//!
//! Change detection: `change-token` asks for the environment's `max(version)` and row count, so a
//! poll that finds neither changed costs one small query and no `load`. A write that leaves both
//! alone (an update that does not raise `version`) is not seen until one changes.
//!
//! Everything goes through the host's `potter:config/sql`: the host holds the connection's
//! address and password, refuses connections the signed manifest does not grant, and runs each
//! query in a READ ONLY transaction.

use serde_json::{Map, Value};

wit_bindgen::generate!({
    world: "sql-source",
    path: "../../wit",
});

use potter::config::host;
use potter::config::sql::{self, SqlParam};

struct Settings {
    connection: String,
    /// Quoted for SQL (`"public"."settings"`).
    table_sql: String,
    /// As written, for messages (`public.settings`).
    table: String,
    poll_interval_ms: u32,
}

fn settings() -> Result<Settings, String> {
    let config: Value = serde_json::from_str(&host::namespace_config()).unwrap_or(Value::Null);
    let text = |key: &str, default: &str| config.get(key).and_then(Value::as_str).unwrap_or(default).to_owned();
    let table = text("table", "settings");
    let table_sql = quote_table(&table)?;
    let poll_interval_ms = config.get("poll_interval_ms").and_then(Value::as_u64).map_or(1000, |ms| ms.min(u64::from(u32::MAX)) as u32);
    Ok(Settings { connection: text("connection", "settings-db"), table_sql, table, poll_interval_ms })
}

/// `name` or `schema.name`, each part an identifier (letters, digits, `_`), quoted. Anything
/// else is refused rather than pasted into SQL.
fn quote_table(table: &str) -> Result<String, String> {
    let parts: Vec<&str> = table.split('.').collect();
    let identifier = |part: &&str| {
        part.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if parts.len() > 2 || !parts.iter().all(identifier) {
        return Err(format!("plugins.postgres-source.table `{table}` is not a table name (`name` or `schema.name` of letters, digits and `_`)"));
    }
    Ok(parts.iter().map(|part| format!("\"{part}\"")).collect::<Vec<_>>().join("."))
}

fn query(settings: &Settings, statement: &str, environment: &str) -> Result<Vec<Map<String, Value>>, String> {
    let rows = sql::query(&settings.connection, statement, &[SqlParam::Text(environment.to_owned())])?;
    let rows: Value = serde_json::from_str(&rows).map_err(|e| format!("the host's answer is not JSON: {e}"))?;
    let Value::Array(rows) = rows else { return Err("the host's answer is not an array of rows".into()) };
    Ok(rows.into_iter().filter_map(|row| match row {
        Value::Object(row) => Some(row),
        _ => None,
    }).collect())
}

/// Puts `value` at the dotted `key` of `layer`, refusing a key that is both a value and the
/// prefix of another (`a.b` and `a.b.c`).
fn insert(layer: &mut Map<String, Value>, key: &str, value: Value) -> Result<(), String> {
    let mut parts = key.split('.').peekable();
    let mut node = layer;
    while let Some(part) = parts.next() {
        if part.is_empty() {
            return Err(format!("row `{key}`: not a dotted key path"));
        }
        if parts.peek().is_none() {
            if node.contains_key(part) {
                return Err(format!("row `{key}`: another row already sets a key under it"));
            }
            node.insert(part.to_owned(), value);
            return Ok(());
        }
        let child = node.entry(part.to_owned()).or_insert_with(|| Value::Object(Map::new()));
        node = match child {
            Value::Object(map) => map,
            _ => return Err(format!("row `{key}`: another row sets `{part}` (a prefix of it) to a value")),
        };
    }
    Ok(())
}

struct PostgresSource;

impl Guest for PostgresSource {
    fn load(environment: String) -> Result<String, String> {
        let settings = settings()?;
        let place = format!("{}/{}", settings.connection, settings.table);
        let statement = format!("SELECT key, value::text AS value FROM {} WHERE environment = $1 ORDER BY key", settings.table_sql);
        let rows = query(&settings, &statement, &environment)?;
        let mut layer = Map::new();
        for row in rows {
            let key = row.get("key").and_then(Value::as_str).ok_or_else(|| format!("{place}: a row of {environment} has no text `key`"))?;
            let text = row.get("value").and_then(Value::as_str).ok_or_else(|| format!("{place}: row `{key}` ({environment}): `value` is null"))?;
            let value: Value = serde_json::from_str(text).map_err(|e| format!("{place}: row `{key}` ({environment}): value is not JSON: {e}"))?;
            insert(&mut layer, key, value).map_err(|why| format!("{place}: {why} ({environment})"))?;
        }
        Ok(Value::Object(layer).to_string())
    }

    fn poll_interval_ms() -> u32 {
        settings().map_or(1000, |settings| settings.poll_interval_ms)
    }

    fn change_token() -> Option<String> {
        let settings = settings().ok()?;
        let statement = format!("SELECT count(*) AS rows, coalesce(max(version), 0)::int8 AS version FROM {} WHERE environment = $1", settings.table_sql);
        // A failure here is no token, so the host calls `load`, whose error it reports.
        let rows = query(&settings, &statement, &host::environment()).ok()?;
        let row = rows.first()?;
        Some(format!("version {} rows {}", row.get("version")?, row.get("rows")?))
    }
}

export!(PostgresSource);
