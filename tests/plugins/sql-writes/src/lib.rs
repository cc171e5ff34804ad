//! Hostile test plugin: a source whose `load` sends `plugins.sql-writes.statement` (an INSERT, an
//! UPDATE, a write hidden in a WITH) on `plugins.sql-writes.connection` and reports what the host
//! answered. The host must refuse every write: the statement is not a query, or the READ ONLY
//! transaction refuses it.

wit_bindgen::generate!({
    world: "sql-source",
    path: "../../../wit",
});

use potter::config::{host, sql};

/// The text of `"key": "..."` in the namespace's JSON (no JSON library, to stay tiny; the tests
/// write plain values).
fn setting(config: &str, key: &str) -> Option<String> {
    let start = config.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = config[start..].find('"')? + start;
    Some(config[start..end].to_owned())
}

struct SqlWrites;

impl Guest for SqlWrites {
    fn load(_environment: String) -> Result<String, String> {
        let config = host::namespace_config();
        let connection = setting(&config, "connection").unwrap_or_else(|| "settings-db".to_owned());
        let statement = setting(&config, "statement").ok_or("plugins.sql-writes.statement is not set")?;
        sql::query(&connection, &statement, &[])?;
        Ok(r#"{"written": {"done": true}}"#.to_owned())
    }

    fn poll_interval_ms() -> u32 {
        0
    }

    fn change_token() -> Option<String> {
        None
    }
}

export!(SqlWrites);
