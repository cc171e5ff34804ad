//! The namespace sandbox for input: a plugin sees only the prefixes its
//! manifest declares plus its own namespace, and no secrets unless granted.

use serde_json::{Map, Value};

/// The value at a dotted key path (`a.b.0.c`; numbers index arrays).
pub fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(root, |node, segment| match node {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Copy of `config` holding only the subtrees under `prefixes`; secret paths
/// (per `is_secret`) are dropped unless `keep_secrets`.
pub fn restrict(
    config: &Value,
    prefixes: &[String],
    keep_secrets: bool,
    is_secret: &dyn Fn(&str) -> bool,
) -> Value {
    let mut out = Value::Object(Map::new());
    for prefix in prefixes {
        if let Some(value) = lookup(config, prefix) {
            insert_at(&mut out, prefix, value.clone());
        }
    }
    if !keep_secrets {
        drop_secrets(&mut out, &mut String::new(), is_secret);
    }
    out
}

fn insert_at(root: &mut Value, path: &str, value: Value) {
    let mut node = root;
    let mut segments = path.split('.').peekable();
    while let Some(segment) = segments.next() {
        let Value::Object(map) = node else { return };
        if segments.peek().is_none() {
            map.insert(segment.to_string(), value);
            return;
        }
        node = map
            .entry(segment.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

fn drop_secrets(node: &mut Value, path: &mut String, is_secret: &dyn Fn(&str) -> bool) {
    let base_len = path.len();
    let child_path = |path: &mut String, key: &str| {
        path.truncate(base_len);
        if base_len > 0 {
            path.push('.');
        }
        path.push_str(key);
    };
    match node {
        Value::Object(map) => {
            map.retain(|key, _| {
                child_path(path, key);
                !is_secret(path)
            });
            for (key, child) in map.iter_mut() {
                child_path(path, key);
                drop_secrets(child, path, is_secret);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter_mut().enumerate() {
                child_path(path, &index.to_string());
                if is_secret(path) {
                    *child = Value::Null;
                } else {
                    drop_secrets(child, path, is_secret);
                }
            }
        }
        _ => {}
    }
    path.truncate(base_len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prefixes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_declared_prefixes_are_passed() {
        let config = json!({"app": {"debug": true}, "db": {"host": "x"}, "api": {"limits": {"rate": 1, "burst": 2}}});
        let seen = restrict(
            &config,
            &prefixes(&["app", "api.limits.rate", "missing"]),
            false,
            &|_| false,
        );
        assert_eq!(
            seen,
            json!({"app": {"debug": true}, "api": {"limits": {"rate": 1}}})
        );
    }

    #[test]
    fn secrets_are_dropped_unless_granted() {
        let config =
            json!({"db": {"host": "h", "password": "s3cret", "replicas": [{"password": "p"}]}});
        let is_secret = |p: &str| p.ends_with("password");
        let hidden = restrict(&config, &prefixes(&["db"]), false, &is_secret);
        assert_eq!(hidden, json!({"db": {"host": "h", "replicas": [{}]}}));
        let granted = restrict(&config, &prefixes(&["db"]), true, &is_secret);
        assert_eq!(granted, config);
    }
}
