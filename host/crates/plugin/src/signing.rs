//! ed25519 signing of plugins. The signature covers the sha256 of the module
//! AND of the manifest, so neither code nor grants can change without re-signing.
//!
//! Files (all text, one `field value` per line after a header line):
//! - `NAME.key`: `potter-plugin-secret-key-v1` + hex seed (mode 0600);
//! - `NAME.pub`: `potter-plugin-public-key-v1` + hex public key;
//! - `<name>.wasm.sig`: `potter-plugin-signature-v1`, `key-id`, `module-sha256`,
//!   `manifest-sha256`, `signature`.
//!
//! The trust store is a directory of `<key-id>.pub` files: the public key file's two lines, then
//! an optional `allow env,dirs` line naming the grant kinds that key's plugins may use (a file
//! without it, e.g. written before allowances existed, allows the safe set: none).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::{PluginError, Refusal};
use crate::manifest::{manifest_path, plugin_stem, sibling, Allowance, GrantRules, Manifest};

const SECRET_KEY_HEADER: &str = "potter-plugin-secret-key-v1";
const PUBLIC_KEY_HEADER: &str = "potter-plugin-public-key-v1";
const SIGNATURE_HEADER: &str = "potter-plugin-signature-v1";
/// Domain separation: a plugin signature can never be confused with another use of the key.
const SIGNED_CONTEXT: &[u8] = b"potter-config plugin signature v1\0";

/// Largest module read (CPython and JavaScript runtimes make components of tens of MiB).
pub const MAX_MODULE_BYTES: u64 = 256 << 20;
/// Largest manifest read.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// Largest signature or key file read.
pub const MAX_SIGNATURE_BYTES: u64 = 4096;
const ALLOW_FIELD: &str = "allow";

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
    /// The grant kinds the trust store allows the signing key (None when unsigned).
    pub signer_allowance: Option<Allowance>,
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
/// `<dir>/<name>.wasm.sig` and returns its path. The manifest is checked first, against the
/// default [`GrantRules`].
pub fn sign(wasm_path: &Path, key_path: &Path) -> Result<PathBuf, PluginError> {
    sign_with(wasm_path, key_path, &GrantRules::default())
}

/// [`sign`], refusing a manifest that `rules` refuse (a grant of the tool's own variables or
/// files, a limit above the maxima): what the host would refuse at load is never signed.
pub fn sign_with(wasm_path: &Path, key_path: &Path, rules: &GrantRules) -> Result<PathBuf, PluginError> {
    sign_checked_by(wasm_path, key_path, Some(rules))
}

/// Signs module and manifest, checking the manifest against `rules` first (None: not at all,
/// see [`crate::testing::forge_signature`]).
pub(crate) fn sign_checked_by(wasm_path: &Path, key_path: &Path, rules: Option<&GrantRules>) -> Result<PathBuf, PluginError> {
    let plugin = plugin_stem(wasm_path);
    let signing = read_secret_key(key_path)?;
    let module = read_module(&plugin, wasm_path)?;
    let manifest_file = manifest_path(wasm_path);
    let manifest_bytes = read(&plugin, &manifest_file, MAX_MANIFEST_BYTES)?;
    if let Some(rules) = rules {
        let manifest = parse_manifest(&plugin, &manifest_file, &manifest_bytes)?;
        rules.check(&manifest, &manifest_file)?;
    }
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

/// Add a public key to the trust store (`<trust_dir>/<key-id>.pub`) with the safe set of grant
/// kinds (none); returns the key id.
pub fn trust(pub_path: &Path, trust_dir: &Path) -> Result<String, PluginError> {
    trust_with(pub_path, trust_dir, &Allowance::default())
}

/// Add (or re-add) a public key to the trust store, allowing its plugins the grant kinds of
/// `allowance`; returns the key id.
pub fn trust_with(pub_path: &Path, trust_dir: &Path, allowance: &Allowance) -> Result<String, PluginError> {
    let verifying = read_public_key(pub_path)?;
    let id = key_id(&verifying);
    fs::create_dir_all(trust_dir).map_err(|e| key_error(trust_dir, e.to_string()))?;
    let target = trust_dir.join(format!("{id}.pub"));
    let allow = if allowance.0.is_empty() { String::new() } else { format!("{ALLOW_FIELD} {allowance}\n") };
    fs::write(&target, format!("{PUBLIC_KEY_HEADER}\n{}\n{allow}", hex::encode(verifying.to_bytes())))
        .map_err(|e| key_error(&target, e.to_string()))?;
    Ok(id)
}

/// The grant kinds the trust store allows key `key_id`, or None when the key is not trusted.
pub fn trusted_allowance(trust_dir: &Path, key_id: &str) -> Option<Allowance> {
    trusted_key(trust_dir, key_id).map(|(_, allowance)| allowance)
}

/// Check a module and its manifest against its signature and the trust store.
pub fn verify(wasm_path: &Path, trust_dir: &Path) -> Result<Verified, PluginError> {
    verify_with(wasm_path, trust_dir, &GrantRules::default())
}

/// [`verify`], also checking the manifest against `rules`.
pub fn verify_with(wasm_path: &Path, trust_dir: &Path, rules: &GrantRules) -> Result<Verified, PluginError> {
    load_checked(wasm_path, trust_dir, false, rules)
}

/// Read module, manifest and signature; verify unless `allow_unsigned` and no
/// signature file exists. A present but bad signature is always refused.
pub(crate) fn load_checked(
    wasm_path: &Path,
    trust_dir: &Path,
    allow_unsigned: bool,
    rules: &GrantRules,
) -> Result<Verified, PluginError> {
    let plugin = plugin_stem(wasm_path);
    let refused = |reason: Refusal| PluginError::Refused {
        plugin: plugin.clone(),
        reason,
    };
    let manifest_file = manifest_path(wasm_path);
    let manifest_bytes = read(&plugin, &manifest_file, MAX_MANIFEST_BYTES)?;
    let module = read_module(&plugin, wasm_path)?;
    let sig_path = signature_path(wasm_path);
    let module_sha = sha256(&module);
    let manifest_sha = sha256(&manifest_bytes);

    // A link, even a dangling one, counts as present: only a path with nothing at all is unsigned.
    let signer = if fs::symlink_metadata(&sig_path).is_ok() {
        let bytes = read(&plugin, &sig_path, MAX_SIGNATURE_BYTES)?;
        let text = String::from_utf8(bytes).map_err(|_| refused(Refusal::MalformedSignature("not UTF-8 text".into())))?;
        let sig =
            SignatureFile::parse(&text).map_err(|e| refused(Refusal::MalformedSignature(e)))?;
        let (key, allowance) = trusted_key(trust_dir, &sig.key_id)
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
        Some((sig.key_id, allowance))
    } else if allow_unsigned {
        None
    } else {
        return Err(refused(Refusal::Unsigned(file_name(&sig_path))));
    };

    let manifest = parse_manifest(&plugin, &manifest_file, &manifest_bytes)?;
    rules.check(&manifest, &manifest_file)?;
    // Unsigned plugins (development only) have no key to carry an allowance.
    if let Some((key_id, allowance)) = &signer {
        if let Some((kind, grant)) = manifest.grants_asked().into_iter().find(|(kind, _)| !allowance.allows(*kind)) {
            return Err(PluginError::GrantNotAllowed {
                plugin,
                grant,
                kind: kind.as_str().to_owned(),
                key_id: key_id.clone(),
                allowance: allowance.to_string(),
            });
        }
    }
    let (signer_key_id, signer_allowance) = signer.unzip();
    Ok(Verified {
        manifest,
        module_sha256: hex::encode(module_sha),
        signer_key_id,
        signer_allowance,
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

fn trusted_key(trust_dir: &Path, key_id: &str) -> Option<(VerifyingKey, Allowance)> {
    let path = trust_dir.join(format!("{key_id}.pub"));
    let key = read_public_key(&path).ok()?;
    // A file renamed to another key's id is not that key.
    if self::key_id(&key) != key_id {
        return None;
    }
    let text = potter_files::read_regular_to_string(&path, MAX_SIGNATURE_BYTES).ok()?;
    let allow = text.lines().skip(2).find_map(|line| line.trim().strip_prefix(ALLOW_FIELD).map(str::trim));
    // An allowance line that does not parse allows nothing beyond the safe set.
    let allowance = allow.map(|kinds| Allowance::parse(kinds).unwrap_or_default()).unwrap_or_default();
    Some((key, allowance))
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
    let text = potter_files::read_regular_to_string(path, MAX_SIGNATURE_BYTES).map_err(|e| key_error(path, e.to_string()))?;
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

/// Reads a plugin's file: a regular file of at most `max` bytes, opened without blocking (a FIFO,
/// a device or a link to one is refused by name).
pub(crate) fn read(plugin: &str, path: &Path, max: u64) -> Result<Vec<u8>, PluginError> {
    potter_files::read_regular(path, max).map_err(|error| match error {
        potter_files::ReadError::Io { path, source } => PluginError::Io { plugin: plugin.to_string(), path, source },
        other => PluginError::UnusableFile { plugin: plugin.to_string(), reason: format!("{other}") },
    })
}

/// The module beside a manifest: missing, empty or not a regular file is an error naming it.
fn read_module(plugin: &str, path: &Path) -> Result<Vec<u8>, PluginError> {
    let module = read(plugin, path, MAX_MODULE_BYTES)?;
    if module.is_empty() {
        return Err(PluginError::UnusableFile { plugin: plugin.to_string(), reason: format!("module {} is empty", path.display()) });
    }
    Ok(module)
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
