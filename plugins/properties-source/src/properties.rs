//! Java `.properties` syntax, and the mapping of a directory of such files to
//! one nested JSON object. Plain Rust (no Wasm), so it is unit-tested natively.
//!
//! Syntax (as `java.util.Properties::load`):
//! - a line whose first non-blank character is `#` or `!` is a comment;
//! - `key=value`, `key: value` and `key value`: the key ends at the first
//!   unescaped `=`, `:` or blank; blanks around the separator are skipped;
//!   trailing blanks of the value are kept;
//! - a line ending in an odd number of backslashes continues on the next line,
//!   whose leading blanks are dropped;
//! - escapes `\t`, `\n`, `\r`, `\f`, `\uXXXX` (UTF-16, surrogate pairs joined),
//!   and `\` before any other character stands for that character (`\\`, `\=`, `\:`, `\ `).
//!
//! Files are read as UTF-8 (not ISO-8859-1 as Java's byte-stream `load`): use
//! `\uXXXX` escapes if a file must stay ASCII.

use std::collections::BTreeMap;
use std::path::Path;

use potter_sdk::serde_json::{Map, Number, Value};

/// One `key = value` entry of a file, with the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Parse the text of a `.properties` file. `file` only names it in errors
/// (`file:line: ...`). Later entries with the same key replace earlier ones.
pub fn parse(file: &str, text: &str) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, first)) = lines.next() {
        let line_number = index + 1;
        let first = trim_start_blanks(first);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        // Join continuation lines into one logical line.
        let mut logical = String::from(first);
        while ends_with_odd_backslashes(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(trim_start_blanks(next)),
                None => break,
            }
        }
        let (raw_key, raw_value) = split_key_value(&logical);
        let at = |what: &str, message: String| format!("{file}:{line_number}: {what}: {message}");
        let key = unescape(raw_key).map_err(|message| at("key", message))?;
        let value = unescape(raw_value).map_err(|message| at("value", message))?;
        entries.push(Entry {
            key,
            value,
            line: line_number,
        });
    }
    Ok(entries)
}

/// Blanks in the Java sense: space, tab and form feed.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

fn trim_start_blanks(line: &str) -> &str {
    line.trim_start_matches(is_blank)
}

fn ends_with_odd_backslashes(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Split a logical line (leading blanks already removed) into its raw,
/// still escaped key and value.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut key_end = line.len();
    let mut escaped = false;
    for (position, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || is_blank(c) {
            key_end = position;
            break;
        }
    }
    let key = &line[..key_end];
    let rest = trim_start_blanks(&line[key_end..]);
    let rest = match rest.chars().next() {
        Some('=' | ':') => trim_start_blanks(&rest[1..]),
        _ => rest,
    };
    (key, rest)
}

fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let unit = read_utf16_unit(&mut chars)?;
                if (0xD800..0xDC00).contains(&unit) {
                    // A high surrogate must be followed by `\u` and a low surrogate.
                    let low = match (chars.next(), chars.next()) {
                        (Some('\\'), Some('u')) => read_utf16_unit(&mut chars)?,
                        _ => return Err(format!("\\u{unit:04X} is half of a surrogate pair")),
                    };
                    match char::decode_utf16([unit, low]).next() {
                        Some(Ok(joined)) => out.push(joined),
                        _ => {
                            return Err(format!(
                                "\\u{unit:04X}\\u{low:04X} is not a valid surrogate pair"
                            ))
                        }
                    }
                } else {
                    match char::from_u32(u32::from(unit)) {
                        Some(decoded) => out.push(decoded),
                        None => return Err(format!("\\u{unit:04X} is half of a surrogate pair")),
                    }
                }
            }
            Some(other) => out.push(other),
            // A lone backslash at the very end of the file (a continuation with nothing after it).
            None => {}
        }
    }
    Ok(out)
}

fn read_utf16_unit(chars: &mut std::str::Chars<'_>) -> Result<u16, String> {
    let digits: String = chars.take(4).collect();
    if digits.len() == 4 && digits.chars().all(|c| c.is_ascii_hexdigit()) {
        u16::from_str_radix(&digits, 16).map_err(|e| e.to_string())
    } else {
        Err(format!(
            "malformed \\u escape `\\u{digits}` (needs 4 hex digits)"
        ))
    }
}

/// The JSON value of a property: `true`/`false` become booleans and integers
/// (an optional `-`, digits without a leading zero, within 64 bits) become
/// numbers when `typed`; anything else, and everything when not `typed`, is a string.
/// Leading zeros stay strings so codes such as `007` or `01234` keep their digits.
pub fn typed_value(value: &str, typed: bool) -> Value {
    if typed {
        match value {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
        if is_plain_integer(value) {
            if let Ok(number) = value.parse::<i64>() {
                return Value::Number(number.into());
            }
            if let Ok(number) = value.parse::<u64>() {
                return Value::Number(Number::from(number));
            }
        }
    }
    Value::String(value.to_string())
}

fn is_plain_integer(value: &str) -> bool {
    let digits = value.strip_prefix('-').unwrap_or(value);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && value != "-0"
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    file: String,
    line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// What a `.properties` file name means: `<stem>.properties` holds the keys
/// under `<stem>` for every environment, `<stem>.<environment>.properties`
/// overrides them for that environment only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRole<'a> {
    pub stem: &'a str,
    pub environment: Option<&'a str>,
}

/// Classify a file name; `None` for files that are not `.properties`.
/// A stem or environment containing a dot, or an empty one, is an error.
pub fn file_role(file_name: &str) -> Option<Result<FileRole<'_>, String>> {
    let base = file_name.strip_suffix(".properties")?;
    let mut parts = base.split('.');
    let stem = parts.next().unwrap_or_default();
    let environment = parts.next();
    let valid = !stem.is_empty() && environment != Some("") && parts.next().is_none();
    Some(if valid {
        Ok(FileRole { stem, environment })
    } else {
        Err(format!(
            "{file_name}: expected `<stem>.properties` or `<stem>.<environment>.properties` \
             (no other dots)"
        ))
    })
}

/// Build the layer for `environment` from `(file name, text)` pairs: every
/// `<stem>.properties`, then every `<stem>.<environment>.properties` over it
/// (key by key). Files for other environments and non-`.properties` files
/// are ignored. Dotted keys become nested objects under `<stem>`.
pub fn build_layer(
    files: &[(String, String)],
    environment: &str,
    typed: bool,
) -> Result<Value, String> {
    // Full dotted key -> (value, origin); base files first, then the overlays.
    let mut merged: BTreeMap<String, (String, Origin)> = BTreeMap::new();
    let mut classified = Vec::new();
    for (name, text) in files {
        if let Some(role) = file_role(name) {
            classified.push((role?, name, text));
        }
    }
    for overlay_pass in [false, true] {
        for (role, name, text) in &classified {
            match role.environment {
                None if !overlay_pass => {}
                Some(env) if overlay_pass && env == environment => {}
                _ => continue,
            }
            for entry in parse(name, text)? {
                let origin = Origin {
                    file: (*name).clone(),
                    line: entry.line,
                };
                check_key(&entry.key, &origin)?;
                merged.insert(
                    format!("{}.{}", role.stem, entry.key),
                    (entry.value, origin),
                );
            }
        }
    }
    nest(merged, typed)
}

fn check_key(key: &str, origin: &Origin) -> Result<(), String> {
    if key.is_empty() {
        return Err(format!("{origin}: empty key"));
    }
    if key.split('.').any(str::is_empty) {
        return Err(format!(
            "{origin}: key `{key}` has an empty segment (`..`, or a leading or trailing dot)"
        ));
    }
    Ok(())
}

/// Turn full dotted keys into a nested object. A key that is both a value and
/// the parent of other keys (`a=1` and `a.b=2`) is an error naming both places.
fn nest(merged: BTreeMap<String, (String, Origin)>, typed: bool) -> Result<Value, String> {
    // Sorted order puts every key after its ancestors, so each ancestor that
    // holds a value has been seen by the time one of its descendants comes.
    let mut root = Map::new();
    let mut value_keys: BTreeMap<String, Origin> = BTreeMap::new();
    for (key, (value, origin)) in merged {
        let ancestors = key.match_indices('.').map(|(dot, _)| &key[..dot]);
        for parent in ancestors {
            if let Some(parent_origin) = value_keys.get(parent) {
                return Err(format!(
                    "{origin}: key `{key}` needs `{parent}` to be a group of keys, \
                     but {parent_origin} gives `{parent}` a value"
                ));
            }
        }
        insert(&mut root, &key, typed_value(&value, typed));
        value_keys.insert(key, origin);
    }
    Ok(Value::Object(root))
}

fn insert(root: &mut Map<String, Value>, key: &str, value: Value) {
    let mut node = root;
    let mut segments = key.split('.').peekable();
    while let Some(segment) = segments.next() {
        if segments.peek().is_none() {
            node.insert(segment.to_string(), value);
            return;
        }
        let child = node
            .entry(segment.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        node = match child {
            Value::Object(map) => map,
            // `nest` rejects a value key that is also a parent before inserting.
            _ => unreachable!("value key `{segment}` used as a parent"),
        };
    }
}

/// Read every `.properties` file directly in `dir` (not in subdirectories)
/// and build the layer for `environment`. Errors name the file and line, or
/// the directory as given (the guest path `/data` in the plugin).
pub fn load_dir(dir: &Path, environment: &str, typed: bool) -> Result<Value, String> {
    let shown = dir.display();
    let listing = std::fs::read_dir(dir).map_err(|e| format!("cannot list {shown}: {e}"))?;
    let mut files = Vec::new();
    for item in listing {
        let item = item.map_err(|e| format!("cannot list {shown}: {e}"))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if file_role(&name).is_none() || !item.file_type().map(|t| t.is_file()).unwrap_or(false) {
            continue;
        }
        let bytes = std::fs::read(item.path()).map_err(|e| format!("{name}: cannot read: {e}"))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            format!("{name}:{line}: not UTF-8 text (write other characters as \\uXXXX)")
        })?;
        files.push((name, text));
    }
    files.sort();
    build_layer(&files, environment, typed)
}

/// A token that changes whenever a file in `dir` is added, removed, renamed,
/// resized or touched: FNV-1a (64-bit) over every entry's name, size and
/// modification time, in name order. Cheap: reads metadata only.
pub fn change_token(dir: &Path) -> String {
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) => return format!("unreadable: {e}"),
    };
    let mut lines: Vec<String> = listing
        .filter_map(Result::ok)
        .map(|item| {
            let name = item.file_name().to_string_lossy().into_owned();
            match item.metadata() {
                Ok(meta) => {
                    let modified = meta
                        .modified()
                        .ok()
                        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |since| since.as_nanos());
                    format!("{name}\0{}\0{modified}", meta.len())
                }
                Err(_) => format!("{name}\0?"),
            }
        })
        .collect();
    lines.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in lines.join("\n").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use potter_sdk::json;

    fn entries(text: &str) -> Vec<(String, String)> {
        parse("t.properties", text)
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect()
    }

    fn pair(key: &str, value: &str) -> (String, String) {
        (key.to_string(), value.to_string())
    }

    fn layer(files: &[(&str, &str)], environment: &str) -> Result<Value, String> {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(name, text)| (name.to_string(), text.to_string()))
            .collect();
        build_layer(&files, environment, true)
    }

    #[test]
    fn separators_equals_colon_and_blank() {
        assert_eq!(
            entries("a=1\nb: 2\nc 3\nd   =   4\ne\t:\tfive six\n"),
            vec![
                pair("a", "1"),
                pair("b", "2"),
                pair("c", "3"),
                pair("d", "4"),
                pair("e", "five six")
            ]
        );
    }

    #[test]
    fn comments_blank_lines_and_key_without_value() {
        assert_eq!(
            entries("# comment\n  ! also a comment\n\n   \nlonely\nk=v # not a comment\n"),
            vec![pair("lonely", ""), pair("k", "v # not a comment")]
        );
    }

    #[test]
    fn trailing_blanks_of_value_are_kept_leading_are_not() {
        assert_eq!(entries("k =   padded   \n"), vec![pair("k", "padded   ")]);
    }

    #[test]
    fn continuation_lines_join_and_drop_leading_blanks() {
        let text = "list = a, \\\n      b, \\\n   c\nnext=1\n";
        assert_eq!(
            entries(text),
            vec![pair("list", "a, b, c"), pair("next", "1")]
        );
        let parsed = parse("t.properties", text).unwrap();
        assert_eq!(parsed[1].line, 4, "line numbers count the continued lines");
    }

    #[test]
    fn even_backslashes_do_not_continue() {
        assert_eq!(
            entries("path=C:\\\\\nnext=1\n"),
            vec![pair("path", "C:\\"), pair("next", "1")]
        );
    }

    #[test]
    fn continuation_at_end_of_file() {
        assert_eq!(entries("k=v\\"), vec![pair("k", "v")]);
    }

    #[test]
    fn comment_lines_do_not_continue() {
        assert_eq!(entries("# comment \\\nk=v\n"), vec![pair("k", "v")]);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            entries("k=tab\\there\\nnew\\\\slash \\u00e9t\\u00E9 \\uD83D\\uDE00 \\q\n"),
            vec![pair("k", "tab\there\nnew\\slash été 😀 q")]
        );
    }

    #[test]
    fn escaped_separators_belong_to_the_key() {
        assert_eq!(
            entries("a\\=b\\:c\\ d=value\n"),
            vec![pair("a=b:c d", "value")]
        );
    }

    #[test]
    fn crlf_line_endings() {
        assert_eq!(
            entries("a=1\r\nb=2\r\n"),
            vec![pair("a", "1"), pair("b", "2")]
        );
    }

    #[test]
    fn malformed_unicode_escape_names_file_and_line() {
        let error = parse("flags.properties", "ok=1\nbad=\\u12G4\n").unwrap_err();
        assert!(
            error.starts_with("flags.properties:2: value: malformed \\u escape"),
            "{error}"
        );
        let error = parse("flags.properties", "half=\\uD83D\n").unwrap_err();
        assert!(
            error.contains("flags.properties:1") && error.contains("surrogate"),
            "{error}"
        );
    }

    #[test]
    fn typed_values() {
        assert_eq!(typed_value("true", true), json!(true));
        assert_eq!(typed_value("false", true), json!(false));
        assert_eq!(typed_value("42", true), json!(42));
        assert_eq!(typed_value("-7", true), json!(-7));
        assert_eq!(typed_value("0", true), json!(0));
        assert_eq!(
            typed_value("18446744073709551615", true),
            json!(18446744073709551615u64)
        );
        for kept in [
            "007",
            "-0",
            "+5",
            "1.5",
            "1e3",
            "True",
            " true",
            "",
            "99999999999999999999",
        ] {
            assert_eq!(
                typed_value(kept, true),
                json!(kept),
                "{kept:?} stays a string"
            );
        }
        assert_eq!(typed_value("true", false), json!("true"));
        assert_eq!(typed_value("42", false), json!("42"));
    }

    #[test]
    fn dotted_keys_nest_under_the_file_stem() {
        let value = layer(
            &[(
                "feature_flags.properties",
                "new_ui.enabled=true\nnew_ui.rollout=25\nbanner=Hello\n",
            )],
            "production",
        )
        .unwrap();
        assert_eq!(
            value,
            json!({"feature_flags": {"new_ui": {"enabled": true, "rollout": 25}, "banner": "Hello"}})
        );
    }

    #[test]
    fn untyped_layer_keeps_strings() {
        let files = vec![("f.properties".to_string(), "a=true\nb=3\n".to_string())];
        assert_eq!(
            build_layer(&files, "dev", false).unwrap(),
            json!({"f": {"a": "true", "b": "3"}})
        );
    }

    #[test]
    fn environment_overlay_overrides_key_by_key() {
        let files = [
            ("flags.properties", "a=1\nb.c=base\nd=kept\n"),
            ("flags.production.properties", "a=2\nb.c=prod\ne=new\n"),
            ("flags.staging.properties", "a=3\n"),
        ];
        assert_eq!(
            layer(&files, "production").unwrap(),
            json!({"flags": {"a": 2, "b": {"c": "prod"}, "d": "kept", "e": "new"}})
        );
        assert_eq!(
            layer(&files, "development").unwrap(),
            json!({"flags": {"a": 1, "b": {"c": "base"}, "d": "kept"}})
        );
    }

    #[test]
    fn overlay_without_base_file() {
        assert_eq!(
            layer(&[("only.production.properties", "x=1\n")], "production").unwrap(),
            json!({"only": {"x": 1}})
        );
        assert_eq!(
            layer(&[("only.production.properties", "x=1\n")], "dev").unwrap(),
            json!({})
        );
    }

    #[test]
    fn several_files_several_stems() {
        assert_eq!(
            layer(
                &[("a.properties", "k=1\n"), ("b.properties", "k=2\n")],
                "dev"
            )
            .unwrap(),
            json!({"a": {"k": 1}, "b": {"k": 2}})
        );
    }

    #[test]
    fn later_duplicate_key_wins() {
        assert_eq!(
            layer(&[("f.properties", "k=1\nk=2\n")], "dev").unwrap(),
            json!({"f": {"k": 2}})
        );
    }

    #[test]
    fn value_and_parent_conflict_names_both_places() {
        let error = layer(
            &[("feature_flags.properties", "# flags\na=1\na.b=2\n")],
            "dev",
        )
        .unwrap_err();
        assert!(
            error.starts_with("feature_flags.properties:3: key `feature_flags.a.b`"),
            "{error}"
        );
        assert!(
            error.contains("feature_flags.properties:2 gives `feature_flags.a` a value"),
            "{error}"
        );
    }

    #[test]
    fn value_and_parent_conflict_across_base_and_overlay() {
        let error = layer(
            &[
                ("f.properties", "a.b=1\n"),
                ("f.prod.properties", "\na=2\n"),
            ],
            "prod",
        )
        .unwrap_err();
        assert!(error.starts_with("f.properties:1: key `f.a.b`"), "{error}");
        assert!(
            error.contains("f.prod.properties:2 gives `f.a` a value"),
            "{error}"
        );
    }

    #[test]
    fn sibling_with_common_prefix_is_not_a_conflict() {
        assert_eq!(
            layer(&[("f.properties", "a=1\nab.c=2\na_b=3\n")], "dev").unwrap(),
            json!({"f": {"a": 1, "ab": {"c": 2}, "a_b": 3}})
        );
    }

    #[test]
    fn conflict_found_when_other_keys_sort_between_parent_and_child() {
        // `a-x` sorts between `a` and `a.b` ('-' < '.').
        let error = layer(&[("f.properties", "a=1\na-x=2\na.b=3\n")], "dev").unwrap_err();
        assert!(
            error.starts_with("f.properties:3: key `f.a.b` needs `f.a`"),
            "{error}"
        );
        let error = layer(&[("f.properties", "a.b=1\na.b.c.d=2\n")], "dev").unwrap_err();
        assert!(error.contains("needs `f.a.b` to be a group"), "{error}");
    }

    #[test]
    fn empty_keys_and_segments_are_errors_with_location() {
        let error = layer(&[("f.properties", "ok=1\n=value\n")], "dev").unwrap_err();
        assert_eq!(error, "f.properties:2: empty key");
        let error = layer(&[("f.properties", "a..b=1\n")], "dev").unwrap_err();
        assert!(
            error.starts_with("f.properties:1: key `a..b` has an empty segment"),
            "{error}"
        );
        let error = layer(&[("f.properties", "\n\n.a=1\n")], "dev").unwrap_err();
        assert!(error.starts_with("f.properties:3:"), "{error}");
    }

    #[test]
    fn bad_file_names_are_errors_other_files_ignored() {
        let error = layer(&[("a.b.c.properties", "k=1\n")], "dev").unwrap_err();
        assert!(error.starts_with("a.b.c.properties: expected"), "{error}");
        assert!(layer(&[(".properties", "k=1\n")], "dev").is_err());
        assert_eq!(layer(&[("notes.txt", "k=1\n")], "dev").unwrap(), json!({}));
    }

    fn temp_dir(test: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("properties-source-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn load_dir_reads_files_and_ignores_the_rest() {
        let dir = temp_dir("load");
        std::fs::write(
            dir.join("feature_flags.properties"),
            "new_ui.enabled=false\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("feature_flags.production.properties"),
            "new_ui.enabled=true\n",
        )
        .unwrap();
        std::fs::write(dir.join("README"), "not properties").unwrap();
        std::fs::create_dir(dir.join("nested.properties")).unwrap();
        assert_eq!(
            load_dir(&dir, "production", true).unwrap(),
            json!({"feature_flags": {"new_ui": {"enabled": true}}})
        );
        assert_eq!(
            load_dir(&dir, "staging", true).unwrap(),
            json!({"feature_flags": {"new_ui": {"enabled": false}}})
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_dir_errors_name_the_place() {
        let dir = temp_dir("errors");
        std::fs::write(dir.join("f.properties"), b"a=1\nb=\xff\n").unwrap();
        let error = load_dir(&dir, "dev", true).unwrap_err();
        assert!(error.starts_with("f.properties:2: not UTF-8"), "{error}");
        let missing = dir.join("missing");
        let error = load_dir(&missing, "dev", true).unwrap_err();
        assert!(
            error.starts_with(&format!("cannot list {}", missing.display())),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn change_token_follows_names_sizes_and_times() {
        let dir = temp_dir("token");
        std::fs::write(dir.join("a.properties"), "k=1\n").unwrap();
        let first = change_token(&dir);
        assert_eq!(change_token(&dir), first, "stable while nothing changes");
        std::fs::write(dir.join("a.properties"), "k=12\n").unwrap();
        let resized = change_token(&dir);
        assert_ne!(resized, first);
        std::fs::write(dir.join("b.properties"), "").unwrap();
        let added = change_token(&dir);
        assert_ne!(added, resized);
        let file = std::fs::File::options()
            .write(true)
            .open(dir.join("b.properties"))
            .unwrap();
        file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1))
            .unwrap();
        assert_ne!(
            change_token(&dir),
            added,
            "a new modification time changes the token"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(change_token(&dir).starts_with("unreadable: "));
    }
}
