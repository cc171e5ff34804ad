#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(key_id) = potter_plugin::parse_signature(text) {
        // The key id names a file in the trust store: only ever 16 hex digits, never a path.
        assert!(key_id.len() == 16 && key_id.bytes().all(|b| b.is_ascii_hexdigit()), "{key_id:?}");
    }
});
