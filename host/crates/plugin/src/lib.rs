//! Potter Config's WebAssembly plugin host.
//!
//! Plugins are WebAssembly components implementing the `potter:config` WIT
//! package (`wit/`). Nothing runs unless its module and manifest are signed
//! by a trusted ed25519 key; each plugin runs with no capabilities by
//! default, under memory, time and output limits, and sees only the key
//! prefixes its signed manifest declares.
//!
//! ```no_run
//! use potter_plugin::{HostOptions, PluginHost, ValidationTarget};
//! # fn main() -> Result<(), potter_plugin::PluginError> {
//! let host = PluginHost::new(HostOptions::new("/var/lib/potter", "production"))?;
//! let config = serde_json::json!({"app": {"debug": true}});
//! for loaded in host.load_dir("/etc/potter/plugins".as_ref()) {
//!     let plugin = loaded?;
//!     let view = ValidationTarget { environment: "production".into(), service: None };
//!     for issue in plugin.validate(&view, &config, &|_path: &str| false)? {
//!         println!("{} {}: {}", issue.rule(), issue.path, issue.message);
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod cache;
mod config_filter;
mod error;
mod executor;
mod host;
mod log;
mod manifest;
mod outbound;
mod plugin;
mod progress;
mod sandbox;
mod signing;
mod sql;

pub use cache::CompiledFrom;
pub use config_filter::{lookup, restrict};
pub use error::{PluginError, Refusal};
pub use log::{BURST_LINES, GUEST_LOG_TARGET, LINES_PER_SECOND};
pub use host::{default_trust_dir, plugin_modules, HostOptions, PluginHost, PluginInfo, PluginStatus, Staleness, PRODUCTION};
pub use manifest::{
    is_plugin_name, manifest_path, reserved_variable, resolve_granted_directory, Allowance, GrantKind, GrantRules, Grants, LimitRequest,
    Limits, Manifest, OnError, PluginKind, DEFAULT_ENV_PREFIX, GRANTED_DIRECTORY_GUEST_PATH, MANIFEST_SUFFIX,
};
pub use outbound::{Origin, OriginScheme, OutboundLimits};
pub use progress::{Progress, ProgressReport, ProgressTask};
pub use sql::{is_connection_name, SqlLimits, SQL_CONNECTIONS_FILE};
pub use plugin::{CallCounts, LoadedPlugin, PluginIssue, SourceOutput, ValidationTarget};
pub use potter_engine::Severity;
pub use signing::{
    key_id, keygen, parse_signature, sign, sign_with, signature_path, trust, trust_with, trusted_allowance, verify, verify_with, KeyFiles,
    Verified, MAX_MANIFEST_BYTES, MAX_MODULE_BYTES, MAX_SIGNATURE_BYTES, SIGNATURE_SUFFIX,
};

/// For tests only (this crate's and the configuration host's): what a signer other than
/// [`sign`] could produce, to show the load refuses it too. Nothing in the host calls it.
pub mod testing {
    use std::path::{Path, PathBuf};

    use crate::PluginError;

    /// Signs `<name>.wasm` and its manifest with the secret key at `key` as [`crate::sign`]
    /// does, without its checks: a manifest granting the tool's own variables, limits above the
    /// maxima, anything that parses or not. The signature is a real one; only the load's own
    /// checks stand between it and running.
    pub fn forge_signature(wasm: &Path, key: &Path) -> Result<PathBuf, PluginError> {
        crate::signing::sign_checked_by(wasm, key, None)
    }
}
