//! Translating SQLite failures into [`HistoryError`]s that name the database file.

use std::path::Path;
use std::time::Duration;

use rusqlite::{ffi, ErrorCode};

use crate::HistoryError;

/// Maps a rusqlite error to the variant a caller can act on (locked, full, corrupt, ...).
pub(crate) fn classify(
    path: &Path,
    busy_timeout: Duration,
    error: rusqlite::Error,
) -> HistoryError {
    let path = path.to_path_buf();
    let detail = error.to_string();
    let rusqlite::Error::SqliteFailure(failure, _) = &error else {
        return HistoryError::Storage { path, detail };
    };
    match failure.code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => HistoryError::Locked {
            path,
            waited_ms: u64::try_from(busy_timeout.as_millis()).unwrap_or(u64::MAX),
        },
        ErrorCode::DiskFull => HistoryError::DiskFull { path, detail },
        ErrorCode::SystemIoFailure if is_write_failure(failure.extended_code) => {
            HistoryError::DiskFull { path, detail }
        }
        ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
            HistoryError::Corrupt { path, detail }
        }
        _ => HistoryError::Storage { path, detail },
    }
}

/// Extended I/O codes that mean "could not grow or persist the file" (e.g. a file-size limit
/// makes `write` fail with EFBIG, which SQLite reports as a write error rather than SQLITE_FULL).
fn is_write_failure(extended_code: i32) -> bool {
    [
        ffi::SQLITE_IOERR_WRITE,
        ffi::SQLITE_IOERR_FSYNC,
        ffi::SQLITE_IOERR_TRUNCATE,
        ffi::SQLITE_IOERR_SHMSIZE,
    ]
    .contains(&extended_code)
}
