//! Compiled-code cache in `<state>/plugin-cache/`.
//!
//! Deserializing compiled code runs it as native code, so only files this
//! host wrote are ever loaded: each entry `<module-sha256>-<engine-hash>.cwasm`
//! has a sidecar `.mac` holding HMAC-SHA256 over the entry's name and bytes,
//! keyed by a random secret (`cache.key`, 0600) that only the host knows.
//! A missing, stale or forged entry is a cache miss: the module is compiled
//! again and the entry rewritten.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::error::{describe, PluginError};

type HmacSha256 = Hmac<Sha256>;

pub(crate) struct CompiledCache {
    dir: PathBuf,
    mac_key: [u8; 32],
    engine_hash: String,
}

/// Where a compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompiledFrom {
    /// Compiled now (and written to the cache).
    Compiler,
    /// Loaded from a cache entry the host wrote earlier.
    Cache,
}

impl CompiledCache {
    pub(crate) fn open(dir: PathBuf, engine: &Engine) -> Result<CompiledCache, PluginError> {
        let io = |e: std::io::Error, p: &Path| {
            PluginError::Host(format!("plugin cache {}: {e}", p.display()))
        };
        fs::create_dir_all(&dir).map_err(|e| io(e, &dir))?;
        let key_path = dir.join("cache.key");
        let mac_key = match fs::read(&key_path) {
            Ok(bytes) if bytes.len() == 32 => bytes.try_into().expect("length checked"),
            _ => {
                let mut key = [0u8; 32];
                getrandom::getrandom(&mut key)
                    .map_err(|e| PluginError::Host(format!("no randomness: {e}")))?;
                write_private(&key_path, &key).map_err(|e| io(e, &key_path))?;
                key
            }
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(CompiledCache {
            dir,
            mac_key,
            engine_hash: format!("{:016x}", hasher.finish()),
        })
    }

    /// The compiled component for `module`, from the cache when a genuine entry exists.
    pub(crate) fn component(
        &self,
        engine: &Engine,
        plugin: &str,
        module_sha256: &str,
        module: &[u8],
        progress: &crate::ProgressReport,
    ) -> Result<(Component, CompiledFrom), PluginError> {
        let entry = format!("{module_sha256}-{}", self.engine_hash);
        let code_path = self.dir.join(format!("{entry}.cwasm"));
        let mac_path = self.dir.join(format!("{entry}.mac"));
        if let (Ok(code), Ok(mac)) = (fs::read(&code_path), fs::read_to_string(&mac_path)) {
            if self
                .tag(&entry, &code)
                .verify_slice(&hex::decode(mac.trim()).unwrap_or_default())
                .is_ok()
            {
                // SAFETY: the bytes carry our own HMAC, so this host produced
                // them with `Component::serialize` for this module and engine.
                if let Ok(component) = unsafe { Component::deserialize(engine, &code) } {
                    return Ok((component, CompiledFrom::Cache));
                }
            }
            tracing::warn!(plugin, path = %code_path.display(), "ignoring an invalid compiled-plugin cache entry");
        }
        let compiling = progress.begin(&format!("compiling plugin {plugin} (once; later loads use the cache)"), None);
        let component = compile(engine, plugin, module)?;
        drop(compiling);
        if let Err(e) = self.store(&entry, &code_path, &mac_path, &component) {
            tracing::warn!(plugin, error = %e, "could not write the compiled-plugin cache");
        }
        Ok((component, CompiledFrom::Compiler))
    }

    fn store(
        &self,
        entry: &str,
        code_path: &Path,
        mac_path: &Path,
        component: &Component,
    ) -> Result<(), String> {
        let code = component.serialize().map_err(|e| describe(&e))?;
        let mac = hex::encode(self.tag(entry, &code).finalize().into_bytes());
        // Write both under temporary names, then rename: a reader never sees half a file.
        // Unique temporary names: two hosts sharing a state dir may compile at once.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let serial = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let unique = format!("{}-{serial}.tmp", std::process::id());
        let tmp_code = code_path.with_extension(format!("cwasm.{unique}"));
        let tmp_mac = mac_path.with_extension(format!("mac.{unique}"));
        fs::write(&tmp_code, &code).map_err(|e| e.to_string())?;
        fs::write(&tmp_mac, mac).map_err(|e| e.to_string())?;
        fs::rename(&tmp_code, code_path).map_err(|e| e.to_string())?;
        fs::rename(&tmp_mac, mac_path).map_err(|e| e.to_string())
    }

    fn tag(&self, entry: &str, code: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.mac_key).expect("HMAC takes any key length");
        mac.update(entry.as_bytes());
        mac.update(b"\0");
        mac.update(code);
        mac
    }
}

/// Compile a module, explaining the common ways a file is not a component.
fn compile(engine: &Engine, plugin: &str, module: &[u8]) -> Result<Component, PluginError> {
    let invalid = |reason: String| PluginError::InvalidModule {
        plugin: plugin.to_string(),
        reason,
    };
    const MAGIC: &[u8] = b"\0asm";
    if module.len() < 8 || &module[..4] != MAGIC {
        return Err(invalid("not a WebAssembly file (bad magic number)".into()));
    }
    if module[4..8] == [1, 0, 0, 0] {
        return Err(invalid(
            "this is a core WebAssembly module, not a component (build for wasm32-wasip2 or run `wasm-tools component new`)".into(),
        ));
    }
    Component::new(engine, module).map_err(|e| invalid(describe(&e)))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}
