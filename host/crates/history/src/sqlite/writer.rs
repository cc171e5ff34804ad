//! The single writer thread: group commit of concurrently submitted appends.
//!
//! Every append is a request on a channel. The writer takes one request, then drains whatever
//! else is already queued (up to `max_batch`), applies them all in ONE transaction (one WAL
//! fsync), each inside its own SAVEPOINT so a compare-and-set conflict undoes only that request,
//! and answers every caller only after COMMIT returned. If anything fails at the storage level,
//! the whole transaction is rolled back and every caller of the batch gets the error: nothing is
//! acknowledged that is not on disk.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection};

use super::errors::classify;
use super::read::{self, to_i64, to_u64};
use crate::{Clock, HistoryError, NewAuditEntry, NewChange, PruneReport, Result, Retention};

pub(crate) enum Request {
    /// All changes commit together or not at all; the reply lists their versions in order.
    Append {
        changes: Vec<NewChange>,
        reply: Sender<Result<Vec<u64>>>,
    },
    Prune {
        retention: Retention,
        reply: Sender<Result<PruneReport>>,
    },
    /// Audit lines; committed in the same transaction as the appends queued beside them. No
    /// reply channel: the caller does not wait (a failure is logged to stderr by the writer).
    Audit {
        entries: Vec<NewAuditEntry>,
        reply: Option<Sender<Result<()>>>,
    },
}

pub(crate) struct Writer {
    pub conn: Connection,
    pub path: PathBuf,
    pub busy_timeout: Duration,
    pub max_batch: usize,
    pub clock: Arc<dyn Clock>,
}

/// Why one request of a batch failed: its own fault (only it fails) or the storage's (all fail).
enum ApplyError {
    Rejected(HistoryError),
    Storage(rusqlite::Error),
}

impl From<rusqlite::Error> for ApplyError {
    fn from(error: rusqlite::Error) -> Self {
        ApplyError::Storage(error)
    }
}

/// Appends (each answered with its versions) and audit lines, committed together.
#[derive(Default)]
struct Batch {
    appends: Vec<(Vec<NewChange>, Sender<Result<Vec<u64>>>)>,
    audits: Vec<(Vec<NewAuditEntry>, Option<Sender<Result<()>>>)>,
}

impl Batch {
    fn len(&self) -> usize {
        self.appends.len() + self.audits.len()
    }

    /// Nobody waits for this batch: only queued audit lines.
    fn only_unawaited_audit(&self) -> bool {
        self.appends.is_empty() && self.audits.iter().all(|(_, reply)| reply.is_none())
    }
}

/// How long queued audit lines wait for an append to share its commit (one fsync for both)
/// before they are committed on their own.
const AUDIT_RIDE_ALONG: Duration = Duration::from_millis(50);

impl Writer {
    /// Runs until every sender of `requests` is dropped.
    pub fn run(self, requests: Receiver<Request>) {
        let mut waiting: Option<Request> = None;
        loop {
            let request = match waiting.take() {
                Some(request) => request,
                None => match requests.recv() {
                    Ok(request) => request,
                    Err(_) => return,
                },
            };
            match request {
                Request::Prune { retention, reply } => {
                    let _ = reply.send(self.prune(retention));
                }
                first => {
                    let mut batch = Batch::default();
                    let mut queued = Some(first);
                    while let Some(request) = queued.take() {
                        match request {
                            Request::Append { changes, reply } => {
                                batch.appends.push((changes, reply))
                            }
                            Request::Audit { entries, reply } => {
                                batch.audits.push((entries, reply))
                            }
                            prune @ Request::Prune { .. } => {
                                waiting = Some(prune);
                                break;
                            }
                        }
                        if batch.len() < self.max_batch {
                            queued = requests.try_recv().ok();
                        }
                    }
                    if waiting.is_none() && batch.only_unawaited_audit() {
                        waiting = self.gather_until_an_append(&requests, &mut batch);
                    }
                    self.commit_batch(batch);
                }
            }
        }
    }

    /// Adds requests to a batch of queued audit lines until an append (or an awaited audit)
    /// arrives, the batch is full, or [`AUDIT_RIDE_ALONG`] has passed. Returns a prune that
    /// arrived meanwhile (it runs after this batch).
    fn gather_until_an_append(
        &self,
        requests: &Receiver<Request>,
        batch: &mut Batch,
    ) -> Option<Request> {
        let deadline = std::time::Instant::now() + AUDIT_RIDE_ALONG;
        while batch.len() < self.max_batch {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match requests.recv_timeout(left) {
                Ok(Request::Append { changes, reply }) => {
                    batch.appends.push((changes, reply));
                    return None;
                }
                Ok(Request::Audit { entries, reply }) => {
                    let awaited = reply.is_some();
                    batch.audits.push((entries, reply));
                    if awaited {
                        return None;
                    }
                }
                Ok(prune) => return Some(prune),
                // Timed out, or every sender is gone: commit what there is.
                Err(_) => return None,
            }
        }
        None
    }

    fn fail(&self, error: rusqlite::Error) -> HistoryError {
        classify(&self.path, self.busy_timeout, error)
    }

    fn commit_batch(&self, batch: Batch) {
        match self.try_commit_batch(&batch) {
            Ok(outcomes) => {
                for ((_, reply), outcome) in batch.appends.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
                for (_, reply) in batch.audits {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
            Err(error) => {
                // Undo whatever is pending; an error here means there was nothing left to undo.
                let _ = self.conn.execute_batch("ROLLBACK");
                for (_, reply) in batch.appends {
                    let _ = reply.send(Err(error.clone()));
                }
                for (entries, reply) in batch.audits {
                    match reply {
                        Some(reply) => {
                            let _ = reply.send(Err(error.clone()));
                        }
                        None => eprintln!(
                            "history: {} audit line(s) were not recorded: {error}",
                            entries.len()
                        ),
                    }
                }
            }
        }
    }

    /// Ok: one outcome per request, all committed (or individually rejected). Err: nothing
    /// of the batch is acknowledged.
    fn try_commit_batch(&self, batch: &Batch) -> Result<Vec<Result<Vec<u64>>>> {
        let timestamp_ms = self.clock.now_ms();
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|error| self.fail(error))?;
        let mut outcomes = Vec::with_capacity(batch.appends.len());
        for (changes, _) in &batch.appends {
            // Only a compare-and-set can refuse a request part-way (any other failure fails the
            // batch), so only such a request needs a savepoint to undo it by itself.
            if changes.iter().all(|change| change.expectations.is_empty()) {
                match self.apply_request(changes, timestamp_ms) {
                    Ok(versions) => outcomes.push(Ok(versions)),
                    // Not expected; without a savepoint the request cannot be undone alone.
                    Err(ApplyError::Rejected(error)) => return Err(error),
                    Err(ApplyError::Storage(error)) => return Err(self.fail(error)),
                }
                continue;
            }
            self.conn
                .execute_batch("SAVEPOINT request")
                .map_err(|error| self.fail(error))?;
            match self.apply_request(changes, timestamp_ms) {
                Ok(versions) => {
                    self.conn
                        .execute_batch("RELEASE request")
                        .map_err(|error| self.fail(error))?;
                    outcomes.push(Ok(versions));
                }
                Err(ApplyError::Rejected(error)) => {
                    self.conn
                        .execute_batch("ROLLBACK TO request; RELEASE request")
                        .map_err(|error| self.fail(error))?;
                    outcomes.push(Err(error));
                }
                Err(ApplyError::Storage(error)) => return Err(self.fail(error)),
            }
        }
        for (entries, _) in &batch.audits {
            self.insert_audit(entries, timestamp_ms)
                .map_err(|error| self.fail(error))?;
        }
        self.conn
            .execute_batch("COMMIT")
            .map_err(|error| self.fail(error))?;
        Ok(outcomes)
    }

    fn insert_audit(&self, entries: &[NewAuditEntry], timestamp_ms: i64) -> rusqlite::Result<()> {
        let mut insert = self.conn.prepare_cached(
            "INSERT INTO audit(ts_ms, actor, method, route, env, key, status, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for entry in entries {
            insert.execute(params![
                timestamp_ms,
                entry.actor,
                entry.method,
                entry.route,
                entry.env,
                entry.key,
                entry.status,
                entry.outcome
            ])?;
        }
        Ok(())
    }

    fn apply_request(
        &self,
        changes: &[NewChange],
        timestamp_ms: i64,
    ) -> std::result::Result<Vec<u64>, ApplyError> {
        changes
            .iter()
            .map(|change| self.apply_change(change, timestamp_ms))
            .collect()
    }

    fn apply_change(
        &self,
        change: &NewChange,
        timestamp_ms: i64,
    ) -> std::result::Result<u64, ApplyError> {
        let conn = &self.conn;
        for expectation in &change.expectations {
            let actual = read::key_version(conn, &change.env, &expectation.key)?;
            if actual > expectation.version {
                return Err(ApplyError::Rejected(HistoryError::Conflict {
                    env: change.env.clone(),
                    key: expectation.key.clone(),
                    expected: expectation.version,
                    actual,
                }));
            }
        }
        let override_ops = to_json(&change.override_ops);
        conn.prepare_cached(
            "INSERT INTO records(ts_ms, actor, origin, env, reason, override_ops) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![timestamp_ms, change.actor, change.origin.as_str(), change.env, change.reason, override_ops])?;
        let version = conn.last_insert_rowid();
        let mut insert_change = conn.prepare_cached(
            "INSERT INTO changes(version, env, key, before, after) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for key_change in &change.changes {
            let before = key_change.before.as_ref().map(to_json);
            let after = key_change.after.as_ref().map(to_json);
            insert_change.execute(params![version, change.env, key_change.key, before, after])?;
        }
        let mut set_override = conn.prepare_cached(
            "INSERT INTO overrides(env, key, value, version) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(env, key) DO UPDATE SET value = excluded.value, version = excluded.version",
        )?;
        let mut remove_override =
            conn.prepare_cached("DELETE FROM overrides WHERE env = ?1 AND key = ?2")?;
        for op in &change.override_ops {
            match op {
                crate::OverrideOp::Set { key, value } => {
                    set_override.execute(params![change.env, key, to_json(value), version])?;
                }
                crate::OverrideOp::Remove { key } => {
                    remove_override.execute(params![change.env, key])?;
                }
            }
        }
        Ok(to_u64(version))
    }

    fn prune(&self, retention: Retention) -> Result<PruneReport> {
        let report = self.try_prune(retention).map_err(|error| {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.fail(error)
        })?;
        // Hand freed pages back to the file system; failing here loses nothing.
        let _ = self.conn.execute_batch("PRAGMA incremental_vacuum");
        Ok(report)
    }

    fn try_prune(&self, retention: Retention) -> rusqlite::Result<PruneReport> {
        let conn = &self.conn;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let already = read::pruned_through(conn)?;
        // Always a prefix of versions, so "everything after version V is intact" stays one number.
        let target = match retention {
            Retention::KeepVersions(keep) => read::latest_version(conn)?.saturating_sub(keep),
            Retention::KeepDays(days) => {
                let cutoff = self
                    .clock
                    .now_ms()
                    .saturating_sub(i64::from(days) * 86_400_000);
                let newest_old: i64 = conn
                    .prepare_cached(
                        "SELECT coalesce(max(version), 0) FROM records WHERE ts_ms < ?1",
                    )?
                    .query_row([cutoff], |row| row.get(0))?;
                to_u64(newest_old)
            }
        };
        if target <= already {
            conn.execute_batch("COMMIT")?;
            return Ok(PruneReport {
                pruned_through: already,
                records_pruned: 0,
            });
        }
        let range = params![to_i64(already), to_i64(target)];
        conn.execute(
            "UPDATE changes SET before = NULL, after = NULL WHERE version > ?1 AND version <= ?2",
            range,
        )?;
        let records_pruned = conn.execute(
            "UPDATE records SET override_ops = NULL, pruned = 1 WHERE version > ?1 AND version <= ?2",
            range,
        )?;
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE name = 'pruned_through'",
            [to_i64(target)],
        )?;
        conn.execute_batch("COMMIT")?;
        Ok(PruneReport {
            pruned_through: target,
            records_pruned: records_pruned as u64,
        })
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serializing these plain data types (string keys, JSON values) cannot fail.
    serde_json::to_string(value).expect("history values serialize to JSON")
}
