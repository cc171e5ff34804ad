//! Editing a configuration file in place for `secrets set` and `secrets rotate`: set one string,
//! or rewrite every ciphertext, keeping the rest of the file as far as the format allows.
//!
//! - JSON: re-serialised (pretty, two spaces) with keys in their original order.
//! - TOML: edited with `toml_edit`, so comments, key order and layout stay.
//! - YAML: re-serialised with keys in their original order; comments and anchors are lost
//!   (no maintained Rust YAML library edits a document in place).
//!
//! Files are replaced atomically: a temp file in the same directory, fsync, rename, fsync of the
//! directory. Only ciphertexts are ever written, never plaintext.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use potter_engine::Format;
use potter_secrets::is_ciphertext;
use serde_json::{Map, Value};

use super::SecretsError;

/// Called with a ciphertext's key segments and text; `Some(new)` replaces it.
pub type Rewrite<'a, E> = dyn FnMut(&[String], &str) -> Result<Option<String>, E> + 'a;

/// A parsed file that can be changed and written back.
pub enum EditableDocument {
    /// A JSON file, rewritten as JSON.
    Json(Value),
    /// A YAML file, rewritten as YAML (comments are not kept).
    Yaml(Value),
    /// A TOML file, edited in place (comments and layout kept).
    Toml(toml_edit::DocumentMut),
}

impl EditableDocument {
    /// An empty document (for a file that does not exist yet).
    pub fn empty(format: Format) -> Self {
        match format {
            Format::Json => EditableDocument::Json(Value::Object(Map::new())),
            Format::Yaml => EditableDocument::Yaml(Value::Object(Map::new())),
            Format::Toml => EditableDocument::Toml(toml_edit::DocumentMut::new()),
        }
    }

    /// Parses `text`; `shown_as` names the file in errors. Parser messages are not repeated: they
    /// may quote file content.
    pub fn parse(text: &str, format: Format, shown_as: &str) -> Result<Self, SecretsError> {
        let refuse = |what: &str| SecretsError::Document { file: shown_as.to_owned(), reason: format!("cannot edit it: {what}") };
        // The loader's parser gives a position without quoting content.
        if let Err(error) = potter_engine::parse_document(text, format) {
            let position = match (error.line, error.column) {
                (Some(line), Some(column)) => format!(" at {line}:{column}"),
                _ => String::new(),
            };
            return Err(refuse(&format!("it does not parse{position}")));
        }
        Ok(match format {
            Format::Json => {
                let value: Value = if text.trim().is_empty() { Value::Object(Map::new()) } else { serde_json::from_str(text).map_err(|_| refuse("invalid JSON"))? };
                EditableDocument::Json(value)
            }
            Format::Yaml => {
                let value: Value = if text.trim().is_empty() { Value::Object(Map::new()) } else { serde_yaml_ng::from_str(text).map_err(|_| refuse("invalid YAML"))? };
                EditableDocument::Yaml(if value.is_null() { Value::Object(Map::new()) } else { value })
            }
            Format::Toml => EditableDocument::Toml(text.parse().map_err(|_| refuse("invalid TOML"))?),
        })
    }

    /// Sets the string at `segments`, creating missing objects/tables. A non-object in the way is
    /// refused rather than overwritten.
    pub fn set_string(&mut self, segments: &[&str], text: &str) -> Result<(), String> {
        let (last, parents) = segments.split_last().ok_or("the key path is empty")?;
        match self {
            EditableDocument::Json(root) | EditableDocument::Yaml(root) => {
                let mut node = root;
                for (depth, segment) in parents.iter().enumerate() {
                    let map = node.as_object_mut().ok_or_else(|| not_a_table(&segments[..depth]))?;
                    node = map.entry(segment.to_string()).or_insert_with(|| Value::Object(Map::new()));
                }
                let map = node.as_object_mut().ok_or_else(|| not_a_table(parents))?;
                if map.get(*last).is_some_and(|old| old.is_object() || old.is_array()) {
                    return Err(format!("`{}` holds a table or list, not a value", segments.join(".")));
                }
                map.insert(last.to_string(), Value::String(text.to_owned()));
                Ok(())
            }
            EditableDocument::Toml(document) => {
                let mut table: &mut dyn toml_edit::TableLike = document.as_table_mut();
                for (depth, segment) in parents.iter().enumerate() {
                    if !table.contains_key(segment) {
                        let mut child = toml_edit::Table::new();
                        child.set_implicit(true);
                        table.insert(segment, toml_edit::Item::Table(child));
                    }
                    table = table.get_mut(segment).and_then(toml_edit::Item::as_table_like_mut).ok_or_else(|| not_a_table(&segments[..=depth]))?;
                }
                match table.get_mut(last) {
                    Some(toml_edit::Item::Value(toml_edit::Value::String(old))) => replace_toml_string(old, text),
                    Some(toml_edit::Item::Value(old)) if !old.is_array() && !old.is_inline_table() => {
                        let decor = old.decor().clone();
                        *old = toml_edit::Value::from(text);
                        *old.decor_mut() = decor;
                    }
                    Some(toml_edit::Item::None) | None => {
                        table.insert(last, toml_edit::value(text));
                    }
                    Some(_) => return Err(format!("`{}` holds a table or list, not a value", segments.join("."))),
                }
                Ok(())
            }
        }
    }

    /// Calls `rewrite` with the segments and text of every ciphertext (outside arrays); a returned
    /// string replaces it. Returns how many were replaced.
    pub fn rewrite_ciphertexts<E>(&mut self, rewrite: &mut Rewrite<'_, E>) -> Result<usize, E> {
        let mut segments = Vec::new();
        match self {
            EditableDocument::Json(root) | EditableDocument::Yaml(root) => rewrite_json(root, &mut segments, rewrite),
            EditableDocument::Toml(document) => rewrite_toml(document.as_table_mut(), &mut segments, rewrite),
        }
    }

    /// The file text.
    pub fn render(&self) -> Result<String, String> {
        match self {
            EditableDocument::Json(value) => {
                let mut text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
                text.push('\n');
                Ok(text)
            }
            EditableDocument::Yaml(value) => serde_yaml_ng::to_string(value).map_err(|_| "cannot write YAML".to_owned()),
            EditableDocument::Toml(document) => Ok(document.to_string()),
        }
    }
}

fn not_a_table(segments: &[&str]) -> String {
    if segments.is_empty() {
        "the document is not a table".to_owned()
    } else {
        format!("`{}` is a value, not a table: cannot put a key below it", segments.join("."))
    }
}

fn replace_toml_string(old: &mut toml_edit::Formatted<String>, text: &str) {
    let decor = old.decor().clone();
    let mut fresh = toml_edit::Formatted::new(text.to_owned());
    *fresh.decor_mut() = decor;
    *old = fresh;
}

fn rewrite_json<E>(node: &mut Value, segments: &mut Vec<String>, rewrite: &mut Rewrite<'_, E>) -> Result<usize, E> {
    let mut count = 0;
    if let Value::Object(map) = node {
        for (key, child) in map.iter_mut() {
            segments.push(key.clone());
            match child {
                Value::String(text) if is_ciphertext(text) => {
                    if let Some(fresh) = rewrite(segments, text)? {
                        *text = fresh;
                        count += 1;
                    }
                }
                Value::Object(_) => count += rewrite_json(child, segments, rewrite)?,
                _ => {}
            }
            segments.pop();
        }
    }
    Ok(count)
}

fn rewrite_toml<E>(table: &mut dyn toml_edit::TableLike, segments: &mut Vec<String>, rewrite: &mut Rewrite<'_, E>) -> Result<usize, E> {
    let mut count = 0;
    for (key, item) in table.iter_mut() {
        segments.push(key.get().to_owned());
        match item {
            toml_edit::Item::Value(toml_edit::Value::String(text)) if is_ciphertext(text.value()) => {
                if let Some(fresh) = rewrite(segments, text.value())? {
                    replace_toml_string(text, &fresh);
                    count += 1;
                }
            }
            other => {
                if let Some(child) = other.as_table_like_mut() {
                    count += rewrite_toml(child, segments, rewrite)?;
                }
            }
        }
        segments.pop();
    }
    Ok(count)
}

/// Replaces `path` with `text` atomically: temp file beside it (same permissions as the old
/// file), fsync, rename, fsync of the directory. The temp file is removed on failure.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), SecretsError> {
    let io = |path: &Path, source| SecretsError::Io { path: path.to_owned(), source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let temp = dir.join(format!(".{name}.tmp-{}-{stamp:08x}", std::process::id()));
    let old_permissions = fs::metadata(path).ok().map(|m| m.permissions());
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&temp)?;
        if let Some(permissions) = old_permissions {
            file.set_permissions(permissions)?;
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if let Err(source) = written {
        let _ = fs::remove_file(&temp);
        return Err(io(path, source));
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_edits_keep_comments_and_layout() {
        let text = "# top comment\n[db]\nhost = \"x\" # the host\npassword = \"enc:v1:k00000000:AAAA:BBBB\" # secret\n";
        let mut doc = EditableDocument::parse(text, Format::Toml, "t.toml").unwrap();
        let n = doc.rewrite_ciphertexts::<()>(&mut |_, _| Ok(Some("enc:v1:k11111111:CCCC:DDDD".into()))).unwrap();
        assert_eq!(n, 1);
        doc.set_string(&["llm", "openai", "api_key"], "enc:v1:k11111111:EEEE:FFFF").unwrap();
        let out = doc.render().unwrap();
        assert!(out.starts_with("# top comment\n[db]\nhost = \"x\" # the host\npassword = \"enc:v1:k11111111:CCCC:DDDD\" # secret\n"), "{out}");
        assert!(out.contains("[llm.openai]\napi_key = \"enc:v1:k11111111:EEEE:FFFF\""), "{out}");
    }

    #[test]
    fn json_edits_keep_key_order_and_refuse_to_clobber_values() {
        let mut doc = EditableDocument::parse(r#"{"z": 1, "a": {"b": 2}}"#, Format::Json, "t.json").unwrap();
        doc.set_string(&["a", "c"], "enc:v1:x").unwrap();
        assert_eq!(doc.render().unwrap(), "{\n  \"z\": 1,\n  \"a\": {\n    \"b\": 2,\n    \"c\": \"enc:v1:x\"\n  }\n}\n");
        assert!(doc.set_string(&["z", "q"], "enc:v1:x").is_err());
    }
}
