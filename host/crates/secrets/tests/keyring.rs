//! Keyrings in memory: key ids, the environment variable form, rotation, fingerprints and
//! redaction of everything that holds secret bytes.

use potter_secrets::{
    decrypt, encrypt, env_var_name, fingerprint, fingerprint_matches, key_id_of, reencrypt,
    Keyring, KeyringOrigin, CipherError, SecretString,
};

const PLAINTEXT: &str = "sk-canary-7f3a9c1e-do-not-leak";
const PATH: [&str; 2] = ["database", "password"];

/// A base64 32-byte key (all bytes `fill`).
fn key_b64(fill: u8) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([fill; 32])
}

#[test]
fn env_var_name_is_upper_cased_with_dashes_as_underscores() {
    assert_eq!(env_var_name("prod").unwrap(), "POTTER_SECRET_KEY_PROD");
    assert_eq!(
        env_var_name("eu-west_2").unwrap(),
        "POTTER_SECRET_KEY_EU_WEST_2"
    );
    for unusable in ["", "../prod", "prod env", "a/b", &"x".repeat(65)] {
        assert!(
            matches!(
                env_var_name(unusable),
                Err(CipherError::InvalidEnvName { .. })
            ),
            "{unusable:?}"
        );
        assert!(Keyring::generate(unusable).is_err(), "{unusable:?}");
    }
}

#[test]
fn env_var_keyring_encrypts_with_its_last_key_and_decrypts_with_all() {
    let old_only = Keyring::from_env_value("prod", &key_b64(1)).unwrap();
    let sealed_old = encrypt(&old_only, "prod", &PATH, PLAINTEXT).unwrap();

    let both =
        Keyring::from_env_value("prod", &format!(" {} , {}\n", key_b64(1), key_b64(2))).unwrap();
    assert_eq!(both.key_ids().count(), 2);
    assert_eq!(both.key_ids().next(), Some(old_only.newest_key_id()));
    assert_eq!(
        both.origin(),
        &KeyringOrigin::EnvVar("POTTER_SECRET_KEY_PROD".into())
    );
    let sealed_new = encrypt(&both, "prod", &PATH, PLAINTEXT).unwrap();
    assert_eq!(key_id_of(&sealed_new), Some(both.newest_key_id()));
    assert_ne!(both.newest_key_id(), old_only.newest_key_id());
    for sealed in [&sealed_old, &sealed_new] {
        assert_eq!(
            decrypt(&both, "prod", &PATH, sealed).unwrap().expose(),
            PLAINTEXT
        );
    }
}

#[test]
fn key_id_depends_only_on_the_key_bytes() {
    let generated = Keyring::generate("prod").unwrap();
    let id = generated.newest_key_id();
    assert!(
        id.len() == 9 && id.starts_with('k') && id[1..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let exported = Keyring::from_env_value("prod", generated.to_env_value().expose()).unwrap();
    assert_eq!(exported.newest_key_id(), id);
    let sealed = encrypt(&generated, "prod", &PATH, PLAINTEXT).unwrap();
    assert_eq!(
        decrypt(&exported, "prod", &PATH, &sealed).unwrap().expose(),
        PLAINTEXT
    );
}

#[test]
fn bad_env_var_values_are_refused_without_quoting_them() {
    let key = key_b64(9);
    let short = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode([9u8; 16])
    };
    let cases = [
        (String::new(), "empty"),
        ("   ".to_owned(), "empty"),
        (
            format!("{key},{key}!"),
            "key 2 of the list is not valid base64",
        ),
        (
            format!("{key},{short}"),
            "key 2 of the list does not decode to 32 bytes",
        ),
        (format!("{key},{key}"), "repeats key"),
    ];
    for (value, expected) in cases {
        let error = Keyring::from_env_value("prod", &value).expect_err("should be refused");
        let shown = format!("{error} / {error:?}");
        assert!(
            shown.contains(expected) && shown.contains("POTTER_SECRET_KEY_PROD"),
            "{shown}"
        );
        assert!(
            !shown.contains(&key[..12]) && !shown.contains(&short[..12]),
            "leaks key material: {shown}"
        );
    }
}

#[test]
fn rotation_keeps_old_ciphertexts_readable_and_new_ones_use_the_new_key() {
    let mut keyring = Keyring::generate("prod").unwrap();
    let first_key = keyring.newest_key_id().to_owned();
    let old = encrypt(&keyring, "prod", &PATH, PLAINTEXT).unwrap();

    let second_key = keyring.add_new_key();
    assert_eq!(keyring.newest_key_id(), second_key);
    assert_ne!(first_key, second_key);
    assert_eq!(
        decrypt(&keyring, "prod", &PATH, &old).unwrap().expose(),
        PLAINTEXT
    );
    let new = encrypt(&keyring, "prod", &PATH, PLAINTEXT).unwrap();
    assert_eq!(key_id_of(&new), Some(second_key.as_str()));

    let moved = reencrypt(&keyring, "prod", &PATH, &old).unwrap();
    assert_eq!(key_id_of(&moved), Some(second_key.as_str()));
    assert_eq!(
        decrypt(&keyring, "prod", &PATH, &moved).unwrap().expose(),
        PLAINTEXT
    );
    assert_eq!(
        reencrypt(&keyring, "prod", &PATH, &moved).unwrap(),
        moved,
        "already on the newest key"
    );
    // Re-encryption keeps the binding: it cannot launder a ciphertext to another path.
    assert!(reencrypt(&keyring, "prod", &["other"], &old).is_err());
}

#[test]
fn retiring_removes_only_keys_nothing_references() {
    let mut keyring = Keyring::generate("prod").unwrap();
    let first = keyring.newest_key_id().to_owned();
    let still_used = encrypt(&keyring, "prod", &PATH, PLAINTEXT).unwrap();
    let second = keyring.add_new_key();
    let third = keyring.add_new_key();

    // Only `first` is referenced: `second` goes, the newest (`third`) always stays.
    let retired = keyring.retire_unreferenced([key_id_of(&still_used).unwrap()]);
    assert_eq!(retired, vec![second.clone()]);
    assert_eq!(
        keyring.key_ids().collect::<Vec<_>>(),
        [first.as_str(), third.as_str()]
    );
    assert_eq!(
        decrypt(&keyring, "prod", &PATH, &still_used)
            .unwrap()
            .expose(),
        PLAINTEXT
    );

    // After re-encrypting, nothing references `first` and it can go.
    let moved = reencrypt(&keyring, "prod", &PATH, &still_used).unwrap();
    let retired = keyring.retire_unreferenced([key_id_of(&moved).unwrap()]);
    assert_eq!(retired, vec![first]);
    assert_eq!(
        keyring.retire_unreferenced([]),
        Vec::<String>::new(),
        "the newest key is never retired"
    );
    assert_eq!(keyring.newest_key_id(), third);
    assert!(matches!(
        decrypt(&keyring, "prod", &PATH, &still_used),
        Err(CipherError::UnknownKeyId { .. })
    ));
}

#[test]
fn secret_string_never_prints_its_value() {
    let secret = SecretString::from(PLAINTEXT);
    assert_eq!(format!("{secret}"), "<redacted>");
    assert_eq!(format!("{secret:?}"), "SecretString(<redacted>)");
    assert_eq!(
        format!("{:?}", Some(secret.clone())),
        "Some(SecretString(<redacted>))"
    );
    assert_eq!(secret.expose(), PLAINTEXT);
}

#[test]
fn keyring_debug_shows_ids_but_never_key_bytes() {
    let keyring =
        Keyring::from_env_value("prod", &format!("{},{}", key_b64(0xab), key_b64(0xcd))).unwrap();
    let shown = format!("{keyring:?} {keyring:#?}");
    for id in keyring.key_ids() {
        assert!(shown.contains(id), "{shown}");
    }
    for forbidden in [
        key_b64(0xab),
        key_b64(0xcd),
        "171, 171".into(),
        "0xab".into(),
        "abab".into(),
        "[171".into(),
    ] {
        assert!(
            !shown.contains(&forbidden[..forbidden.len().min(12)]),
            "{forbidden} in {shown}"
        );
    }
    assert_eq!(format!("{}", keyring.to_env_value()), "<redacted>");
}

#[test]
fn fingerprint_tells_changed_from_unchanged_without_the_plaintext() {
    let keyring = Keyring::generate("prod").unwrap();
    let print = fingerprint(&keyring, "prod", &PATH, PLAINTEXT).unwrap();
    assert!(
        print.starts_with(&format!("hmac-sha256:{}:", keyring.newest_key_id())),
        "{print}"
    );
    assert!(!print.contains(PLAINTEXT));
    assert_eq!(
        print,
        fingerprint(&keyring, "prod", &PATH, PLAINTEXT).unwrap(),
        "deterministic"
    );
    assert_ne!(
        print,
        fingerprint(&keyring, "prod", &PATH, "another value").unwrap()
    );
    assert_ne!(
        print,
        fingerprint(&keyring, "prod", &["database", "user"], PLAINTEXT).unwrap(),
        "bound to the path"
    );
    let other = Keyring::generate("prod").unwrap();
    assert_ne!(
        print,
        fingerprint(&other, "prod", &PATH, PLAINTEXT).unwrap(),
        "keyed"
    );

    assert_eq!(
        fingerprint_matches(&keyring, "prod", &PATH, &print, PLAINTEXT).unwrap(),
        Some(true)
    );
    assert_eq!(
        fingerprint_matches(&keyring, "prod", &PATH, &print, "changed").unwrap(),
        Some(false)
    );
    assert_eq!(
        fingerprint_matches(&keyring, "prod", &PATH, "garbage", PLAINTEXT).unwrap(),
        None
    );
}

#[test]
fn fingerprint_made_before_a_rotation_still_compares_until_its_key_is_retired() {
    let mut keyring = Keyring::generate("prod").unwrap();
    let before = fingerprint(&keyring, "prod", &PATH, PLAINTEXT).unwrap();
    keyring.add_new_key();
    assert_ne!(
        before,
        fingerprint(&keyring, "prod", &PATH, PLAINTEXT).unwrap()
    );
    assert_eq!(
        fingerprint_matches(&keyring, "prod", &PATH, &before, PLAINTEXT).unwrap(),
        Some(true)
    );
    keyring.retire_unreferenced([]);
    assert_eq!(
        fingerprint_matches(&keyring, "prod", &PATH, &before, PLAINTEXT).unwrap(),
        None
    );
}
