//! Keyed fingerprints of secrets, so history can record "this secret changed" without the
//! plaintext and without a hash anyone could brute-force offline.
//!
//! Form: `hmac-sha256:<key-id>:<base64url tag>`. The HMAC key is derived from the named data key
//! (HMAC-SHA256(data key, label)); the message binds environment and key path like the
//! ciphertext's AAD, so equal secrets at two paths do not show as equal.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::cipher::{push_field, Context};
use crate::error::CipherError;
use crate::keyring::{derive_subkey, DataKey, Keyring};

const FINGERPRINT_PREFIX: &str = "hmac-sha256:";
const FINGERPRINT_KEY_LABEL: &[u8] = b"potter-config fingerprint key v1";
const MESSAGE_DOMAIN: &[u8] = b"potter-config fingerprint v1";

/// The fingerprint of `plaintext` at `path` in `env`, keyed by the keyring's newest key.
pub fn fingerprint<S: AsRef<str>>(
    keyring: &Keyring,
    env: &str,
    path: &[S],
    plaintext: &str,
) -> Result<String, CipherError> {
    Context::new(keyring, env, path)?;
    let key = keyring.newest();
    let tag = keyed_mac(key, env, path, plaintext).finalize().into_bytes();
    Ok(format!(
        "{FINGERPRINT_PREFIX}{}:{}",
        key.id,
        URL_SAFE_NO_PAD.encode(tag)
    ))
}

/// The fingerprint of a secret known only as its ciphertext (its environment's keyring is not
/// at hand): `sha256:<base64url>` of the ciphertext string. A ciphertext is public, so its hash
/// reveals nothing; it changes whenever the ciphertext does (a re-encryption shows as a change)
/// and never equals a keyed fingerprint.
pub fn ciphertext_fingerprint(ciphertext: &str) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", URL_SAFE_NO_PAD.encode(Sha256::digest(ciphertext.as_bytes())))
}

/// Whether `fingerprint` (made earlier, perhaps with an older key) is that of `plaintext` at
/// `path` in `env`. `Ok(None)` when it cannot tell: the fingerprint is malformed or its key has
/// been retired (treat as "changed"). Compares in constant time.
pub fn fingerprint_matches<S: AsRef<str>>(
    keyring: &Keyring,
    env: &str,
    path: &[S],
    fingerprint: &str,
    plaintext: &str,
) -> Result<Option<bool>, CipherError> {
    Context::new(keyring, env, path)?;
    let Some((key_id, tag_text)) = fingerprint
        .strip_prefix(FINGERPRINT_PREFIX)
        .and_then(|rest| rest.split_once(':'))
    else {
        return Ok(None);
    };
    let (Some(key), Ok(tag)) = (keyring.find(key_id), URL_SAFE_NO_PAD.decode(tag_text)) else {
        return Ok(None);
    };
    Ok(Some(
        keyed_mac(key, env, path, plaintext)
            .verify_slice(&tag)
            .is_ok(),
    ))
}

fn keyed_mac<S: AsRef<str>>(key: &DataKey, env: &str, path: &[S], plaintext: &str) -> Hmac<Sha256> {
    let mac_key = derive_subkey(&key.material, FINGERPRINT_KEY_LABEL);
    let mut message = Vec::with_capacity(64);
    push_field(&mut message, MESSAGE_DOMAIN);
    push_field(&mut message, env.as_bytes());
    message.extend_from_slice(&(path.len() as u32).to_be_bytes());
    for segment in path {
        push_field(&mut message, segment.as_ref().as_bytes());
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(mac_key.as_ref())
        .expect("HMAC takes keys of any length");
    mac.update(&message);
    // The plaintext goes straight into the MAC, never into a buffer of ours.
    mac.update(&(plaintext.len() as u64).to_be_bytes());
    mac.update(plaintext.as_bytes());
    mac
}
