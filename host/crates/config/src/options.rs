//! How a host finds and reads its configuration: the tree, the state directory, the process
//! environment, the plugins folder, the environments it serves.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use potter_engine::{Snapshot, View, ViewKey};

use crate::error::Error;
use crate::source::env;

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
    /// Where the history (records, runtime overrides, audit lines) lives: `<state>/history.db`
    /// (the default) or etcd, shared by every host on the same prefix (docs/FLEET.md).
    pub store: StoreChoice,
    /// This host's id among the hosts of a shared store (its registry entry; None:
    /// `<host name>-<pid>`). A rollout's instance cohort selects hosts by it.
    pub instance_id: Option<String>,
    /// This host's labels (`region=eu`): published in its registry entry, selected by a
    /// rollout's label cohort.
    pub instance_labels: std::collections::BTreeMap<String, String>,
    /// Where long tasks are reported while they run (compiling a plugin the first time,
    /// re-encrypting a tree, validating a rollback): nowhere by default; the CLI draws them on a
    /// terminal.
    pub progress: crate::ProgressReport,
}

/// What an embedder needs to describe an etcd store: the location, credentials, TLS.
#[cfg(feature = "etcd")]
pub mod etcd {
    pub use potter_history_etcd::{Certificate, EtcdLocation, EtcdOptions, Identity, LocationError, TlsOptions};
}

/// The history store a host records in.
// The etcd variant is larger (endpoints, credentials, TLS); `Options` is built once per host.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Default)]
pub enum StoreChoice {
    /// `<state>/history.db`, this host's own.
    #[default]
    Sqlite,
    /// etcd under a prefix, shared by many hosts: endpoints, prefix, TLS and user/password
    /// (`EtcdOptions::new(location).user(name, password).tls(tls)`). With the `etcd` feature.
    #[cfg(feature = "etcd")]
    Etcd(potter_history_etcd::EtcdOptions),
}

impl StoreChoice {
    /// `--store` text: `sqlite` or `etcd://host:port[,host:port...][/prefix]`.
    pub fn parse(text: &str) -> Result<StoreChoice, StoreChoiceError> {
        if text == "sqlite" {
            return Ok(StoreChoice::Sqlite);
        }
        #[cfg(feature = "etcd")]
        return Ok(StoreChoice::Etcd(potter_history_etcd::EtcdOptions::new(text.parse()?)));
        #[cfg(not(feature = "etcd"))]
        Err(StoreChoiceError::NotCompiledIn(text.to_owned()))
    }
}

/// Why a `--store` text names no store this build can open.
#[derive(Debug, thiserror::Error)]
pub enum StoreChoiceError {
    /// Not a valid etcd location.
    #[cfg(feature = "etcd")]
    #[error(transparent)]
    Location(#[from] potter_history_etcd::LocationError),
    /// Anything but `sqlite` in a build without the `etcd` feature.
    #[cfg(not(feature = "etcd"))]
    #[error("store `{0}`: this build has only the SQLite store (`sqlite`); the etcd store needs the library's `etcd` feature")]
    NotCompiledIn(String),
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
            instance_id: None,
            instance_labels: Default::default(),
            store: StoreChoice::Sqlite,
            progress: crate::ProgressReport::default(),
        }
    }

    /// This host's registry id: the one given, else `<host name>-<pid>`.
    pub fn instance_id(&self) -> String {
        self.instance_id.clone().unwrap_or_else(default_instance_id)
    }

    /// True when this process serves `environment` (every environment unless `environments` says).
    pub fn serves(&self, environment: &str) -> bool {
        self.environments.as_ref().is_none_or(|served| served.iter().any(|name| name == environment))
    }

    /// The view `key` of `snapshot`, refusing an environment this process does not serve with a
    /// message that says so (it answers like an unknown view: exit 2, HTTP 404).
    pub fn served_view<'s>(&self, snapshot: &'s Snapshot, key: &ViewKey) -> Result<&'s Arc<View>, Error> {
        self.check_served(snapshot, key)?;
        Ok(snapshot.view(key)?)
    }

    /// What [`Options::served_view`] checks, without merging the view.
    pub fn check_served(&self, snapshot: &Snapshot, key: &ViewKey) -> Result<(), Error> {
        if !self.serves(&key.environment) {
            return Err(Error::NotServed { environment: key.environment.to_string(), served: self.environments.clone().unwrap_or_default().join(", ") });
        }
        Ok(snapshot.check_view(key)?)
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
            .field("instance_id", &self.instance_id)
            .field("instance_labels", &self.instance_labels)
            .field("store", &self.store)
            .field("progress", &self.progress)
            .finish()
    }
}

/// `.potter/` beside the root (`./config` → `./.potter`).
pub fn default_state_dir(root: &Path) -> PathBuf {
    let parent = root.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parent.join(".potter")
}

fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}-{}", std::process::id())
}
