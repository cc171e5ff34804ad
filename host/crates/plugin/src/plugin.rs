//! A loaded plugin and its `validate` call: input restriction, limits, output checks.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;
use wasmtime::{Engine, Trap};

use crate::cache::CompiledFrom;
use crate::config_filter::{lookup, restrict};
use crate::error::{describe, PluginError};
use crate::manifest::{is_key_path, Limits, Manifest};
use crate::sandbox::{
    self, bindings, deadline_ticks, forward_output, new_store, SandboxStore, STDIO_CAPACITY,
};

/// Idle instances kept per plugin for reuse (each holds its linear memory).
const WARM_INSTANCES: usize = 2;
/// Longest issue message accepted from a plugin.
const MESSAGE_MAX: usize = 4096;
/// Per-issue overhead counted against the output limit, so an endless list of
/// empty-looking issues still hits it.
const ISSUE_OVERHEAD: usize = 16;

/// The view a validator is asked about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct View {
    pub environment: String,
    pub service: Option<String>,
}

/// Error or warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
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

/// A verified, compiled plugin ready to be called. Cheap to share (`Arc`).
pub struct LoadedPlugin {
    pub(crate) manifest: Manifest,
    pub(crate) name: Arc<str>,
    pub(crate) module_sha256: String,
    pub(crate) signer_key_id: Option<String>,
    pub(crate) limits: Limits,
    pub(crate) compiled_from: CompiledFrom,
    pub(crate) engine: Engine,
    pub(crate) pre: bindings::ValidatorPre<sandbox::CallState>,
    /// Prefixes the plugin sees: declared ones plus its namespace.
    pub(crate) visible_prefixes: Vec<String>,
    pub(crate) warm: Mutex<Vec<WarmInstance>>,
    pub(crate) last_error: Mutex<Option<String>>,
}

/// An instance that finished its last call normally and may be called again.
/// An instance that trapped is never reused.
pub(crate) struct WarmInstance {
    sandbox: SandboxStore,
    validator: bindings::Validator,
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

    /// Whether the compiled code came from the cache or the compiler.
    pub fn compiled_from(&self) -> CompiledFrom {
        self.compiled_from
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
        view: &View,
        config: &Value,
        is_secret: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<PluginIssue>, PluginError> {
        let result = self.validate_inner(view, config, is_secret);
        let mut last_error = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        *last_error = result.as_ref().err().map(ToString::to_string);
        result
    }

    fn validate_inner(
        &self,
        view: &View,
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

        let mut warm = match self.take_warm() {
            Some(warm) => warm,
            None => self.instantiate()?,
        };
        let store = &mut warm.sandbox.store;
        store
            .data_mut()
            .begin_call(&view.environment, namespace_json);
        store.set_epoch_deadline(deadline_ticks(self.limits.timeout_ms));
        let outcome = warm.validator.call_validate(&mut *store, &wit_view, &input);
        warm.stdout_seen =
            forward_output(&self.name, "stdout", &warm.sandbox.stdout, warm.stdout_seen);
        warm.stderr_seen =
            forward_output(&self.name, "stderr", &warm.sandbox.stderr, warm.stderr_seen);
        let issues = match outcome {
            Ok(issues) => issues,
            // The instance is dropped here: a trapped instance is never re-entered.
            Err(error) => return Err(self.call_failure("validate", &warm, &error)),
        };
        let checked = self.check_output(issues);
        let stdio_nearly_full = warm.stdout_seen.max(warm.stderr_seen) > STDIO_CAPACITY / 2;
        if checked.is_ok() && !stdio_nearly_full {
            self.return_warm(warm);
        }
        checked
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

    fn instantiate(&self) -> Result<WarmInstance, PluginError> {
        let mut sandbox = new_store(
            &self.engine,
            self.name.clone(),
            &self.manifest.grants,
            self.limits.memory_mib,
        );
        // Start-up code runs under the same time limit as a call.
        sandbox
            .store
            .set_epoch_deadline(deadline_ticks(self.limits.timeout_ms));
        match self.pre.instantiate(&mut sandbox.store) {
            Ok(validator) => Ok(WarmInstance {
                sandbox,
                validator,
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
        if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return PluginError::Timeout {
                plugin,
                call,
                limit_ms: self.limits.timeout_ms,
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

/// The parts of a failed store that explain the failure.
struct WarmFailure<'a> {
    sandbox: &'a SandboxStore,
}
