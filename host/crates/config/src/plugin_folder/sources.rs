//! Source plugins: their per-environment layers at the "remote and plugin sources" level (last
//! good output, change tokens, poll times) and what their `on_error` policy makes of a failure.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use potter_engine::{Layer, LayerSource, Location, Rank, Scope, Snapshot};
use potter_plugin::{LoadedPlugin, OnError, PluginError, Staleness};
use serde_json::Value;

use super::namespaces::namespace_in;
use super::source_cache::SourceCache;
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
    /// Set while the source serves a last good layer because asking it failed (at start-up: its
    /// cached layer); cleared by the next success.
    pub(super) stale: Option<Staleness>,
    /// Failures in a row, for the retry backoff.
    failures: u32,
}

/// Retries of a stale source: 1 s, doubling, at most this long apart (or its poll interval).
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(60);

impl SourceState {
    /// When to ask again: the poll interval, sooner while stale (backoff from 1 s).
    fn schedule(&mut self, now: Instant) {
        let retry = self.stale.as_ref().map(|_| Duration::from_secs(1u64 << self.failures.saturating_sub(1).min(6)).min(MAX_RETRY_BACKOFF));
        self.next_poll = self.interval.into_iter().chain(retry).min().map(|wait| now + wait);
    }

    fn failed(&mut self, error: &PluginError, from_cache: bool) {
        self.failures = self.failures.saturating_add(1);
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        match &mut self.stale {
            Some(stale) => stale.last_error = error.to_string(),
            None => self.stale = Some(Staleness { since_ms: now_ms, last_error: error.to_string(), from_cache, cached_at_ms: None }),
        }
    }

    fn succeeded(&mut self) {
        self.failures = 0;
        self.stale = None;
    }
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

/// A source that exports `watch` (0.2.0), in one environment: what its waiting thread needs to
/// ask it whether its data changed.
#[derive(Clone)]
pub struct WatchedSource {
    /// The source.
    pub plugin: Arc<LoadedPlugin>,
    /// The environment its wait is about.
    pub environment: String,
    /// What `namespace-config()` returns during the call.
    pub namespace: String,
    /// The change token the host holds for it (None: none yet, or the source gave none).
    pub known: Option<String>,
}

impl Plugins {
    /// Every watching source in every environment of `current`.
    pub(crate) fn watched_sources(&self, current: &Snapshot) -> Vec<WatchedSource> {
        let mut watched = Vec::new();
        for active in self.active.values() {
            let Some(source) = &active.source else { continue };
            if !active.plugin.watches() {
                continue;
            }
            for environment in &current.axes().environments {
                watched.push(WatchedSource {
                    plugin: active.plugin.clone(),
                    environment: environment.to_string(),
                    namespace: namespace_in(current, environment, &active.plugin).to_string(),
                    known: source.tokens.get(&**environment).cloned().flatten(),
                });
            }
        }
        watched
    }

    /// Makes the source `plugin` due for a poll now (its watch saw a change).
    pub(crate) fn make_due(&mut self, plugin: &str) {
        if let Some(source) = self.active.get_mut(plugin).and_then(|active| active.source.as_mut()) {
            source.next_poll = Some(Instant::now());
        }
    }

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
            match refresh_source(&active.plugin, source, current, false, &active.errors, &self.cache) {
                Ok(()) => source.succeeded(),
                Err(error) if first => match restore_from_cache(&active.plugin, source, current, &self.cache) {
                    Ok(saved) => {
                        tracing::warn!(plugin = %active.plugin.name(), %error, "source failed at start-up; serving its cached layer (saved {saved}), marked stale, retrying with backoff");
                        source.failed(&error, true);
                        if let Some(stale) = &mut source.stale {
                            stale.cached_at_ms = Some(saved);
                        }
                    }
                    Err(why) => {
                        tracing::debug!(plugin = %active.plugin.name(), "no usable cached layer: {why}");
                        outcome.rejecting.push(error);
                    }
                },
                Err(error) => {
                    source.failed(&error, false);
                    match active.plugin.manifest().on_error {
                        OnError::Keep => outcome.kept.push(error),
                        OnError::Reject => outcome.rejecting.push(error),
                    }
                }
            }
            source.schedule(now);
        }
        outcome
    }
}

/// A source's first output, for every environment of `current`, and its poll interval.
pub(super) fn first_source_load(active: &mut Active, current: &Snapshot, cache: &SourceCache) -> Result<(), Error> {
    let Some(source) = &mut active.source else { return Ok(()) };
    refresh_source(&active.plugin, source, current, true, &active.errors, cache)?;
    source.schedule(Instant::now());
    Ok(())
}

/// Every environment's cached layer, when each has one younger than the manifest's `max_stale`:
/// the source then starts from them. Returns when the oldest was saved (ms since the epoch).
fn restore_from_cache(plugin: &LoadedPlugin, source: &mut SourceState, current: &Snapshot, cache: &SourceCache) -> Result<u64, String> {
    let mut layers = BTreeMap::new();
    let mut oldest = u64::MAX;
    for environment in &current.axes().environments {
        let cached = cache.load(plugin.name(), environment)?.ok_or_else(|| format!("no cached layer for {environment}"))?;
        let age = SystemTime::now().duration_since(cached.saved_at).unwrap_or_default();
        if let Some(max_stale) = plugin.manifest().max_stale_duration() {
            if age > max_stale {
                return Err(format!("the cached layer for {environment} is {} s old, past max_stale ({} s)", age.as_secs(), max_stale.as_secs()));
            }
        }
        oldest = oldest.min(cached.saved_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64));
        layers.insert(environment.to_string(), Arc::new(source_layer(plugin, environment, cached.data, Vec::new(), &[])));
    }
    source.layers = layers;
    source.tokens.clear();
    Ok(oldest)
}

/// The layer a source's output makes in `environment`. `origins` (from a 0.2.0 source's
/// `provenance`) name where some keys came from; `read_through_sql` is what its `load` read
/// through SQL as the host saw it (none for a cached layer, whose load is not this process's).
/// Keys without an origin are credited to the SQL it read, or else to the plugin.
fn source_layer(plugin: &LoadedPlugin, environment: &str, data: serde_json::Map<String, Value>, origins: Vec<(String, String)>, read_through_sql: &[String]) -> Layer {
    // Within the source rank layers go by order, then name: priority, then plugin name.
    let mut layer = Layer::new(format!("plugins/{}/{environment}", plugin.name()), Rank::Source, Scope::environment(environment), LayerSource::Plugin(plugin.name().to_owned()), data)
        .with_order(i64::from(plugin.manifest().priority));
    // A source that read SQL names what it read (`plugin:postgres-source (sql settings-db:
    // public.settings)`); the host saw the connection and PostgreSQL named the table.
    let location = match read_through_sql.is_empty() {
        true => Location::Layer,
        false => Location::Pointer(format!("plugin:{} (sql {})", plugin.name(), read_through_sql.join("; ")).into()),
    };
    layer.locations.values_mut().for_each(|slot| *slot = location.clone());
    for (path, origin) in origins {
        // An origin for a key the layer does not hold is dropped.
        if let Some(location) = layer.locations.get_mut(path.as_str()) {
            *location = Location::Origin(origin.into());
        }
    }
    if plugin.manifest().secret_output {
        // A secrets store's source: every value it yields is redacted at every exit.
        let leaves: Vec<Box<str>> = layer.locations.keys().filter(|path| layer.value_at(path).is_some_and(|value| !value.is_object())).map(Box::from).collect();
        layer.secrets.extend(leaves);
    }
    layer
}

/// Asks one source for each environment's output; a change token equal to the last one skips
/// `load` unless `force`. All environments succeed or the source's layers stay as they were.
fn refresh_source(plugin: &LoadedPlugin, source: &mut SourceState, current: &Snapshot, force: bool, errors: &EnvironmentErrors, cache: &SourceCache) -> Result<(), PluginError> {
    let mut fresh = Vec::new();
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
            let output = plugin.load_source_with_origins(environment, namespace)?;
            let Value::Object(data) = output.layer else { unreachable!("load_source returns objects") };
            fresh.push((environment.to_string(), data.clone()));
            layers.insert(environment.to_string(), Arc::new(source_layer(plugin, environment, data, output.origins, &output.read_through_sql)));
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
    for (environment, data) in &fresh {
        cache.save(plugin.name(), environment, data);
    }
    Ok(())
}
