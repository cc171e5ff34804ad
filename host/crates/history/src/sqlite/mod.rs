//! The embedded SQLite implementation of [`HistoryStore`].

mod errors;
mod read;
mod schema;
mod writer;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use self::errors::classify;
use self::read::ReadError;
use self::writer::{Request, Writer};
use crate::{
    AuditEntry, AuditQuery, Clock, HistoryError, HistoryQuery, HistoryStore, NewAuditEntry,
    NewChange, PruneReport, Record, Result, Retention, StoredValue, SystemClock,
};

/// File name of the history database inside the state directory.
pub const DEFAULT_FILE_NAME: &str = "history.db";

/// Tuning for [`SqliteStore::open_with`].
#[derive(Clone)]
pub struct SqliteOptions {
    /// How long to wait for a lock held by another connection before failing with `Locked`.
    pub busy_timeout: Duration,
    /// Most appends committed in one transaction by the group-commit writer.
    pub max_batch: usize,
    /// Source of record timestamps.
    pub clock: Arc<dyn Clock>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(5),
            max_batch: 1024,
            clock: Arc::new(SystemClock),
        }
    }
}

impl fmt::Debug for SqliteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteOptions")
            .field("busy_timeout", &self.busy_timeout)
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

/// History in one SQLite file (WAL, `synchronous=FULL`), written by one group-commit thread and
/// read through a separate connection.
pub struct SqliteStore {
    path: PathBuf,
    busy_timeout: Duration,
    requests: Option<Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    reader: Mutex<Connection>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed, with its parent directories) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// `<state_dir>/history.db`.
    pub fn open_in_state_dir(state_dir: impl AsRef<Path>) -> Result<Self> {
        Self::open(state_dir.as_ref().join(DEFAULT_FILE_NAME))
    }

    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| HistoryError::Storage {
                path: path.clone(),
                detail: format!("cannot create directory {}: {error}", parent.display()),
            })?;
        }
        let busy_timeout = options.busy_timeout;
        let writer_conn = schema::open_connection(&path, busy_timeout)?;
        schema::ensure_schema(&writer_conn, &path, busy_timeout)?;
        let reader = schema::open_connection(&path, busy_timeout)?;
        reader
            .pragma_update(None, "query_only", true)
            .map_err(|error| classify(&path, busy_timeout, error))?;

        let (requests, receiver) = mpsc::channel();
        let writer = Writer {
            conn: writer_conn,
            path: path.clone(),
            busy_timeout,
            max_batch: options.max_batch.max(1),
            clock: options.clock,
        };
        let handle = std::thread::Builder::new()
            .name("history-writer".to_owned())
            .spawn(move || writer.run(receiver))
            .map_err(|error| HistoryError::Storage {
                path: path.clone(),
                detail: format!("cannot start the writer thread: {error}"),
            })?;
        Ok(SqliteStore {
            path,
            busy_timeout,
            requests: Some(requests),
            writer: Some(handle),
            reader: Mutex::new(reader),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs SQLite's full `PRAGMA integrity_check`; `Corrupt` with its findings if not ok.
    pub fn integrity_check(&self) -> Result<()> {
        let conn = self.reader();
        let mut statement = conn
            .prepare("PRAGMA integrity_check")
            .map_err(|error| self.fail(error))?;
        let findings = statement
            .query_map([], |row| row.get::<_, String>(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|error| self.fail(error))?;
        if findings == ["ok"] {
            return Ok(());
        }
        // A badly damaged file yields thousands of lines; the first few say enough.
        const SHOWN: usize = 5;
        let mut detail = findings
            .iter()
            .take(SHOWN)
            .map(|line| line.trim())
            .collect::<Vec<_>>()
            .join("; ");
        if findings.len() > SHOWN {
            detail.push_str(&format!("; and {} more problems", findings.len() - SHOWN));
        }
        Err(HistoryError::Corrupt {
            path: self.path.clone(),
            detail,
        })
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave the connection half-written: it only reads.
        self.reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn fail(&self, error: rusqlite::Error) -> HistoryError {
        classify(&self.path, self.busy_timeout, error)
    }

    fn fail_read(&self, error: ReadError) -> HistoryError {
        match error {
            ReadError::Sqlite(error) => self.fail(error),
            ReadError::Decode {
                version,
                field,
                detail,
            } => HistoryError::Decode {
                path: self.path.clone(),
                version,
                field,
                detail,
            },
        }
    }

    fn send<T>(&self, make: impl FnOnce(Sender<Result<T>>) -> Request) -> Result<T> {
        let stopped = || HistoryError::WriterStopped {
            path: self.path.clone(),
        };
        let (reply, answer) = mpsc::channel();
        self.requests
            .as_ref()
            .ok_or_else(stopped)?
            .send(make(reply))
            .map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }
}

/// An append handed to the writer thread; [`QueuedAppend::wait`] returns once it is durable.
/// Appends are committed in the order they were queued, so a caller can queue the next change
/// while this one waits for its fsync, and both share one commit.
#[must_use = "an append is acknowledged only by waiting for it"]
pub struct QueuedAppend {
    answer: mpsc::Receiver<Result<Vec<u64>>>,
    path: PathBuf,
}

impl QueuedAppend {
    /// An append already answered (a store that commits before it returns: etcd).
    pub fn answered(result: Result<Vec<u64>>) -> QueuedAppend {
        let (reply, answer) = mpsc::channel();
        let _ = reply.send(result);
        QueuedAppend { answer, path: PathBuf::new() }
    }

    /// The versions of the appended changes, once committed durably.
    pub fn wait(self) -> Result<Vec<u64>> {
        self.answer.recv().map_err(|_| HistoryError::WriterStopped { path: self.path })?
    }
}

impl SqliteStore {
    /// Queues `changes` as one request (like `append_all`) without waiting for the commit.
    pub fn append_all_queued(&self, changes: Vec<NewChange>) -> Result<QueuedAppend> {
        changes.iter().try_for_each(check_change)?;
        let stopped = || HistoryError::WriterStopped { path: self.path.clone() };
        let (reply, answer) = mpsc::channel();
        if changes.is_empty() {
            let _ = reply.send(Ok(Vec::new()));
        } else {
            self.requests.as_ref().ok_or_else(stopped)?.send(Request::Append { changes, reply }).map_err(|_| stopped())?;
        }
        Ok(QueuedAppend { answer, path: self.path.clone() })
    }
}

/// The audit log of the server: every write and every refused request (see docs/HISTORY.md).
/// Not part of [`HistoryStore`]: the change history does not depend on it.
impl SqliteStore {
    /// Records audit lines and returns once they are durable (committed together with any
    /// appends queued at the same time: no extra fsync under load).
    pub fn append_audit(&self, entries: Vec<NewAuditEntry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.send(|reply| Request::Audit {
            entries,
            reply: Some(reply),
        })
    }

    /// Queues audit lines without waiting for the commit (for callers that must not block);
    /// fails only when the writer has stopped. A later storage failure is reported on stderr.
    pub fn queue_audit(&self, entries: Vec<NewAuditEntry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.requests
            .as_ref()
            .and_then(|requests| {
                requests
                    .send(Request::Audit {
                        entries,
                        reply: None,
                    })
                    .ok()
            })
            .ok_or_else(|| HistoryError::WriterStopped {
                path: self.path.clone(),
            })
    }

    /// Audit lines matching `query`, newest first.
    pub fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        read::audit(&self.reader(), query).map_err(|error| self.fail(error))
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer after it has answered everything queued.
        self.requests.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// Rejects malformed changes before they reach a store (shared by every `HistoryStore`).
pub fn check_change(change: &NewChange) -> Result<()> {
    let invalid = |what: String| Err(HistoryError::InvalidChange(what));
    if change.actor.trim().is_empty() {
        return invalid("the actor is empty".to_owned());
    }
    if change.env.trim().is_empty() {
        return invalid("the environment is empty".to_owned());
    }
    // A rollout's step is recorded even when the host recording it serves none of its views:
    // the record is how the other hosts learn of the step (docs/ROLLOUT.md).
    if change.changes.is_empty() && change.override_ops.is_empty() && change.origin != crate::ChangeOrigin::Rollout {
        return invalid(format!(
            "change by `{}` in `{}` changes no key",
            change.actor, change.env
        ));
    }
    let mut seen = HashSet::new();
    for key_change in &change.changes {
        if key_change.key.is_empty() {
            return invalid("a changed key is empty".to_owned());
        }
        if !seen.insert(key_change.key.as_str()) {
            return invalid(format!(
                "key `{}` is listed twice in one change",
                key_change.key
            ));
        }
    }
    if let Some(op) = change.override_ops.iter().find(|op| op.key().is_empty()) {
        return invalid(format!(
            "a {} override operation has an empty key",
            if matches!(op, crate::OverrideOp::Set { .. }) {
                "set"
            } else {
                "remove"
            }
        ));
    }
    Ok(())
}

impl crate::AuditStore for SqliteStore {
    fn append_audit(&self, entries: Vec<NewAuditEntry>) -> Result<()> {
        SqliteStore::append_audit(self, entries)
    }

    fn queue_audit(&self, entries: Vec<NewAuditEntry>) -> Result<()> {
        SqliteStore::queue_audit(self, entries)
    }

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        SqliteStore::audit(self, query)
    }
}

impl HistoryStore for SqliteStore {
    fn append_all_queued(&self, changes: Vec<NewChange>) -> Result<QueuedAppend> {
        SqliteStore::append_all_queued(self, changes)
    }

    fn append(&self, change: NewChange) -> Result<u64> {
        let versions = self.append_all(vec![change])?;
        Ok(versions[0])
    }

    fn append_all(&self, changes: Vec<NewChange>) -> Result<Vec<u64>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        changes.iter().try_for_each(check_change)?;
        self.send(|reply| Request::Append { changes, reply })
    }

    fn get(&self, version: u64) -> Result<Option<Record>> {
        read::get(&self.reader(), version).map_err(|error| self.fail_read(error))
    }

    fn latest_version(&self) -> Result<u64> {
        read::latest_version(&self.reader()).map_err(|error| self.fail(error))
    }

    fn key_version(&self, env: &str, key: &str) -> Result<u64> {
        read::key_version(&self.reader(), env, key).map_err(|error| self.fail(error))
    }

    fn overrides(&self, env: &str) -> Result<BTreeMap<String, StoredValue>> {
        read::overrides(&self.reader(), env).map_err(|error| self.fail_read(error))
    }

    fn override_versions(&self, env: &str) -> Result<BTreeMap<String, u64>> {
        read::override_versions(&self.reader(), env).map_err(|error| self.fail(error))
    }

    fn query(&self, query: &HistoryQuery) -> Result<Vec<Record>> {
        let mut conn = self.reader();
        // One read transaction: a concurrent commit cannot show up half-way through the query.
        let transaction = conn.transaction().map_err(|error| self.fail(error))?;
        read::query(&transaction, query).map_err(|error| self.fail_read(error))
    }

    fn changes_after(&self, env: &str, version: u64) -> Result<Vec<Record>> {
        let mut conn = self.reader();
        let transaction = conn.transaction().map_err(|error| self.fail(error))?;
        let pruned_through =
            read::pruned_through(&transaction).map_err(|error| self.fail(error))?;
        if version < pruned_through {
            return Err(HistoryError::PayloadPruned {
                requested: version,
                pruned_through,
            });
        }
        read::records_after(&transaction, env, version).map_err(|error| self.fail_read(error))
    }

    fn pruned_through(&self) -> Result<u64> {
        read::pruned_through(&self.reader()).map_err(|error| self.fail(error))
    }

    fn prune(&self, retention: Retention) -> Result<PruneReport> {
        self.send(|reply| Request::Prune { retention, reply })
    }
}
