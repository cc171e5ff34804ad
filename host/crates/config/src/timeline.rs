//! The recorded past of a host's views: a view's leaves at an older version, the differences
//! between two versions, rollback planning, and the typed records the server and the CLI render.
//! Recording itself is [`crate::recording`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use potter_engine::{Layer, Rank, Snapshot, View, ViewKey};
use potter_history::{HistoryError, HistoryStore, OverrideOp, Record, StoredValue};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::events::ChangeOrigin;
use crate::recording::{flatten, key_in_view, qualifier, sealed_value, set_leaf, SecretEncoder};
use crate::options::Options;
use crate::runtime::{ConfigHost, SetRequest};

/// The leaves of one view: dotted key -> value (secrets as [`StoredValue::Secret`]).
pub type Leaves = BTreeMap<String, StoredValue>;

impl ConfigHost {
    /// The history database this host records to, shared with its recorder (None when nothing
    /// was ever recorded in its state directory).
    pub fn history_store(&self) -> Result<Option<Arc<dyn HistoryStore>>, Error> {
        self.history_database().existing()
    }

    /// Where the server keeps its tokens when the history is shared (None: `<state>/tokens.json`).
    pub fn shared_documents(&self) -> Option<Arc<dyn potter_history::DocumentStore>> {
        self.history_database().documents()
    }

    /// The audit log kept beside the history (the server's; the SQLite file is created when
    /// missing).
    pub fn audit_log(&self) -> Result<Arc<dyn potter_history::AuditStore>, Error> {
        self.history_database().audit_log()
    }
}

/// The audit part of a record (who, when, which keys), as the CLI and the API render it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordSummary {
    /// The record's version.
    pub version: u64,
    /// RFC 3339, UTC, milliseconds.
    pub timestamp: String,
    /// Who made the change.
    pub actor: String,
    /// `file`, `cli`, `api`, `plugin` or `rollback`.
    pub origin: String,
    /// The environment it changed.
    pub env: String,
    /// Why, when the actor said.
    pub reason: Option<String>,
    /// The record's keys, or the subset a caller may see.
    pub keys: Vec<String>,
    /// True once the record's values were pruned (its keys stay).
    pub pruned: bool,
}

impl RecordSummary {
    /// The summary of `record` listing `keys` (all of its keys, or those a caller may see).
    pub fn of(record: &Record, keys: Vec<String>) -> Self {
        Self {
            version: record.version,
            timestamp: record.timestamp_rfc3339(),
            actor: record.actor.clone(),
            origin: record.origin.as_str().to_owned(),
            env: record.env.clone(),
            reason: record.reason.clone(),
            keys,
            pruned: record.is_pruned(),
        }
    }
}

/// One recorded key change with its values for display (secrets `<redacted>`, absent `null`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShownChange {
    /// The key (qualified when outside the environment's own view: `api_service:api.timeout`).
    pub key: String,
    /// The value before the change.
    pub before: Value,
    /// The value after it.
    pub after: Value,
}

impl ShownChange {
    /// A recorded change of `key` from `before` to `after` (None: absent).
    pub fn new(key: &str, before: &Option<StoredValue>, after: &Option<StoredValue>) -> Self {
        Self { key: key.to_owned(), before: shown_or_null(before), after: shown_or_null(after) }
    }
}

/// One override operation of a record for display: `{"set": key, "value": V}` or `{"remove": key}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ShownOverride {
    /// An override set.
    Set {
        /// The key.
        set: String,
        /// Its value (a secret's `<redacted>`).
        value: Value,
    },
    /// An override removed.
    Remove {
        /// The key.
        remove: String,
    },
}

impl ShownOverride {
    /// The display form of a recorded operation.
    pub fn of(op: &OverrideOp) -> Self {
        match op {
            OverrideOp::Set { key, value } => Self::Set { set: key.clone(), value: shown(value) },
            OverrideOp::Remove { key } => Self::Remove { remove: key.clone() },
        }
    }
}

/// A key that differs between two versions, for display (secrets `<redacted>`, absent `null`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Difference {
    /// The key.
    pub key: String,
    /// Its value at the first version (`null`: absent).
    pub from: Value,
    /// Its value at the second.
    pub to: Value,
}

impl Difference {
    /// The display form of a difference.
    pub fn of(difference: &LeafDifference) -> Self {
        Self { key: difference.key.clone(), from: shown_or_null(&difference.from), to: shown_or_null(&difference.to) }
    }

    /// Every difference of `differences`, in order.
    pub fn all(differences: &[LeafDifference]) -> Vec<Self> {
        differences.iter().map(Self::of).collect()
    }
}

/// A stored value for display, `null` when absent.
fn shown_or_null(value: &Option<StoredValue>) -> Value {
    value.as_ref().map(shown).unwrap_or(Value::Null)
}

/// The leaves of a view now; secrets as `Secret` with their fingerprint (no ciphertext: the
/// current value needs none to be compared or shown).
pub fn current_leaves(options: &Options, view: &View) -> Result<Leaves, Error> {
    let env = view.key().environment.to_string();
    let mut encoder = SecretEncoder::new(options);
    let mut leaves = Leaves::new();
    // Not kept in the view: a timeline reads each view it compares once.
    let whole = view.tree();
    let Value::Object(tree) = &*whole else {
        return Ok(leaves);
    };
    for (key, value) in flatten(tree) {
        let stored = if let Some(sealed) = sealed_value(&value).filter(|_| view.is_secret(&key)) {
            sealed
        } else if view.is_secret(&key) {
            let plaintext = match &value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let segments: Vec<&str> = key.split('.').collect();
            let keyring = encoder.keyring(&env)?;
            let fingerprint = potter_secrets::fingerprint(keyring, &env, &segments, &plaintext).map_err(crate::secret_values::SecretsError::Keyring)?;
            StoredValue::Secret { ciphertext: None, fingerprint }
        } else {
            StoredValue::Plain(value)
        };
        leaves.insert(key, stored);
    }
    Ok(leaves)
}

/// The view's leaves as of `version`: the current leaves with every later change of its
/// environment undone, newest first. Fails with `PayloadPruned` when a needed payload is gone.
pub fn leaves_at(store: &dyn HistoryStore, view: &ViewKey, current: &Leaves, version: u64) -> Result<Leaves, Error> {
    let qualifier = qualifier(view);
    let mut leaves = current.clone();
    let later: Vec<Record> = store.changes_after(&view.environment, version)?;
    for record in later.iter().rev() {
        let Some(payload) = &record.payload else {
            return Err(Error::History(HistoryError::PayloadPruned { requested: version, pruned_through: record.version }));
        };
        for change in &payload.changes {
            let Some(key) = key_in_view(&qualifier, &change.key) else { continue };
            match &change.before {
                Some(value) => leaves.insert(key.to_owned(), value.clone()),
                None => leaves.remove(key),
            };
        }
    }
    Ok(leaves)
}

/// Two stored values mean the same (secrets by fingerprint when both have one).
pub fn same_value(a: &StoredValue, b: &StoredValue) -> bool {
    match (a, b) {
        (StoredValue::Plain(x), StoredValue::Plain(y)) => x == y,
        (StoredValue::Secret { fingerprint: x, .. }, StoredValue::Secret { fingerprint: y, .. }) => x == y,
        _ => false,
    }
}

/// A stored value for display: secrets as `<redacted>`.
pub fn shown(value: &StoredValue) -> Value {
    match value {
        StoredValue::Plain(value) => value.clone(),
        StoredValue::Secret { .. } => Value::String(crate::secret_values::REDACTED.to_owned()),
    }
}

/// Leaves back into a (redacted) tree, for display.
pub fn redacted_tree(leaves: &Leaves) -> Value {
    let mut tree = Map::new();
    for (key, value) in leaves {
        set_leaf(&mut tree, key, shown(value));
    }
    Value::Object(tree)
}

/// One key that differs between two sets of leaves.
#[derive(Debug, Clone, PartialEq)]
pub struct LeafDifference {
    /// The key.
    pub key: String,
    /// Its stored value at the first version (None: absent).
    pub from: Option<StoredValue>,
    /// Its stored value at the second.
    pub to: Option<StoredValue>,
}

/// The keys whose values differ from `from` to `to`, sorted.
pub fn leaf_differences(from: &Leaves, to: &Leaves) -> Vec<LeafDifference> {
    let keys: BTreeSet<&String> = from.keys().chain(to.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let (a, b) = (from.get(key), to.get(key));
            (!same_leaf(a, b)).then(|| LeafDifference { key: key.clone(), from: a.cloned(), to: b.cloned() })
        })
        .collect()
}

/// Two leaves mean the same: both absent, or the same value ([`same_value`]).
fn same_leaf(a: Option<&StoredValue>, b: Option<&StoredValue>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same_value(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// The view's leaves at each of `versions` (the live leaves when nothing was ever recorded).
/// A version after the latest recorded one is `NotFound`.
pub fn leaves_at_versions(host: &ConfigHost, key: &ViewKey, versions: &[u64]) -> Result<Vec<Leaves>, Error> {
    let snapshot = host.snapshot();
    let current = current_leaves(host.options(), snapshot.view(key)?)?;
    let store = host.history_store()?;
    let latest = store.as_ref().map_or(Ok(0), |s| s.latest_version())?;
    let mut out = Vec::with_capacity(versions.len());
    for &version in versions {
        if version > latest {
            return Err(Error::NotFound(format!("history version {version} (the latest is {latest})")));
        }
        out.push(match &store {
            Some(store) => leaves_at(store.as_ref(), key, &current, version)?,
            None => current.clone(),
        });
    }
    Ok(out)
}

/// The leaves of `key`'s view as the layers below its environment's runtime overrides give them
/// now (files, sources, variables, defaults): what the view would be without any override.
pub fn leaves_below_overrides(options: &Options, snapshot: &Snapshot, key: &ViewKey) -> Result<Leaves, Error> {
    snapshot.view(key)?;
    let below: Vec<Arc<Layer>> = snapshot.layers().iter().filter(|layer| layer.rank != Rank::Overrides).cloned().collect();
    current_leaves(options, &View::build(key.clone(), &below))
}

/// What a rollback of one environment to a version does, shared by `potter-config rollback` and
/// `POST /v1/rollback`.
#[derive(Debug, Clone)]
pub struct Rollback {
    /// The environment rolled back.
    pub environment: String,
    /// The version whose content the environment's own view goes back to.
    pub to_version: u64,
    /// Every key of the environment's view that differs, current → then.
    pub differences: Vec<LeafDifference>,
    /// The keys held as runtime overrides after the rollback, sorted: those whose value then
    /// differs from what the layers below the overrides give now. Every other key follows its
    /// files again.
    pub pinned: Vec<String>,
    /// The runtime overrides the rollback removes, sorted: the target view does not need them.
    pub released: Vec<String>,
    /// The new version when applied; None for a dry run or when nothing changes.
    pub applied: Option<u64>,
}

impl Rollback {
    /// True when the view is already the target's and holds no override it does not need.
    pub fn changes_nothing(&self) -> bool {
        self.differences.is_empty() && self.released.is_empty()
    }

    /// `nothing to change`, `dry run, validates` or `applied`, as the CLI and the API say it.
    pub fn outcome(&self, dry_run: bool) -> &'static str {
        match (self.changes_nothing(), dry_run) {
            (true, _) => "nothing to change",
            (false, true) => "dry run, validates",
            (false, false) => "applied",
        }
    }
}

/// Brings `environment`'s own view back to its content at `version` as ONE new version of runtime
/// overrides: validated and recorded like any change (origin `rollback`; the reason defaults to
/// "rollback to version N"). Only the keys whose value then differs from what the layers below
/// the overrides give now are pinned (held as overrides); every other override of the environment
/// is released, so later file edits of those keys take effect. `dry_run` validates without
/// applying; a rollback that would not validate is `Error::Invalid` either way. A pin of a secret
/// whose old ciphertext was not kept, or a pruned payload on the way back, refuses the whole
/// rollback.
pub fn rollback(host: &ConfigHost, environment: &str, version: u64, mut request: SetRequest, dry_run: bool) -> Result<Rollback, Error> {
    let key = ViewKey::environment(environment);
    // The pins are planned against the overrides as recorded, another process's included.
    host.sync_recorded_overrides()?;
    let rebuilding = host.options().progress.begin(&format!("rebuilding `{environment}` at version {version} from the history"), None);
    let then = leaves_at_versions(host, &key, &[version])?.remove(0);
    drop(rebuilding);
    let (current, below) = {
        let snapshot = host.snapshot();
        (current_leaves(host.options(), snapshot.view(&key)?)?, leaves_below_overrides(host.options(), &snapshot, &key)?)
    };
    let held = flatten(&host.overrides(environment));
    let needed = leaf_differences(&below, &then);
    let mut pinned = Vec::with_capacity(needed.len());
    let mut pins = Vec::new();
    for difference in &needed {
        // Absent then: an override of null deletes it, unless a value set above or below it in
        // the same rollback replaces it anyway.
        if difference.to.is_none() && replaced_in_rollback(&needed, &difference.key) {
            continue;
        }
        pinned.push(difference.key.clone());
        // Held already with the value it had then: kept as it is (a secret's ciphertext too).
        if held.contains_key(&difference.key) && same_leaf(current.get(&difference.key), then.get(&difference.key)) {
            continue;
        }
        pins.push((difference.key.clone(), Some(pin_value(environment, version, difference)?)));
    }
    let released: Vec<String> = held.into_keys().filter(|key| pinned.binary_search(key).is_err()).collect();
    // Releases first: a pin may sit above or below a released override.
    let mut edits: Vec<(String, Option<Value>)> = released.iter().map(|key| (key.clone(), None)).collect();
    edits.extend(pins);
    request.origin = ChangeOrigin::Rollback;
    if request.reason.is_none() {
        request.reason = Some(format!("rollback to version {version}"));
    }
    let differences = leaf_differences(&current, &then);
    let mut outcome = Rollback { environment: environment.to_owned(), to_version: version, differences, pinned, released, applied: None };
    // The view is the target's and every override left is a needed pin: nothing to record.
    if edits.is_empty() || outcome.changes_nothing() {
        return Ok(outcome);
    }
    let validating = host.options().progress.begin(&format!("validating the rollback of {} key(s) in every view of `{environment}`", edits.len()), None);
    let snapshot = host.edit_overrides(environment, &edits, request, dry_run)?;
    drop(validating);
    if !dry_run {
        outcome.applied = Some(snapshot.version());
    }
    Ok(outcome)
}

/// The override that gives `difference.key` its value then: the plain value, the ciphertext of a
/// secret, or null for a key absent then.
fn pin_value(environment: &str, version: u64, difference: &LeafDifference) -> Result<Value, Error> {
    match &difference.to {
        Some(StoredValue::Plain(value)) => Ok(value.clone()),
        Some(StoredValue::Secret { ciphertext: Some(ciphertext), .. }) => Ok(Value::String(ciphertext.clone())),
        Some(StoredValue::Secret { ciphertext: None, .. }) => Err(Error::History(HistoryError::InvalidChange(format!(
            "cannot roll back the secret `{}` of `{environment}`: version {version} kept no ciphertext of it",
            difference.key
        )))),
        None => Ok(Value::Null),
    }
}

/// True when another key of `needed` above `key` gets a (non-object) value, or one below it does
/// (its object replaces whatever is at `key`).
fn replaced_in_rollback(needed: &[LeafDifference], key: &str) -> bool {
    needed.iter().any(|other| other.key != key && other.to.is_some() && (potter_engine::is_under(key, &other.key) || potter_engine::is_under(&other.key, key)))
}
