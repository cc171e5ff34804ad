//! The runtime overrides (CLI `set`, API writes, rollbacks): one layer per environment, above
//! every other layer, each leaf located at the history version that set it.

use std::collections::BTreeMap;
use std::sync::Arc;

use potter_engine::merge::set_path;
use potter_engine::{path, Layer, LayerSource, Location, Rank, RecordedVersion, Scope};
use serde_json::{Map, Value};

use super::{BuildContext, Source};
use crate::error::Error;

/// Runtime overrides per environment (made durable by the history store): each environment's
/// tree, and the version that set each of its leaves (flattened dotted keys, as the history
/// stores them). A change not recorded yet holds a pending version that its commit fills in.
#[derive(Clone, Default)]
pub struct Overrides {
    trees: BTreeMap<String, Map<String, Value>>,
    versions: BTreeMap<String, BTreeMap<String, RecordedVersion>>,
    /// The staged changes of running rollouts (kept beside the overrides: they change with them,
    /// through the same commit, and are layered over them).
    rollouts: Arc<[super::rollout::StagedRollout]>,
}

impl Overrides {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// One environment's overrides as a tree (ciphertexts as written).
    pub fn tree(&self, environment: &str) -> Option<&Map<String, Value>> {
        self.trees.get(environment)
    }

    /// The running rollouts' staged changes.
    pub fn rollouts(&self) -> &[super::rollout::StagedRollout] {
        &self.rollouts
    }

    /// These overrides with the running rollouts replaced by `rollouts`.
    pub(crate) fn with_rollouts(&self, rollouts: Vec<super::rollout::StagedRollout>) -> Overrides {
        Overrides { rollouts: rollouts.into(), ..self.clone() }
    }

    /// The environments that have overrides.
    pub fn environments(&self) -> impl Iterator<Item = &String> {
        self.trees.keys()
    }

    /// The version that set one leaf of an environment's overrides (pending until recorded).
    pub fn version_of(&self, environment: &str, key: &str) -> Option<&RecordedVersion> {
        self.versions.get(environment)?.get(key)
    }

    /// The override of `environment` that decides `key`: `key` itself (a value, or a subtree of
    /// overrides) or the ancestor set as one value above it; None when no override reaches it.
    pub fn deciding(&self, environment: &str, key: &str) -> Option<String> {
        let mut at = self.tree(environment)?;
        let segments: Vec<&str> = key.split('.').filter(|segment| !segment.is_empty()).collect();
        for (depth, segment) in segments.iter().enumerate() {
            match at.get(*segment)? {
                Value::Object(child) => at = child,
                _ => return Some(segments[..=depth].join(".")),
            }
        }
        (!segments.is_empty()).then(|| segments.join("."))
    }

    /// Adds an environment's overrides as the history holds them: its flattened layer (dotted key
    /// -> value) and the version that set each key.
    pub(crate) fn insert_recorded(&mut self, environment: String, leaves: Vec<(String, Value)>, set_at: &BTreeMap<String, u64>) {
        if leaves.is_empty() {
            return;
        }
        let mut tree = Map::new();
        let mut versions = BTreeMap::new();
        for (key, value) in leaves {
            let segments: Vec<&str> = key.split('.').collect();
            set_path(&mut tree, &segments, value);
            let version = set_at.get(&key).copied().unwrap_or(0);
            versions.insert(key, RecordedVersion::known(version));
        }
        self.trees.insert(environment.clone(), tree);
        self.versions.insert(environment, versions);
    }

    /// These overrides with `edits` (key segments, new value or None to remove) applied to one
    /// environment. Each leaf whose value the edits change is set at `version` (the change's,
    /// pending until recorded); a leaf they leave as it was keeps its own.
    pub(crate) fn edited(&self, environment: &str, edits: &[(Vec<&str>, Option<Value>)], version: &RecordedVersion) -> Overrides {
        let mut edited = self.clone();
        let tree = edited.trees.entry(environment.to_owned()).or_default();
        let versions = edited.versions.entry(environment.to_owned()).or_default();
        for (segments, value) in edits {
            let dotted = segments.join(".");
            let before = leaves_at(tree, segments, &dotted);
            match value {
                Some(value) => set_path(tree, segments, value.clone()),
                None => remove_path(tree, segments),
            }
            let after = leaves_at(tree, segments, &dotted);
            // A leaf above the key (a scalar the edit replaced by an object) is gone.
            for end in 1..segments.len() {
                versions.remove(&segments[..end].join("."));
            }
            for key in before.keys().filter(|key| !after.contains_key(*key)) {
                versions.remove(key);
            }
            for (key, value) in after {
                if before.get(&key) != Some(&value) || !versions.contains_key(&key) {
                    versions.insert(key, version.clone());
                }
            }
        }
        if tree.is_empty() {
            edited.trees.remove(environment);
            edited.versions.remove(environment);
        }
        edited
    }
}

/// The leaves of a tree as `potter_engine::diff` sees them: scalars, arrays, empty objects and
/// nulls are leaves; non-empty objects are walked.
pub fn flatten(tree: &Map<String, Value>) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (key, value) in tree {
        walk_leaves(key, value, &mut out);
    }
    out
}

fn walk_leaves(at: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                walk_leaves(&path::join(at, key), child, out);
            }
        }
        other => {
            out.insert(at.to_owned(), other.clone());
        }
    }
}

/// The leaves at and below `segments` (`dotted` is their join).
fn leaves_at(tree: &Map<String, Value>, segments: &[&str], dotted: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let Some((last, parents)) = segments.split_last() else { return out };
    let mut node = tree;
    for segment in parents {
        match node.get(*segment) {
            Some(Value::Object(child)) => node = child,
            _ => return out,
        }
    }
    if let Some(value) = node.get(*last) {
        walk_leaves(dotted, value, &mut out);
    }
    out
}

/// Removes a dotted key from a tree, and the objects it leaves empty.
pub(crate) fn remove_path(tree: &mut Map<String, Value>, segments: &[&str]) {
    fn remove(node: &mut Map<String, Value>, segments: &[&str]) {
        match segments {
            [last] => {
                node.shift_remove(*last);
            }
            [first, rest @ ..] => {
                if let Some(Value::Object(child)) = node.get_mut(*first) {
                    remove(child, rest);
                    if child.is_empty() {
                        node.shift_remove(*first);
                    }
                }
            }
            [] => {}
        }
    }
    remove(tree, segments);
}

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
        let served = self.overrides.trees.iter().filter(|(environment, _)| context.options.serves(environment));
        Ok(served.map(|(environment, tree)| Arc::new(override_layer(environment, tree, self.overrides.versions.get(environment)))).collect())
    }
}

/// The layer of one environment's overrides: each leaf at the version that set it (one recorded
/// before the store kept versions, and every object, at the layer as a whole).
fn override_layer(environment: &str, tree: &Map<String, Value>, versions: Option<&BTreeMap<String, RecordedVersion>>) -> Layer {
    let mut layer = Layer::new(format!("overrides/{environment}"), Rank::Overrides, Scope::environment(environment), LayerSource::Overrides, tree.clone());
    for (path, location) in layer.locations.iter_mut() {
        *location = match versions.and_then(|versions| versions.get(path)) {
            Some(version) if version.get() != Some(0) => Location::Version(version.clone()),
            _ => Location::Layer,
        };
    }
    layer
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn edit<'a>(key: &'a str, value: Option<Value>) -> (Vec<&'a str>, Option<Value>) {
        (key.split('.').collect(), value)
    }

    fn recorded(leaves: &[(&str, Value, u64)]) -> Overrides {
        let mut overrides = Overrides::new();
        let set_at = leaves.iter().map(|(key, _, version)| (key.to_string(), *version)).collect();
        overrides.insert_recorded("prod".into(), leaves.iter().map(|(key, value, _)| (key.to_string(), value.clone())).collect(), &set_at);
        overrides
    }

    fn versions(overrides: &Overrides) -> Vec<(String, Option<u64>)> {
        overrides.versions.get("prod").into_iter().flatten().map(|(key, version)| (key.clone(), version.get())).collect()
    }

    #[test]
    fn an_edit_gives_its_version_only_to_the_leaves_it_changes() {
        let before = recorded(&[("db.pool", json!(10), 3), ("db.host", json!("a"), 4), ("flag", json!(true), 5)]);
        let change = RecordedVersion::pending();
        let after = before.edited("prod", &[edit("db", Some(json!({"pool": 10, "host": "b", "port": 1}))), edit("flag", None)], &change);
        change.settle(9);
        assert_eq!(versions(&after), [("db.host".into(), Some(9)), ("db.pool".into(), Some(3)), ("db.port".into(), Some(9))]);
        assert_eq!(after.tree("prod").unwrap(), &json!({"db": {"pool": 10, "host": "b", "port": 1}}).as_object().unwrap().clone());
        assert_eq!(versions(&before).len(), 3, "the edited copy leaves the original alone");
    }

    #[test]
    fn replacing_a_scalar_by_an_object_or_removing_the_last_key_drops_the_old_versions() {
        let before = recorded(&[("db", json!(1), 2)]);
        let change = RecordedVersion::known(7);
        let after = before.edited("prod", &[edit("db.pool", Some(json!(5)))], &change);
        assert_eq!(versions(&after), [("db.pool".into(), Some(7))]);
        let emptied = after.edited("prod", &[edit("db.pool", None)], &RecordedVersion::known(8));
        assert!(emptied.tree("prod").is_none() && emptied.versions.is_empty());
    }

    #[test]
    fn the_layer_locates_each_leaf_at_its_version_and_objects_at_the_layer() {
        let overrides = recorded(&[("db.pool", json!(10), 3), ("old", json!(1), 0)]);
        let layer = override_layer("prod", overrides.tree("prod").unwrap(), overrides.versions.get("prod"));
        assert_eq!(layer.locations.get("db.pool"), Some(&Location::Version(RecordedVersion::known(3))));
        assert_eq!(layer.locations.get("db"), Some(&Location::Layer));
        assert_eq!(layer.locations.get("old"), Some(&Location::Layer), "recorded before versions were kept");
        let provenance = potter_engine::Provenance::of(&layer, layer.locations.get("db.pool"));
        assert_eq!(provenance.source, "runtime overrides (version 3)");
    }
}
