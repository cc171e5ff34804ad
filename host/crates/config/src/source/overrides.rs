//! The runtime overrides (CLI `set`, API writes, rollbacks): one layer per environment, above
//! every other layer.

use std::collections::BTreeMap;
use std::sync::Arc;

use potter_engine::{Layer, LayerSource, Location, Rank, Scope};
use serde_json::{Map, Value};

use super::{BuildContext, Source};
use crate::error::Error;

/// Runtime overrides per environment (made durable by the history store).
pub type Overrides = BTreeMap<String, Map<String, Value>>;

/// The overrides a build is made of (the live ones, or a proposed change of them) as a source.
pub struct OverridesSource<'a> {
    overrides: &'a Overrides,
}

impl<'a> OverridesSource<'a> {
    /// The source of these overrides.
    pub fn new(overrides: &'a Overrides) -> Self {
        Self { overrides }
    }
}

impl Source for OverridesSource<'_> {
    fn name(&self) -> &str {
        "overrides"
    }

    fn rank(&self) -> Rank {
        Rank::Overrides
    }

    fn layers(&mut self, context: &BuildContext<'_>) -> Result<Vec<Arc<Layer>>, Error> {
        // Overrides of environments not served are not even turned into layers.
        let served = self.overrides.iter().filter(|(environment, _)| context.options.serves(environment));
        Ok(served.map(|(environment, tree)| Arc::new(override_layer(environment, tree))).collect())
    }
}

/// The layer of one environment's overrides.
fn override_layer(environment: &str, tree: &Map<String, Value>) -> Layer {
    let mut layer = Layer::new(format!("overrides/{environment}"), Rank::Overrides, Scope::environment(environment), LayerSource::Overrides, tree.clone());
    layer.locations.values_mut().for_each(|location| *location = Location::Layer);
    layer
}
