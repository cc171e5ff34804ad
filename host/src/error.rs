//! The host library's error type: every variant names where (file, line, column, key, view).

use std::path::PathBuf;

use potter_engine::{KeyPathError, ParseError, UnknownView};

/// Why loading, reading or changing the configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{file}:{source}")]
    Parse { file: String, source: ParseError },
    #[error("{file}: {size} bytes is larger than the {limit}-byte limit for a configuration file")]
    TooLarge { file: String, size: u64, limit: u64 },
    #[error("{file}:{line}:{column}: not valid UTF-8")]
    NotUtf8 { file: String, line: u32, column: u32 },
    #[error("{file}: not a regular file")]
    NotAFile { file: String },
    #[error("two files for the layer `{layer}`: {first} and {second} (keep one)")]
    DuplicateLayer { layer: String, first: String, second: String },
    #[error("config root {}: {reason}", path.display())]
    Root { path: PathBuf, reason: String },
    #[error(transparent)]
    UnknownView(#[from] UnknownView),
    #[error(transparent)]
    KeyPath(#[from] KeyPathError),
    #[error("key `{0}` is not set")]
    NotFound(String),
    #[error("key `{path}`: {message}")]
    Type { path: String, message: String },
    /// Secrets: a ciphertext that does not decrypt (naming file:line:col, environment and key
    /// path), a keyring problem, a refused plaintext. Never holds plaintext.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretsError),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
