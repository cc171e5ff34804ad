//! The JSON parser against serde_json on random token soup: both accept the same documents and
//! read the same values, apart from the differences that are ours on purpose (the top level must be
//! an object, an empty document is an empty one, duplicate keys are refused).

use potter_engine::{parse_document, Format};
use serde_json::Value;

const TOKENS: &[&str] = &[
    "{", "}", "[", "]", ",", ":", "\"a\"", "\"b\"", "\"\\u00e9\"", "\"\\ud83d\\ude00\"", "\"\\n\"", "\"é\"", "0", "-0", "12",
    "-3.5e2", "1e400", "01", "1.", ".5", "true", "null", "nul", " ", "\n", "\t", "\"x", "\\", "//",
];

/// xorshift64*: deterministic, so a failure names a seed that reproduces it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize
    }
}

/// A random document, mostly well-formed: an object of random members, with random damage.
fn document(rng: &mut Rng, depth: usize, out: &mut String) {
    match rng.next() % 10 {
        0 if depth < 4 => {
            out.push('[');
            for i in 0..rng.next() % 4 {
                if i > 0 {
                    out.push(',');
                }
                document(rng, depth + 1, out);
            }
            out.push(']');
        }
        1..=3 if depth < 4 => {
            out.push('{');
            for i in 0..rng.next() % 4 {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(["\"a\"", "\"b\"", "\"c.d\"", "\"é\""][rng.next() % 4]);
                out.push(':');
                document(rng, depth + 1, out);
            }
            out.push('}');
        }
        _ => out.push_str(TOKENS[rng.next() % TOKENS.len()]),
    }
    if rng.next() % 40 == 0 {
        out.push_str(TOKENS[rng.next() % TOKENS.len()]);
    }
}

/// serde_json keeps the last of duplicate keys; this counts the members of the raw text instead.
fn has_duplicate_keys(text: &str) -> bool {
    let mut depth_keys: Vec<Vec<String>> = Vec::new();
    let mut chars = text.chars().peekable();
    let mut last_string: Option<String> = None;
    while let Some(c) = chars.next() {
        match c {
            '{' => depth_keys.push(Vec::new()),
            '[' => depth_keys.push(vec!["[".into()]),
            '}' | ']' => {
                depth_keys.pop();
            }
            '"' => {
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            s.push(c);
                            s.extend(chars.next());
                        }
                        '"' => break,
                        _ => s.push(c),
                    }
                }
                last_string = Some(s);
            }
            ':' => {
                let key = serde_json::from_str::<String>(&format!("\"{}\"", last_string.take().unwrap_or_default())).unwrap_or_default();
                if let Some(keys) = depth_keys.last_mut() {
                    if keys.contains(&key) {
                        return true;
                    }
                    keys.push(key);
                }
            }
            _ => {}
        }
    }
    false
}

/// Equal values, floats within one rounding step: serde_json's default float parsing is not always
/// correctly rounded (its `float_roundtrip` feature is), ours is Rust's, which is.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || ((x - y) / y).abs() < 1e-15
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().zip(y).all(|((kx, x), (ky, y))| kx == ky && same(x, y)),
        _ => a == b,
    }
}

#[test]
fn accepts_and_reads_what_serde_json_does() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut compared = 0;
    for case in 0..200_000 {
        let mut text = String::new();
        if rng.next() % 8 != 0 {
            text.push('{');
            for i in 0..rng.next() % 3 {
                if i > 0 {
                    text.push(',');
                }
                text.push_str("\"k\":");
                document(&mut rng, 1, &mut text);
            }
            text.push('}');
        } else {
            document(&mut rng, 0, &mut text);
        }
        let ours = parse_document(&text, Format::Json);
        let theirs = serde_json::from_str::<Value>(&text);
        match (&ours, &theirs) {
            (Ok(parsed), Ok(value)) => {
                let ours = Value::Object(parsed.data.clone());
                assert!(same(&ours, value), "case {case}: {text}: {ours} against {value}");
                compared += 1;
            }
            (Err(_), Ok(Value::Object(_))) if has_duplicate_keys(&text) => {}
            (Err(_), Ok(Value::Object(_))) => panic!("case {case}: refused what serde_json reads: {text}: {}", ours.unwrap_err()),
            (Err(_), Ok(_)) => {} // not an object at the top level
            (Ok(parsed), Err(_)) => assert!(text.trim().is_empty() && parsed.data.is_empty(), "case {case}: accepted what serde_json refuses: {text}"),
            (Err(_), Err(_)) => {}
        }
    }
    assert!(compared > 10_000, "too few well-formed cases to mean anything: {compared}");
}
