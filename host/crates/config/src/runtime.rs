//! The running configuration: loads layers, builds snapshots and swaps them atomically.
//!
//! Every change — first load, reload, runtime override — goes through [`ConfigHost::apply`]: collect
//! the layers, build a snapshot, check it, and only then swap it in. A failed change leaves the
//! previous snapshot live. Readers load the current snapshot with one atomic pointer read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use arc_swap::ArcSwap;
use potter_engine::merge::set_path;
use potter_engine::{Layer, LayerSource, Location, Rank, Scope, Snapshot, View, ViewKey};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::Error;
use potter_engine::Severity;
use potter_validate::{defaults_layers, Report, SchemaSet, Validation};
use crate::events::{Cause, ChangeOrigin, EventBus, Published, Subscription, DEFAULT_CAPACITY};
use crate::plugins::{Plugins, SourceRefresh};
use crate::source::{env, tree};

/// How to find and read the configuration.
#[derive(Clone)]
pub struct Options {
    /// The config tree.
    pub root: PathBuf,
    /// History, keyrings and caches; never inside the root.
    pub state_dir: PathBuf,
    /// Prefix of configuration environment variables.
    pub env_prefix: String,
    /// Environment variables to use instead of the process's own (embedders and tests).
    pub env_vars: Option<Vec<(String, String)>>,
    /// The drop-in folder of signed Wasm plugins (default `<root>/plugins`).
    pub plugins_dir: PathBuf,
    /// Load unsigned plugins (development only; refused in production).
    pub allow_unsigned: bool,
    /// Report keys no schema describes as errors instead of warnings.
    pub strict: bool,
    /// Record every change in `<state>/history.db` (runtime overrides are kept there).
    pub history: bool,
    /// The environments this process serves (None: every environment of the tree). The others
    /// are not loaded at all: their files and overrides are skipped, their keyrings never read,
    /// and their views answer as not served (see docs/SECRETS.md).
    pub environments: Option<Vec<String>>,
}

impl Options {
    /// Options for a tree at `root` with the default state directory and the process environment.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            state_dir: default_state_dir(&root),
            plugins_dir: root.join("plugins"),
            root,
            env_prefix: env::DEFAULT_PREFIX.to_owned(),
            env_vars: None,
            allow_unsigned: false,
            strict: false,
            history: true,
            environments: None,
        }
    }

    /// True when this process serves `environment` (every environment unless `environments` says).
    pub fn serves(&self, environment: &str) -> bool {
        self.environments.as_ref().is_none_or(|served| served.iter().any(|name| name == environment))
    }

    /// The view `key` of `snapshot`, refusing an environment this process does not serve with a
    /// message that says so (it answers like an unknown view: exit 2, HTTP 404).
    pub fn served_view<'s>(&self, snapshot: &'s Snapshot, key: &ViewKey) -> Result<&'s Arc<View>, Error> {
        if !self.serves(&key.environment) {
            return Err(Error::NotServed { environment: key.environment.to_string(), served: self.environments.clone().unwrap_or_default().join(", ") });
        }
        Ok(snapshot.view(key)?)
    }
}

impl std::fmt::Debug for Options {
    // `env_vars` may carry `POTTER_SECRET_KEY_*` key material: Debug shows only the variable names.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env_var_names: Option<Vec<&str>> = self.env_vars.as_ref().map(|vars| vars.iter().map(|(name, _)| name.as_str()).collect());
        f.debug_struct("Options")
            .field("root", &self.root)
            .field("state_dir", &self.state_dir)
            .field("env_prefix", &self.env_prefix)
            .field("env_vars", &env_var_names)
            .field("plugins_dir", &self.plugins_dir)
            .field("allow_unsigned", &self.allow_unsigned)
            .field("strict", &self.strict)
            .field("history", &self.history)
            .field("environments", &self.environments)
            .finish()
    }
}

/// Longest [`ConfigHost::plugin_list`] waits for a change in progress.
pub const PLUGIN_LIST_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// `.potter/` beside the root (`./config` → `./.potter`).
pub fn default_state_dir(root: &Path) -> PathBuf {
    let parent = root.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parent.join(".potter")
}

/// The configuration host an application embeds.
#[derive(Clone)]
pub struct ConfigHost {
    shared: Arc<Shared>,
}

struct Shared {
    options: Options,
    current: ArcSwap<Snapshot>,
    /// Serialises writers; readers never take it.
    writer: Mutex<WriterState>,
    /// The plugin host of `WriterState::plugins`, once there is one: listing plugins must not
    /// wait for the writer lock, which a reload holds while it calls plugins.
    plugin_host: OnceLock<Arc<potter_plugin::PluginHost>>,
    /// The history database the recorder writes to, for readers (see `timeline`).
    history: Arc<crate::recording::HistoryDatabase>,
    events: EventBus,
    /// Staged changes go live in the order they were staged, once durable.
    order: Mutex<CommitOrder>,
    published: Condvar,
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

/// A change built, validated and queued for recording, not yet live.
struct Staged {
    ticket: u64,
    snapshot: Snapshot,
    record: Option<crate::recording::PendingRecord>,
    cause: Cause,
}

/// What only the writer touches: the overrides, the parsed-file cache, the checks and the record.
struct WriterState {
    overrides: Overrides,
    files: tree::FileCache,
    checks: Validation,
    recorder: Option<crate::recording::Recorder>,
    /// The plugins folder's running plugins (None until the folder exists).
    plugins: Option<Plugins>,
    /// False once the live snapshot was validated with the current checks: a later change then
    /// validates only the views its changed layers apply to (the others are known valid).
    checks_changed: bool,
    /// The latest staged snapshot (live, or validated and waiting for its record): the base of
    /// the next change.
    head: Option<Arc<Snapshot>>,
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
        let mut state = Self { overrides, files: tree::FileCache::default(), checks, recorder, plugins, checks_changed: true, head: None };
        state.load_sources(options)?;
        Ok(state)
    }

    /// Every source's first output, read against the tree without sources (for namespaces).
    /// At start-up there is no last good output to keep, so any failure is an error.
    fn load_sources(&mut self, options: &Options) -> Result<(), Error> {
        let Some(plugins) = &self.plugins else { return Ok(()) };
        let provisional = build_snapshot(options, &self.overrides, &mut self.files, &self.checks, &plugins.layers())?;
        let plugins = self.plugins.as_mut().expect("checked above");
        let outcome = plugins.refresh_sources(&provisional, SourceRefresh::All, true);
        match outcome.rejecting.into_iter().next() {
            Some(error) => Err(Error::Plugin(error)),
            None => Ok(()),
        }
    }

    fn plugin_layers(&self) -> Vec<Arc<Layer>> {
        self.plugins.as_ref().map(Plugins::layers).unwrap_or_default()
    }
}

/// Runtime overrides per environment (made durable by the history store).
type Overrides = BTreeMap<String, Map<String, Value>>;

impl ConfigHost {
    /// Builds the tree's snapshot and validates it without requiring it to be valid (for `validate`).
    pub fn inspect(options: &Options) -> Result<(Snapshot, Report), Error> {
        let mut state = WriterState::prepare(options, |_| {})?;
        let plugin_layers = state.plugin_layers();
        let snapshot = build_snapshot(options, &state.overrides, &mut state.files, &state.checks, &plugin_layers)?;
        let report = validate_all(&state.checks, &snapshot);
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
        let mut state = WriterState::prepare(&options, configure)?;
        let plugin_layers = state.plugin_layers();
        let snapshot = build_snapshot(&options, &state.overrides, &mut state.files, &state.checks, &plugin_layers)?;
        let report = validate_all(&state.checks, &snapshot);
        for issue in &report.tree {
            tracing::warn!(problem = %issue.message, "configuration tree");
        }
        if report.has_errors() {
            return Err(Error::Invalid(report));
        }
        let version = state.recorder.as_ref().map_or(Ok(0), |recorder| recorder.latest_version())?;
        let snapshot = snapshot.with_version(version);
        if let Some(plugins) = &mut state.plugins {
            plugins.notify_namespaces(&snapshot);
        }
        state.checks_changed = false;
        let snapshot = Arc::new(snapshot);
        state.head = Some(snapshot.clone());
        let plugin_host = OnceLock::new();
        if let Some(plugins) = &state.plugins {
            let _ = plugin_host.set(plugins.host());
        }
        let history = state.recorder.as_ref().map_or_else(|| Arc::new(crate::recording::HistoryDatabase::new(&options.state_dir)), |recorder| recorder.database().clone());
        Ok(Self {
            shared: Arc::new(Shared {
                options,
                plugin_host,
                history,
                current: ArcSwap::new(snapshot),
                writer: Mutex::new(state),
                events: EventBus::new(DEFAULT_CAPACITY),
                order: Mutex::new(CommitOrder::default()),
                published: Condvar::new(),
            }),
        })
    }

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
        let mut state = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.adopt_recorded_overrides(&mut state)?;
        let overrides = state.overrides.clone();
        if state.plugins.is_none() && self.shared.options.plugins_dir.is_dir() {
            let plugins = Plugins::start_empty(&self.shared.options)?;
            let _ = self.shared.plugin_host.set(plugins.host());
            state.plugins = Some(plugins);
        }
        let Some(plugins) = state.plugins.as_mut() else {
            return self.apply(&mut state, &overrides, None, cause);
        };
        let before = self.snapshot();
        let sources = plugins.refresh_sources(&before, refresh, false);
        for error in &sources.kept {
            tracing::warn!(%error, "source failed; its last good output stays in the configuration");
            self.shared.events.publish(Published::Rejected { cause: plugin_cause(error), diagnostics: vec![format!("{error}; keeping its last good output")] });
        }
        if let Some(error) = sources.rejecting.into_iter().next() {
            tracing::warn!(%error, "source failed and its policy rejects the reload");
            let error = Error::Plugin(error);
            self.shared.events.publish(Published::Rejected { cause, diagnostics: error.diagnostics() });
            return Err(error);
        }
        let folder = plugins.sync_folder(&before);
        for error in &folder.refusals {
            self.shared.events.publish(Published::Rejected { cause: plugin_cause(error), diagnostics: vec![error.to_string()] });
        }
        if folder.is_empty() {
            return self.apply(&mut state, &overrides, None, cause);
        }
        let cause = match folder.arrivals.iter().chain(&folder.departures).next() {
            Some(name) if cause.origin == ChangeOrigin::File => Cause::new(ChangeOrigin::Plugin, format!("plugin:{name}")),
            _ => cause,
        };
        let state = &mut *state;
        let plugins = state.plugins.as_mut().expect("set above");
        plugins.register(&mut state.checks);
        state.checks_changed = true;
        match self.apply(state, &overrides, None, cause.clone()) {
            Ok(snapshot) => {
                state.plugins.as_mut().expect("set above").commit(&folder);
                Ok(snapshot)
            }
            Err(error) => {
                // The new versions are refused; whatever else changed in this reload still applies.
                let plugins = state.plugins.as_mut().expect("set above");
                plugins.roll_back(folder, &error.diagnostics().join("; "));
                plugins.register(&mut state.checks);
                state.checks_changed = true;
                self.apply(state, &overrides, None, cause)
            }
        }
    }

    /// Takes in runtime overrides that another process (the CLI beside a server, a second
    /// server on the same state) recorded in the history since this host last applied a change.
    /// Called before every change and by the watcher's poller, so nothing recorded is lost or
    /// overwritten by a stale copy. Cheap when nothing is new: one indexed read.
    pub fn sync_recorded_overrides(&self) -> Result<(), Error> {
        let mut state = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.adopt_recorded_overrides(&mut state)?;
        // A change finished while another writer held the lock has not told the plugins yet.
        let current = self.shared.current.load_full();
        if let Some(plugins) = &mut state.plugins {
            plugins.notify_namespaces(&current);
        }
        Ok(())
    }

    fn adopt_recorded_overrides(&self, state: &mut WriterState) -> Result<(), Error> {
        let Some(recorder) = &state.recorder else { return Ok(()) };
        let poisoned = {
            let order = self.order();
            // Our own records are still landing: the history is ahead of us for a moment. What
            // another process recorded meanwhile stays in the history and is taken in later.
            if order.in_flight() && !order.poisoned {
                return Ok(());
            }
            order.poisoned
        };
        if poisoned {
            drop(self.drain());
        }
        let recorded = recorder.latest_version()?;
        let current = self.shared.current.load_full();
        if !poisoned && recorded <= current.version() {
            return Ok(());
        }
        let overrides = recorder.overrides()?;
        // Validated against the live snapshot, in full after a failure.
        state.head = Some(current);
        state.checks_changed |= poisoned;
        let snapshot = Arc::new(self.build_checked(state, &overrides, recorded)?);
        state.overrides = overrides;
        state.head = Some(snapshot.clone());
        self.shared.current.store(snapshot.clone());
        state.checks_changed = false;
        let actor = if poisoned { "history" } else { "another process" };
        self.shared.events.publish(Published::Applied { cause: Cause::new(ChangeOrigin::Cli, actor), after: snapshot.clone() });
        if let Some(plugins) = &mut state.plugins {
            plugins.notify_namespaces(&snapshot);
        }
        self.order().poisoned = false;
        Ok(())
    }

    /// How long a change waits, at most, for a save in flight before it takes an emptied or
    /// removed file as meant ([`ConfigHost::watch`] sets its `max_delay`).
    pub fn set_settle_limit(&self, limit: std::time::Duration) {
        self.shared.writer.lock().unwrap_or_else(|p| p.into_inner()).files.set_settle_limit(limit);
    }

    /// The history database shared with the recorder (read through `timeline`).
    pub(crate) fn history_database(&self) -> &Arc<crate::recording::HistoryDatabase> {
        &self.shared.history
    }

    /// When a source poll or a plugin file that is still arriving is next due (for the watcher).
    pub fn next_plugin_due(&self) -> Option<std::time::Instant> {
        let state = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        state.plugins.as_ref().and_then(Plugins::next_due)
    }

    /// Every plugin of the plugins folder with its status, last error and refused update.
    ///
    /// A change or reload in progress holds the writer lock, and may be inside a plugin call for
    /// as long as that plugin's time limit: the list waits for it [`PLUGIN_LIST_WAIT`] at most
    /// (so it agrees with a change that just finished), then answers from the plugin host as is.
    pub fn plugin_list(&self) -> Vec<potter_plugin::PluginInfo> {
        let deadline = std::time::Instant::now() + PLUGIN_LIST_WAIT;
        loop {
            match self.shared.writer.try_lock() {
                Ok(state) => return state.plugins.as_ref().map(Plugins::list).unwrap_or_default(),
                Err(std::sync::TryLockError::Poisoned(state)) => return state.into_inner().plugins.as_ref().map(Plugins::list).unwrap_or_default(),
                Err(std::sync::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(1)),
                Err(std::sync::TryLockError::WouldBlock) => return self.shared.plugin_host.get().map(|host| host.list()).unwrap_or_default(),
            }
        }
    }

    /// Validates the current snapshot again (every view), without changing anything.
    pub fn validate(&self) -> Report {
        let state = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        validate_all(&state.checks, &self.snapshot())
    }

    /// Changes of `prefix` in one view, from now on.
    pub fn subscribe(&self, view: &ViewKey, prefix: &str) -> Result<Subscription, Error> {
        if !prefix.is_empty() {
            potter_engine::parse_key_path(prefix)?;
        }
        let receiver = self.shared.events.subscribe();
        let baseline = self.snapshot();
        self.shared.options.served_view(&baseline, view)?;
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

    /// The runtime overrides of one environment now (ciphertexts as written, never plaintext).
    pub fn overrides(&self, environment: &str) -> Map<String, Value> {
        let state = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        state.overrides.get(environment).cloned().unwrap_or_default()
    }

    /// Sets (`Some`) or removes (`None`) several overrides of one environment as ONE change (one
    /// version; a rollback). With `dry_run` the result is built and validated but neither
    /// recorded nor swapped in, and the snapshot it would become is returned.
    pub fn edit_overrides(&self, environment: &str, edits: &[(String, Option<Value>)], request: SetRequest, dry_run: bool) -> Result<Arc<Snapshot>, Error> {
        let mut parsed = Vec::with_capacity(edits.len());
        for (key, _) in edits {
            parsed.push(potter_engine::parse_key_path(key)?);
        }
        self.shared.options.served_view(&self.snapshot(), &ViewKey::environment(environment))?;
        let mut state = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        // An edit goes onto the overrides as recorded, including another process's.
        self.adopt_recorded_overrides(&mut state)?;
        let mut proposed = state.overrides.clone();
        let tree = proposed.entry(environment.to_owned()).or_default();
        for ((_, value), segments) in edits.iter().zip(&parsed) {
            match value {
                Some(value) => set_path(tree, segments, value.clone()),
                None => remove_path(tree, segments),
            }
        }
        if tree.is_empty() {
            proposed.remove(environment);
        }
        if dry_run {
            let version = self.shared.current.load().version();
            return Ok(Arc::new(self.build_checked(&mut state, &proposed, version)?));
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
        let Some(staged) = self.stage(&mut state, &proposed, change.as_ref(), cause)? else {
            state.overrides = proposed;
            return Ok(self.shared.current.load_full());
        };
        state.overrides = proposed;
        if request.if_version.is_some() {
            // A compare-and-set finishes under the lock, so the next one's check sees it.
            return self.finish_locked(&mut state, staged);
        }
        // The next change may be staged while this one's record is made durable (one fsync for several).
        drop(state);
        let snapshot = self.finish(staged)?;
        if let Ok(mut state) = self.shared.writer.try_lock() {
            let current = self.shared.current.load_full();
            if let Some(plugins) = &mut state.plugins {
                plugins.notify_namespaces(&current);
            }
        }
        Ok(snapshot)
    }

    /// The one path every change takes: build, check, record, swap, publish. A change that alters
    /// nothing keeps the current snapshot (no new version, no event).
    fn apply(&self, state: &mut WriterState, overrides: &Overrides, change: Option<&OverrideChange>, cause: Cause) -> Result<Arc<Snapshot>, Error> {
        match self.stage(state, overrides, change, cause)? {
            Some(staged) => self.finish_locked(state, staged),
            None => Ok(self.shared.current.load_full()),
        }
    }

    /// [`Self::finish`] while holding the writer lock, then tells the plugins of namespace changes.
    fn finish_locked(&self, state: &mut WriterState, staged: Staged) -> Result<Arc<Snapshot>, Error> {
        let snapshot = self.finish(staged)?;
        if let Some(plugins) = &mut state.plugins {
            plugins.notify_namespaces(&snapshot);
        }
        Ok(snapshot)
    }

    /// Builds and checks the change on top of the latest staged snapshot and queues its record.
    /// None when it changes nothing. Under the writer lock.
    fn stage(&self, state: &mut WriterState, overrides: &Overrides, change: Option<&OverrideChange>, cause: Cause) -> Result<Option<Staged>, Error> {
        let before = state.head.clone().unwrap_or_else(|| self.shared.current.load_full());
        let checked = self.build_checked(state, overrides, before.version());
        let snapshot = match checked {
            Ok(snapshot) => snapshot,
            Err(error) => {
                self.shared.events.publish(Published::Rejected { cause, diagnostics: error.diagnostics() });
                return Err(error);
            }
        };
        if same_layers(before.layers(), snapshot.layers()) && before.axes() == snapshot.axes() {
            return Ok(None);
        }
        // Durable before acknowledged: the record is queued now and waited for in `finish`.
        let record = match &state.recorder {
            Some(recorder) => Some(recorder.record(&before, &snapshot, &state.overrides, overrides, change, &cause)?),
            None => None,
        };
        let ticket = {
            let mut order = self.order();
            order.staged += 1;
            order.staged
        };
        // The staged snapshot itself goes live with its version; the head is a twin over the same layers.
        state.head = Some(Arc::new(Snapshot::new(before.version(), snapshot.layers().to_vec(), snapshot.axes().clone())));
        state.checks_changed = false;
        Ok(Some(Staged { ticket, snapshot, record, cause }))
    }

    /// Waits until the staged change is durable and every change staged before it has finished,
    /// then swaps it in and publishes it. Needs no writer lock.
    fn finish(&self, staged: Staged) -> Result<Arc<Snapshot>, Error> {
        let recorded = staged.record.map(crate::recording::PendingRecord::wait).transpose();
        let mut order = self.order();
        while order.finished + 1 != staged.ticket {
            order = self.shared.published.wait(order).unwrap_or_else(|p| p.into_inner());
        }
        let outcome = match recorded {
            Err(error) => {
                order.poisoned = true;
                self.shared.events.publish(Published::Rejected { cause: staged.cause, diagnostics: error.diagnostics() });
                Err(error)
            }
            Ok(_) if order.poisoned => Err(Error::Pending(
                "the change was recorded, but a change queued before it failed to record; it goes live when the host re-reads the history (at the next change, or within a second while watching)".to_owned(),
            )),
            Ok(version) => {
                let current = self.shared.current.load_full();
                let version = match version {
                    Some(Some(recorded)) => recorded,
                    // Nothing to record (no value or override differs): same version.
                    Some(None) => current.version(),
                    // No history kept: versions count changes in memory.
                    None => current.version() + 1,
                };
                let snapshot = Arc::new(staged.snapshot.with_version(version));
                self.shared.current.store(snapshot.clone());
                self.shared.events.publish(Published::Applied { cause: staged.cause, after: snapshot.clone() });
                Ok(snapshot)
            }
        };
        order.finished = staged.ticket;
        self.shared.published.notify_all();
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
            order = self.shared.published.wait(order).unwrap_or_else(|p| p.into_inner());
        }
        order
    }

    /// Reloads schemas if they changed, builds the snapshot and validates every view.
    fn build_checked(&self, state: &mut WriterState, overrides: &Overrides, version: u64) -> Result<Snapshot, Error> {
        let schema_files = state.checks.schemas().files().len();
        let reloaded = state.checks.schemas_mut().reload().map_err(Error::Schema)?;
        if !reloaded.recompiled.is_empty() || state.checks.schemas().files().len() != schema_files {
            state.checks_changed = true;
        }
        let plugin_layers = state.plugin_layers();
        let snapshot = build_snapshot(&self.shared.options, overrides, &mut state.files, &state.checks, &plugin_layers)?.with_version(version);
        let live = state.head.clone().unwrap_or_else(|| self.shared.current.load_full());
        let mut report = if state.checks_changed || live.axes() != snapshot.axes() {
            state.checks.validate_snapshot(&snapshot)
        } else {
            // The live snapshot is valid under these checks: only views a changed layer applies to can differ.
            let changed = live.changed_layers(&snapshot);
            state.checks.validate_snapshot_where(&snapshot, |key| changed.iter().any(|layer| layer.applies_to(&key.environment, key.service.as_deref(), key.user.as_deref())))
        };
        crate::secrets::note_sealed_secrets(&mut report, &snapshot);
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
        self.shared.options.served_view(&snapshot, &key)?;
        let slot = snapshot.slot_of(&key).ok_or_else(|| snapshot.view(&key).unwrap_err())?;
        Ok(ViewHandle { shared: self.shared.clone(), key, slot: Arc::new(AtomicUsize::new(slot)) })
    }
}

/// Every view validated, plus the issues about the tree as a whole.
fn validate_all(checks: &Validation, snapshot: &Snapshot) -> Report {
    let mut report = checks.validate_snapshot(snapshot);
    report.tree.extend(checks.schemas().missing_schemas_warning(snapshot.layers()));
    crate::secrets::note_sealed_secrets(&mut report, snapshot);
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
    pub origin: ChangeOrigin,
    pub reason: Option<String>,
    /// Compare-and-set: refuse if the key (or anything under it) changed after this version.
    pub if_version: Option<u64>,
}

impl SetRequest {
    pub fn new(origin: ChangeOrigin, actor: impl Into<String>) -> Self {
        Self { actor: actor.into(), origin, reason: None, if_version: None }
    }
}

/// A runtime override being set or removed, as the history records it.
#[derive(Debug, Clone)]
pub struct OverrideChange {
    pub environment: String,
    pub key: String,
    /// None removes the override.
    pub value: Option<Value>,
    /// Compare-and-set: refuse if the key changed after this version.
    pub if_version: Option<u64>,
}

/// A change a plugin caused, named after it.
fn plugin_cause(error: &potter_plugin::PluginError) -> Cause {
    Cause::new(ChangeOrigin::Plugin, format!("plugin:{}", error.plugin().unwrap_or("*")))
}

fn build_snapshot(options: &Options, overrides: &Overrides, files: &mut tree::FileCache, checks: &Validation, plugin_layers: &[Arc<Layer>]) -> Result<Snapshot, Error> {
    // Keyrings are read before the files so a concurrent `secrets rotate` cannot retire a key a file still uses.
    let mut keyrings = None;
    let (listing, file_layers) = files.load_settled(&options.root, |listing| {
        // Only the environments this process serves are read, decrypted and validated.
        restrict_to_served(options, listing)?;
        if keyrings.is_none() {
            keyrings = Some(crate::secrets::Keyrings::resolve_all(options, listing.axes.environments.iter()));
        }
        Ok(())
    })?;
    let mut keyrings = keyrings.expect("resolved before the files were read");
    let mut layers: Vec<Arc<Layer>> = Vec::with_capacity(file_layers.len() + 3 + overrides.len() + plugin_layers.len());
    layers.extend(defaults_layers(checks.schemas()).into_iter().map(Arc::new));
    layers.extend(plugin_layers.iter().filter(|layer| layer.scope.environment.as_deref().is_none_or(|env| options.serves(env))).cloned());
    layers.extend(file_layers);
    layers.push(Arc::new(match &options.env_vars {
        Some(vars) => potter_engine::envvars::env_layer(&options.env_prefix, vars.iter().cloned()),
        None => env::from_process(&options.env_prefix),
    }));
    for (environment, tree) in overrides.iter().filter(|(environment, _)| options.serves(environment)) {
        layers.push(Arc::new(override_layer(environment, tree)));
    }
    // Decrypt ciphertexts, mark secret paths; the extra patterns are for schema `"secret": true` paths.
    let schema_secrets: Vec<String> = checks.schemas().secret_patterns().iter().map(dotted_pattern).collect();
    crate::secrets::decrypt_layers(&mut keyrings, &mut layers, &schema_secrets)?;
    Ok(Snapshot::new(0, layers, listing.axes))
}

/// Drops the environments `options` does not serve from a listing (their files are not read);
/// a served environment the tree does not have is an error.
fn restrict_to_served(options: &Options, listing: &mut tree::TreeListing) -> Result<(), Error> {
    let Some(served) = &options.environments else { return Ok(()) };
    if let Some(missing) = served.iter().find(|name| !listing.axes.environments.iter().any(|env| **env == ***name)) {
        let known = listing.axes.environments.iter().map(|env| env.to_string()).collect::<Vec<_>>().join(", ");
        return Err(Error::UnknownView(potter_engine::UnknownView::Environment { name: missing.clone(), known }));
    }
    listing.axes.environments.retain(|env| options.serves(env));
    listing.files.retain(|file| file.rank != Rank::EnvironmentFile || options.serves(&file.name));
    Ok(())
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

fn override_layer(environment: &str, tree: &Map<String, Value>) -> Layer {
    let mut layer = Layer::new(format!("overrides/{environment}"), Rank::Overrides, Scope::environment(environment), LayerSource::Overrides, tree.clone());
    layer.locations.values_mut().for_each(|location| *location = Location::Layer);
    layer
}

fn remove_path(tree: &mut Map<String, Value>, segments: &[&str]) {
    fn remove(node: &mut Map<String, Value>, segments: &[&str]) {
        match segments {
            [last] => {
                node.shift_remove(*last);
            }
            [first, rest @ ..] => {
                if let Some(Value::Object(child)) = node.get_mut(*first) {
                    remove(child, rest);
                    if child.is_empty() {
                        node.shift_remove(*first);
                    }
                }
            }
            [] => {}
        }
    }
    remove(tree, segments);
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
        view.get_ref(key).map(|value| crate::secrets::redact_sealed(view, key, value))
    }

    /// The value at `key` as `T` (`get::<u32>("api.rate_limit")`).
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, Error> {
        let snapshot = self.shared.current.load();
        let view = self.view_in(&snapshot)?;
        let value = view.get_ref(key).ok_or_else(|| Error::NotFound(key.to_owned()))?;
        crate::secrets::ensure_revealable(view, key)?;
        T::deserialize(value).map_err(|e| Error::Type { path: key.to_owned(), message: crate::secrets::safe_type_message(view, key, e.to_string()) })
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

