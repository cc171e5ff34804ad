//! The plugin host: options, loading (verify → compile or cache → check
//! imports → pre-instantiate), and the registry behind `plugin list`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use wasmtime::component::Linker;
use wasmtime::Engine;

use crate::cache::{CompiledCache, CompiledFrom};
use crate::error::{describe, PluginError, Refusal};
use crate::executor::Executor;
use crate::log::PluginLog;
use crate::manifest::{plugin_stem, resolve_granted_directory, Allowance, GrantRules, Grants, Limits, PluginKind, DEFAULT_ENV_PREFIX, MANIFEST_SUFFIX};
use crate::outbound::{Origin, OutboundLimits, OutboundPolicy};
use crate::plugin::{CallCounters, LiveIndices, LoadedPlugin, NamespaceIndices, WorldIndices};
use crate::sandbox::{self, bindings, source_bindings, CallState};
use crate::sql::{SqlLimits, SqlPolicy, SQL_CONNECTIONS_FILE};
use crate::signing::{load_checked, read, trusted_allowance, MAX_MODULE_BYTES};

/// Environment name in which unsigned plugins are always refused.
pub const PRODUCTION: &str = "production";

/// How the host is set up.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// State directory; compiled code is cached in `<state>/plugin-cache/`.
    pub state_dir: PathBuf,
    /// Trusted public keys; `<state>/trusted-keys/` when None.
    pub trust_dir: Option<PathBuf>,
    /// Load plugins that have no signature file (development only; refused in production).
    pub allow_unsigned: bool,
    /// Environment the host serves (e.g. "production").
    pub environment: String,
    /// Limits for plugins whose manifest does not ask otherwise.
    pub default_limits: Limits,
    /// Highest limits a manifest may ask for.
    pub max_limits: Limits,
    /// Wasm stack size for every plugin (engine-wide), in KiB.
    pub max_wasm_stack_kib: u32,
    /// What a source's `grants.directory` is relative to (the configuration root). Without it,
    /// a plugin asking for a directory is refused.
    pub grants_root: Option<PathBuf>,
    /// The configuration variable prefix: no variable under it (nor `POTTER_SECRET_KEY_*`,
    /// `POTTER_TOKEN`) is ever granted.
    pub env_prefix: String,
    /// Directories a granted directory may neither contain nor lie in, besides the state directory.
    pub protected_dirs: Vec<PathBuf>,
    /// Told when a plugin is compiled (a cache miss: seconds for a Python or JavaScript guest).
    pub progress: crate::ProgressReport,
    /// The operator's SQL connections (`grants.sql`); `<state>/sql-connections.toml` when None.
    pub sql_connections: Option<PathBuf>,
}

impl HostOptions {
    /// Defaults: signed plugins only, 64 MiB / 100 ms / 64 KiB output, 512 KiB stack.
    pub fn new(state_dir: impl Into<PathBuf>, environment: impl Into<String>) -> HostOptions {
        HostOptions {
            state_dir: state_dir.into(),
            trust_dir: None,
            allow_unsigned: false,
            environment: environment.into(),
            default_limits: Limits::DEFAULT,
            max_limits: Limits::MAXIMA,
            max_wasm_stack_kib: 512,
            grants_root: None,
            env_prefix: DEFAULT_ENV_PREFIX.to_owned(),
            protected_dirs: Vec::new(),
            progress: crate::ProgressReport::default(),
            sql_connections: None,
        }
    }

    /// The operator's SQL connections file.
    pub fn sql_connections_file(&self) -> PathBuf {
        self.sql_connections.clone().unwrap_or_else(|| self.state_dir.join(SQL_CONNECTIONS_FILE))
    }

    /// What a manifest may ask of this host.
    pub fn grant_rules(&self) -> GrantRules {
        let mut protected = vec![self.state_dir.clone(), self.trust_dir()];
        protected.extend(self.protected_dirs.iter().cloned());
        let protected_variables = crate::sql::password_variables(&self.sql_connections_file())
            .into_iter()
            .map(|(variable, connection)| (variable, format!("it holds the password of the host's SQL connection `{connection}`")))
            .collect();
        GrantRules { env_prefix: self.env_prefix.clone(), max_limits: self.max_limits, grants_root: self.grants_root.clone(), protected, protected_variables }
    }

    /// The trust store directory.
    pub fn trust_dir(&self) -> PathBuf {
        self.trust_dir
            .clone()
            .unwrap_or_else(|| default_trust_dir(&self.state_dir))
    }
}

/// `<state>/trusted-keys`.
pub fn default_trust_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("trusted-keys")
}

/// Loaded or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginStatus {
    Loaded,
    Refused,
}

/// One row of `plugin list`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub file: PathBuf,
    pub kind: Option<PluginKind>,
    pub version: Option<String>,
    pub sha256: Option<String>,
    pub signer_key_id: Option<String>,
    /// The grant kinds the trust store allows the signing key.
    pub signer_allowance: Option<Allowance>,
    pub grants: Option<Grants>,
    pub secrets: bool,
    pub limits: Option<Limits>,
    /// Outbound HTTP limits of a source granted origins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_limits: Option<OutboundLimits>,
    /// SQL limits of a source granted connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql_limits: Option<SqlLimits>,
    pub compiled_from: Option<CompiledFrom>,
    pub status: PluginStatus,
    pub last_error: Option<String>,
    /// Why the newest version in the folder was refused while this (older) version keeps running.
    pub refused_update: Option<String>,
    /// True when the refusal (`refused_update`, or `last_error` of a refused plugin) is about the
    /// plugin's own files (signature, manifest, grants, module, imports) and so names no
    /// environment's configuration; false when it came from running it (a first call, a reload
    /// its presence made invalid), which may quote any environment's values.
    pub refusal_about_files: bool,
    /// Set while a source serves its last good layer because asking it failed (filled by the
    /// configuration host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale: Option<Staleness>,
    /// The last error of a call about each environment (filled by the configuration host).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment_errors: BTreeMap<String, String>,
}

/// Why a source's layer is not fresh: since when (ms since the epoch), the last error, and
/// whether it came from the last-known-good cache at start-up (saved at `cached_at_ms`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Staleness {
    pub since_ms: u64,
    pub last_error: String,
    pub from_cache: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_at_ms: Option<u64>,
}

/// What the host knows about one plugin name: the version running (if any) and why the latest
/// attempt to load it was refused (if it was). A refused new version leaves the old one running.
struct Entry {
    file: PathBuf,
    active: Option<Arc<LoadedPlugin>>,
    refusal: Option<String>,
    refusal_about_files: bool,
}

/// Loads, sandboxes and runs plugins. One per process; cheap to share by reference.
pub struct PluginHost {
    engine: Engine,
    executor: Arc<Executor>,
    linker: Linker<CallState>,
    cache: CompiledCache,
    options: HostOptions,
    registry: Mutex<BTreeMap<String, Entry>>,
    /// Each plugin name's call counts since the host started: kept across new versions and
    /// refusals (a first call that timed out and got the plugin refused is still counted).
    call_counters: Mutex<BTreeMap<String, Arc<CallCounters>>>,
}

impl PluginHost {
    /// Create the engine, its epoch ticker and the compiled-code cache.
    /// Refuses `allow_unsigned` when the environment is production.
    pub fn new(options: HostOptions) -> Result<PluginHost, PluginError> {
        if options.allow_unsigned && options.environment == PRODUCTION {
            return Err(PluginError::Host(format!(
                "--allow-unsigned is refused: {}",
                Refusal::UnsignedInProduction
            )));
        }
        let engine = sandbox::new_engine(options.max_wasm_stack_kib as usize * 1024)?;
        let linker = sandbox::new_linker(&engine)?;
        let cache = CompiledCache::open(options.state_dir.join("plugin-cache"), &engine)?;
        Ok(PluginHost {
            engine,
            executor: Executor::new()?,
            linker,
            cache,
            options,
            registry: Mutex::new(BTreeMap::new()),
            call_counters: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn options(&self) -> &HostOptions {
        &self.options
    }

    /// Load every plugin in `dir` (sorted by name): one result per `*.wasm` or `*.plugin.toml`.
    /// A refused plugin does not stop the others; a manifest whose module is missing, empty or not
    /// a regular file (a link to `/dev/null`) is refused by name, never skipped.
    pub fn load_dir(&self, dir: &Path) -> Vec<Result<Arc<LoadedPlugin>, PluginError>> {
        match plugin_modules(dir) {
            Ok(modules) => modules.iter().map(|path| self.load_file(path)).collect(),
            Err(source) => vec![Err(PluginError::Io { plugin: "*".into(), path: dir.to_path_buf(), source })],
        }
    }

    /// Verify, compile (or take from the cache), check imports and
    /// pre-instantiate one plugin. The outcome is recorded for [`Self::list`].
    pub fn load_file(&self, wasm_path: &Path) -> Result<Arc<LoadedPlugin>, PluginError> {
        let result = self.prepare(wasm_path);
        match &result {
            Ok(plugin) => self.record_loaded(wasm_path, plugin.clone()),
            Err(error) => self.record_refused(&plugin_stem(wasm_path), wasm_path, error),
        }
        result
    }

    /// Verify, compile (or take from the cache), check imports and pre-instantiate one plugin
    /// without recording it: the caller decides whether it goes live ([`Self::record_loaded`])
    /// or is refused ([`Self::record_refused`]), e.g. after trying its first call.
    pub fn prepare(&self, wasm_path: &Path) -> Result<Arc<LoadedPlugin>, PluginError> {
        self.load_unrecorded(wasm_path)
    }

    /// Records `plugin` as the running version of its name.
    pub fn record_loaded(&self, wasm_path: &Path, plugin: Arc<LoadedPlugin>) {
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        registry.insert(
            plugin.name().to_owned(),
            Entry { file: wasm_path.to_path_buf(), active: Some(plugin), refusal: None, refusal_about_files: true },
        );
    }

    /// Records why a version of `name` was refused; the running version (if any) stays.
    pub fn record_refused(&self, name: &str, wasm_path: &Path, error: &PluginError) {
        tracing::warn!(plugin = %name, error = %error, "plugin refused");
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let entry = registry.entry(name.to_owned()).or_insert_with(|| Entry {
            file: wasm_path.to_path_buf(),
            active: None,
            refusal: None,
            refusal_about_files: true,
        });
        entry.refusal = Some(error.to_string());
        entry.refusal_about_files = error.is_about_files();
        if entry.active.is_none() {
            entry.file = wasm_path.to_path_buf();
        }
    }

    /// Forgets `name` (its file was deleted). Returns the version that was running.
    pub fn unload(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        registry.remove(name).and_then(|entry| entry.active)
    }

    fn load_unrecorded(&self, wasm_path: &Path) -> Result<Arc<LoadedPlugin>, PluginError> {
        let allow_unsigned = self.options.allow_unsigned && self.options.environment != PRODUCTION;
        let verified = load_checked(wasm_path, &self.options.trust_dir(), allow_unsigned, &self.options.grant_rules())?;
        let manifest = verified.manifest;
        let name: Arc<str> = Arc::from(manifest.name.as_str());
        let limits = Limits::resolve(
            &manifest.limits,
            &self.options.default_limits,
            &self.options.max_limits,
        )
        .map_err(|reason| PluginError::Manifest {
            plugin: name.to_string(),
            path: crate::manifest::manifest_path(wasm_path),
            reason,
        })?;
        let directory = match &manifest.grants.directory {
            Some(relative) => Some(self.granted_directory(&name, wasm_path, relative)?),
            None => None,
        };
        let (component, compiled_from) = self.cache.component(
            &self.engine,
            &name,
            &verified.module_sha256,
            &verified.module,
            &self.options.progress,
        )?;
        sandbox::check_imports(&self.engine, &name, &component, &manifest.grants)?;
        let outbound = Arc::new(self.outbound_policy(&name, wasm_path, &manifest)?);
        let sql = Arc::new(self.sql_policy(&name, wasm_path, &manifest)?);
        let invalid = |reason: String| PluginError::InvalidModule {
            plugin: name.to_string(),
            reason,
        };
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| invalid(describe(&e)))?;
        let world = match manifest.kind {
            PluginKind::Validator => bindings::ValidatorIndices::new(&instance_pre)
                .map(WorldIndices::Validator)
                .map_err(|e| invalid(format!("does not implement world potter:config/validator: {}", describe(&e))))?,
            PluginKind::Source => source_bindings::SourceIndices::new(&instance_pre)
                .map(WorldIndices::Source)
                .map_err(|e| invalid(format!("does not implement world potter:config/source: {}", describe(&e))))?,
        };
        let namespace = NamespaceIndices::find(&component);
        let live = match manifest.kind {
            PluginKind::Source => LiveIndices::find(&component, &instance_pre).map_err(invalid)?,
            PluginKind::Validator => LiveIndices::default(),
        };
        if verified.signer_key_id.is_none() {
            tracing::warn!(plugin = %name, "loaded an UNSIGNED plugin (allow_unsigned is on)");
        }
        let mut visible_prefixes = manifest.prefixes.clone();
        visible_prefixes.push(manifest.namespace());
        let counters = self.counters_of(&name);
        Ok(Arc::new(LoadedPlugin {
            log: PluginLog::new(name.clone()),
            name,
            module_sha256: verified.module_sha256,
            signer_key_id: verified.signer_key_id,
            limits,
            compiled_from,
            engine: self.engine.clone(),
            executor: self.executor.clone(),
            instance_pre,
            world,
            namespace,
            live,
            directory,
            outbound,
            sql,
            last_refusal: Mutex::new(None),
            visible_prefixes,
            warm: Mutex::new(Vec::new()),
            last_error: Mutex::new(None),
            counters,
            manifest,
        }))
    }

    /// `<grants_root>/<relative>`, which must be an existing directory that stays inside the root
    /// once symbolic links are resolved.
    fn granted_directory(&self, name: &str, wasm_path: &Path, relative: &str) -> Result<PathBuf, PluginError> {
        let manifest_error = |reason: String| PluginError::Manifest {
            plugin: name.to_string(),
            path: crate::manifest::manifest_path(wasm_path),
            reason,
        };
        let Some(root) = &self.options.grants_root else {
            return Err(manifest_error("grants.directory needs a configuration root, and this host has none".into()));
        };
        let resolved = resolve_granted_directory(root, relative).map_err(manifest_error)?;
        self.options.grant_rules().check_directory(name, relative, &resolved)?;
        Ok(resolved)
    }

    /// The origins of `grants.http` with their CA files (relative to the configuration root, or
    /// absolute), and the outbound limits.
    fn outbound_policy(&self, name: &Arc<str>, wasm_path: &Path, manifest: &crate::manifest::Manifest) -> Result<OutboundPolicy, PluginError> {
        if manifest.grants.http.is_empty() {
            return Ok(OutboundPolicy::none(name.clone()));
        }
        let manifest_error = |reason: String| PluginError::Manifest {
            plugin: name.to_string(),
            path: crate::manifest::manifest_path(wasm_path),
            reason,
        };
        let limits = OutboundLimits::resolve(&manifest.limits).map_err(manifest_error)?;
        let mut origins = Vec::new();
        for text in &manifest.grants.http {
            let origin = Origin::parse(text).map_err(manifest_error)?;
            let ca_file = manifest.grants.http_ca.get(text).map(|file| match &self.options.grants_root {
                Some(root) if Path::new(file).is_relative() => root.join(file),
                _ => PathBuf::from(file),
            });
            origins.push((origin, ca_file));
        }
        let origins = origins.iter().map(|(origin, file)| (origin.clone(), file.as_deref())).collect();
        OutboundPolicy::new(name.clone(), origins, limits).map_err(manifest_error)
    }

    /// The connections of `grants.sql` as the operator configured them, and the SQL limits.
    fn sql_policy(&self, name: &Arc<str>, wasm_path: &Path, manifest: &crate::manifest::Manifest) -> Result<SqlPolicy, PluginError> {
        if manifest.grants.sql.is_empty() {
            return Ok(SqlPolicy::none(name.clone()));
        }
        let limits = SqlLimits::resolve(&manifest.limits).map_err(|reason| PluginError::Manifest {
            plugin: name.to_string(),
            path: crate::manifest::manifest_path(wasm_path),
            reason,
        })?;
        Ok(SqlPolicy::new(name.clone(), manifest.grants.sql.clone(), self.options.sql_connections_file(), limits))
    }

    /// Currently loaded plugins, by name.
    pub fn plugins(&self) -> Vec<Arc<LoadedPlugin>> {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        registry.values().filter_map(|entry| entry.active.clone()).collect()
    }

    /// Every plugin the host has tried to load, for `plugin list`.
    /// How the calls of each plugin name ended since the host started, whatever became of the
    /// plugin (for metrics: cheaper than [`PluginHost::list`], which reads the trust store and
    /// refused files).
    pub fn call_counts(&self) -> Vec<(String, crate::CallCounts)> {
        let counters = self.call_counters.lock().unwrap_or_else(|p| p.into_inner());
        counters.iter().map(|(name, counters)| (name.clone(), counters.read())).collect()
    }

    fn counters_of(&self, name: &str) -> Arc<CallCounters> {
        let mut counters = self.call_counters.lock().unwrap_or_else(|p| p.into_inner());
        counters.entry(name.to_owned()).or_default().clone()
    }

    pub fn list(&self) -> Vec<PluginInfo> {
        let trust_dir = self.options.trust_dir();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        registry
            .iter()
            .map(|(name, entry)| match &entry.active {
                Some(plugin) => PluginInfo {
                    name: name.clone(),
                    file: entry.file.clone(),
                    kind: Some(plugin.manifest.kind),
                    version: Some(plugin.manifest.version.clone()),
                    sha256: Some(plugin.module_sha256.clone()),
                    signer_key_id: plugin.signer_key_id.clone(),
                    // Read from the trust store as it is now: what a re-trust changed shows at once.
                    signer_allowance: plugin.signer_key_id.as_deref().and_then(|id| trusted_allowance(&trust_dir, id)),
                    grants: Some(plugin.manifest.grants.clone()),
                    secrets: plugin.manifest.secrets,
                    limits: Some(plugin.limits),
                    http_limits: plugin.outbound_limits(),
                    sql_limits: plugin.sql_limits(),
                    compiled_from: Some(plugin.compiled_from),
                    status: PluginStatus::Loaded,
                    last_error: plugin.last_error(),
                    refused_update: entry.refusal.clone(),
                    refusal_about_files: entry.refusal_about_files,
                    stale: None,
                    environment_errors: BTreeMap::new(),
                },
                None => PluginInfo {
                    name: name.clone(),
                    file: entry.file.clone(),
                    kind: None,
                    version: None,
                    sha256: read(name, &entry.file, MAX_MODULE_BYTES)
                        .ok()
                        .map(|b| hex::encode(crate::signing::sha256(&b))),
                    signer_key_id: None,
                    signer_allowance: None,
                    grants: None,
                    secrets: false,
                    limits: None,
                    http_limits: None,
                    sql_limits: None,
                    compiled_from: None,
                    status: PluginStatus::Refused,
                    last_error: entry.refusal.clone(),
                    refused_update: None,
                    refusal_about_files: entry.refusal_about_files,
                    stale: None,
                    environment_errors: BTreeMap::new(),
                },
            })
            .collect()
    }
}

/// `<dir>/<name>.wasm` for every name that has a module or a manifest in `dir`, sorted. Entries are
/// listed whatever their type: a module that is a link to a device or a FIFO is refused when it is
/// read, by name, instead of being left out.
pub fn plugin_modules(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut names = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        let stem = file_name.strip_suffix(".wasm").or_else(|| file_name.strip_suffix(MANIFEST_SUFFIX));
        if let Some(stem) = stem.filter(|stem| !stem.is_empty() && !stem.starts_with('.')) {
            names.insert(stem.to_owned());
        }
    }
    Ok(names.into_iter().map(|name| dir.join(format!("{name}.wasm"))).collect())
}
