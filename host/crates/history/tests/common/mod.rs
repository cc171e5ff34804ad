//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use potter_history::{
    Clock, HistoryStore, NewChange, ChangeOrigin, OverrideOp, SqliteOptions, SqliteStore, StoredValue,
};
use serde_json::{json, Value};

pub fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("state").join("history.db")
}

pub fn plain(value: Value) -> Option<StoredValue> {
    Some(StoredValue::Plain(value))
}

/// A change of `key` in `env` from `before` to `after`, also set as the override.
pub fn set(env: &str, key: &str, before: Option<Value>, after: Value) -> NewChange {
    NewChange::new("cli:alice", ChangeOrigin::Cli, env)
        .change(key, before.map(StoredValue::Plain), plain(after.clone()))
        .set_override(key, StoredValue::Plain(after))
}

pub fn simple(env: &str, key: &str, n: i64) -> NewChange {
    set(env, key, None, json!(n))
}

/// A clock the test moves by hand (including backwards).
#[derive(Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(ms: i64) -> Arc<Self> {
        Arc::new(ManualClock(AtomicI64::new(ms)))
    }

    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub fn open_with_clock(path: &Path, clock: Arc<ManualClock>) -> SqliteStore {
    SqliteStore::open_with(
        path,
        SqliteOptions {
            clock,
            ..SqliteOptions::default()
        },
    )
    .unwrap()
}

/// The override set of `env` obtained by replaying every record's override operations in order.
pub fn replay_overrides(store: &SqliteStore, env: &str) -> BTreeMap<String, StoredValue> {
    let mut replayed = BTreeMap::new();
    for record in store.changes_after(env, 0).unwrap() {
        for op in record.payload.expect("payload kept").override_ops {
            match op {
                OverrideOp::Set { key, value } => {
                    replayed.insert(key, value);
                }
                OverrideOp::Remove { key } => {
                    replayed.remove(&key);
                }
            }
        }
    }
    replayed
}

pub fn driver() -> &'static str {
    env!("CARGO_BIN_EXE_history-crash-driver")
}
