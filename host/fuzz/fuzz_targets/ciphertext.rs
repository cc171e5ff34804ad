#![no_main]

use libfuzzer_sys::fuzz_target;
use potter_secrets::{decrypt, encrypt, is_ciphertext, key_id_of, Keyring};

/// A fixed key (32 bytes of 0x01, base64): the seed corpus holds real ciphertexts made with it.
const KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const ENV: &str = "production";
const PATH: [&str; 2] = ["db", "password"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let keyring = Keyring::from_env_value(ENV, KEY).expect("a valid fixed key");
    // As a ciphertext found in a file: the envelope parser, then AES-GCM.
    let opened = decrypt(&keyring, ENV, &PATH, text);
    if key_id_of(text).is_some() {
        assert!(is_ciphertext(text), "key_id_of accepted what is_ciphertext refuses: {text:?}");
    }
    if opened.is_ok() {
        assert_eq!(key_id_of(text), Some(keyring.newest_key_id()));
    }
    if let Err(error) = opened {
        // Every refusal names the key path it was found at.
        let shown = error.to_string();
        assert!(shown.contains("db.password"), "{shown}");
    }
    // As a plaintext: sealing then opening gives it back, and the envelope is recognised.
    let sealed = encrypt(&keyring, ENV, &PATH, text).expect("encrypt");
    assert!(is_ciphertext(&sealed));
    assert_eq!(decrypt(&keyring, ENV, &PATH, &sealed).expect("decrypt what was sealed").expose(), text);
});
