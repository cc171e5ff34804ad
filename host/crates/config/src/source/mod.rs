//! Where layers come from. Every kind of layer has a [`Source`]: schema and plugin namespace
//! defaults (`defaults`), source plugins' output (`plugin`), the config tree's files (`tree`), the
//! process environment (`env`) and the runtime overrides (`overrides`). A snapshot build asks each
//! source for its layers in [`Source::rank`] order, then decrypts them all.

pub mod defaults;
pub mod env;
pub mod overrides;
pub mod plugin;
pub mod rollout;
pub mod tree;

use std::sync::Arc;

use potter_engine::{Layer, Rank};
use potter_validate::SchemaSet;

use crate::error::Error;
use crate::options::Options;

/// What every source may consult while a snapshot is built.
pub struct BuildContext<'a> {
    /// How the host reads the configuration (root, prefix, served environments, ...).
    pub options: &'a Options,
    /// The schemas the build validates against (and takes defaults from).
    pub schemas: &'a SchemaSet,
}

/// One provider of layers for a snapshot build.
///
/// A source answers from what it already holds or reads at once; anything slow or fallible that
/// must not fail a build (a plugin's poll) is refreshed beforehand, and the source returns its
/// last good output. Layers scoped to an environment the host does not serve are dropped by the
/// build, so a source need not know which environments are served.
pub trait Source {
    /// What the source is called in logs (`tree`, `env`, ...).
    fn name(&self) -> &str;

    /// The lowest precedence level of the source's layers: sources are asked in this order
    /// (those of one rank in the order they are given), which is the order of the snapshot's layers.
    fn rank(&self) -> Rank;

    /// The source's layers for this build.
    fn layers(&mut self, context: &BuildContext<'_>) -> Result<Vec<Arc<Layer>>, Error>;
}
