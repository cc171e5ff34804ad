//! The plugins folder: Wasm validators, sources and namespaces, kept in step with the folder.
//!
//! At start-up loading is all or nothing: a plugin that is unsigned, tampered, signed by an unknown
//! key, not a component, asking for an ungranted import or failing its first call stops the host
//! from opening. Later, the folder is compared with what runs on every reload: a new or replaced
//! plugin goes live only if the whole reload pipeline accepts it (verified, compiled, first calls
//! answered, the configuration it produces valid); otherwise it is refused and the version that
//! ran before keeps running. A deleted plugin's layers and namespace leave through a normal change.
//!
//! Plugins contribute to the configuration through:
//! - validators (`plugin:<name>`) and namespace schemas (`plugin-schema:<name>`), registered with
//!   the validation step;
//! - namespace defaults, a layer at the defaults level holding `plugins.<name>`;
//! - source layers, one per environment, at the "remote and plugin sources" level, ordered by
//!   manifest priority then name (the higher priority, then the later name, wins).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use potter_engine::{Issue, Layer, LayerSource, Location, Rank, Scope, Severity, Snapshot, View, ViewKey};
use potter_plugin::{GrantRules, HostOptions, LoadedPlugin, OnError, PluginError, PluginHost, PluginInfo, PluginKind, Refusal, PRODUCTION};
use potter_validate::{MountedSchema, Validation, Validator, ValidatorError};
use serde_json::{json, Value};

use crate::error::Error;
use crate::options::Options;
use crate::source::tree;

/// A plugin file that changed less than this long ago and does not verify is taken to be still
/// arriving (a copy in progress, the signature not yet written) and is looked at again later
/// instead of being refused.
pub const SETTLE_TIME: Duration = Duration::from_millis(1000);

/// Validator names of plugins start with these, so they can be replaced as a set.
const VALIDATOR_PREFIX: &str = "plugin:";
const SCHEMA_VALIDATOR_PREFIX: &str = "plugin-schema:";

/// The plugins that run, and what they contribute.
pub struct Plugins {
    host: Arc<PluginHost>,
    dir: PathBuf,
    active: BTreeMap<String, Active>,
    /// Files refused at their current stamp: not tried again until they change.
    refused: BTreeMap<String, FileStamp>,
    /// Files that failed verification while still changing: the stamp they had then, and when to
    /// look at them again if they do not change before.
    settling: BTreeMap<String, (FileStamp, Instant)>,
}

/// A running plugin and its contributions.
#[derive(Clone)]
struct Active {
    plugin: Arc<LoadedPlugin>,
    file: PathBuf,
    stamp: FileStamp,
    validators: Vec<Arc<dyn Validator>>,
    defaults: Option<Arc<Layer>>,
    source: Option<SourceState>,
    /// The namespace content last passed to `on-config-changed`, per environment.
    notified: BTreeMap<String, Value>,
    /// The last failure of a call about each environment (validate, a source's calls), cleared
    /// by the next success: what `GET /v1/plugins` shows a token that may read that environment.
    errors: EnvironmentErrors,
}

/// Per environment, the last error of a plugin's calls about it.
type EnvironmentErrors = Arc<Mutex<BTreeMap<String, String>>>;

fn remember_error<T>(errors: &EnvironmentErrors, environment: &str, result: &Result<T, PluginError>) {
    let mut errors = errors.lock().unwrap_or_else(|p| p.into_inner());
    match result {
        Ok(_) => errors.remove(environment),
        Err(error) => errors.insert(environment.to_owned(), error.to_string()),
    };
}

/// A source's last good output and when to ask it again.
#[derive(Clone, Default)]
struct SourceState {
    layers: BTreeMap<String, Arc<Layer>>,
    tokens: BTreeMap<String, Option<String>>,
    /// None: never polled (only loaded at start, on `reload()` and when replaced).
    interval: Option<Duration>,
    next_poll: Option<Instant>,
}

/// Size and modification time of a plugin's three files; a change in any means a new version.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp([Option<(u64, SystemTime)>; 3]);

impl FileStamp {
    fn of(wasm: &Path) -> FileStamp {
        let stamp = |path: PathBuf| std::fs::metadata(path).ok().map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
        FileStamp([
            stamp(wasm.to_path_buf()),
            stamp(potter_plugin::signature_path(wasm)),
            stamp(potter_plugin::manifest_path(wasm)),
        ])
    }

    fn newest(&self) -> SystemTime {
        self.0.iter().flatten().map(|(_, modified)| *modified).max().unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// Which sources a reload asks for fresh output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceRefresh {
    /// Every source (start-up, an explicit `reload()`).
    All,
    /// Sources whose poll interval has elapsed.
    Due,
}

/// A folder change that has been prepared but not yet accepted.
#[derive(Default)]
pub(crate) struct FolderChange {
    /// New or replaced plugins, loaded and with their first calls answered.
    pub(crate) arrivals: Vec<String>,
    /// Plugins whose file left the folder.
    pub(crate) departures: Vec<String>,
    /// Versions refused on the way (verification, compilation, first call).
    pub(crate) refusals: Vec<PluginError>,
    /// What ran before, to put back if the reload is rejected.
    before: BTreeMap<String, Active>,
}

impl FolderChange {
    pub(crate) fn is_empty(&self) -> bool {
        self.arrivals.is_empty() && self.departures.is_empty()
    }
}

/// What asking the sources produced.
#[derive(Default)]
pub(crate) struct SourceOutcome {
    /// Failures of sources whose policy keeps the last good output.
    pub(crate) kept: Vec<PluginError>,
    /// Failures of sources whose policy rejects the reload.
    pub(crate) rejecting: Vec<PluginError>,
}

impl Plugins {
    /// Loads the plugins folder and registers each validator with `checks`; every plugin must load
    /// and answer its first calls. No folder → no plugins (one can be created later).
    pub fn load(options: &Options, checks: &mut Validation) -> Result<Option<Self>, Error> {
        let Some((plugins, mut refusals)) = Self::open_folder(options)? else { return Ok(None) };
        if !refusals.is_empty() {
            return Err(Error::Plugin(refusals.swap_remove(0)));
        }
        plugins.register(checks);
        Ok(Some(plugins))
    }

    /// Loads every plugin of the folder and keeps going past refusals (for `plugin list`, which
    /// shows each plugin's status). Fails only when the host itself cannot start.
    pub fn inspect(options: &Options) -> Result<Option<Self>, Error> {
        Ok(Self::open_folder(options)?.map(|(plugins, _)| plugins))
    }

    /// No plugin yet: start-up fills it from the folder, and a folder created after start-up is
    /// filled by the next reload.
    pub fn start_empty(options: &Options) -> Result<Self, Error> {
        let host = Arc::new(PluginHost::new(host_options(options)?)?);
        Ok(Self { host, dir: options.plugins_dir.clone(), active: BTreeMap::new(), refused: BTreeMap::new(), settling: BTreeMap::new() })
    }

    /// The plugins of the folder that load, and why the others were refused (in file-name order).
    fn open_folder(options: &Options) -> Result<Option<(Self, Vec<PluginError>)>, Error> {
        if !options.plugins_dir.exists() {
            return Ok(None);
        }
        let mut plugins = Self::start_empty(options)?;
        let mut refusals = Vec::new();
        for file in wasm_files(&options.plugins_dir) {
            let loaded = plugins.host.prepare(&file).and_then(|plugin| {
                let mut entry = Active::new(plugin, file.clone());
                // Its first calls (namespace defaults) are part of loading it.
                prepare_contributions(&mut entry).map_err(plugin_error)?;
                Ok(entry)
            });
            match loaded {
                Ok(entry) => {
                    plugins.host.record_loaded(&file, entry.plugin.clone());
                    plugins.active.insert(entry.plugin.name().to_owned(), entry);
                }
                Err(error) => {
                    plugins.host.record_refused(&stem(&file), &file, &error);
                    refusals.push(error);
                }
            }
        }
        Ok(Some((plugins, refusals)))
    }

    /// Registers every running plugin's validators with `checks`, replacing those registered before.
    pub fn register(&self, checks: &mut Validation) {
        checks.retain_validators(|name| !name.starts_with(VALIDATOR_PREFIX) && !name.starts_with(SCHEMA_VALIDATOR_PREFIX));
        for active in self.active.values() {
            for validator in &active.validators {
                checks.add_validator(validator.clone());
            }
        }
    }

    /// Every plugin of the folder with its status, last error and last error per environment.
    pub fn list(&self) -> Vec<PluginInfo> {
        let mut infos = self.host.list();
        for info in &mut infos {
            if let Some(active) = self.active.get(&info.name) {
                info.environment_errors = active.errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
            }
        }
        infos
    }

    /// The plugin host, to list plugins without holding what owns them.
    pub fn host(&self) -> Arc<PluginHost> {
        self.host.clone()
    }

    /// The layers plugins contribute: namespace defaults (by name), then source layers ordered by
    /// priority, then name.
    pub fn layers(&self) -> Vec<Arc<Layer>> {
        let mut layers: Vec<Arc<Layer>> = self.active.values().filter_map(|active| active.defaults.clone()).collect();
        let mut sources: Vec<&Active> = self.active.values().filter(|active| active.source.is_some()).collect();
        sources.sort_by(|a, b| (a.plugin.manifest().priority, a.plugin.name()).cmp(&(b.plugin.manifest().priority, b.plugin.name())));
        for active in sources {
            if let Some(source) = &active.source {
                layers.extend(source.layers.values().cloned());
            }
        }
        layers
    }

    /// Asks sources for fresh output (all, or those due) for each environment of `current`.
    /// A source that fails keeps its last good output; its failure is returned, sorted by its
    /// manifest's `on_error`. At start-up (`first`) a failure has no last good output to keep and
    /// is returned as rejecting whatever the policy.
    pub(crate) fn refresh_sources(&mut self, current: &Snapshot, refresh: SourceRefresh, first: bool) -> SourceOutcome {
        let now = Instant::now();
        let mut outcome = SourceOutcome::default();
        for active in self.active.values_mut() {
            let Some(source) = &mut active.source else { continue };
            let due = source.next_poll.is_some_and(|at| at <= now);
            if refresh == SourceRefresh::Due && !due {
                continue;
            }
            if let Err(error) = refresh_source(&active.plugin, source, current, false, &active.errors) {
                match active.plugin.manifest().on_error {
                    _ if first => outcome.rejecting.push(error),
                    OnError::Keep => outcome.kept.push(error),
                    OnError::Reject => outcome.rejecting.push(error),
                }
            }
            source.next_poll = source.interval.map(|interval| now + interval);
        }
        outcome
    }

    /// When the next source poll or settling plugin file is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        let polls = self.active.values().filter_map(|active| active.source.as_ref()?.next_poll);
        polls.chain(self.settling.values().map(|(_, at)| *at)).min()
    }

    /// Compares the folder with what runs and prepares the difference: new and replaced plugins
    /// are verified, compiled and asked for their namespace defaults and source output (against
    /// `current`); departed ones are dropped. Nothing is final until [`Self::commit`]; a rejected
    /// reload calls [`Self::roll_back`].
    pub(crate) fn sync_folder(&mut self, current: &Snapshot) -> FolderChange {
        let mut change = FolderChange::default();
        let files = wasm_files(&self.dir);
        let present: BTreeMap<String, PathBuf> = files.into_iter().map(|file| (stem(&file), file)).collect();
        let now = Instant::now();
        self.settling.retain(|name, _| present.contains_key(name));
        self.refused.retain(|name, _| present.contains_key(name));
        // A refused file that left the folder is no longer worth listing.
        for info in self.host.list() {
            if !present.contains_key(&info.name) && !self.active.contains_key(&info.name) {
                self.host.unload(&info.name);
            }
        }
        for name in self.active.keys() {
            if !present.contains_key(name) {
                change.departures.push(name.clone());
            }
        }
        for (name, file) in &present {
            let stamp = FileStamp::of(file);
            let unchanged = self.active.get(name).is_some_and(|active| active.stamp == stamp);
            let refused_before = self.refused.get(name) == Some(&stamp);
            // A file that changes again is looked at at once; one that stays as it was, once it settles.
            let settling = self.settling.get(name).is_some_and(|(seen, at)| *seen == stamp && *at > now);
            if unchanged || refused_before {
                self.settling.remove(name);
                continue;
            }
            if settling {
                continue;
            }
            match self.host.prepare(file) {
                Ok(plugin) => {
                    let mut active = Active::new(plugin, file.clone());
                    active.stamp = stamp.clone();
                    match prepare_contributions(&mut active).and_then(|()| first_source_load(&mut active, current)) {
                        Ok(()) => {
                            self.settling.remove(name);
                            if let Some(previous) = self.active.insert(name.clone(), active) {
                                change.before.insert(name.clone(), previous);
                            }
                            change.arrivals.push(name.clone());
                        }
                        Err(error) => self.refuse(name, file, stamp, plugin_error(error), &mut change),
                    }
                }
                // Deleted while being looked at (no module and no manifest left): it simply is not there.
                Err(PluginError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound && !any_file_left(file) => {}
                Err(error) if still_arriving(&error, &stamp) => {
                    tracing::debug!(plugin = %name, %error, "plugin file still changing; looking again once it settles");
                    self.settling.insert(name.clone(), (stamp, now + SETTLE_TIME));
                }
                Err(error) => self.refuse(name, file, stamp, error, &mut change),
            }
        }
        for name in &change.departures {
            if let Some(active) = self.active.remove(name) {
                change.before.insert(name.clone(), active);
            }
        }
        change
    }

    fn refuse(&mut self, name: &str, file: &Path, stamp: FileStamp, error: PluginError, change: &mut FolderChange) {
        self.host.record_refused(name, file, &error);
        self.refused.insert(name.to_owned(), stamp);
        self.settling.remove(name);
        change.refusals.push(error);
    }

    /// Makes a prepared folder change final: the plugin host lists the new versions.
    pub(crate) fn commit(&mut self, change: &FolderChange) {
        for name in &change.arrivals {
            if let Some(active) = self.active.get(name) {
                self.host.record_loaded(&active.file, active.plugin.clone());
                tracing::info!(plugin = %name, version = %active.plugin.manifest().version, "plugin loaded");
            }
        }
        for name in &change.departures {
            self.host.unload(name);
            tracing::info!(plugin = %name, "plugin unloaded (its file left the folder)");
        }
    }

    /// Puts back what ran before a rejected folder change. The new versions are refused with
    /// `reason` (and stay refused until their files change); departed plugins keep running until a
    /// reload can remove them validly.
    pub(crate) fn roll_back(&mut self, change: FolderChange, reason: &str) {
        for name in &change.arrivals {
            if let Some(active) = self.active.remove(name) {
                let error = PluginError::Unsupported { plugin: name.clone(), reason: format!("new version refused: the reload with it was rejected: {reason}") };
                self.host.record_refused(name, &active.file, &error);
                self.refused.insert(name.clone(), active.stamp);
            }
        }
        self.active.extend(change.before);
    }

    /// Calls `on-config-changed` of every namespace plugin whose namespace changed in an
    /// environment of `snapshot` since it was last told. Failures are logged and listed.
    pub(crate) fn notify_namespaces(&mut self, snapshot: &Snapshot) {
        for active in self.active.values_mut() {
            if !active.plugin.owns_namespace() {
                continue;
            }
            for environment in &snapshot.axes().environments {
                let content = namespace_in(snapshot, environment, &active.plugin);
                if active.notified.get(&**environment) == Some(&content) {
                    continue;
                }
                let result = active.plugin.on_config_changed(environment, &content.to_string());
                remember_error(&active.errors, environment, &result);
                if let Err(error) = result {
                    tracing::warn!(plugin = %active.plugin.name(), %error, "on-config-changed failed");
                }
                active.notified.insert(environment.to_string(), content);
            }
        }
    }
}

impl Active {
    fn new(plugin: Arc<LoadedPlugin>, file: PathBuf) -> Self {
        let stamp = FileStamp::of(&file);
        Self { plugin, file, stamp, validators: Vec::new(), defaults: None, source: None, notified: BTreeMap::new(), errors: EnvironmentErrors::default() }
    }
}

/// Validators, namespace schema and defaults of a freshly loaded plugin (its first calls).
fn prepare_contributions(active: &mut Active) -> Result<(), Error> {
    let plugin = &active.plugin;
    let name = plugin.name();
    let manifest = plugin.manifest();
    if manifest.kind == PluginKind::Validator {
        active.validators.push(Arc::new(PluginValidator::new(plugin.clone(), active.errors.clone())));
    }
    if let Some(schema) = &manifest.namespace_schema {
        let schema: Value = serde_json::from_str(schema).map_err(|e| PluginError::Unsupported { plugin: name.to_owned(), reason: format!("namespace_schema: {e}") })?;
        let mounted = MountedSchema::new(format!("{SCHEMA_VALIDATOR_PREFIX}{name}"), format!("plugin {name} namespace_schema"), &manifest.namespace(), &schema)
            .map_err(|e| PluginError::Unsupported { plugin: name.to_owned(), reason: e.to_string() })?;
        active.validators.push(Arc::new(mounted));
    }
    if let Some(defaults) = plugin.namespace_defaults()? {
        let data = json!({ "plugins": { name: defaults } });
        let Value::Object(data) = data else { unreachable!("built as an object") };
        let mut layer = Layer::new(format!("plugins/{name}/defaults"), Rank::Defaults, Scope::everywhere(), LayerSource::Defaults(format!("plugin:{name}")), data);
        layer.locations.values_mut().for_each(|location| *location = Location::Layer);
        active.defaults = Some(Arc::new(layer));
    }
    if manifest.kind == PluginKind::Source {
        active.source = Some(SourceState::default());
    }
    Ok(())
}

/// A source's first output, for every environment of `current`, and its poll interval.
fn first_source_load(active: &mut Active, current: &Snapshot) -> Result<(), Error> {
    let Some(source) = &mut active.source else { return Ok(()) };
    refresh_source(&active.plugin, source, current, true, &active.errors)?;
    source.next_poll = source.interval.map(|interval| Instant::now() + interval);
    Ok(())
}

/// Asks one source for each environment's output; a change token equal to the last one skips
/// `load` unless `force`. All environments succeed or the source's layers stay as they were.
fn refresh_source(plugin: &LoadedPlugin, source: &mut SourceState, current: &Snapshot, force: bool, errors: &EnvironmentErrors) -> Result<(), PluginError> {
    let mut layers = source.layers.clone();
    let mut tokens = source.tokens.clone();
    let mut interval = None;
    for environment in &current.axes().environments {
        let asked = (|| {
            let namespace = namespace_in(current, environment, plugin).to_string();
            let millis = plugin.poll_interval_ms(environment, namespace.clone())?;
            interval = (millis > 0).then(|| Duration::from_millis(u64::from(millis))).into_iter().chain(interval).min();
            let token = plugin.change_token(environment, namespace.clone())?;
            let known = tokens.get(&**environment);
            if !force && token.is_some() && known == Some(&token) && layers.contains_key(&**environment) {
                return Ok(());
            }
            let output = plugin.load_source(environment, namespace)?;
            let Value::Object(data) = output else { unreachable!("load_source returns objects") };
            // Within the source rank layers go by order, then name: priority, then plugin name.
            let mut layer = Layer::new(format!("plugins/{}/{environment}", plugin.name()), Rank::Source, Scope::environment(environment), LayerSource::Plugin(plugin.name().to_owned()), data)
                .with_order(i64::from(plugin.manifest().priority));
            layer.locations.values_mut().for_each(|location| *location = Location::Layer);
            layers.insert(environment.to_string(), Arc::new(layer));
            tokens.insert(environment.to_string(), token);
            Ok(())
        })();
        remember_error(errors, environment, &asked);
        asked?;
    }
    layers.retain(|environment, _| current.axes().environments.iter().any(|e| &**e == environment));
    source.layers = layers;
    source.tokens = tokens;
    source.interval = interval;
    Ok(())
}

/// The plugin's namespace in the environment's view of `snapshot`, as the plugin may see it (secret
/// values removed unless granted).
fn namespace_in(snapshot: &Snapshot, environment: &str, plugin: &LoadedPlugin) -> Value {
    match snapshot.view(&ViewKey::environment(environment)) {
        Ok(view) => plugin.namespace_of(view.value(), &|path| view.is_secret(path)),
        Err(_) => json!({}),
    }
}

/// True when a verification failure is probably a copy still in progress.
fn still_arriving(error: &PluginError, stamp: &FileStamp) -> bool {
    let incomplete = matches!(
        error,
        PluginError::Refused { reason: Refusal::Unsigned(_) | Refusal::MalformedSignature(_) | Refusal::ModuleTampered | Refusal::ManifestTampered | Refusal::BadSignature, .. } | PluginError::Io { .. }
    );
    let recent = SystemTime::now().duration_since(stamp.newest()).map_or(true, |age| age < SETTLE_TIME);
    incomplete && recent
}

/// True while the module or the manifest of `wasm` is still in the folder (in any form).
fn any_file_left(wasm: &Path) -> bool {
    std::fs::symlink_metadata(wasm).is_ok() || std::fs::symlink_metadata(potter_plugin::manifest_path(wasm)).is_ok()
}

fn plugin_error(error: Error) -> PluginError {
    match error {
        Error::Plugin(error) => error,
        other => PluginError::Host(other.to_string()),
    }
}

fn stem(file: &Path) -> String {
    file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `<name>.wasm` for every plugin of the folder (a module or a manifest present), sorted. A
/// manifest whose module is missing or is a link to a device is listed too: loading it is refused
/// by name, and a running version keeps running.
fn wasm_files(dir: &Path) -> Vec<PathBuf> {
    potter_plugin::plugin_modules(dir).unwrap_or_default()
}

/// The plugin host's options for a configuration host. The trust store is `<state>/trusted-keys`.
///
/// `allow_unsigned` is refused when `POTTER_ENV` is production, and also when the host serves the
/// tree's `production` environment: one host validates every served environment's views, so an
/// unsigned plugin would judge (and see) production configuration whatever environment the caller
/// reads. A host restricted to other environments (`Options::environments`) never loads production.
fn host_options(options: &Options) -> Result<HostOptions, Error> {
    let serves_production = serves_production(options)?;
    if options.allow_unsigned {
        if active_environment(options).as_deref() == Some(PRODUCTION) {
            return Err(Error::UnsignedRefused { reason: "the environment is production (POTTER_ENV)".to_owned() });
        }
        if serves_production {
            return Err(Error::UnsignedRefused {
                reason: format!("the tree {} has a `{PRODUCTION}` environment this host serves, and unsigned plugins never run where production is validated", options.root.display()),
            });
        }
    }
    // The plugin host only reads the environment to apply its own production rule.
    let environment = if serves_production { PRODUCTION } else { "development" };
    let mut host_options = base_host_options(options, environment);
    host_options.allow_unsigned = options.allow_unsigned;
    Ok(host_options)
}

fn base_host_options(options: &Options, environment: &str) -> HostOptions {
    let mut host_options = HostOptions::new(&options.state_dir, environment);
    host_options.grants_root = Some(options.root.clone());
    host_options.env_prefix = options.env_prefix.clone();
    host_options
}

/// What a manifest may ask of a host opened with `options` (the tool's own variables and state
/// directory are never granted; limits stay within the maxima): `plugin sign` and `plugin verify`
/// check by the same rules as the load.
pub fn grant_rules(options: &Options) -> GrantRules {
    base_host_options(options, "development").grant_rules()
}

/// `POTTER_ENV` from the options' variables when given, else from the process.
fn active_environment(options: &Options) -> Option<String> {
    match &options.env_vars {
        Some(vars) => vars.iter().find(|(name, _)| name == ACTIVE_ENVIRONMENT_VARIABLE).map(|(_, value)| value.clone()),
        None => std::env::var(ACTIVE_ENVIRONMENT_VARIABLE).ok(),
    }
}

/// Names the environment a process serves (the CLI's `--env` reads it too).
const ACTIVE_ENVIRONMENT_VARIABLE: &str = "POTTER_ENV";

/// True when the tree has a `production` environment and this host serves it.
fn serves_production(options: &Options) -> Result<bool, Error> {
    Ok(options.serves(PRODUCTION) && tree::scan(&options.root)?.axes.environments.iter().any(|environment| &**environment == PRODUCTION))
}

/// A validator plugin as one of the validation step's validators.
struct PluginValidator {
    /// `plugin:<name>`.
    name: String,
    plugin: Arc<LoadedPlugin>,
    /// The last time-out and when it ended. Views are validated one after another under the
    /// writer lock, so a plugin that blocks would otherwise hold it for its limit once per view:
    /// for as long as its limit after a time-out, it is reported as timed out without a call.
    timed_out: std::sync::Mutex<Option<(Instant, String)>>,
    errors: EnvironmentErrors,
}

impl PluginValidator {
    fn new(plugin: Arc<LoadedPlugin>, errors: EnvironmentErrors) -> Self {
        Self { name: format!("{VALIDATOR_PREFIX}{}", plugin.name()), plugin, timed_out: std::sync::Mutex::new(None), errors }
    }

    /// The time-out this plugin had less than its limit ago, if any.
    fn recent_time_out(&self) -> Option<String> {
        let limit = Duration::from_millis(u64::from(self.plugin.limits().timeout_ms));
        let timed_out = self.timed_out.lock().unwrap_or_else(|p| p.into_inner());
        let (at, error) = timed_out.as_ref().filter(|(at, _)| at.elapsed() < limit)?;
        Some(format!("{error} ({} ms ago on another view; not called again within its limit of a time-out)", at.elapsed().as_millis()))
    }
}

impl Validator for PluginValidator {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self, view: &View) -> Result<Vec<Issue>, ValidatorError> {
        let key = view.key();
        if self.plugin.manifest().secrets {
            if let Some(skipped) = crate::secret_values::skip_for_sealed_secrets(view, &self.name) {
                return Ok(vec![skipped]);
            }
        }
        let target = potter_plugin::ValidationTarget { environment: key.environment.to_string(), service: key.service.as_deref().map(str::to_owned) };
        if let Some(error) = self.recent_time_out() {
            return Err(ValidatorError::new(error));
        }
        let result = self.plugin.validate(&target, view.value(), &|path| view.is_secret(path));
        remember_error(&self.errors, &key.environment, &result);
        let issues = result.map_err(|error| {
            if matches!(error, PluginError::Timeout { .. }) {
                *self.timed_out.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), error.to_string()));
            }
            ValidatorError::new(error.to_string())
        })?;
        Ok(issues
            .into_iter()
            .map(|issue| Issue {
                view: Some(key.clone()),
                source: view.source_position(&issue.path),
                path: issue.path,
                message: issue.message,
                rule: self.name.clone(),
                schema_location: None,
                severity: match issue.severity {
                    potter_plugin::Severity::Error => Severity::Error,
                    potter_plugin::Severity::Warning => Severity::Warning,
                },
            })
            .collect())
    }
}
