//! What a service embedding the host tells its own health endpoint (and, later, a rollout).
//!
//! Two halves: the service's own verdict ([`ConfigHost::report_unhealthy`] /
//! [`ConfigHost::report_healthy`], a stored flag) and the configuration host's state
//! ([`ConfigHost::health`]: the live version, the last refused change, typed settings that refused
//! one, source plugins serving a stale layer). [`ConfigHost::validate_on_startup`] is the check a
//! service runs before it accepts traffic.
//!
//! The status is `unhealthy` only when the service said so: a refused change leaves a valid
//! configuration live, so it makes the host `degraded` (worth an alert, not a restart).

use potter_engine::{Severity, ViewKey};
use potter_validate::Report;

use crate::error::Error;
use crate::observers::now_ms;
pub use crate::observers::{RefusedChange, SettingsRefusal, Unhealthy};
use crate::runtime::ConfigHost;

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Everything is as configured.
    Ok,
    /// A valid configuration is live, but not all of what was asked for: the last change was
    /// refused, typed settings kept an old value, a source serves its last good layer, or the
    /// shared history store cannot be reached.
    Degraded,
    /// The service reported itself unhealthy ([`ConfigHost::report_unhealthy`]).
    Unhealthy,
}

/// A source plugin whose last load failed: its last good layer is still in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StaleSource {
    /// The plugin's name.
    pub name: String,
    /// Its last error (per environment when that is how it failed).
    pub errors: Vec<String>,
}

/// The health of the configuration host and of the service embedding it, for a health endpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Health {
    /// The overall verdict.
    pub status: Status,
    /// The live configuration's version (the last good one: a refused change never goes live).
    pub version: u64,
    /// When a change last went live (milliseconds since the Unix epoch; None before the first).
    pub last_applied_unix_ms: Option<u64>,
    /// The last change the host refused, if any (it may be older than the last applied one).
    pub last_refusal: Option<RefusedChange>,
    /// True when the last refusal came after the last applied change: what is on disk (or was
    /// asked for) is not what is live.
    pub refusal_outstanding: bool,
    /// Typed settings ([`ConfigHost::bind`]) that refused the latest change of their subtree.
    pub refused_settings: Vec<SettingsRefusal>,
    /// Source plugins serving their last good layer.
    pub stale_sources: Vec<StaleSource>,
    /// The service's own report, when it said it is unhealthy.
    pub unhealthy: Option<Unhealthy>,
    /// True once [`ConfigHost::validate_on_startup`] passed.
    pub validated_on_startup: bool,
    /// Why the shared (etcd) history store cannot be reached, while it cannot: the last good
    /// configuration is served, changes are refused (docs/FLEET.md).
    pub store_unreachable: Option<String>,
}

impl ConfigHost {
    /// Why the shared store is unreachable, while it is (None with SQLite).
    pub fn store_unreachable(&self) -> Option<String> {
        crate::recording::lock(&self.history_database().link().unreachable).clone()
    }

    /// Marks the service unhealthy with a reason (kept until [`Self::report_healthy`]); the
    /// service's health endpoint reads it through [`Self::health`].
    pub fn report_unhealthy(&self, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::warn!(%reason, "service reported unhealthy");
        self.events().observers.health.state().unhealthy = Some(Unhealthy { reason, since_unix_ms: now_ms() });
    }

    /// The service's own report while it says it is unhealthy (what [`Self::health`] shows as
    /// `unhealthy`, without the rest of the verdict).
    pub fn reported_unhealthy(&self) -> Option<Unhealthy> {
        self.events().observers.health.state().unhealthy.clone()
    }

    /// Clears [`Self::report_unhealthy`].
    pub fn report_healthy(&self) {
        self.events().observers.health.state().unhealthy = None;
    }

    /// The host's and the service's health, cheap enough for every probe (no validation, no I/O).
    pub fn health(&self) -> Health {
        let version = self.snapshot().version();
        let refused_settings = self.events().observers.bindings.refusals();
        let stale_sources: Vec<StaleSource> = self
            .plugin_list()
            .into_iter()
            .filter(|info| info.kind == Some(potter_plugin::PluginKind::Source))
            .filter_map(|info| {
                let mut errors: Vec<String> = info.last_error.into_iter().collect();
                errors.extend(info.environment_errors.into_iter().map(|(environment, error)| format!("{environment}: {error}")));
                (!errors.is_empty()).then_some(StaleSource { name: info.name, errors })
            })
            .collect();
        let store_unreachable = self.store_unreachable();
        let recorded = self.events().observers.health.state();
        let refusal_outstanding = recorded.refused_at > recorded.applied_at;
        let status = if recorded.unhealthy.is_some() {
            Status::Unhealthy
        } else if refusal_outstanding || !refused_settings.is_empty() || !stale_sources.is_empty() || store_unreachable.is_some() {
            Status::Degraded
        } else {
            Status::Ok
        };
        Health {
            status,
            version,
            last_applied_unix_ms: recorded.last_applied_ms,
            last_refusal: recorded.last_refusal.clone(),
            refusal_outstanding,
            refused_settings,
            stale_sources,
            unhealthy: recorded.unhealthy.clone(),
            validated_on_startup: recorded.validated_on_startup,
            store_unreachable,
        }
    }

    /// The check a service runs before it accepts traffic: every view it will serve exists, is
    /// served by this process and is valid now (schemas, plugin validators, native checks).
    /// `Err` names each problem (an unknown view, or [`Error::Invalid`] with every issue of those
    /// views with its file:line:col); `Ok` is their report (warnings only) and marks
    /// [`Health::validated_on_startup`]. Typed settings are checked by [`Self::bind`] itself.
    pub fn validate_on_startup(&self, views: &[ViewKey]) -> Result<Report, Error> {
        let snapshot = self.snapshot();
        for key in views {
            self.options().check_served(&snapshot, key)?;
        }
        let mut report = self.validate();
        // Only the service's own views (and the tree as a whole) decide whether it starts.
        report.views.retain(|view| views.contains(&view.view));
        if report.has_errors() {
            return Err(Error::Invalid(report));
        }
        for issue in report.issues().filter(|issue| issue.severity == Severity::Warning) {
            tracing::warn!(%issue, "configuration warning at start-up");
        }
        self.events().observers.health.state().validated_on_startup = true;
        Ok(report)
    }
}
