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

    #[test]
    fn a_scalar_replaces_an_object_and_back() {
        assert_eq!(merged(json!({"a": {"b": 1}}), json!({"a": 5})), json!({"a": 5}));
        assert_eq!(merged(json!({"a": 5}), json!({"a": {"b": 1}})), json!({"a": {"b": 1}}));
    }
}
