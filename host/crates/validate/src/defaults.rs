//! Schema `default`s as a layer of rank [`Rank::Defaults`], each value located by a JSON pointer
//! into its schema so `explain` can say `schema default (global_schema.json#/properties/app/properties/debug)`.

use std::collections::BTreeMap;
use std::sync::Arc;

use potter_engine::layer::collect_paths;
use potter_engine::merge::merge_into;
use potter_engine::{path, Layer, LayerSource, Location, Locations, Rank, Scope};
use serde_json::{Map, Value};

use crate::compile::{refusal_at, CompileInputs};
use crate::documents::{Node, SchemaDocs};
use crate::schema_set::{SchemaSet, GLOBAL_SCHEMA};
use crate::walk::{expand, properties};

/// Deepest default collected.
const MAX_DEFAULT_DEPTH: usize = 32;

/// Name of the global defaults layer; service layers are `schema-defaults/<service>`.
pub const DEFAULTS_LAYER: &str = "schema-defaults";

/// The defaults of `global_schema.json` as a layer that applies everywhere (empty without one).
pub fn defaults_layer(schemas: &SchemaSet) -> Layer {
    let (data, locations) = match schemas.docs().get(GLOBAL_SCHEMA) {
        Some(doc) => collect(schemas.docs(), Node::root(doc), schemas.refused_defaults(), &mut Vec::new()),
        None => (Map::new(), Locations::default()),
    };
    Layer::with_locations(DEFAULTS_LAYER, Rank::Defaults, Scope::everywhere(), LayerSource::Defaults(GLOBAL_SCHEMA.to_owned()), data, locations)
}

/// The global defaults layer plus one per service schema (scoped to that service), skipping empty ones.
pub fn defaults_layers(schemas: &SchemaSet) -> Vec<Layer> {
    let mut layers = vec![defaults_layer(schemas)];
    for service in schemas.service_names() {
        let rel = SchemaSet::service_schema_file(service);
        let Some(doc) = schemas.docs().get(rel.as_str()) else { continue };
        let (data, locations) = collect(schemas.docs(), Node::root(doc), schemas.refused_defaults(), &mut Vec::new());
        if data.is_empty() {
            continue;
        }
        let scope = Scope { service: Some(Arc::from(service)), ..Scope::everywhere() };
        layers.push(Layer::with_locations(format!("{DEFAULTS_LAYER}/{service}"), Rank::Defaults, scope, LayerSource::Defaults(rel), data, locations));
    }
    layers.retain(|layer| layer.data.as_object().is_some_and(|data| !data.is_empty()));
    layers
}

/// Defaults their own schema refuses, by the location of the schema that declares them, with the
/// reason. JSON Schema says a `default` never makes a value invalid; so such a default is not
/// filled in (the tree gets a warning naming it) instead of making every view invalid.
pub(crate) type RefusedDefaults = BTreeMap<String, String>;

/// The defaults of the schema files `roots` that the schema declaring each refuses.
pub(crate) fn refused_defaults(docs: &SchemaDocs, inputs: &CompileInputs, roots: &[&str]) -> RefusedDefaults {
    let mut declared = Vec::new();
    for rel in roots {
        if let Some(doc) = docs.get(rel) {
            collect(docs, Node::root(doc), &RefusedDefaults::new(), &mut declared);
        }
    }
    let mut refused = RefusedDefaults::new();
    for (rel, pointer, default) in declared {
        let location = format!("{rel}#{pointer}");
        if refused.contains_key(&location) {
            continue;
        }
        if let Some(reason) = refusal_at(inputs, &rel, &pointer, &default) {
            refused.insert(location, reason);
        }
    }
    refused
}


/// A declared default: (file, pointer of the declaring schema, value).
type Declared = Vec<(Arc<str>, String, Value)>;

fn collect(docs: &SchemaDocs, root: Node<'_>, refused: &RefusedDefaults, declared: &mut Declared) -> (Map<String, Value>, Locations) {
    let mut data = Map::new();
    let mut locations = Locations::default();
    let mut walk = Walk { docs, refused, declared, locations: &mut locations, ancestors: Vec::new() };
    walk.below(vec![root], "", &mut data);
    (data, locations)
}

struct Walk<'a, 'w> {
    docs: &'a SchemaDocs,
    refused: &'w RefusedDefaults,
    declared: &'w mut Declared,
    locations: &'w mut Locations,
    ancestors: Vec<*const Value>,
}

/// Fills `data` with the defaults of the properties of the schemas `starts`. Nested defaults come
/// first; an object `default` written on the parent is merged over them (the explicit value wins).
impl<'a> Walk<'a, '_> {
fn below(&mut self, starts: Vec<Node<'a>>, prefix: &str, data: &mut Map<String, Value>) {
    let docs = self.docs;
    if self.ancestors.len() >= MAX_DEFAULT_DEPTH {
        return;
    }
    let applicable = expand(docs, starts);
    for node in &applicable.nodes {
        let identity = node.value as *const Value;
        if self.ancestors.contains(&identity) {
            continue; // a recursive schema has no finite defaults below this point
        }
        self.ancestors.push(identity);
        for (key, child) in properties(node) {
            let child_path = path::join(prefix, key);
            let mut nested = Map::new();
            self.below(vec![child.clone()], &child_path, &mut nested);
            let with_default: Vec<Node<'a>> = expand(docs, vec![child.clone()]).nodes.into_iter().filter(|n| n.value.get("default").is_some_and(|d| !d.is_null())).collect();
            for node in &with_default {
                self.declared.push((node.doc.rel.clone(), node.pointer.clone(), node.value["default"].clone()));
            }
            let declared = with_default.into_iter().find(|n| !self.refused.contains_key(&n.location()));
            let locations = &mut *self.locations;
            let value = match declared {
                Some(declaring) => {
                    let default = declaring.value["default"].clone();
                    let pointer: Box<str> = declaring.location().into();
                    locations.insert(&child_path, Location::Pointer(pointer.clone()));
                    collect_paths(&default, &child_path, &mut |p| {
                        locations.get_or_insert_with(p, || Location::Pointer(pointer.clone()));
                    });
                    match (default, nested.is_empty()) {
                        (Value::Object(explicit), false) => {
                            merge_into(&mut nested, &explicit);
                            Value::Object(nested)
                        }
                        (default, _) => default,
                    }
                }
                None if !nested.is_empty() => {
                    locations.get_or_insert_with(&child_path, || Location::Pointer(child.location().into()));
                    Value::Object(nested)
                }
                None => continue,
            };
            match (data.get_mut(key.as_str()), value) {
                (Some(Value::Object(existing)), Value::Object(more)) => merge_into(existing, &more),
                (_, value) => {
                    data.insert(key.clone(), value);
                }
            }
        }
        self.ancestors.pop();
    }
}
}
