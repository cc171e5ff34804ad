//! Change events and subscriptions.
//!
//! Every applied change is published once, by the commit that swaps it in (`ConfigHost::commit`
//! in runtime.rs), with the snapshot after it; each subscription keeps the one before. Each subscription
//! watches one view under one key prefix and turns those into the changes of its own keys, so a
//! subscriber never sees keys outside its prefix. The channel is bounded: a subscriber that falls
//! behind is told how many changes it missed and handed the current values instead (never a silent gap).

use std::sync::Arc;
use std::time::Duration;

use potter_engine::{diff, KeyChange, Snapshot, View, ViewKey};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::secret_values::{holds_secret, redact, REDACTED};

/// What started a change (the history's type: an event and its record name it alike).
pub use potter_history::ChangeOrigin;

/// Who and what caused a change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Cause {
    /// What kind of change it is.
    pub origin: ChangeOrigin,
    /// `file-watch`, `cli:<user>`, a token's name, `plugin:<name>`.
    pub actor: String,
    /// Why, when the actor said (`--reason`, the API's `reason`).
    pub reason: Option<String>,
}

impl Cause {
    /// A cause without a reason.
    pub fn new(origin: ChangeOrigin, actor: impl Into<String>) -> Self {
        Self { origin, actor: actor.into(), reason: None }
    }
}

/// What the bus carries: every applied change and every rejected one.
#[derive(Debug, Clone)]
pub(crate) enum Published {
    /// `recorded_in`: how long the history took to make it durable (none when nothing was recorded).
    Applied { cause: Cause, after: Arc<Snapshot>, recorded_in: Option<Duration> },
    Rejected { cause: Cause, refused_by: RefusedBy, diagnostics: Vec<String> },
}

/// What refused a change (or kept a source's last good output): the label of a refusal in
/// metrics, coarse enough that its set of values never grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusedBy {
    /// A tree file that could not be read or parsed, a bad key path or value type.
    Parse,
    /// A schema, rule or validator plugin found an error in some view.
    Validation,
    /// A plugin failed (a source's load, a time-out, a trap, a refused module).
    Plugin,
    /// A secret that could not be decrypted or encrypted.
    Secrets,
    /// The history store could not record the change.
    Store,
    /// Anything else (an unknown view, a conflict, a refused unsigned plugin).
    Other,
}

impl RefusedBy {
    /// The label: `parse`, `validation`, `plugin`, `secrets`, `store` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusedBy::Parse => "parse",
            RefusedBy::Validation => "validation",
            RefusedBy::Plugin => "plugin",
            RefusedBy::Secrets => "secrets",
            RefusedBy::Store => "store",
            RefusedBy::Other => "other",
        }
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Keys under the prefix changed (values of secret keys are `<redacted>`).
    Changed {
        /// The version that went live.
        version: u64,
        /// The view, as `production`, `production/api`, `production/@alice`.
        view: String,
        /// What kind of change it was.
        origin: ChangeOrigin,
        /// Who made it ([`Cause::actor`]).
        actor: String,
        /// The changed keys under the prefix, old and new values.
        changes: Vec<KeyChange>,
    },
    /// A change was refused; the previous configuration stays live.
    Rejected {
        /// What kind of change it was.
        origin: ChangeOrigin,
        /// Who tried it.
        actor: String,
        /// Why it was refused, one line each (redacted; scoped by the server per caller).
        diagnostics: Vec<String>,
    },
    /// The subscriber fell behind and missed `missed` changes; `current` is the value under the prefix now.
    Lagged {
        /// How many changes the subscriber did not receive.
        missed: u64,
        /// The live version now.
        version: u64,
        /// The view, as in [`Event::Changed`].
        view: String,
        /// The value under the prefix now (None: nothing there).
        current: Option<Value>,
    },
}

/// The publishing side, owned by the host.
pub(crate) struct EventBus {
    sender: broadcast::Sender<Published>,
    /// Told of every change synchronously, before subscribers are.
    pub(crate) observers: crate::observers::Observers,
}

/// Changes a subscriber may fall behind by before it is told it lagged.
pub const DEFAULT_CAPACITY: usize = 4096;

impl EventBus {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { sender: broadcast::channel(capacity.max(1)).0, observers: crate::observers::Observers::default() }
    }

    pub(crate) fn publish(&self, published: Published) {
        match &published {
            Published::Applied { after, .. } => {
                self.observers.bindings.take(after);
                self.observers.health.applied();
            }
            Published::Rejected { cause, diagnostics, .. } => self.observers.health.rejected(cause, diagnostics),
        }
        // No receivers is fine: nobody is listening.
        let _ = self.sender.send(published);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.sender.subscribe()
    }
}

/// Replaces the values of secret keys in `changes` (judged in either snapshot's view).
fn redact_changes(changes: &mut [KeyChange], before: Option<&View>, after: Option<&View>) {
    for change in changes {
        let secret = [before, after].into_iter().flatten().any(|view| holds_secret(view, &change.key));
        if secret {
            for value in [&mut change.old, &mut change.new].into_iter().flatten() {
                *value = Value::String(REDACTED.to_owned());
            }
        }
    }
}

/// One view's changes under one prefix.
pub struct Subscription {
    receiver: broadcast::Receiver<Published>,
    key: ViewKey,
    prefix: String,
    /// The snapshot the subscriber's picture is based on.
    baseline: Arc<Snapshot>,
    latest: Box<dyn Fn() -> Arc<Snapshot> + Send + Sync>,
}

impl Subscription {
    pub(crate) fn new(
        receiver: broadcast::Receiver<Published>,
        key: ViewKey,
        prefix: &str,
        baseline: Arc<Snapshot>,
        latest: Box<dyn Fn() -> Arc<Snapshot> + Send + Sync>,
    ) -> Self {
        Self { receiver, key, prefix: prefix.to_owned(), baseline, latest }
    }

    /// Turns one published item into this subscriber's event, if it concerns it.
    fn translate(&mut self, published: Published) -> Option<Event> {
        match published {
            Published::Rejected { cause, diagnostics, .. } => Some(Event::Rejected { origin: cause.origin, actor: cause.actor, diagnostics }),
            Published::Applied { cause, after, .. } => {
                if after.version() <= self.baseline.version() {
                    return None; // already covered by a lag catch-up
                }
                let before_view = self.baseline.view(&self.key).ok().cloned();
                let after_view = after.view(&self.key).ok().cloned();
                self.baseline = after.clone();
                let old = before_view.as_ref().and_then(|v| v.value_at(&self.prefix));
                let new = after_view.as_ref().and_then(|v| v.value_at(&self.prefix));
                let mut changes = diff(&self.prefix, old, new);
                if changes.is_empty() {
                    return None;
                }
                redact_changes(&mut changes, before_view.as_deref(), after_view.as_deref());
                Some(Event::Changed { version: after.version(), view: self.key.to_string(), origin: cause.origin, actor: cause.actor, changes })
            }
        }
    }

    fn lagged(&mut self, missed: u64) -> Event {
        self.baseline = (self.latest)();
        let current = self.baseline.view(&self.key).ok().and_then(|view| Some(redact(view, &self.prefix, view.value_at(&self.prefix)?)));
        Event::Lagged { missed, version: self.baseline.version(), view: self.key.to_string(), current }
    }

    /// The next event for this subscription; `None` once the host is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        loop {
            let received = self.receiver.recv().await.into();
            if let Some(event) = self.receive(received) {
                return event;
            }
        }
    }

    /// The blocking form of [`Subscription::recv`], for code that is not async.
    pub fn recv_blocking(&mut self) -> Option<Event> {
        loop {
            let received = self.receiver.blocking_recv().into();
            if let Some(event) = self.receive(received) {
                return event;
            }
        }
    }

    /// The next event if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        loop {
            let received = self.receiver.try_recv().into();
            if let Some(event) = self.receive(received) {
                return event;
            }
        }
    }

    /// What one receive gives this subscriber: `Some(answer)` to return, `None` to receive again
    /// (a change that touches none of its keys).
    fn receive(&mut self, received: Received) -> Option<Option<Event>> {
        match received {
            Received::Published(published) => self.translate(published).map(Some),
            Received::Missed(missed) => Some(Some(self.lagged(missed))),
            Received::Nothing => Some(None),
        }
    }

    /// The subscription as an async stream of events.
    pub fn into_stream(self) -> impl futures_core::Stream<Item = Event> + Send {
        futures_util::stream::unfold(self, |mut subscription| async move {
            subscription.recv().await.map(|event| (event, subscription))
        })
    }
}

/// What became of one change, host-wide: the outcome without the values, for counters such as
/// the server's `/metrics` (which keeps the counting, so the library depends on no metrics crate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The change went live.
    Applied {
        /// What kind of change it was.
        origin: ChangeOrigin,
        /// The version that went live.
        version: u64,
        /// How long the history took to make it durable, from the record being queued (none
        /// without a history, or when the change recorded nothing new).
        recorded_in: Option<Duration>,
    },
    /// The change was refused; the previous configuration stays live.
    Refused {
        /// What kind of change it was.
        origin: ChangeOrigin,
        /// What refused it.
        refused_by: RefusedBy,
    },
    /// The receiver fell behind and missed this many outcomes.
    Missed(u64),
}

/// Every change's [`Outcome`], in every view, from now on ([`crate::ConfigHost::outcomes`]).
pub struct Outcomes {
    receiver: broadcast::Receiver<Published>,
}

impl Outcomes {
    pub(crate) fn new(receiver: broadcast::Receiver<Published>) -> Self {
        Self { receiver }
    }

    /// The next outcome; `None` once the host is gone.
    pub async fn recv(&mut self) -> Option<Outcome> {
        match self.receiver.recv().await {
            Ok(Published::Applied { cause, after, recorded_in }) => Some(Outcome::Applied { origin: cause.origin, version: after.version(), recorded_in }),
            Ok(Published::Rejected { cause, refused_by, .. }) => Some(Outcome::Refused { origin: cause.origin, refused_by }),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(Outcome::Missed(missed)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// One receive from the bus, whichever way it was made.
enum Received {
    Published(Published),
    /// The subscriber fell this many changes behind.
    Missed(u64),
    /// The host is gone (or, without waiting, nothing is ready).
    Nothing,
}

impl From<Result<Published, broadcast::error::RecvError>> for Received {
    fn from(result: Result<Published, broadcast::error::RecvError>) -> Self {
        match result {
            Ok(published) => Received::Published(published),
            Err(broadcast::error::RecvError::Lagged(missed)) => Received::Missed(missed),
            Err(broadcast::error::RecvError::Closed) => Received::Nothing,
        }
    }
}

impl From<Result<Published, broadcast::error::TryRecvError>> for Received {
    fn from(result: Result<Published, broadcast::error::TryRecvError>) -> Self {
        match result {
            Ok(published) => Received::Published(published),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => Received::Missed(missed),
            Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed) => Received::Nothing,
        }
    }
}
