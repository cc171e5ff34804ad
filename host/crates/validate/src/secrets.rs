//! Which key paths hold secrets: `"secret": true` in a schema, plus `secrets.paths` in the config.
//!
//! A pattern is a list of segments, each a key, a `patternProperties` pattern or `*` (any one
//! key). A path is secret when a pattern matches it or one of its prefixes: marking an object
//! secret marks everything below it.

use std::fmt;
use std::sync::Arc;

use fancy_regex::Regex;
use potter_engine::View;
use serde_json::Value;

use crate::documents::{Node, SchemaDocs};
use crate::walk::{expand, properties, Patterns};

/// Deepest secret pattern looked for in a schema.
const MAX_SECRET_DEPTH: usize = 32;
/// Most schema nodes visited while looking for secrets (guards recursive schemas).
const MAX_SECRET_VISITS: usize = 100_000;

/// One segment of a secret path pattern.
#[derive(Clone)]
pub enum SecretSegment {
    /// Exactly this key.
    Key(String),
    /// Any key the `patternProperties` pattern matches.
    Pattern { source: String, regex: Arc<Regex> },
    /// Any one key (`*` in `secrets.paths`, `additionalProperties` in a schema).
    Any,
}

impl SecretSegment {
    fn matches(&self, segment: &str) -> bool {
        match self {
            SecretSegment::Key(key) => key == segment,
            SecretSegment::Pattern { regex, .. } => regex.is_match(segment).unwrap_or(false),
            SecretSegment::Any => true,
        }
    }
}

impl fmt::Debug for SecretSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for SecretSegment {
    /// `api_key`, `{^(openai|anthropic|google)$}`, `*`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSegment::Key(key) => f.write_str(key),
            SecretSegment::Pattern { source, .. } => write!(f, "{{{source}}}"),
            SecretSegment::Any => f.write_str("*"),
        }
    }
}

/// A set of key paths whose values are secret.
#[derive(Debug, Clone)]
pub struct SecretPattern {
    pub segments: Vec<SecretSegment>,
    /// Only views of this service (a pattern from `service_schemas/<service>.json`).
    pub service: Option<Arc<str>>,
    /// Where it was declared: a schema location, or `secrets.paths`.
    pub origin: String,
}

impl SecretPattern {
    /// A pattern from a dotted path where `*` matches any one key (`llm_providers.*.api_key`).
    pub fn from_dotted(dotted: &str, origin: impl Into<String>) -> Option<Self> {
        let segments: Vec<SecretSegment> = dotted
            .split('.')
            .map(|segment| match segment {
                "" => None,
                "*" => Some(SecretSegment::Any),
                key => Some(SecretSegment::Key(key.to_owned())),
            })
            .collect::<Option<_>>()?;
        Some(Self { segments, service: None, origin: origin.into() })
    }

    /// True when the pattern matches `path` or one of its prefixes.
    pub fn matches(&self, path: &str) -> bool {
        let mut parts = path.split('.');
        self.segments.iter().all(|segment| parts.next().is_some_and(|part| segment.matches(part)))
    }

    /// True when the pattern applies to views of `service` (or to every view).
    pub fn applies_to(&self, service: Option<&str>) -> bool {
        self.service.as_deref().is_none_or(|own| Some(own) == service)
    }
}

impl fmt::Display for SecretPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{segment}")?;
        }
        Ok(())
    }
}

/// The patterns listed under `secrets.paths` in a view's configuration.
pub fn config_secret_patterns(view: &View) -> Vec<SecretPattern> {
    match view.value_at("secrets.paths") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).filter_map(|dotted| SecretPattern::from_dotted(dotted, "secrets.paths")).collect(),
        _ => Vec::new(),
    }
}

/// Every `"secret": true` reachable from `root` through properties, patternProperties and
/// additionalProperties.
pub(crate) fn schema_secret_patterns<'a>(docs: &'a SchemaDocs, patterns: &Patterns, root: Node<'a>, service: Option<Arc<str>>) -> Vec<SecretPattern> {
    let mut search = Search { docs, patterns, service, visits: 0, found: Vec::new() };
    search.visit(vec![root], &mut Vec::new(), &mut Vec::new());
    let mut seen = std::collections::HashSet::new();
    search.found.retain(|pattern| seen.insert(pattern.to_string()));
    search.found
}

struct Search<'a, 'p> {
    docs: &'a SchemaDocs,
    patterns: &'p Patterns,
    service: Option<Arc<str>>,
    visits: usize,
    found: Vec<SecretPattern>,
}

impl<'a> Search<'a, '_> {
    fn visit(&mut self, starts: Vec<Node<'a>>, segments: &mut Vec<SecretSegment>, ancestors: &mut Vec<*const Value>) {
        self.visits += 1;
        if self.visits > MAX_SECRET_VISITS {
            return;
        }
        let applicable = expand(self.docs, starts);
        if !segments.is_empty() {
            if let Some(node) = applicable.nodes.iter().find(|node| node.value.get("secret") == Some(&Value::Bool(true))) {
                self.found.push(SecretPattern { segments: segments.clone(), service: self.service.clone(), origin: node.location() });
                return;
            }
        }
        if segments.len() >= MAX_SECRET_DEPTH {
            return;
        }
        for node in &applicable.nodes {
            let identity = node.value as *const Value;
            if ancestors.contains(&identity) {
                continue; // a recursive schema: its first level was searched already
            }
            ancestors.push(identity);
            for (key, child) in properties(node) {
                segments.push(SecretSegment::Key(key.clone()));
                self.visit(vec![child], segments, ancestors);
                segments.pop();
            }
            if let Some(Value::Object(pattern_properties)) = node.value.get("patternProperties") {
                for pattern in pattern_properties.keys() {
                    let (Some(regex), Some(child)) = (self.patterns.get(pattern), node.child(&["patternProperties", pattern])) else { continue };
                    segments.push(SecretSegment::Pattern { source: pattern.clone(), regex: regex.clone() });
                    self.visit(vec![child], segments, ancestors);
                    segments.pop();
                }
            }
            if let Some(child) = node.child(&["additionalProperties"]).filter(|child| child.value.is_object()) {
                segments.push(SecretSegment::Any);
                self.visit(vec![child], segments, ancestors);
                segments.pop();
            }
            ancestors.pop();
        }
    }
}
