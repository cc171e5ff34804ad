//! Sealed secrets: those of an environment whose keyring this process does not hold.
//!
//! They stay in the layers as ciphertext (which reveals nothing), are marked secret like any
//! other (so every exit redacts them), and every reveal — `get --reveal`, an API read by a role
//! that sees secrets, `ViewHandle::get`/`extract` — refuses them, naming the variable to set.
//! Checks that need the plaintext are reported as warnings, never as errors, so one
//! environment's missing key never fails another environment's load.

use potter_engine::{is_under, Issue, Layer, Severity, Snapshot, View, ViewKey};
use potter_secrets::{env_var_name, is_ciphertext};
use potter_validate::Report;
use serde_json::Value;

use super::redact::find_mut;
use super::{SecretsError, REDACTED};

/// A secret that was to be revealed but is sealed.
#[derive(Debug, thiserror::Error)]
#[error("{at}: the secret at `{path}` in environment `{env}` cannot be revealed: {}", absent_keyring_advice(.env))]
pub struct Sealed {
    /// Where the ciphertext was written (`file:line:col`), or the view.
    pub at: String,
    /// The environment whose keyring is absent.
    pub env: String,
    /// The secret's dotted key.
    pub path: String,
}

impl Sealed {
    /// `POTTER_SECRET_KEY_<ENV>`: the variable that would unseal it.
    pub fn variable(&self) -> String {
        key_variable(&self.env)
    }
}

fn key_variable(env: &str) -> String {
    env_var_name(env).unwrap_or_else(|_| "POTTER_SECRET_KEY_<ENV>".to_owned())
}

/// What is missing and how to supply it (no state directory is named: the reader may not know it).
pub(super) fn absent_keyring_advice(env: &str) -> String {
    format!(
        "this process holds no keyring for environment `{env}`, so its secrets stay encrypted \
         (set {}, or create the environment's keyring file in the state directory, then reload)",
        key_variable(env)
    )
}

/// The secret paths at or under `prefix` (`""`: all) whose effective value in `view` is still a
/// ciphertext, sorted.
pub fn sealed_secrets(view: &View, prefix: &str) -> Vec<String> {
    let mut sealed: Vec<String> = sealed_in(view, prefix).map(str::to_owned).collect();
    sealed.sort();
    sealed.dedup();
    sealed
}

/// [`sealed_secrets`] unsorted, with repeats.
fn sealed_in<'v>(view: &'v View, prefix: &'v str) -> impl Iterator<Item = &'v str> + 'v {
    view.layers()
        .iter()
        .flat_map(|layer| layer.secrets.iter())
        .map(|secret| &**secret)
        .filter(move |secret| is_under(secret, prefix))
        .filter(move |secret| matches!(view.value_at(secret), Some(Value::String(text)) if is_ciphertext(text)))
}

/// Refuses to reveal the value at `prefix` when a secret at or under it is sealed.
pub fn ensure_revealable(view: &View, prefix: &str) -> Result<(), SecretsError> {
    if !view.has_secrets() {
        return Ok(());
    }
    match sealed_in(view, prefix).next() {
        Some(path) => {
            let at = view.source_position(path).map_or_else(|| view.key().to_string(), |p| format!("{}:{}:{}", p.file, p.line, p.column));
            Err(SecretsError::Sealed(Sealed { at, env: view.key().environment.to_string(), path: path.to_owned() }))
        }
        None => Ok(()),
    }
}

/// A copy of `value` (the view's value at `prefix`) for a caller who may see secrets, with the
/// sealed ones shown as `<redacted>` (for provenance output such as `explain`; reads that return
/// secrets refuse sealed ones with [`ensure_revealable`] instead).
pub fn redact_sealed(view: &View, prefix: &str, value: &Value) -> Value {
    let mut copy = value.clone();
    // Every read passes here: a view no layer of which holds a secret has nothing sealed, and
    // asking each layer's (empty) secret set was a fifth of a `get`.
    if !view.has_secrets() {
        return copy;
    }
    for secret in sealed_secrets(view, prefix) {
        let relative = if prefix.is_empty() { &secret[..] } else { &secret[(prefix.len() + 1).min(secret.len())..] };
        let target = if relative.is_empty() { Some(&mut copy) } else { find_mut(&mut copy, relative) };
        if let Some(node) = target {
            *node = Value::String(REDACTED.to_owned());
        }
    }
    copy
}

/// Rewrites a validation report for views with sealed secrets: a check that failed on a sealed
/// value (it saw the ciphertext, not the plaintext) becomes a warning saying the key is absent —
/// except a type check, which a ciphertext answers exactly (a secret is always a string) — and
/// each such view gets one warning naming its sealed secrets and the variable to set.
pub fn note_sealed_secrets(report: &mut Report, snapshot: &Snapshot) {
    // Only a view with a layer that holds secrets can have sealed ones: the others are not merged
    // to find out (a tree of 500 services has 1,500 views, most never read by this process).
    let secret_layers: Vec<&Layer> = snapshot.layers().iter().map(|layer| &**layer).filter(|layer| !layer.secrets.is_empty()).collect();
    for view_report in &mut report.views {
        let key = &view_report.view;
        if !secret_layers.iter().any(|layer| layer.applies_to(&key.environment, key.service.as_deref(), key.user.as_deref())) {
            continue;
        }
        let Ok(view) = snapshot.view(&view_report.view) else { continue };
        let sealed = sealed_secrets(view, "");
        if sealed.is_empty() {
            continue;
        }
        let advice = absent_keyring_advice(&view_report.view.environment);
        for issue in &mut view_report.issues {
            let on_sealed = sealed.iter().any(|secret| is_under(&issue.path, secret));
            if on_sealed && issue.severity == Severity::Error && issue.rule != "schema:type" {
                issue.message = format!("not checked (`{}` needs the plaintext): {advice}", issue.rule);
                issue.severity = Severity::Warning;
            }
        }
        // A user view with its base view's sealed secrets says nothing the base view doesn't.
        let base = potter_engine::ViewKey { user: None, ..view_report.view.clone() };
        let inherited = view_report.view.user.is_some() && snapshot.view(&base).is_ok_and(|base| sealed_secrets(base, "") == sealed);
        if !inherited {
            let message = format!("{} secret(s) not checked against their plaintext ({}): {advice}", sealed.len(), sealed.join(", "));
            view_report.issues.push(view_warning(&view_report.view, "secrets", message));
        }
    }
}

/// For a validator granted secrets: the warning to report instead of running it on a view with
/// sealed secrets (it would judge ciphertexts), or None when the view has none.
pub fn skip_for_sealed_secrets(view: &View, rule: &str) -> Option<Issue> {
    sealed_in(view, "").next()?;
    let message = format!("not run on this view: it is granted secrets, and {}", absent_keyring_advice(&view.key().environment));
    Some(view_warning(view.key(), rule, message))
}

fn view_warning(view: &ViewKey, rule: &str, message: String) -> Issue {
    Issue { view: Some(view.clone()), path: String::new(), message, rule: rule.to_owned(), schema_location: None, severity: Severity::Warning, source: None }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use potter_engine::{Axes, LayerSource, Rank, Scope};
    use potter_validate::ViewReport;
    use serde_json::json;

    use super::*;

    fn layer(name: &str, scope: Scope, data: Value) -> Layer {
        Layer::new(name, Rank::EnvironmentFile, scope, LayerSource::File(format!("{name}.json").into()), data.as_object().unwrap().clone())
    }

    fn every_view(snapshot: &Snapshot) -> Report {
        let views = snapshot.base_view_keys().into_iter().map(|view| ViewReport { view, issues: Vec::new(), coverage: None }).collect();
        Report { views, tree: Vec::new() }
    }

    #[test]
    fn only_the_views_a_secret_layer_reaches_are_merged_to_look_for_sealed_secrets() {
        let axes = Axes { environments: vec!["production".into(), "staging".into()], services: vec!["api".into(), "web".into()], users: Vec::new() };
        let plain = vec![Arc::new(layer("global", Scope::everywhere(), json!({"a": 1})))];
        let snapshot = Snapshot::new(0, plain.clone(), axes.clone());
        note_sealed_secrets(&mut every_view(&snapshot), &snapshot);
        assert_eq!(snapshot.merged_view_count(), 0, "no layer holds a secret: no view is merged");

        let mut sealed = layer("environments/production", Scope::environment("production"), json!({"db": {"password": "enc:v1:k:n:c"}}));
        sealed.secrets.insert("db.password".into());
        let snapshot = Snapshot::new(0, plain.into_iter().chain([Arc::new(sealed)]).collect(), axes);
        note_sealed_secrets(&mut every_view(&snapshot), &snapshot);
        assert_eq!(snapshot.merged_view_count(), 3, "production, production/api and production/web; no staging view");
    }
}
