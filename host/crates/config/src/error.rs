//! The host library's error type: every variant names where (file, line, column, key, view).

use std::path::PathBuf;

use potter_engine::{KeyPathError, ParseError, UnknownView};

/// Why loading, reading or changing the configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A tree file is not valid JSON, YAML or TOML (the source names line and column).
    #[error("{file}:{source}")]
    Parse {
        /// The file, relative to the root.
        file: String,
        /// Where and why the parser stopped.
        source: ParseError,
    },
    /// A tree file is larger than a configuration file may be.
    #[error("{file}: {size} bytes is larger than the {limit}-byte limit for a configuration file")]
    TooLarge {
        /// The file, relative to the root.
        file: String,
        /// Its size in bytes.
        size: u64,
        /// The largest size read.
        limit: u64,
    },
    /// A tree file holds bytes that are not UTF-8.
    #[error("{file}:{line}:{column}: not valid UTF-8")]
    NotUtf8 {
        /// The file, relative to the root.
        file: String,
        /// 1-based line of the first invalid byte.
        line: u32,
        /// 1-based column of the first invalid byte.
        column: u32,
    },
    /// A FIFO, device or directory where a configuration file belongs (refused without waiting on it).
    #[error("{file} is a {kind}, not a regular file")]
    NotAFile {
        /// The path, relative to the root.
        file: String,
        /// `FIFO`, `device`, `directory`...
        kind: &'static str,
    },
    /// Two files for one layer (`global.json` and `global.yaml`).
    #[error("two files for the layer `{layer}`: {first} and {second} (keep one)")]
    DuplicateLayer {
        /// The layer both would be.
        layer: String,
        /// One file.
        first: String,
        /// The other.
        second: String,
    },
    /// The root is missing or not a config tree.
    #[error("config root {}: {reason}", path.display())]
    Root {
        /// The root as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An environment, service or user the tree does not have.
    #[error(transparent)]
    UnknownView(#[from] UnknownView),
    /// An environment outside the process's `--environments` (`Options::environments`).
    #[error("environment `{environment}` is not served by this process (it serves: {served}; see --environments)")]
    NotServed {
        /// The environment asked for.
        environment: String,
        /// The environments this process serves, comma separated.
        served: String,
    },
    /// A dotted key that cannot be parsed (`api..timeout`).
    #[error(transparent)]
    KeyPath(#[from] KeyPathError),
    /// Nothing is set at the key (or, for history, the version or record asked for).
    #[error("key `{0}` is not set")]
    NotFound(String),
    /// A release of a runtime override that the environment does not hold (nothing was released).
    #[error("`{key}` has no runtime override in `{environment}`; nothing was released")]
    NoOverride {
        /// The environment asked for.
        environment: String,
        /// The key without an override.
        key: String,
    },
    /// The value at a key does not deserialize into the type asked for.
    #[error("key `{path}`: {message}")]
    Type {
        /// The dotted key.
        path: String,
        /// Serde's message (secret values never shown), with where the value was set.
        message: String,
    },
    /// Validation found errors: the change was not applied.
    #[error("{}", describe_report(.0))]
    Invalid(potter_validate::Report),
    /// A schema of the `schemas` folder cannot be read or compiled (names the file).
    #[error(transparent)]
    Schema(potter_validate::SchemaError),
    /// Secrets: a ciphertext that does not decrypt (naming file:line:col, environment and key
    /// path), a keyring problem, a refused plaintext. Never holds plaintext.
    #[error(transparent)]
    Secret(#[from] crate::secret_values::SecretsError),
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
    UnsignedRefused {
        /// Why production is served here.
        reason: String,
    },
    /// A change request cannot be drafted, approved, rejected or withdrawn, or a direct write
    /// is refused because its environment requires review (names the request, environment, keys).
    #[error(transparent)]
    ChangeRequest(#[from] crate::change_requests::RequestError),
    /// A rollout cannot be started, stepped or ended (names the rollout, environment, key).
    #[error(transparent)]
    Rollout(#[from] crate::rollouts::RolloutError),
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

    /// What kind of thing refused the change this error stopped (a metrics label).
    pub fn refused_by(&self) -> crate::RefusedBy {
        use crate::RefusedBy;
        match self {
            Error::Io { .. } | Error::Parse { .. } | Error::TooLarge { .. } | Error::NotUtf8 { .. } | Error::NotAFile { .. } | Error::DuplicateLayer { .. } | Error::Root { .. } | Error::KeyPath(_) | Error::Type { .. } => RefusedBy::Parse,
            Error::Invalid(_) | Error::Schema(_) => RefusedBy::Validation,
            Error::Plugin(_) | Error::UnsignedRefused { .. } => RefusedBy::Plugin,
            Error::ChangeRequest(_) | Error::Rollout(_) => RefusedBy::Other,
            Error::Secret(_) => RefusedBy::Secrets,
            Error::History(_) | Error::Pending(_) => RefusedBy::Store,
            Error::UnknownView(_) | Error::NotServed { .. } | Error::NotFound(_) | Error::NoOverride { .. } => RefusedBy::Other,
        }
    }

    /// An I/O failure at `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
