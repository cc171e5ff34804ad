//! Differences between two configuration trees, leaf by leaf (for change events and history).

use serde_json::Value;

use crate::path;

/// One changed leaf: `None` means absent on that side.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KeyChange {
    pub key: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

/// The leaves that differ between `old` and `new`, both taken at `prefix` (sorted by key).
/// Arrays, scalars and empty objects are leaves; objects are walked.
pub fn diff(prefix: &str, old: Option<&Value>, new: Option<&Value>) -> Vec<KeyChange> {
    let mut changes = Vec::new();
    walk(prefix, old, new, &mut changes);
    changes.sort_by(|a, b| a.key.cmp(&b.key));
    changes
}

/// The smallest set of paths outside of which two versions of one layer's tree agree: where a key
/// is only on one side, or the two sides differ and are not both objects. None when a key holds a
/// `.` (or is empty), so that its dotted path would be ambiguous.
///
/// A merged view's value at a path depends only on each layer's nodes along that path, so between
/// two snapshots that differ in these layers only, views can differ only under these paths.
pub fn changed_roots(old: &Value, new: &Value) -> Option<Vec<String>> {
    fn walk(at: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<String>) -> Option<()> {
        if old == new {
            return Some(());
        }
        match (old, new) {
            (Some(Value::Object(old)), Some(Value::Object(new))) => {
                for key in old.keys().chain(new.keys().filter(|key| !old.contains_key(*key))) {
                    if key.is_empty() || key.contains('.') {
                        return None;
                    }
                    walk(&path::join(at, key), old.get(key), new.get(key), out)?;
                }
            }
            _ => out.push(at.to_owned()),
        }
        Some(())
    }
    let mut roots = Vec::new();
    walk("", Some(old), Some(new), &mut roots)?;
    Some(roots)
}

fn is_branch(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::Object(map)) if !map.is_empty())
}

fn walk(at: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<KeyChange>) {
    if old == new {
        return;
    }
    match (is_branch(old), is_branch(new)) {
        (false, false) => out.push(KeyChange { key: at.to_owned(), old: old.cloned(), new: new.cloned() }),
        (old_branch, new_branch) => {
            let old_map = old.filter(|_| old_branch).and_then(Value::as_object);
            let new_map = new.filter(|_| new_branch).and_then(Value::as_object);
            // A leaf replaced by an object (or the reverse) is one removal plus the other side's leaves.
            if !old_branch && old.is_some() {
                out.push(KeyChange { key: at.to_owned(), old: old.cloned(), new: None });
            }
            if !new_branch && new.is_some() {
                out.push(KeyChange { key: at.to_owned(), old: None, new: new.cloned() });
            }
            let keys = old_map.into_iter().flat_map(|m| m.keys()).chain(new_map.into_iter().flat_map(|m| m.keys()));
            let mut seen = std::collections::BTreeSet::new();
            for key in keys {
                if seen.insert(key) {
                    let child = path::join(at, key);
                    walk(&child, old_map.and_then(|m| m.get(key)), new_map.and_then(|m| m.get(key)), out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_changed_added_and_removed_leaves() {
        let old = json!({"a": {"x": 1, "y": 2}, "gone": true});
        let new = json!({"a": {"x": 1, "y": 3, "z": [1]}});
        let keys: Vec<(String, Option<Value>, Option<Value>)> =
            diff("", Some(&old), Some(&new)).into_iter().map(|c| (c.key, c.old, c.new)).collect();
        assert_eq!(
            keys,
            vec![
                ("a.y".into(), Some(json!(2)), Some(json!(3))),
                ("a.z".into(), None, Some(json!([1]))),
                ("gone".into(), Some(json!(true)), None),
            ]
        );
    }

    #[test]
    fn a_prefix_limits_and_names_the_keys() {
        let old = json!({"x": 1});
        let changes = diff("api", Some(&old), Some(&json!({"x": 2})));
        assert_eq!(changes[0].key, "api.x");
        assert!(diff("api", Some(&old), Some(&old)).is_empty());
    }

    #[test]
    fn changed_roots_are_the_smallest_subtrees_that_differ() {
        let old = json!({"a": {"x": 1, "y": {"deep": 2}}, "same": {"k": 1}, "gone": true, "t": 1});
        let new = json!({"a": {"x": 1, "y": {"deep": 3}, "z": null}, "same": {"k": 1}, "t": {"now": "object"}});
        assert_eq!(changed_roots(&old, &new).unwrap(), vec!["a.y.deep", "a.z", "gone", "t"]);
        assert_eq!(changed_roots(&old, &old).unwrap(), Vec::<String>::new());
        assert_eq!(changed_roots(&json!({}), &json!({"a": {"b": 1}})).unwrap(), vec!["a"]);
        assert_eq!(changed_roots(&json!({"a.b": 1}), &json!({"a.b": 2})), None, "a dotted key is ambiguous");
    }

    #[test]
    fn a_leaf_becoming_an_object_is_a_removal_and_additions() {
        let changes = diff("", Some(&json!({"a": 1})), Some(&json!({"a": {"b": 2}})));
        assert_eq!(changes.len(), 2);
        assert_eq!((changes[0].key.as_str(), changes[1].key.as_str()), ("a", "a.b"));
    }
}
