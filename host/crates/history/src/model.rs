//! The values the history store records and returns.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What started a change: one type for the runtime's events and the history's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOrigin {
    /// The first load of a tree. Never recorded: it is what the history already holds, and it goes
    /// live before anyone can subscribe.
    Load,
    /// A file of the tree was saved (or a plugin module of the plugins folder arrived or left
    /// along with it).
    File,
    /// The command line.
    Cli,
    /// The HTTP API.
    Api,
    /// A plugin: a source's new output, a module dropped in or removed.
    Plugin,
    /// A rollback to an earlier version.
    Rollback,
    /// A progressive rollout's step, completion or rollback (docs/ROLLOUT.md).
    Rollout,
}

impl ChangeOrigin {
    /// The origins a record can have (every one but [`ChangeOrigin::Load`]).
    pub const RECORDED: [ChangeOrigin; 6] = [
        ChangeOrigin::Cli,
        ChangeOrigin::Api,
        ChangeOrigin::File,
        ChangeOrigin::Plugin,
        ChangeOrigin::Rollback,
        ChangeOrigin::Rollout,
    ];

    /// The lowercase name, as stored and as `--origin` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOrigin::Load => "load",
            ChangeOrigin::Cli => "cli",
            ChangeOrigin::Api => "api",
            ChangeOrigin::File => "file",
            ChangeOrigin::Plugin => "plugin",
            ChangeOrigin::Rollback => "rollback",
            ChangeOrigin::Rollout => "rollout",
        }
    }
}

impl fmt::Display for ChangeOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not one of `cli`, `api`, `file`, `plugin`, `rollback`, `rollout`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown change origin `{0}` (expected cli, api, file, plugin, rollback or rollout)")]
pub struct UnknownOrigin(pub String);

impl FromStr for ChangeOrigin {
    type Err = UnknownOrigin;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ChangeOrigin::RECORDED
            .into_iter()
            .find(|origin| origin.as_str() == text)
            .ok_or_else(|| UnknownOrigin(text.to_owned()))
    }
}

/// A value as the history store keeps it.
///
/// A secret never has a `Value` form here: the caller hands over the ciphertext (so a rollback can
/// restore it) and/or a keyed fingerprint (so two versions can be compared) produced by the secrets
/// layer. There is deliberately no constructor from plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredValue {
    /// A non-secret value. JSON `null` in an override means "delete this key".
    Plain(Value),
    /// A secret, present only as ciphertext and/or a keyed hash.
    Secret {
        ciphertext: Option<String>,
        fingerprint: String,
    },
}

impl StoredValue {
    pub fn plain(value: impl Into<Value>) -> Self {
        StoredValue::Plain(value.into())
    }

    pub fn is_secret(&self) -> bool {
        matches!(self, StoredValue::Secret { .. })
    }

    /// The value with secrets replaced by a fixed marker, for display (`history show`).
    pub fn redacted(&self) -> Value {
        match self {
            StoredValue::Plain(value) => value.clone(),
            StoredValue::Secret { .. } => Value::String("[secret]".to_owned()),
        }
    }
}

/// One key's value before and after a change; `None` means the key was absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedChange {
    pub key: String,
    pub before: Option<StoredValue>,
    pub after: Option<StoredValue>,
}

/// An edit of the runtime override layer of the change's environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideOp {
    /// Set the override of `key` (a `Plain(Value::Null)` value overrides the key to "deleted").
    Set { key: String, value: StoredValue },
    /// Drop the override of `key`, so lower layers show through again.
    Remove { key: String },
}

impl OverrideOp {
    pub fn key(&self) -> &str {
        match self {
            OverrideOp::Set { key, .. } | OverrideOp::Remove { key } => key,
        }
    }

    /// Notes `version` as the one that set the key (a removal forgets it), beside
    /// [`OverrideOp::apply_to`].
    pub fn apply_version_to(&self, versions: &mut std::collections::BTreeMap<String, u64>, version: u64) {
        match self {
            OverrideOp::Set { key, .. } => {
                versions.insert(key.clone(), version);
            }
            OverrideOp::Remove { key } => {
                versions.remove(key);
            }
        }
    }

    /// Applies the edit to an environment's override layer (key -> stored value), as every store
    /// does when it records the change.
    pub fn apply_to(&self, overrides: &mut std::collections::BTreeMap<String, StoredValue>) {
        match self {
            OverrideOp::Set { key, value } => {
                overrides.insert(key.clone(), value.clone());
            }
            OverrideOp::Remove { key } => {
                overrides.remove(key);
            }
        }
    }
}

/// Compare-and-set: the change fails with [`crate::HistoryError::Conflict`] if `key` (in the
/// change's environment) was changed by a version later than `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    pub key: String,
    pub version: u64,
}

/// A change to record. Build it with [`NewChange::new`] and the chained methods.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChange {
    pub actor: String,
    pub origin: ChangeOrigin,
    pub env: String,
    pub reason: Option<String>,
    pub changes: Vec<RecordedChange>,
    pub override_ops: Vec<OverrideOp>,
    pub expectations: Vec<Expectation>,
}

impl NewChange {
    pub fn new(actor: impl Into<String>, origin: ChangeOrigin, env: impl Into<String>) -> Self {
        NewChange {
            actor: actor.into(),
            origin,
            env: env.into(),
            reason: None,
            changes: Vec::new(),
            override_ops: Vec::new(),
            expectations: Vec::new(),
        }
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Records that `key` went from `before` to `after` (`None` = absent).
    pub fn change(
        mut self,
        key: impl Into<String>,
        before: Option<StoredValue>,
        after: Option<StoredValue>,
    ) -> Self {
        self.changes.push(RecordedChange {
            key: key.into(),
            before,
            after,
        });
        self
    }

    pub fn set_override(mut self, key: impl Into<String>, value: StoredValue) -> Self {
        self.override_ops.push(OverrideOp::Set {
            key: key.into(),
            value,
        });
        self
    }

    pub fn remove_override(mut self, key: impl Into<String>) -> Self {
        self.override_ops
            .push(OverrideOp::Remove { key: key.into() });
        self
    }

    /// Compare-and-set on `key`: fail unless its latest change is at or before `version`.
    pub fn expect_unchanged_since(mut self, key: impl Into<String>, version: u64) -> Self {
        self.expectations.push(Expectation {
            key: key.into(),
            version,
        });
        self
    }
}

/// The values of a record; dropped by [`Retention`] pruning while the audit line stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub changes: Vec<RecordedChange>,
    pub override_ops: Vec<OverrideOp>,
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Global, strictly increasing, never reused. Orders records; timestamps do not.
    pub version: u64,
    /// Wall-clock time of the commit in milliseconds since the Unix epoch (UTC); informational.
    pub timestamp_ms: i64,
    pub actor: String,
    pub origin: ChangeOrigin,
    pub env: String,
    pub reason: Option<String>,
    /// The changed keys, kept even after the payload is pruned.
    pub keys: Vec<String>,
    /// `None` once pruned.
    pub payload: Option<Payload>,
}

impl Record {
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.timestamp_ms)
    }

    /// RFC 3339 with milliseconds, e.g. `2026-11-27T11:45:19.123Z`.
    pub fn timestamp_rfc3339(&self) -> String {
        match self.timestamp() {
            Some(time) => time.to_rfc3339_opts(SecondsFormat::Millis, true),
            None => format!("@{}ms", self.timestamp_ms),
        }
    }

    pub fn is_pruned(&self) -> bool {
        self.payload.is_none()
    }
}

/// Filters for [`crate::HistoryStore::query`]; results are newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    pub env: Option<String>,
    /// Records that changed at least one key starting with this text (plain text, no wildcards).
    pub key_prefix: Option<String>,
    /// Records whose timestamp is at or after this many ms since the epoch.
    pub since_ms: Option<i64>,
    pub actor: Option<String>,
    pub limit: usize,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        HistoryQuery {
            env: None,
            key_prefix: None,
            since_ms: None,
            actor: None,
            limit: 100,
        }
    }
}

impl HistoryQuery {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn env(mut self, env: impl Into<String>) -> Self {
        self.env = Some(env.into());
        self
    }

    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = Some(prefix.into());
        self
    }

    pub fn since_ms(mut self, since_ms: i64) -> Self {
        self.since_ms = Some(since_ms);
        self
    }

    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

/// Which payloads to keep when pruning; audit lines are always kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Keep payloads of records younger than this many days (by timestamp).
    KeepDays(u32),
    /// Keep payloads of the newest `n` versions.
    KeepVersions(u64),
}

/// What a prune did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneReport {
    /// Payloads of all versions up to and including this one are gone (0 = none pruned).
    pub pruned_through: u64,
    /// Records whose payload this call dropped.
    pub records_pruned: u64,
}

/// One audited request, as submitted (the store stamps the time when it commits it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAuditEntry {
    /// Who: a token's name, `anonymous` (no credentials) or `unknown token`.
    pub actor: String,
    /// HTTP method (`GET`, `PUT`, ...).
    pub method: String,
    /// The request path (`/v1/config/staging/api.timeout`).
    pub route: String,
    pub env: Option<String>,
    pub key: Option<String>,
    /// The response status (401, 403, 200, ...).
    pub status: u16,
    /// `allowed`, `denied`, `failed`, or `rate-limited`, plus why when known.
    pub outcome: String,
}

/// One audited request as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Increasing with every entry (never reused).
    pub id: u64,
    pub timestamp_ms: i64,
    #[serde(flatten)]
    pub entry: NewAuditEntry,
}

impl AuditEntry {
    pub fn timestamp_rfc3339(&self) -> String {
        DateTime::<Utc>::from_timestamp_millis(self.timestamp_ms)
            .map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true))
            .unwrap_or_else(|| format!("@{}ms", self.timestamp_ms))
    }
}

/// Filters of [`crate::SqliteStore::audit`]: newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub env: Option<String>,
    /// Only entries with at least this status (400: only refusals and failures).
    pub min_status: Option<u16>,
    pub limit: usize,
}

impl Default for AuditQuery {
    fn default() -> Self {
        AuditQuery {
            actor: None,
            env: None,
            min_status: None,
            limit: 100,
        }
    }
}
