//! The schemas of a folder as URI-identified resources, and every reference between them resolved
//! once per load, the way the specification (and the `jsonschema` crate) resolves them.
//!
//! Each file is the resource `file:///<rel>`. Every `$id` names another resource: absolute
//! (`urn:uuid:…`, `https://example.com/s.json`) or relative to the base it sits under.
//! `$anchor`, `$dynamicAnchor` and draft-07's `"$id": "#name"` name places inside a resource.
//! `$ref`, `$dynamicRef` and a custom `$schema` resolve (RFC 3986) against the base they sit
//! under, and only to resources of the folder: a URI no file and no `$id` of the folder names
//! is remote, and refused. Nothing is ever fetched.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use crate::documents::{escape_pointer_segment, percent_decode, RefProblem, SchemaDoc, MAX_SCHEMA_DEPTH};

/// The base URI of the folder: the file `a/b.json` is the resource `file:///a/b.json`.
pub(crate) const FOLDER_URI_PREFIX: &str = "file:///";

/// The metaschemas the `jsonschema` crate carries (drafts 4 to 2020-12 and the 2020-12 and 2019-09
/// vocabularies): a reference to one is served from the crate's copy, never fetched.
const BUILTIN_METASCHEMAS: [&str; 19] = [
    "http://json-schema.org/draft-04/schema",
    "http://json-schema.org/draft-06/schema",
    "http://json-schema.org/draft-07/schema",
    "https://json-schema.org/draft/2019-09/schema",
    "https://json-schema.org/draft/2019-09/meta/applicator",
    "https://json-schema.org/draft/2019-09/meta/content",
    "https://json-schema.org/draft/2019-09/meta/core",
    "https://json-schema.org/draft/2019-09/meta/format",
    "https://json-schema.org/draft/2019-09/meta/meta-data",
    "https://json-schema.org/draft/2019-09/meta/validation",
    "https://json-schema.org/draft/2020-12/schema",
    "https://json-schema.org/draft/2020-12/meta/core",
    "https://json-schema.org/draft/2020-12/meta/applicator",
    "https://json-schema.org/draft/2020-12/meta/unevaluated",
    "https://json-schema.org/draft/2020-12/meta/validation",
    "https://json-schema.org/draft/2020-12/meta/meta-data",
    "https://json-schema.org/draft/2020-12/meta/format-annotation",
    "https://json-schema.org/draft/2020-12/meta/format-assertion",
    "https://json-schema.org/draft/2020-12/meta/content",
];

/// Keywords that hold one subschema.
const SCHEMA_KEYWORDS: [&str; 12] =
    ["additionalProperties", "unevaluatedProperties", "unevaluatedItems", "items", "additionalItems", "contains", "not", "if", "then", "else", "propertyNames", "contentSchema"];
/// Keywords that hold an array of subschemas (`items` in draft-07's array form).
const SCHEMA_ARRAY_KEYWORDS: [&str; 5] = ["allOf", "anyOf", "oneOf", "prefixItems", "items"];
/// Keywords that hold subschemas by name (draft-07 `dependencies` mixes them with property lists).
const SCHEMA_MAP_KEYWORDS: [&str; 6] = ["properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"];

/// A keyword that refers to another schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RefKeyword {
    Ref,
    DynamicRef,
    /// A `$schema` that is no draft the `jsonschema` crate knows: a custom metaschema.
    Schema,
}

impl RefKeyword {
    pub fn name(self) -> &'static str {
        match self {
            RefKeyword::Ref => "$ref",
            RefKeyword::DynamicRef => "$dynamicRef",
            RefKeyword::Schema => "$schema",
        }
    }
}

/// A place in a schema file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub rel: Arc<str>,
    pub pointer: String,
}

/// A resource: a file, or a subschema with its own `$id`.
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    pub at: Target,
    /// Draft 4–7: `$id` beside `$ref` is ignored and `"$id": "#name"` is an anchor.
    legacy: bool,
}

/// Where a reference leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Located {
    /// A place in a file of the folder.
    Folder(Target),
    /// A metaschema the validator carries ([`BUILTIN_METASCHEMAS`]).
    Builtin,
}

/// One reference written in a schema, and where it leads.
#[derive(Debug)]
pub(crate) struct RefSite {
    pub rel: Arc<str>,
    pub pointer: String,
    pub keyword: RefKeyword,
    /// As written.
    pub reference: String,
    /// Resolved against the base it sits under (the reference as written when it cannot be).
    pub absolute: String,
    pub target: Result<Located, RefProblem>,
}

/// The resources, anchors and references of a folder.
#[derive(Debug, Default)]
pub(crate) struct Links {
    /// By URI without fragment: `file:///<rel>` of every file, and every `$id`.
    resources: HashMap<String, Resource>,
    /// By `<resource URI>#<name>`.
    anchors: HashMap<String, Target>,
    /// In file order, then document order.
    sites: Vec<RefSite>,
    /// `sites` by the address of the schema object that holds the reference, and its keyword.
    by_object: HashMap<(usize, RefKeyword), usize>,
}

/// A schema object met by the walk, with the base its references resolve against.
struct Pending<'a> {
    doc: &'a SchemaDoc,
    value: &'a Value,
    pointer: String,
    base: String,
    keyword: RefKeyword,
    reference: String,
}

impl Links {
    /// Indexes every resource and anchor of `docs` (sorted by file), then resolves every reference.
    pub fn build(docs: &[&SchemaDoc]) -> Self {
        let mut links = Links::default();
        let mut visited: HashSet<usize> = HashSet::new();
        let mut pending = Vec::new();
        for doc in docs {
            let uri = file_uri(&doc.rel);
            let legacy = is_legacy(&doc.value, false);
            links.resources.insert(uri.clone(), Resource { at: Target { rel: doc.rel.clone(), pointer: String::new() }, legacy });
            links.walk(doc, &doc.value, String::new(), uri, legacy, 0, &mut visited, &mut pending);
        }
        // A reference may lead into a part of a schema the walk does not enter (a JSON pointer
        // into an unknown keyword): walk each such target too, until nothing new is reached.
        while !pending.is_empty() {
            let mut reached = Vec::new();
            for site in pending.drain(..) {
                let (absolute, target) = links.resolve(&site.base, &site.reference);
                let address = site.value as *const Value as usize;
                links.by_object.insert((address, site.keyword), links.sites.len());
                if let Ok(Located::Folder(found)) = &target {
                    reached.push(found.clone());
                }
                links.sites.push(RefSite { rel: site.doc.rel.clone(), pointer: site.pointer, keyword: site.keyword, reference: site.reference, absolute, target });
            }
            for target in reached {
                let Some(doc) = docs.iter().find(|doc| doc.rel == target.rel) else { continue };
                let Some(value) = doc.value.pointer(&target.pointer) else { continue };
                if visited.contains(&(value as *const Value as usize)) {
                    continue;
                }
                let (base, legacy) = links.base_of(&target);
                links.walk(doc, value, target.pointer.clone(), base, legacy, 0, &mut visited, &mut pending);
            }
        }
        links
    }

    /// Every reference of the folder.
    pub fn sites(&self) -> &[RefSite] {
        &self.sites
    }

    /// Where the reference `keyword` of the schema object `value` leads (`None`: it has none, or it leads nowhere).
    pub fn target_of(&self, value: &Value, keyword: RefKeyword) -> Option<&Target> {
        let index = self.by_object.get(&(value as *const Value as usize, keyword))?;
        match &self.sites[*index].target {
            Ok(Located::Folder(target)) => Some(target),
            _ => None,
        }
    }

    /// Every URI a resource of the folder is known by, with the resource.
    pub fn resources(&self) -> impl Iterator<Item = (&str, &Target)> {
        self.resources.iter().map(|(uri, resource)| (uri.as_str(), &resource.at))
    }

    /// The base URI and dialect of the resource that `target` lies in (its nearest enclosing one
    /// by pointer), for walking a part of a schema reached by a JSON pointer.
    fn base_of(&self, target: &Target) -> (String, bool) {
        let mut best: Option<(&str, &Resource)> = None;
        for (uri, resource) in &self.resources {
            let inside = resource.at.rel == target.rel
                && (target.pointer == resource.at.pointer || target.pointer.starts_with(&format!("{}/", resource.at.pointer)) || resource.at.pointer.is_empty());
            let deeper = best.is_none_or(|(best_uri, best)| {
                resource.at.pointer.len() > best.at.pointer.len() || (resource.at.pointer.len() == best.at.pointer.len() && !uri.starts_with(FOLDER_URI_PREFIX) && best_uri.starts_with(FOLDER_URI_PREFIX))
            });
            if inside && deeper {
                best = Some((uri, resource));
            }
        }
        best.map_or_else(|| (file_uri(&target.rel), false), |(uri, resource)| (uri.to_owned(), resource.legacy))
    }

    #[allow(clippy::too_many_arguments)]
    fn walk<'a>(&mut self, doc: &'a SchemaDoc, value: &'a Value, pointer: String, base: String, legacy: bool, depth: usize, visited: &mut HashSet<usize>, pending: &mut Vec<Pending<'a>>) {
        if depth > MAX_SCHEMA_DEPTH {
            return;
        }
        let Value::Object(map) = value else { return };
        if !visited.insert(value as *const Value as usize) {
            return;
        }
        let legacy = is_legacy(value, legacy);
        let mut base = base;
        let here = || Target { rel: doc.rel.clone(), pointer: pointer.clone() };
        // Draft-07 ignores every keyword beside `$ref`, `$id` included.
        let id_applies = !(legacy && map.contains_key("$ref"));
        if let Some(id) = map.get("$id").and_then(Value::as_str).filter(|_| id_applies) {
            let (resource, fragment) = id.split_once('#').unwrap_or((id, ""));
            if !resource.is_empty() {
                if let Ok(resolved) = resolve_uri(&base, resource) {
                    base = resolved;
                    self.resources.entry(base.clone()).or_insert_with(|| Resource { at: here(), legacy });
                }
            }
            if legacy && !fragment.is_empty() {
                self.anchors.entry(format!("{base}#{fragment}")).or_insert_with(here);
            }
        }
        for keyword in ["$anchor", "$dynamicAnchor"] {
            if let Some(name) = map.get(keyword).and_then(Value::as_str) {
                self.anchors.entry(format!("{base}#{name}")).or_insert_with(here);
            }
        }
        let mut refer = |keyword: RefKeyword, reference: &str| {
            pending.push(Pending { doc, value, pointer: pointer.clone(), base: base.clone(), keyword, reference: reference.to_owned() });
        };
        if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
            refer(RefKeyword::Ref, reference);
        }
        if let Some(reference) = map.get("$dynamicRef").and_then(Value::as_str) {
            refer(RefKeyword::DynamicRef, reference);
        }
        if let Some(metaschema) = map.get("$schema").and_then(Value::as_str) {
            if jsonschema::Draft::from_schema_uri(metaschema) == jsonschema::Draft::Unknown {
                refer(RefKeyword::Schema, metaschema);
            }
        }
        let child_pointer = |segments: &[&str]| {
            let mut out = pointer.clone();
            for segment in segments {
                out.push('/');
                out.push_str(&escape_pointer_segment(segment));
            }
            out
        };
        for (key, child) in map {
            let key = key.as_str();
            if SCHEMA_KEYWORDS.contains(&key) && !child.is_array() {
                self.walk(doc, child, child_pointer(&[key]), base.clone(), legacy, depth + 1, visited, pending);
            } else if SCHEMA_ARRAY_KEYWORDS.contains(&key) {
                for (index, item) in child.as_array().into_iter().flatten().enumerate() {
                    self.walk(doc, item, child_pointer(&[key, &index.to_string()]), base.clone(), legacy, depth + 1, visited, pending);
                }
            } else if SCHEMA_MAP_KEYWORDS.contains(&key) {
                for (name, item) in child.as_object().into_iter().flatten() {
                    self.walk(doc, item, child_pointer(&[key, name]), base.clone(), legacy, depth + 1, visited, pending);
                }
            }
        }
    }

    /// Resolves `reference` against `base`: the absolute URI, and the place it names in the folder.
    fn resolve(&self, base: &str, reference: &str) -> (String, Result<Located, RefProblem>) {
        let absolute = match resolve_uri(base, reference) {
            Ok(absolute) => absolute,
            Err(reason) => return (reference.to_owned(), Err(RefProblem::NotAUri(reason))),
        };
        let target = self.locate(&absolute);
        (absolute, target)
    }

    /// The place an absolute URI names in the folder.
    fn locate(&self, absolute: &str) -> Result<Located, RefProblem> {
        let (resource_uri, fragment) = absolute.split_once('#').unwrap_or((absolute, ""));
        let Some(resource) = self.resources.get(resource_uri) else {
            if BUILTIN_METASCHEMAS.contains(&resource_uri) {
                return Ok(Located::Builtin);
            }
            return Err(match resource_uri.strip_prefix(FOLDER_URI_PREFIX) {
                Some(rel) => RefProblem::MissingFile(percent_decode(rel)),
                None => RefProblem::Remote,
            });
        };
        let fragment = percent_decode(fragment);
        if fragment.is_empty() {
            return Ok(Located::Folder(resource.at.clone()));
        }
        if fragment.starts_with('/') {
            return Ok(Located::Folder(Target { rel: resource.at.rel.clone(), pointer: format!("{}{fragment}", resource.at.pointer) }));
        }
        self.anchors.get(&format!("{resource_uri}#{fragment}")).cloned().map(Located::Folder).ok_or(RefProblem::MissingFragment(fragment))
    }
}

/// `file:///<rel>`
pub(crate) fn file_uri(rel: &str) -> String {
    format!("{FOLDER_URI_PREFIX}{rel}")
}

/// RFC 3986 resolution, exactly as the `jsonschema` crate does it (so both agree on every target).
fn resolve_uri(base: &str, reference: &str) -> Result<String, String> {
    let base = jsonschema::uri::from_str(base).map_err(|error| error.to_string())?;
    let resolved = jsonschema::uri::resolve_against(&base.borrow(), reference).map_err(|error| error.to_string())?;
    Ok(resolved.as_str().to_owned())
}

/// True for a schema of draft 4, 6 or 7 (by its own `$schema`, else as the schema it sits in).
fn is_legacy(value: &Value, inherited: bool) -> bool {
    use jsonschema::Draft;
    match value.get("$schema").and_then(Value::as_str).map(Draft::from_schema_uri) {
        Some(Draft::Draft4 | Draft::Draft6 | Draft::Draft7) => true,
        Some(Draft::Unknown) | None => inherited,
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links_of(rel: &str, value: Value) -> Links {
        let doc = SchemaDoc { rel: rel.into(), value, hash: [0; 32] };
        Links::build(&[&doc])
    }

    #[test]
    fn relative_references_stay_inside_the_folder() {
        let links = links_of("service_schemas/a.json", serde_json::json!({"$defs": {"x": {"type": "string"}}}));
        let base = file_uri("service_schemas/a.json");
        let locate = |reference: &str| links.resolve(&base, reference).1;
        assert_eq!(locate("b.json"), Err(RefProblem::MissingFile("service_schemas/b.json".into())));
        assert_eq!(locate("../../../etc/passwd"), Err(RefProblem::MissingFile("etc/passwd".into())));
        assert_eq!(locate("file:///lib/x.json"), Err(RefProblem::MissingFile("lib/x.json".into())));
        assert_eq!(locate("/lib/x.json"), Err(RefProblem::MissingFile("lib/x.json".into())));
        assert_eq!(locate("https://example.com/x.json"), Err(RefProblem::Remote));
        assert_eq!(locate("urn:example:thing"), Err(RefProblem::Remote));
        assert_eq!(locate("#/$defs/x"), Ok(Located::Folder(Target { rel: "service_schemas/a.json".into(), pointer: "/$defs/x".into() })));
        assert_eq!(locate("https://json-schema.org/draft/2020-12/schema"), Ok(Located::Builtin));
    }

    #[test]
    fn ids_and_anchors_name_places_in_the_folder() {
        let links = links_of(
            "a.json",
            serde_json::json!({"$id": "https://example.com/root", "$defs": {"n": {"$id": "node", "$anchor": "here"}, "old": {"$schema": "http://json-schema.org/draft-07/schema#", "$id": "#legacy"}}}),
        );
        let at = |pointer: &str| Ok(Located::Folder(Target { rel: "a.json".into(), pointer: pointer.into() }));
        assert_eq!(links.locate("https://example.com/root#/$defs"), at("/$defs"));
        assert_eq!(links.locate("https://example.com/node"), at("/$defs/n"));
        assert_eq!(links.locate("https://example.com/node#here"), at("/$defs/n"));
        assert_eq!(links.locate("https://example.com/root#legacy"), at("/$defs/old"));
        assert_eq!(links.locate("file:///a.json"), at(""));
        assert_eq!(links.locate("https://example.com/other"), Err(RefProblem::Remote));
    }
}
