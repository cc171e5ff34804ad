//! The server's audit log: lines survive a reopen, come back newest first with their filters,
//! share the group commit with appends, and an older (version 1) database gains the table.

use crate::common;

use common::*;
use potter_history::{AuditQuery, HistoryStore, NewAuditEntry, Retention, SqliteStore};

fn line(actor: &str, status: u16, env: Option<&str>) -> NewAuditEntry {
    NewAuditEntry {
        actor: actor.to_owned(),
        method: "PUT".to_owned(),
        route: "/v1/config/staging/api.timeout".to_owned(),
        env: env.map(str::to_owned),
        key: Some("api.timeout".to_owned()),
        status,
        outcome: if status < 400 {
            "allowed".to_owned()
        } else {
            "denied".to_owned()
        },
    }
}

#[test]
fn audit_lines_are_durable_newest_first_and_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_764_244_800_000);
    {
        let store = open_with_clock(&db_path(&dir), clock.clone());
        store
            .append_audit(vec![line("deploy-bot", 200, Some("staging"))])
            .unwrap();
        clock.set(1_764_244_801_000);
        store
            .append_audit(vec![
                line("anonymous", 401, None),
                line("viewer", 403, Some("production")),
            ])
            .unwrap();
        // Queued lines are committed by the writer before the store closes.
        store
            .queue_audit(vec![line("editor", 200, Some("staging"))])
            .unwrap();
    }
    let store = SqliteStore::open(db_path(&dir)).unwrap();
    let all = store.audit(&AuditQuery::default()).unwrap();
    let actors: Vec<&str> = all.iter().map(|e| e.entry.actor.as_str()).collect();
    assert_eq!(actors, ["editor", "viewer", "anonymous", "deploy-bot"]);
    assert!(all.windows(2).all(|pair| pair[0].id > pair[1].id));
    assert_eq!(all[3].timestamp_ms, 1_764_244_800_000);
    assert_eq!(all[3].timestamp_rfc3339(), "2025-11-27T12:00:00.000Z");
    assert_eq!(all[1].entry, line("viewer", 403, Some("production")));

    let refused = store
        .audit(&AuditQuery {
            min_status: Some(400),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(
        refused.iter().map(|e| e.entry.status).collect::<Vec<_>>(),
        [403, 401]
    );
    let staging = store
        .audit(&AuditQuery {
            env: Some("staging".to_owned()),
            limit: 1,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(staging.len(), 1);
    assert_eq!(staging[0].entry.actor, "editor");
    let bot = store
        .audit(&AuditQuery {
            actor: Some("deploy-bot".to_owned()),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(bot.len(), 1);
    assert!(store
        .audit(&AuditQuery {
            limit: 0,
            ..AuditQuery::default()
        })
        .unwrap()
        .is_empty());
}

#[test]
fn audit_lines_and_appends_commit_together_and_prune_keeps_audit_lines() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(db_path(&dir)).unwrap());
    let writers: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            std::thread::spawn(move || {
                store
                    .append(simple("staging", &format!("k{n}"), n))
                    .unwrap();
                store
                    .append_audit(vec![line(&format!("t{n}"), 200, Some("staging"))])
                    .unwrap();
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    assert_eq!(store.latest_version().unwrap(), 8);
    store.prune(Retention::KeepVersions(0)).unwrap();
    assert_eq!(store.audit(&AuditQuery::default()).unwrap().len(), 8);
    assert!(store.append_audit(Vec::new()).is_ok());
}

#[test]
fn a_version_1_database_gains_the_audit_table_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    {
        let store = SqliteStore::open(&path).unwrap();
        store.append(simple("staging", "a", 1)).unwrap();
    }
    {
        // What a version 1 database looks like: no audit table.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("DROP TABLE audit; PRAGMA user_version = 1;")
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    store
        .append_audit(vec![line("admin", 200, Some("staging"))])
        .unwrap();
    assert_eq!(store.audit(&AuditQuery::default()).unwrap().len(), 1);
    assert_eq!(store.latest_version().unwrap(), 1);
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 3, "migrated to the current schema");
}
