//! Recording every applied change in the history store, the runtime overrides kept there, and
//! reconstructing a view as of an older version (for `diff` and `rollback`).
//!
//! Key naming (see docs/HISTORY.md, "How the host names keys"): one record per affected
//! environment; a key of the environment's own view is its dotted path (`api.rate_limit`), a key
//! of a narrower view is prefixed with the view's qualifier: `api_service:api.timeout`,
//! `@alice:theme.mode`, `api_service@alice:theme.mode`. Secret values are stored as a fresh
//! ciphertext (for rollback) plus a keyed fingerprint (for comparison), never as plaintext.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use potter_engine::{diff, Snapshot, View, ViewKey};
use potter_history::{HistoryError, HistoryQuery, HistoryStore, NewChange, Origin, Record, SqliteStore, StoredValue};
use potter_secrets::{is_ciphertext, Keyring};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::events::{Cause, ChangeOrigin};
use crate::runtime::{Options, OverrideChange};

/// Runtime overrides per environment.
pub type Overrides = BTreeMap<String, Map<String, Value>>;

/// The leaves of one view: dotted key -> value (secrets as [`StoredValue::Secret`]).
pub type Leaves = BTreeMap<String, StoredValue>;

/// The history database of a state directory.
pub fn database_path(state_dir: &Path) -> PathBuf {
    state_dir.join(potter_history::DEFAULT_FILE_NAME)
}

/// Opens the history of `state_dir` if it exists (None when nothing was ever recorded there).
pub fn open_existing(state_dir: &Path) -> Result<Option<SqliteStore>, Error> {
    let path = database_path(state_dir);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(SqliteStore::open(&path)?))
}

/// The open databases of this process by path, so the recorder, the server's history reads and
/// its audit log share one store (one writer thread, one group commit) instead of each opening
/// its own. Weak: a database closes when its last user drops it.
static SHARED_STORES: Mutex<BTreeMap<PathBuf, std::sync::Weak<SqliteStore>>> = Mutex::new(BTreeMap::new());

/// The history database of `state_dir`, created if missing, shared within the process.
pub fn shared_store(state_dir: &Path) -> Result<Arc<SqliteStore>, Error> {
    let path = database_path(state_dir);
    let mut stores = SHARED_STORES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(store) = stores.get(&path).and_then(std::sync::Weak::upgrade) {
        return Ok(store);
    }
    stores.retain(|_, store| store.strong_count() > 0);
    let store = Arc::new(SqliteStore::open(&path)?);
    stores.insert(path, Arc::downgrade(&store));
    Ok(store)
}

/// Like [`shared_store`], but None when nothing was ever recorded in `state_dir`.
pub fn shared_existing(state_dir: &Path) -> Result<Option<Arc<SqliteStore>>, Error> {
    if !database_path(state_dir).exists() {
        return Ok(None);
    }
    shared_store(state_dir).map(Some)
}

/// The history origin of a change origin (the first load counts as a file change).
pub fn origin_of(origin: ChangeOrigin) -> Origin {
    match origin {
        ChangeOrigin::Load | ChangeOrigin::File => Origin::File,
        ChangeOrigin::Cli => Origin::Cli,
        ChangeOrigin::Api => Origin::Api,
        ChangeOrigin::Plugin => Origin::Plugin,
        ChangeOrigin::Rollback => Origin::Rollback,
    }
}

/// Writes change records durably before a change is acknowledged.
///
/// The database is created by the first recorded change, so read-only commands on a tree never
/// leave a `history.db` behind.
pub struct Recorder {
    options: Options,
    store: Mutex<Option<Arc<SqliteStore>>>,
}

impl Recorder {
    /// The recorder for `options` (None when history is switched off). An existing database is
    /// opened now, so a corrupt or foreign file fails the start with an error naming it.
    pub fn open(options: &Options) -> Result<Option<Self>, Error> {
        if !options.history {
            return Ok(None);
        }
        let store = shared_existing(&options.state_dir)?;
        Ok(Some(Self { options: options.clone(), store: Mutex::new(store) }))
    }

    /// The database if it exists; another process may have created it since this host started.
    fn existing_store(&self) -> Option<Arc<SqliteStore>> {
        let mut slot = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = shared_existing(&self.options.state_dir).ok().flatten();
        }
        slot.clone()
    }

    fn store_for_writing(&self) -> Result<Arc<SqliteStore>, Error> {
        let mut slot = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = &*slot {
            return Ok(store.clone());
        }
        let store = shared_store(&self.options.state_dir)?;
        *slot = Some(store.clone());
        Ok(store)
    }

    /// The runtime overrides recorded so far, for every environment of the tree, as trees.
    pub fn overrides(&self) -> Result<Overrides, Error> {
        let Some(store) = self.existing_store() else {
            return Ok(Overrides::new());
        };
        let listing = crate::source::tree::scan(&self.options.root)?;
        let mut all = Overrides::new();
        for env in &listing.axes.environments {
            let stored = store.overrides(env)?;
            if stored.is_empty() {
                continue;
            }
            let mut tree = Map::new();
            for (key, value) in stored {
                let value = match value {
                    StoredValue::Plain(value) => value,
                    StoredValue::Secret { ciphertext: Some(ciphertext), .. } => Value::String(ciphertext),
                    StoredValue::Secret { ciphertext: None, .. } => {
                        return Err(Error::History(HistoryError::InvalidChange(format!(
                            "the runtime override of `{key}` in `{env}` is a secret without its ciphertext; remove it with `potter-config unset {key} --env {env}`"
                        ))))
                    }
                };
                set_leaf(&mut tree, &key, value);
            }
            all.insert(env.to_string(), tree);
        }
        Ok(all)
    }

    /// The newest recorded version.
    pub fn latest_version(&self) -> Result<u64, Error> {
        match self.existing_store() {
            Some(store) => Ok(store.latest_version()?),
            None => Ok(0),
        }
    }

    /// Records the change from `before` to `after` (one record per affected environment, all in
    /// one transaction). The records are queued for the store's group commit, in order;
    /// [`PendingRecord::wait`] returns the last version once durable (none when the change alters
    /// no value and no override).
    pub fn record(
        &self,
        before: &Snapshot,
        after: &Snapshot,
        overrides_before: &Overrides,
        overrides_after: &Overrides,
        change: Option<&OverrideChange>,
        cause: &Cause,
    ) -> Result<PendingRecord, Error> {
        let mut secrets = SecretEncoder::new(&self.options);
        let mut environments: BTreeSet<String> = BTreeSet::new();
        environments.extend(before.axes().environments.iter().map(|e| e.to_string()));
        environments.extend(after.axes().environments.iter().map(|e| e.to_string()));
        environments.extend(overrides_before.keys().cloned());
        environments.extend(overrides_after.keys().cloned());
        // Only views some changed layer applies to can differ; the rest are not merged at all.
        let changed = before.changed_layers(after);
        let affected = |key: &ViewKey| changed.iter().any(|layer| layer.applies_to(&key.environment, key.service.as_deref(), key.user.as_deref()));
        let mut view_keys: BTreeSet<ViewKey> = before.all_view_keys().into_iter().collect();
        view_keys.extend(after.all_view_keys());
        let both_axes = |key: &ViewKey| before.slot_of(key).is_some() && after.slot_of(key).is_some();
        view_keys.retain(|key| !both_axes(key) || affected(key));

        let mut records = Vec::new();
        for env in &environments {
            let mut record = NewChange::new(cause.actor.clone(), origin_of(cause.origin), env.clone());
            if let Some(reason) = &cause.reason {
                record = record.reason(reason.clone());
            }
            for key in view_keys.iter().filter(|key| &*key.environment == env.as_str()) {
                let old = before.view(key).ok();
                let new = after.view(key).ok();
                let qualifier = qualifier(key);
                for leaf in diff("", old.map(|v| v.value()), new.map(|v| v.value())) {
                    if leaf.new.is_some() {
                        check_recordable_key(&leaf.key).map_err(|message| unrecordable(new.map(|v| &**v), &leaf.key, message))?;
                    }
                    let stored_before = leaf.old.as_ref().map(|value| secrets.store(env, old.map(|v| &**v), &leaf.key, value)).transpose()?;
                    let stored_after = leaf.new.as_ref().map(|value| secrets.store(env, new.map(|v| &**v), &leaf.key, value)).transpose()?;
                    record = record.change(qualified(&qualifier, &leaf.key), stored_before, stored_after);
                }
            }
            let empty = Map::new();
            let old_overrides = flatten(overrides_before.get(env).unwrap_or(&empty));
            let new_overrides = flatten(overrides_after.get(env).unwrap_or(&empty));
            for (key, value) in &new_overrides {
                if old_overrides.get(key) != Some(value) {
                    record = record.set_override(key.clone(), secrets.store_override(env, key, value)?);
                }
            }
            for key in old_overrides.keys().filter(|key| !new_overrides.contains_key(*key)) {
                record = record.remove_override(key.clone());
            }
            if let Some(change) = change.filter(|change| &change.environment == env) {
                if let Some(version) = change.if_version {
                    self.check_unchanged_since(env, &change.key, version)?;
                    record = record.expect_unchanged_since(change.key.clone(), version);
                }
            }
            if !record.changes.is_empty() || !record.override_ops.is_empty() {
                records.push(record);
            }
        }
        if records.is_empty() {
            return Ok(PendingRecord::Nothing);
        }
        Ok(PendingRecord::Queued(self.store_for_writing()?.append_all_queued(records)?))
    }

    /// Compare-and-set over a whole subtree: the store checks the exact key atomically; this
    /// also refuses when a key below it (`api` when `api.rate_limit` changed) changed after `version`.
    pub(crate) fn check_unchanged_since(&self, env: &str, key: &str, version: u64) -> Result<(), Error> {
        let Some(store) = self.existing_store() else {
            return Ok(());
        };
        let query = HistoryQuery::new().env(env).key_prefix(key).limit(1_000);
        for record in store.query(&query)? {
            if record.version <= version {
                break;
            }
            if record.keys.iter().any(|changed| potter_engine::is_under(changed, key)) {
                return Err(Error::History(HistoryError::Conflict { env: env.to_owned(), key: key.to_owned(), expected: version, actual: record.version }));
            }
        }
        Ok(())
    }
}

/// The refusal of a key [`check_recordable_key`] refuses, naming where it was written.
fn unrecordable(view: Option<&View>, key: &str, message: String) -> Error {
    let place = view.and_then(|view| view.origin(key)).map(|origin| origin.provenance().source);
    let message = match place {
        Some(place) => format!("{place}: {message}"),
        None => message,
    };
    Error::History(HistoryError::InvalidChange(message))
}

/// Records handed to the history store, not yet known to be durable.
#[must_use = "a change is acknowledged only once its record is durable"]
pub enum PendingRecord {
    /// The change altered no value and no override: nothing to record.
    Nothing,
    Queued(potter_history::QueuedAppend),
}

impl PendingRecord {
    /// The last version recorded once durable; None when there was nothing to record.
    pub fn wait(self) -> Result<Option<u64>, Error> {
        match self {
            PendingRecord::Nothing => Ok(None),
            PendingRecord::Queued(queued) => Ok(queued.wait()?.last().copied()),
        }
    }
}

/// `api_service`, `@alice`, `api_service@alice`, or empty for an environment's own view.
pub fn qualifier(key: &ViewKey) -> String {
    let mut text = String::new();
    if let Some(service) = &key.service {
        text.push_str(service);
    }
    if let Some(user) = &key.user {
        text.push('@');
        text.push_str(user);
    }
    text
}

fn qualified(qualifier: &str, key: &str) -> String {
    if qualifier.is_empty() {
        key.to_owned()
    } else {
        format!("{qualifier}:{key}")
    }
}

/// A recorded key split into the qualifier of its view and the view's own dotted key. A `name:`
/// in front is a qualifier only when it names a view of the record's environment (`qualifiers`,
/// from [`qualifier`]); otherwise the whole text is a key of the environment's own view (a
/// top-level key containing `:` recorded before such keys were refused), never a key with a part
/// cut off.
pub fn recorded_key<'k>(recorded: &'k str, qualifiers: &[String]) -> (&'k str, &'k str) {
    match recorded.split_once(':') {
        Some((prefix, rest)) if !prefix.is_empty() && qualifiers.iter().any(|q| q == prefix) => (prefix, rest),
        _ => ("", recorded),
    }
}

/// Refuses a key the history could not tell apart from a key of a service or user view: the
/// `name:` in front of a recorded key names the view, so a key's first segment may not contain `:`.
pub fn check_recordable_key(key: &str) -> Result<(), String> {
    let first = key.split('.').next().unwrap_or(key);
    if first.contains(':') {
        return Err(format!(
            "key `{key}`: the top-level name `{first}` contains `:`, which the history reserves for naming service and user views (`api_service:api.timeout`); rename it"
        ));
    }
    Ok(())
}

/// The key of a recorded change as seen from the view with `qualifier`, or None when the
/// recorded key belongs to another view.
pub fn key_in_view<'k>(qualifier: &str, recorded: &'k str) -> Option<&'k str> {
    match recorded.split_once(':') {
        // A view qualifier never contains `.`; a `:` after the first `.` is part of a key name.
        Some((prefix, rest)) if !prefix.contains('.') => (prefix == qualifier).then_some(rest),
        _ => qualifier.is_empty().then_some(recorded),
    }
}

/// Turns values into what the store may hold: secrets become ciphertext + fingerprint.
struct SecretEncoder<'o> {
    options: &'o Options,
    keyrings: BTreeMap<String, Keyring>,
}

impl<'o> SecretEncoder<'o> {
    fn new(options: &'o Options) -> Self {
        Self { options, keyrings: BTreeMap::new() }
    }

    fn keyring(&mut self, env: &str) -> Result<&Keyring, Error> {
        if !self.keyrings.contains_key(env) {
            let keyring = crate::secrets::resolve_keyring(self.options, env).map_err(crate::secrets::SecretsError::Keyring)?;
            self.keyrings.insert(env.to_owned(), keyring);
        }
        Ok(&self.keyrings[env])
    }

    /// A view's value at `key`: plain, or (when the view marks it secret) sealed.
    fn store(&mut self, env: &str, view: Option<&View>, key: &str, value: &Value) -> Result<StoredValue, Error> {
        let secret = view.is_some_and(|view| crate::secrets::holds_secret(view, key));
        if !secret {
            return Ok(StoredValue::Plain(value.clone()));
        }
        if let Some(sealed) = sealed_value(value) {
            return Ok(sealed);
        }
        let plaintext = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        self.seal(env, key, &plaintext)
    }

    /// An override leaf: a ciphertext is kept as written (it is what the override layer holds).
    fn store_override(&mut self, env: &str, key: &str, value: &Value) -> Result<StoredValue, Error> {
        match value {
            Value::String(text) if is_ciphertext(text) => {
                let segments: Vec<&str> = key.split('.').collect();
                let keyring = self.keyring(env)?;
                let plaintext = potter_secrets::decrypt(keyring, env, &segments, text).map_err(crate::secrets::SecretsError::Keyring)?;
                let fingerprint = potter_secrets::fingerprint(keyring, env, &segments, plaintext.expose()).map_err(crate::secrets::SecretsError::Keyring)?;
                Ok(StoredValue::Secret { ciphertext: Some(text.clone()), fingerprint })
            }
            other => Ok(StoredValue::Plain(other.clone())),
        }
    }

    fn seal(&mut self, env: &str, key: &str, plaintext: &str) -> Result<StoredValue, Error> {
        let segments: Vec<&str> = key.split('.').collect();
        let keyring = self.keyring(env)?;
        let ciphertext = potter_secrets::encrypt(keyring, env, &segments, plaintext).map_err(crate::secrets::SecretsError::Keyring)?;
        let fingerprint = potter_secrets::fingerprint(keyring, env, &segments, plaintext).map_err(crate::secrets::SecretsError::Keyring)?;
        Ok(StoredValue::Secret { ciphertext: Some(ciphertext), fingerprint })
    }
}

/// The leaves of a tree as `potter_engine::diff` sees them: scalars, arrays, empty objects and
/// nulls are leaves; non-empty objects are walked.
pub fn flatten(tree: &Map<String, Value>) -> BTreeMap<String, Value> {
    fn walk(at: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    walk(&potter_engine::path::join(at, key), child, out);
                }
            }
            other => {
                out.insert(at.to_owned(), other.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    for (key, value) in tree {
        walk(key, value, &mut out);
    }
    out
}

/// The audit part of a record (who, when, which keys) as JSON, shared by the CLI and the API;
/// `keys` is the record's keys, or the subset a caller may see.
pub fn audit_line(record: &potter_history::Record, keys: &impl serde::Serialize) -> Value {
    serde_json::json!({
        "version": record.version,
        "timestamp": record.timestamp_rfc3339(),
        "actor": record.actor,
        "origin": record.origin.as_str(),
        "env": record.env,
        "reason": record.reason,
        "keys": keys,
        "pruned": record.is_pruned(),
    })
}

/// Sets a dotted key in a tree, making objects on the way (a scalar in the way is replaced).
pub fn set_leaf(tree: &mut Map<String, Value>, dotted: &str, value: Value) {
    let segments: Vec<&str> = dotted.split('.').collect();
    potter_engine::merge::set_path(tree, &segments, value);
}

/// A secret the view holds sealed (its environment's keyring is absent, so it is still the
/// ciphertext): kept as that ciphertext, compared by a hash of it.
fn sealed_value(value: &Value) -> Option<StoredValue> {
    match value {
        Value::String(text) if is_ciphertext(text) => Some(StoredValue::Secret { ciphertext: Some(text.clone()), fingerprint: potter_secrets::ciphertext_fingerprint(text) }),
        _ => None,
    }
}

/// The leaves of a view now; secrets as `Secret` with their fingerprint (no ciphertext: the
/// current value needs none to be compared or shown).
pub fn current_leaves(options: &Options, view: &View) -> Result<Leaves, Error> {
    let env = view.key().environment.to_string();
    let mut encoder = SecretEncoder::new(options);
    let mut leaves = Leaves::new();
    let Value::Object(tree) = view.value() else {
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
            let fingerprint = potter_secrets::fingerprint(keyring, &env, &segments, &plaintext).map_err(crate::secrets::SecretsError::Keyring)?;
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
        StoredValue::Secret { .. } => Value::String(crate::secrets::REDACTED.to_owned()),
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
    pub key: String,
    pub from: Option<StoredValue>,
    pub to: Option<StoredValue>,
}

/// The keys whose values differ from `from` to `to`, sorted.
pub fn leaf_differences(from: &Leaves, to: &Leaves) -> Vec<LeafDifference> {
    let keys: BTreeSet<&String> = from.keys().chain(to.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let (a, b) = (from.get(key), to.get(key));
            let same = match (a, b) {
                (Some(a), Some(b)) => same_value(a, b),
                (None, None) => true,
                _ => false,
            };
            (!same).then(|| LeafDifference { key: key.clone(), from: a.cloned(), to: b.cloned() })
        })
        .collect()
}

/// The view's leaves at each of `versions` (the live leaves when nothing was ever recorded).
/// A version after the latest recorded one is `NotFound`.
pub fn leaves_at_versions(host: &crate::runtime::ConfigHost, key: &ViewKey, versions: &[u64]) -> Result<Vec<Leaves>, Error> {
    let snapshot = host.snapshot();
    let current = current_leaves(host.options(), snapshot.view(key)?)?;
    let store = shared_existing(&host.options().state_dir)?;
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

/// What a rollback of one environment to a version does, shared by `potter-config rollback` and
/// `POST /v1/rollback`.
#[derive(Debug, Clone)]
pub struct Rollback {
    pub environment: String,
    /// The version whose content the environment's own view goes back to.
    pub to_version: u64,
    /// Every key of the environment's view that differs, current → then.
    pub differences: Vec<LeafDifference>,
    /// The new version when applied; None for a dry run or when nothing differs.
    pub applied: Option<u64>,
}

/// Brings `environment`'s own view back to its content at `version` as ONE new version of runtime
/// overrides: validated and recorded like any change (origin `rollback`; the reason defaults to
/// "rollback to version N"). `dry_run` validates without applying; a rollback that would not
/// validate is `Error::Invalid` either way. A secret whose old ciphertext was not kept, or a
/// pruned payload on the way back, refuses the whole rollback.
pub fn rollback(host: &crate::runtime::ConfigHost, environment: &str, version: u64, mut request: crate::runtime::SetRequest, dry_run: bool) -> Result<Rollback, Error> {
    let key = ViewKey::environment(environment);
    let then = leaves_at_versions(host, &key, &[version])?.remove(0);
    let current = {
        let snapshot = host.snapshot();
        current_leaves(host.options(), snapshot.view(&key)?)?
    };
    let differences = leaf_differences(&current, &then);
    let mut edits = Vec::with_capacity(differences.len());
    for difference in &differences {
        let value = match &difference.to {
            Some(StoredValue::Plain(value)) => value.clone(),
            Some(StoredValue::Secret { ciphertext: Some(ciphertext), .. }) => Value::String(ciphertext.clone()),
            Some(StoredValue::Secret { ciphertext: None, .. }) => {
                return Err(Error::History(HistoryError::InvalidChange(format!(
                    "cannot roll back the secret `{}` of `{environment}`: version {version} kept no ciphertext of it",
                    difference.key
                ))))
            }
            // Absent then: an override of null deletes it, unless a value set above replaces it anyway.
            None if replaced_by_ancestor(&differences, &difference.key) => continue,
            None => Value::Null,
        };
        edits.push((difference.key.clone(), Some(value)));
    }
    request.origin = ChangeOrigin::Rollback;
    if request.reason.is_none() {
        request.reason = Some(format!("rollback to version {version}"));
    }
    let mut outcome = Rollback { environment: environment.to_owned(), to_version: version, differences, applied: None };
    if edits.is_empty() {
        return Ok(outcome);
    }
    let snapshot = host.edit_overrides(environment, &edits, request, dry_run)?;
    if !dry_run {
        outcome.applied = Some(snapshot.version());
    }
    Ok(outcome)
}

/// True when a key above `key` gets a (non-object) value in the same rollback.
fn replaced_by_ancestor(differences: &[LeafDifference], key: &str) -> bool {
    differences.iter().any(|other| other.key != key && potter_engine::is_under(key, &other.key) && other.to.is_some())
}

/// Differences as JSON (`key`, `from`, `to`), secrets as `<redacted>`.
pub fn differences_json(differences: &[LeafDifference]) -> Vec<Value> {
    let shown_or_null = |value: &Option<StoredValue>| value.as_ref().map(shown).unwrap_or(Value::Null);
    differences.iter().map(|d| serde_json::json!({ "key": d.key, "from": shown_or_null(&d.from), "to": shown_or_null(&d.to) })).collect()
}
