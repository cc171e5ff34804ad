//! Dotted key paths (`api.rate_limit`): parsing, joining and prefix tests.
//!
//! A path is a non-empty list of segments joined by `.`. Segments are non-empty and contain no `.`,
//! no `/` and no control characters, so a path is safe to echo in errors, URLs and logs.

use std::fmt;

/// Why a key path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid key path `{path}`: {reason}")]
pub struct KeyPathError {
    /// The path as given, with control characters escaped.
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Checks a dotted key path and returns its segments.
pub fn parse_key_path(path: &str) -> Result<Vec<&str>, KeyPathError> {
    let refuse = |reason| KeyPathError { path: path.escape_debug().to_string(), reason };
    if path.is_empty() {
        return Err(refuse("the path is empty"));
    }
    let segments: Vec<&str> = path.split('.').collect();
    for segment in &segments {
        if segment.is_empty() {
            return Err(refuse("a segment is empty (leading, trailing or doubled `.`)"));
        }
        if segment.chars().any(char::is_control) {
            return Err(refuse("it contains a control character"));
        }
        if segment.contains('/') {
            return Err(refuse("it contains `/`"));
        }
    }
    Ok(segments)
}

/// Joins a parent path and a child segment (`""` + `api` = `api`, `api` + `timeout` = `api.timeout`).
pub fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        let mut path = String::with_capacity(parent.len() + 1 + child.len());
        path.push_str(parent);
        path.push('.');
        path.push_str(child);
        path
    }
}

/// True when two keys name the same value or one lies inside the other (`api` and `api.timeout`).
pub fn overlaps(a: &str, b: &str) -> bool {
    is_under(a, b) || is_under(b, a)
}

/// True when `path` is `prefix` itself or lies below it (`api` covers `api.timeout`, not `apikey`).
/// The empty prefix covers everything.
pub fn is_under(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || (path.starts_with(prefix)
            && (path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'.'))
}

/// A key path shown to people: the same dotted text, kept as a distinct type in signatures.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyPath(String);

impl KeyPath {
    /// Validates and wraps a dotted path.
    pub fn new(path: &str) -> Result<Self, KeyPathError> {
        parse_key_path(path)?;
        Ok(Self(path.to_owned()))
    }

    /// The dotted text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_dotted_paths() {
        assert_eq!(parse_key_path("api.rate_limit").unwrap(), vec!["api", "rate_limit"]);
    }

    #[test]
    fn refuses_empty_segments_slashes_and_control_characters() {
        for bad in ["", ".a", "a.", "a..b", "a/b", "a.\u{7}b"] {
            assert!(parse_key_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn prefix_matching_respects_segment_boundaries() {
        assert!(is_under("api.timeout", "api"));
        assert!(is_under("api", "api"));
        assert!(!is_under("apikey", "api"));
        assert!(is_under("anything", ""));
    }
}
