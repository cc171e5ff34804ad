//! The ciphertext format: round trip, binding to environment and key path, nonces, bad input.

use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use potter_secrets::{decrypt, encrypt, is_ciphertext, key_id_of, Keyring, CipherError};

const PLAINTEXT: &str = "sk-canary-7f3a9c1e-do-not-leak";
const API_KEY: [&str; 3] = ["llm_providers", "openai", "api_key"];

fn prod() -> Keyring {
    Keyring::generate("prod").unwrap()
}

/// Neither the message nor the Debug form of `error` contains `plaintext`.
fn assert_hides(error: &CipherError, plaintext: &str) {
    let shown = format!("{error} / {error:?}");
    assert!(
        !shown.contains(plaintext),
        "error reveals the plaintext: {shown}"
    );
}

fn decrypt_error(keyring: &Keyring, env: &str, path: &[&str], ciphertext: &str) -> CipherError {
    let error = decrypt(keyring, env, path, ciphertext).expect_err("decryption should fail");
    assert_hides(&error, PLAINTEXT);
    error
}

/// Replaces field `index` (0-based, `enc` is 0) of a ciphertext.
fn with_field(ciphertext: &str, index: usize, value: &str) -> String {
    let mut fields: Vec<&str> = ciphertext.split(':').collect();
    fields[index] = value;
    fields.join(":")
}

#[test]
fn round_trip_returns_the_plaintext() {
    let keyring = prod();
    for plaintext in [
        PLAINTEXT,
        "",
        "päss wörd ✓ with: colons",
        &"x".repeat(10_000),
    ] {
        let sealed = encrypt(&keyring, "prod", &API_KEY, plaintext).unwrap();
        assert!(!sealed.contains(plaintext) || plaintext.is_empty());
        assert_eq!(
            decrypt(&keyring, "prod", &API_KEY, &sealed)
                .unwrap()
                .expose(),
            plaintext
        );
    }
}

#[test]
fn ciphertext_has_the_documented_form() {
    let keyring = prod();
    let sealed = encrypt(&keyring, "prod", &API_KEY, PLAINTEXT).unwrap();
    let fields: Vec<&str> = sealed.split(':').collect();
    assert_eq!(fields.len(), 5, "{sealed}");
    assert_eq!(&fields[..3], ["enc", "v1", keyring.newest_key_id()]);
    assert_eq!(URL_SAFE_NO_PAD.decode(fields[3]).unwrap().len(), 12);
    assert_eq!(
        URL_SAFE_NO_PAD.decode(fields[4]).unwrap().len(),
        PLAINTEXT.len() + 16
    );
    assert!(is_ciphertext(&sealed));
    assert_eq!(key_id_of(&sealed), Some(keyring.newest_key_id()));
}

#[test]
fn ciphertext_moved_to_another_key_path_fails() {
    let keyring = prod();
    let sealed = encrypt(&keyring, "prod", &API_KEY, PLAINTEXT).unwrap();
    let error = decrypt_error(
        &keyring,
        "prod",
        &["llm_providers", "anthropic", "api_key"],
        &sealed,
    );
    assert!(
        matches!(error, CipherError::Undecryptable { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("llm_providers.anthropic.api_key"),
        "{message}"
    );
    assert!(message.contains("`prod`"), "{message}");
    assert!(
        message.contains("made for another key path or environment, or altered"),
        "{message}"
    );
}

#[test]
fn ciphertext_moved_to_another_environment_fails() {
    // Even when two environments share a key (the same POTTER_SECRET_KEY_* value), the AAD
    // names the environment, so the ciphertext does not carry over.
    let shared = Keyring::generate("dev").unwrap().to_env_value();
    let dev = Keyring::from_env_value("dev", shared.expose()).unwrap();
    let staging = Keyring::from_env_value("staging", shared.expose()).unwrap();
    let sealed = encrypt(&dev, "dev", &API_KEY, PLAINTEXT).unwrap();
    let error = decrypt_error(&staging, "staging", &API_KEY, &sealed);
    assert!(
        matches!(error, CipherError::Undecryptable { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("environment `staging`"));
}

#[test]
fn dotted_segments_cannot_stand_in_for_each_other() {
    let keyring = prod();
    let pairs: [(&[&str], &[&str]); 4] = [
        (&["a.b", "c"], &["a", "b.c"]),
        (&["a", "b.c"], &["a.b.c"]),
        (&["ab", "c"], &["a", "bc"]),
        (&["a", ""], &["a"]),
    ];
    for (sealed_at, moved_to) in pairs {
        let sealed = encrypt(&keyring, "prod", sealed_at, PLAINTEXT).unwrap();
        assert_eq!(
            decrypt(&keyring, "prod", sealed_at, &sealed)
                .unwrap()
                .expose(),
            PLAINTEXT
        );
        let error = decrypt_error(&keyring, "prod", moved_to, &sealed);
        assert!(
            matches!(error, CipherError::Undecryptable { .. }),
            "{sealed_at:?} -> {moved_to:?}: {error:?}"
        );
    }
}

#[test]
fn error_shows_a_segment_containing_a_dot_quoted() {
    let keyring = prod();
    let sealed = encrypt(&keyring, "prod", &["a", "b"], PLAINTEXT).unwrap();
    let error = decrypt_error(&keyring, "prod", &["a.b", "c"], &sealed);
    assert!(error.to_string().contains(r#"`"a.b".c`"#), "{error}");
}

#[test]
fn same_plaintext_twice_gives_different_ciphertexts() {
    let keyring = prod();
    let first = encrypt(&keyring, "prod", &API_KEY, PLAINTEXT).unwrap();
    let second = encrypt(&keyring, "prod", &API_KEY, PLAINTEXT).unwrap();
    assert_ne!(first, second);
}

#[test]
fn ten_thousand_encryptions_never_repeat_a_nonce() {
    let keyring = prod();
    let mut nonces = HashSet::new();
    for _ in 0..10_000 {
        let sealed = encrypt(&keyring, "prod", &API_KEY, PLAINTEXT).unwrap();
        let nonce = sealed.split(':').nth(3).unwrap().to_owned();
        assert!(nonces.insert(nonce), "a nonce repeated");
    }
}

#[test]
fn dev_keyring_cannot_decrypt_prod_secrets() {
    let prod = prod();
    let dev = Keyring::generate("dev").unwrap();
    let sealed = encrypt(&prod, "prod", &API_KEY, PLAINTEXT).unwrap();
    // Pretending the prod ciphertext sits in the dev tree: dev's keyring lacks prod's key.
    let error = decrypt_error(&dev, "dev", &API_KEY, &sealed);
    assert!(
        matches!(error, CipherError::UnknownKeyId { .. }),
        "{error:?}"
    );
    // Using the dev keyring for prod at all is refused before any decryption.
    let error = decrypt_error(&dev, "prod", &API_KEY, &sealed);
    assert!(
        matches!(error, CipherError::KeyringEnvMismatch { .. }),
        "{error:?}"
    );
    assert!(encrypt(&dev, "prod", &API_KEY, PLAINTEXT).is_err());
}

#[test]
fn wrong_key_fails_as_undecryptable() {
    let keyring = prod();
    let other = prod();
    let sealed = encrypt(&other, "prod", &API_KEY, PLAINTEXT).unwrap();
    // Relabel it with our key's id, so our (wrong) key is tried.
    let relabelled = with_field(&sealed, 2, keyring.newest_key_id());
    let error = decrypt_error(&keyring, "prod", &API_KEY, &relabelled);
    assert!(
        matches!(error, CipherError::Undecryptable { .. }),
        "{error:?}"
    );
}

#[test]
fn unknown_key_id_names_the_id_and_the_known_ones() {
    let keyring = prod();
    let sealed = encrypt(&keyring, "prod", &API_KEY, PLAINTEXT).unwrap();
    let error = decrypt_error(
        &keyring,
        "prod",
        &API_KEY,
        &with_field(&sealed, 2, "k00000000"),
    );
    assert!(
        matches!(error, CipherError::UnknownKeyId { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("`k00000000`") && message.contains(keyring.newest_key_id()),
        "{message}"
    );
    assert!(
        message.contains("llm_providers.openai.api_key"),
        "{message}"
    );
}

#[test]
fn tampered_ciphertext_or_nonce_fails() {
    let keyring = prod();
    let sealed = encrypt(&keyring, "prod", &API_KEY, PLAINTEXT).unwrap();
    for field in [3, 4] {
        let original = sealed.split(':').nth(field).unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(original).unwrap();
        bytes[5] ^= 0x01;
        let tampered = with_field(&sealed, field, &URL_SAFE_NO_PAD.encode(&bytes));
        let error = decrypt_error(&keyring, "prod", &API_KEY, &tampered);
        assert!(
            matches!(error, CipherError::Undecryptable { .. }),
            "field {field}: {error:?}"
        );
    }
}

#[test]
fn every_truncation_fails_without_revealing_the_plaintext() {
    let keyring = prod();
    let sealed = encrypt(&keyring, "prod", &API_KEY, PLAINTEXT).unwrap();
    for length in 0..sealed.len() {
        decrypt_error(&keyring, "prod", &API_KEY, &sealed[..length]);
    }
    let without_body = sealed.rsplit_once(':').unwrap().0;
    let error = decrypt_error(&keyring, "prod", &API_KEY, without_body);
    assert!(matches!(error, CipherError::Truncated { .. }), "{error:?}");
    let short_body = with_field(&sealed, 4, &URL_SAFE_NO_PAD.encode([7u8; 10]));
    let error = decrypt_error(&keyring, "prod", &API_KEY, &short_body);
    assert!(matches!(error, CipherError::Truncated { .. }), "{error:?}");
    let short_nonce = with_field(&sealed, 3, &URL_SAFE_NO_PAD.encode([7u8; 8]));
    let error = decrypt_error(&keyring, "prod", &API_KEY, &short_nonce);
    assert!(matches!(error, CipherError::Truncated { .. }), "{error:?}");
}

#[test]
fn unknown_version_is_named() {
    let keyring = prod();
    let sealed = encrypt(&keyring, "prod", &API_KEY, PLAINTEXT).unwrap();
    let future = with_field(&sealed, 1, "v2");
    assert!(
        is_ciphertext(&future),
        "a future version still counts as a ciphertext"
    );
    let error = decrypt_error(&keyring, "prod", &API_KEY, &future);
    assert!(
        matches!(error, CipherError::UnknownVersion { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("v2"), "{error}");
}

#[test]
fn bad_base64_names_the_field() {
    let keyring = prod();
    let sealed = encrypt(&keyring, "prod", &API_KEY, PLAINTEXT).unwrap();
    for (field, part) in [(3, "nonce"), (4, "ciphertext")] {
        let original = sealed.split(':').nth(field).unwrap();
        // `+` and `=` are outside the URL-safe, unpadded alphabet.
        for bad in [
            format!("{}+{}", &original[..2], &original[3..]),
            format!("{original}="),
        ] {
            let error = decrypt_error(
                &keyring,
                "prod",
                &API_KEY,
                &with_field(&sealed, field, &bad),
            );
            match error {
                CipherError::BadBase64 { part: named, .. } => assert_eq!(named, part),
                other => panic!("field {field}: {other:?}"),
            }
        }
    }
}

#[test]
fn malformed_values_never_echo_their_content() {
    let keyring = prod();
    let sealed = encrypt(&keyring, "prod", &API_KEY, PLAINTEXT).unwrap();
    let malformed = [
        PLAINTEXT.to_owned(),
        format!("enc:{PLAINTEXT}"),
        format!("enc:v1:{PLAINTEXT}:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA"),
        format!("{sealed}:{PLAINTEXT}"),
        format!("enc:v{PLAINTEXT}:x:y:z"),
    ];
    for value in &malformed {
        let error = decrypt_error(&keyring, "prod", &API_KEY, value);
        assert!(
            matches!(error, CipherError::Malformed { .. }),
            "{value}: {error:?}"
        );
    }
}

#[test]
fn is_ciphertext_and_key_id_of_recognise_only_the_format() {
    let keyring = prod();
    let sealed = encrypt(&keyring, "prod", &API_KEY, PLAINTEXT).unwrap();
    assert!(is_ciphertext(&sealed));
    for plain in [
        "",
        "enc:",
        "enc:hello",
        "encrypted:v1:x",
        "ENC:v1:k:a:b",
        "enc:v:x",
        "sk-live",
    ] {
        assert!(!is_ciphertext(plain), "{plain}");
        assert_eq!(key_id_of(plain), None, "{plain}");
    }
    assert_eq!(key_id_of(&with_field(&sealed, 1, "v2")), None);
    assert_eq!(key_id_of("enc:v1:k12345678:only-four"), None);
}

#[test]
fn structure_is_checked_without_a_keyring() {
    let sealed = encrypt(&prod(), "prod", &API_KEY, PLAINTEXT).unwrap();
    potter_secrets::check_structure("prod", &API_KEY, &sealed).unwrap();
    // Altered bytes of the right length pass the structural check: only decryption can tell.
    let tampered = with_field(&sealed, 4, &URL_SAFE_NO_PAD.encode([7u8; 40]));
    potter_secrets::check_structure("prod", &API_KEY, &tampered).unwrap();
    let truncated = with_field(&sealed, 3, "AAAA");
    let error = potter_secrets::check_structure("prod", &API_KEY, &truncated).unwrap_err();
    assert!(matches!(error, CipherError::Truncated { .. }), "{error:?}");
    assert!(error.to_string().contains("llm_providers.openai.api_key"), "{error}");
    let future = sealed.replacen("enc:v1:", "enc:v9:", 1);
    assert!(matches!(potter_secrets::check_structure("prod", &API_KEY, &future), Err(CipherError::UnknownVersion { .. })));
}
