//! Rendering values for people and programs: `--format json|yaml|toml|text`.

use serde_json::Value;

/// Output formats of the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Json,
    Yaml,
    Toml,
    Text,
}

/// Renders a value; `name` labels a scalar where the format needs a key (TOML).
pub fn render(value: &Value, format: OutputFormat, name: &str) -> String {
    match format {
        OutputFormat::Json => serde_json::to_string_pretty(value).expect("JSON values always serialize"),
        OutputFormat::Yaml => serde_yaml_ng::to_string(value).unwrap_or_else(|e| format!("# cannot render as YAML: {e}\n")),
        OutputFormat::Toml => {
            let table = match without_nulls(value) {
                table @ Value::Object(_) => table,
                other => serde_json::json!({ name: other }),
            };
            toml::to_string_pretty(&table).unwrap_or_else(|e| format!("# cannot render as TOML: {e}\n"))
        }
        OutputFormat::Text => match value {
            Value::String(s) => s.clone(),
            Value::Object(_) | Value::Array(_) => serde_json::to_string_pretty(value).expect("JSON values always serialize"),
            other => other.to_string(),
        },
    }
}

/// TOML has no null: a member whose value is null is left out (an absent key), and so is a null
/// in an array.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_nulls(v))).collect()),
        Value::Array(items) => Value::Array(items.iter().filter(|v| !v.is_null()).map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// A short one-line form of a value for tables (`explain`, `layers`).
pub fn inline(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}
