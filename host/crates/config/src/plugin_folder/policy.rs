//! The production policy: where unsigned plugins are refused, and what a manifest may be granted.

use potter_plugin::{GrantRules, HostOptions, PRODUCTION};

use crate::error::Error;
use crate::options::Options;
use crate::source::tree;

/// Names the environment a process serves (the CLI's `--env` reads it too).
const ACTIVE_ENVIRONMENT_VARIABLE: &str = "POTTER_ENV";

/// The plugin host's options for a configuration host. The trust store is `<state>/trusted-keys`.
///
/// `allow_unsigned` is refused when `POTTER_ENV` is production, and also when the host serves the
/// tree's `production` environment: one host validates every served environment's views, so an
/// unsigned plugin would judge (and see) production configuration whatever environment the caller
/// reads. A host restricted to other environments (`Options::environments`) never loads production.
pub(super) fn host_options(options: &Options) -> Result<HostOptions, Error> {
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
    host_options.progress = options.progress.clone();
    host_options
}

/// The trust store a host opened with `options` reads.
pub(crate) fn trust_dir(options: &Options) -> std::path::PathBuf {
    base_host_options(options, "development").trust_dir()
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

/// True when the tree has a `production` environment and this host serves it.
fn serves_production(options: &Options) -> Result<bool, Error> {
    Ok(options.serves(PRODUCTION) && tree::scan(&options.root)?.axes.environments.iter().any(|environment| &**environment == PRODUCTION))
}
