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
use crate::manifest::{plugin_stem, Grants, Limits, PluginKind};
use crate::plugin::LoadedPlugin;
use crate::sandbox::{self, bindings, CallState};
use crate::signing::load_checked;

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
        }
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
    pub grants: Option<Grants>,
    pub secrets: bool,
    pub limits: Option<Limits>,
    pub compiled_from: Option<CompiledFrom>,
    pub status: PluginStatus,
    pub last_error: Option<String>,
}

enum Entry {
    Loaded {
        file: PathBuf,
        plugin: Arc<LoadedPlugin>,
    },
    Refused {
        file: PathBuf,
        error: String,
    },
}

/// Loads, sandboxes and runs plugins. One per process; cheap to share by reference.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<CallState>,
    cache: CompiledCache,
    options: HostOptions,
    registry: Mutex<BTreeMap<String, Entry>>,
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
            linker,
            cache,
            options,
            registry: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn options(&self) -> &HostOptions {
        &self.options
    }

    /// Load every `*.wasm` in `dir` (sorted by name). One result per module;
    /// a refused plugin does not stop the others.
    pub fn load_dir(&self, dir: &Path) -> Vec<Result<Arc<LoadedPlugin>, PluginError>> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(source) => {
                return vec![Err(PluginError::Io {
                    plugin: "*".into(),
                    path: dir.to_path_buf(),
                    source,
                })];
            }
        };
        let mut modules: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "wasm") && p.is_file())
            .collect();
        modules.sort();
        modules.iter().map(|path| self.load_file(path)).collect()
    }

    /// Verify, compile (or take from the cache), check imports and
    /// pre-instantiate one plugin. The outcome is recorded for [`Self::list`].
    pub fn load_file(&self, wasm_path: &Path) -> Result<Arc<LoadedPlugin>, PluginError> {
        let result = self.load_unrecorded(wasm_path);
        let name = plugin_stem(wasm_path);
        let entry = match &result {
            Ok(plugin) => Entry::Loaded {
                file: wasm_path.to_path_buf(),
                plugin: plugin.clone(),
            },
            Err(error) => {
                tracing::warn!(plugin = %name, error = %error, "plugin refused");
                Entry::Refused {
                    file: wasm_path.to_path_buf(),
                    error: error.to_string(),
                }
            }
        };
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, entry);
        result
    }

    fn load_unrecorded(&self, wasm_path: &Path) -> Result<Arc<LoadedPlugin>, PluginError> {
        let allow_unsigned = self.options.allow_unsigned && self.options.environment != PRODUCTION;
        let verified = load_checked(wasm_path, &self.options.trust_dir(), allow_unsigned)?;
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
        if manifest.kind != PluginKind::Validator {
            return Err(PluginError::Unsupported {
                plugin: name.to_string(),
                reason: "source plugins are not hosted yet (only validators)".into(),
            });
        }
        let (component, compiled_from) = self.cache.component(
            &self.engine,
            &name,
            &verified.module_sha256,
            &verified.module,
        )?;
        sandbox::check_imports(&self.engine, &name, &component)?;
        let instance_pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| PluginError::InvalidModule {
                    plugin: name.to_string(),
                    reason: describe(&e),
                })?;
        let pre =
            bindings::ValidatorPre::new(instance_pre).map_err(|e| PluginError::InvalidModule {
                plugin: name.to_string(),
                reason: format!(
                    "does not implement world potter:config/validator: {}",
                    describe(&e)
                ),
            })?;
        if verified.signer_key_id.is_none() {
            tracing::warn!(plugin = %name, "loaded an UNSIGNED plugin (allow_unsigned is on)");
        }
        let mut visible_prefixes = manifest.prefixes.clone();
        visible_prefixes.push(manifest.namespace());
        Ok(Arc::new(LoadedPlugin {
            name,
            module_sha256: verified.module_sha256,
            signer_key_id: verified.signer_key_id,
            limits,
            compiled_from,
            engine: self.engine.clone(),
            pre,
            visible_prefixes,
            warm: Mutex::new(Vec::new()),
            last_error: Mutex::new(None),
            manifest,
        }))
    }

    /// Currently loaded plugins, by name.
    pub fn plugins(&self) -> Vec<Arc<LoadedPlugin>> {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        registry
            .values()
            .filter_map(|entry| match entry {
                Entry::Loaded { plugin, .. } => Some(plugin.clone()),
                Entry::Refused { .. } => None,
            })
            .collect()
    }

    /// Every plugin the host has tried to load, for `plugin list`.
    pub fn list(&self) -> Vec<PluginInfo> {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        registry
            .iter()
            .map(|(name, entry)| match entry {
                Entry::Loaded { file, plugin } => PluginInfo {
                    name: name.clone(),
                    file: file.clone(),
                    kind: Some(plugin.manifest.kind),
                    version: Some(plugin.manifest.version.clone()),
                    sha256: Some(plugin.module_sha256.clone()),
                    signer_key_id: plugin.signer_key_id.clone(),
                    grants: Some(plugin.manifest.grants.clone()),
                    secrets: plugin.manifest.secrets,
                    limits: Some(plugin.limits),
                    compiled_from: Some(plugin.compiled_from),
                    status: PluginStatus::Loaded,
                    last_error: plugin.last_error(),
                },
                Entry::Refused { file, error } => PluginInfo {
                    name: name.clone(),
                    file: file.clone(),
                    kind: None,
                    version: None,
                    sha256: std::fs::read(file)
                        .ok()
                        .map(|b| hex::encode(crate::signing::sha256(&b))),
                    signer_key_id: None,
                    grants: None,
                    secrets: false,
                    limits: None,
                    compiled_from: None,
                    status: PluginStatus::Refused,
                    last_error: Some(error.clone()),
                },
            })
            .collect()
    }
}
