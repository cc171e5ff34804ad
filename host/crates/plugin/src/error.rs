//! The crate's error type: every error names the plugin (or key file) and the cause.

use std::path::PathBuf;

/// Why a plugin's signature check refused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("it is not signed (no {0} beside it)")]
    Unsigned(String),
    #[error("the signature file is malformed: {0}")]
    MalformedSignature(String),
    #[error("it is signed by key {0}, which is not in the trust store")]
    UnknownKey(String),
    #[error("the module was modified after signing (sha256 differs)")]
    ModuleTampered,
    #[error("the manifest was modified after signing (sha256 differs)")]
    ManifestTampered,
    #[error("the signature does not match the module and manifest")]
    BadSignature,
    #[error("unsigned plugins are never allowed in production")]
    UnsignedInProduction,
}

/// Everything that can go wrong loading or calling a plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {plugin}: {path}: {source}")]
    Io {
        plugin: String,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("plugin {plugin}: manifest {path}: {reason}")]
    Manifest {
        plugin: String,
        path: PathBuf,
        reason: String,
    },

    #[error("plugin {plugin}: refused: {reason}")]
    Refused { plugin: String, reason: Refusal },

    #[error("plugin {plugin}: refused: {grant} is never granted: {reason}")]
    ForbiddenGrant {
        plugin: String,
        grant: String,
        reason: String,
    },

    #[error("plugin {plugin}: refused: {grant} is a `{kind}` grant, which the trust store does not allow key {key_id} (its allowance: {allowance}; `plugin trust --allow {kind}` allows it)")]
    GrantNotAllowed {
        plugin: String,
        grant: String,
        kind: String,
        key_id: String,
        allowance: String,
    },

    #[error("plugin {plugin}: {reason}")]
    UnusableFile { plugin: String, reason: String },

    #[error("plugin {plugin}: not a loadable component: {reason}")]
    InvalidModule { plugin: String, reason: String },

    #[error("plugin {plugin}: refused: imports `{interface}`, not granted ({why})")]
    UngrantedImport {
        plugin: String,
        interface: String,
        why: String,
    },

    #[error("plugin {plugin}: {reason}")]
    Unsupported { plugin: String, reason: String },

    #[error("plugin {plugin}: {call}: timed out (limit {limit_ms} ms)")]
    Timeout {
        plugin: String,
        call: String,
        limit_ms: u32,
    },

    #[error("plugin {plugin}: {call}: exceeded its memory limit of {limit_mib} MiB")]
    MemoryLimit {
        plugin: String,
        call: String,
        limit_mib: u32,
    },

    #[error("plugin {plugin}: {call}: trapped: {detail}")]
    Trap {
        plugin: String,
        call: String,
        detail: String,
    },

    #[error("plugin {plugin}: {call}: output of {size} bytes exceeds the limit of {limit} bytes")]
    OutputTooLarge {
        plugin: String,
        call: String,
        size: usize,
        limit: usize,
    },

    #[error("plugin {plugin}: {call}: invalid output: {reason}")]
    InvalidOutput {
        plugin: String,
        call: String,
        reason: String,
    },

    #[error("plugin {plugin}: load failed: {message}")]
    SourceFailed { plugin: String, message: String },

    #[error("plugin {plugin}: load: key `{key}` is outside the plugin's prefixes ({prefixes})")]
    OutsidePrefixes {
        plugin: String,
        key: String,
        prefixes: String,
    },

    #[error("key file {path}: {reason}")]
    Key { path: PathBuf, reason: String },

    #[error("plugin host: {0}")]
    Host(String),
}

impl PluginError {
    /// True when the plugin was refused for trust reasons (signature, key,
    /// grants): the CLI maps these to exit code 4.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            PluginError::Refused { .. }
                | PluginError::UngrantedImport { .. }
                | PluginError::ForbiddenGrant { .. }
                | PluginError::GrantNotAllowed { .. }
        )
    }

    /// True when the error is about the plugin's files (reading, signature, manifest, grants,
    /// module, imports), not about running it: its text quotes no configuration.
    pub fn is_about_files(&self) -> bool {
        matches!(
            self,
            PluginError::Io { .. }
                | PluginError::Manifest { .. }
                | PluginError::Refused { .. }
                | PluginError::ForbiddenGrant { .. }
                | PluginError::GrantNotAllowed { .. }
                | PluginError::UnusableFile { .. }
                | PluginError::InvalidModule { .. }
                | PluginError::UngrantedImport { .. }
                | PluginError::Key { .. }
        )
    }

    /// The plugin this error is about, when there is one.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            PluginError::Io { plugin, .. }
            | PluginError::Manifest { plugin, .. }
            | PluginError::Refused { plugin, .. }
            | PluginError::ForbiddenGrant { plugin, .. }
            | PluginError::GrantNotAllowed { plugin, .. }
            | PluginError::UnusableFile { plugin, .. }
            | PluginError::InvalidModule { plugin, .. }
            | PluginError::UngrantedImport { plugin, .. }
            | PluginError::Unsupported { plugin, .. }
            | PluginError::Timeout { plugin, .. }
            | PluginError::MemoryLimit { plugin, .. }
            | PluginError::Trap { plugin, .. }
            | PluginError::OutputTooLarge { plugin, .. }
            | PluginError::InvalidOutput { plugin, .. }
            | PluginError::SourceFailed { plugin, .. }
            | PluginError::OutsidePrefixes { plugin, .. } => Some(plugin),
            PluginError::Key { .. } | PluginError::Host(_) => None,
        }
    }
}

/// Render a wasmtime error with its causes on one line.
pub(crate) fn describe(error: &wasmtime::Error) -> String {
    format!("{error:#}").replace('\n', " ")
}
