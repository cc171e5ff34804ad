//! Walking schemas the way an instance is walked: which subschemas apply at one place, and which
//! apply to a child key. Shared by coverage, defaults and secret paths (the validation itself is
//! the `jsonschema` crate's).

use std::collections::HashMap;
use std::sync::Arc;

use fancy_regex::Regex;
use serde_json::{Map, Value};

use crate::documents::{Node, SchemaDocs};
use crate::refs::{same_location_schemas, Negated};

/// Most subschemas followed at one instance location (a guard; real schemas use a handful).
const MAX_APPLICABLE: usize = 1024;

/// Compiled `patternProperties` patterns of a folder, built once per load.
#[derive(Debug, Default)]
pub(crate) struct Patterns {
    compiled: HashMap<String, Arc<Regex>>,
}

impl Patterns {
    pub fn collect(docs: &SchemaDocs) -> Self {
        let mut patterns = Patterns::default();
        for doc in docs.by_rel.values() {
            patterns.collect_from(&doc.value, 0);
        }
        patterns
    }

    fn collect_from(&mut self, value: &Value, depth: usize) {
        if depth > crate::documents::MAX_SCHEMA_DEPTH {
            return;
        }
        match value {
            Value::Object(map) => {
                if let Some(Value::Object(patterns)) = map.get("patternProperties") {
                    for pattern in patterns.keys() {
                        if !self.compiled.contains_key(pattern) {
                            // A pattern fancy-regex refuses matches nothing here; the validator reports it.
                            if let Ok(regex) = Regex::new(pattern) {
                                self.compiled.insert(pattern.clone(), Arc::new(regex));
                            }
                        }
                    }
                }
                map.values().for_each(|child| self.collect_from(child, depth + 1));
            }
            Value::Array(items) => items.iter().for_each(|child| self.collect_from(child, depth + 1)),
            _ => {}
        }
    }

    pub fn is_match(&self, pattern: &str, key: &str) -> bool {
        self.compiled.get(pattern).is_some_and(|regex| regex.is_match(key).unwrap_or(false))
    }

    pub fn get(&self, pattern: &str) -> Option<&Arc<Regex>> {
        self.compiled.get(pattern)
    }
}

/// The object schemas that apply at one instance location, and whether a `true` schema admits anything.
#[derive(Debug, Default)]
pub(crate) struct Applicable<'a> {
    pub nodes: Vec<Node<'a>>,
    pub anything: bool,
}

/// Expands `starts` through `$ref` and the in-place applicators (allOf, anyOf, oneOf, if/then/else;
/// not `not`).
pub(crate) fn expand<'a>(docs: &'a SchemaDocs, starts: Vec<Node<'a>>) -> Applicable<'a> {
    let mut applicable = Applicable::default();
    let mut seen: Vec<*const Value> = Vec::new();
    let mut pending = starts;
    while let Some(node) = pending.pop() {
        let identity = node.value as *const Value;
        if seen.contains(&identity) || seen.len() >= MAX_APPLICABLE {
            continue;
        }
        seen.push(identity);
        match node.value {
            Value::Bool(true) => applicable.anything = true,
            Value::Object(_) => {
                pending.extend(same_location_schemas(docs, &node, Negated::Left));
                applicable.nodes.push(node);
            }
            _ => {}
        }
    }
    applicable
}

/// The property schemas of an object schema, by name.
pub(crate) fn properties<'a>(node: &Node<'a>) -> Vec<(&'a String, Node<'a>)> {
    let value: &'a Value = node.value;
    value
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(Map::keys)
        .filter_map(|key| node.child(&["properties", key]).map(|child| (key, child)))
        .collect()
}
