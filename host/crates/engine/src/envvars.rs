//! Environment variables → a layer: `POTTER_API__TIMEOUT=30` sets `api.timeout` to the number 30.
//!
//! `__` separates segments (a single `_` stays inside a key, so snake_case keys work); segments are
//! lowercased. A value that parses as JSON (scalar, array or object) is taken as such, otherwise as a
//! string; `null` deletes the key like a `null` in a file.

use serde_json::{Map, Value};

use crate::layer::{Layer, LayerSource, Location, Rank, Scope};
use crate::locations::Locations;
use crate::path;

/// Variables under the prefix that steer the tool itself and are never configuration.
pub const RESERVED: [&str; 7] = ["ENV", "ROOT", "STATE", "PLUGINS", "LOG", "TOKEN", "ACTOR"];

/// True for reserved names (after the prefix): [`RESERVED`] and `SECRET_KEY_*`.
pub fn is_reserved(name_after_prefix: &str) -> bool {
    RESERVED.contains(&name_after_prefix) || name_after_prefix.starts_with("SECRET_KEY_")
}

/// The variable that would set `dotted` (`api.rate_limit` → `POTTER_API__RATE_LIMIT`).
pub fn variable_for(prefix: &str, dotted: &str) -> String {
    let mut name = prefix.to_owned();
    name.push_str(&dotted.split('.').map(str::to_ascii_uppercase).collect::<Vec<_>>().join("__"));
    name
}

/// Builds the environment-variable layer from `(name, value)` pairs; other variables are ignored.
pub fn env_layer(prefix: &str, vars: impl IntoIterator<Item = (String, String)>) -> Layer {
    let mut data = Map::new();
    let mut locations = Locations::default();
    let mut vars: Vec<(String, String)> = vars.into_iter().filter(|(name, _)| name.starts_with(prefix)).collect();
    vars.sort(); // deterministic when two spellings map to one key
    for (name, raw) in vars {
        let rest = &name[prefix.len()..];
        if rest.is_empty() || is_reserved(rest) {
            continue;
        }
        let segments: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if segments.iter().any(String::is_empty) {
            continue;
        }
        let value = serde_json::from_str::<Value>(&raw).unwrap_or(Value::String(raw));
        insert_path(&mut data, &segments, value, &name, &mut locations);
    }
    Layer::with_locations("env", Rank::EnvVars, Scope::everywhere(), LayerSource::EnvVars { prefix: prefix.to_owned() }, data, locations)
}

fn insert_path(
    root: &mut Map<String, Value>,
    segments: &[String],
    value: Value,
    var: &str,
    locations: &mut Locations,
) {
    let mut node = root;
    let mut dotted = String::new();
    for (i, segment) in segments.iter().enumerate() {
        dotted = path::join(&dotted, segment);
        locations.get_or_insert_with(&dotted, || Location::EnvVar(var.into()));
        if i + 1 == segments.len() {
            locations.insert(&dotted, Location::EnvVar(var.into()));
            node.insert(segment.clone(), value);
            return;
        }
        let child = node.entry(segment.clone()).or_insert_with(|| Value::Object(Map::new()));
        if !child.is_object() {
            *child = Value::Object(Map::new());
        }
        node = child.as_object_mut().expect("just made an object");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layer(vars: &[(&str, &str)]) -> Layer {
        env_layer("POTTER_", vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn double_underscore_nests_and_single_underscore_stays_in_the_key() {
        let l = layer(&[("POTTER_LOGGING__MAX_SIZE", "5"), ("POTTER_API__TIMEOUT", "30")]);
        assert_eq!(l.data, json!({"api": {"timeout": 30}, "logging": {"max_size": 5}}));
    }

    #[test]
    fn values_are_json_when_they_parse_and_strings_otherwise() {
        let l = layer(&[
            ("POTTER_A__FLAG", "true"),
            ("POTTER_A__LIST", "[1,2]"),
            ("POTTER_A__OBJ", "{\"k\":\"v\"}"),
            ("POTTER_A__NAME", "hello world"),
            ("POTTER_A__RATIO", "0.5"),
        ]);
        assert_eq!(l.data, json!({"a": {"flag": true, "list": [1, 2], "obj": {"k": "v"}, "name": "hello world", "ratio": 0.5}}));
    }

    #[test]
    fn reserved_and_foreign_variables_are_ignored() {
        let l = layer(&[("POTTER_ENV", "production"), ("POTTER_SECRET_KEY_PRODUCTION", "abc"), ("POTTER_ACTOR", "alice"), ("POTTER_TOKEN", "pct_x"), ("HOME", "/root")]);
        assert_eq!(l.data, json!({}));
    }

    #[test]
    fn each_key_records_the_variable_that_set_it() {
        let l = layer(&[("POTTER_API__TIMEOUT", "30")]);
        assert_eq!(l.locations.get("api.timeout"), Some(&Location::EnvVar("POTTER_API__TIMEOUT".into())));
        assert_eq!(variable_for("POTTER_", "logging.max_size"), "POTTER_LOGGING__MAX_SIZE");
    }
}
