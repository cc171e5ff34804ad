//! The rollouts as stored: one document (`<state>/rollouts.json`, or beside a shared history in
//! etcd) replaced whole with compare-and-set. Below the runtime: the recorder reads the running
//! rollouts from it whenever it reads the recorded overrides, so every process building views
//! stages the same steps.

use std::path::Path;
use std::sync::Arc;

use potter_history::DocumentStore;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::documents::JsonDocument;
use crate::error::Error;
use crate::source::rollout::{StagedRollout, BUCKETS};

/// The rollouts' document among a store's documents.
const DOCUMENT: &str = "rollouts";

/// Largest document written: finished rollouts beyond it are dropped oldest first (the history
/// keeps their records).
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Why a rollout could not be started, stepped or ended.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// No rollout has this id.
    #[error("no rollout {id}")]
    Unknown {
        /// The id asked for.
        id: u64,
    },
    /// The rollout already ended.
    #[error("rollout {id} is {state}; only a running rollout can be {action}")]
    NotRunning {
        /// The rollout.
        id: u64,
        /// Its state.
        state: RolloutState,
        /// What was asked.
        action: &'static str,
    },
    /// A running rollout of the environment covers one of the keys.
    #[error("rollout {running} in `{environment}` is running on `{key}`; a second rollout of overlapping keys waits until it ends (advance, complete or abort it first)")]
    Overlap {
        /// The running rollout.
        running: u64,
        /// Its environment.
        environment: String,
        /// A key of the new rollout it covers (the same, under or above one of its own).
        key: String,
    },
    /// A direct write of a key a running rollout changes (it would be shadowed for the cohort,
    /// then overwritten by the completion).
    #[error("rollout {id} in `{environment}` is running on `{key}`: advance, complete or abort it before changing that key directly")]
    Running {
        /// The running rollout.
        id: u64,
        /// Its environment.
        environment: String,
        /// The key written (the same as, under or above one of the rollout's).
        key: String,
    },
    /// The step's bake time has not passed.
    #[error("rollout {id}: step {step} bakes until {until}; advancing earlier is forcing it past its gate (admin)")]
    Baking {
        /// The rollout.
        id: u64,
        /// Its current step (1-based).
        step: usize,
        /// When the bake ends (RFC 3339).
        until: String,
    },
    /// A plan that cannot be started (no steps, shares not rising to 100, a removal, ...).
    #[error("a rollout needs {0}")]
    Plan(String),
    /// The document could not be read or replaced.
    #[error("rollouts in {location}: {message}")]
    Store {
        /// The state directory or shared store.
        location: String,
        /// What failed.
        message: String,
    },
}

/// Where a rollout is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RolloutState {
    /// Staged on its current step's cohort.
    Running,
    /// Live for every view (its change is runtime overrides now).
    Completed,
    /// Ended without its change: every view is as before it.
    RolledBack,
}

impl RolloutState {
    /// Its name in documents, routes and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Running => "running",
            RolloutState::Completed => "completed",
            RolloutState::RolledBack => "rolled-back",
        }
    }
}

impl std::fmt::Display for RolloutState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use crate::source::rollout::Cohort;

/// One step: the share reached, and how long it bakes before the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Step {
    /// Percent of the cohort reached (1..=100, rising step by step; the last is 100).
    pub percent: u32,
    /// Seconds the step runs before the next may start.
    pub bake_seconds: u64,
}

/// One key of a rollout's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RolloutEdit {
    /// The dotted key.
    pub key: String,
    /// The value it gets (a secret as its ciphertext).
    pub value: Value,
}

/// What happened to a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RolloutMilestone {
    /// Started on its first step.
    Started,
    /// Moved on to the next step after its bake.
    Advanced,
    /// Moved on before its bake or past a failing gate, by an admin.
    Forced,
    /// Its change became runtime overrides for every view.
    Completed,
    /// Ended without its change (`note`: why: an operator's abort, a gate).
    RolledBack,
}

impl RolloutMilestone {
    /// Its name in documents and output (`rolled-back`).
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutMilestone::Started => "started",
            RolloutMilestone::Advanced => "advanced",
            RolloutMilestone::Forced => "forced",
            RolloutMilestone::Completed => "completed",
            RolloutMilestone::RolledBack => "rolled-back",
        }
    }
}

/// One entry of a rollout's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RolloutEvent {
    /// What happened.
    pub milestone: RolloutMilestone,
    /// Who (`token:<name>`, `cli:<name>`, `rollout driver`).
    pub actor: String,
    /// RFC 3339, UTC, milliseconds.
    pub timestamp: String,
    /// The step it reached (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// Why (a rollback's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The history version it went live as (None: no view changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// One rollout as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rollout {
    /// Increasing, never reused (also the salt of its users' hash).
    pub id: u64,
    /// The environment whose runtime overrides it changes.
    pub environment: String,
    /// What it does.
    pub title: String,
    /// Who started it.
    pub author: String,
    /// The change.
    pub edits: Vec<RolloutEdit>,
    /// Who it reaches first.
    pub cohort: Cohort,
    /// Its steps, in order.
    pub steps: Vec<Step>,
    /// The current step, 0-based (the last one reached once ended).
    pub step: usize,
    /// When it started (Unix milliseconds): a host unhealthy since then fails its health gate.
    pub started_unix_ms: i64,
    /// When the current step started (Unix milliseconds).
    pub step_started_unix_ms: i64,
    /// Where it is in its life.
    pub state: RolloutState,
    /// Who did what, oldest first.
    pub timeline: Vec<RolloutEvent>,
    /// An instance cohort's hosts its current step reached when it started (from the registry):
    /// one of them leaving before the step ends fails the gate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

impl Rollout {
    /// The keys it changes.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.edits.iter().map(|edit| edit.key.as_str())
    }

    /// Its current step.
    pub fn current_step(&self) -> Step {
        self.steps[self.step.min(self.steps.len() - 1)]
    }

    /// When the current step's bake ends (Unix milliseconds).
    pub fn bake_ends_unix_ms(&self) -> i64 {
        let bake_ms = i64::try_from(self.current_step().bake_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        self.step_started_unix_ms.saturating_add(bake_ms)
    }

    /// When the current step's bake ends (RFC 3339, UTC, milliseconds).
    pub fn bake_ends_at(&self) -> String {
        crate::documents::timestamp(self.bake_ends_unix_ms())
    }

    /// True on its last step (the next advance completes it).
    pub fn on_last_step(&self) -> bool {
        self.step + 1 >= self.steps.len()
    }

    /// The users of `users` (a tree's) its current step reaches: none unless it runs a user cohort.
    pub fn reached_users(&self, users: &[std::sync::Arc<str>]) -> Vec<String> {
        if self.state != RolloutState::Running {
            return Vec::new();
        }
        let staged = self.staged();
        users.iter().filter(|user| staged.reaches(user)).map(|user| user.to_string()).collect()
    }

    /// What a build stages for it while it runs.
    pub fn staged(&self) -> StagedRollout {
        StagedRollout {
            id: self.id,
            environment: self.environment.clone(),
            cohort: self.cohort.clone(),
            values: self.edits.iter().map(|edit| (edit.key.clone(), edit.value.clone())).collect(),
            share: self.current_step().percent.min(100) * (BUCKETS / 100),
        }
    }

    pub(crate) fn ensure_running(&self, action: &'static str) -> Result<(), Error> {
        match self.state {
            RolloutState::Running => Ok(()),
            state => Err(RolloutError::NotRunning { id: self.id, state, action }.into()),
        }
    }
}

/// The rollouts' document: every rollout, and the last id handed out.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct RolloutsDocument {
    pub(crate) last_id: u64,
    pub(crate) rollouts: Vec<Rollout>,
}

/// Where the rollouts are kept: a document of the state directory, or of the shared store.
#[derive(Clone)]
pub struct RolloutStore {
    document: JsonDocument<RolloutsDocument>,
}

impl RolloutStore {
    /// The store beside `shared` documents (a fleet's), else in `state_dir`.
    pub(crate) fn over(shared: Option<Arc<dyn DocumentStore>>, state_dir: &Path) -> Self {
        Self { document: JsonDocument::new(shared, state_dir, DOCUMENT, |location, message| RolloutError::Store { location, message }.into()) }
    }

    /// The store of the state (and `--store`) that `options` name, without a host.
    pub fn open(options: &crate::Options) -> Result<Self, Error> {
        Ok(Self::over(crate::recording::HistoryDatabase::open(options)?.documents(), &options.state_dir))
    }

    /// The rollouts of `environment` (None: every one), newest first.
    pub fn list(&self, environment: Option<&str>) -> Result<Vec<Rollout>, Error> {
        let (_, document) = self.document.read()?;
        let mut rollouts: Vec<Rollout> = document.rollouts.into_iter().filter(|rollout| environment.is_none_or(|e| rollout.environment == e)).collect();
        rollouts.reverse();
        Ok(rollouts)
    }

    /// The rollout with this id.
    pub fn get(&self, id: u64) -> Result<Rollout, Error> {
        let (_, document) = self.document.read()?;
        document.rollouts.into_iter().find(|rollout| rollout.id == id).ok_or_else(|| RolloutError::Unknown { id }.into())
    }

    /// What the builds stage: every running rollout's current step.
    pub(crate) fn staged(&self) -> Result<Vec<StagedRollout>, Error> {
        let (_, document) = self.document.read()?;
        Ok(document.rollouts.iter().filter(|rollout| rollout.state == RolloutState::Running).map(Rollout::staged).collect())
    }

    /// Reads, changes and replaces the document with compare-and-set on its stamp.
    pub(crate) fn edit<T>(&self, change: impl FnMut(&mut RolloutsDocument) -> Result<T, Error>) -> Result<T, Error> {
        self.document.edit(change, |document| loop {
            let bytes = serde_json::to_vec_pretty(document).expect("rollouts serialize");
            if bytes.len() <= MAX_DOCUMENT_BYTES {
                return Ok(bytes);
            }
            match document.rollouts.iter().position(|rollout| rollout.state != RolloutState::Running) {
                Some(index) => {
                    document.rollouts.remove(index);
                }
                None => return Err(self.document.failure(format!("the running rollouts exceed {MAX_DOCUMENT_BYTES} bytes"))),
            }
        })
    }

    /// Changes rollout `id` in place and returns it as written.
    pub(crate) fn update(&self, id: u64, mut change: impl FnMut(&mut Rollout) -> Result<(), Error>) -> Result<Rollout, Error> {
        self.edit(|document| {
            let rollout = document.rollouts.iter_mut().find(|rollout| rollout.id == id).ok_or(RolloutError::Unknown { id })?;
            change(rollout)?;
            Ok(rollout.clone())
        })
    }
}
