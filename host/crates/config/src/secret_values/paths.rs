//! Which key paths are secret: `secrets.paths` in the global configuration, plus patterns from
//! elsewhere (the schema's `"secret": true`). A `*` segment matches any one segment.

use std::sync::Arc;

use potter_engine::{Layer, Rank};
use serde_json::Value;

use super::{describe_at, SecretProblem};

/// Where the global configuration lists extra secret paths.
pub const SECRET_PATHS_KEY: &str = "secrets.paths";

/// Dotted path patterns (`llm_providers.*.api_key`); `*` matches exactly one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretPathMatcher {
    patterns: Vec<Vec<Box<str>>>,
}

impl SecretPathMatcher {
    /// Builds a matcher; a pattern that is not a valid dotted path is returned as the error.
    pub fn new<S: AsRef<str>>(patterns: impl IntoIterator<Item = S>) -> Result<Self, String> {
        let mut matcher = Self::default();
        for pattern in patterns {
            matcher.add(pattern.as_ref())?;
        }
        Ok(matcher)
    }

    /// Adds one pattern.
    pub fn add(&mut self, pattern: &str) -> Result<(), String> {
        let segments = potter_engine::parse_key_path(pattern).map_err(|e| e.to_string())?;
        let segments: Vec<Box<str>> = segments.into_iter().map(Into::into).collect();
        if !self.patterns.contains(&segments) {
            self.patterns.push(segments);
        }
        Ok(())
    }

    /// True when no path is marked secret.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns, dotted.
    pub fn patterns(&self) -> impl Iterator<Item = String> + '_ {
        self.patterns.iter().map(|segments| segments.join("."))
    }

    /// True when some pattern matches `dotted` segment for segment.
    pub fn matches(&self, dotted: &str) -> bool {
        self.patterns.iter().any(|pattern| {
            let mut segments = dotted.split('.');
            pattern.iter().all(|want| segments.next().is_some_and(|have| &**want == "*" || **want == *have)) && segments.next().is_none()
        })
    }
}

/// The secret paths of a configuration: `secrets.paths` of every global layer plus `extra`
/// (e.g. schema-derived patterns). Errors name the file and line of a malformed list.
pub fn secret_path_matcher<'a>(layers: impl IntoIterator<Item = &'a Arc<Layer>>, extra: &[String]) -> Result<SecretPathMatcher, Vec<SecretProblem>> {
    let mut matcher = SecretPathMatcher::default();
    let mut problems = Vec::new();
    for pattern in extra {
        if let Err(reason) = matcher.add(pattern) {
            problems.push(SecretProblem::BadSecretPaths { at: "secret path patterns".into(), reason });
        }
    }
    for layer in layers.into_iter().filter(|layer| layer.rank == Rank::GlobalFile) {
        let Some(listed) = layer.value_at(SECRET_PATHS_KEY) else { continue };
        let at = describe_at(layer, SECRET_PATHS_KEY);
        match listed {
            Value::Null => {}
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    match item.as_str().map(|pattern| matcher.add(pattern)) {
                        Some(Ok(())) => {}
                        Some(Err(reason)) => problems.push(SecretProblem::BadSecretPaths { at: at.clone(), reason: format!("item {}: {reason}", index + 1) }),
                        None => problems.push(SecretProblem::BadSecretPaths { at: at.clone(), reason: format!("item {} is not a string", index + 1) }),
                    }
                }
            }
            _ => problems.push(SecretProblem::BadSecretPaths { at, reason: "must be a list of dotted key paths (`*` matches one segment)".into() }),
        }
    }
    if problems.is_empty() {
        Ok(matcher)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_star_matches_exactly_one_segment() {
        let matcher = SecretPathMatcher::new(["llm_providers.*.api_key", "db.password"]).unwrap();
        assert!(matcher.matches("llm_providers.openai.api_key"));
        assert!(matcher.matches("db.password"));
        assert!(!matcher.matches("llm_providers.api_key"));
        assert!(!matcher.matches("llm_providers.openai.api_key.x"));
        assert!(!matcher.matches("db"));
        assert!(!matcher.matches("db.password_hint"));
    }
}
