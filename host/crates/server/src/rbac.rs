//! Role-based access: every request is checked on role × environment × key prefix, deny by default.

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::tokens::ALL_ENVIRONMENTS;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Read `GET /metrics` and nothing else (for a scraper: no configuration, no history).
    Metrics,
    /// Read configuration, secrets redacted.
    Viewer,
    /// Viewer, plus runtime overrides within its environments and prefix.
    Editor,
    /// Editor, plus approving (publishing) and rejecting change requests within its
    /// environments and prefix.
    Publisher,
    /// Viewer, plus secrets in plaintext.
    SecretReader,
    /// Everything, in every environment.
    Admin,
}

impl Role {
    /// Every role, from least to most privileged.
    pub const ALL: [Role; 6] = [Role::Metrics, Role::Viewer, Role::Editor, Role::Publisher, Role::SecretReader, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Metrics => "metrics",
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Publisher => "publisher",
            Role::SecretReader => "secret-reader",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|role| role.as_str() == name).ok_or_else(|| format!("unknown role `{name}` (one of: metrics, viewer, editor, publisher, secret-reader, admin)"))
    }
}

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    /// Change runtime overrides, draft a change request.
    Write,
    /// Approve (publish) or reject a change request.
    Publish,
}

/// The authenticated caller: a token's name and scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub environments: Vec<String>,
    pub prefix: Option<String>,
}

impl Principal {
    /// True when secrets may be shown to this caller in plaintext.
    pub fn sees_secrets(&self) -> bool {
        matches!(self.role, Role::SecretReader | Role::Admin)
    }

    pub fn may_use_environment(&self, environment: &str) -> bool {
        self.role == Role::Admin || self.environments.iter().any(|e| e == ALL_ENVIRONMENTS || e == environment)
    }

    /// True when `key` (`""`: the whole tree) lies within the token's prefix.
    pub fn may_use_key(&self, key: &str) -> bool {
        match (&self.prefix, self.role) {
            (_, Role::Admin) | (None, _) => true,
            (Some(prefix), _) => potter_engine::is_under(key, prefix),
        }
    }

    /// True when this caller may read `/metrics`.
    pub fn may_read_metrics(&self) -> bool {
        matches!(self.role, Role::Metrics | Role::Admin)
    }

    fn may(&self, action: Action) -> bool {
        match action {
            // A metrics token never gets this far (the `Authenticated` extractor refuses it); deny anyway.
            Action::Read => self.role != Role::Metrics,
            Action::Write => matches!(self.role, Role::Editor | Role::Publisher | Role::Admin),
            Action::Publish => matches!(self.role, Role::Publisher | Role::Admin),
        }
    }

    /// Allows `action` on `key` (None: the environment as a whole) in `environment`, or says why not.
    pub fn authorize(&self, action: Action, environment: &str, key: Option<&str>) -> Result<(), ApiError> {
        let denied = |why: String| {
            tracing::warn!(token = %self.name, environment, key = key.unwrap_or(""), ?action, "denied: {why}");
            Err(ApiError::forbidden(format!("token `{}` ({}) may not {why}", self.name, self.role.as_str())))
        };
        if !self.may(action) {
            return denied(match action {
                Action::Publish => "approve or reject change requests (publisher and admin tokens may)".to_owned(),
                _ => "change configuration".to_owned(),
            });
        }
        if !self.may_use_environment(environment) {
            return denied(format!("use environment `{environment}`"));
        }
        if let Some(key) = key {
            if !self.may_use_key(key) {
                return denied(format!("use key `{key}` (its scope is `{}`)", self.prefix.as_deref().unwrap_or("")));
            }
        }
        Ok(())
    }
}
