//! Following the records other hosts commit: every record after a version, in version order,
//! without gaps, resuming after a disconnect and after etcd compacted the revision it watched from.
//!
//! Resumption does not depend on etcd's event history: after any interruption the follower reads
//! the records after the last version it delivered (a plain range read of current keys, which
//! compaction never removes) and watches from the revision of that read. A watch that etcd cancels
//! because its start revision was compacted is just another interruption.

use std::sync::mpsc;
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, KeyValue, SortOrder, SortTarget, WatchOptions};
use potter_history::Record;

use crate::StoredRecord;

/// What a follower reports, in order.
#[derive(Debug, Clone)]
pub enum FollowEvent {
    /// The next record (its version is one more than the previous record's).
    Record(Record),
    /// The watch ended (etcd unreachable, stream closed, start revision compacted); the follower
    /// keeps retrying with a back-off and reports [`FollowEvent::Resumed`] when it is caught up.
    Interrupted(String),
    /// Caught up again after an interruption, by reading every record after `after_version`.
    /// `compacted`: etcd had compacted the revision the follower was watching from.
    Resumed { after_version: u64, compacted: bool },
}

/// A running follower; dropping it stops the watch.
pub struct Follower {
    events: mpsc::Receiver<FollowEvent>,
    task: tokio::task::AbortHandle,
}

impl Follower {
    /// The next event, waiting at most `timeout`.
    pub fn next_timeout(&self, timeout: Duration) -> Option<FollowEvent> {
        self.events.recv_timeout(timeout).ok()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl crate::EtcdStore {
    /// Starts following every record after `after_version` (0: from the first).
    pub fn follow(&self, after_version: u64) -> Follower {
        let (sender, events) = mpsc::channel();
        let follow = Follow {
            client: self.client.clone(),
            record_prefix: self.key("record/"),
            start: self.record_key(0),
            end: self.record_key(u64::MAX),
            last: after_version,
            sender,
        };
        let task = self.runtime.spawn(follow.run()).abort_handle();
        Follower { events, task }
    }
}

struct Follow {
    client: Client,
    record_prefix: Vec<u8>,
    start: Vec<u8>,
    end: Vec<u8>,
    last: u64,
    sender: mpsc::Sender<FollowEvent>,
}

/// Why one watch ended.
enum Ended {
    Interrupted(String),
    Compacted,
    /// A record arrived out of order (or the receiver went away): read again from `last`.
    Gap,
}

impl Follow {
    async fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        let mut resuming: Option<bool> = None;
        loop {
            let revision = match self.catch_up().await {
                Ok(revision) => revision,
                Err(detail) => {
                    if !self.send(FollowEvent::Interrupted(detail)) {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    resuming.get_or_insert(false);
                    continue;
                }
            };
            if let Some(compacted) = resuming.take() {
                if !self.send(FollowEvent::Resumed { after_version: self.last, compacted }) {
                    return;
                }
            }
            backoff = Duration::from_millis(100);
            match self.watch_from(revision + 1).await {
                Ended::Gap => {}
                Ended::Compacted => {
                    if !self.send(FollowEvent::Interrupted("watched revision was compacted".to_owned())) {
                        return;
                    }
                    resuming = Some(true);
                }
                Ended::Interrupted(detail) => {
                    if !self.send(FollowEvent::Interrupted(detail)) {
                        return;
                    }
                    resuming = Some(false);
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    fn send(&self, event: FollowEvent) -> bool {
        self.sender.send(event).is_ok()
    }

    /// Delivers every record after `last` as of one revision, and returns that revision.
    async fn catch_up(&mut self) -> Result<i64, String> {
        let mut low = self.start.clone();
        low.truncate(self.record_prefix.len());
        low.extend_from_slice(format!("{:020}", self.last.saturating_add(1)).as_bytes());
        let mut revision = 0;
        loop {
            let mut options = GetOptions::new()
                .with_range(self.end.clone())
                .with_sort(SortTarget::Key, SortOrder::Ascend)
                .with_limit(256);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let response = tokio::time::timeout(Duration::from_secs(5), self.client.get(low.clone(), Some(options)))
                .await
                .map_err(|_| "etcd did not answer within 5 s".to_owned())?
                .map_err(|error| format!("etcd request failed: {error}"))?;
            if revision == 0 {
                revision = response.header().map_or(0, |header| header.revision());
            }
            for kv in response.kvs() {
                if !self.deliver(kv)? {
                    return Err("a record is missing or unreadable".to_owned());
                }
            }
            match response.kvs().last() {
                Some(last) if response.more() => {
                    low = last.key().to_vec();
                    low.push(0);
                }
                _ => return Ok(revision),
            }
        }
    }

    /// Delivers `kv` if it is the next record; `Ok(false)` if it is not (a gap).
    fn deliver(&mut self, kv: &KeyValue) -> Result<bool, String> {
        let record = serde_json::from_slice::<StoredRecord>(kv.value())
            .map_err(|error| format!("unreadable record {}: {error}", String::from_utf8_lossy(kv.key())))?
            .into_record();
        if record.version <= self.last {
            // Already delivered (a prune rewriting an old record lands here too).
            return Ok(true);
        }
        if record.version != self.last + 1 {
            return Ok(false);
        }
        self.last = record.version;
        if !self.send(FollowEvent::Record(record)) {
            return Err("the follower was dropped".to_owned());
        }
        Ok(true)
    }

    async fn watch_from(&mut self, revision: i64) -> Ended {
        let options = WatchOptions::new().with_prefix().with_start_revision(revision);
        let (_watcher, mut stream) = match self.client.watch(self.record_prefix.clone(), Some(options)).await {
            Ok(pair) => pair,
            Err(error) => return Ended::Interrupted(format!("cannot watch: {error}")),
        };
        loop {
            match stream.message().await {
                Ok(Some(response)) => {
                    if response.compact_revision() > 0 {
                        return Ended::Compacted;
                    }
                    if response.canceled() {
                        return Ended::Interrupted(format!("watch cancelled: {}", response.cancel_reason()));
                    }
                    for event in response.events() {
                        if event.event_type() != EventType::Put {
                            continue;
                        }
                        let Some(kv) = event.kv() else { continue };
                        match self.deliver(kv) {
                            Ok(true) => {}
                            Ok(false) => return Ended::Gap,
                            Err(detail) => return Ended::Interrupted(detail),
                        }
                    }
                }
                Ok(None) => return Ended::Interrupted("the watch stream closed".to_owned()),
                Err(error) => return Ended::Interrupted(format!("the watch failed: {error}")),
            }
        }
    }
}
