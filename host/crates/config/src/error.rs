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
    /// A FIFO, device or directory where a configuration file belongs (refused without waiting on it).
    #[error("{file} is a {kind}, not a regular file")]
    NotAFile { file: String, kind: &'static str },
    #[error("two files for the layer `{layer}`: {first} and {second} (keep one)")]
    DuplicateLayer { layer: String, first: String, second: String },
    #[error("config root {}: {reason}", path.display())]
    Root { path: PathBuf, reason: String },
    #[error(transparent)]
    UnknownView(#[from] UnknownView),
    /// An environment outside the process's `--environments` (`Options::environments`).
    #[error("environment `{environment}` is not served by this process (it serves: {served}; see --environments)")]
    NotServed { environment: String, served: String },
    #[error(transparent)]
    KeyPath(#[from] KeyPathError),
    #[error("key `{0}` is not set")]
    NotFound(String),
    #[error("key `{path}`: {message}")]
    Type { path: String, message: String },
    /// Validation found errors: the change was not applied.
    #[error("{}", describe_report(.0))]
    Invalid(potter_validate::Report),
    #[error(transparent)]
    Schema(potter_validate::SchemaError),
    /// Secrets: a ciphertext that does not decrypt (naming file:line:col, environment and key
    /// path), a keyring problem, a refused plaintext. Never holds plaintext.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretsError),
    /// The history store refused or failed: a compare-and-set conflict, a locked, full or
    /// corrupt database (named). The change was not applied.
    #[error(transparent)]
    History(#[from] potter_history::HistoryError),
    /// A plugin of the plugins folder could not be loaded (names the plugin); refusals (unsigned,
    /// tampered, untrusted key, ungranted import) exit with 4.
    #[error(transparent)]
    Plugin(#[from] potter_plugin::PluginError),
    /// The change was recorded but could not go live yet (a change queued before it failed to
    /// record); the host takes it in when it next re-reads the history.
    #[error("{0}")]
    Pending(String),
    /// `--allow-unsigned` where production configuration is served.
    #[error("--allow-unsigned is refused: {reason}")]
    UnsignedRefused { reason: String },
}

fn describe_report(report: &potter_validate::Report) -> String {
    let errors: Vec<String> = report.issues().filter(|i| i.severity == potter_engine::Severity::Error).map(ToString::to_string).collect();
    format!("invalid configuration ({} error{}):\n  {}", errors.len(), if errors.len() == 1 { "" } else { "s" }, errors.join("\n  "))
}

impl Error {
    /// One line per problem, for change events and logs.
    pub fn diagnostics(&self) -> Vec<String> {
        match self {
            Error::Invalid(report) => report.issues().filter(|i| i.severity == potter_engine::Severity::Error).map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
