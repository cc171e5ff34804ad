//! What every published change reaches synchronously, in the commit itself (not through the
//! channel): the typed settings bound to the host ([`crate::settings`]) rebuild before the change is
//! acknowledged, and the health record ([`crate::health`]) notes it. Below the runtime: the kinds
//! of observer are type-erased here, and the modules that make them sit above.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use potter_engine::Snapshot;

use crate::error::Error;
use crate::events::Cause;

/// The observers of one host.
#[derive(Default)]
pub(crate) struct Observers {
    pub(crate) bindings: Bindings,
    pub(crate) health: HealthRecord,
}

/// What a typed binding refused: the change went live for everyone else, this binding kept its value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SettingsRefusal {
    /// The version of the change that was refused.
    pub version: u64,
    /// The view, as `production` or `production/api`.
    pub view: String,
    /// The bound prefix.
    pub prefix: String,
    /// Why: serde's message, with the key path and the file:line:col the value came from
    /// (secret values never quoted).
    pub message: String,
}

impl std::fmt::Display for SettingsRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} `{}` kept its value at version {}: {}", self.view, self.prefix, self.version, self.message)
    }
}

/// A binding, type-erased.
pub(crate) trait Rebind: Send + Sync {
    /// A change went live.
    fn take(&self, after: &Arc<Snapshot>);
    /// The binding's refusal, while it stands.
    fn refusal(&self) -> Option<SettingsRefusal>;
}

/// The live bindings of one host (held weakly: a dropped `Settings` stops being updated).
#[derive(Default)]
pub(crate) struct Bindings {
    live: Mutex<Vec<Weak<dyn Rebind>>>,
}

impl Bindings {
    fn live(&self) -> MutexGuard<'_, Vec<Weak<dyn Rebind>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers what `make` builds, under the lock every change takes to hand itself out: a
    /// change is either live before `make` reads the snapshot, or handed to the binding after.
    pub(crate) fn register<R>(&self, make: impl FnOnce() -> Result<(Arc<dyn Rebind>, R), Error>) -> Result<R, Error> {
        let mut live = self.live();
        let (binding, made) = make()?;
        live.push(Arc::downgrade(&binding));
        Ok(made)
    }

    /// Hands a change that just went live to every binding, in commit order.
    pub(crate) fn take(&self, after: &Arc<Snapshot>) {
        self.live().retain(|binding| match binding.upgrade() {
            Some(binding) => {
                // A `Deserialize` impl of the embedder's that panics must not take the commit down
                // with it: the binding keeps its value (its state lock recovers from the poison).
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| binding.take(after))).is_err() {
                    tracing::error!(version = after.version(), "typed settings panicked while deserializing a change; they keep their last value");
                }
                true
            }
            None => false,
        });
    }

    /// Every standing refusal of a live binding.
    pub(crate) fn refusals(&self) -> Vec<SettingsRefusal> {
        self.live().iter().filter_map(Weak::upgrade).filter_map(|binding| binding.refusal()).collect()
    }
}

/// The recorded half of the health: what the change path and the service told it.
#[derive(Default)]
pub(crate) struct HealthRecord {
    state: Mutex<Recorded>,
}

/// What [`HealthRecord`] holds.
#[derive(Default)]
pub(crate) struct Recorded {
    /// Counts applied and refused changes, to order them (clock readings may tie).
    sequence: u64,
    pub(crate) applied_at: Option<u64>,
    pub(crate) refused_at: Option<u64>,
    pub(crate) last_applied_ms: Option<u64>,
    pub(crate) last_refusal: Option<RefusedChange>,
    pub(crate) unhealthy: Option<Unhealthy>,
    pub(crate) validated_on_startup: bool,
}

/// A change the host refused (the configuration before it stayed live).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RefusedChange {
    /// Who tried it (`file-watch`, `cli:<user>`, `plugin:<name>`...).
    pub actor: String,
    /// What kind of change it was.
    pub origin: String,
    /// Why, one line each (redacted: no secret value).
    pub diagnostics: Vec<String>,
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

/// The service's own report of being unhealthy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unhealthy {
    /// What the service said.
    pub reason: String,
    /// Since when, in milliseconds since the Unix epoch.
    pub since_unix_ms: u64,
}

impl HealthRecord {
    pub(crate) fn state(&self) -> MutexGuard<'_, Recorded> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn applied(&self) {
        let mut state = self.state();
        state.sequence += 1;
        state.applied_at = Some(state.sequence);
        state.last_applied_ms = Some(now_ms());
    }

    pub(crate) fn rejected(&self, cause: &Cause, diagnostics: &[String]) {
        let mut state = self.state();
        state.sequence += 1;
        state.refused_at = Some(state.sequence);
        state.last_refusal = Some(RefusedChange { actor: cause.actor.clone(), origin: cause.origin.to_string(), diagnostics: diagnostics.to_vec(), at_unix_ms: now_ms() });
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}
