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
use crate::links::{Links, RefKeyword, Target};

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

/// All schema files of a folder, and the references between them.
#[derive(Debug, Default)]
pub(crate) struct SchemaDocs {
    pub by_rel: HashMap<Arc<str>, Arc<SchemaDoc>>,
    pub links: Links,
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
    /// It names another host or scheme (http, https, urn...) that no `$id` of the folder declares.
    Remote,
    /// It is not a URI reference (RFC 3986).
    NotAUri(String),
    /// It names a file that is not in the schemas folder.
    MissingFile(String),
    /// The file exists but the fragment does not point at anything in it.
    MissingFragment(String),
}

impl RefProblem {
    pub fn describe(&self) -> String {
        match self {
            RefProblem::Remote => "it is not a file of the schemas folder".to_owned(),
            RefProblem::NotAUri(reason) => format!("it is not a URI reference: {reason}"),
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
        let mut sorted: Vec<&SchemaDoc> = docs.by_rel.values().map(|doc| &**doc).collect();
        sorted.sort_by(|a, b| a.rel.cmp(&b.rel));
        docs.links = Links::build(&sorted);
        Ok(docs)
    }

    /// True when both hold the same files with the same contents.
    pub fn same_as(&self, other: &SchemaDocs) -> bool {
        self.by_rel.len() == other.by_rel.len() && self.by_rel.iter().all(|(rel, doc)| other.get(rel).is_some_and(|o| o.hash == doc.hash))
    }

    pub fn get(&self, rel: &str) -> Option<&Arc<SchemaDoc>> {
        self.by_rel.get(rel)
    }

    /// Where the reference `keyword` of the schema node leads, as a node (`None`: it has none, or
    /// it leads nowhere the folder has; a load refuses the latter before anything asks).
    pub fn target<'a>(&'a self, node_value: &Value, keyword: RefKeyword) -> Option<Node<'a>> {
        let target = self.links.target_of(node_value, keyword)?;
        self.node_at(target)
    }

    /// The node at a place of a file of the folder.
    pub fn node_at(&self, target: &Target) -> Option<Node<'_>> {
        let doc = self.by_rel.get(&target.rel)?;
        let value = doc.value.pointer(&target.pointer)?;
        Some(Node { doc, pointer: target.pointer.clone(), value })
    }
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
