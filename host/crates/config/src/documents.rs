//! Named documents in a state directory (`<state>/<name>.json`), with the compare-and-set
//! contract of [`DocumentStore`] that the etcd store keeps for a fleet: the CLI and a server on
//! the same state directory replace a document whole, and a lost race is told, never lost.

use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use potter_history::{DocumentStore, HistoryError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;

/// A timeline's timestamp (change requests, rollouts): `unix_ms` as RFC 3339, UTC, milliseconds.
pub(crate) fn timestamp(unix_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// How many times an edit is redone on a newer document before giving up.
const EDIT_ATTEMPTS: usize = 16;

/// One JSON document of a store, read whole and replaced whole with compare-and-set on its
/// stamp: a writer that lost a race edits the newer document again, so nothing is lost.
pub(crate) struct JsonDocument<D> {
    documents: Arc<dyn DocumentStore>,
    name: &'static str,
    /// Turns (where, what failed) into the caller's error.
    failure: fn(String, String) -> Error,
    document: PhantomData<fn() -> D>,
}

impl<D> Clone for JsonDocument<D> {
    fn clone(&self) -> Self {
        Self { documents: self.documents.clone(), name: self.name, failure: self.failure, document: PhantomData }
    }
}

impl<D: Serialize + DeserializeOwned + Default> JsonDocument<D> {
    /// The document `name` of `documents` (a state directory's when `documents` is None).
    pub(crate) fn new(documents: Option<Arc<dyn DocumentStore>>, state_dir: &Path, name: &'static str, failure: fn(String, String) -> Error) -> Self {
        let documents = documents.unwrap_or_else(|| Arc::new(StateDirDocuments::new(state_dir)));
        Self { documents, name, failure, document: PhantomData }
    }

    /// An error about this document.
    pub(crate) fn failure(&self, message: impl ToString) -> Error {
        (self.failure)(self.documents.describe(), message.to_string())
    }

    /// Its stamp (None: never written) and contents (the default when never written).
    pub(crate) fn read(&self) -> Result<(Option<u64>, D), Error> {
        let Some((stamp, bytes)) = self.documents.read_document(self.name).map_err(|e| self.failure(e))? else { return Ok((None, D::default())) };
        let document = serde_json::from_slice(&bytes).map_err(|e| self.failure(format!("not a valid `{}` document: {e}", self.name)))?;
        Ok((Some(stamp), document))
    }

    /// Reads, changes and replaces the document; `fit` gives the bytes to write (and may trim
    /// the document to a size).
    pub(crate) fn edit<T>(&self, mut change: impl FnMut(&mut D) -> Result<T, Error>, fit: impl Fn(&mut D) -> Result<Vec<u8>, Error>) -> Result<T, Error> {
        for _attempt in 0..EDIT_ATTEMPTS {
            let (stamp, mut document) = self.read()?;
            let outcome = change(&mut document)?;
            let bytes = fit(&mut document)?;
            if self.documents.replace_document(self.name, bytes, stamp).map_err(|e| self.failure(e))? {
                return Ok(outcome);
            }
        }
        Err(self.failure(format!("others kept changing `{}`; nothing was changed", self.name)))
    }
}

/// Largest document read (change requests are bounded well below it).
const MAX_DOCUMENT_BYTES: u64 = 16 * 1024 * 1024;

/// The documents of one state directory.
pub(crate) struct StateDirDocuments {
    dir: PathBuf,
}

impl StateDirDocuments {
    pub(crate) fn new(dir: &Path) -> Self {
        Self { dir: dir.to_owned() }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn failure(&self, path: &Path, detail: impl ToString) -> HistoryError {
        HistoryError::Storage { path: path.to_owned(), detail: detail.to_string() }
    }

    /// The bytes of `name` and their stamp (a hash of them: a replaced document's stamp changes
    /// unless its bytes are the same, which for a compare-and-set is the same document).
    fn read(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>, HistoryError> {
        let path = self.file(name);
        match potter_files::read_regular(&path, MAX_DOCUMENT_BYTES) {
            Ok(bytes) => {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut hasher);
                Ok(Some((hasher.finish(), bytes)))
            }
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(self.failure(&path, error)),
        }
    }
}

impl DocumentStore for StateDirDocuments {
    fn read_document(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>, HistoryError> {
        self.read(name)
    }

    fn replace_document(&self, name: &str, bytes: Vec<u8>, expected: Option<u64>) -> Result<bool, HistoryError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.failure(&self.dir, e))?;
        // Every writer of the directory takes this lock around its check and replace.
        let lock_path = self.dir.join(format!(".{name}.lock"));
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(|e| self.failure(&lock_path, e))?;
        lock.lock().map_err(|e| self.failure(&lock_path, e))?;
        if self.read(name)?.map(|(stamp, _)| stamp) != expected {
            return Ok(false);
        }
        let path = self.file(name);
        let text = String::from_utf8(bytes).map_err(|e| self.failure(&path, e))?;
        crate::secret_values::write_atomically(&path, &text).map_err(|e| self.failure(&path, e))?;
        drop::<File>(lock);
        Ok(true)
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replace_from_a_stale_stamp_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let documents = StateDirDocuments::new(dir.path());
        assert_eq!(documents.read_document("d").unwrap(), None);
        assert!(documents.replace_document("d", b"{\"a\":1}".to_vec(), None).unwrap());
        assert!(!documents.replace_document("d", b"{\"a\":2}".to_vec(), None).unwrap(), "it exists now");
        let (stamp, bytes) = documents.read_document("d").unwrap().unwrap();
        assert_eq!(bytes, b"{\"a\":1}");
        assert!(documents.replace_document("d", b"{\"a\":2}".to_vec(), Some(stamp)).unwrap());
        assert!(!documents.replace_document("d", b"{\"a\":3}".to_vec(), Some(stamp)).unwrap(), "the stamp moved on");
    }
}
