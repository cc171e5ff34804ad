//! The crate's one error type.
//!
//! Every message names the key path and environment (or the keyring file) it is about, and none
//! ever holds plaintext or key material: variants carry only names, key ids, fixed reasons and
//! file paths, never an input string that could be a secret.

use std::io;
use std::path::PathBuf;

/// Why a ciphertext could not be made or opened, or a keyring used (the library's `SecretsError`
/// wraps it with where in the tree it happened).
#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    /// AES-GCM authentication failed. GCM cannot tell a wrong key from wrong additional data,
    /// so the message names both possibilities.
    #[error(
        "secret at `{path}` in environment `{env}` does not decrypt with key `{key_id}`: \
         it was made for another key path or environment, or altered"
    )]
    Undecryptable {
        env: String,
        path: String,
        key_id: String,
    },

    #[error(
        "secret at `{path}` in environment `{env}` names key `{key_id}`, which the `{env}` keyring \
         does not hold (it holds {known}): it was made with another environment's keyring or with \
         a key that has been retired"
    )]
    UnknownKeyId {
        env: String,
        path: String,
        key_id: String,
        known: String,
    },

    #[error("secret at `{path}` in environment `{env}` is truncated: {what}")]
    Truncated {
        env: String,
        path: String,
        what: &'static str,
    },

    #[error(
        "secret at `{path}` in environment `{env}` uses ciphertext format {version}, which this \
         build cannot read (it reads v1)"
    )]
    UnknownVersion {
        env: String,
        path: String,
        version: String,
    },

    #[error(
        "secret at `{path}` in environment `{env}` has a {part} that is not valid base64 \
         (URL-safe alphabet, no padding)"
    )]
    BadBase64 {
        env: String,
        path: String,
        part: &'static str,
    },

    #[error(
        "secret at `{path}` in environment `{env}` is not a well-formed ciphertext ({reason}); \
         expected `enc:v1:<key-id>:<nonce>:<ciphertext>`"
    )]
    Malformed {
        env: String,
        path: String,
        reason: &'static str,
    },

    #[error("secret at `{path}` in environment `{env}` decrypted to bytes that are not UTF-8")]
    NotUtf8 { env: String, path: String },

    #[error("secret at `{path}` in environment `{env}` could not be encrypted (value too long)")]
    EncryptionFailed { env: String, path: String },

    #[error(
        "no keyring for environment `{env}`: {env_var} is not set and {} does not exist; \
         create one with `potter-config secrets keygen --env {env}`",
        .file.display()
    )]
    KeyringMissing {
        env: String,
        env_var: String,
        file: PathBuf,
    },

    #[error(
        "a keyring for environment `{env}` already exists at {}; add a key with \
         `potter-config secrets rotate --env {env}` instead",
        .file.display()
    )]
    KeyringExists { env: String, file: PathBuf },

    #[error(
        "refusing keyring file {}: its mode is {mode:04o}, which lets group or others access it; \
         it must be 0600 (run `chmod 600 {}`)",
        .file.display(), .file.display()
    )]
    KeyringPermissions { file: PathBuf, mode: u32 },

    /// `origin` is a file path or an environment variable name; `reason` is a fixed description.
    #[error("keyring {origin} is invalid: {reason}")]
    KeyringInvalid { origin: String, reason: String },

    #[error(
        "the keyring of environment `{keyring_env}` cannot be used for the secret at `{path}` \
         in environment `{env}`"
    )]
    KeyringEnvMismatch {
        keyring_env: String,
        env: String,
        path: String,
    },

    #[error(
        "`{env}` cannot name a keyring: an environment name is 1 to 64 letters, digits, `_` or `-`"
    )]
    InvalidEnvName { env: String },

    #[error("cannot {action} {}: {source}", .file.display())]
    Io {
        action: &'static str,
        file: PathBuf,
        source: io::Error,
    },
}

/// Shows a key path the way users write it (`llm_providers.openai.api_key`). A segment that
/// itself contains a dot or is empty is quoted so the display stays unambiguous.
pub fn display_path<S: AsRef<str>>(segments: &[S]) -> String {
    let mut shown = String::new();
    for (index, segment) in segments.iter().enumerate() {
        let segment = segment.as_ref();
        if index > 0 {
            shown.push('.');
        }
        if segment.is_empty() || segment.contains(['.', '"']) {
            shown.push_str(&format!("{segment:?}"));
        } else {
            shown.push_str(segment);
        }
    }
    shown
}
