//! Connection settings and the database schema.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::errors::classify;
use crate::{HistoryError, Result};

/// `PRAGMA application_id` of a Potter history database ("POTH"), so a foreign SQLite file is
/// refused instead of being silently extended with our tables.
const APPLICATION_ID: i64 = 0x504F_5448;
/// Bumped with each migration; a newer file is refused by an older binary.
const SCHEMA_VERSION: i64 = 3;

// Why these shapes:
// - `records.version` is AUTOINCREMENT so a version is never handed out twice, even if rows were
//   ever deleted; prune never deletes records anyway (the audit line stays).
// - `changes` keeps one row per changed key; `before`/`after` are JSON of `StoredValue`, SQL NULL
//   meaning "absent" (or, once `records.pruned = 1`, "dropped by prune").
// - `changes(env, key, version)` and `changes(key, version)` serve prefix ranges and CAS checks.
const SCHEMA: &str = "
CREATE TABLE records (
    version      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms        INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    origin       TEXT NOT NULL,
    env          TEXT NOT NULL,
    reason       TEXT,
    override_ops TEXT,
    pruned       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX records_by_env ON records(env, version);
CREATE INDEX records_by_actor ON records(actor, version);
CREATE INDEX records_by_time ON records(ts_ms);
CREATE TABLE changes (
    version INTEGER NOT NULL,
    env     TEXT NOT NULL,
    key     TEXT NOT NULL,
    before  TEXT,
    after   TEXT
);
CREATE UNIQUE INDEX changes_by_version ON changes(version, key);
CREATE INDEX changes_by_env_key ON changes(env, key, version);
CREATE INDEX changes_by_key ON changes(key, version);
CREATE TABLE overrides (
    env   TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (env, key)
) WITHOUT ROWID;
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta(name, value) VALUES ('pruned_through', 0);
";

// Schema version 2: the server's audit log (every write and every refused request). Separate from
// `records`: an audited request need not change anything, and prune never drops audit lines.
const AUDIT_TABLE: &str = "
CREATE TABLE IF NOT EXISTS audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms   INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    method  TEXT NOT NULL,
    route   TEXT NOT NULL,
    env     TEXT,
    key     TEXT,
    status  INTEGER NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_actor ON audit(actor, id);
";

// Schema version 3: the version that set each override (shown as a runtime override's
// provenance). An override recorded before gets the version of its key's last recorded change,
// the closest the records tell (0 when none is kept).
const OVERRIDE_VERSIONS: &str = "
ALTER TABLE overrides ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
UPDATE overrides SET version = coalesce(
    (SELECT max(changes.version) FROM changes WHERE changes.env = overrides.env AND changes.key = overrides.key), 0);
";

/// Opens a connection with the durability settings every connection of the store shares.
pub(crate) fn open_connection(path: &Path, busy_timeout: Duration) -> Result<Connection> {
    let fail = |error| classify(path, busy_timeout, error);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(fail)?;
    conn.busy_timeout(busy_timeout).map_err(fail)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(fail)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(HistoryError::Storage {
            path: path.to_path_buf(),
            detail: format!("could not switch to WAL journal mode (got `{mode}`)"),
        });
    }
    // FULL: a commit is on disk (WAL fsynced) before we acknowledge it.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(fail)?;
    // A savepoint's statement journal (what undoes one request of a group commit) is scratch
    // space for the open transaction, never needed after a crash: kept in memory, not written to
    // a temporary file page by page (an eighth of a PUT's CPU time when it was on disk).
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(fail)?;
    Ok(conn)
}

/// Creates the schema in an empty file, or checks that an existing file is ours and not newer.
pub(crate) fn ensure_schema(conn: &Connection, path: &Path, busy_timeout: Duration) -> Result<()> {
    let fail = |error| classify(path, busy_timeout, error);
    if read_versions(conn).map_err(fail)? == (0, 0) {
        // auto_vacuum only takes effect before the first table exists; lets prune give space back.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(fail)?;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(fail)?;
        let created = create_if_still_empty(conn, path).map_err(|error| match error {
            SchemaError::Sqlite(error) => fail(error),
            SchemaError::Foreign(error) => error,
        });
        let finished = match created {
            Ok(()) => conn.execute_batch("COMMIT").map_err(fail),
            Err(error) => Err(error),
        };
        if finished.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        finished?;
    }
    let (application_id, user_version) = read_versions(conn).map_err(fail)?;
    if application_id != APPLICATION_ID {
        return Err(incompatible(
            path,
            format!("application_id is {application_id:#x}, expected {APPLICATION_ID:#x}"),
        ));
    }
    if user_version > SCHEMA_VERSION {
        return Err(incompatible(
            path,
            format!("schema version {user_version} is newer than this program's {SCHEMA_VERSION}"),
        ));
    }
    if user_version < SCHEMA_VERSION {
        migrate(conn, user_version).map_err(fail)?;
    }
    Ok(())
}

/// Brings an older schema up to [`SCHEMA_VERSION`] in one transaction (another process may have
/// done it meanwhile: the version is read again under the write lock).
fn migrate(conn: &Connection, from: i64) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let migrated = (|| {
        let current: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if current >= SCHEMA_VERSION {
            return Ok(());
        }
        if from < 2 {
            conn.execute_batch(AUDIT_TABLE)?;
        }
        // A file made at version 3 and marked older (tests do) has the column already.
        let has_versions: bool = conn.query_row("SELECT count(*) > 0 FROM pragma_table_info('overrides') WHERE name = 'version'", [], |row| row.get(0))?;
        if from < 3 && !has_versions {
            conn.execute_batch(OVERRIDE_VERSIONS)?;
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
    })();
    match migrated {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(error) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

enum SchemaError {
    Sqlite(rusqlite::Error),
    Foreign(HistoryError),
}

impl From<rusqlite::Error> for SchemaError {
    fn from(error: rusqlite::Error) -> Self {
        SchemaError::Sqlite(error)
    }
}

fn create_if_still_empty(conn: &Connection, path: &Path) -> std::result::Result<(), SchemaError> {
    // Another process may have created the schema between our check and the write lock.
    if read_versions(conn)? != (0, 0) {
        return Ok(());
    }
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))?;
    if tables > 0 {
        return Err(SchemaError::Foreign(incompatible(
            path,
            "it already holds other tables".to_owned(),
        )));
    }
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(AUDIT_TABLE)?;
    conn.pragma_update(None, "application_id", APPLICATION_ID)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(())
}

fn read_versions(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    let application_id = conn.query_row("PRAGMA application_id", [], |row| row.get(0))?;
    let user_version = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    Ok((application_id, user_version))
}

fn incompatible(path: &Path, detail: String) -> HistoryError {
    HistoryError::Incompatible {
        path: path.to_path_buf(),
        detail,
    }
}
