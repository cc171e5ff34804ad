//! Changing secrets on disk: `secrets set`, `secrets encrypt` and `secrets rotate`.

use std::path::PathBuf;

use potter_engine::{Format, Rank};
use potter_secrets::{encrypt, key_id_of, reencrypt, KeyringOrigin, CipherError, SecretString};

use super::document::{write_atomically, EditableDocument};
use super::{resolve_keyring, SecretProblem, SecretsError};
use crate::error::Error;
use crate::options::Options;
use crate::source::tree;

/// The file of the tree that holds an environment's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentFile {
    /// The file's path.
    pub path: PathBuf,
    /// As shown in messages: `environments/production.json`.
    pub relative: String,
    /// Its format, from the extension.
    pub format: Format,
    /// False when the environment has no file yet (one would be created as JSON).
    pub exists: bool,
}

/// `environments/<env>.*` of the tree, or where `environments/<env>.json` would be created.
pub fn environment_file(options: &Options, env: &str) -> Result<EnvironmentFile, Error> {
    potter_secrets::env_var_name(env).map_err(SecretsError::Keyring)?; // a usable environment name
    let listing = tree::scan(&options.root)?;
    if let Some(file) = listing.files.iter().find(|f| f.rank == Rank::EnvironmentFile && f.name == env) {
        return Ok(EnvironmentFile { path: file.path.clone(), relative: file.relative.clone(), format: file.format, exists: true });
    }
    let relative = format!("environments/{env}.json");
    Ok(EnvironmentFile { path: options.root.join(&relative), relative, format: Format::Json, exists: false })
}

fn read_document(file: &EnvironmentFile) -> Result<EditableDocument, Error> {
    if !file.exists {
        return Ok(EditableDocument::empty(file.format));
    }
    let text = tree::read_text(&file.path, &file.relative)?;
    Ok(EditableDocument::parse(&text, file.format, &file.relative)?)
}

fn write_document(file: &EnvironmentFile, document: &EditableDocument) -> Result<(), Error> {
    let text = document.render().map_err(|reason| SecretsError::Document { file: file.relative.clone(), reason })?;
    Ok(write_atomically(&file.path, &text)?)
}

/// What [`set_secret`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetReport {
    /// The file written, relative to the root.
    pub file: String,
    /// True when the file was created.
    pub created: bool,
    /// The key the value is encrypted with.
    pub key_id: String,
}

/// Encrypts `plaintext` for `key` in `env` with the environment's newest key.
pub fn encrypt_value(options: &Options, env: &str, key: &str, plaintext: &SecretString) -> Result<String, Error> {
    let segments = potter_engine::parse_key_path(key)?;
    let keyring = resolve_keyring(options, env).map_err(SecretsError::Keyring)?;
    Ok(encrypt(&keyring, env, &segments, plaintext.expose()).map_err(SecretsError::Keyring)?)
}

/// Encrypts `plaintext` and writes it at `key` into the environment's file (created when missing),
/// atomically, keeping the rest of the file as far as its format allows.
pub fn set_secret(options: &Options, env: &str, key: &str, plaintext: &SecretString) -> Result<SetReport, Error> {
    let segments = potter_engine::parse_key_path(key)?;
    let file = environment_file(options, env)?;
    let keyring = resolve_keyring(options, env).map_err(SecretsError::Keyring)?;
    let mut document = read_document(&file)?;
    let sealed = encrypt(&keyring, env, &segments, plaintext.expose()).map_err(SecretsError::Keyring)?;
    document.set_string(&segments, &sealed).map_err(|reason| SecretsError::Document { file: file.relative.clone(), reason })?;
    check_new_secret(options, env, key, &sealed)?;
    write_document(&file, &document)?;
    Ok(SetReport { file: file.relative, created: !file.exists, key_id: keyring.newest_key_id().to_owned() })
}

/// Refuses a new secret value the configuration's checks refuse, before the file is written (a
/// running host would refuse the save, and every command after it would meet an invalid tree).
/// The value is tried as a runtime override of `env` in a dry run, so it is checked in every view
/// of the environment with the environment's schemas, rules and validator plugins; nothing is
/// recorded.
fn check_new_secret(options: &Options, env: &str, key: &str, sealed: &str) -> Result<(), Error> {
    let mut options = options.clone();
    options.environments.get_or_insert_with(|| vec![env.to_owned()]);
    let (host, _already_invalid) = crate::ConfigHost::open_to_repair(options)?;
    let request = crate::runtime::SetRequest::new(crate::ChangeOrigin::Cli, "secrets-set-check");
    host.edit_overrides(env, &[(key.to_owned(), Some(serde_json::Value::String(sealed.to_owned())))], request, true).map(|_| ())
}

/// What [`rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// The environment rotated.
    pub env: String,
    /// The key added (None for a keyring from an environment variable: the operator adds keys).
    pub new_key: Option<String>,
    /// The key that encrypts from now on.
    pub newest_key: String,
    /// The environment's file, relative to the root.
    pub file: String,
    /// How many ciphertexts were encrypted again with the newest key.
    pub reencrypted: usize,
    /// Keys removed from the keyring file.
    pub retired: Vec<String>,
    /// Keys the file no longer uses but the history's kept ciphertexts do (a rollback to those
    /// versions needs them); retired by a later rotation once the history pruned them.
    pub kept_for_history: Vec<String>,
    /// For a keyring from `POTTER_SECRET_KEY_<ENV>`: the variable, and the keys nothing
    /// references any more (the operator may drop them from it).
    pub env_var: Option<String>,
    /// Keys of that variable no ciphertext uses any more.
    pub unreferenced: Vec<String>,
}

/// Rotates `env`'s keyring: adds a key (saved first, so every reader's keyring can decrypt what
/// comes next), re-encrypts every secret of the environment's file with it, then retires the
/// keys nothing references. A keyring from an environment variable is not changed: its secrets
/// are re-encrypted with its newest key and the keys no longer needed are reported.
pub fn rotate(options: &Options, env: &str) -> Result<RotationReport, Error> {
    let file = environment_file(options, env)?;
    let mut keyring = resolve_keyring(options, env).map_err(SecretsError::Keyring)?;
    let env_var = match keyring.origin() {
        KeyringOrigin::EnvVar(name) => Some(name.clone()),
        _ => None,
    };
    let new_key = if env_var.is_none() {
        let id = keyring.add_new_key();
        keyring.save_to_state(&options.state_dir).map_err(SecretsError::Keyring)?;
        Some(id)
    } else {
        None
    };

    let mut document = read_document(&file)?;
    let mut secrets = 0u64;
    document
        .rewrite_ciphertexts(&mut |_, _| {
            secrets += 1;
            Ok::<_, CipherError>(None)
        })
        .expect("counting ciphertexts cannot fail");
    let mut progress = options.progress.begin(&format!("re-encrypting the secrets of {}", file.relative), Some(secrets));
    let reencrypted = document
        .rewrite_ciphertexts(&mut |segments, sealed| {
            let fresh = reencrypt(&keyring, env, segments, sealed)?;
            progress.advance(1);
            Ok::<_, CipherError>((fresh != sealed).then_some(fresh))
        })
        .map_err(|source| SecretsError::Rejected(vec![SecretProblem::Undecryptable { at: file.relative.clone(), source }]))?;
    drop(progress);
    if reencrypted > 0 {
        write_document(&file, &document)?;
    }

    let mut referenced: Vec<String> = Vec::new();
    document
        .rewrite_ciphertexts(&mut |_, sealed| {
            if let Some(id) = key_id_of(sealed) {
                referenced.push(id.to_owned());
            }
            Ok::<_, CipherError>(None)
        })
        .expect("collecting key ids cannot fail");
    // A rollback to an older version writes back the ciphertexts the history kept: their keys
    // stay until the history prunes those payloads.
    let kept_for_history: Vec<String> = history_key_ids(options, env)?.into_iter().filter(|id| !referenced.contains(id) && keyring.key_ids().any(|known| known == id)).collect();
    referenced.extend(kept_for_history.iter().cloned());
    let newest_key = keyring.newest_key_id().to_owned();
    let (retired, unreferenced) = if env_var.is_none() {
        let retired = keyring.retire_unreferenced(referenced.iter().map(String::as_str));
        if !retired.is_empty() {
            keyring.save_to_state(&options.state_dir).map_err(SecretsError::Keyring)?;
        }
        (retired, Vec::new())
    } else {
        let unreferenced = keyring.key_ids().filter(|id| *id != newest_key && !referenced.iter().any(|r| r == id)).map(str::to_owned).collect();
        (Vec::new(), unreferenced)
    };
    Ok(RotationReport { env: env.to_owned(), new_key, newest_key, file: file.relative, reencrypted, retired, kept_for_history, env_var, unreferenced })
}

/// The key ids of every ciphertext the history keeps for `env` (values before and after each
/// recorded change whose payload is not pruned).
fn history_key_ids(options: &Options, env: &str) -> Result<Vec<String>, Error> {
    if !options.history {
        return Ok(Vec::new());
    }
    let Some(store) = crate::recording::open_store(options)? else { return Ok(Vec::new()) };
    let query = potter_history::HistoryQuery { env: Some(env.to_owned()), limit: usize::MAX, ..Default::default() };
    let mut ids: Vec<String> = Vec::new();
    for record in store.query(&query)? {
        let Some(payload) = record.payload else { continue };
        for change in payload.changes {
            for value in [change.before, change.after].into_iter().flatten() {
                if let potter_history::StoredValue::Secret { ciphertext: Some(ciphertext), .. } = value {
                    if let Some(id) = key_id_of(&ciphertext) {
                        if !ids.iter().any(|known| known == id) {
                            ids.push(id.to_owned());
                        }
                    }
                }
            }
        }
    }
    Ok(ids)
}
