//! The crate's errors: what can be wrong with a schemas folder, and a validator that failed to run.

use std::path::PathBuf;

/// Why a schemas folder could not be loaded. Every variant names the file (relative to the folder)
/// and, where it helps, the place inside it. When loading fails nothing is loaded.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read schemas from {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{file} is not JSON: {file}:{line}:{column}: {reason}")]
    NotJson { file: String, line: usize, column: usize, reason: String },
    #[error("{file} is nested deeper than {limit} levels ({file}:{line}:{column}); flatten it or split it with `$ref`")]
    TooDeep { file: String, line: usize, column: usize, limit: usize },
    #[error("the schemas folder {} cannot be used: {reason} (fix it, or remove it to run without schemas)", path.display())]
    NotAFolder { path: PathBuf, reason: String },
    #[error("schema file {file} is a {kind}, not a regular file")]
    NotAFile { file: String, kind: &'static str },
    #[error("{file} is {size} bytes, more than the {limit} bytes a schema file may have")]
    TooLarge { file: String, size: u64, limit: u64 },
    #[error("the schemas folder holds more than {limit} schema files")]
    TooManyFiles { limit: usize },
    #[error("{file} is a link to a file outside the schemas folder")]
    OutsideFolder { file: String },
    #[error("invalid schema {file}#{pointer}: {reason}")]
    Invalid { file: String, pointer: String, reason: String },
    #[error("remote $ref `{reference}` at {file}#{pointer} refused: schemas may only refer to files inside the schemas folder")]
    RemoteRef { file: String, pointer: String, reference: String },
    #[error("$schema `{reference}` at {file}#{pointer} refused: it is no draft the validator knows (draft-07, 2020-12) nor the $id of a schema in the schemas folder, and metaschemas are never fetched")]
    RemoteMetaschema { file: String, pointer: String, reference: String },
    #[error("$ref `{reference}` at {file}#{pointer} cannot be resolved: {reason}")]
    UnresolvedRef { file: String, pointer: String, reference: String, reason: String },
    #[error("$ref cycle: {chain} (each schema only refers to the next, so nothing is ever checked)")]
    RefCycle { chain: String },
    #[error("cannot compile {file}: {reason}")]
    Compile { file: String, reason: String },
}

/// A validator that could not do its job (as opposed to one that found issues). The validation
/// engine turns it into an error issue naming the validator, so a broken rule never passes silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidatorError {
    pub message: String,
}

impl ValidatorError {
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }
}
