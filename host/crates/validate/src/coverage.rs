//! Coverage: which leaf keys of a view some schema describes.
//!
//! A key is described when an applicable schema names it in `properties`, matches it with a
//! `patternProperties` pattern, or admits it with `additionalProperties` (or
//! `unevaluatedProperties`) that is not `false`. Below a described key, its own schemas decide
//! the same way for its children. A `true` schema (typically `additionalProperties: true`) admits
//! the whole subtree: that is how a schema says "anything goes here, on purpose". An object schema
//! that says nothing about children (`{"type": "object"}`) describes none of them.

use serde_json::{Map, Value};

use crate::documents::{Node, SchemaDoc, SchemaDocs};
use crate::links::RefKeyword;
use crate::walk::Patterns;

/// Most subschemas followed at one instance location (a guard; real schemas use a handful).
const MAX_APPLICABLE: usize = 1024;

/// The share of a view's leaves that a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Coverage {
    /// Leaves (scalars, arrays, empty objects) some schema describes.
    pub described: usize,
    /// All leaves of the view.
    pub leaves: usize,
    /// `described / leaves` in percent (100 for a view without leaves).
    pub percent: f64,
}

impl Coverage {
    pub fn new(described: usize, leaves: usize) -> Self {
        let percent = if leaves == 0 { 100.0 } else { described as f64 * 100.0 / leaves as f64 };
        Self { described, leaves, percent }
    }
}

/// A key no schema describes, with the number of leaves at and below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Undescribed {
    pub path: String,
    pub leaves: usize,
}

/// Coverage of `value` under the root schemas `roots`.
pub(crate) fn measure<'a>(docs: &'a SchemaDocs, patterns: &Patterns, roots: Vec<Node<'a>>, value: &Value) -> (Coverage, Vec<Undescribed>) {
    let mut walk = Walk { docs, patterns, described: 0, leaves: 0, undescribed: Vec::new(), light_buffers: Vec::new(), describer_buffers: Vec::new() };
    if let Value::Object(map) = value {
        let mut starts: Vec<Light<'a>> = roots.iter().map(|node| Light { doc: node.doc, value: node.value }).collect();
        let mut describers = Vec::new();
        let anything = walk.expand(&mut starts, &mut describers);
        walk.object(&describers, anything, map, &mut Vec::new());
    }
    (Coverage::new(walk.described, walk.leaves), walk.undescribed)
}

/// A schema node without its pointer: coverage runs on every key of every view, and building
/// pointer strings there would cost more than the validation itself.
#[derive(Clone, Copy)]
struct Light<'a> {
    doc: &'a SchemaDoc,
    value: &'a Value,
}

/// The keywords of one object schema that describe child keys.
struct Describer<'a> {
    doc: &'a SchemaDoc,
    schema: &'a Value,
    properties: Option<&'a Map<String, Value>>,
    pattern_properties: Option<&'a Map<String, Value>>,
    /// `additionalProperties` / `unevaluatedProperties` when present and not `false`.
    others: [Option<&'a Value>; 2],
}

impl<'a> Describer<'a> {
    /// The subschemas describing `key`: `properties` naming it, `patternProperties` matching it,
    /// else `additionalProperties`/`unevaluatedProperties` unless `false`.
    fn children(&self, key: &str, patterns: &Patterns, out: &mut Vec<Light<'a>>) {
        let before = out.len();
        if let Some(schema) = self.properties.and_then(|properties| properties.get(key)) {
            out.push(Light { doc: self.doc, value: schema });
        }
        for (pattern, schema) in self.pattern_properties.into_iter().flatten() {
            if patterns.is_match(pattern, key) {
                out.push(Light { doc: self.doc, value: schema });
            }
        }
        if out.len() == before {
            out.extend(self.others.iter().flatten().map(|value| Light { doc: self.doc, value }));
        }
    }
}

struct Walk<'a, 'p> {
    docs: &'a SchemaDocs,
    patterns: &'p Patterns,
    described: usize,
    leaves: usize,
    undescribed: Vec<Undescribed>,
    // Reused buffers: the walk visits every object of every view, so it allocates nothing per object.
    light_buffers: Vec<Vec<Light<'a>>>,
    describer_buffers: Vec<Vec<Describer<'a>>>,
}

impl<'a> Walk<'a, '_> {
    fn object<'v>(&mut self, describers: &[Describer<'a>], anything: bool, map: &'v Map<String, Value>, segments: &mut Vec<&'v str>) {
        if anything {
            let count: usize = map.values().map(count_leaves).sum();
            self.described += count;
            self.leaves += count;
            return;
        }
        let mut children = self.light_buffers.pop().unwrap_or_default();
        for (key, child) in map {
            children.clear();
            for describer in describers {
                describer.children(key, self.patterns, &mut children);
            }
            if children.is_empty() {
                let count = count_leaves(child);
                self.leaves += count;
                let mut path = segments.join(".");
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                self.undescribed.push(Undescribed { path, leaves: count });
                continue;
            }
            match child {
                Value::Object(inner) if !inner.is_empty() => {
                    let mut below = self.describer_buffers.pop().unwrap_or_default();
                    let anything_below = self.expand(&mut children, &mut below);
                    segments.push(key);
                    self.object(&below, anything_below, inner, segments);
                    segments.pop();
                    below.clear();
                    self.describer_buffers.push(below);
                }
                _ => {
                    self.described += 1;
                    self.leaves += 1;
                }
            }
        }
        children.clear();
        self.light_buffers.push(children);
    }

    /// Expands `pending` through `$ref` and the in-place applicators into `out` (one describer per
    /// object schema) and tells whether a `true` schema admits anything. Cycles were refused at load.
    fn expand(&self, pending: &mut Vec<Light<'a>>, out: &mut Vec<Describer<'a>>) -> bool {
        let mut anything = false;
        while let Some(node) = pending.pop() {
            if out.iter().any(|seen| std::ptr::eq(seen.schema, node.value)) || out.len() >= MAX_APPLICABLE {
                continue;
            }
            let Value::Object(map) = node.value else {
                anything |= node.value == &Value::Bool(true);
                continue;
            };
            let mut describer = Describer { doc: node.doc, schema: node.value, properties: None, pattern_properties: None, others: [None, None] };
            // One pass over the keywords: cheaper than a hash lookup per keyword.
            for (keyword, value) in map {
                match keyword.as_str() {
                    "properties" => describer.properties = value.as_object(),
                    "patternProperties" => describer.pattern_properties = value.as_object(),
                    "additionalProperties" if *value != Value::Bool(false) => describer.others[0] = Some(value),
                    "unevaluatedProperties" if *value != Value::Bool(false) => describer.others[1] = Some(value),
                    "$ref" | "$dynamicRef" => {
                        let keyword = if keyword == "$ref" { RefKeyword::Ref } else { RefKeyword::DynamicRef };
                        if let Some(target) = self.docs.target(node.value, keyword) {
                            pending.push(Light { doc: target.doc, value: target.value });
                        }
                    }
                    "allOf" | "anyOf" | "oneOf" => {
                        pending.extend(value.as_array().into_iter().flatten().map(|value| Light { doc: node.doc, value }));
                    }
                    // `not` is left out: it says what a value must not be, which describes nothing.
                    "if" | "then" | "else" => pending.push(Light { doc: node.doc, value }),
                    "dependentSchemas" => {
                        pending.extend(value.as_object().into_iter().flat_map(|m| m.values()).map(|value| Light { doc: node.doc, value }));
                    }
                    _ => {}
                }
            }
            out.push(describer);
        }
        anything
    }
}

/// Leaves at and below a value, counted the way views count them.
fn count_leaves(value: &Value) -> usize {
    match value {
        Value::Object(map) if !map.is_empty() => map.values().map(count_leaves).sum(),
        _ => 1,
    }
}
