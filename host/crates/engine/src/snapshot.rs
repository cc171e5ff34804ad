//! Snapshots: an immutable set of layers and the views built from them, swapped whole by the host.

use std::fmt;
use std::sync::{Arc, OnceLock};

use rustc_hash::FxHashMap;

use serde_json::Value;

use crate::diff::KeyChange;
use crate::is_under;
use crate::layer::Layer;
use crate::merge::{merged_at, merged_kind_at, MergedKind};
use crate::view::{View, ViewKey};

/// A view that does not exist in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownView {
    #[error("unknown environment `{name}` (known: {known})")]
    Environment { name: String, known: String },
    #[error("unknown service `{name}` (known: {known})")]
    Service { name: String, known: String },
    #[error("unknown user `{name}` (known: {known})")]
    User { name: String, known: String },
}

/// The names that make up a tree's views.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Axes {
    pub environments: Vec<Arc<str>>,
    pub services: Vec<Arc<str>>,
    pub users: Vec<Arc<str>>,
}

impl Axes {
    /// Takes each name `earlier` also has from `earlier`: a view key kept from an earlier snapshot
    /// (a [`Snapshot::key_at`] held by a reader) then matches this one's by pointer, not by text.
    pub fn share_names_with(&mut self, earlier: &Axes) {
        fn share(names: &mut [Arc<str>], earlier: &[Arc<str>]) {
            let known: FxHashMap<&str, &Arc<str>> = earlier.iter().map(|name| (&**name, name)).collect();
            for name in names {
                if let Some(&kept) = known.get(&**name) {
                    *name = kept.clone();
                }
            }
        }
        share(&mut self.environments, &earlier.environments);
        share(&mut self.services, &earlier.services);
        share(&mut self.users, &earlier.users);
    }
}

/// One view read without merging it when it is not merged yet.
enum ViewReader<'a> {
    Absent,
    Merged(&'a View),
    Layers(Vec<Arc<Layer>>),
}

impl ViewReader<'_> {
    fn value_at(&self, dotted: &str) -> Option<Value> {
        match self {
            ViewReader::Absent => None,
            ViewReader::Merged(view) => view.value_at(dotted).cloned(),
            ViewReader::Layers(layers) => merged_at(layers.iter().map(|layer| &layer.data), &segments(dotted)),
        }
    }

    fn kind_at(&self, dotted: &str) -> MergedKind {
        match self {
            ViewReader::Absent => MergedKind::Absent,
            ViewReader::Merged(view) => match view.value_at(dotted) {
                None => MergedKind::Absent,
                Some(Value::Object(map)) if map.is_empty() => MergedKind::EmptyObject,
                Some(Value::Object(_)) => MergedKind::Object,
                Some(_) => MergedKind::Value,
            },
            ViewReader::Layers(layers) => merged_kind_at(&layers.iter().map(|layer| &layer.data).collect::<Vec<_>>(), &segments(dotted)),
        }
    }
}

/// True when a layer's tree can change the merged value at `dotted`: it holds a value there, or
/// something other than an object (which replaces or, as `null`, deletes) at a key on the way.
fn reaches(data: &Value, dotted: &str) -> bool {
    let mut node = data;
    for segment in segments(dotted) {
        match node {
            Value::Object(map) => match map.get(segment) {
                Some(child) => node = child,
                None => return false,
            },
            _ => return true,
        }
    }
    true
}

fn segments(dotted: &str) -> Vec<&str> {
    if dotted.is_empty() {
        Vec::new()
    } else {
        dotted.split('.').collect()
    }
}

/// The (service, user) a layer's scope names.
type ScopeNames = (Option<Arc<str>>, Option<Arc<str>>);

/// Positions of layers by the (service, user) their scope names.
type LayersByScope = FxHashMap<ScopeNames, Vec<usize>>;

/// An immutable configuration state. Views are merged on first use and then shared; a view with
/// a service or a user is built on the view without it ([`View::on_base`]) and shares what its own
/// layers leave alone.
pub struct Snapshot {
    version: u64,
    layers: Vec<Arc<Layer>>,
    axes: Axes,
    /// View keys by slot; `cells[slot]` holds that view once merged.
    keys: Vec<ViewKey>,
    cells: Vec<OnceLock<Arc<View>>>,
    slots: FxHashMap<ViewKey, usize>,
    /// Positions in `layers` by the (service, user) their scope names: a view's layers are found
    /// among the few that can apply to it, not by testing every layer (500 service files make
    /// 500 layers, and a change's record looks up the layers of each of 1,500 views).
    by_scope: OnceLock<LayersByScope>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot").field("version", &self.version).field("layers", &self.layers).field("axes", &self.axes).finish()
    }
}

impl Snapshot {
    /// A snapshot over `layers` with every (environment × service? × user?) view.
    pub fn new(version: u64, layers: Vec<Arc<Layer>>, mut axes: Axes) -> Self {
        axes.environments.sort();
        axes.services.sort();
        axes.users.sort();
        let mut keys = Vec::new();
        let services: Vec<Option<&Arc<str>>> = std::iter::once(None).chain(axes.services.iter().map(Some)).collect();
        let users: Vec<Option<&Arc<str>>> = std::iter::once(None).chain(axes.users.iter().map(Some)).collect();
        for environment in &axes.environments {
            for service in &services {
                for user in &users {
                    let key = ViewKey { environment: environment.clone(), service: service.cloned(), user: user.cloned() };
                    keys.push(key);
                }
            }
        }
        let slots = keys.iter().cloned().enumerate().map(|(slot, key)| (key, slot)).collect();
        let cells = keys.iter().map(|_| OnceLock::new()).collect();
        Self { version, layers, axes, keys, cells, slots, by_scope: OnceLock::new() }
    }

    /// The same snapshot stamped with the version its change was recorded under.
    pub fn with_version(mut self, version: u64) -> Self {
        self.version = version;
        self
    }

    /// The history version this snapshot reflects (0 before any recorded change).
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn layers(&self) -> &[Arc<Layer>] {
        &self.layers
    }

    pub fn axes(&self) -> &Axes {
        &self.axes
    }

    /// The view for `key`, merged now if nobody asked for it before.
    pub fn view(&self, key: &ViewKey) -> Result<&Arc<View>, UnknownView> {
        match self.slots.get(key) {
            Some(&slot) => Ok(self.view_at(slot)),
            None => Err(self.explain_unknown(key)),
        }
    }

    /// Whether the view `key` exists, without merging it.
    pub fn check_view(&self, key: &ViewKey) -> Result<(), UnknownView> {
        match self.slots.contains_key(key) {
            true => Ok(()),
            false => Err(self.explain_unknown(key)),
        }
    }

    fn view_at(&self, slot: usize) -> &Arc<View> {
        self.cells[slot].get_or_init(|| {
            let key = self.keys[slot].clone();
            let layers = self.layers_applying_to(&key);
            match Self::base_key(&key).and_then(|base| self.slots.get(&base)) {
                Some(&base) => Arc::new(View::on_base(key, layers, self.view_at(base).clone())),
                None => Arc::new(View::merge(key, layers)),
            }
        })
    }

    /// The view a view is built on: the service's view for a service × user view, the
    /// environment's for a service's or a user's. Its layers are among the view's (a layer applies
    /// to it only if it names no more than that view does).
    pub fn base_key(key: &ViewKey) -> Option<ViewKey> {
        match (&key.service, &key.user) {
            (None, None) => None,
            (Some(_), Some(_)) => Some(ViewKey { user: None, ..key.clone() }),
            _ => Some(ViewKey { environment: key.environment.clone(), service: None, user: None }),
        }
    }

    /// How many views have been merged so far (views are merged on first use; a load that merged
    /// views nobody reads would pay for them in time and memory).
    pub fn merged_view_count(&self) -> usize {
        self.cells.iter().filter(|cell| cell.get().is_some()).count()
    }

    /// The slot of a view: a hint for [`Snapshot::view_hinted`] that stays right while the axes do.
    pub fn slot_of(&self, key: &ViewKey) -> Option<usize> {
        self.slots.get(key).copied()
    }

    /// The key of the view at `slot`. A reader that keeps this key rather than one of its own is
    /// matched by [`Snapshot::view_hinted`] with pointer comparisons (`Arc<str>` equality compares
    /// pointers first), not three string comparisons.
    pub fn key_at(&self, slot: usize) -> Option<&ViewKey> {
        self.keys.get(slot)
    }

    /// The view at `slot` if that slot holds `key` (a stale hint from an older snapshot just misses).
    pub fn view_hinted(&self, slot: usize, key: &ViewKey) -> Option<&Arc<View>> {
        self.keys.get(slot)?.same_as(key).then(|| self.view_at(slot))
    }

    /// Each environment alone and with each service: the views without a user, sorted.
    pub fn base_view_keys(&self) -> Vec<ViewKey> {
        let mut keys: Vec<ViewKey> = self.keys.iter().filter(|key| key.user.is_none()).cloned().collect();
        keys.sort();
        keys
    }

    /// The views that can differ from one another, sorted: every base view, and every view with a
    /// user that a layer of that user's own applies to. A user view without such a layer merges
    /// exactly to its base view (the same layers), so validating the base view covers it.
    pub fn distinct_view_keys(&self) -> Vec<ViewKey> {
        let mut keys: Vec<ViewKey> = self.keys.iter().filter(|key| key.user.is_none() || self.has_user_layer(key)).cloned().collect();
        keys.sort();
        keys
    }

    /// True when a layer scoped to the key's user applies to the key's view.
    fn has_user_layer(&self, key: &ViewKey) -> bool {
        self.layers.iter().any(|layer| layer.scope.user.is_some() && layer.applies_to(&key.environment, key.service.as_deref(), key.user.as_deref()))
    }

    /// The layers that differ between two snapshots (added, removed or changed, matched by name).
    /// A view whose layers include none of them merges to the same value in both.
    pub fn changed_layers<'a>(&'a self, later: &'a Snapshot) -> Vec<&'a Layer> {
        let by_name = |snapshot: &'a Snapshot| -> FxHashMap<&'a str, &'a Layer> {
            snapshot.layers.iter().map(|layer| (layer.name.as_str(), &**layer)).collect()
        };
        let (old, new) = (by_name(self), by_name(later));
        let mut changed: Vec<&Layer> = new.iter().filter(|(name, layer)| !old.get(*name).is_some_and(|o| o.same_content(layer))).map(|(_, l)| *l).collect();
        changed.extend(old.iter().filter(|(name, _)| !new.contains_key(*name)).map(|(_, l)| *l));
        changed
    }

    /// The paths under which the views of `self` and `later` can differ, computed from the layers
    /// alone ([`crate::diff::changed_roots`] of each changed layer; a layer only one side has is
    /// compared with an empty one), with no path under another. None when a changed layer moved
    /// (another rank, order or scope) or a path would be ambiguous: then whole views must be compared.
    pub fn changed_paths(&self, later: &Snapshot) -> Option<Vec<String>> {
        let by_name = |snapshot: &Snapshot| -> FxHashMap<String, Arc<Layer>> { snapshot.layers.iter().map(|layer| (layer.name.clone(), layer.clone())).collect() };
        let (old, new) = (by_name(self), by_name(later));
        let empty = Value::Object(serde_json::Map::new());
        let mut roots = Vec::new();
        for name in old.keys().chain(new.keys().filter(|name| !old.contains_key(*name))) {
            let (before, after) = (old.get(name), new.get(name));
            if let (Some(before), Some(after)) = (before, after) {
                if before.same_content(after) {
                    continue;
                }
                if (before.rank, before.order, &before.scope) != (after.rank, after.order, &after.scope) {
                    return None;
                }
            }
            let (before, after) = (before.map_or(&empty, |layer| &layer.data), after.map_or(&empty, |layer| &layer.data));
            roots.extend(crate::diff::changed_roots(before, after)?);
        }
        roots.sort();
        roots.dedup();
        let mut minimal: Vec<String> = Vec::with_capacity(roots.len());
        for root in roots {
            // Sorted, so an ancestor comes before its descendants.
            if !minimal.iter().any(|kept| crate::path::is_under(&root, kept)) {
                minimal.push(root);
            }
        }
        Some(minimal)
    }

    /// The leaves of the view `key` that differ from `self` to `later`, looked for under `paths`
    /// ([`Snapshot::changed_paths`]) only: the list [`crate::diff()`] gives of the two whole views,
    /// without merging a view nobody merged yet (its values there come from its layers' nodes).
    pub fn diff_view_under(&self, later: &Snapshot, key: &ViewKey, paths: &[String]) -> Vec<KeyChange> {
        let (old, new) = (self.reader(key), later.reader(key));
        let mut changes: Vec<KeyChange> = paths.iter().flat_map(|path| crate::diff(path, old.value_at(path).as_ref(), new.value_at(path).as_ref())).collect();
        // An object whose keys all went (or that had none and gains some) is a leaf on one side,
        // which the whole diff names. Only the direct parent of a changed path can turn so: any
        // ancestor above it keeps that parent as a key.
        let mut parents: Vec<&str> = paths.iter().map(|path| path.rsplit_once('.').map_or("", |(parent, _)| parent)).collect();
        parents.sort_unstable();
        parents.dedup();
        let empty = || Some(Value::Object(serde_json::Map::new()));
        for parent in parents {
            match (old.kind_at(parent), new.kind_at(parent)) {
                (MergedKind::EmptyObject, MergedKind::Object) => changes.push(KeyChange { key: parent.to_owned(), old: empty(), new: None }),
                (MergedKind::Object, MergedKind::EmptyObject) => changes.push(KeyChange { key: parent.to_owned(), old: None, new: empty() }),
                _ => {}
            }
        }
        changes.sort_by(|a, b| a.key.cmp(&b.key));
        changes
    }

    /// True when `key`'s diff under `paths` from `self` to `later` ([`Snapshot::diff_view_under`])
    /// is exactly `base_diff`, the diff there of the view it is built on
    /// ([`Snapshot::base_key`]): on neither side does a layer of `key`'s own (one that does not
    /// apply to the base) hold a value at one of `paths` or a non-object on the way to one, so
    /// `key`'s values there are the base's; and every change of the base's diff is a value
    /// replaced (present on both sides), so no key appears or goes and no parent of a path turns
    /// empty or non-empty in `key` (where `key`'s own layers could keep it from turning, or make
    /// it turn). A change that a service view inherits is then diffed once for the environment,
    /// not once per service.
    pub fn shares_base_diff(&self, later: &Snapshot, key: &ViewKey, paths: &[String], base_diff: &[KeyChange]) -> bool {
        let on_both_sides = Self::base_key(key).is_some_and(|base| self.slots.contains_key(&base) && later.slots.contains_key(&base));
        on_both_sides
            && !self.own_layers_touch(key, paths)
            && !later.own_layers_touch(key, paths)
            && base_diff.iter().all(|change| change.old.is_some() && change.new.is_some())
    }

    /// True when a layer that applies to `key` but not to its base can change the merged value
    /// at one of `paths`, or marks a secret at, above or below one (the history seals such a value
    /// in `key` and not in the base).
    fn own_layers_touch(&self, key: &ViewKey, paths: &[String]) -> bool {
        let own_scopes: &[ScopeNames] = match (&key.service, &key.user) {
            (Some(service), None) => &[(Some(service.clone()), None)],
            (None, Some(user)) => &[(None, Some(user.clone()))],
            (Some(service), Some(user)) => &[(None, Some(user.clone())), (Some(service.clone()), Some(user.clone()))],
            (None, None) => return true,
        };
        let by_scope = self.by_scope();
        let mut own_layers = own_scopes.iter().filter_map(|scope| by_scope.get(scope)).flatten().map(|&at| &self.layers[at]);
        own_layers.any(|layer| {
            layer.applies_to(&key.environment, key.service.as_deref(), key.user.as_deref())
                && paths.iter().any(|path| reaches(&layer.data, path) || layer.secrets.iter().any(|secret| is_under(secret, path) || is_under(path, secret)))
        })
    }

    /// Reads of one view: from the view when it is merged already, else from its layers.
    fn reader(&self, key: &ViewKey) -> ViewReader<'_> {
        match self.slots.get(key) {
            None => ViewReader::Absent,
            Some(&slot) => match self.cells[slot].get() {
                Some(view) => ViewReader::Merged(view),
                None => ViewReader::Layers(self.layers_applying_to(key)),
            },
        }
    }

    /// The layers of the view `key`, lowest precedence first, without merging it.
    pub fn layers_of(&self, key: &ViewKey) -> Option<Vec<Arc<Layer>>> {
        self.slots.contains_key(key).then(|| self.layers_applying_to(key))
    }

    /// The scope index, built on first use.
    fn by_scope(&self) -> &LayersByScope {
        self.by_scope.get_or_init(|| {
            let mut by_scope = LayersByScope::default();
            for (at, layer) in self.layers.iter().enumerate() {
                by_scope.entry((layer.scope.service.clone(), layer.scope.user.clone())).or_default().push(at);
            }
            by_scope
        })
    }

    /// [`View::layers_for`] of this snapshot's layers, picked through the scope index.
    fn layers_applying_to(&self, key: &ViewKey) -> Vec<Arc<Layer>> {
        let by_scope = self.by_scope();
        let mut scopes = vec![(None, None)];
        if key.service.is_some() {
            scopes.push((key.service.clone(), None));
        }
        if key.user.is_some() {
            scopes.push((None, key.user.clone()));
        }
        if key.service.is_some() && key.user.is_some() {
            scopes.push((key.service.clone(), key.user.clone()));
        }
        let mut picked: Vec<usize> = scopes.iter().filter_map(|scope| by_scope.get(scope)).flatten().copied().collect();
        // In snapshot order, as `View::layers_for` filters them, before the same stable sort.
        picked.sort_unstable();
        View::layers_for(key, picked.into_iter().map(|at| &self.layers[at]))
    }

    /// Every view key, users included, sorted.
    pub fn all_view_keys(&self) -> Vec<ViewKey> {
        let mut keys: Vec<ViewKey> = self.keys.clone();
        keys.sort();
        keys
    }

    fn explain_unknown(&self, key: &ViewKey) -> UnknownView {
        let list = |names: &[Arc<str>]| if names.is_empty() { "none".to_owned() } else { names.join(", ") };
        if !self.axes.environments.contains(&key.environment) {
            return UnknownView::Environment { name: key.environment.to_string(), known: list(&self.axes.environments) };
        }
        if let Some(service) = &key.service {
            if !self.axes.services.contains(service) {
                return UnknownView::Service { name: service.to_string(), known: list(&self.axes.services) };
            }
        }
        let user = key.user.as_deref().unwrap_or_default();
        UnknownView::User { name: user.to_owned(), known: list(&self.axes.users) }
    }
}
