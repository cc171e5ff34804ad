//! The last-known-good cache of source plugins: each source's last good layer per environment,
//! kept in `<state>/source-cache/<plugin>/<environment>.json` so that a host restarted while the
//! remote is down can start from it (the source is then marked stale).
//!
//! The layer is stored only as ciphertext under the environment's keyring (AES-256-GCM, the same
//! cipher as the tree's secrets, bound to the environment and the plugin by the associated data):
//! a source may return values the schema marks secret, and the state directory must never hold
//! them in plaintext. An environment without a keyring gets no cache (a restart with the remote
//! down then fails as without this cache), and the host says so once.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::options::Options;
use crate::secret_values::{resolve_keyring, write_atomically};

/// The first line of a cache file's format.
const FORMAT: &str = "potter-source-cache-v1";

/// Where the cache lives and how to reach the keyrings.
pub(crate) struct SourceCache {
    dir: PathBuf,
    options: Options,
    /// Environments already reported as having no keyring (so not cached).
    told: Mutex<BTreeSet<String>>,
}

/// A cached layer and when it was saved.
pub(crate) struct Cached {
    pub(crate) data: Map<String, Value>,
    pub(crate) saved_at: SystemTime,
}

impl SourceCache {
    pub(crate) fn new(options: &Options) -> SourceCache {
        SourceCache { dir: options.state_dir.join("source-cache"), options: options.clone(), told: Mutex::default() }
    }

    fn file(&self, plugin: &str, environment: &str) -> PathBuf {
        self.dir.join(plugin).join(format!("{environment}.json"))
    }

    fn aad_path(plugin: &str) -> [String; 3] {
        ["plugins".to_owned(), plugin.to_owned(), "source-cache".to_owned()]
    }

    /// Keeps `data` as the last good layer of `plugin` in `environment`. Failures are logged,
    /// never fatal: the cache only helps a later start.
    pub(crate) fn save(&self, plugin: &str, environment: &str, data: &Map<String, Value>) {
        let keyring = match resolve_keyring(&self.options, environment) {
            Ok(keyring) => keyring,
            Err(error) => {
                // An old cache (from when a keyring was there) would be stale: drop it.
                let _ = std::fs::remove_file(self.file(plugin, environment));
                if self.told.lock().unwrap_or_else(|p| p.into_inner()).insert(environment.to_owned()) {
                    tracing::info!(environment, %error, "source layers of this environment are not cached (no keyring to encrypt them with)");
                }
                return;
            }
        };
        let text = Value::Object(data.clone()).to_string();
        let sealed = match potter_secrets::encrypt(&keyring, environment, &Self::aad_path(plugin), &text) {
            Ok(sealed) => sealed,
            Err(error) => return tracing::warn!(plugin, environment, %error, "cannot encrypt the source cache"),
        };
        let saved_at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let record = serde_json::json!({ "format": FORMAT, "plugin": plugin, "environment": environment, "saved_at_ms": saved_at_ms, "sealed": sealed });
        let file = self.file(plugin, environment);
        let written = std::fs::create_dir_all(self.dir.join(plugin)).map_err(|e| e.to_string()).and_then(|()| {
            // Created 0600 before the first write (write_atomically keeps an existing file's mode).
            if !file.exists() {
                create_private(&file).map_err(|e| e.to_string())?;
            }
            write_atomically(&file, &record.to_string()).map_err(|e| e.to_string())
        });
        if let Err(error) = written {
            tracing::warn!(plugin, environment, file = %file.display(), %error, "cannot write the source cache");
        }
    }

    /// The cached layer of `plugin` in `environment`, if one was kept and decrypts.
    pub(crate) fn load(&self, plugin: &str, environment: &str) -> Result<Option<Cached>, String> {
        let file = self.file(plugin, environment);
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(format!("{}: {error}", file.display())),
        };
        let bad = |why: String| format!("source cache {}: {why}", file.display());
        let record: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if record.get("format").and_then(Value::as_str) != Some(FORMAT) || record.get("plugin").and_then(Value::as_str) != Some(plugin) {
            return Err(bad("not a cache file of this plugin".into()));
        }
        let sealed = record.get("sealed").and_then(Value::as_str).ok_or_else(|| bad("no `sealed` layer".into()))?;
        let keyring = resolve_keyring(&self.options, environment).map_err(|e| bad(e.to_string()))?;
        let plain = potter_secrets::decrypt(&keyring, environment, &Self::aad_path(plugin), sealed).map_err(|e| bad(e.to_string()))?;
        let Value::Object(data) = serde_json::from_str(plain.expose()).map_err(|e| bad(e.to_string()))? else {
            return Err(bad("the layer is not an object".into()));
        };
        let saved_at = UNIX_EPOCH + Duration::from_millis(record.get("saved_at_ms").and_then(Value::as_u64).unwrap_or(0));
        Ok(Some(Cached { data, saved_at }))
    }
}

fn create_private(file: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(file) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}
