//! Checks on the `$ref`s of a schemas folder before anything is compiled: no remote references, and
//! no cycle of references that never reaches a real constraint.

use std::collections::HashMap;

use serde_json::Value;

use crate::documents::{Node, RefProblem, SchemaDocs};
use crate::error::SchemaError;
use crate::links::RefKeyword;

/// Refuses remote references (and metaschemas), references to missing files and `$ref` cycles
/// anywhere in the folder. A reference resolves by the `$id`s of the folder's schemas
/// ([`crate::links`]); one to a file or fragment that is not there is named with its place.
pub(crate) fn check_references(docs: &SchemaDocs) -> Result<(), SchemaError> {
    for site in docs.links.sites() {
        let (file, pointer) = (site.rel.to_string(), site.pointer.clone());
        match &site.target {
            Ok(_) => {}
            Err(RefProblem::Remote) if site.keyword == RefKeyword::Schema => {
                return Err(SchemaError::RemoteMetaschema { file, pointer, reference: site.absolute.clone() });
            }
            Err(RefProblem::Remote) => return Err(SchemaError::RemoteRef { file, pointer, reference: site.absolute.clone() }),
            // A missing file is named here, with the place of the reference; finer problems are the compiler's.
            Err(problem @ (RefProblem::MissingFile(_) | RefProblem::NotAUri(_))) => {
                return Err(SchemaError::UnresolvedRef { file, pointer, reference: site.reference.clone(), reason: problem.describe() });
            }
            Err(RefProblem::MissingFragment(_)) => {}
        }
    }
    let referring: Vec<Node<'_>> = docs.links.sites().iter().filter(|site| site.keyword != RefKeyword::Schema).filter_map(|site| docs.node_at(&crate::links::Target { rel: site.rel.clone(), pointer: site.pointer.clone() })).collect();
    find_cycle(docs, &referring)
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
    // A `$dynamicRef` may lead elsewhere at run time; its static target is where it starts.
    for keyword in [RefKeyword::Ref, RefKeyword::DynamicRef] {
        if map.contains_key(keyword.name()) {
            out.extend(docs.target(node.value, keyword));
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
