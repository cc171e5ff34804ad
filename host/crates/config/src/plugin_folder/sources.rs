//! Source plugins: their per-environment layers at the "remote and plugin sources" level (last
//! good output, change tokens, poll times) and what their `on_error` policy makes of a failure.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use potter_engine::{Layer, LayerSource, Location, Rank, Scope, Snapshot};
use potter_plugin::{LoadedPlugin, OnError, PluginError};
use serde_json::Value;

use super::namespaces::namespace_in;
use super::{remember_error, Active, EnvironmentErrors, Plugins};
use crate::error::Error;

/// A source's last good output and when to ask it again.
#[derive(Clone, Default)]
pub(super) struct SourceState {
    layers: BTreeMap<String, Arc<Layer>>,
    tokens: BTreeMap<String, Option<String>>,
    /// None: never polled (only loaded at start, on `reload()` and when replaced).
    interval: Option<Duration>,
    pub(super) next_poll: Option<Instant>,
}

/// Which sources a reload asks for fresh output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceRefresh {
    /// Every source (start-up, an explicit `reload()`).
    All,
    /// Sources whose poll interval has elapsed.
    Due,
}

/// What asking the sources produced.
#[derive(Default)]
pub(crate) struct SourceOutcome {
    /// Failures of sources whose policy keeps the last good output.
    pub(crate) kept: Vec<PluginError>,
    /// Failures of sources whose policy rejects the reload.
    pub(crate) rejecting: Vec<PluginError>,
}

impl Plugins {
    /// The source plugins' last good layers, one per environment, ordered by manifest priority,
    /// then plugin name (the higher priority, then the later name, wins).
    pub fn source_layers(&self) -> Vec<Arc<Layer>> {
        let mut sources: Vec<&Active> = self.active.values().filter(|active| active.source.is_some()).collect();
        sources.sort_by(|a, b| (a.plugin.manifest().priority, a.plugin.name()).cmp(&(b.plugin.manifest().priority, b.plugin.name())));
        sources.into_iter().filter_map(|active| active.source.as_ref()).flat_map(|source| source.layers.values().cloned()).collect()
    }

    /// Asks sources for fresh output (all, or those due) for each environment of `current`.
    /// A source that fails keeps its last good output; its failure is returned, sorted by its
    /// manifest's `on_error`. At start-up (`first`) a failure has no last good output to keep and
    /// is returned as rejecting whatever the policy.
    pub(crate) fn refresh_sources(&mut self, current: &Snapshot, refresh: SourceRefresh, first: bool) -> SourceOutcome {
        let now = Instant::now();
        let mut outcome = SourceOutcome::default();
        for active in self.active.values_mut() {
            let Some(source) = &mut active.source else { continue };
            let due = source.next_poll.is_some_and(|at| at <= now);
            if refresh == SourceRefresh::Due && !due {
                continue;
            }
            if let Err(error) = refresh_source(&active.plugin, source, current, false, &active.errors) {
                match active.plugin.manifest().on_error {
                    _ if first => outcome.rejecting.push(error),
                    OnError::Keep => outcome.kept.push(error),
                    OnError::Reject => outcome.rejecting.push(error),
                }
            }
            source.next_poll = source.interval.map(|interval| now + interval);
        }
        outcome
    }
}

/// A source's first output, for every environment of `current`, and its poll interval.
pub(super) fn first_source_load(active: &mut Active, current: &Snapshot) -> Result<(), Error> {
    let Some(source) = &mut active.source else { return Ok(()) };
    refresh_source(&active.plugin, source, current, true, &active.errors)?;
    source.next_poll = source.interval.map(|interval| Instant::now() + interval);
    Ok(())
}

/// Asks one source for each environment's output; a change token equal to the last one skips
/// `load` unless `force`. All environments succeed or the source's layers stay as they were.
fn refresh_source(plugin: &LoadedPlugin, source: &mut SourceState, current: &Snapshot, force: bool, errors: &EnvironmentErrors) -> Result<(), PluginError> {
    let mut layers = source.layers.clone();
    let mut tokens = source.tokens.clone();
    let mut interval = None;
    for environment in &current.axes().environments {
        let asked = (|| {
            let namespace = namespace_in(current, environment, plugin).to_string();
            let millis = plugin.poll_interval_ms(environment, namespace.clone())?;
            interval = (millis > 0).then(|| Duration::from_millis(u64::from(millis))).into_iter().chain(interval).min();
            let token = plugin.change_token(environment, namespace.clone())?;
            let known = tokens.get(&**environment);
            if !force && token.is_some() && known == Some(&token) && layers.contains_key(&**environment) {
                return Ok(());
            }
            let output = plugin.load_source(environment, namespace)?;
            let Value::Object(data) = output else { unreachable!("load_source returns objects") };
            // Within the source rank layers go by order, then name: priority, then plugin name.
            let mut layer = Layer::new(format!("plugins/{}/{environment}", plugin.name()), Rank::Source, Scope::environment(environment), LayerSource::Plugin(plugin.name().to_owned()), data)
                .with_order(i64::from(plugin.manifest().priority));
            layer.locations.values_mut().for_each(|location| *location = Location::Layer);
            layers.insert(environment.to_string(), Arc::new(layer));
            tokens.insert(environment.to_string(), token);
            Ok(())
        })();
        remember_error(errors, environment, &asked);
        asked?;
    }
    layers.retain(|environment, _| current.axes().environments.iter().any(|e| &**e == environment));
    source.layers = layers;
    source.tokens = tokens;
    source.interval = interval;
    Ok(())
}
