//! Small files that used to stall or exhaust the parsers: alias bombs, one very long line, numbers
//! beyond f64. Each is refused (or parsed) quickly, with the line and column of the cause.

use std::time::{Duration, Instant};

use potter_engine::{parse_document, Format, Location, ParseError};
use serde_json::{json, Value};

fn refused(text: &str, format: Format) -> ParseError {
    match parse_document(text, format) {
        Ok(parsed) => panic!("{format:?} accepted: {:?}", parsed.data.keys().take(3).collect::<Vec<_>>()),
        Err(error) => error,
    }
}

fn position(error: &ParseError) -> (u32, u32) {
    (error.line.expect("a line"), error.column.expect("a column"))
}

fn text_location(parsed: &potter_engine::Parsed, path: &str) -> (u32, u32) {
    match parsed.locations.get(path) {
        Some(Location::Text { line, column }) => (*line, *column),
        other => panic!("no text location for {path}: {other:?}"),
    }
}

/// `copies: [*s, *s, …]`: the column of the alias number `n` (1-based).
fn alias_column(n: u32) -> u32 {
    "copies: [".len() as u32 + 1 + (n - 1) * "*s, ".len() as u32
}

#[test]
fn aliases_repeating_one_large_string_are_refused_by_size_at_the_alias() {
    // 512 KiB of text, anchored once and aliased 40 times: 20 MiB expanded, far under the node
    // limit. The anchored copy and 31 aliases fit in 16 MiB; the 32nd alias passes it.
    let big = "x".repeat(512 * 1024);
    let aliases = vec!["*s"; 40].join(", ");
    let text = format!("s: &s \"{big}\"\ncopies: [{aliases}]\n");
    let error = refused(&text, Format::Yaml);
    assert!(error.message.contains("aliases expand to more than 16 MiB"), "{error}");
    assert_eq!(position(&error), (2, alias_column(32)), "{error}");
    assert!(error.to_string().starts_with(&format!("2:{}: ", alias_column(32))), "{error}");
}

#[test]
fn nested_aliases_that_would_expand_to_gigabytes_are_refused_quickly() {
    // The shape of the 520 KB file of the report: one large string, then levels of ten aliases each.
    let big = "x".repeat(500 * 1024);
    let mut text = format!("l0: &l0 \"{big}\"\n");
    for level in 1..=9 {
        let previous = vec![format!("*l{}", level - 1); 10].join(", ");
        text.push_str(&format!("l{level}: &l{level} [{previous}]\n"));
    }
    let started = Instant::now();
    let error = refused(&text, Format::Yaml);
    assert!(error.message.contains("aliases expand to more than"), "{error}");
    // Level 0 and 1 (its ten aliases and its anchored copy) count 10.5 MiB; the second alias of
    // level 1 on line 3 passes 16 MiB.
    assert_eq!(position(&error), (3, 15), "{error}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

#[test]
fn billion_laughs_is_refused_by_node_count() {
    let mut text = String::from("l0: &l0 [a, a, a, a, a, a, a, a, a, a]\n");
    for level in 1..=9 {
        let previous = vec![format!("*l{}", level - 1); 10].join(", ");
        text.push_str(&format!("l{level}: &l{level} [{previous}]\n"));
    }
    let error = refused(&text, Format::Yaml);
    assert!(error.message.contains("aliases expand to more than 1000000 nodes"), "{error}");
    // Levels 0–4 and their copies count about 250,000 nodes; the seventh alias of level 4 (111,111
    // nodes each) on line 6 passes a million.
    assert_eq!(position(&error), (6, 10 + 6 * 5), "{error}");
}

#[test]
fn ordinary_anchors_and_aliases_still_expand() {
    let text = "base: &base\n  timeout: 5\n  hosts: [a, b]\nprod: *base\nlist: [*base, *base]\n";
    let parsed = parse_document(text, Format::Yaml).unwrap();
    let base = json!({"timeout": 5, "hosts": ["a", "b"]});
    assert_eq!(parsed.data["prod"], base);
    assert_eq!(parsed.data["list"], json!([base, base]));
    assert_eq!(text_location(&parsed, "prod"), (4, 7));
}

/// `{"k0":0,"k1":1,…}` on one line, and the byte offset of each value.
fn minified_object(keys: usize) -> (String, Vec<usize>) {
    let mut text = String::with_capacity(keys * 18);
    let mut value_offsets = Vec::with_capacity(keys);
    text.push('{');
    for i in 0..keys {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!("\"k{i}\":"));
        value_offsets.push(text.len());
        text.push_str(&i.to_string());
    }
    text.push('}');
    (text, value_offsets)
}

#[test]
fn a_minified_line_of_700_000_keys_parses_with_exact_columns() {
    let keys = 700_000;
    let (text, value_offsets) = minified_object(keys);
    assert!(text.len() > 10_000_000, "{} bytes", text.len());
    let started = Instant::now();
    let parsed = parse_document(&text, Format::Json).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(parsed.data.len(), keys);
    for i in [0, 1, 99_999, 350_000, keys - 1] {
        assert_eq!(parsed.data[&format!("k{i}")], json!(i));
        let column = value_offsets[i] as u32 + 1;
        assert_eq!(text_location(&parsed, &format!("k{i}")), (1, column), "k{i}");
    }
    // Quadratic column counting took 200 s here in a release build; linear takes a few seconds in a
    // debug build. The bound only catches a return to quadratic time, with room for a busy machine.
    assert!(elapsed < Duration::from_secs(60), "700,000 keys on one line took {elapsed:?}");
}

#[test]
fn columns_count_characters_on_long_lines_with_multibyte_text() {
    // Non-ASCII keys and values on one line: the column is in characters, not bytes.
    let mut text = String::from("{");
    let mut expected = Vec::new();
    for i in 0..5_000 {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!("\"clé{i}\":"));
        expected.push((format!("clé{i}"), text.chars().count() as u32 + 1));
        text.push_str("\"ü€😀\"");
    }
    text.push('}');
    let parsed = parse_document(&text, Format::Json).unwrap();
    for (key, column) in expected.iter().step_by(97).chain(expected.last()) {
        assert_eq!(text_location(&parsed, key), (1, *column), "{key}");
        assert_eq!(parsed.data[key], json!("ü€😀"));
    }
    // The same on a later line, after a line of multibyte text.
    let text = "{\"a\": \"ééééé\",\n \"b\": \"ü\", \"c\": 1}";
    let parsed = parse_document(text, Format::Json).unwrap();
    assert_eq!(text_location(&parsed, "b"), (2, 7));
    assert_eq!(text_location(&parsed, "c"), (2, 17));
    let error = refused("{\"a\": \"é\",\n \"ü\": \"é\", \"b\": }", Format::Json);
    assert_eq!(position(&error), (2, 17), "{error}");
}

#[test]
fn toml_positions_on_one_long_inline_table() {
    let pairs: Vec<String> = (0..20_000).map(|i| format!("k{i} = {i}")).collect();
    let text = format!("t = {{ {} }}\n", pairs.join(", "));
    let parsed = parse_document(&text, Format::Toml).unwrap();
    let last = text.find("k19999 = ").unwrap() + "k19999 = ".len();
    assert_eq!(text_location(&parsed, "t.k19999"), (1, last as u32 + 1));
}

#[test]
fn yaml_floats_beyond_f64_are_refused_like_json_and_toml() {
    for number in ["1e400", "-1e400", "+1e400", "1E400", "1e+400", "1.5e999", ".5e400", "-12.e308"] {
        let text = format!("a: 1\nlimit: {number}\n");
        let error = refused(&text, Format::Yaml);
        assert_eq!(error.message, format!("`{number}` cannot be represented in JSON"), "{number}");
        assert_eq!(position(&error), (2, 8), "{number}: {error}");
    }
    // Infinity spelled out, in every case the core schema allows.
    for number in [".inf", "+.Inf", "+.INF", "-.inf", ".NaN"] {
        let error = refused(&format!("limit: {number}\n"), Format::Yaml);
        assert!(error.message.contains("cannot be represented"), "{number}: {error}");
        assert_eq!(position(&error), (1, 8), "{number}: {error}");
    }
    // The same number is refused by the other formats too, each with its position.
    let json = refused("{\"a\": 1,\n \"limit\": 1e400}", Format::Json);
    assert_eq!(position(&json), (2, 11), "{json}");
    let toml = refused("a = 1\nlimit = 1e400\n", Format::Toml);
    assert_eq!(toml.line, Some(2), "{toml}");
}

#[test]
fn yaml_integers_beyond_u64_in_hex_or_octal_are_refused() {
    for number in ["0x1FFFFFFFFFFFFFFFF", "0o7777777777777777777777"] {
        let error = refused(&format!("n: {number}\n"), Format::Yaml);
        assert_eq!(error.message, format!("`{number}` cannot be represented in JSON"));
        assert_eq!(position(&error), (1, 4));
    }
    let parsed = parse_document("a: 0xFF\nb: 0o17\nc: 0xFFFFFFFFFFFFFFFF\nd: 0xZZ\n", Format::Yaml).unwrap();
    assert_eq!(parsed.data["a"], json!(255));
    assert_eq!(parsed.data["b"], json!(15));
    assert_eq!(parsed.data["c"], json!(u64::MAX));
    assert_eq!(parsed.data["d"], json!("0xZZ"));
}

#[test]
fn yaml_numbers_that_fit_and_quoted_lookalikes_keep_their_meaning() {
    let text = "a: 1e300\nb: \"1e400\"\nc: !!str 1e400\nd: 1e400x\ne: -0.5E-3\n";
    let parsed = parse_document(text, Format::Yaml).unwrap();
    assert_eq!(parsed.data["a"], json!(1e300));
    assert_eq!(parsed.data["b"], Value::String("1e400".into()));
    assert_eq!(parsed.data["c"], Value::String("1e400".into()));
    assert_eq!(parsed.data["d"], Value::String("1e400x".into()));
    assert_eq!(parsed.data["e"], json!(-0.0005));
}

#[test]
fn yaml_errors_at_the_end_of_the_input_name_a_position_inside_it() {
    // Found by fuzzing (parse_yaml): the parser names the line after the last one at the end of
    // the input; the error now points at the end of the text.
    for (text, end) in [
        ("a: [\n  z", (2, 4)),
        ("a: [\n  z\r\u{1b}", (3, 2)),
        ("a\u{10}hosts: [\n  -N z\r\u{1b}", (3, 2)),
        ("a: [\r\n  z", (2, 4)),
    ] {
        let error = refused(text, Format::Yaml);
        assert_eq!(position(&error), end, "{text:?}: {error}");
        assert!(error.message.contains("flow sequence"), "{error}");
    }
    // A text ending in a line break has an empty last line: the position stays there.
    assert_eq!(position(&refused("a: 1\nb: [1, 2\n", Format::Yaml)), (3, 1));
}

#[test]
fn yaml_empty_values_at_the_end_of_the_input_are_placed_inside_it() {
    // Found by fuzzing (parse_yaml): the implicit null of an explicit key at the very end was
    // placed on the line after the last (`3:1` in a two-line text).
    let parsed = parse_document("?\r \u{10} ", Format::Yaml).unwrap();
    for (path, location) in parsed.locations.iter() {
        let Location::Text { line, column } = location else { panic!("{path}: {location:?}") };
        assert!(*line <= 2 && *column <= 5, "{path:?} at {line}:{column}");
    }
    let parsed = parse_document("a:\n  b:", Format::Yaml).unwrap();
    assert_eq!(parsed.data["a"], json!({"b": null}));
    assert!(text_location(&parsed, "a.b").0 <= 2);
}

#[test]
fn yaml_errors_after_unprintable_characters_name_a_column_inside_the_line() {
    // Found by fuzzing (parse_yaml): after a control character on a line of multi-byte characters
    // the parser named column 99 of a 91-character line.
    let line = "%------j\u{3e1}:\u{3e1}.0j{*\u{3e1}{*\u{3e1}: .i*\u{3e1}{*\u{3e1}:\u{3e1}.0j{*\u{3e1}{*\u{3e1}\u{3e1} .i*\u{3e1}{*\u{3e1}:\u{3e1}.0j{*\u{3e1}{*\u{3e1}:\u{3e1} .iA {b g.bas *base\u{2}\u{0}.h: 0x1F";
    let text = format!("{line}\nb: 0o1711Fc\n  text\ni: 0o1713\nost(.0 p {{ .-----{{");
    let error = refused(&text, Format::Yaml);
    let (line_number, column) = position(&error);
    let length = text.split('\n').nth(line_number as usize - 1).unwrap().chars().count() as u32;
    assert!(column <= length + 1, "column {column} past the end of line {line_number} ({length} characters): {error}");
}
