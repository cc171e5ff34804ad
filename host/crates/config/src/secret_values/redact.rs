//! Redaction: outside process memory a secret appears only as `<redacted>`.
//!
//! Every exit that shows values (CLI output, history, API responses, change events) passes them
//! through [`redact`] with the view they came from and the key path they sit at.

use std::sync::Arc;

use potter_engine::{is_under, Layer, View};
use serde_json::Value;

/// What a secret is shown as.
pub const REDACTED: &str = potter_secrets::REDACTED;

/// Every secret path of the view (from any of its layers), sorted.
pub fn secret_paths(view: &View) -> Vec<String> {
    let mut paths: Vec<String> = view.layers().iter().flat_map(|layer| layer.secrets.iter().map(|path| path.to_string())).collect();
    paths.sort();
    paths.dedup();
    paths
}

/// A copy of `value` (the view's value at `path_prefix`, `""` for the whole tree) with every
/// secret replaced by `"<redacted>"`.
pub fn redact(view: &View, path_prefix: &str, value: &Value) -> Value {
    let mut copy = value.clone();
    redact_in_place(view, path_prefix, &mut copy);
    copy
}

/// [`redact`] without the copy.
pub fn redact_in_place(view: &View, path_prefix: &str, value: &mut Value) {
    if !view.has_secrets() {
        return;
    }
    for layer in view.layers() {
        for secret in &layer.secrets {
            if !is_under(secret, path_prefix) {
                continue;
            }
            let relative = if path_prefix.is_empty() {
                &secret[..]
            } else {
                &secret[(path_prefix.len() + 1).min(secret.len())..]
            };
            let target = if relative.is_empty() { Some(&mut *value) } else { find_mut(value, relative) };
            if let Some(node) = target.filter(|node| !node.is_null()) {
                *node = Value::String(REDACTED.to_owned());
            }
        }
    }
}

pub(super) fn find_mut<'v>(value: &'v mut Value, dotted: &str) -> Option<&'v mut Value> {
    let mut node = value;
    for segment in dotted.split('.') {
        node = node.as_object_mut()?.get_mut(segment)?;
    }
    Some(node)
}

/// True when the value at `path` is a secret or has one below it.
pub fn holds_secret(view: &View, path: &str) -> bool {
    layers_hold_secret(view.layers(), path)
}

/// [`holds_secret`] for a view known by its layers only (not merged).
pub fn layers_hold_secret(layers: &[Arc<Layer>], path: &str) -> bool {
    layers.iter().any(|layer| layer.secrets.iter().any(|secret| is_under(secret, path)))
}

/// The environment variable that would override `path` (as `explain` suggests it), or None when
/// the path holds a secret: a plain value from a variable at a secret path is refused, so the
/// way to change a secret is `secrets set`.
pub fn overriding_variable(view: &View, env_prefix: &str, path: &str) -> Option<String> {
    (!holds_secret(view, path)).then(|| potter_engine::envvars::variable_for(env_prefix, path))
}

/// A type error about the value at `path`, with the deserializer's message dropped when the value
/// holds a secret (serde quotes the offending value: `invalid type: string "sk-…"`).
pub fn safe_type_message(view: &View, path: &str, message: String) -> String {
    if holds_secret(view, path) {
        "the value has the wrong type (details withheld: it holds a secret)".to_owned()
    } else {
        message
    }
}

/// `text` (an error message, a plugin's output) with every secret value of the view that occurs in
/// it replaced by `"<redacted>"`: free text cannot be redacted by path, so by value.
pub fn redact_text(view: &View, text: &str) -> String {
    let mut text = text.to_owned();
    for path in secret_paths(view) {
        let Some(node) = view.value_at(&path) else { continue };
        let plaintext = match node {
            Value::String(s) => s.clone(),
            Value::Null | Value::Object(_) | Value::Array(_) => continue,
            other => other.to_string(),
        };
        // A value this short would redact ordinary words and digits; such a secret is not one.
        if plaintext.len() >= 4 && text.contains(&plaintext) {
            text = text.replace(&plaintext, REDACTED);
        }
    }
    text
}
