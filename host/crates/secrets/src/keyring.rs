//! One environment's set of data keys: the newest encrypts, every key decrypts.
//!
//! Key ids are derived from the key bytes (`k` + 8 hex digits of an HMAC of the key), so the
//! same key has the same id whether it comes from a keyring file or from
//! `POTTER_SECRET_KEY_<ENV>`: a key exported to a container keeps decrypting what it encrypted.

use std::fmt;
use std::path::PathBuf;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{KeyInit, OsRng};
use aes_gcm::Aes256Gcm;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::CipherError;
use crate::secret_string::SecretString;

/// Length of a data key in bytes (AES-256).
pub const KEY_LEN: usize = 32;

/// Label that separates key-id derivation from every other use of a key.
const KEY_ID_LABEL: &[u8] = b"potter-config key id v1";

/// Where a keyring came from; shown in messages, and tells the CLI whether a rotation can be
/// saved (a file) or must be handed back to the operator (an environment variable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyringOrigin {
    /// Loaded from (or created for) this keyring file.
    File(PathBuf),
    /// Read from this environment variable.
    EnvVar(String),
    /// Made in memory and not stored yet.
    Generated,
}

/// One data key. Deliberately no `Debug`: it holds key bytes.
#[derive(Clone)]
pub(crate) struct DataKey {
    pub(crate) id: String,
    pub(crate) material: Zeroizing<[u8; KEY_LEN]>,
    /// The AES key schedule, expanded once so decrypting 1,000 secrets does not expand it 1,000
    /// times (zeroized on drop through the `aes/zeroize` feature).
    pub(crate) cipher: Aes256Gcm,
    /// Seconds since the Unix epoch, for people reading the keyring file; unknown for env keys.
    pub(crate) created_unix: Option<u64>,
}

impl DataKey {
    pub(crate) fn from_material(
        material: Zeroizing<[u8; KEY_LEN]>,
        created_unix: Option<u64>,
    ) -> Self {
        let id = derive_key_id(&material);
        let cipher = Aes256Gcm::new(material.as_ref().into());
        Self {
            id,
            material,
            cipher,
            created_unix,
        }
    }

    fn random() -> Self {
        let mut material = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(material.as_mut());
        Self::from_material(material, Some(now_unix()))
    }
}

/// The keys of one environment, oldest first, newest last; never empty.
///
/// `Debug` shows the environment, the key ids and the origin, never key bytes.
#[derive(Clone)]
pub struct Keyring {
    env: String,
    keys: Vec<DataKey>,
    origin: KeyringOrigin,
}

impl Keyring {
    /// A new keyring for `env` holding one fresh random key (what `secrets keygen` stores).
    pub fn generate(env: &str) -> Result<Self, CipherError> {
        validate_env_name(env)?;
        Ok(Self {
            env: env.to_owned(),
            keys: vec![DataKey::random()],
            origin: KeyringOrigin::Generated,
        })
    }

    /// Builds the keyring for `env` from the value of `POTTER_SECRET_KEY_<ENV>`: one or more
    /// base64 (standard alphabet, padded) 32-byte keys separated by commas, oldest first, the
    /// newest last. Surrounding whitespace is ignored.
    pub fn from_env_value(env: &str, value: &str) -> Result<Self, CipherError> {
        let var = env_var_name(env)?;
        let invalid = |reason: String| CipherError::KeyringInvalid {
            origin: var.clone(),
            reason,
        };
        if value.trim().is_empty() {
            return Err(invalid(
                "it is set but empty; unset it to use the keyring file".into(),
            ));
        }
        let mut keys: Vec<DataKey> = Vec::new();
        for (index, item) in value.split(',').enumerate() {
            let material = decode_key(item.trim())
                .map_err(|problem| invalid(format!("key {} of the list {problem}", index + 1)))?;
            let key = DataKey::from_material(material, None);
            if keys.iter().any(|known| known.id == key.id) {
                return Err(invalid(format!(
                    "key {} of the list repeats key `{}`",
                    index + 1,
                    key.id
                )));
            }
            keys.push(key);
        }
        Ok(Self {
            env: env.to_owned(),
            keys,
            origin: KeyringOrigin::EnvVar(var),
        })
    }

    /// The value for `POTTER_SECRET_KEY_<ENV>` that reproduces this keyring (for containers).
    /// It is key material, hence a [`SecretString`].
    pub fn to_env_value(&self) -> SecretString {
        let mut value = String::with_capacity(self.keys.len() * 45);
        for (index, key) in self.keys.iter().enumerate() {
            if index > 0 {
                value.push(',');
            }
            STANDARD.encode_string(key.material.as_ref(), &mut value);
        }
        SecretString::new(value)
    }

    /// The environment this keyring belongs to.
    pub fn env(&self) -> &str {
        &self.env
    }

    /// Where the keyring came from.
    pub fn origin(&self) -> &KeyringOrigin {
        &self.origin
    }

    /// Key ids, oldest first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|key| key.id.as_str())
    }

    /// The id of the key new ciphertexts are made with.
    pub fn newest_key_id(&self) -> &str {
        &self.newest().id
    }

    /// Whether the keyring holds a key with this id.
    pub fn contains(&self, key_id: &str) -> bool {
        self.find(key_id).is_some()
    }

    /// Adds a fresh random key, which becomes the newest (step one of a rotation). Returns its id.
    pub fn add_new_key(&mut self) -> String {
        let mut key = DataKey::random();
        // A 32-bit id collision is vanishingly rare, but two keys must never share an id.
        while self.contains(&key.id) {
            key = DataKey::random();
        }
        let id = key.id.clone();
        self.keys.push(key);
        id
    }

    /// Removes every key that no ciphertext references any more (the last step of a rotation).
    /// `referenced` are the key ids found in the environment's ciphertexts (see
    /// [`crate::key_id_of`]). The newest key is always kept. Returns the retired ids.
    pub fn retire_unreferenced<'a>(
        &mut self,
        referenced: impl IntoIterator<Item = &'a str>,
    ) -> Vec<String> {
        let referenced: Vec<&str> = referenced.into_iter().collect();
        let newest = self.newest().id.clone();
        let mut retired = Vec::new();
        self.keys.retain(|key| {
            let keep = key.id == newest || referenced.contains(&key.id.as_str());
            if !keep {
                retired.push(key.id.clone());
            }
            keep
        });
        retired
    }

    pub(crate) fn from_parts(env: String, keys: Vec<DataKey>, origin: KeyringOrigin) -> Self {
        debug_assert!(!keys.is_empty());
        Self { env, keys, origin }
    }

    pub(crate) fn set_origin(&mut self, origin: KeyringOrigin) {
        self.origin = origin;
    }

    pub(crate) fn keys(&self) -> &[DataKey] {
        &self.keys
    }

    pub(crate) fn newest(&self) -> &DataKey {
        self.keys
            .last()
            .expect("a keyring always holds at least one key")
    }

    pub(crate) fn find(&self, key_id: &str) -> Option<&DataKey> {
        self.keys.iter().find(|key| key.id == key_id)
    }

    /// Key ids for an error message, e.g. "`k1a2b3c4d`, `k5e6f7a8b`".
    pub(crate) fn describe_key_ids(&self) -> String {
        self.key_ids()
            .map(|id| format!("`{id}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("env", &self.env)
            .field("key_ids", &self.key_ids().collect::<Vec<_>>())
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// `POTTER_SECRET_KEY_<ENV>`: the environment name upper-cased, `-` turned into `_`.
pub fn env_var_name(env: &str) -> Result<String, CipherError> {
    validate_env_name(env)?;
    Ok(format!(
        "POTTER_SECRET_KEY_{}",
        env.to_ascii_uppercase().replace('-', "_")
    ))
}

/// Environment names become file names and variable names: keep them to a safe alphabet.
pub(crate) fn validate_env_name(env: &str) -> Result<(), CipherError> {
    let usable = !env.is_empty()
        && env.len() <= 64
        && env
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if usable {
        Ok(())
    } else {
        Err(CipherError::InvalidEnvName {
            env: env.to_owned(),
        })
    }
}

/// Decodes one base64 key; the error text is a fixed phrase that never quotes the input.
pub(crate) fn decode_key(encoded: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, &'static str> {
    let decoded = Zeroizing::new(
        STANDARD
            .decode(encoded)
            .map_err(|_| "is not valid base64")?,
    );
    if decoded.len() != KEY_LEN {
        return Err("does not decode to 32 bytes");
    }
    let mut material = Zeroizing::new([0u8; KEY_LEN]);
    material.copy_from_slice(&decoded);
    Ok(material)
}

/// `k` + the first 4 bytes, in hex, of HMAC-SHA256(key, label): short, stable, and reveals
/// nothing usable about the key.
fn derive_key_id(material: &[u8; KEY_LEN]) -> String {
    let digest = derive_subkey(material, KEY_ID_LABEL);
    let mut id = String::with_capacity(9);
    id.push('k');
    for byte in &digest[..4] {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// HMAC-SHA256(key, label): a PRF output that can stand for the key in another role.
pub(crate) fn derive_subkey(material: &[u8; KEY_LEN], label: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(material).expect("HMAC takes keys of any length");
    mac.update(label);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}
