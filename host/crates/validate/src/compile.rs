//! Compiling one schema file with the `jsonschema` crate: drafts by `$schema`, format assertions on,
//! `$ref`s served from the already-read folder only, and a record of which files each compile used.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use jsonschema::{Retrieve, Uri};
use serde_json::Value;

use crate::documents::{has_foreign_scheme, SchemaDocs};
use crate::error::SchemaError;

/// Base URI of the folder: a schema file `a/b.json` is `file:///a/b.json`, so relative `$ref`s
/// resolve like paths and error locations read `a/b.json#/pointer` once the prefix is cut.
pub(crate) const FOLDER_URI_PREFIX: &str = "file:///";

/// A compiled schema and the content hashes of every file that went into it.
pub(crate) struct Compiled {
    pub validator: jsonschema::Validator,
    /// (file, SHA-256) of the schema itself and every file its `$ref`s reached.
    pub inputs: BTreeMap<Arc<str>, [u8; 32]>,
}

/// Serves `$ref` targets from the folder's documents and refuses everything else.
struct FolderRetriever {
    documents: Arc<BTreeMap<Arc<str>, Value>>,
    used: Arc<Mutex<Vec<Arc<str>>>>,
}

impl Retrieve for FolderRetriever {
    fn retrieve(&self, uri: &Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let text = uri.as_str();
        if has_foreign_scheme(text) {
            return Err(format!("remote $ref `{text}` refused: schemas may only refer to files inside the schemas folder").into());
        }
        let rel = text.strip_prefix(FOLDER_URI_PREFIX).unwrap_or(text);
        let rel = rel.split('#').next().unwrap_or_default();
        match self.documents.get_key_value(rel) {
            Some((name, value)) => {
                self.used.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(name.clone());
                Ok(value.clone())
            }
            None => Err(format!("there is no schema file `{rel}` in the schemas folder").into()),
        }
    }
}

/// Everything a compile may read, shared by all compiles of one load.
pub(crate) struct CompileInputs {
    documents: Arc<BTreeMap<Arc<str>, Value>>,
}

impl CompileInputs {
    pub fn new(docs: &SchemaDocs) -> Self {
        let documents = docs.by_rel.iter().map(|(rel, doc)| (rel.clone(), doc.value.clone())).collect();
        Self { documents: Arc::new(documents) }
    }
}

/// Compiles the schema file `rel`.
pub(crate) fn compile(docs: &SchemaDocs, inputs: &CompileInputs, rel: &str) -> Result<Compiled, SchemaError> {
    let doc = docs.get(rel).ok_or_else(|| SchemaError::Compile { file: rel.to_owned(), reason: "no such file".to_owned() })?;
    let used = Arc::new(Mutex::new(Vec::new()));
    let retriever = FolderRetriever { documents: inputs.documents.clone(), used: used.clone() };
    let result = jsonschema::options()
        .with_retriever(retriever)
        .with_base_uri(format!("{FOLDER_URI_PREFIX}{rel}"))
        .should_validate_formats(true)
        .build(&doc.value);
    let validator = result.map_err(|error| describe_compile_error(rel, &error))?;
    let mut inputs_used = BTreeMap::new();
    inputs_used.insert(doc.rel.clone(), doc.hash);
    for name in used.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
        if let Some(dep) = docs.get(name) {
            inputs_used.insert(dep.rel.clone(), dep.hash);
        }
    }
    Ok(Compiled { validator, inputs: inputs_used })
}

/// Turns a build error into "which file, where, why". A meta-schema violation points into the schema.
fn describe_compile_error(rel: &str, error: &jsonschema::ValidationError<'_>) -> SchemaError {
    use jsonschema::error::ValidationErrorKind;
    match error.kind() {
        ValidationErrorKind::Referencing(reference_error) => {
            let reason = reference_error.to_string();
            if reason.contains("remote $ref") {
                SchemaError::Compile { file: rel.to_owned(), reason }
            } else {
                SchemaError::Compile { file: rel.to_owned(), reason: format!("a $ref cannot be resolved: {reason}") }
            }
        }
        _ => SchemaError::Invalid {
            file: rel.to_owned(),
            pointer: error.instance_path().as_str().to_owned(),
            // The offending part of the schema is named by its pointer; echo the reason, not the value.
            reason: error.to_string(),
        },
    }
}
