//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong with the history store. `Clone` because one failed group commit
/// fails every change of its batch with the same error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// Compare-and-set failed: `key` changed after the version the caller expected.
    #[error("conflict on `{key}` in environment `{env}`: expected no change after version {expected}, but it changed at version {actual}")]
    Conflict {
        env: String,
        key: String,
        expected: u64,
        actual: u64,
    },

    /// The change is malformed (empty environment, duplicate key, ...); nothing was recorded.
    #[error("invalid change: {0}")]
    InvalidChange(String),

    /// Another connection or process holds the write lock longer than the busy timeout.
    #[error("history database {path} is locked by another process (gave up after {waited_ms} ms)")]
    Locked { path: PathBuf, waited_ms: u64 },

    /// A write failed for lack of space (full disk, file-size limit or a write I/O error).
    #[error("cannot write history database {path} (disk full, file size limit or write error): {detail}")]
    DiskFull { path: PathBuf, detail: String },

    /// The file is not a (valid) SQLite database or fails its integrity check.
    #[error("history database {path} is corrupt or not a database: {detail}")]
    Corrupt { path: PathBuf, detail: String },

    /// A valid SQLite database that is not a Potter history database, or a newer schema.
    #[error("{path} is not a Potter history database this version can use: {detail}")]
    Incompatible { path: PathBuf, detail: String },

    /// Any other SQLite or file-system failure.
    #[error("history database {path}: {detail}")]
    Storage { path: PathBuf, detail: String },

    /// The payload needed (to undo later changes) was dropped by a prune.
    #[error("history payloads up to version {pruned_through} were pruned; cannot reconstruct the state after version {requested}")]
    PayloadPruned { requested: u64, pruned_through: u64 },

    /// A stored record could not be decoded (written by a foreign tool?).
    #[error("history database {path}: version {version} has an unreadable {field}: {detail}")]
    Decode {
        path: PathBuf,
        version: u64,
        field: &'static str,
        detail: String,
    },

    /// The writer thread is gone (the store is shutting down or panicked); nothing was recorded.
    #[error("history writer for {path} has stopped; the change was not recorded")]
    WriterStopped { path: PathBuf },
}

pub type Result<T, E = HistoryError> = std::result::Result<T, E>;
