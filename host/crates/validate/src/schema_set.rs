//! A schemas folder loaded and compiled: the global schema, the service schemas, and the cache
//! that recompiles a schema only when a file that went into it changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use potter_engine::{Issue, Layer, LayerSource};

use crate::compile::{compile, CompileInputs, Compiled};
use crate::defaults::{refused_defaults, RefusedDefaults};
use crate::documents::{Node, SchemaDocs};
use crate::error::SchemaError;
use crate::refs::check_references;
use crate::secrets::{schema_secret_patterns, SecretPattern};
use crate::walk::Patterns;

/// The schema that validates every view.
pub const GLOBAL_SCHEMA: &str = "global_schema.json";
/// The folder of per-service schemas: `service_schemas/<service>.json` validates that service's views.
pub const SERVICE_SCHEMAS_DIR: &str = "service_schemas";

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Schemas compiled again because they or a file they refer to changed (or are new).
    pub recompiled: Vec<String>,
    /// Schemas whose compiled form was kept.
    pub reused: Vec<String>,
}

/// The compiled schemas of one folder. Cheap to share: validation only reads it.
pub struct SchemaSet {
    dir: Option<PathBuf>,
    docs: SchemaDocs,
    /// Compiled root schemas: the global one and every `service_schemas/*.json`, by file.
    compiled: BTreeMap<Arc<str>, Arc<Compiled>>,
    patterns: Patterns,
    secrets: Vec<SecretPattern>,
    refused_defaults: RefusedDefaults,
    compiles: u64,
}

impl std::fmt::Debug for SchemaSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaSet").field("dir", &self.dir).field("schemas", &self.compiled.keys().collect::<Vec<_>>()).finish()
    }
}

impl Default for SchemaSet {
    fn default() -> Self {
        Self::empty()
    }
}

impl SchemaSet {
    /// No schemas: every view passes schema validation and coverage is not checked.
    pub fn empty() -> Self {
        Self { dir: None, docs: SchemaDocs::default(), compiled: BTreeMap::new(), patterns: Patterns::default(), secrets: Vec::new(), refused_defaults: RefusedDefaults::new(), compiles: 0 }
    }

    /// Reads and compiles every schema of `dir`. Fails whole: with any bad file nothing is loaded.
    pub fn load(dir: &Path) -> Result<Self, SchemaError> {
        let mut set = Self::empty();
        set.dir = Some(dir.to_path_buf());
        set.reload()?;
        Ok(set)
    }

    /// The schemas of a tree's `schemas` path: none when nothing is there; [`SchemaError::NotAFolder`]
    /// when something is there that is no folder (a file, a FIFO, a link to nothing), so an
    /// unusable `schemas` never turns validation off without a word.
    pub fn load_tree_folder(dir: &Path) -> Result<Self, SchemaError> {
        match std::fs::symlink_metadata(dir) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::empty()),
            _ => Self::load(dir),
        }
    }

    /// Reads the folder again and recompiles only the schemas whose own file or any file their
    /// `$ref`s reached changed (by SHA-256 of the content). On error the set is left as it was.
    pub fn reload(&mut self) -> Result<ReloadSummary, SchemaError> {
        let Some(dir) = &self.dir else { return Ok(ReloadSummary::default()) };
        usable_folder(dir)?;
        let docs = SchemaDocs::read_folder(dir, &self.docs)?;
        if docs.same_as(&self.docs) && !self.compiled.is_empty() {
            let reused = self.compiled.keys().map(|rel| rel.to_string()).collect();
            return Ok(ReloadSummary { recompiled: Vec::new(), reused });
        }
        check_references(&docs)?;
        // Built on first need: a reload that recompiles nothing does not copy the documents.
        let mut inputs: Option<CompileInputs> = None;
        let mut compiled = BTreeMap::new();
        let mut summary = ReloadSummary::default();
        let mut compiles = 0;
        for rel in root_schema_files(&docs) {
            let previous = self.compiled.get(rel.as_str()).filter(|old| unchanged(old, &docs));
            let schema = match previous {
                Some(old) => {
                    summary.reused.push(rel.clone());
                    old.clone()
                }
                None => {
                    compiles += 1;
                    summary.recompiled.push(rel.clone());
                    let inputs = inputs.get_or_insert_with(|| CompileInputs::new(&docs));
                    Arc::new(compile(&docs, inputs, &rel)?)
                }
            };
            compiled.insert(Arc::from(rel.as_str()), schema);
        }
        let roots = root_schema_files(&docs);
        let roots: Vec<&str> = roots.iter().map(String::as_str).collect();
        let refused_defaults = refused_defaults(&docs, inputs.get_or_insert_with(|| CompileInputs::new(&docs)), &roots);
        let patterns = Patterns::collect(&docs);
        let mut secrets = Vec::new();
        if let Some(doc) = docs.get(GLOBAL_SCHEMA) {
            secrets.extend(schema_secret_patterns(&docs, &patterns, Node::root(doc), None));
        }
        for service in service_names_in(&docs) {
            if let Some(doc) = docs.get(Self::service_schema_file(&service).as_str()) {
                secrets.extend(schema_secret_patterns(&docs, &patterns, Node::root(doc), Some(Arc::from(service.as_str()))));
            }
        }
        self.docs = docs;
        self.compiled = compiled;
        self.patterns = patterns;
        self.secrets = secrets;
        self.refused_defaults = refused_defaults;
        self.compiles += compiles;
        Ok(summary)
    }

    /// A warning when this set holds no schema files while the tree's files look like they meant
    /// to be checked: they hold secrets (decrypted ciphertexts) or name a `$schema`. Such a tree
    /// validates nothing, which is easy to miss (a copied tree that lost its `schemas/`).
    pub fn missing_schemas_warning(&self, layers: &[Arc<Layer>]) -> Option<Issue> {
        if !self.docs.by_rel.is_empty() {
            return None;
        }
        let hints: Vec<String> = layers
            .iter()
            .filter_map(|layer| match &layer.source {
                LayerSource::File(file) if !layer.secrets.is_empty() => Some(format!("{file} holds secrets")),
                LayerSource::File(file) if layer.data.get("$schema").is_some() => Some(format!("{file} names a `$schema`")),
                _ => None,
            })
            .collect();
        if hints.is_empty() {
            return None;
        }
        let message = format!(
            "the tree has no schemas (no schema files under schemas/), so no value is checked, yet {}; add schemas/global_schema.json",
            hints.join(", ")
        );
        Some(Issue::warning("", message, "schemas"))
    }

    /// The folder the set was loaded from.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Every schema file of the folder, relative and `/`-separated, sorted.
    pub fn files(&self) -> Vec<&str> {
        let mut files: Vec<&str> = self.docs.by_rel.keys().map(|rel| &**rel).collect();
        files.sort_unstable();
        files
    }

    /// True when the folder has a `global_schema.json`.
    pub fn has_global(&self) -> bool {
        self.compiled.contains_key(GLOBAL_SCHEMA)
    }

    /// The names `service_schemas/<name>.json` exist for (a file that is not a service's is a `$ref` library).
    pub fn service_names(&self) -> Vec<&str> {
        self.compiled.keys().filter_map(|rel| service_name_of(rel)).collect()
    }

    /// `service_schemas/<service>.json`
    pub fn service_schema_file(service: &str) -> String {
        format!("{SERVICE_SCHEMAS_DIR}/{service}.json")
    }

    /// How many schema compilations this set has done since it was created (the cache's witness).
    pub fn compile_count(&self) -> u64 {
        self.compiles
    }

    /// Schema defaults their own schema refuses (not filled in), by declaring schema, with the reason.
    pub(crate) fn refused_defaults(&self) -> &RefusedDefaults {
        &self.refused_defaults
    }

    /// A warning per schema default that is not filled in because its own schema refuses it.
    pub fn refused_default_warnings(&self) -> Vec<Issue> {
        self.refused_defaults
            .iter()
            .map(|(location, reason)| Issue::warning("", format!("the default of {location} is not used: its own schema refuses it ({reason})"), "schema:default"))
            .collect()
    }

    /// Secret path patterns declared by `"secret": true` in the schemas (service ones carry their service).
    pub fn secret_patterns(&self) -> &[SecretPattern] {
        &self.secrets
    }

    /// The compiled schemas that validate a view of `service`: the global schema, then the service's.
    pub(crate) fn schemas_for(&self, service: Option<&str>) -> Vec<(&str, &Compiled)> {
        let mut out = Vec::with_capacity(2);
        if let Some((rel, schema)) = self.compiled.get_key_value(GLOBAL_SCHEMA) {
            out.push((&**rel, &**schema));
        }
        if let Some(service) = service {
            if let Some((rel, schema)) = self.compiled.get_key_value(Self::service_schema_file(service).as_str()) {
                out.push((&**rel, &**schema));
            }
        }
        out
    }

    pub(crate) fn docs(&self) -> &SchemaDocs {
        &self.docs
    }

    pub(crate) fn patterns(&self) -> &Patterns {
        &self.patterns
    }
}

/// Refuses a schemas path that is not a folder, saying what it is instead.
fn usable_folder(dir: &Path) -> Result<(), SchemaError> {
    let unusable = |reason: String| SchemaError::NotAFolder { path: dir.to_path_buf(), reason };
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(meta) if meta.is_file() => Err(unusable("it is a file, not a folder".to_owned())),
        Ok(_) => Err(unusable("it is a special file (FIFO, socket or device), not a folder".to_owned())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => match std::fs::read_link(dir) {
            Ok(target) => Err(unusable(format!("it is a symbolic link to `{}`, which does not exist", target.display()))),
            Err(_) => Err(unusable("it does not exist (any more)".to_owned())),
        },
        Err(source) => Err(SchemaError::Io { path: dir.to_path_buf(), source }),
    }
}

/// The schema files compiled on their own: the global schema and `service_schemas/*.json`.
fn root_schema_files(docs: &SchemaDocs) -> Vec<String> {
    let mut roots: Vec<String> = docs.by_rel.keys().filter(|rel| &***rel == GLOBAL_SCHEMA || service_name_of(rel).is_some()).map(|rel| rel.to_string()).collect();
    roots.sort();
    roots
}

fn service_names_in(docs: &SchemaDocs) -> Vec<String> {
    let mut names: Vec<String> = docs.by_rel.keys().filter_map(|rel| service_name_of(rel)).map(str::to_owned).collect();
    names.sort();
    names
}

fn service_name_of(rel: &str) -> Option<&str> {
    let name = rel.strip_prefix(SERVICE_SCHEMAS_DIR)?.strip_prefix('/')?.strip_suffix(".json")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// True when every file that went into `compiled` still has the same content.
fn unchanged(compiled: &Compiled, docs: &SchemaDocs) -> bool {
    compiled.inputs.iter().all(|(rel, hash)| docs.get(rel).is_some_and(|doc| doc.hash == *hash))
}
