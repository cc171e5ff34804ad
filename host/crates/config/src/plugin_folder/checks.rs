//! What plugins contribute to the validation step: validator plugins (`plugin:<name>`) and
//! namespace schemas (`plugin-schema:<name>`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use potter_engine::{Issue, Severity, View};
use potter_plugin::{LoadedPlugin, PluginError, PluginKind};
use potter_validate::{MountedSchema, Validation, Validator, ValidatorError};
use serde_json::Value;

use super::{remember_error, EnvironmentErrors, Plugins};

/// Validator names of plugins start with these, so they can be replaced as a set.
const VALIDATOR_PREFIX: &str = "plugin:";
const SCHEMA_VALIDATOR_PREFIX: &str = "plugin-schema:";

impl Plugins {
    /// Registers every running plugin's validators with `checks`, replacing those registered before.
    pub fn register(&self, checks: &mut Validation) {
        checks.retain_validators(|name| !name.starts_with(VALIDATOR_PREFIX) && !name.starts_with(SCHEMA_VALIDATOR_PREFIX));
        for active in self.active.values() {
            for validator in &active.validators {
                checks.add_validator(validator.clone());
            }
        }
    }
}

/// The validators a freshly loaded plugin contributes: itself when it is a validator, and its
/// namespace schema when its manifest has one.
pub(super) fn validators_of(plugin: &Arc<LoadedPlugin>, errors: &EnvironmentErrors) -> Result<Vec<Arc<dyn Validator>>, PluginError> {
    let name = plugin.name();
    let manifest = plugin.manifest();
    let mut validators: Vec<Arc<dyn Validator>> = Vec::new();
    if manifest.kind == PluginKind::Validator {
        validators.push(Arc::new(PluginValidator::new(plugin.clone(), errors.clone())));
    }
    if let Some(schema) = &manifest.namespace_schema {
        let schema: Value = serde_json::from_str(schema).map_err(|e| PluginError::Unsupported { plugin: name.to_owned(), reason: format!("namespace_schema: {e}") })?;
        let mounted = MountedSchema::new(format!("{SCHEMA_VALIDATOR_PREFIX}{name}"), format!("plugin {name} namespace_schema"), &manifest.namespace(), &schema)
            .map_err(|e| PluginError::Unsupported { plugin: name.to_owned(), reason: e.to_string() })?;
        validators.push(Arc::new(mounted));
    }
    Ok(validators)
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
        let result = self.plugin.validate(&target, &view.tree(), &|path| view.is_secret(path));
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
