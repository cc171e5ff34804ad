//! The running configuration: loads layers, builds snapshots and swaps them atomically.
//!
//! Every change — the first load ([`ConfigHost::open`]), a reload (a file save, a plugin swap, a
//! source poll), a runtime override set or removed, a batch or rollback ([`ConfigHost::edit_overrides`])
//! and overrides another process recorded — is built and checked under the writer lock, then goes
//! live through one function, `ConfigHost::commit`: it waits until the change's history record is
//! durable and every change staged before it is live, swaps the snapshot in, publishes it (with the
//! overrides it was built from) and its `Applied` event, and tells namespace plugins. A failed
//! change leaves the previous snapshot live.
//!
//! Readers never take the writer lock: the snapshot is one atomic pointer read; the overrides, the
//! plugin list and the next plugin poll come from what the last commit or writer published; and
//! [`ConfigHost::validate`] shares the checks with a change in progress (a change takes them for
//! writing only to re-read the schemas or register a plugin's validators, never across a plugin
//! call of its own). During a reload, readers see the configuration from before it until it is live.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use arc_swap::ArcSwap;
use potter_engine::{Layer, RecordedVersion, Snapshot, View, ViewKey};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use potter_engine::Severity;
use potter_validate::{Report, SchemaSet, Validation};

use crate::error::Error;
use crate::events::{Cause, ChangeOrigin, EventBus, Published, RefusedBy, Subscription, DEFAULT_CAPACITY};
use crate::options::Options;
use crate::plugin_folder::{Plugins, SourceRefresh};
use crate::recording::OverrideChange;
use crate::source::defaults::{PluginDefaults, SchemaDefaults};
use crate::source::env::EnvSource;
use crate::source::overrides::{Overrides, OverridesSource};
use crate::source::plugin::PluginSources;
use crate::source::rollout::RolloutSource;
use crate::source::tree::{self, TreeSource};
use crate::source::{BuildContext, Source};

/// A [`ConfigHost`] that does not keep it alive.
#[derive(Clone)]
pub(crate) struct WeakHost(std::sync::Weak<Shared>);

impl WeakHost {
    /// The host, unless it was dropped.
    pub(crate) fn upgrade(&self) -> Option<ConfigHost> {
        self.0.upgrade().map(|shared| ConfigHost { shared })
    }
}

#[cfg(feature = "etcd")]
impl crate::fleet::Peer for WeakHost {
    fn resync(&self) -> Option<Result<bool, Error>> {
        Some(self.upgrade()?.resync_recorded_overrides())
    }

    fn live_version(&self) -> Option<u64> {
        Some(self.upgrade()?.snapshot().version())
    }

    fn unhealthy(&self) -> Option<String> {
        self.upgrade()?.reported_unhealthy().map(|unhealthy| unhealthy.reason)
    }
}

/// The configuration host an application embeds.
#[derive(Clone)]
pub struct ConfigHost {
    shared: Arc<Shared>,
}

struct Shared {
    options: Options,
    current: ArcSwap<Snapshot>,
    /// The overrides the live snapshot was built from (published with it by the commit).
    overrides: ArcSwap<Overrides>,
    /// What the plugins looked like when the writer lock was last released.
    plugin_readings: ArcSwap<PluginReadings>,
    /// The checks of `WriterState::checks`: [`ConfigHost::validate`] reads them beside a change.
    checks: Arc<RwLock<Validation>>,
    /// Serialises writers; readers never take it.
    writer: Mutex<WriterState>,
    /// The plugin host of `WriterState::plugins`, once there is one: listing plugins must not
    /// wait for the writer lock, which a reload holds while it calls plugins.
    plugin_host: OnceLock<Arc<potter_plugin::PluginHost>>,
    /// The history database the recorder writes to, for readers (see `timeline`).
    history: Arc<crate::recording::HistoryDatabase>,
    events: EventBus,
    /// What the watchers saw of the files: whether a change of the overrides may build on the
    /// last full read of the tree (`WriterState::tree_side`).
    file_events: Arc<crate::watch::FileEvents>,
    /// Staged changes go live in the order they were staged, once durable.
    order: Mutex<CommitOrder>,
    /// Woken when a ticket finishes: `published[t % len]` wakes whoever waits for ticket `t - 1`
    /// to finish (the committer of `t`, or a drain when `t - 1` is the last ticket staged). One
    /// condition variable for all woke every waiting committer at every commit (50 connections:
    /// dozens of wake-ups per PUT, which became the cost once staging got cheaper).
    published: [Condvar; PUBLISHED_SLOTS],
}

/// How many condition variables the commit order spreads its waiters over: more than changes are
/// usually in flight at once, so a finishing ticket wakes only its successor.
const PUBLISHED_SLOTS: usize = 64;

impl Shared {
    /// The condition variable on which the wait for ticket `ticket - 1` to finish sleeps.
    fn published_before(&self, ticket: u64) -> &Condvar {
        &self.published[(ticket % PUBLISHED_SLOTS as u64) as usize]
    }
}

/// What readers learn about the plugins without the writer lock, published at every release of it.
#[derive(Default)]
struct PluginReadings {
    /// Each plugin's last error per environment (the rest of its listing is the plugin host's, live).
    environment_errors: BTreeMap<String, BTreeMap<String, String>>,
    /// Sources serving a last good (or cached) layer because asking them failed.
    stale: BTreeMap<String, potter_plugin::Staleness>,
    /// When a source poll or a settling plugin file is next due.
    next_due: Option<Instant>,
    /// Sources that wait for their changes (0.2.0 `watch`), per environment.
    watched: Vec<crate::plugin_folder::WatchedSource>,
}

/// Changes staged (validated, handed to the history's group commit) and published, by ticket.
/// A writer stages under the writer lock and waits for durability outside it, so the next change
/// can be built meanwhile and several records share one fsync.
#[derive(Default)]
struct CommitOrder {
    /// Tickets handed out so far.
    staged: u64,
    /// Tickets published (swapped in, or given up) so far; they finish in ticket order.
    finished: u64,
    /// A staged change failed to record: changes staged after it may contain it, so they are
    /// not swapped in; the next writer re-reads the overrides from the history first.
    poisoned: bool,
}

impl CommitOrder {
    fn in_flight(&self) -> bool {
        self.finished != self.staged
    }
}

/// A change built, validated and queued, not yet live.
struct Staged {
    ticket: u64,
    snapshot: Snapshot,
    durability: Durability,
    /// The overrides `snapshot` was built from, published with it.
    overrides: Arc<Overrides>,
    cause: Cause,
    /// The version of the override leaves this change sets, filled in as it goes live.
    sets: Option<RecordedVersion>,
}

impl Staged {
    /// The change sets override leaves at `version` (pending until it goes live).
    fn setting(self, version: RecordedVersion) -> Self {
        Self { sets: Some(version), ..self }
    }
}

/// How a staged change becomes durable, and so which version it goes live as.
enum Durability {
    /// Queued with the history's group commit (at the instant given): live once the record is
    /// durable, as its version (the current one when the record found nothing to record).
    Record(crate::recording::PendingRecord, Instant),
    /// Already what the history holds (the state at start-up, overrides another process
    /// recorded): live as `version`. Built from the history itself, it also ends a poisoned order.
    Recorded(u64),
    /// No history kept: versions count changes in memory.
    InMemory,
}

/// What only the writer touches: the overrides, the parsed-file cache, the checks and the record.
struct WriterState {
    overrides: Overrides,
    files: tree::FileCache,
    /// Shared with readers (`Shared::checks`) for [`ConfigHost::validate`]; written only by the writer.
    checks: Arc<RwLock<Validation>>,
    recorder: Option<crate::recording::Recorder>,
    /// The plugins folder's running plugins (None until the folder exists).
    plugins: Option<Plugins>,
    /// False once the live snapshot was validated with the current checks: a later change then
    /// validates only the views its changed layers apply to (the others are known valid).
    checks_changed: bool,
    /// The latest staged snapshot (live, or validated and waiting for its record): the base of
    /// the next change.
    head: Option<Arc<Snapshot>>,
    /// The live snapshot namespace plugins were last told about.
    told: Option<Arc<Snapshot>>,
    /// The recorded version whose overrides this host last failed to validate: the timed checks
    /// do not try it again (a later version, or a peer's next change, does).
    refused_recorded: Option<u64>,
    /// Every layer but the overrides' and the rollouts', as the last full build read them.
    tree_side: Option<TreeSide>,
    /// The last build's ciphertext scan of each layer (the unchanged ones are not scanned again).
    cipher_scans: crate::secret_values::CipherScans,
}

/// The layers of a build that do not come from the runtime overrides or the rollouts (schema and
/// plugin defaults, sources, tree files, environment variables), decrypted, with the tree's axes:
/// a change of the overrides alone builds on them while the watcher vouches that no file changed
/// since they were read, so its cost follows the overrides, not the tree.
struct TreeSide {
    decrypted: crate::secret_values::DecryptedLayers,
    axes: potter_engine::Axes,
    /// [`crate::watch::FileEvents::mark`] taken before the files were read.
    events_mark: Option<u64>,
}

/// What a build reads again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Every source: the tree, the schemas, the plugins' output, the environment variables.
    Everything,
    /// Only the runtime overrides and the rollouts changed: the rest may come from the last full
    /// build when the watcher saw no file event since it ([`TreeSide`]).
    OverridesOnly,
}

fn read_checks(checks: &RwLock<Validation>) -> RwLockReadGuard<'_, Validation> {
    checks.read().unwrap_or_else(|p| p.into_inner())
}

fn write_checks(checks: &RwLock<Validation>) -> RwLockWriteGuard<'_, Validation> {
    checks.write().unwrap_or_else(|p| p.into_inner())
}

impl WriterState {
    /// Schemas, extra checks, plugins, the history recorder and the overrides it holds.
    fn prepare(options: &Options, configure: impl FnOnce(&mut Validation)) -> Result<Self, Error> {
        let mut checks = Validation::new(load_schemas(&options.root)?);
        checks.set_strict(options.strict);
        configure(&mut checks);
        let plugins = Plugins::load(options, &mut checks)?;
        let recorder = crate::recording::Recorder::open(options)?;
        let overrides = match &recorder {
            Some(recorder) => recorder.overrides()?,
            None => Overrides::new(),
        };
        let checks = Arc::new(RwLock::new(checks));
        let mut state = Self { overrides, files: tree::FileCache::default(), checks, recorder, plugins, checks_changed: true, head: None, told: None, refused_recorded: None, tree_side: None, cipher_scans: Default::default() };
        state.load_sources(options)?;
        Ok(state)
    }

    /// Every source's first output, read against the tree without sources (for namespaces).
    /// At start-up there is no last good output to keep, so any failure is an error.
    fn load_sources(&mut self, options: &Options) -> Result<(), Error> {
        let Some(plugins) = &self.plugins else { return Ok(()) };
        let (provisional, _) = build_snapshot(options, &self.overrides, &mut self.files, &mut self.cipher_scans, &read_checks(&self.checks), Some(plugins), None)?;
        let plugins = self.plugins.as_mut().expect("checked above");
        let outcome = plugins.refresh_sources(&provisional, SourceRefresh::All, true);
        match outcome.rejecting.into_iter().next() {
            Some(error) => Err(Error::Plugin(error)),
            None => Ok(()),
        }
    }

    /// The snapshot built from these overrides, files, checks and plugins, every source read;
    /// `events_mark` is the watchers' count taken before (kept with what was read).
    fn build(&mut self, options: &Options, overrides: &Overrides, events_mark: Option<u64>) -> Result<Snapshot, Error> {
        let (snapshot, tree_side) = build_snapshot(options, overrides, &mut self.files, &mut self.cipher_scans, &read_checks(&self.checks), self.plugins.as_ref(), events_mark)?;
        self.tree_side = Some(tree_side);
        Ok(snapshot)
    }

    /// The snapshot of these overrides over the last full build's other layers.
    fn build_over_tree_side(&self, options: &Options, overrides: &Overrides) -> Result<Snapshot, Error> {
        let side = self.tree_side.as_ref().expect("asked only when there is one");
        let checks = read_checks(&self.checks);
        let context = BuildContext { options, schemas: checks.schemas() };
        let mut added = change_layers(&context, overrides, &side.axes.users)?;
        // Keyrings are read only if the overrides hold ciphertexts.
        let mut keyrings = crate::secret_values::Keyrings::resolve_all(options, std::iter::empty::<&str>());
        // The overrides' layers are new at every change: nothing to remember of their scan.
        crate::secret_values::decrypt_layers_over(&mut keyrings, &side.decrypted, &mut added, &schema_secret_paths(&checks), &mut Default::default())?;
        let layers = side.decrypted.layers.iter().cloned().chain(added).collect();
        Ok(Snapshot::new(0, layers, side.axes.clone()))
    }

    /// Registers the running plugins' validators with the checks.
    fn register_plugins(&mut self) {
        if let Some(plugins) = &self.plugins {
            plugins.register(&mut write_checks(&self.checks));
        }
        self.checks_changed = true;
    }
}

/// The writer lock, held. Releasing it tells namespace plugins of a change that went live while it
/// was held (a change finishing without the lock leaves that to the holder) and publishes what
/// readers see of the plugins.
struct Writer<'h> {
    shared: &'h Shared,
    state: MutexGuard<'h, WriterState>,
}

impl std::ops::Deref for Writer<'_> {
    type Target = WriterState;
    fn deref(&self) -> &WriterState {
        &self.state
    }
}

impl std::ops::DerefMut for Writer<'_> {
    fn deref_mut(&mut self) -> &mut WriterState {
        &mut self.state
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        self.shared.tell_plugins(&mut self.state);
        self.shared.publish_plugin_readings(&self.state);
    }
}

impl Shared {
    fn writer(&self) -> Writer<'_> {
        Writer { shared: self, state: self.writer.lock().unwrap_or_else(|p| p.into_inner()) }
    }

    fn try_writer(&self) -> Option<Writer<'_>> {
        self.writer.try_lock().ok().map(|state| Writer { shared: self, state })
    }

    /// Calls `on-config-changed` of the namespace plugins whose namespace changed in the live
    /// snapshot since they were last told (once per live snapshot; the plugins skip what did not
    /// change for them).
    fn tell_plugins(&self, state: &mut WriterState) {
        let live = self.current.load_full();
        if state.told.as_ref().is_some_and(|told| Arc::ptr_eq(told, &live)) {
            return;
        }
        if let Some(plugins) = &mut state.plugins {
            plugins.notify_namespaces(&live);
        }
        state.told = Some(live);
    }

    fn publish_plugin_readings(&self, state: &WriterState) {
        let Some(plugins) = &state.plugins else { return };
        let list = plugins.list();
        let stale = list.iter().filter_map(|info| Some((info.name.clone(), info.stale.clone()?))).collect();
        let environment_errors = list.into_iter().filter(|info| !info.environment_errors.is_empty()).map(|info| (info.name, info.environment_errors)).collect();
        let watched = plugins.watched_sources(&self.current.load());
        self.plugin_readings.store(Arc::new(PluginReadings { environment_errors, stale, next_due: plugins.next_due(), watched }));
    }
}

impl ConfigHost {
    /// Builds the tree's snapshot and validates it without requiring it to be valid (for `validate`).
    pub fn inspect(options: &Options) -> Result<(Snapshot, Report), Error> {
        let mut state = WriterState::prepare(options, |_| {})?;
        let snapshot = state.build(options, &state.overrides.clone(), None)?;
        let report = validate_all(&read_checks(&state.checks), &snapshot);
        Ok((snapshot, report))
    }

    /// Loads the tree and validates every view; fails if any file is unreadable, malformed or invalid.
    pub fn open(options: Options) -> Result<Self, Error> {
        Self::open_with(options, |_| {})
    }

    /// [`ConfigHost::open`] with extra checks, e.g. native rules:
    /// `ConfigHost::open_with(options, |checks| checks.add_custom_validator("name", |view| vec![]))`.
    /// They run on every later change too.
    pub fn open_with(options: Options, configure: impl FnOnce(&mut Validation)) -> Result<Self, Error> {
        Self::open_checked(options, configure, false).map(|(host, _)| host)
    }

    /// Opens the host even when its configuration is invalid, so that the change repairing it can
    /// be made: a runtime override that a new schema or validator now refuses can only be removed
    /// through a host (`potter-config unset`). The report of what is invalid comes back with the
    /// host. Every change is validated as always: only one that leaves every view valid is
    /// recorded. For a command that edits overrides, never for a host that serves reads.
    pub fn open_to_repair(options: Options) -> Result<(Self, Option<Report>), Error> {
        Self::open_checked(options, |_| {}, true)
    }

    fn open_checked(options: Options, configure: impl FnOnce(&mut Validation), open_invalid: bool) -> Result<(Self, Option<Report>), Error> {
        let mut state = WriterState::prepare(&options, configure)?;
        let snapshot = state.build(&options, &state.overrides.clone(), None)?;
        let report = validate_all(&read_checks(&state.checks), &snapshot);
        for issue in &report.tree {
            tracing::warn!(problem = %issue.message, "configuration tree");
        }
        let invalid = match report.has_errors() {
            true if !open_invalid => return Err(Error::Invalid(report)),
            true => Some(report),
            false => None,
        };
        let version = state.recorder.as_ref().map_or(Ok(0), |recorder| recorder.latest_version())?;
        state.checks_changed = false;
        let overrides = Arc::new(state.overrides.clone());
        let plugin_host = OnceLock::new();
        if let Some(plugins) = &state.plugins {
            let _ = plugin_host.set(plugins.host());
        }
        // Nobody can read the host before it is returned: the first snapshot goes live through
        // the commit like every later one (without a record: it is what the history holds).
        let placeholder = Snapshot::new(0, Vec::new(), snapshot.axes().clone());
        let history = state.recorder.as_ref().map_or_else(|| Arc::new(crate::recording::HistoryDatabase::new(&options.state_dir)), |recorder| recorder.database().clone());
        let host = Self {
            shared: Arc::new(Shared {
                options,
                plugin_host,
                history,
                current: ArcSwap::from_pointee(placeholder),
                overrides: ArcSwap::new(overrides.clone()),
                plugin_readings: ArcSwap::from_pointee(PluginReadings::default()),
                checks: state.checks.clone(),
                writer: Mutex::new(state),
                events: EventBus::new(DEFAULT_CAPACITY),
                file_events: Arc::default(),
                order: Mutex::new(CommitOrder::default()),
                published: std::array::from_fn(|_| Condvar::new()),
            }),
        };
        {
            let mut writer = host.shared.writer();
            let staged = host.queue(snapshot, Durability::Recorded(version), overrides, Cause::new(ChangeOrigin::Load, "open"));
            let live = host.commit(staged, Some(&mut writer))?;
            writer.head = Some(live);
        }
        #[cfg(feature = "etcd")]
        crate::fleet::follow_peers(host.history_database(), host.snapshot().version(), host.downgrade())?;
        Ok((host, invalid))
    }

    /// A handle that does not keep the host alive (for its own background threads).
    pub(crate) fn downgrade(&self) -> WeakHost {
        WeakHost(Arc::downgrade(&self.shared))
    }

    /// The options the host was opened with.
    pub fn options(&self) -> &Options {
        &self.shared.options
    }

    /// The current snapshot (cheap: one reference count).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.current.load_full()
    }

    /// Re-reads every source (files, plugins folder, every source plugin) and swaps in the result;
    /// on error the previous snapshot stays live. Files whose size, times and inode are unchanged
    /// are not re-read; a source whose change token is unchanged is not asked to load.
    pub fn reload(&self) -> Result<Arc<Snapshot>, Error> {
        self.reload_with(Cause::new(ChangeOrigin::File, "reload"), SourceRefresh::All)
    }

    /// [`ConfigHost::reload`] on behalf of someone (the file watcher is `file-watch`); only the
    /// sources whose poll interval has elapsed are asked for fresh output.
    pub fn reload_because(&self, cause: Cause) -> Result<Arc<Snapshot>, Error> {
        self.reload_with(cause, SourceRefresh::Due)
    }

    fn reload_with(&self, cause: Cause, refresh: SourceRefresh) -> Result<Arc<Snapshot>, Error> {
        let mut writer = self.shared.writer();
        let state: &mut WriterState = &mut writer;
        self.adopt_recorded_overrides(state)?;
        let overrides = state.overrides.clone();
        if state.plugins.is_none() && self.shared.options.plugins_dir.is_dir() {
            let plugins = Plugins::start_empty(&self.shared.options)?;
            let _ = self.shared.plugin_host.set(plugins.host());
            state.plugins = Some(plugins);
        }
        let Some(plugins) = state.plugins.as_mut() else {
            return self.apply(state, &overrides, None, cause);
        };
        let before = self.snapshot();
        let sources = plugins.refresh_sources(&before, refresh, false);
        for error in &sources.kept {
            tracing::warn!(%error, "source failed; its last good output stays in the configuration");
            self.shared.events.publish(Published::Rejected { cause: plugin_cause(error), refused_by: RefusedBy::Plugin, diagnostics: vec![format!("{error}; keeping its last good output")] });
        }
        if let Some(error) = sources.rejecting.into_iter().next() {
            tracing::warn!(%error, "source failed and its policy rejects the reload");
            let error = Error::Plugin(error);
            self.reject(cause, &error);
            return Err(error);
        }
        let folder = plugins.sync_folder(&before);
        for error in &folder.refusals {
            self.shared.events.publish(Published::Rejected { cause: plugin_cause(error), refused_by: RefusedBy::Plugin, diagnostics: vec![error.to_string()] });
        }
        if folder.is_empty() {
            return self.apply(state, &overrides, None, cause);
        }
        let cause = match folder.arrivals.iter().chain(&folder.departures).next() {
            Some(name) if cause.origin == ChangeOrigin::File => Cause::new(ChangeOrigin::Plugin, format!("plugin:{name}")),
            _ => cause,
        };
        state.register_plugins();
        let snapshot = match self.build_on_head(state, &overrides, Reading::Everything) {
            Ok(snapshot) => snapshot,
            Err(error) => {
                // The new versions are refused (listed so before the rejection is published);
                // whatever else changed in this reload still applies.
                state.plugins.as_mut().expect("set above").roll_back(folder, &error.diagnostics().join("; "));
                state.register_plugins();
                self.reject(cause.clone(), &error);
                return self.apply(state, &overrides, None, cause);
            }
        };
        // The plugin host lists the new versions once the change that brings them is live and
        // before it is published: a plugin listed as loaded has its contribution in the
        // configuration, and a subscriber told of the change finds the plugin listed.
        let outcome = match self.stage_checked(state, snapshot, &overrides, None, cause) {
            Ok(Some(staged)) => self.commit_then(staged, Some(state), |state| state.plugins.as_mut().expect("set above").commit(&folder)),
            Ok(None) => {
                state.plugins.as_mut().expect("set above").commit(&folder);
                Ok(self.snapshot())
            }
            Err(error) => Err(error),
        };
        if let Err(error) = &outcome {
            // Not recorded, so not live: the plugins that came with it are refused too.
            state.plugins.as_mut().expect("set above").roll_back(folder, &error.diagnostics().join("; "));
            state.register_plugins();
        }
        outcome
    }

    /// Takes in runtime overrides that another process (the CLI beside a server, a second
    /// server on the same state) recorded in the history since this host last applied a change.
    /// Called before every change and by the watcher's poller, so nothing recorded is lost or
    /// overwritten by a stale copy. Cheap when nothing is new: one indexed read.
    pub fn sync_recorded_overrides(&self) -> Result<(), Error> {
        // Releasing the writer also tells the plugins of a change that finished while another
        // writer held it.
        self.adopt_recorded_overrides(&mut self.shared.writer()).map(|_| ())
    }

    /// Takes in the recorded overrides even when the history is not ahead of the live version: a
    /// peer on a shared store committed a change just before one of ours, so the live snapshot
    /// (built without it) carries a later version than the change. False when this host's own
    /// records are still landing (nothing taken in; the caller tries again).
    #[cfg(feature = "etcd")]
    pub(crate) fn resync_recorded_overrides(&self) -> Result<bool, Error> {
        let mut state = self.shared.writer();
        self.adopt_recorded(&mut state, true)
    }

    fn adopt_recorded_overrides(&self, state: &mut WriterState) -> Result<bool, Error> {
        self.adopt_recorded(state, false)
    }

    fn adopt_recorded(&self, state: &mut WriterState, force: bool) -> Result<bool, Error> {
        let Some(recorder) = &state.recorder else { return Ok(true) };
        let poisoned = {
            let order = self.order();
            // Our own records are still landing: the history is ahead of us for a moment. What
            // another process recorded meanwhile stays in the history and is taken in later.
            if order.in_flight() && !order.poisoned {
                return Ok(false);
            }
            order.poisoned
        };
        if poisoned {
            drop(self.drain());
        }
        let current = self.shared.current.load_full();
        if !poisoned && !force {
            // The cheap look first: one read when nothing is new.
            let recorded = recorder.latest_version()?;
            if recorded <= current.version() || state.refused_recorded == Some(recorded) {
                return Ok(true);
            }
        }
        // A peer's change (the follower's forced take-in) comes from the followed state when that
        // can stand for a read of etcd: one round trip less on the way to this host's subscribers.
        let followed = match force && !poisoned {
            true => recorder.followed_state(&current.axes().environments.iter().map(|env| env.to_string()).collect(), current.version(), state.overrides.rollouts()),
            false => None,
        };
        let (recorded, overrides) = match followed {
            Some(state) => state?,
            None => recorder.recorded_state()?,
        };
        // Who made the newest change, for subscribers and the log (a peer host on a shared store).
        let cause = match recorder.peer_record(recorded) {
            Some(record) if !poisoned => Cause::new(record.origin, record.actor),
            _ => Cause::new(ChangeOrigin::Cli, if poisoned { "history" } else { "another process" }),
        };
        // Validated against the live snapshot, in full after a failure.
        state.head = Some(current.clone());
        state.checks_changed |= poisoned;
        let snapshot = match self.build_checked(state, &overrides, recorded, Reading::OverridesOnly) {
            Ok(snapshot) => snapshot,
            Err(error) => {
                // The last good snapshot stays live; the refusal is reported (health, events).
                state.refused_recorded = Some(recorded);
                self.reject(cause, &error);
                return Err(error);
            }
        };
        state.refused_recorded = None;
        if force && recorded == current.version() && same_layers(current.layers(), snapshot.layers()) {
            // Nothing the live snapshot lacks.
            state.overrides = overrides;
            return Ok(true);
        }
        let staged = self.queue(snapshot, Durability::Recorded(recorded), Arc::new(overrides.clone()), cause);
        state.overrides = overrides;
        state.checks_changed = false;
        let live = self.commit(staged, Some(state))?;
        state.head = Some(live);
        Ok(true)
    }

    /// How long a change waits, at most, for a save in flight before it takes an emptied or
    /// removed file as meant ([`ConfigHost::watch`] sets its `max_delay`).
    pub fn set_settle_limit(&self, limit: std::time::Duration) {
        self.shared.writer().files.set_settle_limit(limit);
    }

    /// The event bus and what observes it (typed settings, health).
    pub(crate) fn events(&self) -> &EventBus {
        &self.shared.events
    }

    /// What the watchers count of the files (see `WriterState::tree_side`).
    pub(crate) fn file_events(&self) -> &Arc<crate::watch::FileEvents> {
        &self.shared.file_events
    }

    /// The history database shared with the recorder (read through `timeline`).
    pub(crate) fn history_database(&self) -> &Arc<crate::recording::HistoryDatabase> {
        &self.shared.history
    }

    /// When a source poll or a plugin file that is still arriving is next due (for the watcher),
    /// as of the last release of the writer lock (the only place it changes).
    pub fn next_plugin_due(&self) -> Option<Instant> {
        self.shared.plugin_readings.load().next_due
    }

    /// The sources that wait for their changes, per environment, as of the last release of the writer.
    pub fn watched_sources(&self) -> Vec<crate::plugin_folder::WatchedSource> {
        self.shared.plugin_readings.load().watched.clone()
    }

    /// A watching source saw a change (or its remote failed or came back): it is asked again
    /// now, in a reload on behalf of `plugin-watch`.
    pub fn source_changed(&self, plugin: &str) -> Result<Arc<Snapshot>, Error> {
        if let Some(plugins) = self.shared.writer().plugins.as_mut() {
            plugins.make_due(plugin);
        }
        self.reload_because(Cause::new(ChangeOrigin::Plugin, "plugin-watch"))
    }

    /// Sources serving a last good (or cached) layer because asking them failed, by plugin name, as
    /// of the last release of the writer (cheap: for liveness answers).
    pub fn stale_sources(&self) -> BTreeMap<String, potter_plugin::Staleness> {
        self.shared.plugin_readings.load().stale.clone()
    }

    /// Every plugin of the plugins folder with its status, last error and refused update, without
    /// waiting for a change in progress: during a reload that is inside a plugin call, the
    /// plugins it runs are listed as they are at that moment (a new version once the change that
    /// brings it is live, before that change is published; a refused one before its rejection
    /// is), with each one's errors per environment as of the last release of the writer.
    pub fn plugin_list(&self) -> Vec<potter_plugin::PluginInfo> {
        let Some(host) = self.shared.plugin_host.get() else { return Vec::new() };
        let readings = self.shared.plugin_readings.load();
        let mut infos = host.list();
        for info in &mut infos {
            if let Some(errors) = readings.environment_errors.get(&info.name) {
                info.environment_errors = errors.clone();
            }
            info.stale = readings.stale.get(&info.name).cloned();
        }
        infos
    }

    /// How each loaded plugin's calls ended since it was loaded: calls, time-outs, traps and
    /// memory-limit stops (empty without a plugins folder).
    pub fn plugin_call_counts(&self) -> Vec<(String, potter_plugin::CallCounts)> {
        self.shared.plugin_host.get().map(|host| host.call_counts()).unwrap_or_default()
    }

    /// Validates the current snapshot again (every view), without changing anything and without
    /// waiting for a change in progress (it shares the checks with it; during a reload that
    /// brings a plugin, that plugin's validators may already take part).
    pub fn validate(&self) -> Report {
        let snapshot = self.snapshot();
        validate_all(&read_checks(&self.shared.checks), &snapshot)
    }

    /// What becomes of every change from now on (applied or refused, and by what origin), in
    /// every view: for counters, without diffing any view.
    pub fn outcomes(&self) -> crate::events::Outcomes {
        crate::events::Outcomes::new(self.shared.events.subscribe())
    }

    /// Changes of `prefix` in one view, from now on.
    pub fn subscribe(&self, view: &ViewKey, prefix: &str) -> Result<Subscription, Error> {
        if !prefix.is_empty() {
            potter_engine::parse_key_path(prefix)?;
        }
        let receiver = self.shared.events.subscribe();
        let baseline = self.snapshot();
        self.shared.options.check_served(&baseline, view)?;
        let shared = self.shared.clone();
        Ok(Subscription::new(receiver, view.clone(), prefix, baseline, Box::new(move || shared.current.load_full())))
    }

    /// Sets a runtime override (precedence above everything else) in one environment.
    pub fn set(&self, environment: &str, key: &str, value: Value) -> Result<Arc<Snapshot>, Error> {
        self.change_override(environment, key, Some(value))
    }

    /// Removes a runtime override.
    pub fn unset(&self, environment: &str, key: &str) -> Result<Arc<Snapshot>, Error> {
        self.change_override(environment, key, None)
    }

    fn change_override(&self, environment: &str, key: &str, value: Option<Value>) -> Result<Arc<Snapshot>, Error> {
        self.edit_overrides(environment, &[(key.to_owned(), value)], SetRequest::new(ChangeOrigin::Cli, "runtime"), false)
    }

    /// [`ConfigHost::set`] on behalf of someone, with a reason and an optional compare-and-set
    /// (`if_version`: fails with a history conflict if the key changed after that version).
    pub fn set_with(&self, environment: &str, key: &str, value: Value, request: SetRequest) -> Result<Arc<Snapshot>, Error> {
        self.edit_overrides(environment, &[(key.to_owned(), Some(value))], request, false)
    }

    /// [`ConfigHost::unset`] on behalf of someone.
    pub fn unset_with(&self, environment: &str, key: &str, request: SetRequest) -> Result<Arc<Snapshot>, Error> {
        self.edit_overrides(environment, &[(key.to_owned(), None)], request, false)
    }

    /// The runtime overrides of one environment the live snapshot was built from (ciphertexts as
    /// written, never plaintext). A change staged but not yet durable is not among them.
    pub fn overrides(&self, environment: &str) -> Map<String, Value> {
        self.shared.overrides.load().tree(environment).cloned().unwrap_or_default()
    }

    /// True when the live snapshot stages a running rollout (read from the published state).
    pub(crate) fn stages_rollouts(&self) -> bool {
        !self.shared.overrides.load().rollouts().is_empty()
    }

    /// The runtime override of `environment` that decides `key`: `key` itself (a value, or a
    /// subtree of overrides) or the ancestor set as one value above it. None when no override
    /// reaches the key. Overrides are the highest layer, so such a key is pinned: the files no
    /// longer change it.
    pub fn override_of(&self, environment: &str, key: &str) -> Option<String> {
        self.shared.overrides.load().deciding(environment, key)
    }

    /// Removes the runtime overrides of `keys` (each one a value or a subtree of overrides) from
    /// one environment as ONE change, validated and recorded like any other. Refused with
    /// [`Error::NoOverride`], recording nothing, when the environment holds no override at a key.
    pub fn release_overrides(&self, environment: &str, keys: &[String], request: SetRequest) -> Result<Arc<Snapshot>, Error> {
        for key in keys {
            potter_engine::parse_key_path(key)?;
        }
        self.shared.options.check_served(&self.snapshot(), &ViewKey::environment(environment))?;
        // Checked against the overrides as recorded, another process's included.
        self.sync_recorded_overrides()?;
        if let Some(key) = keys.iter().find(|key| self.override_of(environment, key).as_deref() != Some(key.as_str())) {
            return Err(Error::NoOverride { environment: environment.to_owned(), key: key.clone() });
        }
        let edits: Vec<(String, Option<Value>)> = keys.iter().map(|key| (key.clone(), None)).collect();
        self.edit_overrides(environment, &edits, request, false)
    }

    /// Sets (`Some`) or removes (`None`) several overrides of one environment as ONE change (one
    /// version; a rollback). With `dry_run` the result is built and validated but neither
    /// recorded nor swapped in, and the snapshot it would become is returned.
    pub fn edit_overrides(&self, environment: &str, edits: &[(String, Option<Value>)], request: SetRequest, dry_run: bool) -> Result<Arc<Snapshot>, Error> {
        self.edit_overrides_staging(environment, edits, request, dry_run, false)
    }

    /// [`Self::edit_overrides`] that also stages the rollouts as their document holds them now,
    /// in the same change (a rollout's step, completion or rollback: one version, one record).
    pub(crate) fn restage_rollouts(&self, environment: &str, edits: &[(String, Option<Value>)], request: SetRequest) -> Result<Arc<Snapshot>, Error> {
        self.edit_overrides_staging(environment, edits, request, false, true)
    }

    fn edit_overrides_staging(&self, environment: &str, edits: &[(String, Option<Value>)], request: SetRequest, dry_run: bool, restage: bool) -> Result<Arc<Snapshot>, Error> {
        let mut parsed = Vec::with_capacity(edits.len());
        for (key, _) in edits {
            parsed.push(potter_engine::parse_key_path(key)?);
        }
        self.shared.options.check_served(&self.snapshot(), &ViewKey::environment(environment))?;
        let mut state = self.shared.writer();
        // An edit goes onto the overrides as recorded, including another process's.
        self.adopt_recorded_overrides(&mut state)?;
        if !restage {
            check_not_rolling_out(&state.overrides, environment, edits)?;
        }
        // The leaves it changes are at this change's version, known once its record is durable.
        let version = RecordedVersion::pending();
        let parsed_edits: Vec<(Vec<&str>, Option<Value>)> = parsed.into_iter().zip(edits).map(|(segments, (_, value))| (segments, value.clone())).collect();
        let mut proposed = state.overrides.edited(environment, &parsed_edits, &version);
        if restage {
            let Some(recorder) = &state.recorder else { return Err(crate::rollouts::RolloutError::Plan("the history (rollouts are recorded step by step)".to_owned()).into()) };
            proposed = proposed.with_rollouts(recorder.rollouts().staged()?);
        }
        if dry_run {
            let version = self.shared.current.load().version();
            return Ok(Arc::new(self.build_checked(&mut state, &proposed, version, Reading::OverridesOnly)?));
        }
        let change = match edits {
            [(key, value)] => Some(OverrideChange { environment: environment.to_owned(), key: key.clone(), value: value.clone(), if_version: request.if_version }),
            _ => None,
        };
        // A batch's compare-and-set: checked here, under the writer lock, key by key.
        if let (None, Some(version), Some(recorder)) = (&change, request.if_version, &state.recorder) {
            for (key, _) in edits {
                recorder.check_unchanged_since(environment, key, version)?;
            }
        }
        let cause = Cause { origin: request.origin, actor: request.actor, reason: request.reason };
        let staged = self.stage(&mut state, &proposed, change.as_ref(), cause, Reading::OverridesOnly)?.map(|staged| staged.setting(version));
        state.overrides = proposed;
        let Some(staged) = staged else {
            return Ok(self.shared.current.load_full());
        };
        if request.if_version.is_some() {
            // A compare-and-set finishes under the lock, so the next one's check sees it.
            return self.commit(staged, Some(&mut state));
        }
        // The next change may be staged while this one's record is made durable (one fsync for several).
        drop(state);
        self.commit(staged, None)
    }

    /// Stages a change and commits it while holding the writer lock. A change that alters nothing
    /// keeps the current snapshot (no new version, no event).
    fn apply(&self, state: &mut WriterState, overrides: &Overrides, change: Option<&OverrideChange>, cause: Cause) -> Result<Arc<Snapshot>, Error> {
        match self.stage(state, overrides, change, cause, Reading::Everything)? {
            Some(staged) => self.commit(staged, Some(state)),
            None => Ok(self.shared.current.load_full()),
        }
    }

    /// Builds and checks the change on top of the latest staged snapshot and queues its record.
    /// None when it changes nothing. Under the writer lock.
    fn stage(&self, state: &mut WriterState, overrides: &Overrides, change: Option<&OverrideChange>, cause: Cause, reading: Reading) -> Result<Option<Staged>, Error> {
        let snapshot = match self.build_on_head(state, overrides, reading) {
            Ok(snapshot) => snapshot,
            Err(error) => {
                self.reject(cause, &error);
                return Err(error);
            }
        };
        self.stage_checked(state, snapshot, overrides, change, cause)
    }

    /// The snapshot of `overrides` and every source, checked, as the next version after the latest
    /// staged one.
    fn build_on_head(&self, state: &mut WriterState, overrides: &Overrides, reading: Reading) -> Result<Snapshot, Error> {
        let version = match &state.head {
            Some(head) => head.version(),
            None => self.shared.current.load().version(),
        };
        self.build_checked(state, overrides, version, reading)
    }

    fn reject(&self, cause: Cause, error: &Error) {
        self.shared.events.publish(Published::Rejected { cause, refused_by: error.refused_by(), diagnostics: error.diagnostics() });
    }

    /// Queues the record of a checked snapshot (None when it changes nothing).
    fn stage_checked(&self, state: &mut WriterState, snapshot: Snapshot, overrides: &Overrides, change: Option<&OverrideChange>, cause: Cause) -> Result<Option<Staged>, Error> {
        let before = state.head.clone().unwrap_or_else(|| self.shared.current.load_full());
        // A rollout's step that changes none of this host's views is still a change (recorded:
        // the other hosts learn of it from its record).
        if same_layers(before.layers(), snapshot.layers()) && before.axes() == snapshot.axes() && state.overrides.rollouts() == overrides.rollouts() {
            return Ok(None);
        }
        // Durable before acknowledged: the record is queued now and waited for in `commit`.
        let durability = match &state.recorder {
            Some(recorder) => Durability::Record(recorder.record(&before, &snapshot, &state.overrides, overrides, change, &cause)?, Instant::now()),
            None => Durability::InMemory,
        };
        // The staged snapshot itself goes live with its version; the head is a twin over the same layers.
        state.head = Some(Arc::new(Snapshot::new(before.version(), snapshot.layers().to_vec(), snapshot.axes().clone())));
        state.checks_changed = false;
        Ok(Some(self.queue(snapshot, durability, Arc::new(overrides.clone()), cause)))
    }

    /// Hands `snapshot` the next ticket: it goes live after every change queued before it.
    fn queue(&self, snapshot: Snapshot, durability: Durability, overrides: Arc<Overrides>, cause: Cause) -> Staged {
        let mut order = self.order();
        order.staged += 1;
        Staged { ticket: order.staged, snapshot, durability, overrides, cause, sets: None }
    }

    /// The one place every change goes live. Waits until the staged change is durable and every
    /// change queued before it has finished, then swaps it in with its overrides, publishes its
    /// `Applied` event and tells namespace plugins. `holding` is the writer state when the caller
    /// holds the writer lock; without it the plugins are told if the lock is free, else by its
    /// holder when it releases it.
    fn commit(&self, staged: Staged, holding: Option<&mut WriterState>) -> Result<Arc<Snapshot>, Error> {
        self.commit_then(staged, holding, |_| {})
    }

    /// [`ConfigHost::commit`] that runs `on_live` on the writer state (when held) after the swap
    /// and before the `Applied` event.
    fn commit_then(&self, staged: Staged, mut holding: Option<&mut WriterState>, on_live: impl FnOnce(&mut WriterState)) -> Result<Arc<Snapshot>, Error> {
        let Staged { ticket, snapshot, durability, overrides, cause, sets } = staged;
        let mut recorded_in = None;
        // (the version it goes live as, given the current one; whether it was read from the history)
        let recorded: Result<(fn(u64, Option<u64>) -> u64, Option<u64>, bool), Error> = match durability {
            // Nothing to record (no value or override differs): same version.
            Durability::Record(record, queued) => record.wait().map(|version| {
                recorded_in = version.map(|_| queued.elapsed());
                (recorded_or_same as fn(u64, Option<u64>) -> u64, version, false)
            }),
            Durability::Recorded(version) => Ok((recorded_or_same, Some(version), true)),
            Durability::InMemory => Ok((next_in_memory, None, false)),
        };
        let mut order = self.order();
        while order.finished + 1 != ticket {
            order = self.shared.published_before(ticket).wait(order).unwrap_or_else(|p| p.into_inner());
        }
        let outcome = match recorded {
            Err(error) => {
                order.poisoned = true;
                self.reject(cause, &error);
                Err(error)
            }
            Ok((_, _, false)) if order.poisoned => Err(Error::Pending(
                "the change was recorded, but a change queued before it failed to record; it goes live when the host re-reads the history (at the next change, or within a second while watching)".to_owned(),
            )),
            Ok((live_version, recorded, from_history)) => {
                if from_history {
                    order.poisoned = false;
                }
                let version = live_version(self.shared.current.load().version(), recorded);
                // An override edit changes one environment's layer, so its one record's version
                // (the last) is the version of the leaves it set.
                if let Some(sets) = &sets {
                    sets.settle(version);
                }
                let snapshot = Arc::new(snapshot.with_version(version));
                self.shared.overrides.store(overrides);
                self.shared.current.store(snapshot.clone());
                if let Some(state) = holding.as_deref_mut() {
                    on_live(state);
                }
                self.shared.events.publish(Published::Applied { cause, after: snapshot.clone(), recorded_in });
                Ok(snapshot)
            }
        };
        order.finished = ticket;
        self.shared.published_before(ticket + 1).notify_all();
        drop(order);
        if outcome.is_ok() {
            match holding {
                Some(state) => self.shared.tell_plugins(state),
                None => {
                    if let Some(mut writer) = self.shared.try_writer() {
                        self.shared.tell_plugins(&mut writer);
                    }
                }
            }
        }
        outcome
    }

    fn order(&self) -> MutexGuard<'_, CommitOrder> {
        self.shared.order.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until no staged change is waiting for its record (under the writer lock, so no new
    /// one is staged meanwhile).
    fn drain(&self) -> MutexGuard<'_, CommitOrder> {
        let mut order = self.order();
        while order.in_flight() {
            // Woken when the last ticket staged finishes (nothing is staged meanwhile).
            let last = order.staged;
            order = self.shared.published_before(last + 1).wait(order).unwrap_or_else(|p| p.into_inner());
        }
        order
    }

    /// Reloads schemas if they changed, builds the snapshot and validates every view it can have
    /// changed. With [`Reading::OverridesOnly`] and no file event since the last full build, the
    /// schemas and the tree are not looked at again: the overrides are built over that build's
    /// other layers.
    fn build_checked(&self, state: &mut WriterState, overrides: &Overrides, version: u64, reading: Reading) -> Result<Snapshot, Error> {
        let vouched = reading == Reading::OverridesOnly && state.tree_side.as_ref().is_some_and(|side| self.shared.file_events.none_since(side.events_mark));
        let snapshot = if vouched {
            state.build_over_tree_side(&self.shared.options, overrides)?
        } else {
            // Taken before anything is read: an event during the read makes the next change read again.
            let events_mark = self.shared.file_events.mark();
            {
                let mut checks = write_checks(&state.checks);
                let schema_files = checks.schemas().files().len();
                let reloaded = checks.schemas_mut().reload().map_err(Error::Schema)?;
                if !reloaded.recompiled.is_empty() || checks.schemas().files().len() != schema_files {
                    state.checks_changed = true;
                }
            }
            state.build(&self.shared.options, overrides, events_mark)?
        }
        .with_version(version);
        let live = state.head.clone().unwrap_or_else(|| self.shared.current.load_full());
        let checks = read_checks(&state.checks);
        let mut report = if state.checks_changed || live.axes() != snapshot.axes() {
            checks.validate_snapshot(&snapshot)
        } else {
            // The live snapshot is valid under these checks: only views a changed layer applies to can differ.
            let changed = live.changed_layers(&snapshot);
            checks.validate_snapshot_where(&snapshot, |key| changed.iter().any(|layer| layer.applies_to(&key.environment, key.service.as_deref(), key.user.as_deref())))
        };
        drop(checks);
        crate::secret_values::note_sealed_secrets(&mut report, &snapshot);
        for issue in report.issues().filter(|issue| issue.severity == Severity::Warning) {
            tracing::debug!(%issue, "validation warning");
        }
        if report.has_errors() {
            return Err(Error::Invalid(report));
        }
        Ok(snapshot)
    }

    /// A handle on one view; reads through it always see the latest snapshot.
    pub fn view(&self, environment: &str, service: Option<&str>, user: Option<&str>) -> Result<ViewHandle, Error> {
        let key = ViewKey::new(environment, service, user);
        let snapshot = self.snapshot();
        self.shared.options.check_served(&snapshot, &key)?;
        let slot = snapshot.slot_of(&key).expect("checked above");
        // The snapshot's own key: the handle's reads then find their view by pointer comparison.
        let key = snapshot.key_at(slot).expect("a slot of this snapshot").clone();
        Ok(ViewHandle { shared: self.shared.clone(), key, slot: Arc::new(AtomicUsize::new(slot)) })
    }
}

/// The version a change whose history record is durable goes live as: the record's, or the
/// current one when the record found nothing to record (no value or override differs).
/// Refuses a direct edit of a key a running rollout of `environment` changes.
fn check_not_rolling_out(overrides: &Overrides, environment: &str, edits: &[(String, Option<Value>)]) -> Result<(), Error> {
    for rollout in overrides.rollouts().iter().filter(|rollout| rollout.environment == environment) {
        let covered = edits.iter().find(|(key, _)| rollout.values.iter().any(|(held, _)| potter_engine::overlaps(key, held)));
        if let Some((key, _)) = covered {
            return Err(crate::rollouts::RolloutError::Running { id: rollout.id, environment: environment.to_owned(), key: key.clone() }.into());
        }
    }
    Ok(())
}

fn recorded_or_same(current: u64, recorded: Option<u64>) -> u64 {
    recorded.unwrap_or(current)
}

/// Without a history, versions count changes in memory.
fn next_in_memory(current: u64, _recorded: Option<u64>) -> u64 {
    current + 1
}

/// Every view validated, plus the issues about the tree as a whole.
fn validate_all(checks: &Validation, snapshot: &Snapshot) -> Report {
    let mut report = checks.validate_snapshot(snapshot);
    report.tree.extend(checks.schemas().missing_schemas_warning(snapshot.layers()));
    crate::secret_values::note_sealed_secrets(&mut report, snapshot);
    report
}

/// True when two layer lists would merge to the same views.
fn same_layers(a: &[Arc<Layer>], b: &[Arc<Layer>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_content(y))
}

/// The schemas of a tree (`<root>/schemas/`), or none when nothing is there; a `schemas` that is
/// there but is no folder (a file, a broken link) is an error, never "validate nothing".
fn load_schemas(root: &Path) -> Result<SchemaSet, Error> {
    SchemaSet::load_tree_folder(&root.join("schemas")).map_err(Error::Schema)
}

/// Who asks for a runtime override change, why, and on what condition.
#[derive(Debug, Clone)]
pub struct SetRequest {
    /// `cli:<user>`, a token's name, ...
    pub actor: String,
    /// What kind of change it is (`Cli`, `Api`, `Rollback`).
    pub origin: ChangeOrigin,
    /// Why, recorded with the change.
    pub reason: Option<String>,
    /// Compare-and-set: refuse if the key (or anything under it) changed after this version.
    pub if_version: Option<u64>,
}

impl SetRequest {
    /// A request by `actor` without a reason or a condition.
    pub fn new(origin: ChangeOrigin, actor: impl Into<String>) -> Self {
        Self { actor: actor.into(), origin, reason: None, if_version: None }
    }
}

/// A change a plugin caused, named after it.
fn plugin_cause(error: &potter_plugin::PluginError) -> Cause {
    Cause::new(ChangeOrigin::Plugin, format!("plugin:{}", error.plugin().unwrap_or("*")))
}

/// The snapshot of these overrides, tree files, checks and plugins: every source's layers in rank
/// order (schema defaults, plugin namespace defaults, source plugins' output, tree files,
/// environment variables, then the runtime overrides and the rollouts), then the secrets
/// decrypted. The layers before the overrides come back too, as the [`TreeSide`] read after
/// `events_mark`.
fn build_snapshot(
    options: &Options,
    overrides: &Overrides,
    files: &mut tree::FileCache,
    cipher_scans: &mut crate::secret_values::CipherScans,
    checks: &Validation,
    plugins: Option<&Plugins>,
    events_mark: Option<u64>,
) -> Result<(Snapshot, TreeSide), Error> {
    let context = BuildContext { options, schemas: checks.schemas() };
    let mut keyrings = None;
    // Keyrings are read before the files so a concurrent `secrets rotate` cannot retire a key a file still uses.
    let mut tree = TreeSource::new(files, |listing: &tree::TreeListing| keyrings = Some(crate::secret_values::Keyrings::resolve_all(options, listing.axes.environments.iter())));
    let mut layers: Vec<Arc<Layer>> = Vec::new();
    {
        let mut sources: [&mut dyn Source; 5] = [&mut SchemaDefaults, &mut PluginDefaults::new(plugins), &mut PluginSources::new(plugins), &mut tree, &mut EnvSource];
        sources.sort_by_key(|source| source.rank());
        for source in sources {
            let found = source.layers(&context)?;
            tracing::trace!(source = source.name(), layers = found.len(), "source read");
            layers.extend(served_only(options, found));
        }
    }
    let listing = tree.into_listing().expect("the tree source was asked");
    let tree_side_layers = layers.len();
    layers.extend(change_layers(&context, overrides, &listing.axes.users)?);
    let mut keyrings = keyrings.expect("resolved before the files were read");
    crate::secret_values::decrypt_layers_over(&mut keyrings, &Default::default(), &mut layers, &schema_secret_paths(checks), cipher_scans)?;
    let tree_side = TreeSide { decrypted: crate::secret_values::DecryptedLayers::new(layers[..tree_side_layers].to_vec()), axes: listing.axes.clone(), events_mark };
    Ok((Snapshot::new(0, layers, listing.axes), tree_side))
}

/// The layers of the runtime overrides (the highest rank) and then of the running rollouts, which
/// reach user views: asked once the tree has said who its users are.
fn change_layers(context: &BuildContext<'_>, overrides: &Overrides, users: &[Arc<str>]) -> Result<Vec<Arc<Layer>>, Error> {
    let mut layers: Vec<Arc<Layer>> = served_only(context.options, OverridesSource::new(overrides).layers(context)?).collect();
    layers.extend(served_only(context.options, RolloutSource::new(overrides.rollouts(), users).layers(context)?));
    Ok(layers)
}

/// Only the environments this process serves are built.
fn served_only(options: &Options, layers: Vec<Arc<Layer>>) -> impl Iterator<Item = Arc<Layer>> + '_ {
    layers.into_iter().filter(|layer| layer.scope.environment.as_deref().is_none_or(|env| options.serves(env)))
}

/// The secret paths the schemas declare (`"secret": true`), which decryption adds to the tree's
/// `secrets.paths`.
fn schema_secret_paths(checks: &Validation) -> Vec<String> {
    checks.schemas().secret_patterns().iter().map(dotted_pattern).collect()
}

/// A schema's secret pattern as a dotted path where `*` stands for any key (a `patternProperties`
/// segment widens to `*`: marking more values secret is the safe direction).
fn dotted_pattern(pattern: &potter_validate::SecretPattern) -> String {
    pattern
        .segments
        .iter()
        .map(|segment| match segment {
            potter_validate::SecretSegment::Key(key) => key.clone(),
            _ => "*".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Typed, lock-free reads of one view of the live configuration.
#[derive(Clone)]
pub struct ViewHandle {
    shared: Arc<Shared>,
    key: ViewKey,
    /// Where the view sat in the last snapshot read: saves hashing the key on every read.
    slot: Arc<AtomicUsize>,
}

impl ViewHandle {
    /// The view this handle reads.
    pub fn key(&self) -> &ViewKey {
        &self.key
    }

    /// The view in `snapshot`, through the slot hint (verified against the key, so never wrong).
    fn view_in<'s>(&self, snapshot: &'s Snapshot) -> Result<&'s Arc<View>, Error> {
        if let Some(view) = snapshot.view_hinted(self.slot.load(Ordering::Relaxed), &self.key) {
            return Ok(view);
        }
        let view = snapshot.view(&self.key)?;
        if let Some(slot) = snapshot.slot_of(&self.key) {
            self.slot.store(slot, Ordering::Relaxed);
        }
        Ok(view)
    }

    /// The view as of the current snapshot.
    pub fn current(&self) -> Result<Arc<View>, Error> {
        Ok(self.view_in(&self.shared.current.load())?.clone())
    }

    /// The raw value at `key`, or None when it is not set. A secret this process cannot decrypt
    /// (its environment's keyring is absent) shows as `<redacted>`; [`Self::get`] refuses it.
    pub fn value(&self, key: &str) -> Option<Value> {
        let snapshot = self.shared.current.load();
        let view = self.view_in(&snapshot).ok()?;
        view.get_ref(key).map(|value| crate::secret_values::redact_sealed(view, key, value))
    }

    /// The value at `key` as `T` (`get::<u32>("api.rate_limit")`).
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, Error> {
        let snapshot = self.shared.current.load();
        let view = self.view_in(&snapshot)?;
        let value = view.get_ref(key).ok_or_else(|| Error::NotFound(key.to_owned()))?;
        crate::secret_values::ensure_revealable(view, key)?;
        serde_path_to_error::deserialize(value).map_err(|error| type_error(view, key, error))
    }

    /// The value at `key` as `T`, or `default` when the key is not set. A value of the wrong type is
    /// an error, not a silent default.
    pub fn get_or<T: DeserializeOwned>(&self, key: &str, default: T) -> Result<T, Error> {
        match self.get(key) {
            Err(Error::NotFound(_)) => Ok(default),
            other => other,
        }
    }

    /// A whole subtree as `T` (`extract::<ApiSettings>("api")`).
    pub fn extract<T: DeserializeOwned>(&self, prefix: &str) -> Result<T, Error> {
        self.get(prefix)
    }
}

/// A `get`/`extract` type error naming the offending value: its key path when it lies below `key`,
/// and the file, line and column it came from when a file set it (the value itself is withheld
/// when it holds a secret, as serde quotes it).
pub(crate) fn type_error(view: &View, key: &str, error: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let mut offending = key.to_owned();
    for segment in error.path().iter() {
        match segment {
            serde_path_to_error::Segment::Map { key: name } => offending = join_key(&offending, name),
            serde_path_to_error::Segment::Seq { index } => offending = join_key(&offending, &index.to_string()),
            serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => {}
        }
    }
    let message = crate::secret_values::safe_type_message(view, key, error.into_inner().to_string());
    // The nearest key with a file position: the value itself, else what holds it (a missing field).
    let mut position = None;
    let mut at = offending.as_str();
    loop {
        if let Some(found) = view.source_position(at) {
            position = Some(found);
            break;
        }
        match at.rsplit_once('.') {
            Some((parent, _)) if at.len() > key.len() => at = parent,
            _ => break,
        }
    }
    // A value no file set is named by its own origin when one finer than a layer is known (the
    // history version of a runtime override, the variable, the remote key).
    let position = position.map(|position| position.to_string()).or_else(|| {
        let origin = view.origin(&offending)?;
        (!matches!(origin.location, potter_engine::Location::Layer)).then(|| origin.provenance().source)
    });
    let place = match (offending != key, position) {
        (true, Some(position)) => format!("`{offending}` at {position}: "),
        (true, None) => format!("`{offending}`: "),
        (false, Some(position)) => format!("{position}: "),
        (false, None) => String::new(),
    };
    Error::Type { path: key.to_owned(), message: format!("{place}{message}") }
}

fn join_key(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}
