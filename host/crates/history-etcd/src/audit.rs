//! The server's audit log in etcd: `P/audit/<id, 20 digits>`, ids from the counter `P/audit_id`
//! (the same guarded-transaction pattern as versions, so ids are unique and increasing across
//! every host on the prefix). Separate from the change history, as in the SQLite store.

use std::sync::mpsc;

use etcd_client::{Compare, CompareOp, GetOptions, SortOrder, SortTarget, Txn, TxnOp};
use potter_history::{AuditEntry, AuditQuery, AuditStore, NewAuditEntry, Result};
use serde::{Deserialize, Serialize};

use crate::parse_u64;

#[derive(Serialize, Deserialize)]
struct StoredAudit {
    timestamp_ms: i64,
    #[serde(flatten)]
    entry: NewAuditEntry,
}

impl crate::EtcdStore {
    /// Appends audit lines; returns once etcd committed them.
    pub fn append_audit(&self, entries: Vec<NewAuditEntry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let counter = self.key("audit_id");
        for _attempt in 0..crate::MAX_ATTEMPTS {
            let current = self.get_one(counter.clone())?;
            let (mut id, revision) = match &current {
                None => (0, 0),
                Some(kv) => (
                    parse_u64(kv.value()).ok_or_else(|| self.decode_error(0, "counter", "audit_id"))?,
                    kv.mod_revision(),
                ),
            };
            let now = self.clock.now_ms();
            let mut writes = Vec::new();
            for entry in &entries {
                id += 1;
                let stored = StoredAudit { timestamp_ms: now, entry: entry.clone() };
                writes.push(TxnOp::put(self.key(&format!("audit/{id:020}")), crate::to_json(&stored), None));
            }
            writes.push(TxnOp::put(counter.clone(), id.to_string(), None));
            let guard = Compare::mod_revision(counter.clone(), CompareOp::Equal, revision);
            let committed = self.call((guard, writes), move |mut client, (guard, writes)| async move {
                client.txn(Txn::new().when(vec![guard]).and_then(writes)).await
            })?;
            if committed.succeeded() {
                return Ok(());
            }
        }
        Err(self.storage("gave up recording audit lines after losing the race to other hosts; nothing was recorded"))
    }

    /// Audit lines matching the filters, newest first.
    pub fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let mut found = Vec::new();
        if query.limit == 0 {
            return Ok(found);
        }
        let (start, mut end) = (self.key("audit/"), self.key(&format!("audit/{:020}", u64::MAX)));
        loop {
            let (low, high) = (start.clone(), end.clone());
            let response = self.call((low, high), move |mut client, (low, high)| async move {
                let options = GetOptions::new()
                    .with_range(high)
                    .with_sort(SortTarget::Key, SortOrder::Descend)
                    .with_limit(crate::PAGE);
                client.get(low, Some(options)).await
            })?;
            for kv in response.kvs() {
                let key = kv.key_str().unwrap_or_default();
                let id = key.rsplit('/').next().and_then(|digits| digits.parse().ok()).unwrap_or(0);
                let stored: StoredAudit = serde_json::from_slice(kv.value())
                    .map_err(|error| self.decode_error(id, "audit line", error))?;
                let matches = query.actor.as_ref().is_none_or(|actor| &stored.entry.actor == actor)
                    && query.env.as_ref().is_none_or(|env| stored.entry.env.as_ref() == Some(env))
                    && query.min_status.is_none_or(|status| stored.entry.status >= status);
                if matches {
                    found.push(AuditEntry { id, timestamp_ms: stored.timestamp_ms, entry: stored.entry });
                    if found.len() >= query.limit {
                        return Ok(found);
                    }
                }
            }
            match response.kvs().last() {
                Some(last) if response.more() => end = last.key().to_vec(),
                _ => return Ok(found),
            }
        }
    }
}

impl AuditStore for crate::EtcdStore {
    fn append_audit(&self, entries: Vec<NewAuditEntry>) -> Result<()> {
        crate::EtcdStore::append_audit(self, entries)
    }

    /// Hands the lines to one background thread of this store (started on first use), which
    /// commits them in order; a failure is logged on stderr, as SQLite's writer does.
    fn queue_audit(&self, entries: Vec<NewAuditEntry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut queue = self.audit_queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let sender = queue.get_or_insert_with(|| {
            let (sender, lines) = mpsc::channel::<Vec<NewAuditEntry>>();
            let writer = self.twin();
            let _ = std::thread::Builder::new().name("potter-etcd-audit".into()).spawn(move || {
                for batch in lines {
                    if let Err(error) = writer.append_audit(batch) {
                        eprintln!("audit lines not recorded: {error}");
                    }
                }
            });
            sender
        });
        sender
            .send(entries)
            .map_err(|_| self.storage("the audit writer stopped; the lines were not recorded"))
    }

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        crate::EtcdStore::audit(self, query)
    }
}
