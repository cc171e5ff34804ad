//! Views: the effective configuration of (environment, service?, user?) — a pure function of the layers.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use rustc_hash::FxHashSet;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::diagnostic::SourcePosition;
use crate::layer::{Layer, LayerSource, Location};
use crate::merge::{merge_into, merged_at};
use crate::locations::PathMap;

/// The coordinates of a view.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ViewKey {
    pub environment: Arc<str>,
    pub service: Option<Arc<str>>,
    pub user: Option<Arc<str>>,
}

impl ViewKey {
    /// The view of an environment as a whole.
    pub fn environment(environment: &str) -> Self {
        Self { environment: environment.into(), service: None, user: None }
    }

    /// Equality that compares the names' pointers before their text: a key taken from a snapshot
    /// ([`crate::Snapshot::key_at`]) matches that snapshot's own without reading a string.
    pub fn same_as(&self, other: &ViewKey) -> bool {
        fn same(a: &Arc<str>, b: &Arc<str>) -> bool {
            Arc::ptr_eq(a, b) || a == b
        }
        fn same_option(a: &Option<Arc<str>>, b: &Option<Arc<str>>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => same(a, b),
                (None, None) => true,
                _ => false,
            }
        }
        same(&self.environment, &other.environment) && same_option(&self.service, &other.service) && same_option(&self.user, &other.user)
    }

    /// A view from optional parts.
    pub fn new(environment: &str, service: Option<&str>, user: Option<&str>) -> Self {
        Self { environment: environment.into(), service: service.map(Into::into), user: user.map(Into::into) }
    }
}

impl fmt::Display for ViewKey {
    /// `production`, `production/api_service`, `production/api_service@alice`, `production@alice`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.environment)?;
        if let Some(service) = &self.service {
            write!(f, "/{service}")?;
        }
        if let Some(user) = &self.user {
            write!(f, "@{user}")?;
        }
        Ok(())
    }
}

/// A leaf of the index: its value and the position (in [`View::layers`]) of the layer that set it.
struct Leaf {
    value: Value,
    layer: usize,
}

/// Why a value could not be read as the requested type.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("key `{0}` is not set")]
    NotFound(String),
    #[error("key `{path}` has the wrong type: {source}")]
    Type { path: String, source: serde_json::Error },
}

/// The merged configuration of one view, with the layers it came from.
///
/// A view built on another one ([`View::on_base`]: a service's view on its environment's, a user's
/// on the view without the user) merges only the root keys its own layers write and reads every
/// other root key from its base: the same layers' nodes are all there is at such a key, so the base's
/// value, leaves and winning layer there are this view's too.
pub struct View {
    key: ViewKey,
    layers: Vec<Arc<Layer>>,
    /// The merged tree; for a view with a base, only at the root keys in [`Base::written`].
    own: Value,
    base: Option<Base>,
    /// A view with a base: its whole tree, merged when someone asks for all of it at once.
    whole: OnceLock<Value>,
    /// The leaves of `own`.
    leaves: OnceLock<PathMap<Leaf>>,
    /// True when a layer holds a secret: asked by every read, so answered once.
    has_secrets: bool,
}

/// The view a view is built on, and what it does not share with it.
struct Base {
    view: Arc<View>,
    /// The root keys written by a layer of this view that is not one of the base's.
    written: FxHashSet<Box<str>>,
}

fn any_secrets(layers: &[Arc<Layer>]) -> bool {
    layers.iter().any(|layer| !layer.secrets.is_empty())
}

/// The first segment of a dotted path.
fn root_of(dotted: &str) -> &str {
    dotted.split_once('.').map_or(dotted, |(root, _)| root)
}

/// The node at a dotted path below `tree`.
fn walk<'a>(tree: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(tree, |node, segment| node.as_object()?.get(segment))
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View").field("key", &self.key).field("layers", &self.layers.len()).finish_non_exhaustive()
    }
}

/// What set a value: the layer and where in its source.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub layer: &'a Layer,
    pub location: &'a Location,
}

impl Origin<'_> {
    /// Where the value was set, as every reader renders it.
    pub fn provenance(&self) -> crate::Provenance {
        crate::Provenance::of(self.layer, Some(self.location))
    }
}

/// One layer's say about one key, for `explain`.
#[derive(Debug, Clone)]
pub struct Contribution<'a> {
    pub layer: &'a Layer,
    /// The layer's value at the key: `Some(Null)` means it deletes the key.
    pub value: Option<&'a Value>,
    pub location: Option<&'a Location>,
    /// True for the layer whose value is the effective one.
    pub won: bool,
}

impl View {
    /// Merges the layers that apply to `key`, lowest precedence first.
    pub fn build(key: ViewKey, all_layers: &[Arc<Layer>]) -> Self {
        let layers = Self::layers_for(&key, all_layers);
        Self::merge(key, layers)
    }

    /// Merges `layers`, the layers of the view `key` as [`View::layers_for`] gives them.
    pub fn merge(key: ViewKey, layers: Vec<Arc<Layer>>) -> Self {
        let own = merge_all(&layers);
        let has_secrets = any_secrets(&layers);
        Self { key, layers, own, base: None, whole: OnceLock::new(), leaves: OnceLock::new(), has_secrets }
    }

    /// The view `key` over `layers` ([`View::layers_for`]), built on `base`: a view whose layers are
    /// all among these (the view of the same environment with fewer of service and user). Only the
    /// root keys that the other layers write are merged; the rest is read from `base`.
    pub fn on_base(key: ViewKey, layers: Vec<Arc<Layer>>, base: Arc<View>) -> Self {
        let below = base.key();
        let mut written: FxHashSet<Box<str>> = FxHashSet::default();
        for layer in layers.iter().filter(|layer| !layer.applies_to(&below.environment, below.service.as_deref(), below.user.as_deref())) {
            if let Value::Object(data) = &layer.data {
                written.extend(data.keys().map(|root| Box::from(root.as_str())));
            }
        }
        let mut own = Map::new();
        for root in &written {
            if let Some(merged) = merged_at(layers.iter().map(|layer| &layer.data), &[&**root]) {
                own.insert(root.to_string(), merged);
            }
        }
        let has_secrets = any_secrets(&layers);
        Self { key, layers, own: Value::Object(own), base: Some(Base { view: base, written }), whole: OnceLock::new(), leaves: OnceLock::new(), has_secrets }
    }

    /// The layers of `all_layers` that apply to the view `key`, lowest precedence first (a stable
    /// sort: layers of the same precedence keep their order).
    pub fn layers_for<'a>(key: &ViewKey, all_layers: impl IntoIterator<Item = &'a Arc<Layer>>) -> Vec<Arc<Layer>> {
        let mut layers: Vec<Arc<Layer>> = all_layers
            .into_iter()
            .filter(|layer| layer.applies_to(&key.environment, key.service.as_deref(), key.user.as_deref()))
            .cloned()
            .collect();
        layers.sort_by(|a, b| a.precedence().cmp(&b.precedence()));
        layers
    }

    pub fn key(&self) -> &ViewKey {
        &self.key
    }

    /// The layers of this view, lowest precedence first.
    pub fn layers(&self) -> &[Arc<Layer>] {
        &self.layers
    }

    /// The whole merged tree (an object). A view with a base merges it on first call and keeps
    /// it; [`View::tree`] gives it without keeping it.
    pub fn value(&self) -> &Value {
        match &self.base {
            None => &self.own,
            Some(base) => self.whole.get_or_init(|| self.whole_over(base)),
        }
    }

    /// The whole merged tree, merged for this call only when the view has a base and nobody kept
    /// it: for a reader that walks each view once (validation), so that every view it checks does
    /// not stay in memory in full.
    pub fn tree(&self) -> Cow<'_, Value> {
        match (&self.base, self.whole.get()) {
            (None, _) => Cow::Borrowed(&self.own),
            (Some(_), Some(whole)) => Cow::Borrowed(whole),
            (Some(base), None) => Cow::Owned(self.whole_over(base)),
        }
    }

    /// The whole tree of a view with a base, from the base's tree and this view's own root keys
    /// (copied, not merged again from every layer), in the order a merge of all the layers gives
    /// its root keys.
    fn whole_over(&self, base: &Base) -> Value {
        let mut below = base.view.tree();
        let roots = root_order(&self.layers);
        let mut whole = Map::with_capacity(roots.len());
        for root in roots {
            let value = if base.written.contains(root) {
                self.own.get(root).cloned()
            } else {
                match &mut below {
                    Cow::Borrowed(tree) => tree.get(root).cloned(),
                    // A tree merged for this call alone: its nodes are moved, not copied.
                    Cow::Owned(tree) => tree.get_mut(root).map(Value::take),
                }
            };
            if let Some(value) = value {
                whole.insert(root.to_owned(), value);
            }
        }
        Value::Object(whole)
    }

    /// The base view that holds the value at `dotted`, when this view shares that root key with it.
    fn shared_with_base(&self, dotted: &str) -> Option<&View> {
        let base = self.base.as_ref().filter(|_| !dotted.is_empty())?;
        (!base.written.contains(root_of(dotted))).then_some(&*base.view)
    }

    fn leaves(&self) -> &PathMap<Leaf> {
        self.leaves.get_or_init(|| {
            // Sized first: growing a table of 100,000 leaves rehashes it and copies its paths again and again.
            let (count, path_bytes) = leaf_room(&self.own, 0);
            let mut leaves = PathMap::with_capacity(count, path_bytes);
            index_leaves(&self.own, &mut String::new(), &self.layers, &mut leaves);
            leaves
        })
    }

    /// The value at a dotted path (a leaf or a whole subtree).
    pub fn get_ref(&self, dotted: &str) -> Option<&Value> {
        if dotted.is_empty() {
            return Some(self.value());
        }
        if let Some(leaf) = self.leaves().get(dotted) {
            return Some(&leaf.value);
        }
        if let Some(base) = self.shared_with_base(dotted) {
            return base.get_ref(dotted);
        }
        walk(&self.own, dotted)
    }

    /// The value at a dotted path, found by walking the merged tree. Unlike [`View::get_ref`] it
    /// never builds the leaf index: for one-off reads of many views (a history diff, positions in
    /// a validation report), where the index would cost more than the reads.
    pub fn value_at(&self, dotted: &str) -> Option<&Value> {
        if dotted.is_empty() {
            return Some(self.value());
        }
        match self.shared_with_base(dotted) {
            Some(base) => base.value_at(dotted),
            None => walk(&self.own, dotted),
        }
    }

    /// An owned copy of the value at a dotted path.
    pub fn get(&self, dotted: &str) -> Option<Value> {
        self.get_ref(dotted).cloned()
    }

    /// The value at a path read as `T` through serde.
    pub fn extract<T: DeserializeOwned>(&self, dotted: &str) -> Result<T, ReadError> {
        let value = self.get_ref(dotted).ok_or_else(|| ReadError::NotFound(dotted.to_owned()))?;
        T::deserialize(value).map_err(|source| ReadError::Type { path: dotted.to_owned(), source })
    }

    /// Every leaf (scalars, arrays, empty objects) with its dotted path, in no particular order.
    pub fn leaf_paths(&self) -> Box<dyn Iterator<Item = (&str, &Value)> + '_> {
        let own = self.leaves().iter().map(|(path, leaf)| (path, &leaf.value));
        match &self.base {
            None => Box::new(own),
            Some(base) => Box::new(own.chain(base.view.leaf_paths().filter(|(path, _)| !base.written.contains(root_of(path))))),
        }
    }

    /// Number of leaves.
    pub fn leaf_count(&self) -> usize {
        match &self.base {
            None => self.leaves().len(),
            Some(_) => self.leaf_paths().count(),
        }
    }

    /// Builds the leaf index of the part of this view that it does not share (and of its bases),
    /// as the first [`View::get_ref`] would: for a load that wants its views ready to read.
    pub fn build_leaf_index(&self) {
        self.leaves();
        if let Some(base) = &self.base {
            base.view.build_leaf_index();
        }
    }

    /// The layer and location that set the value at `dotted` (leaf or subtree: the highest layer writing it).
    ///
    /// The leaf index answers when something built it already; otherwise the layers are asked
    /// directly, so that a validation report naming a few positions does not build (and keep) an
    /// index of every leaf of every view it checks. Both give the same origin: the highest layer
    /// writing a present leaf's exact path cannot hold a `null` there, or the leaf would be gone.
    pub fn origin(&self, dotted: &str) -> Option<Origin<'_>> {
        if let Some(base) = self.shared_with_base(dotted) {
            return base.origin(dotted);
        }
        if let Some(leaf) = self.leaves.get().and_then(|leaves| leaves.get(dotted)) {
            let layer = &self.layers[leaf.layer];
            return layer.locations.get(dotted).map(|location| Origin { layer, location });
        }
        if !dotted.is_empty() {
            self.value_at(dotted)?;
        }
        self.layers.iter().rev().find_map(|layer| {
            layer.locations.get(dotted).filter(|_| layer.value_at(dotted).is_some_and(|v| !v.is_null())).map(|location| Origin { layer, location })
        })
    }

    /// True when any layer of this view holds a secret at `dotted` (redact it at every exit).
    pub fn is_secret(&self, dotted: &str) -> bool {
        self.layers.iter().any(|layer| layer.secrets.contains(dotted))
    }

    /// True when any layer of this view holds secrets at all.
    pub fn has_secrets(&self) -> bool {
        self.has_secrets
    }

    /// The file, line and column the value at `dotted` was written at, when it came from a file.
    pub fn source_position(&self, dotted: &str) -> Option<SourcePosition> {
        let origin = self.origin(dotted)?;
        match (&origin.layer.source, origin.location) {
            (LayerSource::File(file), Location::Text { line, column }) => {
                Some(SourcePosition { file: file.to_string(), line: *line, column: *column })
            }
            _ => None,
        }
    }

    /// Every layer's say about `dotted`, lowest first, marking the one that won.
    pub fn explain(&self, dotted: &str) -> Vec<Contribution<'_>> {
        let winner = self.origin(dotted).map(|origin| origin.layer as *const Layer);
        self.layers
            .iter()
            .map(|layer| Contribution {
                layer,
                value: layer.value_at(dotted),
                location: layer.locations.get(dotted),
                won: winner == Some(&**layer as *const Layer),
            })
            .collect()
    }
}

/// Every layer's tree merged over the ones before it.
fn merge_all(layers: &[Arc<Layer>]) -> Value {
    let mut merged = Map::new();
    for layer in layers {
        if let Value::Object(data) = &layer.data {
            merge_into(&mut merged, data);
        }
    }
    Value::Object(merged)
}

/// The root keys of [`merge_all`]'s tree in its order: a key goes last when a layer first sets it
/// (again, after a `null` removed it), as [`merge_into`] inserts and shift-removes them.
fn root_order(layers: &[Arc<Layer>]) -> Vec<&str> {
    let mut order: Vec<&str> = Vec::new();
    let mut present: FxHashSet<&str> = FxHashSet::default();
    for layer in layers {
        let Value::Object(data) = &layer.data else { continue };
        for (root, value) in data {
            if value.is_null() {
                if present.remove(root.as_str()) {
                    order.retain(|kept| *kept != root.as_str());
                }
            } else if present.insert(root.as_str()) {
                order.push(root.as_str());
            }
        }
    }
    order
}

/// How many leaves [`index_leaves`] finds below `value` and the bytes of their paths (`prefix`: the
/// length of `value`'s own path).
fn leaf_room(value: &Value, prefix: usize) -> (usize, usize) {
    let Value::Object(map) = value else { return (0, 0) };
    map.iter().fold((0, 0), |(count, bytes), (key, child)| {
        let path = prefix + usize::from(prefix > 0) + key.len();
        let (below, below_bytes) = match child {
            Value::Object(inner) if !inner.is_empty() => leaf_room(child, path),
            _ => (1, path),
        };
        (count + below, bytes + below_bytes)
    })
}

fn index_leaves(value: &Value, path: &mut String, layers: &[Arc<Layer>], out: &mut PathMap<Leaf>) {
    let Value::Object(map) = value else { return };
    for (key, child) in map {
        let parent_len = path.len();
        if parent_len > 0 {
            path.push('.');
        }
        path.push_str(key);
        match child {
            Value::Object(inner) if !inner.is_empty() => index_leaves(child, path, layers, out),
            _ => {
                // The highest layer that writes this exact path set it: anything above that wrote a
                // prefix would have removed it, anything above that wrote it would have won.
                let layer = (0..layers.len()).rev().find(|&i| layers[i].locations.contains_key(path.as_str())).unwrap_or(0);
                out.insert(path, Leaf { value: child.clone(), layer });
            }
        }
        path.truncate(parent_len);
    }
}
