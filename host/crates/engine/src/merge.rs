//! Deep merge: objects merge key by key; arrays and scalars replace; `null` deletes.

use serde_json::{Map, Value};

/// Merges `over` into `base` (`over` wins).
pub fn merge_into(base: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (key, value) in over {
        match value {
            Value::Null => {
                base.shift_remove(key);
            }
            Value::Object(over_child) => match base.get_mut(key) {
                Some(Value::Object(base_child)) => merge_into(base_child, over_child),
                _ => {
                    base.insert(key.clone(), Value::Object(without_nulls(over_child)));
                }
            },
            other => {
                base.insert(key.clone(), other.clone());
            }
        }
    }
}

/// Sets `value` at the path `segments` in `tree`, making objects on the way (a non-object in the
/// way is replaced by an object).
pub fn set_path(tree: &mut Map<String, Value>, segments: &[&str], value: Value) {
    let Some((last, parents)) = segments.split_last() else { return };
    let mut node = tree;
    for segment in parents {
        let child = node.entry(segment.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if !child.is_object() {
            *child = Value::Object(Map::new());
        }
        node = child.as_object_mut().expect("just made an object");
    }
    node.insert(last.to_string(), value);
}

/// What [`merge_into`] over the whole trees of `layers` (lowest precedence first, each an object)
/// leaves at the path `segments`, computed from each layer's nodes along that path alone.
///
/// Per layer: a non-object (a value, or a `null`) at an ancestor of the path replaces or deletes
/// that ancestor, so the path is gone; a node at the path merges into what is there (an object into
/// an object) or replaces it, and a `null` there deletes it; a layer without the path leaves it as it is.
pub fn merged_at<'a>(layers: impl IntoIterator<Item = &'a Value>, segments: &[&str]) -> Option<Value> {
    // A view's root is an object even when no layer writes anything.
    let mut merged: Option<Value> = segments.is_empty().then(|| Value::Object(Map::new()));
    for data in layers {
        let node = match along(data, segments) {
            Along::Untouched => continue,
            Along::Cut => {
                merged = None;
                continue;
            }
            Along::At(node) => node,
        };
        merged = match node {
            Value::Null => None,
            Value::Object(over) => match merged {
                Some(Value::Object(mut base)) => {
                    merge_into(&mut base, over);
                    Some(Value::Object(base))
                }
                _ => Some(Value::Object(without_nulls(over))),
            },
            other => Some(other.clone()),
        };
    }
    merged
}

/// What kind of node [`merged_at`] would give, without copying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergedKind {
    Absent,
    EmptyObject,
    Object,
    /// A scalar or an array.
    Value,
}

/// The kind of [`merged_at`]'s result, from each layer's nodes along the path and the presence of
/// each child key (so an object whose every key some layer deletes is known to be empty).
pub fn merged_kind_at(layers: &[&Value], segments: &[&str]) -> MergedKind {
    match last_node(layers, segments) {
        None => MergedKind::Absent,
        Some(false) => MergedKind::Value,
        Some(true) => {
            // Any one key that still has something under it makes a non-empty object; most often
            // the first one looked at, so no list of the layers' keys is built.
            let mut child = segments.to_vec();
            let has_child = layers
                .iter()
                .filter_map(|data| match along(data, segments) {
                    Along::At(Value::Object(map)) => Some(map),
                    _ => None,
                })
                .flat_map(|map| map.keys())
                .any(|key| {
                    child.push(key);
                    let present = last_node(layers, &child).is_some();
                    child.pop();
                    present
                });
            if has_child {
                MergedKind::Object
            } else {
                MergedKind::EmptyObject
            }
        }
    }
}

/// Whether [`merged_at`] gives anything at the path (None: nothing), and whether that is an object.
fn last_node(layers: &[&Value], segments: &[&str]) -> Option<bool> {
    let mut last = segments.is_empty().then_some(true);
    for data in layers {
        match along(data, segments) {
            Along::Untouched => {}
            Along::Cut => last = None,
            Along::At(node) => last = (!node.is_null()).then(|| node.is_object()),
        }
    }
    last
}

/// What one layer does at a path.
enum Along<'a> {
    /// The layer does not reach the path: what is there stays.
    Untouched,
    /// A non-object at an ancestor replaces (or a `null` deletes) that ancestor: the path is gone.
    Cut,
    /// The layer's node at the path.
    At(&'a Value),
}

fn along<'a>(data: &'a Value, segments: &[&str]) -> Along<'a> {
    let mut node = data;
    for segment in segments {
        match node {
            Value::Object(map) => match map.get(*segment) {
                Some(child) => node = child,
                None => return Along::Untouched,
            },
            _ => return Along::Cut,
        }
    }
    Along::At(node)
}

/// A copy of an object with its deletion markers dropped (nothing below them to delete).
fn without_nulls(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| {
            let value = match value {
                Value::Object(child) => Value::Object(without_nulls(child)),
                other => other.clone(),
            };
            (key.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(base: Value, over: Value) -> Value {
        let mut base = base.as_object().unwrap().clone();
        merge_into(&mut base, over.as_object().unwrap());
        Value::Object(base)
    }

    #[test]
    fn objects_merge_key_by_key() {
        assert_eq!(merged(json!({"a": {"x": 1, "y": 2}}), json!({"a": {"y": 3}})), json!({"a": {"x": 1, "y": 3}}));
    }

    #[test]
    fn arrays_replace_instead_of_appending() {
        assert_eq!(merged(json!({"a": [1, 2, 3]}), json!({"a": [4]})), json!({"a": [4]}));
    }

    #[test]
    fn null_deletes_and_is_not_kept_below_new_objects() {
        assert_eq!(merged(json!({"a": 1, "b": 2}), json!({"a": null})), json!({"b": 2}));
        assert_eq!(merged(json!({}), json!({"a": {"b": null, "c": 1}})), json!({"a": {"c": 1}}));
    }

    /// Every path of `merged_at` against the whole merge, on layers that replace, delete and
    /// re-create each other's subtrees.
    #[test]
    fn merged_at_is_the_whole_merge_at_that_path() {
        let layers = [
            json!({"a": {"b": {"c": 1, "d": 2}, "e": 3}, "f": [1], "g": {"h": 1}}),
            json!({"a": {"b": 5}, "g": null, "n": {"x": null, "y": 1}}),
            json!({"a": {"b": {"c": null, "k": {"z": null, "w": 4}}}, "g": {"i": 2}, "f": {"now": "object"}}),
            json!({"a": {"e": null}, "n": {"y": null}}),
        ];
        let mut whole = Map::new();
        for layer in &layers {
            merge_into(&mut whole, layer.as_object().unwrap());
        }
        let whole = Value::Object(whole);
        let mut paths = vec![String::new()];
        for layer in &layers {
            crate::layer::collect_paths(layer, "", &mut |path| paths.push(path.to_owned()));
        }
        paths.push("a.b.c.below".to_owned());
        paths.push("missing".to_owned());
        for path in paths {
            let segments: Vec<&str> = if path.is_empty() { Vec::new() } else { path.split('.').collect() };
            let expected = segments.iter().try_fold(&whole, |node, segment| node.as_object()?.get(*segment)).cloned();
            assert_eq!(merged_at(&layers, &segments), expected, "at `{path}`");
        }
    }

    #[test]
    fn a_scalar_replaces_an_object_and_back() {
        assert_eq!(merged(json!({"a": {"b": 1}}), json!({"a": 5})), json!({"a": 5}));
        assert_eq!(merged(json!({"a": 5}), json!({"a": {"b": 1}})), json!({"a": {"b": 1}}));
    }
}
