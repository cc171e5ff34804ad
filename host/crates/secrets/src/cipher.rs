//! The ciphertext format and AES-256-GCM sealing bound to environment and key path.
//!
//! Format: `enc:v1:<key-id>:<nonce>:<ciphertext>` where `<nonce>` is the 12-byte GCM nonce and
//! `<ciphertext>` the sealed bytes followed by the 16-byte tag, both base64 URL-safe without
//! padding (no `:`, `+`, `/` or `=`, so the value needs no quoting in YAML, TOML or a shell).

use aes_gcm::aead::{AeadCore, AeadInPlace, OsRng};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use zeroize::Zeroize;

use crate::error::{display_path, CipherError};
use crate::keyring::Keyring;
use crate::secret_string::SecretString;

/// Every ciphertext starts with this.
pub const CIPHERTEXT_PREFIX: &str = "enc:";

const VERSION: &str = "v1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Domain tag opening the additional authenticated data of a v1 ciphertext.
const AAD_DOMAIN: &[u8] = b"potter-config secret v1";

/// Whether `value` is (meant as) a Potter ciphertext: `enc:v<digits>:` followed by anything.
/// A value with a future version counts, so it fails loudly rather than passing as plaintext.
pub fn is_ciphertext(value: &str) -> bool {
    parse_version(value).is_some()
}

/// The key id a ciphertext names, or `None` if `value` is not a well-formed v1 ciphertext.
/// Rotation gathers these to learn which keys are still referenced.
pub fn key_id_of(value: &str) -> Option<&str> {
    let mut fields = value.strip_prefix(CIPHERTEXT_PREFIX)?.split(':');
    let (version, key_id) = (fields.next()?, fields.next()?);
    let well_formed = version == VERSION && valid_key_id(key_id) && fields.count() == 2;
    well_formed.then_some(key_id)
}

/// Encrypts `plaintext` for key path `path` (segments, e.g. `["llm_providers", "openai",
/// "api_key"]`) in environment `env` with the keyring's newest key.
pub fn encrypt<S: AsRef<str>>(
    keyring: &Keyring,
    env: &str,
    path: &[S],
    plaintext: &str,
) -> Result<String, CipherError> {
    let context = Context::new(keyring, env, path)?;
    let key = keyring.newest();
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let mut buffer = Vec::with_capacity(plaintext.len() + TAG_LEN);
    buffer.extend_from_slice(plaintext.as_bytes());
    if key
        .cipher
        .encrypt_in_place(&nonce, &associated_data(env, path), &mut buffer)
        .is_err()
    {
        buffer.zeroize();
        return Err(CipherError::EncryptionFailed {
            env: context.env,
            path: context.path,
        });
    }
    let mut sealed = String::with_capacity(CIPHERTEXT_PREFIX.len() + 40 + buffer.len() * 4 / 3 + 4);
    sealed.push_str(CIPHERTEXT_PREFIX);
    sealed.push_str(VERSION);
    sealed.push(':');
    sealed.push_str(&key.id);
    sealed.push(':');
    URL_SAFE_NO_PAD.encode_string(nonce, &mut sealed);
    sealed.push(':');
    URL_SAFE_NO_PAD.encode_string(&buffer, &mut sealed);
    Ok(sealed)
}

/// Decrypts a ciphertext found at `path` in environment `env`.
pub fn decrypt<S: AsRef<str>>(
    keyring: &Keyring,
    env: &str,
    path: &[S],
    ciphertext: &str,
) -> Result<SecretString, CipherError> {
    let context = Context::new(keyring, env, path)?;
    let parsed = match parse(ciphertext) {
        Ok(parsed) => parsed,
        Err(problem) => return Err(context.error(problem)),
    };
    let Some(key) = keyring.find(parsed.key_id) else {
        return Err(CipherError::UnknownKeyId {
            env: context.env,
            path: context.path,
            key_id: parsed.key_id.to_owned(),
            known: keyring.describe_key_ids(),
        });
    };
    let mut buffer = parsed.sealed;
    let nonce = Nonce::from_slice(&parsed.nonce);
    if key
        .cipher
        .decrypt_in_place(nonce, &associated_data(env, path), &mut buffer)
        .is_err()
    {
        return Err(CipherError::Undecryptable {
            env: context.env,
            path: context.path,
            key_id: key.id.clone(),
        });
    }
    match String::from_utf8(buffer) {
        Ok(plaintext) => Ok(SecretString::new(plaintext)),
        Err(not_utf8) => {
            not_utf8.into_bytes().zeroize();
            Err(CipherError::NotUtf8 {
                env: context.env,
                path: context.path,
            })
        }
    }
}

/// Checks that a ciphertext found at `path` in environment `env` is well formed (format version,
/// key id, nonce and tag lengths, base64) without decrypting it: what can be verified of a secret
/// whose environment's keyring this process does not hold. The errors are those of [`decrypt`].
pub fn check_structure<S: AsRef<str>>(env: &str, path: &[S], ciphertext: &str) -> Result<(), CipherError> {
    parse(ciphertext).map(drop).map_err(|problem| {
        Context {
            env: env.to_owned(),
            path: display_path(path),
        }
        .error(problem)
    })
}

/// Re-encrypts a ciphertext with the keyring's newest key (a rotation step). A ciphertext
/// already made with the newest key is returned unchanged, so re-running a rotation is a no-op.
pub fn reencrypt<S: AsRef<str>>(
    keyring: &Keyring,
    env: &str,
    path: &[S],
    ciphertext: &str,
) -> Result<String, CipherError> {
    let plaintext = decrypt(keyring, env, path, ciphertext)?;
    if key_id_of(ciphertext) == Some(keyring.newest_key_id()) {
        return Ok(ciphertext.to_owned());
    }
    encrypt(keyring, env, path, plaintext.expose())
}

/// The additional authenticated data: domain tag, environment, then each path segment, every
/// field preceded by its length (u32, big-endian) and the path by its segment count, so no two
/// different (env, path) pairs encode alike (`a.b`+`c` differs from `a`+`b.c`).
fn associated_data<S: AsRef<str>>(env: &str, path: &[S]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64);
    push_field(&mut aad, AAD_DOMAIN);
    push_field(&mut aad, env.as_bytes());
    aad.extend_from_slice(&(path.len() as u32).to_be_bytes());
    for segment in path {
        push_field(&mut aad, segment.as_ref().as_bytes());
    }
    aad
}

pub(crate) fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

/// The env and shown path for error messages, after checking the keyring fits the env.
pub(crate) struct Context {
    pub(crate) env: String,
    pub(crate) path: String,
}

impl Context {
    pub(crate) fn new<S: AsRef<str>>(
        keyring: &Keyring,
        env: &str,
        path: &[S],
    ) -> Result<Self, CipherError> {
        if keyring.env() != env {
            return Err(CipherError::KeyringEnvMismatch {
                keyring_env: keyring.env().to_owned(),
                env: env.to_owned(),
                path: display_path(path),
            });
        }
        Ok(Self {
            env: env.to_owned(),
            path: display_path(path),
        })
    }

    fn error(self, problem: Problem) -> CipherError {
        let Self { env, path } = self;
        match problem {
            Problem::Malformed(reason) => CipherError::Malformed { env, path, reason },
            Problem::UnknownVersion(version) => CipherError::UnknownVersion { env, path, version },
            Problem::Truncated(what) => CipherError::Truncated { env, path, what },
            Problem::BadBase64(part) => CipherError::BadBase64 { env, path, part },
        }
    }
}

/// Why a string is not a readable ciphertext, before env and path are attached.
enum Problem {
    Malformed(&'static str),
    UnknownVersion(String),
    Truncated(&'static str),
    BadBase64(&'static str),
}

struct Parsed<'a> {
    key_id: &'a str,
    nonce: [u8; NONCE_LEN],
    /// Sealed bytes followed by the tag.
    sealed: Vec<u8>,
}

/// The version field of `enc:v<digits>:...`, or `None` when `value` does not start that way.
fn parse_version(value: &str) -> Option<&str> {
    let rest = value.strip_prefix(CIPHERTEXT_PREFIX)?;
    let (version, _) = rest.split_once(':')?;
    let digits = version.strip_prefix('v')?;
    let plausible =
        !digits.is_empty() && digits.len() <= 6 && digits.bytes().all(|byte| byte.is_ascii_digit());
    plausible.then_some(version)
}

/// Key ids have exactly the derived form `k` + 8 lower-case hex digits, so an id quoted in an
/// error can never be a fragment of a mangled plaintext.
fn valid_key_id(key_id: &str) -> bool {
    key_id.len() == 9
        && key_id.starts_with('k')
        && key_id[1..]
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// Splits and decodes a ciphertext. Problems quote nothing from the input except a version
/// that matched `v<digits>`, since a mangled value might be a pasted plaintext.
fn parse(value: &str) -> Result<Parsed<'_>, Problem> {
    let Some(version) = parse_version(value) else {
        return Err(Problem::Malformed("it does not start with `enc:v<N>:`"));
    };
    if version != VERSION {
        return Err(Problem::UnknownVersion(version.to_owned()));
    }
    let mut fields = value[CIPHERTEXT_PREFIX.len() + version.len() + 1..].split(':');
    let key_id = fields.next().unwrap_or_default();
    if key_id.is_empty() {
        return Err(Problem::Truncated("the key id is missing"));
    }
    if !valid_key_id(key_id) {
        return Err(Problem::Malformed(
            "the key id is not `k` followed by 8 hex digits",
        ));
    }
    let (Some(nonce_text), Some(sealed_text)) = (fields.next(), fields.next()) else {
        return Err(Problem::Truncated(
            "the nonce or ciphertext field is missing",
        ));
    };
    if fields.next().is_some() {
        return Err(Problem::Malformed(
            "it has more than five `:`-separated fields",
        ));
    }
    let nonce_bytes = URL_SAFE_NO_PAD
        .decode(nonce_text)
        .map_err(|_| Problem::BadBase64("nonce"))?;
    let nonce: [u8; NONCE_LEN] = match nonce_bytes.len() {
        NONCE_LEN => nonce_bytes.try_into().expect("length checked"),
        shorter if shorter < NONCE_LEN => {
            return Err(Problem::Truncated("the nonce is shorter than 12 bytes"))
        }
        _ => return Err(Problem::Malformed("the nonce is longer than 12 bytes")),
    };
    let sealed = URL_SAFE_NO_PAD
        .decode(sealed_text)
        .map_err(|_| Problem::BadBase64("ciphertext"))?;
    if sealed.len() < TAG_LEN {
        return Err(Problem::Truncated(
            "the ciphertext is shorter than its 16-byte authentication tag",
        ));
    }
    Ok(Parsed {
        key_id,
        nonce,
        sealed,
    })
}
