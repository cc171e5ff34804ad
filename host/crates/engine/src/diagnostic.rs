//! Issues found in a configuration: shared by validation, secrets and plugins so every report looks the same.

use std::fmt;

use crate::view::ViewKey;

/// How serious an issue is. Errors reject a load; warnings are reported and let it through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// A file position a value came from (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourcePosition {
    pub file: String,
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for SourcePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One problem with one key of one view.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Issue {
    /// The view the issue was found in (None for issues about a file as a whole).
    pub view: Option<ViewKey>,
    /// Dotted key path (empty for the view's root).
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
    /// The rule that found it: `schema:<keyword>`, `native:<name>`, `plugin:<name>`, `secrets`, `coverage`.
    pub rule: String,
    /// Where in which schema the rule lives (`global_schema.json#/properties/api/...`).
    pub schema_location: Option<String>,
    pub severity: Severity,
    /// Where the offending value was written, when it came from a file.
    pub source: Option<SourcePosition>,
}

impl Issue {
    /// An error issue with only the essentials; the rest can be filled in by the caller.
    pub fn error(path: impl Into<String>, message: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            view: None,
            path: path.into(),
            message: message.into(),
            rule: rule.into(),
            schema_location: None,
            severity: Severity::Error,
            source: None,
        }
    }

    /// Same as [`Issue::error`] with warning severity.
    pub fn warning(path: impl Into<String>, message: impl Into<String>, rule: impl Into<String>) -> Self {
        Self { severity: Severity::Warning, ..Self::error(path, message, rule) }
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(view) = &self.view {
            write!(f, "{view}: ")?;
        }
        f.write_str(if self.path.is_empty() { "(root)" } else { &self.path })?;
        if let Some(source) = &self.source {
            write!(f, " at {source}")?;
        }
        write!(f, " — {}", self.message)?;
        match &self.schema_location {
            Some(location) => write!(f, " ({location})"),
            None => write!(f, " ({})", self.rule),
        }
    }
}
