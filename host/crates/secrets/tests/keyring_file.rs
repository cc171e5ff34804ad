//! Keyring files: created 0600, refused when others can read them, written atomically, and
//! resolved with the environment variable taking precedence.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use potter_secrets::{decrypt, encrypt, keyring_file, Keyring, KeyringOrigin, CipherError};

const PLAINTEXT: &str = "sk-canary-7f3a9c1e-do-not-leak";
const PATH: [&str; 2] = ["database", "password"];

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn keygen_creates_a_0600_file_in_a_0700_directory() {
    let state = tempfile::tempdir().unwrap();
    let keyring = Keyring::create_in_state(state.path(), "prod").unwrap();
    let file = state.path().join("keyrings").join("prod.json");
    assert_eq!(keyring_file(state.path(), "prod").unwrap(), file);
    assert_eq!(keyring.origin(), &KeyringOrigin::File(file.clone()));
    assert_eq!(mode_of(&file), 0o600);
    assert_eq!(mode_of(file.parent().unwrap()), 0o700);

    let loaded = Keyring::load_from_state(state.path(), "prod").unwrap();
    assert_eq!(
        loaded.key_ids().collect::<Vec<_>>(),
        keyring.key_ids().collect::<Vec<_>>()
    );
    let sealed = encrypt(&keyring, "prod", &PATH, PLAINTEXT).unwrap();
    assert_eq!(
        decrypt(&loaded, "prod", &PATH, &sealed).unwrap().expose(),
        PLAINTEXT
    );
}

#[test]
fn keygen_refuses_to_replace_an_existing_keyring() {
    let state = tempfile::tempdir().unwrap();
    let first = Keyring::create_in_state(state.path(), "prod").unwrap();
    let error = Keyring::create_in_state(state.path(), "prod").expect_err("must not overwrite");
    assert!(
        matches!(error, CipherError::KeyringExists { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("potter-config secrets rotate --env prod"),
        "{error}"
    );
    let still = Keyring::load_from_state(state.path(), "prod").unwrap();
    assert_eq!(still.newest_key_id(), first.newest_key_id());
}

#[test]
fn group_or_world_accessible_keyring_files_are_refused() {
    let state = tempfile::tempdir().unwrap();
    Keyring::create_in_state(state.path(), "prod").unwrap();
    let file = keyring_file(state.path(), "prod").unwrap();
    for mode in [0o640, 0o604, 0o660, 0o620] {
        fs::set_permissions(&file, fs::Permissions::from_mode(mode)).unwrap();
        let error = Keyring::load_from_state(state.path(), "prod").expect_err("must refuse");
        assert!(
            matches!(error, CipherError::KeyringPermissions { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(&file.display().to_string()), "{message}");
        assert!(message.contains(&format!("{mode:04o}")), "{message}");
        assert!(message.contains("chmod 600"), "{message}");
    }
    fs::set_permissions(&file, fs::Permissions::from_mode(0o400)).unwrap();
    Keyring::load_from_state(state.path(), "prod").expect("owner-only read is fine");
}

#[test]
fn missing_keyring_names_the_env_and_the_command_that_makes_one() {
    let state = tempfile::tempdir().unwrap();
    let error = Keyring::resolve_with(state.path(), "staging", None).expect_err("no keyring yet");
    assert!(
        matches!(error, CipherError::KeyringMissing { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    for expected in [
        "`staging`",
        "POTTER_SECRET_KEY_STAGING",
        "keyrings/staging.json",
        "potter-config secrets keygen --env staging",
    ] {
        assert!(
            message.contains(expected),
            "{expected} missing from: {message}"
        );
    }
}

#[test]
fn resolve_prefers_the_environment_variable_over_the_file() {
    let state = tempfile::tempdir().unwrap();
    let stored = Keyring::create_in_state(state.path(), "prod").unwrap();
    let from_var = Keyring::generate("prod").unwrap();

    let resolved =
        Keyring::resolve_with(state.path(), "prod", Some(from_var.to_env_value().expose()))
            .unwrap();
    assert_eq!(resolved.newest_key_id(), from_var.newest_key_id());
    assert!(matches!(resolved.origin(), KeyringOrigin::EnvVar(_)));
    let resolved = Keyring::resolve_with(state.path(), "prod", None).unwrap();
    assert_eq!(resolved.newest_key_id(), stored.newest_key_id());

    // The process-environment form, with a variable no other test uses.
    std::env::set_var(
        "POTTER_SECRET_KEY_RESOLVE_TEST",
        from_var.to_env_value().expose(),
    );
    let resolved = Keyring::resolve(state.path(), "resolve-test").unwrap();
    assert_eq!(resolved.newest_key_id(), from_var.newest_key_id());
    std::env::remove_var("POTTER_SECRET_KEY_RESOLVE_TEST");
}

#[test]
fn rotated_keyring_saves_atomically_and_leaves_no_temp_file() {
    let state = tempfile::tempdir().unwrap();
    let mut keyring = Keyring::create_in_state(state.path(), "prod").unwrap();
    let old = encrypt(&keyring, "prod", &PATH, PLAINTEXT).unwrap();
    let new_id = keyring.add_new_key();
    let file = keyring.save_to_state(state.path()).unwrap();
    assert_eq!(mode_of(&file), 0o600);

    let loaded = Keyring::load_from_state(state.path(), "prod").unwrap();
    assert_eq!(loaded.newest_key_id(), new_id);
    assert_eq!(
        decrypt(&loaded, "prod", &PATH, &old).unwrap().expose(),
        PLAINTEXT
    );
    let names: Vec<_> = fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["prod.json"]);
}

#[test]
fn readers_never_see_a_partial_keyring_while_it_is_rotated() {
    let state = tempfile::tempdir().unwrap();
    let mut keyring = Keyring::create_in_state(state.path(), "prod").unwrap();
    let sealed = encrypt(&keyring, "prod", &PATH, PLAINTEXT).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (state, sealed, done) = (state.path().to_owned(), sealed.clone(), done.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !done.load(Ordering::Relaxed) || reads == 0 {
                    let loaded =
                        Keyring::load_from_state(&state, "prod").expect("always a whole keyring");
                    assert_eq!(
                        decrypt(&loaded, "prod", &PATH, &sealed).unwrap().expose(),
                        PLAINTEXT
                    );
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for _ in 0..30 {
        keyring.add_new_key();
        keyring.save_to_state(state.path()).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().unwrap() > 0);
    }
}

#[test]
fn a_keyring_file_for_another_environment_is_refused() {
    let state = tempfile::tempdir().unwrap();
    Keyring::create_in_state(state.path(), "dev").unwrap();
    let dir = state.path().join("keyrings");
    fs::copy(dir.join("dev.json"), dir.join("prod.json")).unwrap();
    fs::set_permissions(dir.join("prod.json"), fs::Permissions::from_mode(0o600)).unwrap();
    let error =
        Keyring::load_from_state(state.path(), "prod").expect_err("dev's keys are not prod's");
    assert!(
        error.to_string().contains("belongs to environment `dev`"),
        "{error}"
    );
}

#[test]
fn corrupt_keyring_files_are_refused_without_quoting_key_material() {
    let state = tempfile::tempdir().unwrap();
    let keyring = Keyring::create_in_state(state.path(), "prod").unwrap();
    let file = keyring_file(state.path(), "prod").unwrap();
    let original = fs::read_to_string(&file).unwrap();
    let key = keyring.to_env_value().expose().to_owned();
    let id = keyring.newest_key_id();
    let corruptions = [
        // serde_json would quote the string it rejects: the key, here.
        (
            original.replace("\"id\"", &format!("\"created\": \"{key}\", \"id\"")),
            "mistyped field",
        ),
        (original.replace(id, "k00000000"), "its bytes give id"),
        (original.replace(&key, &key[4..]), "key 1"),
        (
            original.replace("potter-keyring-v1", "potter-keyring-v9"),
            "`format`",
        ),
        (
            "{\"format\":\"potter-keyring-v1\",\"env\":\"prod\",\"keys\":[]}".to_owned(),
            "no keys",
        ),
    ];
    for (content, expected) in corruptions {
        fs::write(&file, &content).unwrap();
        let error = Keyring::load_from_state(state.path(), "prod").expect_err("corrupt");
        let shown = format!("{error} / {error:?}");
        assert!(
            shown.contains(expected) && shown.contains(&file.display().to_string()),
            "{shown}"
        );
        assert!(
            !shown.contains(&key[..12]) && !shown.contains(&key[4..16]),
            "leaks key material: {shown}"
        );
    }
}
