//! Reading files that someone else may have put in place: configuration files, schemas, keyrings,
//! token stores, plugin manifests, signatures and modules.
//!
//! A path can name a FIFO (an open blocks until a writer appears), a device (`/dev/zero` never
//! ends), or a file swapped between a type check and the open. So every read here opens the path
//! without blocking, checks the type and size on the *opened* handle, and reads at most `max_bytes`,
//! refusing with an error that names the file.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("global.json");
//! std::fs::write(&path, "{}").unwrap();
//! assert_eq!(potter_files::read_regular(&path, 1024).unwrap(), b"{}");
//! ```

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The open or the read failed.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The path is a directory, FIFO, socket or device (after following links).
    #[error("{} is a {kind}, not a regular file", path.display())]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead, e.g. `FIFO`.
        kind: &'static str,
    },
    /// The file is larger than the limit (checked before and while reading).
    #[error("{} is larger than {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
}

impl ReadError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ReadError::Io { path, .. } | ReadError::NotRegular { path, .. } | ReadError::TooLarge { path, .. } => path,
        }
    }

    /// True when the file does not exist (a caller may treat that as "absent", not as an error).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Opens `path` for reading without blocking and returns the handle and its metadata, refusing
/// anything that is not a regular file or is larger than `max_bytes`.
pub fn open_regular(path: &Path, max_bytes: u64) -> Result<(File, Metadata), ReadError> {
    let io = |source| ReadError::Io { path: path.to_path_buf(), source };
    let file = OpenOptions::new()
        .read(true)
        // O_NONBLOCK keeps a FIFO's open from waiting for a writer; on a regular file it has no effect.
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if let Some(kind) = non_regular_kind(&meta) {
        return Err(ReadError::NotRegular { path: path.to_path_buf(), kind });
    }
    if meta.len() > max_bytes {
        return Err(ReadError::TooLarge { path: path.to_path_buf(), limit: max_bytes });
    }
    Ok((file, meta))
}

/// Reads a whole regular file of at most `max_bytes` (see [`open_regular`]).
pub fn read_regular(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ReadError> {
    read_regular_with_metadata(path, max_bytes).map(|(bytes, _)| bytes)
}

/// [`read_regular`], also returning the metadata of the handle that was read (for file stamps that
/// describe exactly the bytes returned).
pub fn read_regular_with_metadata(path: &Path, max_bytes: u64) -> Result<(Vec<u8>, Metadata), ReadError> {
    let (file, meta) = open_regular(path, max_bytes)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // One byte past the limit tells a file that grew after the size check from one that fits.
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| ReadError::Io { path: path.to_path_buf(), source })?;
    if bytes.len() as u64 > max_bytes {
        return Err(ReadError::TooLarge { path: path.to_path_buf(), limit: max_bytes });
    }
    Ok((bytes, meta))
}

/// Reads a regular file of at most `max_bytes` as UTF-8 text; invalid UTF-8 is an
/// [`std::io::ErrorKind::InvalidData`] error naming the file.
pub fn read_regular_to_string(path: &Path, max_bytes: u64) -> Result<String, ReadError> {
    let bytes = read_regular(path, max_bytes)?;
    String::from_utf8(bytes).map_err(|e| ReadError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()),
    })
}

fn non_regular_kind(meta: &Metadata) -> Option<&'static str> {
    let kind = meta.file_type();
    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("directory")
    } else if kind.is_fifo() {
        Some("FIFO")
    } else if kind.is_socket() {
        Some("socket")
    } else if kind.is_char_device() {
        Some("character device")
    } else if kind.is_block_device() {
        Some("block device")
    } else {
        Some("special file")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn mkfifo(path: &Path) {
        let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("global.json");
        mkfifo(&path);
        let err = read_regular(&path, 1024).unwrap_err();
        assert!(matches!(err, ReadError::NotRegular { kind: "FIFO", .. }), "{err}");
        assert!(err.to_string().contains("global.json"), "{err}");
    }

    #[test]
    fn link_to_a_device_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.plugin.toml");
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        let err = read_regular(&path, 1024).unwrap_err();
        assert!(matches!(err, ReadError::NotRegular { kind: "character device", .. }), "{err}");
    }

    #[test]
    fn directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_regular(dir.path(), 1024).unwrap_err();
        assert!(matches!(err, ReadError::NotRegular { kind: "directory", .. }), "{err}");
    }

    #[test]
    fn file_over_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.json");
        std::fs::write(&path, vec![b' '; 2048]).unwrap();
        assert!(matches!(read_regular(&path, 1024), Err(ReadError::TooLarge { limit: 1024, .. })));
        assert_eq!(read_regular(&path, 2048).unwrap().len(), 2048);
    }

    #[test]
    fn missing_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_regular(&dir.path().join("absent"), 10).unwrap_err().is_not_found());
    }

    #[test]
    fn invalid_utf8_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        let err = read_regular_to_string(&path, 10).unwrap_err();
        assert!(err.to_string().contains("bad.yaml"), "{err}");
    }
}
