//! Potter Config history: every applied change gets a global version and a durable record before
//! it is acknowledged; the runtime override layer lives beside the records and is updated in the
//! same transaction.
//!
//! ```no_run
//! use potter_history::{HistoryQuery, HistoryStore, NewChange, ChangeOrigin, SqliteStore, StoredValue};
//! use serde_json::json;
//!
//! let store = SqliteStore::open_in_state_dir("/var/lib/potter")?;
//! let seen = store.key_version("prod", "db.pool")?;
//! let version = store.append(
//!     NewChange::new("cli:alice", ChangeOrigin::Cli, "prod")
//!         .reason("more connections for the sale")
//!         .change("db.pool", Some(StoredValue::plain(json!(10))), Some(StoredValue::plain(json!(20))))
//!         .set_override("db.pool", StoredValue::plain(json!(20)))
//!         .expect_unchanged_since("db.pool", seen),
//! )?;
//! assert_eq!(store.overrides("prod")?["db.pool"], StoredValue::plain(json!(20)));
//! let recent = store.query(&HistoryQuery::new().env("prod").key_prefix("db.").limit(20))?;
//! assert_eq!(recent[0].version, version);
//! # Ok::<(), potter_history::HistoryError>(())
//! ```
//!
//! See `docs/HISTORY.md` for the guarantees (durability, ordering, retention, secrets).

mod clock;
mod error;
mod model;
mod prefix;
mod sqlite;

use std::collections::BTreeMap;

pub use clock::{Clock, SystemClock};
pub use error::{HistoryError, Result};
pub use model::{
    AuditEntry, AuditQuery, Expectation, HistoryQuery, RecordedChange, NewAuditEntry, NewChange, ChangeOrigin,
    OverrideOp, Payload, PruneReport, Record, Retention, StoredValue, UnknownOrigin,
};
pub use prefix::prefix_upper_bound;
pub use sqlite::{check_change, QueuedAppend, SqliteOptions, SqliteStore, DEFAULT_FILE_NAME};

/// The server's audit log (every write and every refused request), kept beside the history by
/// both stores but not part of [`HistoryStore`]: the change history does not depend on it.
pub trait AuditStore: Send + Sync {
    /// Records audit lines and returns once they are durable.
    fn append_audit(&self, entries: Vec<NewAuditEntry>) -> Result<()>;

    /// Hands audit lines over without waiting for them to be durable (a request must not wait);
    /// a later failure is logged by the store.
    fn queue_audit(&self, entries: Vec<NewAuditEntry>) -> Result<()>;

    /// Audit lines matching `query`, newest first.
    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>>;
}

/// Each environment's runtime overrides (environment -> key -> value).
pub type OverridesByEnv = BTreeMap<String, BTreeMap<String, StoredValue>>;

/// The version that last set each runtime override (environment -> key -> version; 0 for an
/// override recorded before stores kept it).
pub type OverrideVersionsByEnv = BTreeMap<String, BTreeMap<String, u64>>;

/// Each environment's runtime overrides as of one version, with the version that set each one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordedOverrides {
    /// The newest version.
    pub version: u64,
    /// Environment -> key -> value.
    pub values: OverridesByEnv,
    /// Environment -> key -> the version that set it.
    pub set_at: OverrideVersionsByEnv,
}

/// Small named documents kept beside a shared history (the server's token list), each replaced
/// whole with compare-and-set on its stamp. Implemented by the etcd store; a SQLite host keeps
/// such files in its state directory instead.
pub trait DocumentStore: Send + Sync {
    /// The document's stamp (changes with every replacement) and bytes, None if never written.
    fn read_document(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>>;

    /// Replaces the document if its stamp is still `expected` (None: it must not exist yet);
    /// false when another writer replaced it first (nothing written).
    fn replace_document(&self, name: &str, bytes: Vec<u8>, expected: Option<u64>) -> Result<bool>;

    /// Names the store in messages (`etcd://host:port/prefix`).
    fn describe(&self) -> String;
}

/// A durable, append-only history of configuration changes plus the runtime override layer.
///
/// Implemented by [`SqliteStore`] and by `EtcdStore` (crate `potter-history-etcd`), with one contract:
/// versions are global and strictly increasing, an append returns only once durable, and the
/// override set changes atomically with the record that changes it.
pub trait HistoryStore: Send + Sync {
    /// Records one change (applying its override operations and checking its expectations) and
    /// returns its version once durable. A failed expectation gives [`HistoryError::Conflict`]
    /// and records nothing.
    fn append(&self, change: NewChange) -> Result<u64>;

    /// Records several changes atomically (all or none), in order; returns their versions.
    fn append_all(&self, changes: Vec<NewChange>) -> Result<Vec<u64>>;

    /// [`HistoryStore::append_all`] handed over without waiting for durability where the store
    /// can (SQLite's group commit); by default it appends now and returns the answer.
    fn append_all_queued(&self, changes: Vec<NewChange>) -> Result<QueuedAppend> {
        Ok(QueuedAppend::answered(self.append_all(changes)))
    }

    /// The record with this version, if any.
    fn get(&self, version: u64) -> Result<Option<Record>>;

    /// The newest version, 0 for an empty history.
    fn latest_version(&self) -> Result<u64>;

    /// The latest version that changed `key` in `env`, 0 if it never changed.
    fn key_version(&self, env: &str, key: &str) -> Result<u64>;

    /// The current runtime overrides of `env` (key -> value; a JSON null value deletes the key).
    fn overrides(&self, env: &str) -> Result<BTreeMap<String, StoredValue>>;

    /// The version of the record that last set each current runtime override of `env` (key ->
    /// version; 0 for one recorded before the store kept it).
    fn override_versions(&self, env: &str) -> Result<BTreeMap<String, u64>>;

    /// The newest version and the overrides of each of `envs`, with the versions that set them.
    /// A store that can reads them in one go (etcd: one read transaction, so the overrides are
    /// exactly those of that version, in one round trip); by default one read after the other.
    fn overrides_with_version(&self, envs: &[String]) -> Result<RecordedOverrides> {
        let mut recorded = RecordedOverrides { version: self.latest_version()?, ..RecordedOverrides::default() };
        for env in envs {
            recorded.values.insert(env.clone(), self.overrides(env)?);
            recorded.set_at.insert(env.clone(), self.override_versions(env)?);
        }
        Ok(recorded)
    }

    /// Records matching the filters, newest first, at most `query.limit`.
    fn query(&self, query: &HistoryQuery) -> Result<Vec<Record>>;

    /// Every record of `env` after `version`, oldest first, with payloads: undoing them in
    /// reverse order reconstructs the state as of `version`. Fails with
    /// [`HistoryError::PayloadPruned`] if some of the needed payloads were pruned.
    fn changes_after(&self, env: &str, version: u64) -> Result<Vec<Record>>;

    /// Payloads of versions up to this one have been pruned (0 = none).
    fn pruned_through(&self) -> Result<u64>;

    /// Drops old payloads (values), keeping every audit line (version, who, when, origin, env,
    /// reason, which keys).
    fn prune(&self, retention: Retention) -> Result<PruneReport>;
}
