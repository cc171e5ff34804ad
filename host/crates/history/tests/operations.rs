//! Each store operation against a real SQLite file.

use crate::common;

use std::sync::{Arc, Barrier};

use common::*;
use potter_history::{
    HistoryError, HistoryQuery, HistoryStore, RecordedChange, NewChange, ChangeOrigin, OverrideOp, Retention,
    SqliteStore, StoredValue,
};
use serde_json::json;

#[test]
fn empty_history_has_version_zero() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).unwrap();
    assert_eq!(store.latest_version().unwrap(), 0);
    assert_eq!(store.key_version("prod", "db.host").unwrap(), 0);
    assert!(store.overrides("prod").unwrap().is_empty());
    assert_eq!(store.get(1).unwrap(), None);
}

#[test]
fn append_assigns_increasing_versions_and_get_returns_the_full_record() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_764_244_800_123); // 2025-11-27T12:00:00.123Z
    let store = open_with_clock(&db_path(&dir), clock);
    let first = store
        .append(
            NewChange::new("cli:alice", ChangeOrigin::Cli, "prod")
                .reason("bigger pool")
                .change("db.pool", plain(json!(10)), plain(json!(20)))
                .change("db.host", None, plain(json!("db1")))
                .set_override("db.pool", StoredValue::plain(json!(20))),
        )
        .unwrap();
    let second = store.append(simple("staging", "cache.ttl", 5)).unwrap();
    assert_eq!((first, second), (1, 2));
    assert_eq!(store.latest_version().unwrap(), 2);

    let record = store.get(first).unwrap().unwrap();
    assert_eq!(record.version, 1);
    assert_eq!(record.actor, "cli:alice");
    assert_eq!(record.origin, ChangeOrigin::Cli);
    assert_eq!(record.env, "prod");
    assert_eq!(record.reason.as_deref(), Some("bigger pool"));
    assert_eq!(record.timestamp_ms, 1_764_244_800_123);
    assert_eq!(record.timestamp_rfc3339(), "2025-11-27T12:00:00.123Z");
    assert_eq!(record.keys, ["db.pool", "db.host"]);
    let payload = record.payload.unwrap();
    assert_eq!(
        payload.changes,
        [
            RecordedChange {
                key: "db.pool".into(),
                before: plain(json!(10)),
                after: plain(json!(20))
            },
            RecordedChange {
                key: "db.host".into(),
                before: None,
                after: plain(json!("db1"))
            },
        ]
    );
    assert_eq!(
        payload.override_ops,
        [OverrideOp::Set {
            key: "db.pool".into(),
            value: StoredValue::plain(json!(20))
        }]
    );
}

#[test]
fn origin_round_trips_through_text() {
    for origin in ChangeOrigin::RECORDED {
        assert_eq!(origin.as_str().parse::<ChangeOrigin>().unwrap(), origin);
    }
    assert!("cron"
        .parse::<ChangeOrigin>()
        .unwrap_err()
        .to_string()
        .contains("cron"));
}

#[test]
fn key_version_is_the_latest_change_of_that_key_in_that_environment() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).unwrap();
    store.append(simple("prod", "a", 1)).unwrap();
    store.append(simple("prod", "b", 1)).unwrap();
    store.append(simple("staging", "a", 1)).unwrap();
    store.append(simple("prod", "a", 2)).unwrap();
    assert_eq!(store.key_version("prod", "a").unwrap(), 4);
    assert_eq!(store.key_version("prod", "b").unwrap(), 2);
    assert_eq!(store.key_version("staging", "a").unwrap(), 3);
    assert_eq!(store.key_version("staging", "b").unwrap(), 0);
}

#[test]
fn overrides_follow_set_and_remove_operations_and_keep_null_as_delete() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).unwrap();
    store.append(set("prod", "a", None, json!(1))).unwrap();
    store.append(set("prod", "b", None, json!(null))).unwrap();
    store
        .append(set("prod", "a", Some(json!(1)), json!({"x": [1, 2]})))
        .unwrap();
    store.append(set("staging", "a", None, json!("s"))).unwrap();
    let overrides = store.overrides("prod").unwrap();
    assert_eq!(overrides.len(), 2);
    assert_eq!(overrides["a"], StoredValue::plain(json!({"x": [1, 2]})));
    assert_eq!(overrides["b"], StoredValue::Plain(json!(null)));

    store
        .append(
            NewChange::new("cli:bob", ChangeOrigin::Cli, "prod")
                .change("a", plain(json!({"x": [1, 2]})), None)
                .remove_override("a"),
        )
        .unwrap();
    assert_eq!(
        store.overrides("prod").unwrap().keys().collect::<Vec<_>>(),
        ["b"]
    );
    assert_eq!(
        store.overrides("staging").unwrap()["a"],
        StoredValue::plain(json!("s"))
    );
}

#[test]
fn overrides_and_versions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .append(set("prod", "feature.flag", None, json!(true)))
            .unwrap();
        store
            .append(set("prod", "db.pool", None, json!(30)))
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let overrides = store.overrides("prod").unwrap();
    assert_eq!(overrides["feature.flag"], StoredValue::plain(json!(true)));
    assert_eq!(overrides["db.pool"], StoredValue::plain(json!(30)));
    assert_eq!(store.latest_version().unwrap(), 2);
    assert_eq!(
        store.append(simple("prod", "x", 1)).unwrap(),
        3,
        "versions continue after a restart"
    );
}

#[test]
fn each_override_keeps_the_version_that_set_it_across_sets_removals_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    {
        let store = SqliteStore::open(&path).unwrap();
        store.append(set("prod", "a", None, json!(1))).unwrap();
        store.append(set("prod", "b", None, json!(2))).unwrap();
        store.append(set("prod", "a", Some(json!(1)), json!(3))).unwrap();
        store.append(set("staging", "a", None, json!("s"))).unwrap();
        store
            .append(NewChange::new("cli:bob", ChangeOrigin::Cli, "prod").change("b", plain(json!(2)), None).remove_override("b"))
            .unwrap();
        store.append(set("prod", "b", None, json!(4))).unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let prod = store.override_versions("prod").unwrap();
    assert_eq!(prod.into_iter().collect::<Vec<_>>(), [("a".to_owned(), 3), ("b".to_owned(), 6)]);
    let recorded = store.overrides_with_version(&["prod".to_owned(), "staging".to_owned()]).unwrap();
    assert_eq!(recorded.version, 6);
    assert_eq!(recorded.set_at["staging"]["a"], 4);
    assert_eq!(recorded.values["prod"]["b"], StoredValue::plain(json!(4)));
}

#[test]
fn a_version_2_database_gets_each_override_the_version_of_its_last_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    {
        let store = SqliteStore::open(&path).unwrap();
        store.append(set("prod", "a", None, json!(1))).unwrap();
        store.append(set("prod", "b", None, json!(2))).unwrap();
        store.append(set("prod", "a", Some(json!(1)), json!(3))).unwrap();
    }
    {
        // What a version 2 file looks like: overrides without the version that set them.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("ALTER TABLE overrides DROP COLUMN version; PRAGMA user_version = 2;").unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let prod = store.override_versions("prod").unwrap();
    assert_eq!(prod.into_iter().collect::<Vec<_>>(), [("a".to_owned(), 3), ("b".to_owned(), 2)]);
    assert_eq!(store.append(set("prod", "b", Some(json!(2)), json!(5))).unwrap(), 4);
    assert_eq!(store.override_versions("prod").unwrap()["b"], 4, "new sets record their version");
}

#[test]
fn compare_and_set_conflict_records_nothing_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).unwrap();
    let seen = store
        .append(set("prod", "db.pool", None, json!(10)))
        .unwrap();
    store
        .append(set("prod", "db.pool", Some(json!(10)), json!(15)))
        .unwrap();

    let stale =
        set("prod", "db.pool", Some(json!(10)), json!(99)).expect_unchanged_since("db.pool", seen);
    let error = store.append(stale).unwrap_err();
    assert_eq!(
        error,
        HistoryError::Conflict {
            env: "prod".into(),
            key: "db.pool".into(),
            expected: 1,
            actual: 2
        }
    );
    assert!(error.to_string().contains("db.pool"), "{error}");
    assert_eq!(store.latest_version().unwrap(), 2);
    assert_eq!(
        store.overrides("prod").unwrap()["db.pool"],
        StoredValue::plain(json!(15))
    );

    let fresh =
        set("prod", "db.pool", Some(json!(15)), json!(20)).expect_unchanged_since("db.pool", 2);
    assert_eq!(store.append(fresh).unwrap(), 3);
}

#[test]
fn compare_and_set_on_an_untouched_key_expects_version_zero() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).unwrap();
    store.append(simple("prod", "other", 1)).unwrap();
    assert!(store
        .append(simple("prod", "new", 1).expect_unchanged_since("new", 0))
        .is_ok());
    assert!(matches!(
        store.append(simple("prod", "new", 2).expect_unchanged_since("new", 0)),
        Err(HistoryError::Conflict { actual: 2, .. })
    ));
}

#[test]
fn concurrent_compare_and_set_lets_exactly_one_writer_win_and_others_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(db_path(&dir)).unwrap());
    let seen = store.append(simple("prod", "contended", 0)).unwrap();
    let threads = 16;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let contended = store.append(
                    simple("prod", "contended", i as i64).expect_unchanged_since("contended", seen),
                );
                let independent = store.append(simple("prod", &format!("own.{i}"), i as i64));
                (contended, independent)
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|handle| handle.join().unwrap())
        .collect();
    let winners = results
        .iter()
        .filter(|(contended, _)| contended.is_ok())
        .count();
    assert_eq!(winners, 1, "{results:?}");
    assert!(results.iter().all(|(contended, _)| contended.is_ok()
        || matches!(contended, Err(HistoryError::Conflict { .. }))));
    assert!(
        results.iter().all(|(_, independent)| independent.is_ok()),
        "a conflict must not fail other changes"
    );
    assert_eq!(store.latest_version().unwrap(), 1 + 1 + threads as u64);
}

#[test]
fn append_all_commits_every_change_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).unwrap();
    store.append(simple("prod", "a", 1)).unwrap();
    let versions = store
        .append_all(vec![simple("prod", "b", 1), simple("staging", "c", 1)])
        .unwrap();
    assert_eq!(versions, [2, 3]);

    let error = store
        .append_all(vec![
            simple("prod", "d", 1),
            simple("prod", "a", 2).expect_unchanged_since("a", 0),
        ])
        .unwrap_err();
    assert!(matches!(error, HistoryError::Conflict { .. }), "{error}");
    assert_eq!(store.latest_version().unwrap(), 3);
    assert!(!store.overrides("prod").unwrap().contains_key("d"));
    assert_eq!(
        store.append(simple("prod", "e", 1)).unwrap(),
        4,
        "a rolled-back version is not skipped"
    );
}

#[test]
fn malformed_changes_are_rejected_before_recording() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).unwrap();
    let cases = [
        NewChange::new("", ChangeOrigin::Cli, "prod").change("a", None, plain(json!(1))),
        NewChange::new("cli:alice", ChangeOrigin::Cli, "").change("a", None, plain(json!(1))),
        NewChange::new("cli:alice", ChangeOrigin::Cli, "prod"),
        NewChange::new("cli:alice", ChangeOrigin::Cli, "prod")
            .change("a", None, plain(json!(1)))
            .change("a", None, plain(json!(2))),
        NewChange::new("cli:alice", ChangeOrigin::Cli, "prod").change("", None, plain(json!(1))),
    ];
    for case in cases {
        assert!(matches!(
            store.append(case),
            Err(HistoryError::InvalidChange(_))
        ));
    }
    assert_eq!(store.latest_version().unwrap(), 0);
}

#[test]
fn query_filters_by_env_actor_since_and_limit_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(1_000);
    let store = open_with_clock(&db_path(&dir), clock.clone());
    for (n, (env, actor)) in [
        ("prod", "cli:alice"),
        ("prod", "cli:bob"),
        ("staging", "cli:alice"),
        ("prod", "cli:alice"),
    ]
    .into_iter()
    .enumerate()
    {
        clock.set(1_000 * (n as i64 + 1));
        store
            .append(NewChange::new(actor, ChangeOrigin::Cli, env).change("k", None, plain(json!(n))))
            .unwrap();
    }
    let versions = |query: HistoryQuery| {
        store
            .query(&query)
            .unwrap()
            .iter()
            .map(|r| r.version)
            .collect::<Vec<_>>()
    };
    assert_eq!(versions(HistoryQuery::new()), [4, 3, 2, 1]);
    assert_eq!(versions(HistoryQuery::new().env("prod")), [4, 2, 1]);
    assert_eq!(versions(HistoryQuery::new().actor("cli:alice")), [4, 3, 1]);
    assert_eq!(versions(HistoryQuery::new().since_ms(2_000)), [4, 3, 2]);
    assert_eq!(
        versions(
            HistoryQuery::new()
                .env("prod")
                .actor("cli:alice")
                .since_ms(2_000)
        ),
        [4]
    );
    assert_eq!(versions(HistoryQuery::new().limit(2)), [4, 3]);
    assert_eq!(versions(HistoryQuery::new().limit(0)), Vec::<u64>::new());
}

#[test]
fn key_prefix_query_matches_by_range_with_wildcard_characters_taken_literally() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).unwrap();
    let keys = [
        "db.host",
        "db.port",
        "dbx",
        "db_pool",
        "dbApool",
        "db%",
        "cache.ttl",
        "db.replica.host",
    ];
    for (n, key) in keys.iter().enumerate() {
        store.append(simple("prod", key, n as i64)).unwrap();
    }
    store.append(simple("staging", "db.host", 9)).unwrap();
    let keys_of = |query: HistoryQuery| {
        store
            .query(&query)
            .unwrap()
            .iter()
            .map(|r| r.keys[0].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys_of(HistoryQuery::new().env("prod").key_prefix("db.")),
        ["db.replica.host", "db.port", "db.host"]
    );
    assert_eq!(
        keys_of(HistoryQuery::new().env("prod").key_prefix("db_")),
        ["db_pool"]
    );
    assert_eq!(
        keys_of(HistoryQuery::new().env("prod").key_prefix("db%")),
        ["db%"]
    );
    assert_eq!(
        keys_of(HistoryQuery::new().key_prefix("db.host")),
        ["db.host", "db.host"]
    );
    assert_eq!(
        keys_of(HistoryQuery::new().env("prod").key_prefix("db.").limit(2)),
        ["db.replica.host", "db.port"]
    );
    assert_eq!(
        keys_of(HistoryQuery::new().env("prod").key_prefix("").limit(3)),
        ["db.replica.host", "cache.ttl", "db%"]
    );
    assert!(keys_of(HistoryQuery::new().env("prod").key_prefix("zzz")).is_empty());
}

#[test]
fn key_prefix_query_returns_a_record_once_even_if_several_keys_match() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).unwrap();
    store
        .append(
            NewChange::new("a", ChangeOrigin::File, "prod")
                .change("db.a", None, plain(json!(1)))
                .change("db.b", None, plain(json!(1))),
        )
        .unwrap();
    store.append(simple("prod", "db.c", 1)).unwrap();
    let found = store
        .query(
            &HistoryQuery::new()
                .env("prod")
                .key_prefix("db.")
                .since_ms(0),
        )
        .unwrap();
    assert_eq!(found.iter().map(|r| r.version).collect::<Vec<_>>(), [2, 1]);
    let by_actor = store
        .query(&HistoryQuery::new().key_prefix("db.").actor("a"))
        .unwrap();
    assert_eq!(by_actor.iter().map(|r| r.version).collect::<Vec<_>>(), [1]);
}

#[test]
fn changes_after_lists_later_records_of_that_environment_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).unwrap();
    store.append(simple("prod", "a", 1)).unwrap();
    store.append(simple("prod", "a", 2)).unwrap();
    store.append(simple("staging", "a", 3)).unwrap();
    store.append(simple("prod", "b", 4)).unwrap();
    let after = store.changes_after("prod", 1).unwrap();
    assert_eq!(after.iter().map(|r| r.version).collect::<Vec<_>>(), [2, 4]);
    assert!(after.iter().all(|r| r.payload.is_some()));
    assert!(store.changes_after("prod", 4).unwrap().is_empty());
}

#[test]
fn prune_keep_versions_keeps_audit_lines_and_drops_old_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).unwrap();
    for n in 1..=10 {
        store
            .append(set("prod", &format!("k{n}"), None, json!(n)).reason(format!("reason {n}")))
            .unwrap();
    }
    let report = store.prune(Retention::KeepVersions(3)).unwrap();
    assert_eq!((report.pruned_through, report.records_pruned), (7, 7));
    assert_eq!(store.pruned_through().unwrap(), 7);

    let old = store.get(7).unwrap().unwrap();
    assert!(old.is_pruned());
    assert_eq!(
        (old.actor.as_str(), old.env.as_str(), old.origin),
        ("cli:alice", "prod", ChangeOrigin::Cli)
    );
    assert_eq!(old.keys, ["k7"], "the audit line keeps which keys changed");
    assert_eq!(old.reason.as_deref(), Some("reason 7"));
    assert!(store.get(8).unwrap().unwrap().payload.is_some());
    assert_eq!(
        store
            .query(&HistoryQuery::new().key_prefix("k1"))
            .unwrap()
            .len(),
        2,
        "k1 and k10 still found"
    );

    assert!(matches!(
        store.changes_after("prod", 6),
        Err(HistoryError::PayloadPruned {
            requested: 6,
            pruned_through: 7
        })
    ));
    assert_eq!(store.changes_after("prod", 7).unwrap().len(), 3);
    assert_eq!(
        store.overrides("prod").unwrap().len(),
        10,
        "prune never touches the current overrides"
    );

    assert_eq!(
        store
            .prune(Retention::KeepVersions(5))
            .unwrap()
            .records_pruned,
        0,
        "prune never un-prunes"
    );
    assert_eq!(
        store.append(simple("prod", "after", 1)).unwrap(),
        11,
        "versions are never reused"
    );
}

#[test]
fn prune_keep_days_drops_payloads_older_than_the_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let day = 86_400_000;
    let clock = ManualClock::at(100 * day);
    let store = open_with_clock(&db_path(&dir), clock.clone());
    for n in 0..5 {
        clock.set((100 + n) * day);
        store.append(simple("prod", "k", n)).unwrap();
    }
    clock.set(105 * day);
    let report = store.prune(Retention::KeepDays(2)).unwrap();
    assert_eq!(
        report.pruned_through, 3,
        "records from days 100..=102 are older than 2 days"
    );
    assert!(store.get(3).unwrap().unwrap().is_pruned());
    assert!(!store.get(4).unwrap().unwrap().is_pruned());
}

#[test]
fn a_clock_going_backwards_keeps_versions_increasing_and_ordering_by_version() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(50_000);
    let store = open_with_clock(&db_path(&dir), clock.clone());
    store.append(simple("prod", "a", 1)).unwrap();
    clock.set(10_000);
    store.append(simple("prod", "a", 2)).unwrap();
    clock.set(-5_000);
    store.append(simple("prod", "a", 3)).unwrap();
    let records = store.query(&HistoryQuery::new().env("prod")).unwrap();
    assert_eq!(
        records.iter().map(|r| r.version).collect::<Vec<_>>(),
        [3, 2, 1]
    );
    assert_eq!(
        records.iter().map(|r| r.timestamp_ms).collect::<Vec<_>>(),
        [-5_000, 10_000, 50_000]
    );
    assert_eq!(records[0].timestamp_rfc3339(), "1969-12-31T23:59:55.000Z");
    assert_eq!(store.key_version("prod", "a").unwrap(), 3);
    assert_eq!(
        store
            .changes_after("prod", 0)
            .unwrap()
            .iter()
            .map(|r| r.version)
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[test]
fn a_foreign_sqlite_database_is_refused_not_extended() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE invoices(id INTEGER)")
        .unwrap();
    let error = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(error, HistoryError::Incompatible { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("other.db"), "{error}");
}

#[test]
fn open_in_state_dir_uses_history_db() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in_state_dir(dir.path().join("state")).unwrap();
    assert_eq!(store.path(), dir.path().join("state").join("history.db"));
    store.append(simple("prod", "a", 1)).unwrap();
    assert!(store.path().exists());
}

#[test]
fn the_store_works_behind_a_shared_trait_object() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn HistoryStore> = Arc::new(SqliteStore::open(db_path(&dir)).unwrap());
    let writer = Arc::clone(&store);
    let version = std::thread::spawn(move || writer.append(simple("prod", "a", 1)).unwrap())
        .join()
        .unwrap();
    assert_eq!(store.get(version).unwrap().unwrap().keys, ["a"]);
}

#[test]
fn a_refused_request_queued_among_others_undoes_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(db_path(&dir)).unwrap();
    let seen = store.append(set("prod", "db.pool", None, json!(10))).unwrap();
    store.append(set("prod", "db.pool", Some(json!(10)), json!(15))).unwrap();

    // Queued back to back so that the writer commits them together (however it groups them,
    // each outcome must be the same): plain requests, which take no savepoint, around one whose
    // second environment's compare-and-set fails after its first was written.
    let before = store.append_all_queued(vec![set("prod", "cache.ttl", None, json!(1))]).unwrap();
    let refused = store
        .append_all_queued(vec![
            set("staging", "db.pool", None, json!(7)),
            set("prod", "db.pool", Some(json!(15)), json!(99)).expect_unchanged_since("db.pool", seen),
        ])
        .unwrap();
    let after = store.append_all_queued(vec![set("prod", "cache.ttl", Some(json!(1)), json!(2)), set("staging", "cache.ttl", None, json!(3))]).unwrap();

    assert_eq!(before.wait().unwrap(), [3]);
    assert!(matches!(refused.wait(), Err(HistoryError::Conflict { .. })));
    assert_eq!(after.wait().unwrap(), [4, 5]);
    assert_eq!(store.overrides("prod").unwrap()["db.pool"], StoredValue::plain(json!(15)));
    assert_eq!(store.overrides("prod").unwrap()["cache.ttl"], StoredValue::plain(json!(2)));
    assert!(!store.overrides("staging").unwrap().contains_key("db.pool"), "the refused request's first environment is undone");
    assert_eq!(store.overrides("staging").unwrap()["cache.ttl"], StoredValue::plain(json!(3)));
    assert_eq!(store.latest_version().unwrap(), 5);
}
