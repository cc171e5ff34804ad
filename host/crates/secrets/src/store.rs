//! Keyring files in the state directory: `<state>/keyrings/<env>.json`, mode 0600, written
//! atomically, refused when group or others may access them.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::error::CipherError;
use crate::keyring::{
    decode_key, env_var_name, validate_env_name, DataKey, Keyring, KeyringOrigin,
};

/// Value of the `format` field of a keyring file.
const FILE_FORMAT: &str = "potter-keyring-v1";

/// Largest keyring file accepted: about 1,500 keys, far more than rotation ever keeps.
const MAX_KEYRING_BYTES: u64 = 256 * 1024;

/// Why a keyring path was refused before reading, without the path (the error names it).
fn refused_reason(error: &potter_files::ReadError) -> String {
    match error {
        potter_files::ReadError::NotRegular { kind, .. } => format!("it is a {kind}, not a regular file"),
        potter_files::ReadError::TooLarge { limit, .. } => format!("it is larger than {limit} bytes"),
        potter_files::ReadError::Io { source, .. } => source.to_string(),
    }
}

/// Sub-directory of the state directory that holds keyring files.
pub const KEYRINGS_DIR: &str = "keyrings";

/// The keyring file for `env`: `<state>/keyrings/<env>.json`.
pub fn keyring_file(state_dir: &Path, env: &str) -> Result<PathBuf, CipherError> {
    validate_env_name(env)?;
    Ok(state_dir.join(KEYRINGS_DIR).join(format!("{env}.json")))
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringDocument {
    format: String,
    env: String,
    keys: Vec<KeyRecord>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRecord {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created: Option<u64>,
    /// Base64 (standard, padded) of the 32 key bytes.
    key: String,
}

impl Drop for KeyRecord {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl Keyring {
    /// The keyring for `env`: from `POTTER_SECRET_KEY_<ENV>` when that variable is set, else
    /// from the state directory's keyring file.
    pub fn resolve(state_dir: &Path, env: &str) -> Result<Self, CipherError> {
        let var = env_var_name(env)?;
        let value = std::env::var_os(&var)
            .map(|value| Zeroizing::new(value.to_string_lossy().into_owned()));
        Self::resolve_with(state_dir, env, value.as_deref().map(String::as_str))
    }

    /// [`Keyring::resolve`] with the variable's value passed in (`None` when unset), so callers
    /// and tests need not touch the process environment.
    pub fn resolve_with(
        state_dir: &Path,
        env: &str,
        env_value: Option<&str>,
    ) -> Result<Self, CipherError> {
        match env_value {
            Some(value) => Self::from_env_value(env, value),
            None => Self::load_from_state(state_dir, env),
        }
    }

    /// Loads `<state>/keyrings/<env>.json`; a missing file is [`CipherError::KeyringMissing`].
    pub fn load_from_state(state_dir: &Path, env: &str) -> Result<Self, CipherError> {
        let file = keyring_file(state_dir, env)?;
        if !file.exists() {
            return Err(CipherError::KeyringMissing {
                env: env.to_owned(),
                env_var: env_var_name(env)?,
                file,
            });
        }
        Self::load_file(env, &file)
    }

    /// Loads a keyring file for `env`, refusing it when group or others have any access.
    pub fn load_file(env: &str, file: &Path) -> Result<Self, CipherError> {
        validate_env_name(env)?;
        let io_error = |action, source| CipherError::Io {
            action,
            file: file.to_owned(),
            source,
        };
        let invalid = |reason: String| CipherError::KeyringInvalid {
            origin: file.display().to_string(),
            reason,
        };
        // Opened without blocking, and the opened file itself is checked (type, size, mode), so a
        // FIFO is refused rather than waited on and the file checked is the file read.
        let (handle, metadata) =
            potter_files::open_regular(file, MAX_KEYRING_BYTES).map_err(|error| match error {
                potter_files::ReadError::Io { source, .. } => io_error("open keyring file", source),
                refused => invalid(refused_reason(&refused)),
            })?;
        check_private(file, &metadata)?;
        // Sized up front so the buffer holding key material is not reallocated (and left behind).
        let mut bytes = Zeroizing::new(Vec::with_capacity(metadata.len() as usize + 1));
        handle
            .take(MAX_KEYRING_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| io_error("read keyring file", source))?;
        if bytes.len() as u64 > MAX_KEYRING_BYTES {
            return Err(invalid(format!("it is larger than {MAX_KEYRING_BYTES} bytes")));
        }

        // serde_json's messages may quote the offending input (key bytes), so only say where.
        let document: KeyringDocument = serde_json::from_slice(&bytes).map_err(|error| {
            let problem = match error.classify() {
                serde_json::error::Category::Syntax => "JSON syntax error",
                serde_json::error::Category::Eof => "unexpected end of JSON",
                serde_json::error::Category::Data => "missing, unknown or mistyped field",
                serde_json::error::Category::Io => "read error",
            };
            invalid(format!(
                "not a keyring document: {problem} at line {}, column {}",
                error.line(),
                error.column()
            ))
        })?;
        if document.format != FILE_FORMAT {
            return Err(invalid(format!("`format` must be `{FILE_FORMAT}`")));
        }
        if document.env != env {
            return Err(invalid(format!(
                "it belongs to environment `{}`, not `{env}`",
                document.env
            )));
        }
        if document.keys.is_empty() {
            return Err(invalid("it holds no keys".into()));
        }
        let mut keys: Vec<DataKey> = Vec::with_capacity(document.keys.len());
        for (index, record) in document.keys.iter().enumerate() {
            let material = decode_key(&record.key)
                .map_err(|problem| invalid(format!("key {} {problem}", index + 1)))?;
            let key = DataKey::from_material(material, record.created);
            if key.id != record.id {
                return Err(invalid(format!(
                    "key {} is recorded as `{}` but its bytes give id `{}`",
                    index + 1,
                    record.id,
                    key.id
                )));
            }
            if keys.iter().any(|known| known.id == key.id) {
                return Err(invalid(format!("key `{}` appears twice", key.id)));
            }
            keys.push(key);
        }
        Ok(Self::from_parts(
            env.to_owned(),
            keys,
            KeyringOrigin::File(file.to_owned()),
        ))
    }

    /// Creates the keyring file for `env` with one fresh key (`secrets keygen`). Refuses to
    /// replace an existing keyring, whose keys may still be needed.
    pub fn create_in_state(state_dir: &Path, env: &str) -> Result<Self, CipherError> {
        let file = keyring_file(state_dir, env)?;
        if file.exists() {
            return Err(CipherError::KeyringExists {
                env: env.to_owned(),
                file,
            });
        }
        let mut keyring = Self::generate(env)?;
        write_keyring(&keyring, &file, WriteMode::CreateNew)?;
        keyring.set_origin(KeyringOrigin::File(file));
        Ok(keyring)
    }

    /// Writes this keyring to `<state>/keyrings/<env>.json`, replacing any previous file
    /// atomically (after a rotation or retirement). Returns the file written.
    pub fn save_to_state(&mut self, state_dir: &Path) -> Result<PathBuf, CipherError> {
        let file = keyring_file(state_dir, self.env())?;
        write_keyring(self, &file, WriteMode::Replace)?;
        self.set_origin(KeyringOrigin::File(file.clone()));
        Ok(file)
    }
}

#[cfg(unix)]
fn check_private(file: &Path, metadata: &fs::Metadata) -> Result<(), CipherError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CipherError::KeyringPermissions {
            file: file.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_file: &Path, _metadata: &fs::Metadata) -> Result<(), CipherError> {
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum WriteMode {
    CreateNew,
    Replace,
}

fn write_keyring(keyring: &Keyring, file: &Path, mode: WriteMode) -> Result<(), CipherError> {
    let document = KeyringDocument {
        format: FILE_FORMAT.to_owned(),
        env: keyring.env().to_owned(),
        keys: keyring
            .keys()
            .iter()
            .map(|key| KeyRecord {
                id: key.id.clone(),
                created: key.created_unix,
                key: STANDARD.encode(key.material.as_ref()),
            })
            .collect(),
    };
    // Sized up front so the buffer holding key material is never reallocated (and left behind).
    let mut bytes = Zeroizing::new(Vec::with_capacity(256 + 160 * document.keys.len()));
    serde_json::to_writer_pretty(&mut *bytes, &document)
        .expect("a keyring document always serializes");
    bytes.push(b'\n');
    write_private_atomically(file, &bytes, mode)
}

/// Temp file in the same directory (created 0600), fsync, then rename over (or hard-link to,
/// for create-only) the target, then fsync the directory so the rename itself is durable.
fn write_private_atomically(file: &Path, bytes: &[u8], mode: WriteMode) -> Result<(), CipherError> {
    let io_error = |action, path: &Path, source| CipherError::Io {
        action,
        file: path.to_owned(),
        source,
    };
    let dir = file
        .parent()
        .expect("a keyring file path has a parent directory");
    create_private_dir(dir).map_err(|source| io_error("create keyring directory", dir, source))?;

    let name = file
        .file_name()
        .expect("a keyring file path has a file name")
        .to_string_lossy();
    let temp = dir.join(format!(
        ".{name}.tmp-{}-{:016x}",
        std::process::id(),
        OsRng.next_u64()
    ));
    let written = (|| {
        let mut handle = open_private_new(&temp)?;
        handle.write_all(bytes)?;
        handle.sync_all()
    })();
    if let Err(source) = written {
        let _ = fs::remove_file(&temp);
        return Err(io_error("write keyring file", &temp, source));
    }
    let placed = match mode {
        WriteMode::Replace => fs::rename(&temp, file),
        // A hard link fails if the target exists, so two concurrent keygens cannot overwrite.
        WriteMode::CreateNew => fs::hard_link(&temp, file).and_then(|()| fs::remove_file(&temp)),
    };
    if let Err(source) = placed {
        let _ = fs::remove_file(&temp);
        if mode == WriteMode::CreateNew && source.kind() == std::io::ErrorKind::AlreadyExists {
            let env = name.trim_end_matches(".json").to_owned();
            return Err(CipherError::KeyringExists {
                env,
                file: file.to_owned(),
            });
        }
        return Err(io_error("put keyring file in place", file, source));
    }
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|source| io_error("sync keyring directory", dir, source))
}

#[cfg(unix)]
fn open_private_new(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private_new(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}
