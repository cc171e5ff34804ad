//! The defaults level: the schemas' `default` values and namespace plugins' defaults.

use std::sync::Arc;

use potter_engine::{Layer, Rank};
use potter_validate::defaults_layers;

use super::{BuildContext, Source};
use crate::error::Error;
use crate::plugin_folder::Plugins;

/// The schemas' defaults: the global one, then one per service schema.
pub struct SchemaDefaults;

impl Source for SchemaDefaults {
    fn name(&self) -> &str {
        "schema-defaults"
    }

    fn rank(&self) -> Rank {
        Rank::Defaults
    }

    fn layers(&mut self, context: &BuildContext<'_>) -> Result<Vec<Arc<Layer>>, Error> {
        Ok(defaults_layers(context.schemas).into_iter().map(Arc::new).collect())
    }
}

/// The namespace defaults of the running plugins (`plugins.<name>`), by plugin name.
pub struct PluginDefaults<'a> {
    plugins: Option<&'a Plugins>,
}

impl<'a> PluginDefaults<'a> {
    /// The defaults of these plugins (None: no plugins folder, no layers).
    pub fn new(plugins: Option<&'a Plugins>) -> Self {
        Self { plugins }
    }
}

impl Source for PluginDefaults<'_> {
    fn name(&self) -> &str {
        "plugin-defaults"
    }

    fn rank(&self) -> Rank {
        Rank::Defaults
    }

    fn layers(&mut self, _context: &BuildContext<'_>) -> Result<Vec<Arc<Layer>>, Error> {
        Ok(self.plugins.map(Plugins::namespace_defaults).unwrap_or_default())
    }
}
