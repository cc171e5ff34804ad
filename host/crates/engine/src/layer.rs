//! Layers: one source's configuration tree, where it applies, how strongly, and where each value came from.

use std::fmt;
use std::sync::{Arc, OnceLock};

use rustc_hash::FxHashSet;
use serde_json::{Map, Value};

use crate::locations::Locations;
use crate::path;

/// Precedence classes, lowest first. Within a class, layers are ordered by [`Layer::order`], then name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rank {
    /// Schema defaults and plugin templates.
    Defaults,
    /// Remote and plugin sources.
    Source,
    /// `global.*`
    GlobalFile,
    /// `environments/<env>.*`
    EnvironmentFile,
    /// `services/<service>.*`
    ServiceFile,
    /// `users/<user>.*`
    UserFile,
    /// `POTTER_*` environment variables.
    EnvVars,
    /// Runtime overrides (CLI `set`, API writes, rollbacks).
    Overrides,
}

impl Rank {
    /// Human name used by `layers` and `explain`.
    pub fn label(self) -> &'static str {
        match self {
            Rank::Defaults => "defaults",
            Rank::Source => "source",
            Rank::GlobalFile => "global file",
            Rank::EnvironmentFile => "environment file",
            Rank::ServiceFile => "service file",
            Rank::UserFile => "user file",
            Rank::EnvVars => "environment variables",
            Rank::Overrides => "runtime overrides",
        }
    }
}

/// Which views a layer takes part in. `None` matches every value of that axis.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Scope {
    /// Only views of this environment.
    pub environment: Option<Arc<str>>,
    /// Only views of this service.
    pub service: Option<Arc<str>>,
    /// Only views of this user.
    pub user: Option<Arc<str>>,
}

impl Scope {
    /// A scope that matches every view.
    pub fn everywhere() -> Self {
        Self::default()
    }

    /// A scope limited to one environment.
    pub fn environment(env: &str) -> Self {
        Self { environment: Some(env.into()), ..Self::default() }
    }
}

/// Where a layer's data came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSource {
    /// A file of the config tree; the path is shown as given (relative to the root where possible).
    File(Arc<str>),
    /// Process environment variables with this prefix.
    EnvVars { prefix: String },
    /// Defaults from a named provider (a schema file, a plugin template).
    Defaults(String),
    /// A source plugin.
    Plugin(String),
    /// Runtime overrides of one environment.
    Overrides,
    /// The staged change of a running rollout (its id), on the views its step reaches.
    Rollout(u64),
}

impl fmt::Display for LayerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerSource::File(path) => f.write_str(path),
            LayerSource::EnvVars { prefix } => write!(f, "environment variables {prefix}*"),
            LayerSource::Defaults(name) => write!(f, "defaults from {name}"),
            LayerSource::Plugin(name) => write!(f, "plugin:{name}"),
            LayerSource::Overrides => f.write_str("runtime overrides"),
            LayerSource::Rollout(id) => write!(f, "rollout {id}"),
        }
    }
}

/// Where inside its layer's source one value was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// 1-based line and column of the value in a text file.
    Text { line: u32, column: u32 },
    /// The environment variable that set it.
    EnvVar(Box<str>),
    /// A JSON pointer into the provider (e.g. a schema's `#/properties/app/properties/debug`).
    Pointer(Box<str>),
    /// The history version that set a runtime override.
    Version(RecordedVersion),
    /// Where a source said the value came from, in the remote's own terms (e.g. an etcd key and
    /// its revision); shown after the source's name.
    Origin(Box<str>),
    /// Nothing finer than the layer itself is known.
    Layer,
}

/// The history version of a runtime override. A change is built and validated before its record
/// is durable, and only the store hands out its version; the layer holds this handle, and the
/// commit fills it in before the snapshot goes live, so a reader only ever sees it known.
/// Clones share the one value.
#[derive(Clone, Default)]
pub struct RecordedVersion(Arc<OnceLock<u64>>);

impl RecordedVersion {
    /// A version already recorded.
    pub fn known(version: u64) -> Self {
        let cell = OnceLock::new();
        let _ = cell.set(version);
        Self(Arc::new(cell))
    }

    /// The version of a change not recorded yet (see [`RecordedVersion::settle`]).
    pub fn pending() -> Self {
        Self::default()
    }

    /// The version, once recorded.
    pub fn get(&self) -> Option<u64> {
        self.0.get().copied()
    }

    /// Records the version the change was given (the first one given stays).
    pub fn settle(&self, version: u64) {
        let _ = self.0.set(version);
    }
}

impl PartialEq for RecordedVersion {
    /// The same handle, or the same recorded version (two changes not yet recorded differ).
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || (self.get().is_some() && self.get() == other.get())
    }
}

impl Eq for RecordedVersion {}

impl fmt::Debug for RecordedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.get() {
            Some(version) => write!(f, "version {version}"),
            None => f.write_str("not recorded yet"),
        }
    }
}

impl fmt::Display for RecordedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Where one value came from, rendered once for every reader: the CLI's `explain`, the API's
/// provenance fields and the errors that name a value's place.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Provenance {
    /// The layer's name (`environments/production`, `env`, `overrides/production`...).
    pub layer: String,
    pub rank: Rank,
    /// Where, as one line: `environments/production.json:3:5`, `POTTER_API__TIMEOUT`,
    /// `schema default (#/properties/...)`, `runtime overrides (version 7)`.
    pub source: String,
    /// The tree file, when the value was written in one.
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

impl Provenance {
    /// The provenance of a value written at `location` of `layer` (None: the layer as a whole).
    pub fn of(layer: &Layer, location: Option<&Location>) -> Self {
        let (source, line, column) = match location {
            Some(Location::Text { line, column }) => (format!("{}:{line}:{column}", layer.source), Some(*line), Some(*column)),
            Some(Location::EnvVar(name)) => (name.to_string(), None, None),
            Some(Location::Pointer(pointer)) if matches!(layer.source, LayerSource::Defaults(_)) => (format!("schema default ({pointer})"), None, None),
            Some(Location::Pointer(pointer)) => (pointer.to_string(), None, None),
            Some(Location::Version(version)) => (format!("{} ({version})", layer.source), None, None),
            Some(Location::Origin(origin)) => match &layer.source {
                LayerSource::Plugin(name) => (format!("{name}: {origin}"), None, None),
                other => (format!("{other}: {origin}"), None, None),
            },
            Some(Location::Layer) | None => (layer.source.to_string(), None, None),
        };
        let file = match &layer.source {
            LayerSource::File(file) => Some(file.to_string()),
            _ => None,
        };
        Self { layer: layer.name.clone(), rank: layer.rank, source, file, line, column }
    }
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// One source's configuration tree with its provenance.
#[derive(Clone)]
pub struct Layer {
    /// Stable, unique name (`global`, `environments/production`, `env`, `plugin:props`...).
    pub name: String,
    /// Precedence class.
    pub rank: Rank,
    /// Order within the rank (plugin priority); higher wins.
    pub order: i64,
    /// Views the layer applies to.
    pub scope: Scope,
    /// Where the data came from.
    pub source: LayerSource,
    /// The tree itself: always a JSON object. `null` values mean "delete this key".
    pub data: Value,
    /// Location of every node (objects included), keyed by dotted path.
    pub locations: Locations,
    /// Paths whose values were secrets (decrypted by the host): redacted at every exit.
    pub secrets: FxHashSet<Box<str>>,
}

impl fmt::Debug for Layer {
    // The data may hold ciphertexts or plaintext secrets: Debug shows the shape, never the values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layer")
            .field("name", &self.name)
            .field("rank", &self.rank)
            .field("order", &self.order)
            .field("scope", &self.scope)
            .field("source", &self.source)
            .field("keys", &self.locations.len())
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Layer {
    /// Builds a layer whose every node has the same coarse location.
    pub fn new(name: impl Into<String>, rank: Rank, scope: Scope, source: LayerSource, data: Map<String, Value>) -> Self {
        let data = Value::Object(data);
        let mut locations = Locations::default();
        collect_paths(&data, "", &mut |path| {
            locations.insert(path, Location::Layer);
        });
        Self { name: name.into(), rank, order: 0, scope, source, data, locations, secrets: FxHashSet::default() }
    }

    /// Builds a layer with per-node locations (from a parser or an env-var mapping).
    pub fn with_locations(
        name: impl Into<String>,
        rank: Rank,
        scope: Scope,
        source: LayerSource,
        data: Map<String, Value>,
        locations: Locations,
    ) -> Self {
        Self { name: name.into(), rank, order: 0, scope, source, data: Value::Object(data), locations, secrets: FxHashSet::default() }
    }

    /// Sets the order within the rank.
    pub fn with_order(mut self, order: i64) -> Self {
        self.order = order;
        self
    }

    /// The layer's own value at a dotted path, if it writes one (a `null` is returned as `Some(Null)`).
    pub fn value_at(&self, dotted: &str) -> Option<&Value> {
        let mut node = &self.data;
        for segment in dotted.split('.') {
            node = node.as_object()?.get(segment)?;
        }
        Some(node)
    }

    /// True when the layer applies to the given view coordinates.
    pub fn applies_to(&self, environment: &str, service: Option<&str>, user: Option<&str>) -> bool {
        fn matches(want: &Option<Arc<str>>, have: Option<&str>) -> bool {
            match want {
                None => true,
                Some(want) => have == Some(&**want),
            }
        }
        matches(&self.scope.environment, Some(environment))
            && matches(&self.scope.service, service)
            && matches(&self.scope.user, user)
    }

    /// True when two layers would contribute the same thing to every view (same place, same data).
    pub fn same_content(&self, other: &Layer) -> bool {
        std::ptr::eq(self, other)
            || (self.name == other.name
                && self.rank == other.rank
                && self.order == other.order
                && self.scope == other.scope
                && self.data == other.data
                && self.locations == other.locations
                && self.secrets == other.secrets)
    }

    /// The precedence sort key (lowest first).
    pub fn precedence(&self) -> (Rank, i64, &str) {
        (self.rank, self.order, &self.name)
    }
}

/// Calls `visit` with the dotted path of every node below `value` (not `value` itself).
pub fn collect_paths(value: &Value, prefix: &str, visit: &mut dyn FnMut(&str)) {
    if let Value::Object(map) = value {
        for (key, child) in map {
            let child_path = path::join(prefix, key);
            visit(&child_path);
            collect_paths(child, &child_path, visit);
        }
    }
}
