//! Many hosts on one shared (etcd) store: following the changes peers record, so each is
//! validated and goes live here without a restart, and keeping this host's registry entry
//! current. Below the runtime: the host is reached through [`Peer`], which the runtime implements.
//! See docs/FLEET.md.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use potter_history_etcd::{EtcdStore, FollowEvent, InstanceInfo};

use crate::error::Error;
use crate::recording::{lock, HistoryDatabase, StoreLink};

/// How long the follower waits for an event before it looks at the host again (a dropped host
/// ends the follower within this; a take-in that had to wait for this host's own records is
/// retried after it).
const IDLE: Duration = Duration::from_millis(200);

/// What the follower needs of the host.
pub(crate) trait Peer: Send + 'static {
    /// Takes in the recorded overrides (forced: the live snapshot may lack a peer's change).
    /// None once the host is gone; `Ok(false)` when its own records are still landing.
    fn resync(&self) -> Option<Result<bool, Error>>;

    /// The live version, None once the host is gone.
    fn live_version(&self) -> Option<u64>;

    /// Why the service says it is unhealthy, while it does (published in its registry entry).
    fn unhealthy(&self) -> Option<String>;
}

/// Starts following every record after `after` when the history is a shared store (nothing for
/// SQLite). The host's overrides were read before `after` was, so it starts with one take-in.
pub(crate) fn follow_peers(database: &HistoryDatabase, after: u64, peer: impl Peer) -> Result<(), Error> {
    let Some(store) = database.etcd().cloned() else { return Ok(()) };
    let link = database.link().clone();
    link.behind.store(true, Ordering::SeqCst);
    std::thread::Builder::new()
        .name("potter-follow".into())
        .spawn(move || follow(&store, &link, after, &peer))
        .map_err(|e| Error::io("the thread following the shared store", e))?;
    Ok(())
}

fn follow(store: &Arc<EtcdStore>, link: &StoreLink, after: u64, peer: &impl Peer) {
    let follower = store.follow(after);
    let mut wait = IDLE;
    loop {
        // Everything already delivered is handled before one take-in for all of it.
        while let Some(event) = follower.next_timeout(wait) {
            wait = Duration::ZERO;
            note(link, event);
        }
        wait = IDLE;
        if link.behind.swap(false, Ordering::SeqCst) {
            match peer.resync() {
                None => return,
                Some(Ok(true)) => {}
                Some(Ok(false)) => link.behind.store(true, Ordering::SeqCst),
                Some(Err(Error::History(error))) => {
                    // The store itself failed (unreachable): try again at the next look. Said once
                    // per outage (the follower reports the outage itself).
                    if lock(&link.unreachable).is_none() {
                        tracing::warn!(%error, "cannot take in a change recorded by another host yet");
                    }
                    link.behind.store(true, Ordering::SeqCst);
                }
                Some(Err(error)) => {
                    // A change the others accepted that this host cannot validate: its last good
                    // snapshot stays live, and the refusal is published (health, registry).
                    let refusal = format!("version {}: {}", store_version(store), error.diagnostics().join("; "));
                    tracing::warn!(%refusal, "refused a change recorded by another host; the previous configuration stays live");
                    *lock(&link.last_refusal) = Some(refusal);
                    *lock(&link.refused_version) = store.latest_version().ok();
                }
            }
        }
        let Some(version) = peer.live_version() else { return };
        publish_entry(link, version, peer.unhealthy());
    }
}

/// Takes one follower event into the link's state.
fn note(link: &StoreLink, event: FollowEvent) {
    match event {
        FollowEvent::Record(record) => {
            link.advance_mirror(&record);
            let mut own = lock(&link.own_versions);
            // Versions are delivered in order: anything of ours below this one was delivered too.
            let ours = own.remove(&record.version);
            own.retain(|&version| version > record.version);
            drop(own);
            if !ours {
                *lock(&link.latest_peer_record) = Some(record);
                link.behind.store(true, Ordering::SeqCst);
            }
        }
        FollowEvent::Interrupted(why) => {
            tracing::warn!(%why, "the shared store is unreachable; serving the last good configuration");
            link.drop_mirror();
            *lock(&link.unreachable) = Some(why);
        }
        FollowEvent::Resumed { after_version, compacted } => {
            tracing::info!(after_version, compacted, "following the shared store again");
            link.drop_mirror();
            *lock(&link.unreachable) = None;
            link.behind.store(true, Ordering::SeqCst);
        }
    }
}

use potter_history::HistoryStore as _;

fn store_version(store: &EtcdStore) -> String {
    store.latest_version().map_or_else(|_| "?".to_owned(), |version| version.to_string())
}

/// Republishes the registry entry when what it says changed (the live version, a refusal, the
/// service's own health report).
pub(crate) fn publish_entry(link: &StoreLink, version: u64, unhealthy: Option<String>) {
    let registration = lock(&link.registration);
    let Some(registration) = registration.as_ref() else { return };
    let mut published = lock(&link.instance);
    let Some(info) = published.as_mut() else { return };
    let refusal = lock(&link.last_refusal).clone();
    let refused_version = *lock(&link.refused_version);
    if info.version == version && info.last_refusal == refusal && info.unhealthy == unhealthy {
        return;
    }
    let next = InstanceInfo { version, last_refusal: refusal, refused_version, unhealthy, ..info.clone() };
    // A failure (store unreachable) is retried at the next look: `published` keeps the old entry.
    if registration.update(&next).is_ok() {
        *info = next;
    }
}
