//! SIGKILL at hundreds of points while a separate process appends from several threads: every
//! acknowledged version survives, the file passes `PRAGMA integrity_check`, and the override
//! table equals the replay of the recorded override operations.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use potter_history::{HistoryStore, OverrideOp, SqliteStore, StoredValue};
use serde_json::json;

const KILL_POINTS: u64 = 210;
/// Kill points placed by delay alone, mostly before the first acknowledgement.
const STARTUP_POINTS: u64 = 10;

/// Parses `ack <version> <n>` lines; a line cut by the kill is ignored (it was not fully printed).
fn acknowledged(stdout: &str) -> Vec<(u64, u64)> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("ack ")?.split(' ');
            Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
        })
        .collect()
}

/// Incrementally replays override operations (history is append-only, so earlier records that
/// were already replayed and checked cannot change).
struct Replay {
    through: BTreeMap<&'static str, u64>,
    overrides: BTreeMap<&'static str, BTreeMap<String, StoredValue>>,
}

impl Replay {
    fn check(&mut self, store: &SqliteStore) {
        for env in ["prod", "staging"] {
            let through = self.through.entry(env).or_default();
            let state = self.overrides.entry(env).or_default();
            for record in store.changes_after(env, *through).unwrap() {
                for op in record.payload.unwrap().override_ops {
                    match op {
                        OverrideOp::Set { key, value } => {
                            state.insert(key, value);
                        }
                        OverrideOp::Remove { key } => {
                            state.remove(&key);
                        }
                    }
                }
                *through = record.version;
            }
            assert_eq!(
                &store.overrides(env).unwrap(),
                state,
                "overrides of {env} differ from the replay"
            );
        }
    }
}

#[test]
fn every_acknowledged_change_survives_sigkill_at_hundreds_of_points() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut all_acks: HashMap<u64, u64> = HashMap::new();
    let mut replay = Replay {
        through: BTreeMap::new(),
        overrides: BTreeMap::new(),
    };
    let mut kills_mid_stream = 0;
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for point in 0..KILL_POINTS {
        // The first points land during exec, open and schema creation. The others wait for the
        // first acknowledgement (so a loaded machine cannot push every kill into start-up) and
        // then a scrambled 0 to 30 ms, landing anywhere inside the group commits.
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let during_startup = point < STARTUP_POINTS;
        let delay_us = if during_startup {
            point * 700
        } else {
            (seed >> 33) % 30_000
        };
        let mut child = Command::new(driver())
            .args(["append", path.to_str().unwrap(), "4"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut output = String::new();
        if !during_startup {
            stdout.read_line(&mut output).unwrap();
        }
        std::thread::sleep(Duration::from_micros(delay_us));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        stdout.read_to_string(&mut output).unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(
            !stderr.contains("error"),
            "driver failed at point {point}: {stderr}"
        );
        let stdout = output;
        let acks = acknowledged(&stdout);
        if !acks.is_empty() {
            kills_mid_stream += 1;
        }

        let store = SqliteStore::open(&path).unwrap();
        for &(version, n) in &acks {
            let record = store.get(version).unwrap().unwrap_or_else(|| {
                panic!("acknowledged version {version} lost at kill point {point}")
            });
            let change = &record.payload.unwrap().changes[0];
            assert_eq!(
                change.after,
                Some(StoredValue::plain(json!(n))),
                "version {version} holds another change"
            );
            assert!(
                all_acks.insert(version, n).is_none(),
                "version {version} acknowledged twice"
            );
        }
        assert!(store.latest_version().unwrap() >= all_acks.keys().copied().max().unwrap_or(0));
        store.integrity_check().unwrap();
        replay.check(&store);
    }

    let store = SqliteStore::open(&path).unwrap();
    for (&version, &n) in &all_acks {
        let record = store
            .get(version)
            .unwrap()
            .unwrap_or_else(|| panic!("version {version} lost"));
        assert_eq!(
            record.payload.unwrap().changes[0].after,
            Some(StoredValue::plain(json!(n)))
        );
    }
    eprintln!(
        "{KILL_POINTS} kill points, {kills_mid_stream} while appending, {} changes acknowledged",
        all_acks.len()
    );
    assert!(
        kills_mid_stream >= KILL_POINTS / 2,
        "only {kills_mid_stream} kills landed while appending"
    );
    assert!(
        all_acks.len() > 1000,
        "only {} changes acknowledged in total",
        all_acks.len()
    );
}
