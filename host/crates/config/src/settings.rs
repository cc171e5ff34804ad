//! Typed settings: one subtree of one view, deserialized into `T` once per change of that subtree.
//!
//! [`ConfigHost::bind`] returns a [`Settings<T>`] whose [`Settings::get`] is one atomic pointer
//! load of an `Arc<T>` built when the subtree last changed, never on the read path. Every applied
//! change reaches each live binding synchronously, in the commit that makes it live (before its
//! `Applied` event), so once `set` or a reload returns, `get` already answers the new value. A
//! change that leaves the subtree as it was costs one value comparison and no deserialization.
//!
//! A change whose subtree does not deserialize into `T` (a wrong type, a missing field, the
//! subtree removed) is refused *for that binding only*: the configuration goes live for every
//! other reader, while this binding keeps its last good value and reports the refusal (serde's
//! message with the key path and the file:line:col the value came from) on its change stream,
//! in [`Settings::refusal`] and in [`ConfigHost::health`](crate::health). The binding takes the
//! next change that deserializes again.

use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};
use potter_engine::{Snapshot, View, ViewKey};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use crate::error::Error;
pub use crate::observers::SettingsRefusal;
use crate::observers::Rebind;
use crate::runtime::ConfigHost;

/// Typed updates a [`SettingsChanges`] holds for a slow reader before it is handed the current
/// value instead (never a silent gap).
const CHANGES_CAPACITY: usize = 64;

/// A typed, live view of one subtree (`host.bind::<ApiSettings>(&view, "api")`).
///
/// Cheap to clone; every clone reads the same value. Dropping the last clone stops the updates.
pub struct Settings<T> {
    bound: Arc<Bound<T>>,
}

impl<T> Clone for Settings<T> {
    fn clone(&self) -> Self {
        Self { bound: self.bound.clone() }
    }
}

/// One item of a binding's change stream.
pub enum SettingsUpdate<T> {
    /// The subtree changed and deserialized: `old` was live before, `new` is live now.
    Changed {
        /// The version that went live.
        version: u64,
        /// The value before the change.
        old: Arc<T>,
        /// The value now returned by [`Settings::get`].
        new: Arc<T>,
    },
    /// The subtree changed but does not deserialize into `T`; [`Settings::get`] keeps the old value.
    Refused(SettingsRefusal),
}

impl<T> Clone for SettingsUpdate<T> {
    fn clone(&self) -> Self {
        match self {
            SettingsUpdate::Changed { version, old, new } => SettingsUpdate::Changed { version: *version, old: old.clone(), new: new.clone() },
            SettingsUpdate::Refused(refusal) => SettingsUpdate::Refused(refusal.clone()),
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for SettingsUpdate<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingsUpdate::Changed { version, old, new } => f.debug_struct("Changed").field("version", version).field("old", old).field("new", new).finish(),
            SettingsUpdate::Refused(refusal) => f.debug_tuple("Refused").field(refusal).finish(),
        }
    }
}

/// The shared state of one binding.
struct Bound<T> {
    key: ViewKey,
    prefix: String,
    value: ArcSwap<T>,
    /// Serialises updates (they arrive in commit order anyway) and holds what was last seen.
    state: Mutex<BoundState>,
    updates: broadcast::Sender<SettingsUpdate<T>>,
}

struct BoundState {
    /// The snapshot the binding last looked at (taken or refused): the base of the next comparison.
    seen: Arc<Snapshot>,
    /// The version `value` was built from.
    version: u64,
    /// The last refusal, until a change deserializes again.
    refusal: Option<SettingsRefusal>,
}

impl<T: DeserializeOwned + Send + Sync + 'static> Settings<T> {
    /// The current value: one atomic pointer load and a reference count, no deserialization.
    pub fn get(&self) -> Arc<T> {
        self.bound.value.load_full()
    }

    /// The current value without touching the reference count, for a short read on a hot path
    /// (do not hold the guard across an await or for long: it pins that value in memory).
    pub fn load(&self) -> Guard<Arc<T>> {
        self.bound.value.load()
    }

    /// The version the current value was built from.
    pub fn version(&self) -> u64 {
        self.state().version
    }

    /// The bound view.
    pub fn view(&self) -> &ViewKey {
        &self.bound.key
    }

    /// The bound prefix.
    pub fn prefix(&self) -> &str {
        &self.bound.prefix
    }

    /// Why the last change of the subtree was refused, while it still is (None once a later
    /// change deserialized).
    pub fn refusal(&self) -> Option<SettingsRefusal> {
        self.state().refusal.clone()
    }

    /// Typed `(old, new)` changes and refusals from now on.
    pub fn changes(&self) -> SettingsChanges<T> {
        // Subscribed before reading the value, so no change falls between the two.
        let receiver = self.bound.updates.subscribe();
        SettingsChanges { receiver, last: self.get(), bound: self.bound.clone() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, BoundState> {
        self.bound.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T> std::fmt::Debug for Settings<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The value may hold secrets: Debug names the binding only.
        f.debug_struct("Settings").field("view", &self.bound.key.to_string()).field("prefix", &self.bound.prefix).finish_non_exhaustive()
    }
}

/// The subtree at `prefix` of `view` as `T`, or why not (named as `ViewHandle::get` names it).
fn deserialize<T: DeserializeOwned>(view: &View, prefix: &str) -> Result<T, Error> {
    let value = view.value_at(prefix).ok_or_else(|| Error::NotFound(prefix.to_owned()))?;
    crate::secret_values::ensure_revealable(view, prefix)?;
    serde_path_to_error::deserialize(value).map_err(|error| crate::runtime::type_error(view, prefix, error))
}

impl<T: DeserializeOwned + Send + Sync + 'static> Bound<T> {
    fn take(&self, after: &Arc<Snapshot>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::ptr_eq(&state.seen, after) {
            return; // bound while this change was being published: already read
        }
        let before = state.seen.view(&self.key).ok().and_then(|view| view.value_at(&self.prefix).cloned());
        state.seen = after.clone();
        let view = match after.view(&self.key) {
            Ok(view) => view,
            Err(error) => return self.refuse(&mut state, after.version(), Error::from(error).to_string()),
        };
        if before.as_ref() == view.value_at(&self.prefix) {
            return; // the subtree is as it was: no rebuild, no event
        }
        match deserialize::<T>(view, &self.prefix) {
            Ok(value) => {
                let new = Arc::new(value);
                let old = self.value.swap(new.clone());
                state.version = after.version();
                state.refusal = None;
                let _ = self.updates.send(SettingsUpdate::Changed { version: after.version(), old, new });
            }
            Err(error) => self.refuse(&mut state, after.version(), error.to_string()),
        }
    }

    fn refuse(&self, state: &mut BoundState, version: u64, message: String) {
        let refusal = SettingsRefusal { version, view: self.key.to_string(), prefix: self.prefix.clone(), message };
        tracing::warn!(view = %refusal.view, prefix = %refusal.prefix, version, problem = %refusal.message, "typed settings refused a change; they keep their last value");
        state.refusal = Some(refusal.clone());
        let _ = self.updates.send(SettingsUpdate::Refused(refusal));
    }
}

impl<T: DeserializeOwned + Send + Sync + 'static> Rebind for Bound<T> {
    fn take(&self, after: &Arc<Snapshot>) {
        Bound::take(self, after)
    }

    fn refusal(&self) -> Option<SettingsRefusal> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).refusal.clone()
    }
}

impl ConfigHost {
    /// Binds the subtree at `prefix` of `view` to the type `T` (`bind::<ApiSettings>(&view, "api")`).
    ///
    /// Fails now, naming the key path and file:line:col, when the current subtree is missing or
    /// does not deserialize into `T` (or the view is unknown or not served). Afterwards every
    /// change of the subtree is deserialized once, as it goes live; one that does not deserialize
    /// is refused for this binding, which keeps its value (see the [module docs](crate::settings)).
    pub fn bind<T: DeserializeOwned + Send + Sync + 'static>(&self, view: &ViewKey, prefix: &str) -> Result<Settings<T>, Error> {
        if !prefix.is_empty() {
            potter_engine::parse_key_path(prefix)?;
        }
        // Registered under the bindings' lock: no change falls between the read and the registration.
        self.events().observers.bindings.register(|| {
            let snapshot = self.snapshot();
            let current = self.options().served_view(&snapshot, view)?;
            let value: T = deserialize(current, prefix)?;
            let bound = Arc::new(Bound {
                key: view.clone(),
                prefix: prefix.to_owned(),
                value: ArcSwap::from_pointee(value),
                state: Mutex::new(BoundState { version: snapshot.version(), seen: snapshot, refusal: None }),
                updates: broadcast::channel(CHANGES_CAPACITY).0,
            });
            Ok((bound.clone() as Arc<dyn Rebind>, Settings { bound }))
        })
    }
}

/// A binding's typed changes, from when [`Settings::changes`] was called.
pub struct SettingsChanges<T> {
    receiver: broadcast::Receiver<SettingsUpdate<T>>,
    bound: Arc<Bound<T>>,
    /// The newest value this stream has handed out (the `old` of the next change).
    last: Arc<T>,
}

impl<T: DeserializeOwned + Send + Sync + 'static> SettingsChanges<T> {
    /// The next update; `None` once nothing can change any more (never while the host lives).
    pub async fn recv(&mut self) -> Option<SettingsUpdate<T>> {
        loop {
            let received = self.receiver.recv().await.map_err(Missed::from);
            if let Next::Done(update) = self.receive(received) {
                return update;
            }
        }
    }

    /// The next update if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Option<SettingsUpdate<T>> {
        loop {
            let received = self.receiver.try_recv().map_err(|error| match error {
                broadcast::error::TryRecvError::Lagged(_) => Missed::Lagged,
                broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed => Missed::Closed,
            });
            if let Next::Done(update) = self.receive(received) {
                return update;
            }
        }
    }

    /// The blocking form of [`Self::recv`], for code that is not async (not inside a runtime).
    pub fn recv_blocking(&mut self) -> Option<SettingsUpdate<T>> {
        loop {
            let received = self.receiver.blocking_recv().map_err(Missed::from);
            if let Next::Done(update) = self.receive(received) {
                return update;
            }
        }
    }

    fn receive(&mut self, received: Result<SettingsUpdate<T>, Missed>) -> Next<T> {
        match received {
            Ok(SettingsUpdate::Changed { version, old: _, new }) => {
                // `old` is what this stream last handed out, so pairs chain even across a lag.
                let old = std::mem::replace(&mut self.last, new.clone());
                Next::Done(Some(SettingsUpdate::Changed { version, old, new }))
            }
            Ok(refused) => Next::Done(Some(refused)),
            // Fell behind: the missed changes collapse into one pair, from the last value handed
            // out to the current one (none when they came back to the same value).
            Err(Missed::Lagged) => {
                let current = self.bound.value.load_full();
                if Arc::ptr_eq(&current, &self.last) {
                    return Next::Again;
                }
                let version = self.bound.state.lock().unwrap_or_else(|p| p.into_inner()).version;
                let old = std::mem::replace(&mut self.last, current.clone());
                Next::Done(Some(SettingsUpdate::Changed { version, old, new: current }))
            }
            Err(Missed::Closed) => Next::Done(None),
        }
    }
}

enum Missed {
    Lagged,
    Closed,
}

impl From<broadcast::error::RecvError> for Missed {
    fn from(error: broadcast::error::RecvError) -> Self {
        match error {
            broadcast::error::RecvError::Lagged(_) => Missed::Lagged,
            broadcast::error::RecvError::Closed => Missed::Closed,
        }
    }
}

/// What one received message comes to: an answer for the caller (an update, or `None` once the
/// stream is closed), or nothing to hand out yet.
enum Next<T> {
    Done(Option<SettingsUpdate<T>>),
    Again,
}
