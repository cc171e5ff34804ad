//! Source plugins' output: the "remote and plugin sources" level.

use std::sync::Arc;

use potter_engine::{Layer, Rank};

use super::{BuildContext, Source};
use crate::error::Error;
use crate::plugin_folder::Plugins;

/// The last good layers of the running source plugins. They are asked for fresh output before a
/// build (`Plugins::refresh_sources`, whose `on_error` policy decides what a failure does), never
/// during it.
pub struct PluginSources<'a> {
    plugins: Option<&'a Plugins>,
}

impl<'a> PluginSources<'a> {
    /// The output of these plugins' sources (None: no plugins folder, no layers).
    pub fn new(plugins: Option<&'a Plugins>) -> Self {
        Self { plugins }
    }
}

impl Source for PluginSources<'_> {
    fn name(&self) -> &str {
        "plugin-sources"
    }

    fn rank(&self) -> Rank {
        Rank::Source
    }

    fn layers(&mut self, _context: &BuildContext<'_>) -> Result<Vec<Arc<Layer>>, Error> {
        Ok(self.plugins.map(Plugins::source_layers).unwrap_or_default())
    }
}
