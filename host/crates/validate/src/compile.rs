//! Compiling one schema file with the `jsonschema` crate: drafts by `$schema`, format assertions on,
//! `$ref`s served from the already-read folder only, and a record of which files each compile used.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use jsonschema::{Retrieve, Uri};
use serde_json::Value;

use crate::documents::{RefProblem, SchemaDocs};
use crate::error::SchemaError;
pub(crate) use crate::links::FOLDER_URI_PREFIX;
use crate::links::file_uri;

/// A compiled schema and the content hashes of every file that went into it.
pub(crate) struct Compiled {
    pub validator: jsonschema::Validator,
    /// (file, SHA-256) of the schema itself and every file its `$ref`s reached.
    pub inputs: BTreeMap<Arc<str>, [u8; 32]>,
}

/// A resource of the folder as the compiler is given it, and the file it comes from.
struct Served {
    rel: Arc<str>,
    value: Value,
}

/// Serves `$ref` targets (and custom metaschemas) from the folder's resources, by file path or
/// `$id`, and refuses everything else.
struct FolderRetriever {
    resources: Arc<HashMap<String, Served>>,
    used: Arc<Mutex<Vec<Arc<str>>>>,
}

impl Retrieve for FolderRetriever {
    fn retrieve(&self, uri: &Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let text = uri.as_str();
        let resource = text.split('#').next().unwrap_or_default();
        match self.resources.get(resource) {
            Some(served) => {
                self.used.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(served.rel.clone());
                Ok(served.value.clone())
            }
            None => match resource.strip_prefix(FOLDER_URI_PREFIX) {
                Some(rel) => Err(RefProblem::MissingFile(crate::documents::percent_decode(rel)).describe().into()),
                None => Err(format!("remote $ref `{text}` refused: schemas may only refer to files inside the schemas folder").into()),
            },
        }
    }
}

/// Everything a compile may read, shared by all compiles of one load.
pub(crate) struct CompileInputs {
    resources: Arc<HashMap<String, Served>>,
}

impl CompileInputs {
    pub fn new(docs: &SchemaDocs) -> Self {
        let mut resources = HashMap::new();
        for (uri, target) in docs.links.resources() {
            let Some(node) = docs.node_at(target) else { continue };
            let mut value = node.value.clone();
            // A subschema with its own `$id` is served alone: it keeps the dialect of its file.
            if let (Value::Object(map), Some(dialect)) = (&mut value, node.doc.value.get("$schema").filter(|_| !target.pointer.is_empty())) {
                map.entry("$schema").or_insert_with(|| dialect.clone());
            }
            resources.insert(uri.to_owned(), Served { rel: target.rel.clone(), value });
        }
        Self { resources: Arc::new(resources) }
    }
}

/// Compiles the schema file `rel`.
pub(crate) fn compile(docs: &SchemaDocs, inputs: &CompileInputs, rel: &str) -> Result<Compiled, SchemaError> {
    let doc = docs.get(rel).ok_or_else(|| SchemaError::Compile { file: rel.to_owned(), reason: "no such file".to_owned() })?;
    let used = Arc::new(Mutex::new(Vec::new()));
    let retriever = FolderRetriever { resources: inputs.resources.clone(), used: used.clone() };
    let result = jsonschema::options()
        .with_retriever(retriever)
        .with_base_uri(file_uri(rel))
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

/// Why the schema at `rel#pointer` refuses `value` (its first error, without the value), or
/// `None` when it accepts it (or cannot be compiled alone, which the load reports elsewhere).
pub(crate) fn refusal_at(inputs: &CompileInputs, rel: &str, pointer: &str, value: &Value) -> Option<String> {
    let retriever = FolderRetriever { resources: inputs.resources.clone(), used: Arc::default() };
    let reference = format!("{}#{}", file_uri(rel), encode_fragment(pointer));
    // The wrapper has a base of its own, so it never stands in for the file it refers to.
    let validator = jsonschema::options()
        .with_retriever(retriever)
        .with_base_uri("urn:potter:default-check")
        .should_validate_formats(true)
        .build(&serde_json::json!({ "$ref": reference }))
        .ok()?;
    let error = validator.iter_errors(value).next()?;
    Some(crate::schema_issues::describe_error(&error))
}

/// A JSON pointer as a URI fragment: everything but RFC 3986's fragment characters percent-encoded.
fn encode_fragment(pointer: &str) -> String {
    let mut out = String::with_capacity(pointer.len());
    for byte in pointer.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
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
