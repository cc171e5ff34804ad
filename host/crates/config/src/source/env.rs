//! The environment-variable layer, read from this process's environment.

use potter_engine::{envvars, Layer};

/// Default prefix of configuration variables (`POTTER_API__TIMEOUT`).
pub const DEFAULT_PREFIX: &str = "POTTER_";

/// The layer of every `<prefix>*` variable of the current process (non-UTF-8 variables are skipped).
pub fn from_process(prefix: &str) -> Layer {
    envvars::env_layer(prefix, std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))))
}
