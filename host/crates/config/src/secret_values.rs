//! Secrets in the running configuration: decrypting layers as they load, deciding which paths are
//! secret, and (in [`redact`]) hiding them at every exit.
//!
//! A ciphertext (`enc:v1:…`, see `potter-secrets`) may only sit in a layer scoped to one
//! environment (`environments/<env>.*`, that environment's runtime overrides): it is decrypted
//! with that environment's keyring and replaced by its plaintext in the layer's data (process
//! memory only), and its path goes into `Layer::secrets`. Anything else is refused with an error
//! naming file:line:col: a ciphertext elsewhere, a value that does not decrypt, a plain value at
//! a secret path. The load then fails and the previous snapshot stays live.
//!
//! Only environments the process serves are decrypted (`Options::environments`), and one whose
//! keyring is absent stays *sealed* ([`sealed`]): its ciphertexts are checked structurally, kept
//! as they are, marked secret, and refused at every reveal with the variable to set.

mod document;
mod paths;
mod redact;
mod rotate;
mod sealed;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use potter_engine::{Layer, LayerSource, Location};
use potter_secrets::{check_structure, decrypt, env_var_name, is_ciphertext, Keyring, CipherError, SecretString};
use serde_json::{Map, Value};

use crate::options::Options;

pub use document::{write_atomically, EditableDocument};
pub use paths::{secret_path_matcher, SecretPathMatcher, SECRET_PATHS_KEY};
pub use redact::{holds_secret, layers_hold_secret, overriding_variable, redact, redact_in_place, redact_text, safe_type_message, secret_paths, REDACTED};
pub use sealed::{ensure_revealable, note_sealed_secrets, redact_sealed, sealed_secrets, skip_for_sealed_secrets, Sealed};
pub use rotate::{encrypt_value, environment_file, rotate, set_secret, EnvironmentFile, RotationReport, SetReport};

/// Why secrets could not be loaded, written or rotated. No variant ever holds a plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The load was rejected: one entry per offending path.
    #[error("{}", render_problems(.0))]
    Rejected(Vec<SecretProblem>),
    /// A keyring could not be created, read or saved.
    #[error(transparent)]
    Keyring(CipherError),
    /// The command was used wrongly (empty value, bad key path, key under a non-object...).
    #[error("{0}")]
    Usage(String),
    /// A file of the tree could not be edited (parse error, unsupported layout).
    #[error("{file}: {reason}")]
    Document {
        /// The file, relative to the root.
        file: String,
        /// Why it cannot be edited.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A secret of an environment whose keyring this process does not hold was to be revealed.
    #[error(transparent)]
    Sealed(Sealed),
}

fn more_secrets(more: usize) -> String {
    match more {
        0 => String::new(),
        1 => " (and 1 more secret in this file)".to_owned(),
        n => format!(" (and {n} more secrets in this file)"),
    }
}

fn render_problems(problems: &[SecretProblem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut text = format!("{} problems with secrets:", many.len());
            for problem in many {
                text.push_str("\n  ");
                text.push_str(&problem.to_string());
            }
            text
        }
    }
}

/// One refused secret, naming where (`file:line:col`, a variable, a layer) and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SecretProblem {
    /// The ciphertext is malformed, truncated, of an unknown version, made with another key, for
    /// another path or environment, or altered (the source says which).
    #[error("{at}: {source}")]
    Undecryptable {
        /// `file:line:col` of the ciphertext.
        at: String,
        /// Why it does not decrypt.
        source: CipherError,
    },
    /// The environment's keyring is missing, unreadable or refused (reported once per layer).
    #[error("{at}: cannot decrypt the secret at `{path}`{}: {source}", more_secrets(*.more))]
    Keyring {
        /// `file:line:col` of the first ciphertext.
        at: String,
        /// Its dotted key.
        path: String,
        /// How many more secrets of the same layer need the keyring.
        more: usize,
        /// What is wrong with the keyring.
        source: CipherError,
    },
    /// A ciphertext in a layer not scoped to one environment (a ciphertext is bound to one).
    #[error(
        "{at}: `{path}` holds a ciphertext, but the layer `{layer}` is not scoped to one environment; a ciphertext \
         is bound to one environment, so put it in environments/<env>.* (`potter-config secrets set {path} --env <env>`)"
    )]
    OutsideEnvironment {
        /// `file:line:col` of the ciphertext.
        at: String,
        /// Its dotted key.
        path: String,
        /// The layer that holds it.
        layer: String,
    },
    /// A ciphertext whose place cannot be named by a dotted key (inside an array, under a key with `.`).
    #[error("{at}: `{path}` holds a ciphertext {reason}; secrets must be values of objects whose keys contain no `.`")]
    Unaddressable {
        /// `file:line:col` of the ciphertext.
        at: String,
        /// The nearest dotted key.
        path: String,
        /// Where it sits (`inside an array`...).
        reason: &'static str,
    },
    /// A plain value at a path that must hold a secret.
    #[error(
        "{at}: `{path}` is a secret path but holds a plain value; store it encrypted with \
         `potter-config secrets set {path} --env {env}` (the value is read from stdin){advice}"
    )]
    Plaintext {
        /// `file:line:col` of the value.
        at: String,
        /// Its dotted key.
        path: String,
        /// The environment to encrypt it for.
        env: String,
        /// More to do, if any (empty or a sentence).
        advice: &'static str,
    },
    /// The `secrets.paths` list is malformed.
    #[error("{at}: `{SECRET_PATHS_KEY}` {reason}")]
    BadSecretPaths {
        /// `file:line:col` of the list.
        at: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A plaintext that is itself a ciphertext could not be told from a sealed secret.
    #[error("{at}: the secret at `{path}` decrypts to another ciphertext; store the plaintext itself with `potter-config secrets set {path} --env {env}`")]
    NestedCiphertext {
        /// `file:line:col` of the ciphertext.
        at: String,
        /// Its dotted key.
        path: String,
        /// Its environment.
        env: String,
    },
}

/// The keyrings one load uses, resolved once per environment.
///
/// Resolved *before* the files are read: a rotation adds the new key to the keyring before any
/// file names it and retires the old one only after no file does, so a keyring read first always
/// fits files read later — except a file already re-encrypted with a key added after the keyring
/// was read, which is why an unknown key id triggers one fresh read of the keyring.
pub struct Keyrings<'a> {
    options: &'a Options,
    rings: BTreeMap<String, Result<Keyring, CipherError>>,
}

impl<'a> Keyrings<'a> {
    /// Resolves the keyring of every listed environment now (a missing keyring is only an error
    /// if that environment turns out to hold ciphertexts).
    pub fn resolve_all<S: AsRef<str>>(options: &'a Options, environments: impl IntoIterator<Item = S>) -> Self {
        let mut keyrings = Self { options, rings: BTreeMap::new() };
        for env in environments {
            keyrings.refresh(env.as_ref());
        }
        keyrings
    }

    /// True when `env` has neither a keyring variable nor a keyring file: its secrets stay sealed.
    /// (A keyring that exists but is refused or unreadable is an error, not an absence.)
    fn is_absent(&mut self, env: &str) -> bool {
        matches!(self.get(env), Err(CipherError::KeyringMissing { .. }))
    }

    fn get(&mut self, env: &str) -> &Result<Keyring, CipherError> {
        if !self.rings.contains_key(env) {
            self.refresh(env);
        }
        &self.rings[env]
    }

    /// The error resolving `env`'s keyring gave (owned; the next use resolves it again).
    fn take_error(&mut self, env: &str) -> CipherError {
        match self.rings.remove(env) {
            Some(Err(error)) => error,
            _ => resolve_keyring(self.options, env).err().unwrap_or(CipherError::InvalidEnvName { env: env.to_owned() }),
        }
    }

    fn refresh(&mut self, env: &str) {
        self.rings.insert(env.to_owned(), resolve_keyring(self.options, env));
    }
}

/// The keyring of `env`: `POTTER_SECRET_KEY_<ENV>` (from `options.env_vars` when given, else the
/// process environment), else `<state>/keyrings/<env>.json`.
pub fn resolve_keyring(options: &Options, env: &str) -> Result<Keyring, CipherError> {
    match &options.env_vars {
        Some(vars) => {
            let name = env_var_name(env)?;
            let value = vars.iter().find(|(key, _)| *key == name).map(|(_, value)| value.as_str());
            Keyring::resolve_with(&options.state_dir, env, value)
        }
        None => Keyring::resolve(&options.state_dir, env),
    }
}

/// Where a value of a layer was written, for messages: `file:line:col`, a variable, a layer.
pub fn describe_at(layer: &Layer, dotted: &str) -> String {
    match (layer.locations.get(dotted), &layer.source) {
        (Some(Location::Text { line, column }), source) => format!("{source}:{line}:{column}"),
        (Some(Location::EnvVar(name)), _) => format!("environment variable {name}"),
        (Some(Location::Version(version)), _) => format!("{} ({version})", layer.name),
        (_, LayerSource::File(file)) => file.to_string(),
        _ => layer.name.clone(),
    }
}

/// A ciphertext found in a layer.
#[derive(Clone)]
struct Found {
    dotted: String,
    segments: Vec<String>,
}

/// Layers that [`decrypt_layers`] left decrypted, and the paths it found ciphertexts at in them
/// (the paths of their `Layer::secrets`): what [`decrypt_layers_over`] adds layers to.
#[derive(Debug, Clone, Default)]
pub struct DecryptedLayers {
    /// The layers, decrypted, in merge order.
    pub layers: Vec<Arc<Layer>>,
    /// Every path a ciphertext was found at in them.
    pub cipher_paths: BTreeSet<String>,
}

impl DecryptedLayers {
    /// Layers as a successful [`decrypt_layers`] left them: every ciphertext found is a path of
    /// its layer's `secrets` (only decryption marks them).
    pub fn new(layers: Vec<Arc<Layer>>) -> Self {
        let cipher_paths = layers.iter().flat_map(|layer| layer.secrets.iter().map(|path| path.to_string())).collect();
        Self { layers, cipher_paths }
    }
}

/// The ciphertexts the last build found in each layer it was given, by layer: a layer handed out
/// again unchanged (the parsed-file cache's same `Arc`) is not scanned again, so a reload scans
/// the files it re-read, not the whole tree.
#[derive(Default)]
pub struct CipherScans {
    /// By the layer's address; the entry holds the layer, so the address stays its own.
    by_layer: FxHashMap<usize, (Arc<Layer>, Vec<Found>)>,
}

impl CipherScans {
    /// The ciphertexts of `layer`, scanned unless this memo holds them from the last build;
    /// remembered in `next` when the scan found no problem (a layer with problems is scanned
    /// again, so they are reported again).
    fn of(&self, layer: &Arc<Layer>, next: &mut FxHashMap<usize, (Arc<Layer>, Vec<Found>)>, problems: &mut Vec<SecretProblem>) -> Vec<Found> {
        let address = Arc::as_ptr(layer) as usize;
        if let Some((_, found)) = self.by_layer.get(&address) {
            next.insert(address, (layer.clone(), found.clone()));
            return found.clone();
        }
        let before = problems.len();
        let mut found = Vec::new();
        if let Value::Object(map) = &layer.data {
            find_ciphertexts(layer, map, &mut Vec::new(), &mut found, problems);
        }
        if problems.len() == before {
            next.insert(address, (layer.clone(), found.clone()));
        }
        found
    }
}

/// Decrypts every ciphertext of `layers` in place, marks secret paths, and refuses ciphertexts
/// outside environment layers and plain values at secret paths. `extra_patterns` are secret
/// paths from elsewhere (the schema's `"secret": true`), added to `secrets.paths`.
pub fn decrypt_layers(keyrings: &mut Keyrings<'_>, layers: &mut [Arc<Layer>], extra_patterns: &[String]) -> Result<(), SecretsError> {
    decrypt_layers_over(keyrings, &DecryptedLayers::default(), layers, extra_patterns, &mut CipherScans::default())
}

/// [`decrypt_layers`] of `below.layers` followed by `layers`, where `below` went through it
/// already (with the same `extra_patterns`): the same problems are found, at the cost of `layers`
/// alone. A change of the runtime overrides decrypts just its own layers this way. `scans` is the
/// last build's ciphertext scan of each layer, replaced by this one's.
pub fn decrypt_layers_over(keyrings: &mut Keyrings<'_>, below: &DecryptedLayers, layers: &mut [Arc<Layer>], extra_patterns: &[String], scans: &mut CipherScans) -> Result<(), SecretsError> {
    let mut problems = Vec::new();
    let matcher = secret_path_matcher(below.layers.iter().chain(layers.iter()), extra_patterns).unwrap_or_else(|mut found| {
        problems.append(&mut found);
        SecretPathMatcher::default()
    });

    // Pass 1: find ciphertexts; every path that holds one anywhere is a secret path everywhere.
    let mut found_per_layer: Vec<Vec<Found>> = Vec::with_capacity(layers.len());
    let mut cipher_paths: BTreeSet<String> = below.cipher_paths.clone();
    let mut scanned = FxHashMap::default();
    for layer in layers.iter() {
        let found = scans.of(layer, &mut scanned, &mut problems);
        for f in &found {
            // A path that holds a ciphertext only now makes a plain value there below refused too
            // (the rest of `below` was checked when it was decrypted).
            if !below.cipher_paths.contains(&f.dotted) && cipher_paths.insert(f.dotted.clone()) {
                for lower in &below.layers {
                    match lower.value_at_segments(&f.segments) {
                        Some(Value::String(text)) if is_ciphertext(text) => {}
                        None | Some(Value::Null) => {}
                        Some(_) => problems.push(plaintext_problem(lower, f.dotted.clone())),
                    }
                }
            }
        }
        found_per_layer.push(found);
    }
    scans.by_layer = scanned;

    // Pass 2: plain values at secret paths.
    if !matcher.is_empty() || !cipher_paths.is_empty() {
        for layer in layers.iter() {
            if let Value::Object(map) = &layer.data {
                find_plaintexts(layer, map, "", &matcher, &cipher_paths, &mut problems);
            }
        }
    }

    // Pass 3: decrypt, layer by layer.
    for (layer, found) in layers.iter_mut().zip(found_per_layer) {
        if found.is_empty() {
            continue;
        }
        let Some(env) = layer.scope.environment.clone() else {
            for f in found {
                problems.push(SecretProblem::OutsideEnvironment { at: describe_at(layer, &f.dotted), path: f.dotted, layer: layer.name.clone() });
            }
            continue;
        };
        if keyrings.is_absent(&env) {
            keep_sealed(layer, &env, found, &mut problems);
            continue;
        }
        let mut plaintexts: Vec<(Found, SecretString)> = Vec::with_capacity(found.len());
        let total = found.len();
        for (index, f) in found.into_iter().enumerate() {
            let ciphertext = match layer.value_at_segments(&f.segments) {
                Some(Value::String(text)) => text.clone(),
                _ => continue,
            };
            match decrypt_one(keyrings, &env, &f.segments, &ciphertext) {
                Ok(plain) if is_ciphertext(plain.expose()) => {
                    problems.push(SecretProblem::NestedCiphertext { at: describe_at(layer, &f.dotted), path: f.dotted, env: env.to_string() })
                }
                Ok(plain) => plaintexts.push((f, plain)),
                Err(DecryptFailure::Keyring(source)) => {
                    // The same keyring fails for every secret of the layer: say it once.
                    problems.push(SecretProblem::Keyring { at: describe_at(layer, &f.dotted), path: f.dotted, more: total - index - 1, source });
                    break;
                }
                Err(DecryptFailure::Value(source)) => problems.push(SecretProblem::Undecryptable { at: describe_at(layer, &f.dotted), source }),
            }
        }
        if !problems.is_empty() {
            continue; // the load fails anyway: do not copy layers for nothing
        }
        let layer = Arc::make_mut(layer);
        for (f, plain) in plaintexts {
            set_at(&mut layer.data, &f.segments, Value::String(plain.expose().to_owned()));
            layer.secrets.insert(f.dotted.into_boxed_str());
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SecretsError::Rejected(problems))
    }
}

/// A layer of an environment whose keyring is absent: its ciphertexts are checked as far as
/// they can be without the key, stay in the layer as they are (a ciphertext reveals nothing),
/// and are marked secret so every exit redacts them and every reveal refuses them.
fn keep_sealed(layer: &mut Arc<Layer>, env: &str, found: Vec<Found>, problems: &mut Vec<SecretProblem>) {
    let before = problems.len();
    for f in &found {
        if let Some(Value::String(ciphertext)) = layer.value_at_segments(&f.segments) {
            if let Err(source) = check_structure(env, &f.segments, ciphertext) {
                problems.push(SecretProblem::Undecryptable { at: describe_at(layer, &f.dotted), source });
            }
        }
    }
    if problems.len() > before {
        return;
    }
    tracing::warn!(layer = %layer.name, secrets = found.len(), "{}", sealed::absent_keyring_advice(env));
    let layer = Arc::make_mut(layer);
    for f in found {
        layer.secrets.insert(f.dotted.into_boxed_str());
    }
}

enum DecryptFailure {
    Keyring(CipherError),
    Value(CipherError),
}

fn decrypt_one(keyrings: &mut Keyrings<'_>, env: &str, segments: &[String], ciphertext: &str) -> Result<SecretString, DecryptFailure> {
    let attempt = |keyrings: &mut Keyrings<'_>| match keyrings.get(env) {
        Ok(keyring) => decrypt(keyring, env, segments, ciphertext).map_err(DecryptFailure::Value),
        Err(_) => Err(DecryptFailure::Keyring(keyrings.take_error(env))),
    };
    match attempt(keyrings) {
        // The keyring may have gained a key (a rotation) since it was read: read it once more.
        Err(DecryptFailure::Value(CipherError::UnknownKeyId { .. })) => {
            keyrings.refresh(env);
            attempt(keyrings)
        }
        other => other,
    }
}

/// Every ciphertext under `map`. The path is kept as borrowed segments while walking, so a tree
/// without secrets (every layer, at every build) costs no allocation per node.
fn find_ciphertexts<'a>(layer: &Layer, map: &'a Map<String, Value>, segments: &mut Vec<&'a str>, found: &mut Vec<Found>, problems: &mut Vec<SecretProblem>) {
    for (key, value) in map {
        segments.push(key);
        match value {
            Value::String(text) if is_ciphertext(text) => {
                let dotted = segments.join(".");
                if segments.iter().any(|s| s.is_empty() || s.contains('.')) {
                    problems.push(SecretProblem::Unaddressable { at: describe_at(layer, &dotted), path: dotted, reason: "under a key that is empty or contains `.`" });
                } else {
                    found.push(Found { dotted, segments: segments.iter().map(|segment| (*segment).to_owned()).collect() });
                }
            }
            Value::Object(child) => find_ciphertexts(layer, child, segments, found, problems),
            Value::Array(items) if items.iter().any(holds_ciphertext) => {
                let dotted = segments.join(".");
                problems.push(SecretProblem::Unaddressable { at: describe_at(layer, &dotted), path: dotted, reason: "inside an array" });
            }
            _ => {}
        }
        segments.pop();
    }
}

/// Whether a ciphertext is anywhere in `value` (an array's item, at any depth).
fn holds_ciphertext(value: &Value) -> bool {
    match value {
        Value::String(text) => is_ciphertext(text),
        Value::Array(items) => items.iter().any(holds_ciphertext),
        Value::Object(map) => map.values().any(holds_ciphertext),
        _ => false,
    }
}

fn find_plaintexts(layer: &Layer, map: &Map<String, Value>, prefix: &str, matcher: &SecretPathMatcher, cipher_paths: &BTreeSet<String>, problems: &mut Vec<SecretProblem>) {
    for (key, value) in map {
        let dotted = potter_engine::path::join(prefix, key);
        let is_cipher = matches!(value, Value::String(text) if is_ciphertext(text));
        if !is_cipher && !value.is_null() && (matcher.matches(&dotted) || cipher_paths.contains(&dotted)) {
            problems.push(plaintext_problem(layer, dotted));
            continue;
        }
        if let Value::Object(child) = value {
            find_plaintexts(layer, child, &dotted, matcher, cipher_paths, problems);
        }
    }
}

/// A plain value at a secret path of `layer`.
fn plaintext_problem(layer: &Layer, dotted: String) -> SecretProblem {
    let (env, advice) = match &layer.scope.environment {
        Some(env) => (env.to_string(), ""),
        None => ("<env>".to_owned(), ", then remove it here (a secret belongs in environments/<env>.*)"),
    };
    SecretProblem::Plaintext { at: describe_at(layer, &dotted), path: dotted, env, advice }
}

/// Replaces the value at `segments` (which must exist) in a layer's data.
fn set_at(data: &mut Value, segments: &[String], value: Value) {
    let mut node = data;
    for segment in segments {
        match node.as_object_mut().and_then(|map| map.get_mut(segment)) {
            Some(child) => node = child,
            None => return,
        }
    }
    *node = value;
}

/// Reading a layer by segments (keys may not be split by `.` when they contain one).
trait ValueAtSegments {
    fn value_at_segments(&self, segments: &[String]) -> Option<&Value>;
}

impl ValueAtSegments for Layer {
    fn value_at_segments(&self, segments: &[String]) -> Option<&Value> {
        let mut node = &self.data;
        for segment in segments {
            node = node.as_object()?.get(segment)?;
        }
        Some(node)
    }
}

#[cfg(test)]
mod tests {
    use potter_engine::{LayerSource, Rank, Scope};
    use serde_json::json;

    use super::*;

    #[test]
    fn ciphertexts_are_found_by_dotted_path_and_refused_inside_arrays_at_any_depth() {
        let data = json!({
            "db": {"password": "enc:v1:k0000abcd:nonce:body", "host": "db.internal"},
            "list": [{"inner": ["enc:v1:k0000abcd:nonce:body"]}],
            "plain": [{"text": "enc is not a ciphertext"}],
        });
        let layer = Layer::new("production", Rank::EnvironmentFile, Scope::environment("production"), LayerSource::File("production.json".into()), data.as_object().unwrap().clone());
        let (mut found, mut problems) = (Vec::new(), Vec::new());
        find_ciphertexts(&layer, data.as_object().unwrap(), &mut Vec::new(), &mut found, &mut problems);
        let found: Vec<(&str, Vec<String>)> = found.iter().map(|f| (f.dotted.as_str(), f.segments.clone())).collect();
        assert_eq!(found, vec![("db.password", vec!["db".to_owned(), "password".to_owned()])]);
        assert!(matches!(&problems[..], [SecretProblem::Unaddressable { path, reason: "inside an array", .. }] if path == "list"), "{problems:?}");
    }

    /// A production keyring in the state directory `state`, and options that read it.
    fn production_keyring_in(state: &std::path::Path) -> (potter_secrets::Keyring, Options) {
        let keyring = potter_secrets::Keyring::create_in_state(state, "production").unwrap();
        let mut options = Options::new(state.join("tree"));
        options.state_dir = state.to_path_buf();
        options.env_vars = Some(Vec::new());
        (keyring, options)
    }

    /// `decrypt_layers` of every layer, and `decrypt_layers_over` of the same last layers over the
    /// others decrypted before: the same layers, or the same refusal.
    #[test]
    fn decrypting_added_layers_over_decrypted_ones_is_decrypting_them_all() {
        let state = tempfile::tempdir().unwrap();
        let (keyring, options) = production_keyring_in(state.path());
        let seal = |segments: &[&str], plain: &str| Value::String(potter_secrets::encrypt(&keyring, "production", segments, plain).unwrap());
        let layer = |name: &str, rank: Rank, scope: Scope, data: Value| Arc::new(Layer::new(name, rank, scope, LayerSource::File(format!("{name}.json").into()), data.as_object().unwrap().clone()));
        let below = || {
            vec![
                layer("global", Rank::GlobalFile, Scope::default(), json!({"api": {"key": "plain"}, "secrets": {"paths": ["db.user"]}})),
                layer("production", Rank::EnvironmentFile, Scope::environment("production"), json!({"db": {"password": seal(&["db", "password"], "pw")}})),
            ]
        };
        let overrides = |data: Value| layer("overrides/production", Rank::Overrides, Scope::environment("production"), data);
        let cases = [
            (json!({"api": {"token": seal(&["api", "token"], "tok")}, "db": {"password": seal(&["db", "password"], "pw2")}}), true),
            (json!({"api": {"key": seal(&["api", "key"], "k")}}), false),
            (json!({"db": {"password": "plain"}}), false),
            (json!({"db": {"user": "plain"}}), false),
        ];
        for (data, valid) in cases {
            let mut all = below();
            all.push(overrides(data.clone()));
            let whole = decrypt_layers(&mut Keyrings::resolve_all(&options, ["production"]), &mut all, &[]);
            let mut lower = below();
            decrypt_layers(&mut Keyrings::resolve_all(&options, ["production"]), &mut lower, &[]).unwrap();
            let mut added = vec![overrides(data.clone())];
            let over = decrypt_layers_over(&mut Keyrings::resolve_all(&options, ["production"]), &DecryptedLayers::new(lower), &mut added, &[], &mut CipherScans::default());
            assert_eq!(whole.is_ok(), valid, "{data}: {whole:?}");
            match (whole, over) {
                (Ok(()), Ok(())) => {
                    let last = all.last().unwrap();
                    assert_eq!((&last.data, &last.secrets), (&added[0].data, &added[0].secrets), "{data}");
                }
                (Err(whole), Err(over)) => assert_eq!(whole.to_string(), over.to_string(), "{data}"),
                (whole, over) => panic!("{data}: {whole:?} against {over:?}"),
            }
        }
    }

    /// A layer given again (the same `Arc`) is not scanned again, and decrypts the same; a new
    /// layer in its place is scanned.
    #[test]
    fn a_layer_given_again_is_decrypted_from_its_remembered_scan() {
        let state = tempfile::tempdir().unwrap();
        let (keyring, options) = production_keyring_in(state.path());
        let file = |password: &str| {
            let data = json!({"db": {"password": potter_secrets::encrypt(&keyring, "production", &["db", "password"], password).unwrap(), "host": "h"}});
            Arc::new(Layer::new("production", Rank::EnvironmentFile, Scope::environment("production"), LayerSource::File("production.json".into()), data.as_object().unwrap().clone()))
        };
        let mut scans = CipherScans::default();
        let build = |raw: &Arc<Layer>, scans: &mut CipherScans| {
            let mut layers = vec![raw.clone()];
            decrypt_layers_over(&mut Keyrings::resolve_all(&options, ["production"]), &DecryptedLayers::default(), &mut layers, &[], scans).unwrap();
            layers.remove(0)
        };
        let raw = file("first");
        let first = build(&raw, &mut scans);
        assert_eq!(first.data["db"]["password"], json!("first"));
        assert!(raw.data["db"]["password"].as_str().unwrap().starts_with("enc:"), "the raw layer stays as read");
        let again = build(&raw, &mut scans);
        assert_eq!((&again.data, &again.secrets), (&first.data, &first.secrets));
        assert_eq!(scans.by_layer.len(), 1);
        let changed = build(&file("second"), &mut scans);
        assert_eq!(changed.data["db"]["password"], json!("second"));
        assert_eq!(scans.by_layer.len(), 1, "only the layers of the last build are remembered");
    }
}
