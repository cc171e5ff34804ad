//! Locked database, full disk, corrupt file, planted secret: clear errors, nothing acknowledged
//! that was not recorded, no plaintext in any file.

use crate::common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use potter_history::{
    HistoryError, HistoryQuery, HistoryStore, NewChange, ChangeOrigin, SqliteOptions, SqliteStore,
    StoredValue,
};
use serde_json::json;

fn seeded_store(path: &Path, records: i64) {
    let store = SqliteStore::open(path).unwrap();
    store
        .append_all(
            (0..records)
                .map(|n| simple("prod", &format!("seed.k{}", n % 17), n))
                .collect(),
        )
        .unwrap();
}

#[test]
fn a_database_locked_by_another_process_fails_with_locked_after_the_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    seeded_store(&path, 3);
    let mut holder = Command::new(driver())
        .args(["hold-lock", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");

    let options = SqliteOptions {
        busy_timeout: Duration::from_millis(300),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open_with(&path, options).unwrap();
    let error = store.append(simple("prod", "blocked", 1)).unwrap_err();
    assert_eq!(
        error,
        HistoryError::Locked {
            path: path.clone(),
            waited_ms: 300
        }
    );
    let message = error.to_string();
    assert!(
        message.contains("history.db") && message.contains("locked"),
        "{message}"
    );
    assert_eq!(
        store.latest_version().unwrap(),
        3,
        "reads still work and nothing was recorded"
    );
    assert!(store.key_version("prod", "blocked").unwrap() == 0);

    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(
        store.append(simple("prod", "unblocked", 1)).unwrap(),
        4,
        "the store recovers once the lock is gone"
    );
}

#[test]
fn a_full_disk_fails_appends_clearly_and_loses_no_acknowledged_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    seeded_store(&path, 5);
    let start_size = std::fs::metadata(&path).unwrap().len();
    // A real limit: RLIMIT_FSIZE on the driver process (SIGXFSZ ignored so writes fail with EFBIG
    // instead of killing it). No file of the database may grow past it.
    let limit = start_size + 1024 * 1024;
    let output = Command::new("sh")
        .arg("-c")
        .arg(r#"trap '' XFSZ; exec prlimit --fsize="$1" "$2" append "$3" 4"#)
        .args(["sh", &limit.to_string(), driver(), path.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        output.status.code(),
        Some(3),
        "the driver must stop on a write error; stderr: {stderr}"
    );
    let first_error = stderr
        .lines()
        .find(|line| line.starts_with("error "))
        .expect("an error line");
    assert!(
        first_error.contains("history.db") && first_error.contains("disk full"),
        "{first_error}"
    );

    let acked: Vec<u64> = stdout
        .lines()
        .filter_map(|line| line.split(' ').nth(1)?.parse().ok())
        .collect();
    assert!(
        acked.len() >= 20,
        "the limit should leave room for some changes, got {}",
        acked.len()
    );
    let store = SqliteStore::open(&path).unwrap();
    for version in &acked {
        assert!(
            store.get(*version).unwrap().is_some(),
            "acknowledged version {version} lost"
        );
    }
    store.integrity_check().unwrap();
    for env in ["prod", "staging"] {
        assert_eq!(store.overrides(env).unwrap(), replay_overrides(&store, env));
    }
    let next = store.append(simple("prod", "after.full", 1)).unwrap();
    assert!(
        next > acked.iter().copied().max().unwrap(),
        "versions keep increasing after the failure"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_reported_as_corrupt_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        b"this is not an SQLite database, just text ".repeat(200),
    )
    .unwrap();
    let error = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(error, HistoryError::Corrupt { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&*path.to_string_lossy()),
        "{error}"
    );
}

#[test]
fn damaged_pages_give_corrupt_errors_naming_the_file_and_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    seeded_store(&path, 2000);
    // Closing the last connection checkpoints the WAL into the main file; now damage its middle.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let length = file.metadata().unwrap().len();
    file.seek(SeekFrom::Start(length / 3)).unwrap();
    file.write_all(&vec![0xA5; (length / 3) as usize]).unwrap();
    file.sync_all().unwrap();
    drop(file);

    let mut errors = Vec::new();
    match SqliteStore::open(&path) {
        Err(error) => errors.push(error),
        Ok(store) => {
            let outcomes = [
                store.query(&HistoryQuery::new().limit(5000)).err(),
                store
                    .query(
                        &HistoryQuery::new()
                            .env("prod")
                            .key_prefix("seed.")
                            .limit(5000),
                    )
                    .err(),
                store.changes_after("prod", 0).err(),
                store.integrity_check().err(),
                store.append(simple("prod", "after.damage", 1)).err(),
            ];
            errors.extend(outcomes.into_iter().flatten());
        }
    }
    assert!(!errors.is_empty(), "damage went unnoticed");
    assert!(
        errors
            .iter()
            .any(|error| matches!(error, HistoryError::Corrupt { .. })),
        "{errors:?}"
    );
    for error in &errors {
        assert!(
            error.to_string().contains("history.db"),
            "error does not name the file: {error}"
        );
    }
}

/// Stand-in for the secrets layer: the store must work with whatever opaque text it is given.
fn seal(plaintext: &str) -> StoredValue {
    let ciphertext: String = plaintext
        .bytes()
        .map(|byte| format!("{:02x}", byte ^ 0x5A))
        .collect();
    let fingerprint: String = plaintext
        .bytes()
        .rev()
        .map(|byte| format!("{:02x}", byte.wrapping_mul(31)))
        .collect();
    StoredValue::Secret {
        ciphertext: Some(format!("enc:v1:{ciphertext}")),
        fingerprint: format!("hmac:{fingerprint}"),
    }
}

fn files_containing(dir: &Path, needle: &[u8]) -> HashSet<String> {
    let mut found = HashSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        if bytes.windows(needle.len()).any(|window| window == needle) {
            found.insert(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    found
}

#[test]
fn a_planted_secret_never_reaches_the_database_files_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let state_dir = path.parent().unwrap().to_path_buf();
    let plaintext = "PLANTED-hunter2-correct-horse-7731";
    let old = "PLANTED-old-password-0042";
    let store = SqliteStore::open(&path).unwrap();
    let version = store
        .append(
            NewChange::new("cli:alice", ChangeOrigin::Cli, "prod")
                .change("db.password", Some(seal(old)), Some(seal(plaintext)))
                .set_override("db.password", seal(plaintext)),
        )
        .unwrap();
    let record = store.get(version).unwrap().unwrap();
    assert!(record.payload.as_ref().unwrap().changes[0]
        .after
        .as_ref()
        .unwrap()
        .is_secret());
    assert_eq!(
        record.payload.as_ref().unwrap().changes[0]
            .after
            .as_ref()
            .unwrap()
            .redacted(),
        json!("[secret]")
    );
    assert!(!format!("{record:?}").contains(plaintext));
    assert_eq!(
        store.overrides("prod").unwrap()["db.password"],
        seal(plaintext)
    );

    // While open (the commit sits in the WAL), then after close (checkpointed into history.db).
    let StoredValue::Secret {
        ciphertext: Some(ciphertext),
        ..
    } = seal(plaintext)
    else {
        unreachable!()
    };
    assert!(
        !files_containing(&state_dir, ciphertext.as_bytes()).is_empty(),
        "the scan must see stored data"
    );
    assert_eq!(
        files_containing(&state_dir, plaintext.as_bytes()),
        HashSet::new(),
        "plaintext found while open"
    );
    assert_eq!(
        files_containing(&state_dir, old.as_bytes()),
        HashSet::new(),
        "old plaintext found while open"
    );
    drop(store);
    assert!(files_containing(&state_dir, ciphertext.as_bytes()).contains("history.db"));
    assert_eq!(
        files_containing(&state_dir, plaintext.as_bytes()),
        HashSet::new(),
        "plaintext found after close"
    );
    assert_eq!(
        files_containing(&state_dir, old.as_bytes()),
        HashSet::new(),
        "old plaintext found after close"
    );
}
