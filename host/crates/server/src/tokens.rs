//! Bearer tokens: `<state>/tokens.json` holds each token's name, role, scope and SHA-256 hash —
//! never the token itself, which is printed once when it is created.
//!
//! The server re-reads the file when its modification stamp changes, so `token create` and
//! `token revoke` take effect on a running server without a restart.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::rbac::{Principal, Role};

/// The tokens file inside a state directory.
pub fn tokens_file(state_dir: &Path) -> PathBuf {
    state_dir.join("tokens.json")
}

/// Largest tokens file accepted (each record is about 200 bytes).
const MAX_TOKENS_BYTES: u64 = 16 * 1024 * 1024;

/// Environments scope `*`: every environment.
pub const ALL_ENVIRONMENTS: &str = "*";

/// Why the tokens file could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// Not a regular file (a FIFO, a device, a directory), too large, or not UTF-8; names the file.
    #[error(transparent)]
    Unreadable(potter_files::ReadError),
    #[error("{}: not a valid tokens file: {message}", path.display())]
    Malformed { path: PathBuf, message: String },
    #[error("token name `{0}` is invalid: use 1-64 letters, digits, `-`, `_` or `.`")]
    BadName(String),
    #[error("a token named `{0}` already exists (revoke it first)")]
    Exists(String),
    #[error("no token named `{0}`")]
    Unknown(String),
    #[error("a token needs at least one environment (`--env E1,E2` or `--env '*'`)")]
    NoEnvironment,
    #[error("token prefix `{prefix}`: {reason}")]
    BadPrefix { prefix: String, reason: String },
    #[error("no randomness available for a new token: {0}")]
    Random(String),
}

/// One stored token: everything but the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub name: String,
    pub role: Role,
    /// Environment names, or `*` for every environment.
    pub environments: Vec<String>,
    /// Only keys under this dotted prefix (None: every key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Lower-case hex SHA-256 of the token.
    pub sha256: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
}

impl TokenRecord {
    pub fn principal(&self) -> Principal {
        Principal { name: self.name.clone(), role: self.role, environments: self.environments.clone(), prefix: self.prefix.clone() }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokensDocument {
    tokens: Vec<TokenRecord>,
}

/// The hex SHA-256 of a token.
pub fn hash_token(token: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(token.as_bytes());
    let mut text = String::with_capacity(digest.len() * 2);
    for byte in digest {
        text.push(HEX[usize::from(byte >> 4)] as char);
        text.push(HEX[usize::from(byte & 0xf)] as char);
    }
    text
}

/// A new random token: `pct_` and 64 hex digits (256 bits).
fn new_token() -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(format!("pct_{}", bytes.iter().map(|byte| format!("{byte:02x}")).collect::<String>()))
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The tokens file of one state directory.
pub struct TokenStore {
    path: PathBuf,
    /// The records as last read, and the file's modification time then.
    cache: Mutex<(Option<SystemTime>, Vec<TokenRecord>)>,
}

impl TokenStore {
    /// The store of `state_dir` (the file need not exist yet: then there are no tokens).
    pub fn open(state_dir: &Path) -> Result<Self, TokenError> {
        let store = Self { path: tokens_file(state_dir), cache: Mutex::new((None, Vec::new())) };
        store.records()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every token, re-read if the file changed since the last look.
    pub fn records(&self) -> Result<Vec<TokenRecord>, TokenError> {
        self.with_records(<[TokenRecord]>::to_vec)
    }

    /// Runs `look` over the current tokens (re-read if the file changed) without copying them:
    /// this is on every request's path.
    fn with_records<T>(&self, look: impl FnOnce(&[TokenRecord]) -> T) -> Result<T, TokenError> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let modified = match fs::metadata(&self.path) {
            Ok(meta) => meta.modified().ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                *cache = (None, Vec::new());
                return Ok(look(&[]));
            }
            Err(source) => return Err(TokenError::Io { path: self.path.clone(), source }),
        };
        if modified.is_none() || cache.0 != modified {
            *cache = (modified, self.read()?);
        }
        Ok(look(&cache.1))
    }

    fn read(&self) -> Result<Vec<TokenRecord>, TokenError> {
        // Opened without blocking and checked on the handle: a FIFO here is refused, never waited on.
        let text = match potter_files::read_regular_to_string(&self.path, MAX_TOKENS_BYTES) {
            Ok(text) => text,
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(TokenError::Unreadable(e)),
        };
        let document: TokensDocument = serde_json::from_str(&text).map_err(|e| TokenError::Malformed { path: self.path.clone(), message: e.to_string() })?;
        Ok(document.tokens)
    }

    /// The principal a presented token stands for, if any.
    pub fn authenticate(&self, token: &str) -> Result<Option<Principal>, TokenError> {
        let hash = hash_token(token);
        self.with_records(|records| records.iter().find(|record| record.sha256 == hash).map(TokenRecord::principal))
    }

    /// Creates a token and returns it (the only time it is ever shown). With `replace`, a token of
    /// the same name is replaced instead of refused (the development token).
    pub fn create(&self, name: &str, role: Role, environments: Vec<String>, prefix: Option<String>, replace: bool) -> Result<String, TokenError> {
        if !valid_name(name) {
            return Err(TokenError::BadName(name.to_owned()));
        }
        let environments: Vec<String> = environments.into_iter().map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect();
        if environments.is_empty() {
            return Err(TokenError::NoEnvironment);
        }
        if let Some(prefix) = &prefix {
            potter_engine::parse_key_path(prefix).map_err(|e| TokenError::BadPrefix { prefix: prefix.clone(), reason: e.to_string() })?;
        }
        let mut records = self.read()?;
        if records.iter().any(|r| r.name == name) {
            if !replace {
                return Err(TokenError::Exists(name.to_owned()));
            }
            records.retain(|r| r.name != name);
        }
        let token = new_token()?;
        let created = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        records.push(TokenRecord { name: name.to_owned(), role, environments, prefix, sha256: hash_token(&token), created });
        self.write(records)?;
        Ok(token)
    }

    /// Removes the token called `name`.
    pub fn revoke(&self, name: &str) -> Result<(), TokenError> {
        let mut records = self.read()?;
        let before = records.len();
        records.retain(|r| r.name != name);
        if records.len() == before {
            return Err(TokenError::Unknown(name.to_owned()));
        }
        self.write(records)
    }

    /// Atomic replace: a 0600 temp file beside the target, fsync, rename, fsync of the folder.
    fn write(&self, tokens: Vec<TokenRecord>) -> Result<(), TokenError> {
        let io = |path: &Path, source| TokenError::Io { path: path.to_owned(), source };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let text = serde_json::to_string_pretty(&TokensDocument { tokens }).expect("token records serialize") + "\n";
        let temp = dir.join(format!(".tokens.json.tmp-{}", std::process::id()));
        let written = (|| {
            let _ = fs::remove_file(&temp);
            let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&temp, &self.path)
        })();
        if let Err(source) = written {
            let _ = fs::remove_file(&temp);
            return Err(io(&self.path, source));
        }
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(dir, e))?;
        // Force a re-read even when the rename lands within the same mtime tick.
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).0 = None;
        Ok(())
    }
}
