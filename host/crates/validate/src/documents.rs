//! The schema files of a schemas folder, read whole and parsed, and `$ref` resolution between them.
//!
//! Every `.json` file below the folder is read up front, so compiling never touches the disk and a
//! `$ref` can only ever reach a file of this folder. Files are named by their path relative to the
//! folder with `/` separators (`service_schemas/llm_providers.json`).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::SchemaError;

/// Largest schema file accepted.
pub const MAX_SCHEMA_BYTES: u64 = 8 * 1024 * 1024;
/// Most schema files a folder may hold.
pub const MAX_SCHEMA_FILES: usize = 1000;
/// Deepest nesting of a schema document (serde_json's own recursion limit, stated here so errors can name it).
pub const MAX_SCHEMA_DEPTH: usize = 128;
/// Deepest folder nesting searched for schema files.
const MAX_FOLDER_DEPTH: usize = 16;

/// One parsed schema file.
#[derive(Debug)]
pub(crate) struct SchemaDoc {
    /// Path relative to the schemas folder, `/`-separated.
    pub rel: Arc<str>,
    pub value: Value,
    /// SHA-256 of the file's bytes: the cache key of everything compiled from it.
    pub hash: [u8; 32],
}

/// All schema files of a folder.
#[derive(Debug, Default)]
pub(crate) struct SchemaDocs {
    pub by_rel: HashMap<Arc<str>, Arc<SchemaDoc>>,
}

/// A schema node: a value inside a document, with its JSON pointer (`""` for the root).
#[derive(Debug, Clone)]
pub(crate) struct Node<'a> {
    pub doc: &'a SchemaDoc,
    pub pointer: String,
    pub value: &'a Value,
}

impl<'a> Node<'a> {
    pub fn root(doc: &'a SchemaDoc) -> Self {
        Self { doc, pointer: String::new(), value: &doc.value }
    }

    /// The node at `self/<segments...>`, if it exists.
    pub fn child(&self, segments: &[&str]) -> Option<Node<'a>> {
        let mut value = self.value;
        let mut pointer = self.pointer.clone();
        for segment in segments {
            value = match value {
                Value::Object(map) => map.get(*segment)?,
                Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                _ => return None,
            };
            pointer.push('/');
            pointer.push_str(&escape_pointer_segment(segment));
        }
        Some(Node { doc: self.doc, pointer, value })
    }

    /// `global_schema.json#/properties/app/properties/debug`
    pub fn location(&self) -> String {
        format!("{}#{}", self.doc.rel, self.pointer)
    }
}

/// Why a `$ref` could not be followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RefProblem {
    /// It names another host or scheme (http, https, urn...).
    Remote,
    /// It names a file that is not in the schemas folder.
    MissingFile(String),
    /// The file exists but the fragment does not point at anything in it.
    MissingFragment(String),
}

impl RefProblem {
    pub fn describe(&self) -> String {
        match self {
            RefProblem::Remote => "it is not a file of the schemas folder".to_owned(),
            RefProblem::MissingFile(file) => format!("there is no schema file `{file}` in the schemas folder"),
            RefProblem::MissingFragment(fragment) => format!("`#{fragment}` points at nothing in that file"),
        }
    }
}

impl SchemaDocs {
    /// Reads every `.json` file below `dir`; a file whose bytes did not change since `previous`
    /// keeps its parsed document.
    pub fn read_folder(dir: &Path, previous: &SchemaDocs) -> Result<Self, SchemaError> {
        let root = fs::canonicalize(dir).map_err(|source| SchemaError::Io { path: dir.to_path_buf(), source })?;
        let mut files = Vec::new();
        collect_json_files(&root, &root, 0, &mut files)?;
        files.sort();
        let mut docs = SchemaDocs::default();
        for (rel, path) in files {
            let doc = read_doc(&root, &rel, &path, previous)?;
            docs.by_rel.insert(doc.rel.clone(), doc);
        }
        Ok(docs)
    }

    /// True when both hold the same files with the same contents.
    pub fn same_as(&self, other: &SchemaDocs) -> bool {
        self.by_rel.len() == other.by_rel.len() && self.by_rel.iter().all(|(rel, doc)| other.get(rel).is_some_and(|o| o.hash == doc.hash))
    }

    pub fn get(&self, rel: &str) -> Option<&Arc<SchemaDoc>> {
        self.by_rel.get(rel)
    }

    /// Follows `reference` written in document `from` (relative paths resolve against `from`'s folder).
    pub fn resolve<'a>(&'a self, from: &SchemaDoc, reference: &str) -> Result<Node<'a>, RefProblem> {
        let (target, fragment) = match reference.split_once('#') {
            Some((target, fragment)) => (target, fragment),
            None => (reference, ""),
        };
        let rel = if target.is_empty() { from.rel.to_string() } else { resolve_relative(&from.rel, target)? };
        let doc = self.by_rel.get(rel.as_str()).ok_or_else(|| RefProblem::MissingFile(rel.clone()))?;
        let fragment = percent_decode(fragment);
        if fragment.is_empty() {
            return Ok(Node::root(doc));
        }
        if fragment.starts_with('/') {
            let value = doc.value.pointer(&fragment).ok_or_else(|| RefProblem::MissingFragment(fragment.clone()))?;
            return Ok(Node { doc, pointer: fragment, value });
        }
        find_anchor(&doc.value, &fragment, String::new(), 0)
            .and_then(|pointer| doc.value.pointer(&pointer).map(|value| Node { doc, pointer, value }))
            .ok_or(RefProblem::MissingFragment(fragment))
    }
}

/// True when a reference names a scheme (`https:`, `urn:`...) other than the folder-local `file:`.
pub(crate) fn has_foreign_scheme(reference: &str) -> bool {
    match reference.split_once(':') {
        Some((scheme, _)) => {
            let is_scheme = !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
            is_scheme && !scheme.eq_ignore_ascii_case("file")
        }
        None => false,
    }
}

/// Resolves a file reference against the folder of `from`; `file:///x` and `/x` are folder-rooted.
fn resolve_relative(from: &str, target: &str) -> Result<String, RefProblem> {
    if has_foreign_scheme(target) {
        return Err(RefProblem::Remote);
    }
    let target = percent_decode(target);
    let (mut segments, rest): (Vec<&str>, &str) = if let Some(rest) = target.strip_prefix("file://") {
        (Vec::new(), rest)
    } else if let Some(rest) = target.strip_prefix('/') {
        (Vec::new(), rest)
    } else {
        let mut base: Vec<&str> = from.split('/').collect();
        base.pop();
        (base, target.as_str())
    };
    for segment in rest.split('/') {
        match segment {
            "" | "." => {}
            // Above the folder root stays at the root, like URI resolution: a `$ref` never leaves the folder.
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    Ok(segments.join("/"))
}

pub(crate) fn percent_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn escape_pointer_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The pointer of the subschema declaring `$anchor: name` (or draft-7 `$id: "#name"`).
fn find_anchor(value: &Value, name: &str, pointer: String, depth: usize) -> Option<String> {
    if depth > MAX_SCHEMA_DEPTH {
        return None;
    }
    match value {
        Value::Object(map) => {
            let declares = map.get("$anchor").and_then(Value::as_str) == Some(name)
                || map.get("$id").and_then(Value::as_str).and_then(|id| id.strip_prefix('#')) == Some(name);
            if declares {
                return Some(pointer);
            }
            map.iter().find_map(|(key, child)| find_anchor(child, name, format!("{pointer}/{}", escape_pointer_segment(key)), depth + 1))
        }
        Value::Array(items) => items.iter().enumerate().find_map(|(i, child)| find_anchor(child, name, format!("{pointer}/{i}"), depth + 1)),
        _ => None,
    }
}

fn collect_json_files(root: &Path, dir: &Path, depth: usize, out: &mut Vec<(String, PathBuf)>) -> Result<(), SchemaError> {
    if depth > MAX_FOLDER_DEPTH {
        return Ok(());
    }
    let io = |source| SchemaError::Io { path: dir.to_path_buf(), source };
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(io)?;
        let rel = relative_name(root, &path);
        // A link is followed only when it stays inside the folder.
        let resolved = if file_type.is_symlink() {
            let target = fs::canonicalize(&path).map_err(|source| SchemaError::Io { path: path.clone(), source })?;
            if !target.starts_with(root) {
                return Err(SchemaError::OutsideFolder { file: rel });
            }
            target
        } else {
            path.clone()
        };
        if resolved.is_dir() {
            if !file_type.is_symlink() {
                collect_json_files(root, &path, depth + 1, out)?;
            }
        } else if path.extension().is_some_and(|ext| ext == "json") {
            if out.len() >= MAX_SCHEMA_FILES {
                return Err(SchemaError::TooManyFiles { limit: MAX_SCHEMA_FILES });
            }
            out.push((rel, resolved));
        }
    }
    Ok(())
}

fn relative_name(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

fn read_doc(root: &Path, rel: &str, path: &Path, previous: &SchemaDocs) -> Result<Arc<SchemaDoc>, SchemaError> {
    // Opened without blocking and checked on the handle: a FIFO named like a schema is refused, never waited on.
    let bytes = potter_files::read_regular(path, MAX_SCHEMA_BYTES).map_err(|error| match error {
        potter_files::ReadError::NotRegular { kind, .. } => SchemaError::NotAFile { file: rel.to_owned(), kind },
        potter_files::ReadError::TooLarge { limit, .. } => {
            let size = fs::metadata(path).map_or(limit + 1, |meta| meta.len());
            SchemaError::TooLarge { file: rel.to_owned(), size, limit }
        }
        potter_files::ReadError::Io { source, .. } => SchemaError::Io { path: root.join(rel), source },
    })?;
    let hash: [u8; 32] = Sha256::digest(&bytes).into();
    if let Some(unchanged) = previous.get(rel).filter(|doc| doc.hash == hash) {
        return Ok(unchanged.clone());
    }
    let value = parse_schema_text(rel, &bytes)?;
    Ok(Arc::new(SchemaDoc { rel: rel.into(), value, hash }))
}

/// Parses schema text, naming file:line:col on failure. Nesting beyond [`MAX_SCHEMA_DEPTH`] is
/// refused by serde_json's recursion limit before any recursion of ours can run.
pub(crate) fn parse_schema_text(rel: &str, bytes: &[u8]) -> Result<Value, SchemaError> {
    serde_json::from_slice(bytes).map_err(|error| {
        let (line, column) = (error.line(), error.column());
        let text = error.to_string();
        let reason = text.strip_suffix(&format!(" at line {line} column {column}")).unwrap_or(&text).to_owned();
        if reason.contains("recursion limit exceeded") {
            SchemaError::TooDeep { file: rel.to_owned(), line, column, limit: MAX_SCHEMA_DEPTH }
        } else {
            SchemaError::NotJson { file: rel.to_owned(), line, column, reason }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_references_stay_inside_the_folder() {
        assert_eq!(resolve_relative("global_schema.json", "service_schemas/a.json").unwrap(), "service_schemas/a.json");
        assert_eq!(resolve_relative("service_schemas/a.json", "b.json").unwrap(), "service_schemas/b.json");
        assert_eq!(resolve_relative("service_schemas/a.json", "../../../etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(resolve_relative("a.json", "file:///lib/x.json").unwrap(), "lib/x.json");
        assert_eq!(resolve_relative("a.json", "https://example.com/x.json"), Err(RefProblem::Remote));
    }

    #[test]
    fn schemes_are_told_apart_from_paths() {
        assert!(has_foreign_scheme("https://example.com/s.json"));
        assert!(has_foreign_scheme("urn:example:thing"));
        assert!(!has_foreign_scheme("file:///x.json"));
        assert!(!has_foreign_scheme("lib/x.json#/definitions/a"));
        assert!(!has_foreign_scheme("#/definitions/a:b"));
    }
}
