//! The tree's review policy: `<root>/policy.toml` says which environments publish only through a
//! change request approved by a second person. A missing file means no environment requires
//! review; a file that does not parse, or names an unknown setting, value or environment, is an
//! error naming `policy.toml:line:column`, like every other file of the tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use potter_engine::{Format, Location, ParseError};

use super::RequestError;
use crate::error::Error;

/// The policy file's name inside the tree's root.
pub const POLICY_FILE: &str = "policy.toml";

/// What `potter-config init` writes: production needs a second person.
pub const INIT_POLICY: &str = "\
# Who must agree before a change goes live (docs/ROLLOUT.md, \"Change requests\").
# review = \"required\": runtime overrides of the environment change only through a change request
# that someone other than its author approves; direct writes are refused, except an admin's
# (break-glass, audited). review = \"optional\" (the default): direct writes work, and an author
# with the publisher role may approve their own request.
[environments.production]
review = \"required\"
";

/// `policy.toml` parsed once per version of the file: a server consults the policy on every write
/// without reading and parsing it again (one `stat` per call; an edit counts from the next call,
/// as with [`Policy::load`]). A policy that fails to load is not kept: the error comes back until
/// the file is fixed.
pub struct PolicyFile {
    root: PathBuf,
    parsed: Mutex<Option<(crate::source::tree::FileStamp, Arc<Policy>)>>,
}

impl PolicyFile {
    /// The policy file of the tree at `root`, not read yet.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), parsed: Mutex::new(None) }
    }

    /// The policy as the file stands now.
    pub fn current(&self) -> Result<Arc<Policy>, Error> {
        let Some(stamp) = crate::source::tree::FileStamp::of(&self.root.join(POLICY_FILE)) else {
            // Missing (no environment requires review) or unreadable (the load names why).
            return Policy::load(&self.root).map(Arc::new);
        };
        let mut parsed = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((held, policy)) = &*parsed {
            if *held == stamp {
                return Ok(policy.clone());
            }
        }
        let policy = Arc::new(Policy::load(&self.root)?);
        *parsed = Some((stamp, policy.clone()));
        Ok(policy)
    }
}

/// How an environment's changes are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Review {
    /// Direct writes work; a publisher may approve their own request.
    #[default]
    Optional,
    /// Only through a change request approved by someone other than its author.
    Required,
}

impl Review {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "optional" => Some(Review::Optional),
            "required" => Some(Review::Required),
            _ => None,
        }
    }
}

/// The review policy of one tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    reviews: BTreeMap<String, Review>,
}

impl Policy {
    /// The policy of the tree at `root` (none when `policy.toml` is absent).
    pub fn load(root: &Path) -> Result<Self, Error> {
        let path = root.join(POLICY_FILE);
        match std::fs::symlink_metadata(&path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(error) => return Err(Error::io(path, error)),
            Ok(_) => {}
        }
        let text = crate::source::tree::read_text(&path, POLICY_FILE)?;
        let known = |environment: &str| Format::EXTENSIONS.iter().any(|ext| root.join("environments").join(format!("{environment}.{ext}")).is_file());
        Self::parse(&text, known)
    }

    /// Parses the text of a policy file; `known` says whether an environment exists in the tree.
    pub fn parse(text: &str, known: impl Fn(&str) -> bool) -> Result<Self, Error> {
        let parsed = potter_engine::parse_document(text, Format::Toml).map_err(|source| Error::Parse { file: POLICY_FILE.to_owned(), source })?;
        let at = |path: &str, message: String| {
            let position = match parsed.locations.get(path) {
                Some(Location::Text { line, column }) => Some((*line, *column)),
                _ => None,
            };
            Error::Parse { file: POLICY_FILE.to_owned(), source: ParseError { line: position.map(|p| p.0).or(Some(1)), column: position.map(|p| p.1), message } }
        };
        let mut reviews = BTreeMap::new();
        for (name, value) in &parsed.data {
            let Some(environments) = value.as_object().filter(|_| name == "environments") else {
                return Err(at(name, format!("unknown setting `{name}` (the policy has one table: `[environments.<name>]`)")));
            };
            for (environment, settings) in environments {
                let path = format!("environments.{environment}");
                let Some(settings) = settings.as_object() else {
                    return Err(at(&path, format!("`{path}` must be a table: `[environments.{environment}]` with `review = \"required\"`")));
                };
                if !known(environment) {
                    return Err(at(&path, format!("environment `{environment}` has no file in environments/ (a misspelt name would leave the real one unreviewed)")));
                }
                let mut review = Review::default();
                for (setting, value) in settings {
                    let setting_path = format!("{path}.{setting}");
                    if setting != "review" {
                        return Err(at(&setting_path, format!("unknown setting `{setting}` (an environment has `review`)")));
                    }
                    review = value.as_str().and_then(Review::parse).ok_or_else(|| at(&setting_path, format!("`review` must be \"required\" or \"optional\", not {value}")))?;
                }
                reviews.insert(environment.clone(), review);
            }
        }
        Ok(Self { reviews })
    }

    /// How `environment`'s changes are published.
    pub fn review(&self, environment: &str) -> Review {
        self.reviews.get(environment).copied().unwrap_or_default()
    }

    /// True when `environment` publishes only through a change request approved by another person.
    pub fn review_required(&self, environment: &str) -> bool {
        self.review(environment) == Review::Required
    }

    /// Refuses a direct write of `environment`'s runtime overrides when it requires review,
    /// unless the writer may break the glass (an admin; `--break-glass` on the command line).
    /// Ok(true): allowed only as a break-glass write, which the caller records as such.
    pub fn check_direct_write(&self, environment: &str, break_glass: bool) -> Result<bool, Error> {
        match (self.review_required(environment), break_glass) {
            (false, _) => Ok(false),
            (true, true) => Ok(true),
            (true, false) => Err(RequestError::ReviewRequired { environment: environment.to_owned() }.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Policy, String> {
        Policy::parse(text, |environment| ["production", "staging"].contains(&environment)).map_err(|e| e.to_string())
    }

    #[test]
    fn the_init_policy_requires_review_in_production_only() {
        let policy = parse(INIT_POLICY).unwrap();
        assert!(policy.review_required("production"));
        assert!(!policy.review_required("staging"));
        assert!(policy.check_direct_write("production", false).unwrap_err().to_string().contains("open a change request"));
        assert!(policy.check_direct_write("production", true).unwrap());
        assert!(!policy.check_direct_write("staging", false).unwrap());
    }

    #[test]
    fn errors_name_the_file_line_and_column() {
        assert!(parse("[environments.production\nreview = 1").unwrap_err().starts_with("policy.toml:1:"));
        let error = parse("[environments.production]\nreview = \"sometimes\"\n").unwrap_err();
        assert!(error.starts_with("policy.toml:2:10: `review` must be"), "{error}");
        let error = parse("[environments.production]\nreveiw = \"required\"\n").unwrap_err();
        assert!(error.starts_with("policy.toml:2:10:") && error.contains("unknown setting `reveiw`"), "{error}");
        let error = parse("[environments.prodution]\nreview = \"required\"\n").unwrap_err();
        assert!(error.starts_with("policy.toml:") && error.contains("`prodution` has no file"), "{error}");
        let error = parse("reviewers = 2\n").unwrap_err();
        assert!(error.starts_with("policy.toml:1:13:") && error.contains("unknown setting `reviewers`"), "{error}");
    }
}
