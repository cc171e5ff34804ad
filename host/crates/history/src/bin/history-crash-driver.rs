//! Test driver for the crash-safety and bad-input tests (not a user tool).
//!
//! `history-crash-driver append DB THREADS` appends changes from THREADS threads until killed or
//! until an append fails, printing `ack <version> <n>` (flushed) for every acknowledged version (n numbers the change). On a
//! failure it prints `error <message>` to stderr and exits with status 3.
//!
//! `history-crash-driver hold-lock DB` takes SQLite's write lock on DB, prints `locked` and
//! sleeps until killed: "another process" for the lock test.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use potter_history::{HistoryStore, NewChange, ChangeOrigin, SqliteStore, StoredValue};
use serde_json::json;

/// Keys cycle through a small set so override replay has removals and overwrites to check.
const KEY_COUNT: u64 = 23;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["append", db, threads] => append_until_killed(db, threads.parse().unwrap_or(1)),
        ["hold-lock", db] => hold_lock(db),
        _ => {
            eprintln!("usage: history-crash-driver append DB THREADS | hold-lock DB");
            ExitCode::from(2)
        }
    }
}

/// Change number `n`: key `service.kNN` of `prod` or `staging` set to `n`, its override set or removed.
fn change_number(n: u64) -> NewChange {
    let env = if n.is_multiple_of(3) {
        "staging"
    } else {
        "prod"
    };
    let key = format!("service.k{:02}", n % KEY_COUNT);
    let change = NewChange::new(format!("driver:{}", n % 4), ChangeOrigin::Api, env).change(
        key.clone(),
        Some(StoredValue::plain(json!(n.saturating_sub(1)))),
        Some(StoredValue::plain(json!(n))),
    );
    if n.is_multiple_of(5) {
        change.remove_override(key)
    } else {
        change.set_override(key, StoredValue::plain(json!({ "n": n })))
    }
}

fn append_until_killed(db: &str, threads: u64) -> ExitCode {
    let store = match SqliteStore::open(db) {
        Ok(store) => Arc::new(store),
        Err(error) => {
            eprintln!("error {error}");
            return ExitCode::from(3);
        }
    };
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let store = Arc::clone(&store);
            let next = Arc::clone(&next);
            std::thread::spawn(move || loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                match store.append(change_number(n)) {
                    Ok(version) => {
                        let mut out = std::io::stdout().lock();
                        if writeln!(out, "ack {version} {n}")
                            .and_then(|()| out.flush())
                            .is_err()
                        {
                            return Ok(());
                        }
                    }
                    Err(error) => return Err(error),
                }
            })
        })
        .collect();
    let mut failed = false;
    for worker in workers {
        if let Ok(Err(error)) = worker.join() {
            eprintln!("error {error}");
            failed = true;
        }
    }
    if failed {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

fn hold_lock(db: &str) -> ExitCode {
    let conn = match rusqlite::Connection::open(db) {
        Ok(conn) => conn,
        Err(error) => {
            eprintln!("error {error}");
            return ExitCode::from(3);
        }
    };
    if let Err(error) = conn.execute_batch("BEGIN IMMEDIATE") {
        eprintln!("error {error}");
        return ExitCode::from(3);
    }
    println!("locked");
    let _ = std::io::stdout().flush();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}
