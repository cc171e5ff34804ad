#![no_main]

use libfuzzer_sys::fuzz_target;
use potter_engine::path::{is_under, join, parse_key_path, KeyPath};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_key_path(text) {
        Ok(segments) => {
            // An accepted path is exactly its segments joined, and covers itself and its children.
            assert_eq!(segments.join("."), text);
            assert!(segments.iter().all(|s| !s.is_empty() && !s.contains(['.', '/'])));
            let path = KeyPath::new(text).expect("parse_key_path accepted it");
            assert!(path.segments().eq(segments.iter().copied()));
            assert!(is_under(text, text));
            assert!(is_under(&join(text, "child"), text));
        }
        Err(error) => {
            // The refusal echoes the path without raw control characters.
            assert!(!error.to_string().chars().any(|c| c.is_control() && c != ' '), "{error:?}");
        }
    }
});
