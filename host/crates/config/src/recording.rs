//! Recording every applied change in the history store, and the runtime overrides kept there.
//! What the runtime needs to make a change durable; reading the past (diff, rollback) is
//! [`crate::timeline`].
//!
//! Key naming (see docs/HISTORY.md, "How the host names keys"): one record per affected
//! environment; a key of the environment's own view is its dotted path (`api.rate_limit`), a key
//! of a narrower view is prefixed with the view's qualifier: `api_service:api.timeout`,
//! `@alice:theme.mode`, `api_service@alice:theme.mode`. Secret values are stored as a fresh
//! ciphertext (for rollback) plus a keyed fingerprint (for comparison), never as plaintext.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use potter_engine::{diff, Layer, Snapshot, View, ViewKey};
use potter_history::{AuditStore, HistoryError, HistoryQuery, HistoryStore, NewChange, RecordedOverrides, SqliteStore, StoredValue};
#[cfg(feature = "etcd")]
use potter_history_etcd::EtcdStore;
use potter_secrets::{is_ciphertext, Keyring};
use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::events::Cause;
use crate::options::{Options, StoreChoice};

pub use crate::source::overrides::{flatten, Overrides};
use crate::source::rollout::StagedRollout;

/// The history database of a state directory.
pub fn database_path(state_dir: &Path) -> PathBuf {
    state_dir.join(potter_history::DEFAULT_FILE_NAME)
}

/// Opens the history `options` name on its own (None when nothing was ever recorded in a SQLite
/// state directory), for a reader outside a running host. A host's readers use
/// [`crate::ConfigHost::history_store`].
pub fn open_store(options: &Options) -> Result<Option<Arc<dyn HistoryStore>>, Error> {
    HistoryDatabase::open(options)?.existing()
}

/// The SQLite history of `state_dir` on its own (None when nothing was ever recorded there).
pub fn open_existing(state_dir: &Path) -> Result<Option<SqliteStore>, Error> {
    let path = database_path(state_dir);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(SqliteStore::open(&path)?))
}

/// One host's history store, opened at most once: the recorder, the server's history reads and
/// its audit log share it (one writer thread and group commit for SQLite, one connection for
/// etcd) instead of each opening its own. Everything above it sees the `HistoryStore` and
/// `AuditStore` traits only; which store it is comes from [`Options::store`].
pub struct HistoryDatabase {
    backend: Backend,
    /// What this host knows of the shared store beside the calls it makes (see [`StoreLink`]).
    link: Arc<StoreLink>,
}

/// This host's standing with a shared (etcd) store: whether its watch is connected, which
/// versions it recorded itself (the others are peers' changes to take in), the last peer change
/// it refused, and its registry entry. Unused with SQLite.
#[derive(Default)]
pub struct StoreLink {
    /// Why the store is unreachable, while it is (set by the follower, cleared when it resumes).
    pub unreachable: Mutex<Option<String>>,
    /// Versions this host recorded that the follower has not seen yet.
    pub own_versions: Mutex<BTreeSet<u64>>,
    /// A peer's change was seen that the live snapshot may lack: take the overrides in again.
    pub behind: std::sync::atomic::AtomicBool,
    /// The newest peer record the follower delivered (names who made a change it takes in,
    /// without another read).
    pub latest_peer_record: Mutex<Option<potter_history::Record>>,
    /// The shared store's overrides as of one version, kept current by the follower: what a
    /// peer's change is taken in from without reading etcd again (see [`OverridesMirror`]).
    pub mirror: Mutex<Option<OverridesMirror>>,
    /// A peer's record of a rollout (a step, its end) was followed since the rollouts were last
    /// read: the next take-in reads their document (other records leave them as they were).
    pub rollouts_moved: std::sync::atomic::AtomicBool,
    /// The last peer change this host could not validate (published in its registry entry).
    pub last_refusal: Mutex<Option<String>>,
    /// The store's version when it refused it.
    pub refused_version: Mutex<Option<u64>>,
    /// This host's registry entry, once registered.
    #[cfg(feature = "etcd")]
    pub registration: Mutex<Option<potter_history_etcd::Registration<'static>>>,
    /// The entry as last published.
    #[cfg(feature = "etcd")]
    pub instance: Mutex<Option<potter_history_etcd::InstanceInfo>>,
}

/// The override layers of every environment of the tree exactly as the shared store held them
/// at `version`. Seeded by a full read (version and layers in one read transaction) and moved on
/// by applying each next record's override operations as the follower delivers it: etcd built
/// that record's layers from its predecessor's the same way, so the mirror stays equal to etcd's.
/// A record of an environment the tree lacks moves only the version (a full read leaves such an
/// environment out too). Anything that breaks the chain (a gap, a record without its payload, a
/// reconnect) drops it, and the next take-in reads etcd in full again.
pub struct OverridesMirror {
    /// The store version the layers are as of.
    pub version: u64,
    /// Environment -> its override layer (dotted key -> stored value), for the tree's environments.
    pub overrides: potter_history::OverridesByEnv,
    /// Environment -> dotted key -> the version that set it.
    pub set_at: potter_history::OverrideVersionsByEnv,
}

impl StoreLink {
    /// Replaces the mirror with a full read, unless it is already as new.
    fn seed_mirror(&self, read: &RecordedOverrides) {
        let mut mirror = lock(&self.mirror);
        if mirror.as_ref().is_some_and(|held| held.version >= read.version) {
            return;
        }
        *mirror = Some(OverridesMirror { version: read.version, overrides: read.values.clone(), set_at: read.set_at.clone() });
    }

    /// Moves the mirror on by the record the follower delivered (records come in version order).
    pub fn advance_mirror(&self, record: &potter_history::Record) {
        let mut slot = lock(&self.mirror);
        if record.origin == potter_history::ChangeOrigin::Rollout {
            self.rollouts_moved.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let Some(mirror) = slot.as_mut() else { return };
        if record.version <= mirror.version {
            return; // already in the read it was seeded from
        }
        let (true, Some(payload)) = (record.version == mirror.version + 1, &record.payload) else {
            *slot = None;
            return;
        };
        // An environment this tree lacks is not in a full read either: only the version moves.
        if let Some(layer) = mirror.overrides.get_mut(&record.env) {
            let set_at = mirror.set_at.entry(record.env.clone()).or_default();
            for op in &payload.override_ops {
                op.apply_to(layer);
                op.apply_version_to(set_at, record.version);
            }
        }
        mirror.version = record.version;
    }

    /// Forgets the mirror (the follower reconnected: read in full once).
    pub fn drop_mirror(&self) {
        *lock(&self.mirror) = None;
    }
}

/// Locks a mutex of the link, taking over a poisoned one (its data is plain state).
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

enum Backend {
    /// `<state>/history.db`, opened when it first exists: another process may create it after
    /// this host started.
    Sqlite { path: PathBuf, store: Mutex<Option<Arc<SqliteStore>>> },
    /// Connected at open: a shared store that cannot be reached fails the start, naming it.
    #[cfg(feature = "etcd")]
    Etcd(Arc<EtcdStore>),
}

impl HistoryDatabase {
    /// The SQLite database of `state_dir`, not opened yet.
    pub fn new(state_dir: &Path) -> Self {
        Self { backend: Backend::Sqlite { path: database_path(state_dir), store: Mutex::new(None) }, link: Arc::default() }
    }

    /// The store `options` choose: SQLite in the state directory (opened if the file exists), or
    /// etcd (connected now).
    pub fn open(options: &Options) -> Result<Self, Error> {
        let database = match &options.store {
            StoreChoice::Sqlite => Self::new(&options.state_dir),
            #[cfg(feature = "etcd")]
            StoreChoice::Etcd(etcd) => Self { backend: Backend::Etcd(Arc::new(EtcdStore::connect(etcd.clone())?)), link: Arc::default() },
        };
        database.existing()?;
        Ok(database)
    }

    /// The open store, opening the file if it exists by now (None when nothing was ever recorded
    /// in a SQLite state directory; etcd always exists).
    pub fn existing(&self) -> Result<Option<Arc<dyn HistoryStore>>, Error> {
        match &self.backend {
            Backend::Sqlite { .. } => Ok(self.existing_sqlite()?.map(|store| store as Arc<dyn HistoryStore>)),
            #[cfg(feature = "etcd")]
            Backend::Etcd(store) => Ok(Some(store.clone())),
        }
    }

    /// The open store, creating the SQLite file if it is missing.
    pub fn created(&self) -> Result<Arc<dyn HistoryStore>, Error> {
        match &self.backend {
            Backend::Sqlite { .. } => Ok(self.created_sqlite()?),
            #[cfg(feature = "etcd")]
            Backend::Etcd(store) => Ok(store.clone()),
        }
    }

    /// The audit log kept beside the history (the SQLite file is created if missing).
    pub fn audit_log(&self) -> Result<Arc<dyn AuditStore>, Error> {
        match &self.backend {
            Backend::Sqlite { .. } => Ok(self.created_sqlite()?),
            #[cfg(feature = "etcd")]
            Backend::Etcd(store) => Ok(store.clone()),
        }
    }

    /// Where small shared documents live (the server's tokens) when the history is shared.
    pub fn documents(&self) -> Option<Arc<dyn potter_history::DocumentStore>> {
        #[cfg(feature = "etcd")]
        return self.etcd().map(|store| store.clone() as Arc<dyn potter_history::DocumentStore>);
        #[cfg(not(feature = "etcd"))]
        None
    }

    /// The etcd store when the history is shared (following peers, the instance registry).
    #[cfg(feature = "etcd")]
    pub fn etcd(&self) -> Option<&Arc<EtcdStore>> {
        match &self.backend {
            Backend::Etcd(store) => Some(store),
            Backend::Sqlite { .. } => None,
        }
    }

    /// True when the history is a shared store (etcd), followed for peers' changes.
    pub fn is_shared(&self) -> bool {
        !matches!(self.backend, Backend::Sqlite { .. })
    }

    /// This host's standing with the shared store.
    pub fn link(&self) -> &Arc<StoreLink> {
        &self.link
    }

    // With SQLite the only backend (no `etcd` feature) these patterns cannot fail.
    #[cfg_attr(not(feature = "etcd"), allow(irrefutable_let_patterns))]
    fn existing_sqlite(&self) -> Result<Option<Arc<SqliteStore>>, Error> {
        let Backend::Sqlite { path, store } = &self.backend else { unreachable!("called for SQLite only") };
        let mut slot = store.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() && path.exists() {
            *slot = Some(Arc::new(SqliteStore::open(path)?));
        }
        Ok(slot.clone())
    }

    #[cfg_attr(not(feature = "etcd"), allow(irrefutable_let_patterns))]
    fn created_sqlite(&self) -> Result<Arc<SqliteStore>, Error> {
        let Backend::Sqlite { path, store } = &self.backend else { unreachable!("called for SQLite only") };
        let mut slot = store.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = &*slot {
            return Ok(store.clone());
        }
        let opened = Arc::new(SqliteStore::open(path)?);
        *slot = Some(opened.clone());
        Ok(opened)
    }
}

/// True when `error` says the shared (etcd) store could not be reached or did not answer in
/// time: nothing was acknowledged, and trying again later may succeed (HTTP 503).
pub fn is_store_unavailable(error: &HistoryError) -> bool {
    matches!(error, HistoryError::Storage { path, .. } if path.to_string_lossy().starts_with("etcd://"))
}

/// A runtime override being set or removed, as the history records it.
#[derive(Debug, Clone)]
pub struct OverrideChange {
    /// The environment whose overrides change.
    pub environment: String,
    /// The dotted key path.
    pub key: String,
    /// None removes the override.
    pub value: Option<Value>,
    /// Compare-and-set: refuse if the key changed after this version.
    pub if_version: Option<u64>,
}

/// Writes change records durably before a change is acknowledged.
///
/// The database is created by the first recorded change, so read-only commands on a tree never
/// leave a `history.db` behind.
pub struct Recorder {
    options: Options,
    database: Arc<HistoryDatabase>,
}

impl Recorder {
    /// The recorder for `options` (None when history is switched off). An existing database is
    /// opened now, so a corrupt or foreign file fails the start with an error naming it.
    pub fn open(options: &Options) -> Result<Option<Self>, Error> {
        if !options.history {
            return Ok(None);
        }
        let database = Arc::new(HistoryDatabase::open(options)?);
        Ok(Some(Self { options: options.clone(), database }))
    }

    /// The database this recorder writes to (the host hands it to its history readers).
    pub fn database(&self) -> &Arc<HistoryDatabase> {
        &self.database
    }

    /// The database if it exists; another process may have created it since this host started.
    fn existing_store(&self) -> Option<Arc<dyn HistoryStore>> {
        self.database.existing().ok().flatten()
    }

    fn store_for_writing(&self) -> Result<Arc<dyn HistoryStore>, Error> {
        self.database.created()
    }

    /// The runtime overrides recorded so far, for every environment of the tree, as trees.
    pub fn overrides(&self) -> Result<Overrides, Error> {
        Ok(self.recorded_state()?.1)
    }

    /// The newest recorded version and the overrides as of it (read together where the store can:
    /// one etcd round trip).
    pub(crate) fn recorded_state(&self) -> Result<(u64, Overrides), Error> {
        let Some(store) = self.existing_store() else {
            return Ok((0, Overrides::new()));
        };
        let listing = crate::source::tree::scan(&self.options.root)?;
        let environments: Vec<String> = listing.axes.environments.iter().map(|env| env.to_string()).collect();
        let read = store.overrides_with_version(&environments)?;
        if self.database.is_shared() {
            self.database.link().seed_mirror(&read);
        }
        let version = read.version;
        self.database.link().rollouts_moved.store(false, std::sync::atomic::Ordering::SeqCst);
        Ok((version, overrides_from_stored(read)?.with_rollouts(self.rollouts().staged()?)))
    }

    /// Where the rollouts are kept: beside a shared history, else in the state directory.
    pub fn rollouts(&self) -> crate::rollouts::RolloutStore {
        crate::rollouts::RolloutStore::over(self.database.documents(), &self.options.state_dir)
    }

    /// On a shared store, the followed state (see [`OverridesMirror`]) when it can stand for a
    /// full read: it holds exactly `environments` and is at least as new as `live_version` (a
    /// change of ours already live is in it). None: read in full. The rollouts stay `staged` (the
    /// live ones) unless a rollout's record was followed since.
    pub(crate) fn followed_state(&self, environments: &BTreeSet<String>, live_version: u64, staged: &[StagedRollout]) -> Option<Result<(u64, Overrides), Error>> {
        if !self.database.is_shared() {
            return None;
        }
        let read = {
            let mirror = lock(&self.database.link().mirror);
            let mirror = mirror.as_ref()?;
            if mirror.version < live_version || !mirror.overrides.keys().eq(environments.iter()) {
                return None;
            }
            RecordedOverrides { version: mirror.version, values: mirror.overrides.clone(), set_at: mirror.set_at.clone() }
        };
        let version = read.version;
        // The rollouts are not in the records: a step is read from their document.
        let staged = match self.database.link().rollouts_moved.swap(false, std::sync::atomic::Ordering::SeqCst) {
            true => match self.rollouts().staged() {
                Ok(staged) => staged,
                Err(error) => return Some(Err(error)),
            },
            false => staged.to_vec(),
        };
        Some(overrides_from_stored(read).map(|all| (version, all.with_rollouts(staged))))
    }

    /// On a shared store, the record of `version` if it can be read: who made a change a peer
    /// recorded. (A change another process recorded in this host's SQLite file keeps being
    /// announced as by "another process".)
    pub(crate) fn peer_record(&self, version: u64) -> Option<potter_history::Record> {
        if !self.database.is_shared() {
            return None;
        }
        let store = self.existing_store()?;
        let delivered = lock(&self.database.link().latest_peer_record).clone();
        match delivered {
            Some(record) if record.version == version => Some(record),
            _ => store.get(version).ok().flatten(),
        }
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
        environments.extend(overrides_before.environments().cloned());
        environments.extend(overrides_after.environments().cloned());
        // Only views some changed layer applies to can differ; the rest are not merged at all.
        let changed = before.changed_layers(after);
        let affected = |key: &ViewKey| changed.iter().any(|layer| layer.applies_to(&key.environment, key.service.as_deref(), key.user.as_deref()));
        let both_axes = |key: &ViewKey| before.slot_of(key).is_some() && after.slot_of(key).is_some();
        // Sorted, bases before the views built on them.
        let view_keys: Vec<ViewKey> = if before.axes() == after.axes() {
            // The same views on both sides (every runtime override): those a changed layer reaches.
            after.all_view_keys().into_iter().filter(|key| affected(key)).collect()
        } else {
            let mut keys: BTreeSet<ViewKey> = before.all_view_keys().into_iter().collect();
            keys.extend(after.all_view_keys());
            keys.retain(|key| !both_axes(key) || affected(key));
            keys.into_iter().collect()
        };
        // Where those views can differ at all (None: anywhere). A view present on both sides is
        // compared under these paths only, merged from the layers' nodes there when nobody merged
        // it yet, so a runtime override of one key costs that key, not every view's whole tree.
        let changed_paths = before.changed_paths(after);

        let mut records = Vec::new();
        for env in &environments {
            let mut record = NewChange::new(cause.actor.clone(), cause.origin, env.clone());
            if let Some(reason) = &cause.reason {
                record = record.reason(reason.clone());
            }
            // Each view's changes, kept for the views built on it: a view whose diff is its base's
            // (an environment's override that a service view inherits) takes them from there.
            // Bases sort before the views on them (`None` before `Some`).
            let mut done: FxHashMap<&ViewKey, Rc<ViewChanges>> = FxHashMap::default();
            for key in view_keys.iter().filter(|key| &*key.environment == env.as_str()) {
                let paths = changed_paths.as_deref().filter(|_| both_axes(key));
                let inherited = paths.and_then(|paths| {
                    let base = done.get(&Snapshot::base_key(key)?)?;
                    before.shares_base_diff(after, key, paths, &base.leaves).then(|| base.clone())
                });
                let changes = match inherited {
                    Some(changes) => changes,
                    None => {
                        let leaves = match paths {
                            Some(paths) => before.diff_view_under(after, key, paths),
                            None => diff("", before.view(key).ok().map(|v| v.value()), after.view(key).ok().map(|v| v.value())),
                        };
                        Rc::new(ViewChanges::stored(leaves, &mut secrets, env, before, after, key)?)
                    }
                };
                let qualifier = qualifier(key);
                for (leaf_key, stored_before, stored_after) in &changes.stored {
                    record = record.change(qualified(&qualifier, leaf_key), stored_before.clone(), stored_after.clone());
                }
                done.insert(key, changes);
            }
            let empty = Map::new();
            let old_overrides = flatten(overrides_before.tree(env).unwrap_or(&empty));
            let new_overrides = flatten(overrides_after.tree(env).unwrap_or(&empty));
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
            // A rollout's step is recorded even where this host's views stay as they were: the
            // record is how every other host learns of the step (and the history keeps each one).
            let staged_moved = |overrides: &Overrides| overrides.rollouts().iter().filter(|rollout| &rollout.environment == env).cloned().collect::<Vec<_>>();
            let rollout_step = cause.origin == potter_history::ChangeOrigin::Rollout && staged_moved(overrides_before) != staged_moved(overrides_after);
            if !record.changes.is_empty() || !record.override_ops.is_empty() || rollout_step {
                records.push(record);
            }
        }
        if records.is_empty() {
            return Ok(PendingRecord::Nothing);
        }
        let link = self.database.is_shared().then(|| self.database.link().clone());
        Ok(PendingRecord::Queued(self.store_for_writing()?.append_all_queued(records)?, link))
    }

    /// Compare-and-set over a whole subtree: the store checks the exact key atomically; this
    /// also refuses when a key below it (`api` when `api.rate_limit` changed) changed after `version`.
    pub(crate) fn check_unchanged_since(&self, env: &str, key: &str, version: u64) -> Result<(), Error> {
        let Some(store) = self.existing_store() else {
            return Ok(());
        };
        match changed_since(&*store, env, key, version, true)? {
            Some((_, actual)) => Err(Error::History(HistoryError::Conflict { env: env.to_owned(), key: key.to_owned(), expected: version, actual })),
            None => Ok(()),
        }
    }
}

/// The newest change of `env` after `version` to `key` (with `subtree`: or a key under it): the
/// key that changed and the version that changed it. What a compare-and-set and a change
/// request's conflict check ask the history.
pub(crate) fn changed_since(store: &dyn HistoryStore, env: &str, key: &str, version: u64, subtree: bool) -> Result<Option<(String, u64)>, Error> {
    let query = HistoryQuery::new().env(env).key_prefix(key).limit(1_000);
    for record in store.query(&query)? {
        if record.version <= version {
            break;
        }
        let moved = record.keys.iter().find(|changed| if subtree { potter_engine::is_under(changed, key) } else { changed.as_str() == key });
        if let Some(changed) = moved {
            return Ok(Some((changed.clone(), record.version)));
        }
    }
    Ok(None)
}

/// One view's diff and the values the history keeps of it (secrets sealed).
struct ViewChanges {
    leaves: Vec<potter_engine::KeyChange>,
    stored: Vec<(String, Option<StoredValue>, Option<StoredValue>)>,
}

impl ViewChanges {
    fn stored(leaves: Vec<potter_engine::KeyChange>, secrets: &mut SecretEncoder<'_>, env: &str, before: &Snapshot, after: &Snapshot, key: &ViewKey) -> Result<Self, Error> {
        if leaves.is_empty() {
            return Ok(Self { leaves, stored: Vec::new() });
        }
        let (old_layers, new_layers) = (before.layers_of(key), after.layers_of(key));
        let mut stored = Vec::with_capacity(leaves.len());
        for leaf in &leaves {
            if leaf.new.is_some() {
                check_recordable_key(&leaf.key).map_err(|message| unrecordable(after.view(key).ok().map(|v| &**v), &leaf.key, message))?;
            }
            let stored_before = leaf.old.as_ref().map(|value| secrets.store(env, old_layers.as_deref(), &leaf.key, value)).transpose()?;
            let stored_after = leaf.new.as_ref().map(|value| secrets.store(env, new_layers.as_deref(), &leaf.key, value)).transpose()?;
            stored.push((leaf.key.clone(), stored_before, stored_after));
        }
        Ok(Self { leaves, stored })
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
    /// Handed to the history's group commit; durable once it returns. With a shared store, the
    /// link the versions are noted in as this host's own.
    Queued(potter_history::QueuedAppend, Option<Arc<StoreLink>>),
}

impl PendingRecord {
    /// The last version recorded once durable; None when there was nothing to record.
    pub fn wait(self) -> Result<Option<u64>, Error> {
        match self {
            PendingRecord::Nothing => Ok(None),
            PendingRecord::Queued(queued, link) => {
                let versions = queued.wait()?;
                if let Some(link) = link {
                    lock(&link.own_versions).extend(versions.iter().copied());
                }
                Ok(versions.last().copied())
            }
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
        return key.to_owned();
    }
    let mut text = String::with_capacity(qualifier.len() + 1 + key.len());
    text.push_str(qualifier);
    text.push(':');
    text.push_str(key);
    text
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
pub(crate) struct SecretEncoder<'o> {
    options: &'o Options,
    keyrings: BTreeMap<String, Keyring>,
}

impl<'o> SecretEncoder<'o> {
    pub(crate) fn new(options: &'o Options) -> Self {
        Self { options, keyrings: BTreeMap::new() }
    }

    pub(crate) fn keyring(&mut self, env: &str) -> Result<&Keyring, Error> {
        if !self.keyrings.contains_key(env) {
            let keyring = crate::secret_values::resolve_keyring(self.options, env).map_err(crate::secret_values::SecretsError::Keyring)?;
            self.keyrings.insert(env.to_owned(), keyring);
        }
        Ok(&self.keyrings[env])
    }

    /// A view's value at `key`: plain, or sealed when one of the view's layers marks it secret.
    fn store(&mut self, env: &str, layers: Option<&[Arc<Layer>]>, key: &str, value: &Value) -> Result<StoredValue, Error> {
        let secret = layers.is_some_and(|layers| crate::secret_values::layers_hold_secret(layers, key));
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
                let plaintext = potter_secrets::decrypt(keyring, env, &segments, text).map_err(crate::secret_values::SecretsError::Keyring)?;
                let fingerprint = potter_secrets::fingerprint(keyring, env, &segments, plaintext.expose()).map_err(crate::secret_values::SecretsError::Keyring)?;
                Ok(StoredValue::Secret { ciphertext: Some(text.clone()), fingerprint })
            }
            other => Ok(StoredValue::Plain(other.clone())),
        }
    }

    fn seal(&mut self, env: &str, key: &str, plaintext: &str) -> Result<StoredValue, Error> {
        let segments: Vec<&str> = key.split('.').collect();
        let keyring = self.keyring(env)?;
        let ciphertext = potter_secrets::encrypt(keyring, env, &segments, plaintext).map_err(crate::secret_values::SecretsError::Keyring)?;
        let fingerprint = potter_secrets::fingerprint(keyring, env, &segments, plaintext).map_err(crate::secret_values::SecretsError::Keyring)?;
        Ok(StoredValue::Secret { ciphertext: Some(ciphertext), fingerprint })
    }
}

/// Sets a dotted key in a tree, making objects on the way (a scalar in the way is replaced).
pub fn set_leaf(tree: &mut Map<String, Value>, dotted: &str, value: Value) {
    let segments: Vec<&str> = dotted.split('.').collect();
    potter_engine::merge::set_path(tree, &segments, value);
}

/// A secret the view holds sealed (its environment's keyring is absent, so it is still the
/// ciphertext): kept as that ciphertext, compared by a hash of it.
pub(crate) fn sealed_value(value: &Value) -> Option<StoredValue> {
    match value {
        Value::String(text) if is_ciphertext(text) => Some(StoredValue::Secret { ciphertext: Some(text.clone()), fingerprint: potter_secrets::ciphertext_fingerprint(text) }),
        _ => None,
    }
}

/// Stored override layers as the trees a build takes (a secret stays its ciphertext), each leaf
/// at the version that set it.
fn overrides_from_stored(read: RecordedOverrides) -> Result<Overrides, Error> {
    let mut all = Overrides::new();
    let empty = BTreeMap::new();
    for (env, stored) in read.values {
        let mut leaves = Vec::with_capacity(stored.len());
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
            leaves.push((key, value));
        }
        let set_at = read.set_at.get(&env).unwrap_or(&empty);
        all.insert_recorded(env, leaves, set_at);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use potter_history::{ChangeOrigin, OverrideOp, Payload, Record};
    use serde_json::json;

    fn record(version: u64, env: &str, ops: Option<Vec<OverrideOp>>) -> Record {
        Record {
            version,
            timestamp_ms: 0,
            actor: "peer".into(),
            origin: ChangeOrigin::Api,
            env: env.into(),
            reason: None,
            keys: vec!["a".into()],
            payload: ops.map(|override_ops| Payload { changes: Vec::new(), override_ops }),
        }
    }

    fn set(key: &str, value: serde_json::Value) -> OverrideOp {
        OverrideOp::Set { key: key.into(), value: StoredValue::Plain(value) }
    }

    fn seeded(version: u64) -> StoreLink {
        let link = StoreLink::default();
        let layers = BTreeMap::from([("prod".to_owned(), BTreeMap::from([("a".to_owned(), StoredValue::Plain(json!(1)))])), ("dev".to_owned(), BTreeMap::new())]);
        link.seed_mirror(&RecordedOverrides { version, values: layers, set_at: BTreeMap::new() });
        link
    }

    fn mirrored(link: &StoreLink) -> Option<(u64, potter_history::OverridesByEnv)> {
        lock(&link.mirror).as_ref().map(|mirror| (mirror.version, mirror.overrides.clone()))
    }

    #[test]
    fn the_mirror_moves_on_by_each_next_record_as_etcd_did() {
        let link = seeded(3);
        link.advance_mirror(&record(4, "prod", Some(vec![set("b", json!(2)), OverrideOp::Remove { key: "a".into() }])));
        link.advance_mirror(&record(5, "dev", Some(vec![set("c", json!(3))])));
        let (version, layers) = mirrored(&link).unwrap();
        assert_eq!(version, 5);
        assert_eq!(layers["prod"], BTreeMap::from([("b".to_owned(), StoredValue::Plain(json!(2)))]));
        assert_eq!(layers["dev"], BTreeMap::from([("c".to_owned(), StoredValue::Plain(json!(3)))]));
        let set_at = lock(&link.mirror).as_ref().unwrap().set_at.clone();
        assert_eq!(set_at["prod"], BTreeMap::from([("b".to_owned(), 4)]), "a removal forgets the version, a set notes its own");
        assert_eq!(set_at["dev"], BTreeMap::from([("c".to_owned(), 5)]));
        // A record already in the seed (delivered again, or a prune rewriting it) changes nothing.
        link.advance_mirror(&record(5, "dev", Some(vec![set("c", json!(99))])));
        assert_eq!(mirrored(&link).unwrap(), (version, layers));
    }

    #[test]
    fn anything_that_breaks_the_chain_drops_the_mirror() {
        let gap = seeded(3);
        gap.advance_mirror(&record(5, "prod", Some(vec![set("b", json!(2))])));
        assert!(mirrored(&gap).is_none(), "version 4 was never applied");

        let pruned = seeded(3);
        pruned.advance_mirror(&record(4, "prod", None));
        assert!(mirrored(&pruned).is_none(), "a record without its payload cannot be applied");


        let reconnected = seeded(3);
        reconnected.drop_mirror();
        assert!(mirrored(&reconnected).is_none());
    }

    #[test]
    fn a_record_of_an_environment_the_tree_lacks_only_moves_the_version() {
        let link = seeded(3);
        let before = mirrored(&link).unwrap().1;
        link.advance_mirror(&record(4, "staging", Some(vec![set("b", json!(2))])));
        assert_eq!(mirrored(&link).unwrap(), (4, before));
    }

    #[test]
    fn an_older_read_does_not_replace_a_newer_mirror() {
        let link = seeded(3);
        link.advance_mirror(&record(4, "prod", Some(vec![set("b", json!(2))])));
        link.seed_mirror(&RecordedOverrides { version: 3, ..RecordedOverrides::default() });
        assert_eq!(mirrored(&link).unwrap().0, 4);
        link.seed_mirror(&RecordedOverrides { version: 9, ..RecordedOverrides::default() });
        assert_eq!(mirrored(&link).unwrap().0, 9);
    }
}
