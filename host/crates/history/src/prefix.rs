//! Turning a key prefix into a half-open range `[prefix, upper)` so the index does the matching
//! and no character of user input is ever interpreted as a wildcard (as `LIKE 'a_b%'` would).

/// The smallest string greater than every string that starts with `prefix`, or `None` when there
/// is no such bound (empty prefix, or only `char::MAX`s). SQLite's BINARY collation compares
/// UTF-8 bytes, whose order equals code-point order, so incrementing the last code point works.
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = next_char(last) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn next_char(c: char) -> Option<char> {
    let mut code = u32::from(c) + 1;
    // Skip the surrogate gap, which holds no chars.
    if (0xD800..=0xDFFF).contains(&code) {
        code = 0xE000;
    }
    char::from_u32(code)
}

#[cfg(test)]
mod tests {
    use super::prefix_upper_bound;

    fn in_range(key: &str, prefix: &str) -> bool {
        key >= prefix && prefix_upper_bound(prefix).is_none_or(|upper| key < upper.as_str())
    }

    #[test]
    fn range_matches_exactly_the_keys_with_the_prefix() {
        let keys = [
            "db",
            "db.",
            "db.host",
            "db.port",
            "db/",
            "dc",
            "d",
            "db.\u{10FFFF}x",
            "db_",
            "db%",
        ];
        for prefix in [
            "db.",
            "db",
            "d",
            "db_",
            "db%",
            "",
            "\u{10FFFF}",
            "db.\u{10FFFF}",
        ] {
            for key in keys {
                assert_eq!(
                    in_range(key, prefix),
                    key.starts_with(prefix),
                    "key {key:?} prefix {prefix:?}"
                );
            }
        }
    }

    #[test]
    fn surrogate_gap_is_skipped() {
        assert_eq!(
            prefix_upper_bound("a\u{D7FF}").as_deref(),
            Some("a\u{E000}")
        );
    }

    #[test]
    fn empty_prefix_has_no_upper_bound() {
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("\u{10FFFF}\u{10FFFF}"), None);
    }
}
