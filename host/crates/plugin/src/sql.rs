//! Read-only SQL for sources granted connections (`[grants] sql = ["settings-db"]`), the host
//! side of `potter:config/sql`.
//!
//! The operator configures connections on the host (`<state>/sql-connections.toml`: a URL
//! without a password, the password in a host variable the plugin never sees); a plugin names
//! one. Every query is checked before anything is sent — the connection must be granted by the
//! signed manifest and configured here, and the statement must be a single SELECT — and then runs
//! in a READ ONLY transaction under a statement timeout, with ceilings on rows and result bytes.
//! The guest waits inside an async host call, so the plugin's own time limit still ends it at its
//! deadline (the call's future is dropped, and with it the connection). Refusals fail in the
//! guest with a message naming the connection, and are logged with the plugin's name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{pin_mut, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use crate::manifest::{pick_limit, LimitRequest};

/// Where the operator's connections are kept unless the host is told otherwise.
pub const SQL_CONNECTIONS_FILE: &str = "sql-connections.toml";
/// Largest connections file read.
const MAX_CONNECTIONS_FILE_BYTES: u64 = 1 << 20;

/// Per-call limits on SQL, from the manifest's `[limits]` (`sql_queries`, `sql_rows`,
/// `sql_result_kib`, `sql_statement_ms`) within the host's ceilings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlLimits {
    /// Queries one call may run.
    pub queries: u32,
    /// Rows one query may return; one more fails the query.
    pub rows: u32,
    /// Largest result of one query as JSON text, in KiB.
    pub result_kib: u32,
    /// PostgreSQL's `statement_timeout` for each query, in milliseconds (the connect is bounded
    /// by it too).
    pub statement_ms: u32,
}

impl SqlLimits {
    /// The host's defaults: 8 queries, 10 000 rows, 1 MiB, 2 s.
    pub const DEFAULT: SqlLimits = SqlLimits { queries: 8, rows: 10_000, result_kib: 1024, statement_ms: 2_000 };
    /// The host's ceilings: 64 queries, 100 000 rows, 16 MiB, 10 s (the call limit's maximum).
    pub const MAXIMA: SqlLimits = SqlLimits { queries: 64, rows: 100_000, result_kib: 16 * 1024, statement_ms: 10_000 };

    /// Applies a manifest's request, refusing 0 and anything above the ceilings.
    pub fn resolve(request: &LimitRequest) -> Result<SqlLimits, String> {
        let (d, m) = (SqlLimits::DEFAULT, SqlLimits::MAXIMA);
        Ok(SqlLimits {
            queries: pick_limit("sql_queries", request.sql_queries, d.queries, m.queries)?,
            rows: pick_limit("sql_rows", request.sql_rows, d.rows, m.rows)?,
            result_kib: pick_limit("sql_result_kib", request.sql_result_kib, d.result_kib, m.result_kib)?,
            statement_ms: pick_limit("sql_statement_ms", request.sql_statement_ms, d.statement_ms, m.statement_ms)?,
        })
    }
}

/// A connection name: what a grant and the operator's file use (`settings-db`).
pub fn is_connection_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One connection as the operator writes it in `sql-connections.toml`:
///
/// ```toml
/// [connections.settings-db]
/// url = "postgresql://potter_reader@db.internal:5432/settings"   # no password here
/// password_env = "SETTINGS_DB_PASSWORD"                          # read by the host only
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionEntry {
    url: String,
    #[serde(default)]
    password_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionsFile {
    #[serde(default)]
    connections: BTreeMap<String, ConnectionEntry>,
}

/// A configured connection, ready to connect (the password, if any, is read when connecting).
#[derive(Clone)]
struct Connection {
    config: tokio_postgres::Config,
    password_env: Option<String>,
}

impl std::fmt::Debug for Connection {
    // Shows where, never a password (there is none in the config, but a variable's value could be).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("hosts", &self.config.get_hosts()).field("password_env", &self.password_env).finish_non_exhaustive()
    }
}

/// The operator's connections, read from `path`. An absent file is no connection at all.
/// A URL that carries a password is refused: the password belongs in a variable.
fn read_connections(path: &Path) -> Result<BTreeMap<String, Connection>, String> {
    let text = match potter_files::read_regular_to_string(path, MAX_CONNECTIONS_FILE_BYTES) {
        Ok(text) => text,
        Err(error) if error.is_not_found() => return Ok(BTreeMap::new()),
        Err(error) => return Err(error.to_string()),
    };
    let file: ConnectionsFile = toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.to_string().trim()))?;
    let mut connections = BTreeMap::new();
    for (name, entry) in file.connections {
        let bad = |why: String| format!("{}: connection `{name}`: {why}", path.display());
        if !is_connection_name(&name) {
            return Err(bad("a name is 1-64 characters of letters, digits, `-` and `_`".into()));
        }
        let config: tokio_postgres::Config = entry.url.parse().map_err(|e| bad(format!("url: {e}")))?;
        if config.get_password().is_some() {
            return Err(bad("the url carries a password; put it in a variable named by `password_env`".into()));
        }
        connections.insert(name, Connection { config, password_env: entry.password_env });
    }
    Ok(connections)
}

/// The host variables holding the configured connections' passwords, each with its connection:
/// no plugin may be granted them (`grants.env`). Unreadable files name none (their queries fail).
pub(crate) fn password_variables(path: &Path) -> Vec<(String, String)> {
    read_connections(path)
        .map(|connections| connections.into_iter().filter_map(|(name, connection)| connection.password_env.map(|variable| (variable, name))).collect())
        .unwrap_or_default()
}

/// What one plugin may query: its granted connections (those the operator configured, or why
/// the file could not be read) and its limits. Built once per loaded version.
pub(crate) struct SqlPolicy {
    plugin: Arc<str>,
    granted: Vec<String>,
    connections: Result<BTreeMap<String, Connection>, String>,
    file: PathBuf,
    pub(crate) limits: SqlLimits,
}

impl SqlPolicy {
    /// `granted` are the manifest's `grants.sql`; the connections come from `file`, of which
    /// only the granted ones are kept.
    pub(crate) fn new(plugin: Arc<str>, granted: Vec<String>, file: PathBuf, limits: SqlLimits) -> SqlPolicy {
        let connections = read_connections(&file).map(|mut all| {
            all.retain(|name, _| granted.contains(name));
            all
        });
        SqlPolicy { plugin, granted, connections, file, limits }
    }

    /// No connection at all (a plugin without `grants.sql`): every query is refused.
    pub(crate) fn none(plugin: Arc<str>) -> SqlPolicy {
        SqlPolicy { plugin, granted: Vec::new(), connections: Ok(BTreeMap::new()), file: PathBuf::new(), limits: SqlLimits::DEFAULT }
    }

    fn granted(&self) -> String {
        if self.granted.is_empty() { "none".to_owned() } else { self.granted.join(", ") }
    }

    /// The configured connection `name`, or why the query is refused before anything is sent.
    fn admit(&self, name: &str, statement: &str) -> Result<Connection, String> {
        if !self.granted.iter().any(|granted| granted == name) {
            return Err(format!("sql connection `{name}`: refused: not granted to plugin {} (grants.sql: {})", self.plugin, self.granted()));
        }
        if let Some(first) = first_keyword(statement).filter(|word| !READ_KEYWORDS.contains(&word.to_ascii_lowercase().as_str())) {
            return Err(format!("sql connection `{name}`: refused: only a read-only SELECT is allowed (the statement begins with `{first}`)"));
        }
        let connections = self.connections.as_ref().map_err(|why| format!("sql connection `{name}`: the host's connections file is unusable: {why}"))?;
        connections.get(name).cloned().ok_or_else(|| {
            format!("sql connection `{name}`: not configured on this host (add `[connections.{name}]` to {})", self.file.display())
        })
    }
}

/// Statements a source may send: queries. Anything else is refused before it is sent (and a
/// write hidden in a query, `WITH x AS (INSERT ...)`, fails in the READ ONLY transaction).
const READ_KEYWORDS: [&str; 4] = ["select", "with", "values", "table"];

/// The statement's first word, after blanks, comments and opening parentheses.
fn first_keyword(statement: &str) -> Option<&str> {
    let mut rest = statement;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, next)| next);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, next)| next);
        } else {
            break;
        }
    }
    let end = rest.find(|c: char| !c.is_ascii_alphanumeric() && c != '_').unwrap_or(rest.len());
    Some(&rest[..end]).filter(|word| !word.is_empty()).or(Some("(nothing)"))
}

/// A parameter of a query, converted to the type PostgreSQL inferred for it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Null,
    Boolean(bool),
    Integer(i64),
    Float(f64),
    Text(String),
}

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let mismatch = || -> Box<dyn std::error::Error + Sync + Send> { format!("cannot pass {self:?} as a {ty} parameter").into() };
        match self {
            Param::Null => Ok(IsNull::Yes),
            Param::Boolean(value) if *ty == Type::BOOL => value.to_sql(ty, out),
            Param::Integer(value) => match *ty {
                Type::INT2 => i16::try_from(*value).map_err(|_| mismatch())?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*value).map_err(|_| mismatch())?.to_sql(ty, out),
                Type::INT8 => value.to_sql(ty, out),
                Type::FLOAT8 => (*value as f64).to_sql(ty, out),
                _ => Err(mismatch()),
            },
            Param::Float(value) => match *ty {
                Type::FLOAT4 => (*value as f32).to_sql(ty, out),
                Type::FLOAT8 => value.to_sql(ty, out),
                _ => Err(mismatch()),
            },
            Param::Text(value) => match *ty {
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => value.as_str().to_sql(ty, out),
                Type::JSON | Type::JSONB => serde_json::from_str::<Value>(value).map_err(|e| -> Box<dyn std::error::Error + Sync + Send> { format!("not JSON: {e}").into() })?.to_sql(ty, out),
                _ => Err(mismatch()),
            },
            Param::Boolean(_) => Err(mismatch()),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`, which names the type it could not convert to.
        true
    }

    to_sql_checked!();
}

/// The SQL state of one store: the plugin's policy, this call's query count, what the host
/// refused, and which connections and tables the call read (the provenance of a source's layer).
pub(crate) struct SqlSession {
    policy: Arc<SqlPolicy>,
    queries_this_call: u32,
    refusals: Vec<String>,
    origins: BTreeSet<String>,
}

impl SqlSession {
    pub(crate) fn new(policy: Arc<SqlPolicy>) -> SqlSession {
        SqlSession { policy, queries_this_call: 0, refusals: Vec::new(), origins: BTreeSet::new() }
    }

    pub(crate) fn begin_call(&mut self) {
        self.queries_this_call = 0;
        self.refusals.clear();
        self.origins.clear();
    }

    pub(crate) fn first_refusal(&self) -> Option<String> {
        self.refusals.first().cloned()
    }

    /// What the call read: `connection: table, ...` per connection queried.
    pub(crate) fn origins(&self) -> Vec<String> {
        self.origins.iter().cloned().collect()
    }

    fn refuse(&mut self, reason: String) -> String {
        tracing::warn!(plugin = %self.policy.plugin, "sql query refused: {reason}");
        if self.refusals.len() < 16 {
            self.refusals.push(reason.clone());
        }
        reason
    }

    /// Runs one query for the guest: rows as JSON text, or a message naming the connection.
    pub(crate) async fn query(&mut self, connection: &str, statement: &str, params: Vec<Param>) -> Result<String, String> {
        let admitted = self.policy.admit(connection, statement);
        let settings = match admitted {
            Ok(settings) => settings,
            Err(reason) => return Err(self.refuse(reason)),
        };
        if self.queries_this_call >= self.policy.limits.queries {
            let reason = format!("sql connection `{connection}`: refused: plugin {} reached its limit of {} query(ies) per call (limits.sql_queries)", self.policy.plugin, self.policy.limits.queries);
            return Err(self.refuse(reason));
        }
        self.queries_this_call += 1;
        match run(settings, self.policy.limits, statement, &params).await {
            Ok((rows, tables)) => {
                let tables = if tables.is_empty() { String::new() } else { format!(": {}", tables.join(", ")) };
                self.origins.insert(format!("{connection}{tables}"));
                Ok(rows)
            }
            Err(Failure::Limit(why)) => Err(self.refuse(format!("sql connection `{connection}`: {why}"))),
            Err(Failure::Database(why)) => Err(format!("sql connection `{connection}`: {why}")),
        }
    }
}

enum Failure {
    /// A host limit: refused and logged like a refusal.
    Limit(String),
    /// What the database (or the way to it) said.
    Database(String),
}

fn database(error: tokio_postgres::Error) -> Failure {
    Failure::Database(match error.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => error.to_string(),
    })
}

/// Aborts the connection's task when the query is over or cut off at the call's deadline.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects, runs `statement` in a READ ONLY transaction under the limits, and returns the rows
/// as JSON text and the tables their columns came from.
async fn run(settings: Connection, limits: SqlLimits, statement: &str, params: &[Param]) -> Result<(String, Vec<String>), Failure> {
    let mut config = settings.config;
    let statement_limit = Duration::from_millis(u64::from(limits.statement_ms));
    config.connect_timeout(statement_limit);
    config.application_name("potter-config");
    if let Some(variable) = &settings.password_env {
        match std::env::var(variable) {
            Ok(password) => {
                config.password(password);
            }
            Err(_) => return Err(Failure::Database(format!("the password variable {variable} is not set on the host"))),
        }
    }
    let connected = tokio::time::timeout(statement_limit, config.connect(tokio_postgres::NoTls)).await;
    let (mut client, connection) = match connected {
        Err(_) => return Err(Failure::Limit(format!("connect timed out (limit {} ms, limits.sql_statement_ms)", limits.statement_ms))),
        Ok(connected) => connected.map_err(database)?,
    };
    let _connection = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let transaction = client.build_transaction().read_only(true).start().await.map_err(database)?;
    transaction.batch_execute(&format!("SET LOCAL statement_timeout = {}", limits.statement_ms)).await.map_err(database)?;
    let prepared = transaction.prepare(statement).await.map_err(database)?;
    if prepared.params().len() != params.len() {
        return Err(Failure::Database(format!("the statement has {} parameter(s), {} given", prepared.params().len(), params.len())));
    }
    let columns: Vec<(String, Type)> = prepared.columns().iter().map(|c| (c.name().to_owned(), c.type_().clone())).collect();
    let table_oids: BTreeSet<u32> = prepared.columns().iter().filter_map(|c| c.table_oid()).filter(|oid| *oid != 0).collect();

    let limit_bytes = u64::from(limits.result_kib) * 1024;
    let mut size = 2u64;
    let mut rows = Vec::new();
    let stream = transaction.query_raw(&prepared, params.iter()).await.map_err(database)?;
    pin_mut!(stream);
    while let Some(row) = stream.try_next().await.map_err(database)? {
        if rows.len() as u64 >= u64::from(limits.rows) {
            return Err(Failure::Limit(format!("the result has more than {} rows (limits.sql_rows)", limits.rows)));
        }
        let mut object = Map::new();
        for (index, (name, ty)) in columns.iter().enumerate() {
            object.insert(name.clone(), column_value(&row, index, name, ty)?);
        }
        let object = Value::Object(object);
        size += object.to_string().len() as u64 + 1;
        if size > limit_bytes {
            return Err(Failure::Limit(format!("the result exceeds the limit of {limit_bytes} bytes (limits.sql_result_kib)")));
        }
        rows.push(object);
    }
    let mut tables = Vec::new();
    for oid in table_oids {
        let row = transaction.query_one("SELECT $1::oid::regclass::text", &[&oid]).await.map_err(database)?;
        tables.push(row.get::<_, String>(0));
    }
    // Nothing was written (the transaction is read-only); ending it is only good manners.
    transaction.rollback().await.map_err(database)?;
    Ok((Value::Array(rows).to_string(), tables))
}

/// One column of a row as JSON, by its PostgreSQL type.
fn column_value(row: &tokio_postgres::Row, index: usize, name: &str, ty: &Type) -> Result<Value, Failure> {
    let get_failed = |e: tokio_postgres::Error| Failure::Database(format!("column `{name}`: {e}"));
    let value = match *ty {
        Type::BOOL => row.try_get::<_, Option<bool>>(index).map_err(get_failed)?.map(Value::from),
        Type::INT2 => row.try_get::<_, Option<i16>>(index).map_err(get_failed)?.map(Value::from),
        Type::INT4 => row.try_get::<_, Option<i32>>(index).map_err(get_failed)?.map(Value::from),
        Type::INT8 => row.try_get::<_, Option<i64>>(index).map_err(get_failed)?.map(Value::from),
        Type::OID => row.try_get::<_, Option<u32>>(index).map_err(get_failed)?.map(Value::from),
        // NaN and infinities have no JSON form: null.
        Type::FLOAT4 => row.try_get::<_, Option<f32>>(index).map_err(get_failed)?.map(|v| Value::from(f64::from(v))),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(index).map_err(get_failed)?.map(Value::from),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => row.try_get::<_, Option<String>>(index).map_err(get_failed)?.map(Value::from),
        Type::JSON | Type::JSONB => row.try_get::<_, Option<Value>>(index).map_err(get_failed)?,
        _ => return Err(Failure::Database(format!("column `{name}` has type {ty}, which the host does not convert; cast it (`::text`, `::float8`)"))),
    };
    Ok(value.unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(granted: &[&str]) -> SqlPolicy {
        let mut connections = BTreeMap::new();
        connections.insert("settings-db".to_owned(), Connection { config: "host=127.0.0.1 user=reader".parse().unwrap(), password_env: None });
        SqlPolicy { plugin: Arc::from("demo"), granted: granted.iter().map(|g| g.to_string()).collect(), connections: Ok(connections), file: PathBuf::from("state/sql-connections.toml"), limits: SqlLimits::DEFAULT }
    }

    #[test]
    fn only_granted_connections_and_only_queries_are_admitted() {
        let granted = policy(&["settings-db", "other"]);
        assert!(granted.admit("settings-db", "SELECT 1").is_ok());
        assert!(granted.admit("settings-db", "  -- why\n /* a */ (select 1)").is_ok());
        assert!(granted.admit("settings-db", "WITH x AS (SELECT 1) SELECT * FROM x").is_ok());
        let refused = granted.admit("billing", "SELECT 1").unwrap_err();
        assert_eq!(refused, "sql connection `billing`: refused: not granted to plugin demo (grants.sql: settings-db, other)");
        let write = granted.admit("settings-db", "insert into t values (1)").unwrap_err();
        assert!(write.contains("only a read-only SELECT is allowed (the statement begins with `insert`)"), "{write}");
        assert!(granted.admit("settings-db", "").unwrap_err().contains("`(nothing)`"));
        let unconfigured = granted.admit("other", "SELECT 1").unwrap_err();
        assert!(unconfigured.contains("not configured on this host (add `[connections.other]` to state/sql-connections.toml)"), "{unconfigured}");
        assert!(policy(&[]).admit("settings-db", "SELECT 1").unwrap_err().contains("(grants.sql: none)"));
    }

    #[test]
    fn a_connections_file_with_a_password_in_the_url_is_refused() {
        let dir = std::env::temp_dir().join(format!("potter-sql-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(SQL_CONNECTIONS_FILE);
        assert!(read_connections(&file).unwrap().is_empty(), "an absent file is no connection");
        std::fs::write(&file, "[connections.db]\nurl = \"postgresql://u:hunter2@127.0.0.1/db\"\n").unwrap();
        let refused = read_connections(&file).err().unwrap();
        assert!(refused.contains("connection `db`: the url carries a password") && !refused.contains("hunter2"), "{refused}");
        std::fs::write(&file, "[connections.db]\nurl = \"postgresql://u@127.0.0.1:5433/db\"\npassword_env = \"DB_PASSWORD\"\n").unwrap();
        let read = read_connections(&file).unwrap();
        assert_eq!(read["db"].password_env.as_deref(), Some("DB_PASSWORD"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn limits_resolve_within_the_ceilings() {
        let request = crate::manifest::LimitRequest { sql_rows: Some(500), ..Default::default() };
        assert_eq!(SqlLimits::resolve(&request).unwrap().rows, 500);
        let too_many = crate::manifest::LimitRequest { sql_rows: Some(1_000_000), ..Default::default() };
        assert!(SqlLimits::resolve(&too_many).unwrap_err().contains("limits.sql_rows = 1000000 exceeds the host maximum of 100000"));
    }
}
