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
//!
//! This module keeps the folder's lifecycle (load, `sync_folder`, `commit`, `roll_back`, `list`);
//! `checks` holds the validators plugins contribute, `namespaces` namespace plugins' defaults and
//! notifications, `sources` source plugins' output and refresh, and `policy` the production policy
//! (where unsigned plugins are refused, what a manifest may be granted). The snapshot build reads
//! the contributed layers through `crate::source::defaults` and `crate::source::plugin`.

mod checks;
mod namespaces;
mod policy;
mod source_cache;
mod sources;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use potter_engine::{Layer, Snapshot};
use potter_plugin::{LoadedPlugin, PluginError, PluginHost, PluginInfo, PluginKind, Refusal};
use potter_validate::{Validation, Validator};
use serde_json::Value;

use crate::error::Error;
use crate::options::Options;
use crate::source::tree::FileStamp;

pub use policy::grant_rules;
pub(crate) use policy::trust_dir;
pub use sources::{SourceRefresh, WatchedSource};
use sources::SourceState;

/// A plugin file that changed less than this long ago and does not verify is taken to be still
/// arriving (a copy in progress, the signature not yet written) and is looked at again later
/// instead of being refused.
pub const SETTLE_TIME: Duration = Duration::from_millis(1000);

/// The plugins that run, and what they contribute.
pub struct Plugins {
    host: Arc<PluginHost>,
    dir: PathBuf,
    active: BTreeMap<String, Active>,
    /// Files refused at their current stamp: not tried again until they change.
    refused: BTreeMap<String, PluginStamp>,
    /// Files that failed verification while still changing: the stamp they had then, and when to
    /// look at them again if they do not change before.
    settling: BTreeMap<String, (PluginStamp, Instant)>,
    /// Sources' last good layers, kept encrypted in the state directory for a start with the remote down.
    cache: source_cache::SourceCache,
    /// The trust store as the last sync saw it: when a key is trusted (or its grants change),
    /// every refused plugin is looked at again, although its own files did not change.
    trust_seen: TrustStamp,
}

/// The stamps of the trust store's files, in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct TrustStamp(Vec<(std::ffi::OsString, Option<FileStamp>)>);

impl TrustStamp {
    fn of(dir: &Path) -> TrustStamp {
        let mut files: Vec<_> = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|entry| (entry.file_name(), FileStamp::of(&entry.path()))).collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        TrustStamp(files)
    }
}

/// A running plugin and its contributions.
#[derive(Clone)]
struct Active {
    plugin: Arc<LoadedPlugin>,
    file: PathBuf,
    stamp: PluginStamp,
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

/// The stamps of a plugin's three files (module, signature, manifest); a change in any means a new version.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PluginStamp([Option<FileStamp>; 3]);

impl PluginStamp {
    fn of(wasm: &Path) -> PluginStamp {
        PluginStamp([FileStamp::of(wasm), FileStamp::of(&potter_plugin::signature_path(wasm)), FileStamp::of(&potter_plugin::manifest_path(wasm))])
    }

    fn newest(&self) -> SystemTime {
        self.0.iter().flatten().map(FileStamp::modified).max().unwrap_or(SystemTime::UNIX_EPOCH)
    }
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
        let host = Arc::new(PluginHost::new(policy::host_options(options)?)?);
        let trust_seen = TrustStamp::of(&host.options().trust_dir());
        Ok(Self { host, dir: options.plugins_dir.clone(), active: BTreeMap::new(), refused: BTreeMap::new(), settling: BTreeMap::new(), cache: source_cache::SourceCache::new(options), trust_seen })
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

    /// Every plugin of the folder with its status, last error and last error per environment.
    pub fn list(&self) -> Vec<PluginInfo> {
        let mut infos = self.host.list();
        for info in &mut infos {
            if let Some(active) = self.active.get(&info.name) {
                info.environment_errors = active.errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
                info.stale = active.source.as_ref().and_then(|source| source.stale.clone());
            }
        }
        infos
    }

    /// The plugin host, to list plugins without holding what owns them.
    pub fn host(&self) -> Arc<PluginHost> {
        self.host.clone()
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
        let trust = TrustStamp::of(&self.host.options().trust_dir());
        if trust != self.trust_seen {
            self.refused.clear();
            self.trust_seen = trust;
        }
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
            let stamp = PluginStamp::of(file);
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
                    match prepare_contributions(&mut active).and_then(|()| sources::first_source_load(&mut active, current, &self.cache)) {
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

    fn refuse(&mut self, name: &str, file: &Path, stamp: PluginStamp, error: PluginError, change: &mut FolderChange) {
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

}

impl Active {
    fn new(plugin: Arc<LoadedPlugin>, file: PathBuf) -> Self {
        let stamp = PluginStamp::of(&file);
        Self { plugin, file, stamp, validators: Vec::new(), defaults: None, source: None, notified: BTreeMap::new(), errors: EnvironmentErrors::default() }
    }
}

/// Validators, namespace schema and defaults of a freshly loaded plugin (its first calls).
fn prepare_contributions(active: &mut Active) -> Result<(), Error> {
    active.validators = checks::validators_of(&active.plugin, &active.errors)?;
    active.defaults = namespaces::defaults_layer(&active.plugin)?;
    if active.plugin.manifest().kind == PluginKind::Source {
        active.source = Some(SourceState::default());
    }
    Ok(())
}

/// True when a verification failure is probably a copy still in progress.
fn still_arriving(error: &PluginError, stamp: &PluginStamp) -> bool {
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
