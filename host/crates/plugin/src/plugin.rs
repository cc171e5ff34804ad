//! A loaded plugin and its `validate` call: input restriction, limits, output checks.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use potter_engine::Severity;
use serde::Serialize;
use serde_json::Value;
use wasmtime::component::{Component, ComponentExportIndex, Instance, InstancePre};
use wasmtime::{Engine, Store, Trap};

use crate::cache::CompiledFrom;
use crate::config_filter::{lookup, restrict};
use crate::error::{describe, PluginError};
use crate::executor::Executor;
use crate::log::PluginLog;
use crate::manifest::{is_key_path, Limits, Manifest};
use crate::outbound::{OutboundLimits, OutboundPolicy};
use crate::sandbox::{
    self, bindings, forward_output, live_bindings, new_store, source_bindings, CallState, SandboxStore,
    NAMESPACE_INTERFACES, PROVENANCE_INTERFACE, STDIO_CAPACITY, WATCH_INTERFACE,
};

use live_bindings::exports::potter::config::{provenance, watch};

/// Idle instances kept per plugin for reuse (each holds its linear memory).
const WARM_INSTANCES: usize = 2;
/// Longest issue message accepted from a plugin.
const MESSAGE_MAX: usize = 4096;
/// Per-issue overhead counted against the output limit, so an endless list of
/// empty-looking issues still hits it.
const ISSUE_OVERHEAD: usize = 16;

/// The view a validator is asked about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationTarget {
    pub environment: String,
    pub service: Option<String>,
}

/// An issue reported by a plugin, checked and attributed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginIssue {
    /// Plugin name.
    pub plugin: String,
    /// Dotted key path, under the plugin's prefixes or namespace.
    pub path: String,
    pub message: String,
    pub severity: Severity,
}

impl PluginIssue {
    /// Rule name used beside JSON Schema and native rules: `plugin:<name>`.
    pub fn rule(&self) -> String {
        format!("plugin:{}", self.plugin)
    }
}

/// A source's layer as `load` (or 0.2.0's `load-with-origins`) gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceOutput {
    /// The layer: a JSON object whose keys lie under the plugin's prefixes.
    pub layer: Value,
    /// Dotted key path to where the source says it came from (empty for a source without the
    /// `provenance` export).
    pub origins: Vec<(String, String)>,
    /// What the call read through `potter:config/sql`, as the host saw it: one
    /// `connection: table, ...` per connection queried (empty for a source that queried none).
    pub read_through_sql: Vec<String>,
}

/// A verified, compiled plugin ready to be called. Cheap to share (`Arc`).
pub struct LoadedPlugin {
    pub(crate) manifest: Manifest,
    pub(crate) name: Arc<str>,
    pub(crate) module_sha256: String,
    pub(crate) signer_key_id: Option<String>,
    pub(crate) limits: Limits,
    pub(crate) compiled_from: CompiledFrom,
    pub(crate) engine: Engine,
    /// Runs every call under its deadline (shared by the host's plugins).
    pub(crate) executor: Arc<Executor>,
    /// Where the guest's log lines and stdio go, rate-limited (shared by all its instances).
    pub(crate) log: Arc<PluginLog>,
    pub(crate) instance_pre: InstancePre<CallState>,
    pub(crate) world: WorldIndices,
    /// Present when the plugin exports the `namespace` interface.
    pub(crate) namespace: Option<NamespaceIndices>,
    /// A 0.2.0 source's optional `provenance` and `watch` exports.
    pub(crate) live: LiveIndices,
    /// A source's granted directory, resolved on the host.
    pub(crate) directory: Option<PathBuf>,
    /// The origins it may reach over `wasi:http` (none without `grants.http`) and its limits.
    pub(crate) outbound: Arc<OutboundPolicy>,
    /// The connections it may query through `potter:config/sql` (none without `grants.sql`).
    pub(crate) sql: Arc<crate::sql::SqlPolicy>,
    /// What the host refused or cut of the last call's outbound requests or queries, if anything.
    pub(crate) last_refusal: Mutex<Option<String>>,
    /// Prefixes the plugin sees: declared ones plus its namespace.
    pub(crate) visible_prefixes: Vec<String>,
    pub(crate) warm: Mutex<Vec<WarmInstance>>,
    pub(crate) last_error: Mutex<Option<String>>,
    pub(crate) counters: Arc<CallCounters>,
}

/// How a plugin's calls ended: since the host started, for its name ([`crate::PluginHost::call_counts`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CallCounts {
    /// Every call into the guest (validate, load, poll-interval, change-token, namespace calls).
    pub calls: u64,
    /// Calls stopped at the plugin's time limit.
    pub timeouts: u64,
    /// Calls that trapped (a guest panic, an unreachable, a failed host call).
    pub traps: u64,
    /// Calls stopped at the plugin's memory limit.
    pub memory_limits: u64,
}

/// The live counts behind [`CallCounts`]: bumped by every call, read by metrics scrapes.
#[derive(Default)]
pub(crate) struct CallCounters {
    calls: AtomicU64,
    timeouts: AtomicU64,
    traps: AtomicU64,
    memory_limits: AtomicU64,
}

impl CallCounters {
    pub(crate) fn ended(&self, error: Option<&PluginError>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let counter = match error {
            Some(PluginError::Timeout { .. }) => &self.timeouts,
            Some(PluginError::Trap { .. }) => &self.traps,
            Some(PluginError::MemoryLimit { .. }) => &self.memory_limits,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> CallCounts {
        CallCounts {
            calls: self.calls.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            traps: self.traps.load(Ordering::Relaxed),
            memory_limits: self.memory_limits.load(Ordering::Relaxed),
        }
    }
}

/// Where a world's exports sit in the component (looked up once at load).
pub(crate) enum WorldIndices {
    Validator(bindings::ValidatorIndices),
    Source(source_bindings::SourceIndices),
}

/// Where the optional `namespace` exports sit.
pub(crate) struct NamespaceIndices {
    pub(crate) defaults: ComponentExportIndex,
    pub(crate) on_config_changed: ComponentExportIndex,
}

/// Where a 0.2.0 source's optional exports sit.
#[derive(Default)]
pub(crate) struct LiveIndices {
    pub(crate) provenance: Option<provenance::GuestIndices>,
    pub(crate) watch: Option<watch::GuestIndices>,
}

impl LiveIndices {
    /// The optional exports the component has; one that is exported with the wrong shape is an error.
    pub(crate) fn find(component: &Component, instance_pre: &InstancePre<CallState>) -> Result<LiveIndices, String> {
        let exported = |name: &str| component.get_export_index(None, name).is_some();
        let shape = |name: &str, e: wasmtime::Error| format!("exports {name} with the wrong shape: {}", describe(&e));
        let provenance = match exported(PROVENANCE_INTERFACE) {
            true => Some(provenance::GuestIndices::new(instance_pre).map_err(|e| shape(PROVENANCE_INTERFACE, e))?),
            false => None,
        };
        let watch = match exported(WATCH_INTERFACE) {
            true => Some(watch::GuestIndices::new(instance_pre).map_err(|e| shape(WATCH_INTERFACE, e))?),
            false => None,
        };
        Ok(LiveIndices { provenance, watch })
    }
}

/// A 0.2.0 source's optional exports in one instance.
#[derive(Default)]
struct LiveExports {
    provenance: Option<provenance::Guest>,
    watch: Option<watch::Guest>,
}

impl NamespaceIndices {
    /// The `namespace` interface's functions, when the component exports it (in any version).
    pub(crate) fn find(component: &Component) -> Option<NamespaceIndices> {
        let interface = NAMESPACE_INTERFACES.iter().find_map(|name| component.get_export_index(None, name))?;
        Some(NamespaceIndices {
            defaults: component.get_export_index(Some(&interface), "defaults")?,
            on_config_changed: component.get_export_index(Some(&interface), "on-config-changed")?,
        })
    }
}

enum WorldExports {
    Validator(bindings::Validator),
    Source(source_bindings::Source),
}

/// An instance that finished its last call normally and may be called again.
/// An instance that trapped is never reused.
pub(crate) struct WarmInstance {
    sandbox: SandboxStore,
    instance: Instance,
    exports: WorldExports,
    live: LiveExports,
    stdout_seen: usize,
    stderr_seen: usize,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("module_sha256", &self.module_sha256)
            .field("signer_key_id", &self.signer_key_id)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn module_sha256(&self) -> &str {
        &self.module_sha256
    }

    pub fn signer_key_id(&self) -> Option<&str> {
        self.signer_key_id.as_deref()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Outbound HTTP limits, for a source granted origins.
    pub fn outbound_limits(&self) -> Option<OutboundLimits> {
        (!self.manifest.grants.http.is_empty()).then_some(self.outbound.limits)
    }

    /// SQL limits, for a source granted connections.
    pub fn sql_limits(&self) -> Option<crate::sql::SqlLimits> {
        (!self.manifest.grants.sql.is_empty()).then_some(self.sql.limits)
    }

    /// Whether the compiled code came from the cache or the compiler.
    pub fn compiled_from(&self) -> CompiledFrom {
        self.compiled_from
    }

    /// How the calls of its name ended since the host started.
    pub fn call_counts(&self) -> CallCounts {
        self.counters.read()
    }

    /// The most recent call failure, if the last call failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Run the validator on `config` (the whole effective tree of the view).
    /// The plugin receives only its declared prefixes plus `plugins.<name>`;
    /// paths for which `is_secret` is true are removed unless the signed
    /// manifest grants secrets.
    pub fn validate(
        &self,
        view: &ValidationTarget,
        config: &Value,
        is_secret: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<PluginIssue>, PluginError> {
        let result = self.validate_inner(view, config, is_secret);
        self.remember(&result);
        result
    }

    fn validate_inner(
        &self,
        view: &ValidationTarget,
        config: &Value,
        is_secret: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<PluginIssue>, PluginError> {
        let visible = restrict(
            config,
            &self.visible_prefixes,
            self.manifest.secrets,
            is_secret,
        );
        let namespace_json = lookup(&visible, &self.manifest.namespace())
            .map(Value::to_string)
            .unwrap_or_else(|| "{}".to_string());
        let input = visible.to_string();
        let wit_view = bindings::potter::config::types::View {
            environment: view.environment.clone(),
            service: view.service.clone(),
        };

        let issues = self.call("validate", &view.environment, namespace_json, async |store, _, exports, _| match exports {
            WorldExports::Validator(validator) => validator.call_validate(store, &wit_view, &input).await,
            WorldExports::Source(_) => Err(wasmtime::Error::msg("not a validator")),
        })?;
        self.check_output(issues)
    }

    /// A source's layer for `environment`: its `load` output, parsed, as a JSON object whose every
    /// key lies under the plugin's prefixes. `namespace_json` is what `namespace-config()` returns
    /// during the call.
    pub fn load_source(&self, environment: &str, namespace_json: String) -> Result<Value, PluginError> {
        self.load_source_with_origins(environment, namespace_json).map(|output| output.layer)
    }

    /// [`Self::load_source`] with the origin of each key, when the source exports `provenance`
    /// (0.2.0): then `load-with-origins` is called instead of `load`.
    pub fn load_source_with_origins(&self, environment: &str, namespace_json: String) -> Result<SourceOutput, PluginError> {
        let result = self.load_source_inner(environment, namespace_json);
        self.remember(&result);
        result
    }

    fn load_source_inner(&self, environment: &str, namespace_json: String) -> Result<SourceOutput, PluginError> {
        let (call, with_origins) = match self.live.provenance.is_some() {
            true => ("load-with-origins", true),
            false => ("load", false),
        };
        let (outcome, read_through_sql) = self.call(call, environment, namespace_json, async |store, _, exports, live| {
            let outcome = match (exports, &live.provenance) {
                (WorldExports::Source(_), Some(provenance)) if with_origins => {
                    provenance.call_load_with_origins(&mut *store, environment).await?.map(|layer| (layer.config, layer.origins))
                }
                (WorldExports::Source(source), _) => source.call_load(&mut *store, environment).await?.map(|text| (text, Vec::new())),
                (WorldExports::Validator(_), _) => return Err(wasmtime::Error::msg("not a source")),
            };
            Ok((outcome, store.data().sql.origins()))
        })?;
        let (text, origins) = outcome.map_err(|message: String| {
            let mut message = sandbox::truncate(&message, MESSAGE_MAX).to_string();
            // The guest's message may hide what the host refused; the host says it itself.
            let refusal = self.last_refusal.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(refusal) = refusal.filter(|refusal| !message.contains(refusal.as_str())) {
                message.push_str(&format!(" (the host: {refusal})"));
            }
            PluginError::SourceFailed { plugin: self.name.to_string(), message }
        })?;
        let value = self.parse_json_output(call, &text)?;
        if let Some(key) = first_key_outside(&value, &self.manifest.prefixes, &mut String::new()) {
            return Err(PluginError::OutsidePrefixes {
                plugin: self.name.to_string(),
                key,
                prefixes: self.manifest.prefixes.join(", "),
            });
        }
        let origins = self.check_origins(call, text.len(), origins)?;
        Ok(SourceOutput { layer: value, origins, read_through_sql })
    }

    /// Origins within the output limit (counted with the layer), each for a key path, its text
    /// cut to a message's length.
    fn check_origins(&self, call: &str, layer_size: usize, origins: Vec<provenance::KeyOrigin>) -> Result<Vec<(String, String)>, PluginError> {
        let limit = self.limits.max_output_kib as usize * 1024;
        let size = layer_size + origins.iter().map(|o| o.path.len() + o.origin.len() + ISSUE_OVERHEAD).sum::<usize>();
        if size > limit {
            return Err(PluginError::OutputTooLarge { plugin: self.name.to_string(), call: call.into(), size, limit });
        }
        origins
            .into_iter()
            .map(|o| match is_key_path(&o.path) {
                true => Ok((o.path, sandbox::truncate(&o.origin, MESSAGE_MAX).to_owned())),
                false => Err(PluginError::InvalidOutput { plugin: self.name.to_string(), call: call.into(), reason: format!("origin for `{}`, which is not a dotted key path", sandbox::truncate(&o.path, 200)) }),
            })
            .collect()
    }

    /// Whether the source exports `watch` (0.2.0): the host then waits for changes with
    /// [`Self::wait_for_change`] besides polling.
    pub fn watches(&self) -> bool {
        self.live.watch.is_some()
    }

    /// The budget one `wait-for-change` call is given: three quarters of the time limit under it (of
    /// the call's and of one outbound request's), leaving the last quarter for the source to finish and answer.
    pub fn watch_budget_ms(&self) -> u32 {
        let mut limit = self.limits.timeout_ms;
        if let Some(outbound) = self.outbound_limits() {
            limit = limit.min(outbound.total_ms);
        }
        limit / 4 * 3
    }

    /// A watching source's `wait-for-change(known, budget)` about `environment`: the new change
    /// token, or None when the budget passed without a change (or the source does not watch).
    /// Runs under every limit of a call (time, memory, output). Does not touch `last_error`:
    /// waiting runs beside the host's calls and a failed wait is retried by its caller.
    pub fn wait_for_change(&self, environment: &str, namespace_json: String, known: Option<&str>) -> Result<Option<String>, PluginError> {
        if self.live.watch.is_none() {
            return Ok(None);
        }
        let budget = self.watch_budget_ms();
        let known = known.map(str::to_owned);
        let outcome = self.call("wait-for-change", environment, namespace_json, async |store, _, _, live| match &live.watch {
            Some(watch) => watch.call_wait_for_change(store, known.as_deref(), budget).await,
            None => Ok(Ok(None)),
        })?;
        let token = outcome.map_err(|message| PluginError::SourceFailed { plugin: self.name.to_string(), message: sandbox::truncate(&message, MESSAGE_MAX).to_string() })?;
        match token {
            Some(token) if token.len() > MESSAGE_MAX => Err(PluginError::OutputTooLarge { plugin: self.name.to_string(), call: "wait-for-change".into(), size: token.len(), limit: MESSAGE_MAX }),
            token => Ok(token),
        }
    }

    /// A source's `poll-interval-ms` (0: never poll).
    pub fn poll_interval_ms(&self, environment: &str, namespace_json: String) -> Result<u32, PluginError> {
        let result = self.call("poll-interval-ms", environment, namespace_json, async |store, _, exports, _| match exports {
            WorldExports::Source(source) => source.call_poll_interval_ms(store).await,
            WorldExports::Validator(_) => Ok(0),
        });
        self.remember(&result);
        result
    }

    /// A source's `change-token` (None: reload on every poll).
    pub fn change_token(&self, environment: &str, namespace_json: String) -> Result<Option<String>, PluginError> {
        let result = self.call("change-token", environment, namespace_json, async |store, _, exports, _| match exports {
            WorldExports::Source(source) => source.call_change_token(store).await,
            WorldExports::Validator(_) => Ok(None),
        });
        self.remember(&result);
        result
    }

    /// What `namespace-config()` returns for `config`: the plugin's own namespace (`{}` when
    /// absent), without secret values unless the signed manifest grants secrets.
    pub fn namespace_of(&self, config: &Value, is_secret: &dyn Fn(&str) -> bool) -> Value {
        let namespace = self.manifest.namespace();
        let visible = restrict(config, std::slice::from_ref(&namespace), self.manifest.secrets, is_secret);
        lookup(&visible, &namespace).cloned().unwrap_or_else(|| Value::Object(Default::default()))
    }

    /// Whether the plugin exports the `namespace` interface.
    pub fn owns_namespace(&self) -> bool {
        self.namespace.is_some()
    }

    /// The plugin's template for `plugins.<name>` (an object), or None when it exports no
    /// `namespace` interface.
    pub fn namespace_defaults(&self) -> Result<Option<Value>, PluginError> {
        let Some(indices) = &self.namespace else { return Ok(None) };
        let result = self
            .call("defaults", "", "{}".to_owned(), async |store, instance, _, _| {
                let func = instance.get_typed_func::<(), (String,)>(&mut *store, &indices.defaults)?;
                let (text,) = func.call_async(&mut *store, ()).await?;
                Ok(text)
            })
            .and_then(|text| self.parse_json_output("defaults", &text));
        self.remember(&result);
        result.map(Some)
    }

    /// Tells the plugin its namespace's new content in `environment` (no-op without a namespace).
    pub fn on_config_changed(&self, environment: &str, namespace_json: &str) -> Result<(), PluginError> {
        let Some(indices) = &self.namespace else { return Ok(()) };
        let argument = namespace_json.to_owned();
        let result = self.call("on-config-changed", environment, namespace_json.to_owned(), async |store, instance, _, _| {
            let func = instance.get_typed_func::<(String,), ()>(&mut *store, &indices.on_config_changed)?;
            func.call_async(&mut *store, (argument,)).await
        });
        self.remember(&result);
        result
    }

    fn remember<T>(&self, result: &Result<T, PluginError>) {
        let mut last_error = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        *last_error = result.as_ref().err().map(ToString::to_string);
    }

    /// JSON text a call returned: within the output limit, parsed, an object.
    fn parse_json_output(&self, call: &str, text: &str) -> Result<Value, PluginError> {
        let limit = self.limits.max_output_kib as usize * 1024;
        if text.len() > limit {
            return Err(PluginError::OutputTooLarge { plugin: self.name.to_string(), call: call.into(), size: text.len(), limit });
        }
        let invalid = |reason: String| PluginError::InvalidOutput { plugin: self.name.to_string(), call: call.into(), reason };
        let value: Value = serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        if !value.is_object() {
            return Err(invalid("not a JSON object".into()));
        }
        Ok(value)
    }

    /// Runs one export on a warm (or fresh) instance under the plugin's limits. The instance goes
    /// back to the pool only when the call succeeded.
    ///
    /// The time limit is wall-clock: at the deadline the call's future is dropped, whether the
    /// guest is computing (it yields at every epoch tick) or waiting in a host call (a WASI
    /// sleep, a poll, a read), and the instance with it.
    fn call<R>(
        &self,
        call: &str,
        environment: &str,
        namespace_json: String,
        run: impl AsyncFnOnce(&mut Store<CallState>, &Instance, &WorldExports, &LiveExports) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let mut warm = match self.take_warm() {
            Some(warm) => warm,
            None => self.instantiate()?,
        };
        let deadline = self.deadline();
        let store = &mut warm.sandbox.store;
        store.data_mut().begin_call(environment, namespace_json);
        store.set_epoch_deadline(1);
        let outcome = self.executor.run_until(deadline, run(store, &warm.instance, &warm.exports, &warm.live));
        *self.last_refusal.lock().unwrap_or_else(|p| p.into_inner()) = warm.sandbox.store.data().first_refusal();
        warm.stdout_seen = forward_output(&self.log, "stdout", &warm.sandbox.stdout, warm.stdout_seen);
        warm.stderr_seen = forward_output(&self.log, "stderr", &warm.sandbox.stderr, warm.stderr_seen);
        self.log.flush();
        let result = match outcome {
            // The instance is dropped here, mid-call: it is never re-entered.
            None => Err(self.timeout(call)),
            Some(Ok(value)) => {
                let stdio_nearly_full = warm.stdout_seen.max(warm.stderr_seen) > STDIO_CAPACITY / 2;
                if !stdio_nearly_full {
                    self.return_warm(warm);
                }
                Ok(value)
            }
            // The instance is dropped here: a trapped instance is never re-entered.
            Some(Err(error)) => Err(self.call_failure(call, &warm, &error)),
        };
        self.counters.ended(result.as_ref().err());
        result
    }

    fn take_warm(&self) -> Option<WarmInstance> {
        self.warm.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn return_warm(&self, warm: WarmInstance) {
        let mut pool = self.warm.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < WARM_INSTANCES {
            pool.push(warm);
        }
    }

    /// When a call (or an instantiation) starting now must be over.
    fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_millis(u64::from(self.limits.timeout_ms))
    }

    fn timeout(&self, call: &str) -> PluginError {
        PluginError::Timeout {
            plugin: self.name.to_string(),
            call: call.to_string(),
            limit_ms: self.limits.timeout_ms,
        }
    }

    fn instantiate(&self) -> Result<WarmInstance, PluginError> {
        let mut sandbox = new_store(
            &self.engine,
            &self.name,
            self.log.clone(),
            &self.manifest.grants,
            self.directory.as_deref(),
            self.outbound.clone(),
            self.sql.clone(),
            self.limits.memory_mib,
        )?;
        // Start-up code runs under the same time limit as a call.
        let deadline = self.deadline();
        sandbox.store.set_epoch_deadline(1);
        let store = &mut sandbox.store;
        let instantiated = self.executor.run_until(deadline, async {
            let instance = self.instance_pre.instantiate_async(&mut *store).await?;
            let exports = match &self.world {
                WorldIndices::Validator(indices) => WorldExports::Validator(indices.load(&mut *store, &instance)?),
                WorldIndices::Source(indices) => WorldExports::Source(indices.load(&mut *store, &instance)?),
            };
            let live = LiveExports {
                provenance: self.live.provenance.as_ref().map(|indices| indices.load(&mut *store, &instance)).transpose()?,
                watch: self.live.watch.as_ref().map(|indices| indices.load(&mut *store, &instance)).transpose()?,
            };
            wasmtime::Result::Ok((instance, exports, live))
        });
        let Some(instantiated) = instantiated else {
            return Err(self.timeout("instantiate"));
        };
        match instantiated {
            Ok((instance, exports, live)) => Ok(WarmInstance {
                sandbox,
                instance,
                exports,
                live,
                stdout_seen: 0,
                stderr_seen: 0,
            }),
            Err(error) => {
                let warm_less = WarmFailure { sandbox: &sandbox };
                Err(self.classify("instantiate", warm_less, &error))
            }
        }
    }

    fn call_failure(
        &self,
        call: &str,
        warm: &WarmInstance,
        error: &wasmtime::Error,
    ) -> PluginError {
        self.classify(
            call,
            WarmFailure {
                sandbox: &warm.sandbox,
            },
            error,
        )
    }

    fn classify(
        &self,
        call: &str,
        failed: WarmFailure<'_>,
        error: &wasmtime::Error,
    ) -> PluginError {
        let plugin = self.name.to_string();
        let call = call.to_string();
        if failed.sandbox.store.data().memory.exceeded {
            return PluginError::MemoryLimit {
                plugin,
                call,
                limit_mib: self.limits.memory_mib,
            };
        }
        // The trap itself, without the wasm backtrace (addresses help no operator).
        let mut detail = match error.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => sandbox::truncate(&describe(error), 500).to_string(),
        };
        // A Rust guest's panic message goes to stderr; it is the most useful part.
        let stderr = failed.sandbox.stderr.contents();
        let stderr = String::from_utf8_lossy(&stderr);
        let lines: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
            .collect();
        if !lines.is_empty() {
            let joined = lines.join(" | ");
            let start = joined.len().saturating_sub(500);
            let start = (start..joined.len())
                .find(|&i| joined.is_char_boundary(i))
                .unwrap_or(0);
            detail.push_str("; guest stderr: ");
            detail.push_str(&joined[start..]);
        }
        PluginError::Trap {
            plugin,
            call,
            detail,
        }
    }

    /// Enforce the output limit and the shape of every issue.
    fn check_output(
        &self,
        issues: Vec<bindings::potter::config::types::Issue>,
    ) -> Result<Vec<PluginIssue>, PluginError> {
        let limit = self.limits.max_output_kib as usize * 1024;
        let size: usize = issues
            .iter()
            .map(|i| i.path.len() + i.message.len() + ISSUE_OVERHEAD)
            .sum();
        if size > limit {
            return Err(PluginError::OutputTooLarge {
                plugin: self.name.to_string(),
                call: "validate".into(),
                size,
                limit,
            });
        }
        issues
            .into_iter()
            .enumerate()
            .map(|(index, issue)| {
                self.check_issue(&issue)
                    .map_err(|reason| PluginError::InvalidOutput {
                        plugin: self.name.to_string(),
                        call: "validate".into(),
                        reason: format!("issue {index}: {reason}"),
                    })?;
                Ok(PluginIssue {
                    plugin: self.name.to_string(),
                    path: issue.path,
                    message: issue.message,
                    severity: match issue.severity {
                        bindings::potter::config::types::Severity::Error => Severity::Error,
                        bindings::potter::config::types::Severity::Warning => Severity::Warning,
                    },
                })
            })
            .collect()
    }

    fn check_issue(&self, issue: &bindings::potter::config::types::Issue) -> Result<(), String> {
        if !is_key_path(&issue.path) {
            return Err(format!(
                "path {:?} is not a dotted key path",
                sandbox::truncate(&issue.path, 80)
            ));
        }
        let inside = |prefix: &String| {
            issue.path == *prefix || issue.path.starts_with(&format!("{prefix}."))
        };
        if !self.visible_prefixes.iter().any(inside) {
            return Err(format!(
                "path `{}` is outside the plugin's prefixes ({})",
                issue.path,
                self.visible_prefixes.join(", ")
            ));
        }
        if issue.message.trim().is_empty() {
            return Err(format!("issue at `{}` has an empty message", issue.path));
        }
        if issue.message.len() > MESSAGE_MAX {
            return Err(format!(
                "message at `{}` is longer than {MESSAGE_MAX} bytes",
                issue.path
            ));
        }
        if issue
            .message
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(format!(
                "message at `{}` contains control characters",
                issue.path
            ));
        }
        Ok(())
    }
}

/// The first leaf (or the first key that is no object) of `value` outside `prefixes`, as a dotted path.
fn first_key_outside(value: &Value, prefixes: &[String], path: &mut String) -> Option<String> {
    let covered = |path: &str| prefixes.iter().any(|p| path == p || path.starts_with(&format!("{p}.")));
    let reaches_into = |path: &str| prefixes.iter().any(|p| p.starts_with(&format!("{path}.")));
    let Value::Object(map) = value else {
        return (!covered(path)).then(|| path.clone());
    };
    for (key, child) in map {
        let before = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        let outside = if covered(path) {
            None
        } else if reaches_into(path) {
            first_key_outside(child, prefixes, path)
        } else {
            Some(path.clone())
        };
        path.truncate(before);
        if outside.is_some() {
            return outside;
        }
    }
    None
}

/// The parts of a failed store that explain the failure.
struct WarmFailure<'a> {
    sandbox: &'a SandboxStore,
}
