//! `jsonschema` errors → [`Issue`]s that name the key, the rule, the schema location and the file
//! position. Messages never include the offending value: it may be a secret.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::ValidationError;
use potter_engine::{path, Issue, Severity, SourcePosition, View};
use serde_json::Value;

use crate::compile::{Compiled, FOLDER_URI_PREFIX};
use crate::documents::percent_decode;

/// Appends the issues `schema` (the file `rel`) finds in `view`, whose whole tree is `instance`.
pub(crate) fn schema_issues(rel: &str, schema: &Compiled, view: &View, instance: &Value, out: &mut Vec<Issue>) {
    if schema.validator.is_valid(instance) {
        return;
    }
    for error in schema.validator.iter_errors(instance) {
        let at = dotted(error.instance_path().as_str());
        let location = schema_location(rel, &error);
        let rule = format!("schema:{}", error.kind().keyword());
        let issue = |path: String, message: String| Issue {
            view: Some(view.key().clone()),
            source: source_position(view, &path),
            path,
            message,
            rule: rule.clone(),
            schema_location: Some(location.clone()),
            severity: Severity::Error,
        };
        match error.kind() {
            ValidationErrorKind::Required { property } => {
                let key = property.as_str().map_or_else(|| property.to_string(), str::to_owned);
                out.push(issue(path::join(&at, &key), "is required but missing".to_owned()));
            }
            ValidationErrorKind::AdditionalProperties { unexpected } | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                for key in unexpected {
                    out.push(issue(path::join(&at, key), "is not allowed here (the schema admits no other keys)".to_owned()));
                }
            }
            kind => out.push(issue(at.clone(), describe(kind, &error))),
        }
    }
}

/// The file position of `path`, or of its nearest ancestor written in a file (a missing key, an array item).
pub(crate) fn source_position(view: &View, dotted_path: &str) -> Option<SourcePosition> {
    let mut current = dotted_path;
    loop {
        if current.is_empty() {
            return None;
        }
        if let Some(position) = view.source_position(current) {
            return Some(position);
        }
        current = current.rsplit_once('.').map_or("", |(parent, _)| parent);
    }
}

/// `/api/rate_limit` → `api.rate_limit`
fn dotted(pointer: &str) -> String {
    pointer.split('/').skip(1).map(|segment| segment.replace("~1", "/").replace("~0", "~")).collect::<Vec<_>>().join(".")
}

/// `global_schema.json#/properties/api/properties/rate_limit/maximum`, in the file the keyword is written in.
fn schema_location(rel: &str, error: &ValidationError<'_>) -> String {
    match error.absolute_keyword_location() {
        Some(uri) => {
            let uri = uri.as_str();
            // The URI is percent-encoded (`%5E` for `^`); people read the pointer as written in the schema.
            percent_decode(uri.strip_prefix(FOLDER_URI_PREFIX).unwrap_or(uri))
        }
        None => format!("{rel}#{}", error.schema_path().as_str()),
    }
}

/// An error's message, without the value.
pub(crate) fn describe_error(error: &ValidationError<'_>) -> String {
    describe(error.kind(), error)
}

fn describe(kind: &ValidationErrorKind, error: &ValidationError<'_>) -> String {
    match kind {
        ValidationErrorKind::Maximum { limit } => format!("must be ≤ {limit}"),
        ValidationErrorKind::Minimum { limit } => format!("must be ≥ {limit}"),
        ValidationErrorKind::ExclusiveMaximum { limit } => format!("must be < {limit}"),
        ValidationErrorKind::ExclusiveMinimum { limit } => format!("must be > {limit}"),
        ValidationErrorKind::Enum { options } => match &**options {
            Value::Array(items) => format!("must be one of {}", items.iter().map(Value::to_string).collect::<Vec<_>>().join(", ")),
            other => format!("must be one of {other}"),
        },
        ValidationErrorKind::Constant { expected_value } => format!("must be {expected_value}"),
        ValidationErrorKind::Type { kind } => format!("must be of type {}", type_names(kind)),
        ValidationErrorKind::Format { format } => format!("must be a valid `{format}`"),
        ValidationErrorKind::Pattern { pattern } => format!("must match the pattern `{pattern}`"),
        ValidationErrorKind::MinLength { limit } => format!("must be at least {limit} characters long"),
        ValidationErrorKind::MaxLength { limit } => format!("must be at most {limit} characters long"),
        ValidationErrorKind::MinItems { limit } => format!("must have at least {limit} items"),
        ValidationErrorKind::MaxItems { limit } => format!("must have at most {limit} items"),
        ValidationErrorKind::MinProperties { limit } => format!("must have at least {limit} keys"),
        ValidationErrorKind::MaxProperties { limit } => format!("must have at most {limit} keys"),
        ValidationErrorKind::UniqueItems => "must not contain the same item twice".to_owned(),
        ValidationErrorKind::FalseSchema => "is not allowed here".to_owned(),
        // The masked form names the rule with the value replaced by a placeholder.
        _ => error.masked_with("the value").to_string(),
    }
}

fn type_names(kind: &TypeKind) -> String {
    match kind {
        TypeKind::Single(single) => single.to_string(),
        TypeKind::Multiple(set) => set.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" or "),
    }
}

#[cfg(test)]
mod tests {
    use super::dotted;

    #[test]
    fn pointers_become_dotted_paths() {
        assert_eq!(dotted(""), "");
        assert_eq!(dotted("/api/rate_limit"), "api.rate_limit");
        assert_eq!(dotted("/a~1b/c~0d"), "a/b.c~d");
    }
}
