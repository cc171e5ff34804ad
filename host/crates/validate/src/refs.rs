//! Checks on the `$ref`s of a schemas folder before anything is compiled: no remote references, and
//! no cycle of references that never reaches a real constraint.

use std::collections::HashMap;

use serde_json::Value;

use crate::documents::{has_foreign_scheme, Node, RefProblem, SchemaDocs};
use crate::error::SchemaError;

/// Keywords whose values are data, not schemas: a `"$ref"` inside them is not a reference.
const DATA_KEYWORDS: [&str; 4] = ["enum", "const", "default", "examples"];

/// Refuses remote references and `$ref` cycles anywhere in the folder.
pub(crate) fn check_references(docs: &SchemaDocs) -> Result<(), SchemaError> {
    let mut rels: Vec<_> = docs.by_rel.keys().cloned().collect();
    rels.sort();
    let mut referring = Vec::new();
    for rel in &rels {
        let doc = &docs.by_rel[rel];
        find_refs(Node::root(doc), None, 0, &mut referring);
    }
    for (node, remote_base) in &referring {
        let reference = node.value["$ref"].as_str().unwrap_or_default();
        if let Some(base) = remote_base.filter(|_| !reference.starts_with('#')) {
            // Where the compiler would fetch it from: the `$id`'s folder joined with the reference.
            let folder = base.rsplit_once('/').map_or(base, |(folder, _)| folder);
            let reference = if has_foreign_scheme(reference) { reference.to_owned() } else { format!("{folder}/{reference}") };
            return Err(SchemaError::RemoteRef { file: node.doc.rel.to_string(), pointer: node.pointer.clone(), reference });
        }
        if has_foreign_scheme(reference) {
            return Err(SchemaError::RemoteRef { file: node.doc.rel.to_string(), pointer: node.pointer.clone(), reference: reference.to_owned() });
        }
        // A missing file is named here, with the place of the `$ref`; finer problems are the compiler's.
        if let Err(problem @ RefProblem::MissingFile(_)) = docs.resolve(node.doc, reference) {
            return Err(SchemaError::UnresolvedRef {
                file: node.doc.rel.to_string(),
                pointer: node.pointer.clone(),
                reference: reference.to_owned(),
                reason: problem.describe(),
            });
        }
    }
    let referring: Vec<Node<'_>> = referring.into_iter().map(|(node, _)| node).collect();
    find_cycle(docs, &referring)
}

/// Collects every schema object that has a string `$ref`, with the remote `$id` base it sits under
/// (a relative `$ref` below `"$id": "https://..."` would be fetched from that host).
fn find_refs<'a>(node: Node<'a>, remote_base: Option<&'a str>, depth: usize, out: &mut Vec<(Node<'a>, Option<&'a str>)>) {
    if depth > crate::documents::MAX_SCHEMA_DEPTH {
        return;
    }
    match node.value {
        Value::Object(map) => {
            let own_id = map.get("$id").and_then(Value::as_str).filter(|id| has_foreign_scheme(id));
            let remote_base = own_id.or(remote_base);
            if map.get("$ref").is_some_and(Value::is_string) {
                out.push((node.clone(), remote_base));
            }
            for key in map.keys().filter(|key| !DATA_KEYWORDS.contains(&key.as_str())) {
                if let Some(child) = node.child(&[key]) {
                    find_refs(child, remote_base, depth + 1, out);
                }
            }
        }
        Value::Array(items) => {
            for index in 0..items.len() {
                if let Some(child) = node.child(&[&index.to_string()]) {
                    find_refs(child, remote_base, depth + 1, out);
                }
            }
        }
        _ => {}
    }
}

/// Whether `not` counts: it is evaluated at the same place (so it can close a cycle) but says
/// what a value must not be, so it describes nothing (no defaults, no secrets, no coverage).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Negated {
    Included,
    Left,
}

/// The schemas that apply at the same instance location as `node`: its `$ref` target and its
/// in-place applicators. A cycle through these never descends into the instance, so it never ends.
pub(crate) fn same_location_schemas<'a>(docs: &'a SchemaDocs, node: &Node<'a>, negated: Negated) -> Vec<Node<'a>> {
    let Value::Object(map) = node.value else { return Vec::new() };
    let mut out = Vec::new();
    if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
        if let Ok(target) = docs.resolve(node.doc, reference) {
            out.push(target);
        }
    }
    for keyword in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(items)) = map.get(keyword) {
            out.extend((0..items.len()).filter_map(|i| node.child(&[keyword, &i.to_string()])));
        }
    }
    for keyword in ["if", "then", "else"] {
        out.extend(node.child(&[keyword]));
    }
    if negated == Negated::Included {
        out.extend(node.child(&["not"]));
    }
    if let Some(Value::Object(dependents)) = map.get("dependentSchemas") {
        out.extend(dependents.keys().filter_map(|key| node.child(&["dependentSchemas", key])));
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Visit {
    InProgress,
    Done,
}

/// Depth-first search over same-location edges with an explicit stack (no recursion: chains may be long).
fn find_cycle(docs: &SchemaDocs, starts: &[Node<'_>]) -> Result<(), SchemaError> {
    let mut state: HashMap<String, Visit> = HashMap::new();
    for start in starts {
        if state.contains_key(&start.location()) {
            continue;
        }
        let mut stack: Vec<(Node<'_>, Vec<Node<'_>>)> = Vec::new();
        state.insert(start.location(), Visit::InProgress);
        let next = same_location_schemas(docs, start, Negated::Included);
        stack.push((start.clone(), next));
        while let Some((_, pending)) = stack.last_mut() {
            match pending.pop() {
                None => {
                    let (done, _) = stack.pop().expect("stack is not empty");
                    state.insert(done.location(), Visit::Done);
                }
                Some(child) => {
                    let key = child.location();
                    match state.get(&key) {
                        Some(Visit::Done) => {}
                        Some(Visit::InProgress) => {
                            let from = stack.iter().position(|(node, _)| node.location() == key).unwrap_or(0);
                            let mut chain: Vec<String> = stack[from..].iter().map(|(node, _)| node.location()).collect();
                            chain.push(key);
                            return Err(SchemaError::RefCycle { chain: chain.join(" → ") });
                        }
                        None => {
                            state.insert(key, Visit::InProgress);
                            let next = same_location_schemas(docs, &child, Negated::Included);
                            stack.push((child, next));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
