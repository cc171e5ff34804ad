//! Read queries, shared by the reader connection and the writer (CAS checks).

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use crate::prefix::prefix_upper_bound;
use crate::{HistoryQuery, RecordedChange, ChangeOrigin, OverrideOp, Payload, Record, StoredValue};

/// A failure while reading: SQLite's, or a row we cannot decode.
pub(crate) enum ReadError {
    Sqlite(rusqlite::Error),
    Decode {
        version: u64,
        field: &'static str,
        detail: String,
    },
}

impl From<rusqlite::Error> for ReadError {
    fn from(error: rusqlite::Error) -> Self {
        ReadError::Sqlite(error)
    }
}

pub(crate) type ReadResult<T> = std::result::Result<T, ReadError>;

pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Versions are bound as i64; anything above `i64::MAX` is "later than every version".
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn latest_version(conn: &Connection) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT coalesce(max(version), 0) FROM records")?
        .query_row([], |row| row.get::<_, i64>(0))
        .map(to_u64)
}

pub(crate) fn pruned_through(conn: &Connection) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT value FROM meta WHERE name = 'pruned_through'")?
        .query_row([], |row| row.get::<_, i64>(0))
        .map(to_u64)
}

/// The latest version that changed `key` in `env`, 0 if none.
pub(crate) fn key_version(conn: &Connection, env: &str, key: &str) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "SELECT coalesce(max(version), 0) FROM changes WHERE env = ?1 AND key = ?2",
    )?
    .query_row(params![env, key], |row| row.get::<_, i64>(0))
    .map(to_u64)
}

pub(crate) fn overrides(conn: &Connection, env: &str) -> ReadResult<BTreeMap<String, StoredValue>> {
    let mut statement =
        conn.prepare_cached("SELECT key, value FROM overrides WHERE env = ?1 ORDER BY key")?;
    let rows = statement.query_map([env], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut overrides = BTreeMap::new();
    for row in rows {
        let (key, text) = row?;
        let value = serde_json::from_str(&text).map_err(|error| ReadError::Decode {
            version: 0,
            field: "override value",
            detail: format!("key `{key}` in environment `{env}`: {error}"),
        })?;
        overrides.insert(key, value);
    }
    Ok(overrides)
}

/// The version that last set each override of `env`.
pub(crate) fn override_versions(conn: &Connection, env: &str) -> rusqlite::Result<BTreeMap<String, u64>> {
    let mut statement = conn.prepare_cached("SELECT key, version FROM overrides WHERE env = ?1")?;
    let rows = statement.query_map([env], |row| Ok((row.get::<_, String>(0)?, to_u64(row.get::<_, i64>(1)?))))?;
    rows.collect()
}

pub(crate) fn get(conn: &Connection, version: u64) -> ReadResult<Option<Record>> {
    let mut statement = conn.prepare_cached(
        "SELECT version, ts_ms, actor, origin, env, reason, override_ops, pruned FROM records WHERE version = ?1",
    )?;
    let Some(row) = statement
        .query_row([to_i64(version)], RecordRow::read)
        .optional()?
    else {
        return Ok(None);
    };
    row.into_record(conn).map(Some)
}

/// Records of `env` with a version above `version`, oldest first.
pub(crate) fn records_after(conn: &Connection, env: &str, version: u64) -> ReadResult<Vec<Record>> {
    let mut statement = conn.prepare_cached(
        "SELECT version, ts_ms, actor, origin, env, reason, override_ops, pruned FROM records
         WHERE env = ?1 AND version > ?2 ORDER BY version",
    )?;
    let rows = statement.query_map(params![env, to_i64(version)], RecordRow::read)?;
    let rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(|row| row.into_record(conn)).collect()
}

pub(crate) fn query(conn: &Connection, query: &HistoryQuery) -> ReadResult<Vec<Record>> {
    if query.limit == 0 {
        return Ok(Vec::new());
    }
    let versions = match &query.key_prefix {
        Some(prefix) => versions_by_key_prefix(conn, query, prefix)?,
        None => versions_by_record_filters(conn, query)?,
    };
    let mut records = Vec::with_capacity(versions.len());
    for version in versions {
        if let Some(record) = get(conn, version)? {
            records.push(record);
        }
    }
    Ok(records)
}

/// `WHERE` terms on `records` (aliased `r`) for the env/actor/since filters, with their values.
fn record_filters(query: &HistoryQuery, env: bool) -> (String, Vec<SqlValue>) {
    let mut sql = String::new();
    let mut values = Vec::new();
    if env {
        if let Some(env) = &query.env {
            sql.push_str(" AND r.env = ?");
            values.push(SqlValue::Text(env.clone()));
        }
    }
    if let Some(actor) = &query.actor {
        sql.push_str(" AND r.actor = ?");
        values.push(SqlValue::Text(actor.clone()));
    }
    if let Some(since_ms) = query.since_ms {
        sql.push_str(" AND r.ts_ms >= ?");
        values.push(SqlValue::Integer(since_ms));
    }
    (sql, values)
}

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn versions_by_record_filters(conn: &Connection, query: &HistoryQuery) -> ReadResult<Vec<u64>> {
    let (filters, mut values) = record_filters(query, true);
    let sql =
        format!("SELECT r.version FROM records r WHERE 1{filters} ORDER BY r.version DESC LIMIT ?");
    values.push(SqlValue::Integer(limit_i64(query.limit)));
    let mut statement = conn.prepare_cached(&sql)?;
    let versions = statement.query_map(params_from_iter(values), |row| row.get::<_, i64>(0))?;
    Ok(versions
        .map(|v| v.map(to_u64))
        .collect::<rusqlite::Result<_>>()?)
}

/// Newest `limit` versions that changed a key in `[prefix, upper)`.
///
/// Rather than sorting every matching row (a broad prefix can match most of a million rows), it
/// walks the distinct keys of the range with index seeks and takes each key's newest versions
/// above the current cut-off, keeping the best `limit` overall. Cost grows with the number of
/// distinct keys under the prefix, not with the number of records.
fn versions_by_key_prefix(
    conn: &Connection,
    query: &HistoryQuery,
    prefix: &str,
) -> ReadResult<Vec<u64>> {
    // ?1 is the environment or NULL: with NULL the `changes(key, version)` index serves.
    let env_term = |column: &str| match query.env {
        Some(_) => format!("{column} = ?1"),
        None => "?1 IS NULL".to_owned(),
    };
    let upper = prefix_upper_bound(prefix);
    let upper_term = if upper.is_some() {
        "key < ?3"
    } else {
        "?3 IS NULL"
    };
    let next_key_sql = |comparison: &str| {
        format!(
            "SELECT key FROM changes WHERE {} AND key {comparison} ?2 AND {upper_term}
             ORDER BY key LIMIT 1",
            env_term("env")
        )
    };
    let (filters, filter_values) = record_filters(query, false);
    let key_versions_sql = format!(
        "SELECT c.version FROM changes c JOIN records r ON r.version = c.version
         WHERE {} AND c.key = ?2 AND c.version > ?3{filters}
         ORDER BY c.version DESC LIMIT ?",
        env_term("c.env")
    );
    let env_value = query.env.clone().map_or(SqlValue::Null, SqlValue::Text);
    let upper_value = upper.map_or(SqlValue::Null, SqlValue::Text);

    let mut first_key = conn.prepare_cached(&next_key_sql(">="))?;
    let mut key_after = conn.prepare_cached(&next_key_sql(">"))?;
    let mut key_versions = conn.prepare_cached(&key_versions_sql)?;
    let mut best: BTreeSet<u64> = BTreeSet::new();
    let mut candidate: Option<String> = first_key
        .query_row(params![env_value, prefix, upper_value], |row| row.get(0))
        .optional()?;
    while let Some(key) = candidate {
        // Once `limit` versions are held, only newer ones than the oldest held can matter.
        let floor = if best.len() >= query.limit {
            best.first().copied().unwrap_or(0)
        } else {
            0
        };
        let mut values = vec![
            env_value.clone(),
            SqlValue::Text(key.clone()),
            SqlValue::Integer(to_i64(floor)),
        ];
        values.extend(filter_values.iter().cloned());
        values.push(SqlValue::Integer(limit_i64(query.limit)));
        let rows = key_versions.query_map(params_from_iter(values), |row| row.get::<_, i64>(0))?;
        for version in rows {
            best.insert(to_u64(version?));
            if best.len() > query.limit {
                best.pop_first();
            }
        }
        candidate = key_after
            .query_row(params![env_value, key, upper_value], |row| row.get(0))
            .optional()?;
    }
    Ok(best.into_iter().rev().collect())
}

/// A `records` row before its changes are attached.
struct RecordRow {
    version: u64,
    timestamp_ms: i64,
    actor: String,
    origin: String,
    env: String,
    reason: Option<String>,
    override_ops: Option<String>,
    pruned: bool,
}

impl RecordRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(RecordRow {
            version: to_u64(row.get(0)?),
            timestamp_ms: row.get(1)?,
            actor: row.get(2)?,
            origin: row.get(3)?,
            env: row.get(4)?,
            reason: row.get(5)?,
            override_ops: row.get(6)?,
            pruned: row.get(7)?,
        })
    }

    fn into_record(self, conn: &Connection) -> ReadResult<Record> {
        let version = self.version;
        let decode_error = |field: &'static str, detail: String| ReadError::Decode {
            version,
            field,
            detail,
        };
        let origin: ChangeOrigin = self
            .origin
            .parse()
            .map_err(|error: crate::UnknownOrigin| decode_error("origin", error.to_string()))?;
        let mut statement = conn.prepare_cached(
            "SELECT key, before, after FROM changes WHERE version = ?1 ORDER BY rowid",
        )?;
        let rows = statement.query_map([to_i64(version)], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<String>>(2)?,
            ))
        })?;
        let mut keys = Vec::new();
        let mut changes = Vec::new();
        for row in rows {
            let (key, before, after) = row?;
            if !self.pruned {
                let decode = |text: Option<String>,
                              field: &'static str|
                 -> ReadResult<Option<StoredValue>> {
                    text.map(|text| serde_json::from_str(&text))
                        .transpose()
                        .map_err(|error| decode_error(field, format!("key `{key}`: {error}")))
                };
                changes.push(RecordedChange {
                    key: key.clone(),
                    before: decode(before, "before value")?,
                    after: decode(after, "after value")?,
                });
            }
            keys.push(key);
        }
        let payload = if self.pruned {
            None
        } else {
            let override_ops: Vec<OverrideOp> = match self.override_ops {
                Some(text) => serde_json::from_str(&text)
                    .map_err(|error| decode_error("override operations", error.to_string()))?,
                None => Vec::new(),
            };
            Some(Payload {
                changes,
                override_ops,
            })
        };
        Ok(Record {
            version,
            timestamp_ms: self.timestamp_ms,
            actor: self.actor,
            origin,
            env: self.env,
            reason: self.reason,
            keys,
            payload,
        })
    }
}

/// Audit lines matching `query`, newest first.
pub(crate) fn audit(
    conn: &Connection,
    query: &crate::AuditQuery,
) -> rusqlite::Result<Vec<crate::AuditEntry>> {
    let mut sql = String::from(
        "SELECT id, ts_ms, actor, method, route, env, key, status, outcome FROM audit WHERE 1",
    );
    let mut values = Vec::new();
    if let Some(actor) = &query.actor {
        sql.push_str(" AND actor = ?");
        values.push(SqlValue::Text(actor.clone()));
    }
    if let Some(env) = &query.env {
        sql.push_str(" AND env = ?");
        values.push(SqlValue::Text(env.clone()));
    }
    if let Some(status) = query.min_status {
        sql.push_str(" AND status >= ?");
        values.push(SqlValue::Integer(i64::from(status)));
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    values.push(SqlValue::Integer(limit_i64(query.limit)));
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(values), |row| {
        Ok(crate::AuditEntry {
            id: to_u64(row.get(0)?),
            timestamp_ms: row.get(1)?,
            entry: crate::NewAuditEntry {
                actor: row.get(2)?,
                method: row.get(3)?,
                route: row.get(4)?,
                env: row.get(5)?,
                key: row.get(6)?,
                status: row.get(7)?,
                outcome: row.get(8)?,
            },
        })
    })?;
    rows.collect()
}
