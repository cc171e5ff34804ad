//! Bearer tokens: `<state>/tokens.json` holds each token's name, role, scope and SHA-256 hash —
//! never the token itself, which is printed once when it is created.
//!
//! The server re-reads the file when its modification stamp changes, so `token create` and
//! `token revoke` take effect on a running server without a restart.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use potter_history::DocumentStore;

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
    #[error("{location}: {message}")]
    Shared { location: String, message: String },
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

/// The name of the token list among a shared store's documents.
const SHARED_DOCUMENT: &str = "tokens";

/// How old the token list a server holds from a shared store may get before it reads it again:
/// a token created or revoked on one host is in force on every host within this.
pub const SHARED_REFRESH: Duration = Duration::from_secs(1);

/// The tokens of one state directory (`tokens.json`), or of a shared store (etcd: every host on
/// the prefix accepts the same tokens).
pub struct TokenStore {
    /// The file, or the shared store's location (for messages).
    path: PathBuf,
    shared: Option<Arc<dyn DocumentStore>>,
    /// The records as last read, and the file's modification time then.
    cache: Mutex<(Option<SystemTime>, Vec<TokenRecord>)>,
    /// From a shared store: when the records were last read.
    shared_read_at: Mutex<Option<Instant>>,
}

impl TokenStore {
    /// The store of `state_dir` (the file need not exist yet: then there are no tokens).
    pub fn open(state_dir: &Path) -> Result<Self, TokenError> {
        let store = Self { path: tokens_file(state_dir), shared: None, cache: Mutex::new((None, Vec::new())), shared_read_at: Mutex::new(None) };
        store.records()?;
        Ok(store)
    }

    /// The token list kept in a shared store (`--store etcd://...`), the same for every host.
    pub fn open_shared(documents: Arc<dyn DocumentStore>) -> Result<Self, TokenError> {
        let path = PathBuf::from(format!("{}/documents/{SHARED_DOCUMENT}", documents.describe()));
        let store = Self { path, shared: Some(documents), cache: Mutex::new((None, Vec::new())), shared_read_at: Mutex::new(None) };
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
        if self.shared.is_some() {
            let mut read_at = self.shared_read_at.lock().unwrap_or_else(|p| p.into_inner());
            if read_at.is_none_or(|at| at.elapsed() >= SHARED_REFRESH) {
                match self.read_stamped() {
                    Ok((_, records)) => cache.1 = records,
                    // The store is unreachable: the list read last stays in force (a server keeps
                    // serving with what it knows, as it does its configuration).
                    Err(error) if read_at.is_some() => tracing::warn!(%error, "cannot re-read the shared token list; using the one read last"),
                    Err(error) => return Err(error),
                }
                *read_at = Some(Instant::now());
            }
            return Ok(look(&cache.1));
        }
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

    /// The records with the stamp they were read at (a shared store's; None for the file).
    fn read_stamped(&self) -> Result<(Option<u64>, Vec<TokenRecord>), TokenError> {
        let Some(shared) = &self.shared else { return Ok((None, self.read()?)) };
        let Some((stamp, bytes)) = shared.read_document(SHARED_DOCUMENT).map_err(|e| self.shared_error(e))? else { return Ok((None, Vec::new())) };
        let document: TokensDocument = serde_json::from_slice(&bytes).map_err(|e| TokenError::Malformed { path: self.path.clone(), message: e.to_string() })?;
        Ok((Some(stamp), document.tokens))
    }

    fn shared_error(&self, error: potter_history::HistoryError) -> TokenError {
        TokenError::Shared { location: self.path.display().to_string(), message: error.to_string() }
    }

    /// Reads, edits and writes the list; with a shared store the write is compare-and-set on the
    /// stamp read, and a lost race edits the newer list again.
    fn edit(&self, mut change: impl FnMut(&mut Vec<TokenRecord>) -> Result<(), TokenError>) -> Result<(), TokenError> {
        for _attempt in 0..16 {
            let (stamp, mut records) = self.read_stamped()?;
            change(&mut records)?;
            if self.write(records, stamp)? {
                return Ok(());
            }
        }
        Err(TokenError::Shared { location: self.path.display().to_string(), message: "other hosts kept changing the token list; nothing was changed".to_owned() })
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
        let token = new_token()?;
        let created = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let record = TokenRecord { name: name.to_owned(), role, environments, prefix, sha256: hash_token(&token), created };
        self.edit(|records| {
            if records.iter().any(|r| r.name == name) {
                if !replace {
                    return Err(TokenError::Exists(name.to_owned()));
                }
                records.retain(|r| r.name != name);
            }
            records.push(record.clone());
            Ok(())
        })?;
        Ok(token)
    }

    /// Removes the token called `name`.
    pub fn revoke(&self, name: &str) -> Result<(), TokenError> {
        self.edit(|records| {
            let before = records.len();
            records.retain(|r| r.name != name);
            if records.len() == before {
                return Err(TokenError::Unknown(name.to_owned()));
            }
            Ok(())
        })
    }

    /// Atomic replace: a 0600 temp file beside the target, fsync, rename, fsync of the folder.
    /// Writes the list (false: a shared store's list changed since `stamp` was read).
    fn write(&self, tokens: Vec<TokenRecord>, stamp: Option<u64>) -> Result<bool, TokenError> {
        if let Some(shared) = &self.shared {
            let text = serde_json::to_vec(&TokensDocument { tokens }).expect("token records serialize");
            let written = shared.replace_document(SHARED_DOCUMENT, text, stamp).map_err(|e| self.shared_error(e))?;
            // The next look reads the new list.
            *self.shared_read_at.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return Ok(written);
        }
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
        Ok(true)
    }
}
