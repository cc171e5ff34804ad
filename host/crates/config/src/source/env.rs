//! The environment-variable layer, read from this process's environment (or the variables the
//! options give instead).

use std::sync::Arc;

use potter_engine::{envvars, Layer, Rank};

use super::{BuildContext, Source};
use crate::error::Error;

/// Default prefix of configuration variables (`POTTER_API__TIMEOUT`).
pub const DEFAULT_PREFIX: &str = "POTTER_";

/// The layer of every `<prefix>*` variable of the current process (non-UTF-8 variables are skipped).
pub fn from_process(prefix: &str) -> Layer {
    envvars::env_layer(prefix, std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))))
}

/// The environment variables as a source: `Options::env_vars` when given, else the process's own.
pub struct EnvSource;

impl Source for EnvSource {
    fn name(&self) -> &str {
        "env"
    }

    fn rank(&self) -> Rank {
        Rank::EnvVars
    }

    fn layers(&mut self, context: &BuildContext<'_>) -> Result<Vec<Arc<Layer>>, Error> {
        let options = context.options;
        let layer = match &options.env_vars {
            Some(vars) => envvars::env_layer(&options.env_prefix, vars.iter().cloned()),
            None => from_process(&options.env_prefix),
        };
        Ok(vec![Arc::new(layer)])
    }
}
