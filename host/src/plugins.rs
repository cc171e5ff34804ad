//! Wasm plugins of the drop-in folder, registered as validators.
//!
//! Loading is all or nothing: a plugin that is unsigned, tampered, signed by an unknown key, not a
//! component or asking for an ungranted import stops the host from opening. A validator that
//! fails while running (trap, timeout, memory, bad output) becomes an error issue naming it, so the
//! load it was checking is rejected and the previous snapshot stays live.

use std::path::Path;
use std::sync::Arc;

use potter_engine::{Issue, Severity, View};
use potter_plugin::{HostOptions, LoadedPlugin, PluginError, PluginHost, PluginInfo, PluginKind, PRODUCTION};
use potter_validate::{Validation, Validator, ValidatorError};

use crate::error::Error;
use crate::runtime::Options;
use crate::source::tree;

/// The loaded plugins (kept alive as long as the host).
pub struct Plugins {
    host: PluginHost,
    validators: Vec<Arc<PluginValidator>>,
    /// Why each refused plugin was refused, in file-name order.
    refusals: Vec<PluginError>,
}

impl Plugins {
    /// Loads the plugins folder and registers each validator plugin with `checks`.
    /// No folder → no plugins. Any plugin that cannot be loaded → the error (nothing registered).
    pub fn load(options: &Options, checks: &mut Validation) -> Result<Option<Self>, Error> {
        let Some(mut plugins) = Self::inspect(options)? else { return Ok(None) };
        if !plugins.refusals.is_empty() {
            return Err(Error::Plugin(plugins.refusals.swap_remove(0)));
        }
        plugins.register(checks);
        Ok(Some(plugins))
    }

    /// Loads every plugin of the folder and keeps going past refusals (for `plugin list`, which
    /// shows each plugin's status). Fails only when the host itself cannot start.
    pub fn inspect(options: &Options) -> Result<Option<Self>, Error> {
        if !options.plugins_dir.exists() {
            return Ok(None);
        }
        let host = PluginHost::new(host_options(options)?)?;
        let mut validators = Vec::new();
        let mut refusals = Vec::new();
        for loaded in host.load_dir(&options.plugins_dir) {
            match loaded {
                Ok(plugin) if plugin.manifest().kind == PluginKind::Validator => validators.push(Arc::new(PluginValidator::new(plugin))),
                Ok(_) => {}
                Err(error) => refusals.push(error),
            }
        }
        Ok(Some(Self { host, validators, refusals }))
    }

    /// Registers every loaded validator plugin (`plugin:<name>`) with `checks`.
    pub fn register(&self, checks: &mut Validation) {
        for validator in &self.validators {
            checks.add_validator(validator.clone());
        }
    }

    /// Every plugin of the folder with its status and last error.
    pub fn list(&self) -> Vec<PluginInfo> {
        self.host.list()
    }
}

/// The plugin host's options for a configuration host. The trust store is `<state>/trusted-keys`.
///
/// `allow_unsigned` is refused when `POTTER_ENV` is production, and also when the tree defines a
/// `production` environment: one host validates every environment's views, so an unsigned plugin
/// would judge (and see) production configuration whatever environment the caller reads.
fn host_options(options: &Options) -> Result<HostOptions, Error> {
    let serves_production = serves_production(&options.root)?;
    if options.allow_unsigned {
        if active_environment(options).as_deref() == Some(PRODUCTION) {
            return Err(Error::UnsignedRefused { reason: "the environment is production (POTTER_ENV)".to_owned() });
        }
        if serves_production {
            return Err(Error::UnsignedRefused {
                reason: format!("the tree {} has a `{PRODUCTION}` environment, and unsigned plugins never run where production is validated", options.root.display()),
            });
        }
    }
    // The plugin host only reads the environment to apply its own production rule.
    let environment = if serves_production { PRODUCTION } else { "development" };
    let mut host_options = HostOptions::new(&options.state_dir, environment);
    host_options.allow_unsigned = options.allow_unsigned;
    Ok(host_options)
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

fn serves_production(root: &Path) -> Result<bool, Error> {
    Ok(tree::scan(root)?.axes.environments.iter().any(|environment| &**environment == PRODUCTION))
}

/// A validator plugin as one of the validation step's validators.
struct PluginValidator {
    /// `plugin:<name>`.
    name: String,
    plugin: Arc<LoadedPlugin>,
}

impl PluginValidator {
    fn new(plugin: Arc<LoadedPlugin>) -> Self {
        Self { name: format!("plugin:{}", plugin.name()), plugin }
    }
}

impl Validator for PluginValidator {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self, view: &View) -> Result<Vec<Issue>, ValidatorError> {
        let key = view.key();
        let target = potter_plugin::View { environment: key.environment.to_string(), service: key.service.as_deref().map(str::to_owned) };
        let issues = self.plugin.validate(&target, view.value(), &|path| view.is_secret(path)).map_err(|error| ValidatorError::new(error.to_string()))?;
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
