//! ed25519 signing of plugins. The signature covers the sha256 of the module
//! AND of the manifest, so neither code nor grants can change without re-signing.
//!
//! Files (all text, one `field value` per line after a header line):
//! - `NAME.key`: `potter-plugin-secret-key-v1` + hex seed (mode 0600);
//! - `NAME.pub`: `potter-plugin-public-key-v1` + hex public key;
//! - `<name>.wasm.sig`: `potter-plugin-signature-v1`, `key-id`, `module-sha256`,
//!   `manifest-sha256`, `signature`.
//!
//! The trust store is a directory of `<key-id>.pub` files.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::{PluginError, Refusal};
use crate::manifest::{manifest_path, plugin_stem, sibling, Manifest};

const SECRET_KEY_HEADER: &str = "potter-plugin-secret-key-v1";
const PUBLIC_KEY_HEADER: &str = "potter-plugin-public-key-v1";
const SIGNATURE_HEADER: &str = "potter-plugin-signature-v1";
/// Domain separation: a plugin signature can never be confused with another use of the key.
const SIGNED_CONTEXT: &[u8] = b"potter-config plugin signature v1\0";

/// Suffix of the signature file: `<name>.wasm.sig`.
pub const SIGNATURE_SUFFIX: &str = ".wasm.sig";

/// The files written by [`keygen`].
#[derive(Debug, Clone)]
pub struct KeyFiles {
    pub secret_key: PathBuf,
    pub public_key: PathBuf,
    /// First 16 hex digits of sha256(public key).
    pub key_id: String,
}

/// A module whose signature checked against a trusted key.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    pub module_sha256: String,
    /// None when loaded unsigned (development only).
    pub signer_key_id: Option<String>,
    pub module: Vec<u8>,
}

/// Where the signature of `<dir>/<name>.wasm` lives.
pub fn signature_path(wasm_path: &Path) -> PathBuf {
    sibling(wasm_path, SIGNATURE_SUFFIX)
}

/// Create a new key pair: `<out>.key` (private, 0600) and `<out>.pub`.
/// Refuses to overwrite existing files.
pub fn keygen(out: &Path) -> Result<KeyFiles, PluginError> {
    let secret_key = with_suffix(out, ".key");
    let public_key = with_suffix(out, ".pub");
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)
        .map_err(|e| key_error(&secret_key, format!("no randomness: {e}")))?;
    let signing = SigningKey::from_bytes(&seed);
    seed.fill(0);
    let verifying = signing.verifying_key();
    write_new_file(
        &secret_key,
        &format!("{SECRET_KEY_HEADER}\n{}\n", hex::encode(signing.to_bytes())),
        true,
    )?;
    write_new_file(
        &public_key,
        &format!(
            "{PUBLIC_KEY_HEADER}\n{}\n",
            hex::encode(verifying.to_bytes())
        ),
        false,
    )?;
    Ok(KeyFiles {
        secret_key,
        public_key,
        key_id: key_id(&verifying),
    })
}

/// Sign `<dir>/<name>.wasm` together with `<dir>/<name>.plugin.toml`; writes
/// `<dir>/<name>.wasm.sig` and returns its path. The manifest is checked first.
pub fn sign(wasm_path: &Path, key_path: &Path) -> Result<PathBuf, PluginError> {
    let plugin = plugin_stem(wasm_path);
    let signing = read_secret_key(key_path)?;
    let module = read(&plugin, wasm_path)?;
    let manifest_file = manifest_path(wasm_path);
    let manifest_bytes = read(&plugin, &manifest_file)?;
    parse_manifest(&plugin, &manifest_file, &manifest_bytes)?;
    let module_sha = sha256(&module);
    let manifest_sha = sha256(&manifest_bytes);
    let signature = signing.sign(&signed_message(&module_sha, &manifest_sha));
    let text = format!(
        "{SIGNATURE_HEADER}\nkey-id {}\nmodule-sha256 {}\nmanifest-sha256 {}\nsignature {}\n",
        key_id(&signing.verifying_key()),
        hex::encode(module_sha),
        hex::encode(manifest_sha),
        hex::encode(signature.to_bytes()),
    );
    let sig_path = signature_path(wasm_path);
    fs::write(&sig_path, text).map_err(|source| PluginError::Io {
        plugin,
        path: sig_path.clone(),
        source,
    })?;
    Ok(sig_path)
}

/// Add a public key to the trust store (`<trust_dir>/<key-id>.pub`); returns the key id.
pub fn trust(pub_path: &Path, trust_dir: &Path) -> Result<String, PluginError> {
    let verifying = read_public_key(pub_path)?;
    let id = key_id(&verifying);
    fs::create_dir_all(trust_dir).map_err(|e| key_error(trust_dir, e.to_string()))?;
    let target = trust_dir.join(format!("{id}.pub"));
    fs::write(
        &target,
        format!(
            "{PUBLIC_KEY_HEADER}\n{}\n",
            hex::encode(verifying.to_bytes())
        ),
    )
    .map_err(|e| key_error(&target, e.to_string()))?;
    Ok(id)
}

/// Check a module and its manifest against its signature and the trust store.
pub fn verify(wasm_path: &Path, trust_dir: &Path) -> Result<Verified, PluginError> {
    load_checked(wasm_path, trust_dir, false)
}

/// Read module, manifest and signature; verify unless `allow_unsigned` and no
/// signature file exists. A present but bad signature is always refused.
pub(crate) fn load_checked(
    wasm_path: &Path,
    trust_dir: &Path,
    allow_unsigned: bool,
) -> Result<Verified, PluginError> {
    let plugin = plugin_stem(wasm_path);
    let refused = |reason: Refusal| PluginError::Refused {
        plugin: plugin.clone(),
        reason,
    };
    let module = read(&plugin, wasm_path)?;
    let manifest_file = manifest_path(wasm_path);
    let manifest_bytes = read(&plugin, &manifest_file)?;
    let sig_path = signature_path(wasm_path);
    let module_sha = sha256(&module);
    let manifest_sha = sha256(&manifest_bytes);

    let signer_key_id = if sig_path.exists() {
        let text = fs::read_to_string(&sig_path).map_err(|source| PluginError::Io {
            plugin: plugin.clone(),
            path: sig_path.clone(),
            source,
        })?;
        let sig =
            SignatureFile::parse(&text).map_err(|e| refused(Refusal::MalformedSignature(e)))?;
        let key = trusted_key(trust_dir, &sig.key_id)
            .ok_or_else(|| refused(Refusal::UnknownKey(sig.key_id.clone())))?;
        // The recorded hashes only sharpen the message; the signature is
        // always checked over the hashes of the bytes actually on disk.
        if sig.module_sha256 != module_sha {
            return Err(refused(Refusal::ModuleTampered));
        }
        if sig.manifest_sha256 != manifest_sha {
            return Err(refused(Refusal::ManifestTampered));
        }
        key.verify(&signed_message(&module_sha, &manifest_sha), &sig.signature)
            .map_err(|_| refused(Refusal::BadSignature))?;
        Some(sig.key_id)
    } else if allow_unsigned {
        None
    } else {
        return Err(refused(Refusal::Unsigned(file_name(&sig_path))));
    };

    let manifest = parse_manifest(&plugin, &manifest_file, &manifest_bytes)?;
    Ok(Verified {
        manifest,
        module_sha256: hex::encode(module_sha),
        signer_key_id,
        module,
    })
}

/// Reads the text of a `<name>.wasm.sig` file as [`verify`] does, without checking it against
/// anything; returns the key id it names. (The entry point of the signature fuzz target.)
pub fn parse_signature(text: &str) -> Result<String, String> {
    SignatureFile::parse(text).map(|signature| signature.key_id)
}

struct SignatureFile {
    key_id: String,
    module_sha256: [u8; 32],
    manifest_sha256: [u8; 32],
    signature: Signature,
}

impl SignatureFile {
    fn parse(text: &str) -> Result<SignatureFile, String> {
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some(SIGNATURE_HEADER) {
            return Err(format!("first line must be `{SIGNATURE_HEADER}`"));
        }
        let (mut key_id, mut module, mut manifest, mut signature) = (None, None, None, None);
        for line in lines.filter(|l| !l.trim().is_empty()) {
            let (field, value) = line
                .trim()
                .split_once(' ')
                .ok_or_else(|| format!("line `{line}` has no value"))?;
            match field {
                "key-id" => key_id = Some(value.to_string()),
                "module-sha256" => module = Some(hex_array::<32>(value, field)?),
                "manifest-sha256" => manifest = Some(hex_array::<32>(value, field)?),
                "signature" => {
                    signature = Some(Signature::from_bytes(&hex_array::<64>(value, field)?))
                }
                other => return Err(format!("unknown field `{other}`")),
            }
        }
        let missing = |f: &str| format!("missing field `{f}`");
        let key_id = key_id.ok_or_else(|| missing("key-id"))?;
        if key_id.len() != 16 || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("key-id `{key_id}` is not 16 hex digits"));
        }
        Ok(SignatureFile {
            key_id,
            module_sha256: module.ok_or_else(|| missing("module-sha256"))?,
            manifest_sha256: manifest.ok_or_else(|| missing("manifest-sha256"))?,
            signature: signature.ok_or_else(|| missing("signature"))?,
        })
    }
}

fn hex_array<const N: usize>(value: &str, field: &str) -> Result<[u8; N], String> {
    let bytes = hex::decode(value.trim()).map_err(|_| format!("{field} is not hex"))?;
    bytes
        .try_into()
        .map_err(|_| format!("{field} must be {N} bytes"))
}

fn signed_message(module_sha: &[u8; 32], manifest_sha: &[u8; 32]) -> Vec<u8> {
    [SIGNED_CONTEXT, module_sha, manifest_sha].concat()
}

/// Key id: the first 16 hex digits of sha256(public key).
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&sha256(key.as_bytes())[..8])
}

fn trusted_key(trust_dir: &Path, key_id: &str) -> Option<VerifyingKey> {
    let key = read_public_key(&trust_dir.join(format!("{key_id}.pub"))).ok()?;
    // A file renamed to another key's id is not that key.
    (self::key_id(&key) == key_id).then_some(key)
}

fn read_secret_key(path: &Path) -> Result<SigningKey, PluginError> {
    let seed = read_key_file(path, SECRET_KEY_HEADER)?;
    Ok(SigningKey::from_bytes(&seed))
}

fn read_public_key(path: &Path) -> Result<VerifyingKey, PluginError> {
    let bytes = read_key_file(path, PUBLIC_KEY_HEADER)?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| key_error(path, "not a valid ed25519 public key".into()))
}

fn read_key_file(path: &Path, header: &str) -> Result<[u8; 32], PluginError> {
    let text = fs::read_to_string(path).map_err(|e| key_error(path, e.to_string()))?;
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(header) {
        return Err(key_error(path, format!("expected a `{header}` file")));
    }
    let body = lines.next().unwrap_or("").trim();
    // Never echo the body: for a secret key it is the key.
    hex_array::<32>(body, "key")
        .map_err(|_| key_error(path, "key line is not 32 hex-encoded bytes".into()))
}

fn write_new_file(path: &Path, contents: &str, private: bool) -> Result<(), PluginError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options
        .open(path)
        .map_err(|e| key_error(path, e.to_string()))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| key_error(path, e.to_string()))
}

fn parse_manifest(plugin: &str, path: &Path, bytes: &[u8]) -> Result<Manifest, PluginError> {
    let text = std::str::from_utf8(bytes).map_err(|_| PluginError::Manifest {
        plugin: plugin.to_string(),
        path: path.to_path_buf(),
        reason: "not UTF-8 text".into(),
    })?;
    Manifest::parse(text, plugin, path)
}

fn read(plugin: &str, path: &Path) -> Result<Vec<u8>, PluginError> {
    fs::read(path).map_err(|source| PluginError::Io {
        plugin: plugin.to_string(),
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn key_error(path: &Path, reason: String) -> PluginError {
    PluginError::Key {
        path: path.to_path_buf(),
        reason,
    }
}
