//! Strict JSON (RFC 8259: no comments, no trailing commas) with a location per node.
//!
//! One pass over the bytes builds the tree and the locations together. A generic JSON crate would
//! either drop positions (serde_json) or build a syntax tree first and the values from it in a
//! second pass (what this module did with `jsonc-parser`, at about three times serde_json's cost);
//! here line and column are tracked while scanning, and each node's dotted path is one reused buffer.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

use super::{depth_error, duplicate_key_error, top_level_error, LineIndex, ParseError, Parsed, MAX_DEPTH};
use crate::layer::Location;
use crate::locations::Locations;

pub(super) fn parse(text: &str) -> Result<Parsed, ParseError> {
    let mut parser = Parser::new(text);
    parser.document().map_err(|failure| failure.into_error(text))?;
    Ok(Parsed { data: parser.data, locations: parser.locations })
}

/// Why parsing stopped, at a byte offset; turned into line and column only when it happens.
struct Failure {
    offset: usize,
    kind: FailureKind,
}

enum FailureKind {
    Syntax(String),
    Depth,
    DuplicateKey(String),
    TopLevel(&'static str),
}

impl Failure {
    fn into_error(self, text: &str) -> ParseError {
        let position = Some(LineIndex::new(text).position(self.offset));
        match self.kind {
            FailureKind::Syntax(message) => ParseError::at(position, message),
            FailureKind::Depth => depth_error(position),
            FailureKind::DuplicateKey(path) => duplicate_key_error(position, &path),
            FailureKind::TopLevel(found) => top_level_error(found),
        }
    }
}

type Step<T> = Result<T, Failure>;

/// An object or array being filled, with the length of the path of its parent.
enum Container {
    Object { map: Map<String, Value>, key: String, key_offset: usize, parent_len: usize },
    Array { items: Vec<Value>, parent_len: usize },
}

impl Container {
    /// An empty container for its opening bracket (`{` or `[`).
    fn opened_by(bracket: u8, parent_len: usize) -> Self {
        match bracket {
            b'{' => Container::Object { map: Map::new(), key: String::new(), key_offset: 0, parent_len },
            _ => Container::Array { items: Vec::new(), parent_len },
        }
    }

    fn closing_bracket(&self) -> u8 {
        match self {
            Container::Object { .. } => b'}',
            Container::Array { .. } => b']',
        }
    }

    /// What may follow an entry: a comma or the closing bracket.
    fn after_entry(&self) -> &'static str {
        match self {
            Container::Object { .. } => "`,` or `}`",
            Container::Array { .. } => "`,` or `]`",
        }
    }

    fn parent_len(&self) -> usize {
        match self {
            Container::Object { parent_len, .. } | Container::Array { parent_len, .. } => *parent_len,
        }
    }

    /// Adds the value of the entry just parsed; a key the object already has gives the offset of
    /// the repeated key.
    fn add(&mut self, value: Value) -> Result<(), usize> {
        match self {
            Container::Object { map, key, key_offset, .. } => match map.insert(std::mem::take(key), value) {
                Some(_) => Err(*key_offset),
                None => Ok(()),
            },
            Container::Array { items, .. } => {
                items.push(value);
                Ok(())
            }
        }
    }

    fn into_value(self) -> Value {
        match self {
            Container::Object { map, .. } => Value::Object(map),
            Container::Array { items, .. } => Value::Array(items),
        }
    }
}

struct Parser<'t> {
    text: &'t str,
    bytes: &'t [u8],
    at: usize,
    /// 1-based line of `at`, the offset its line starts at, and the UTF-8 continuation bytes seen on
    /// that line before `at` (a column counts characters, not bytes).
    line: u32,
    line_start: usize,
    continuation_bytes: usize,
    /// The dotted path of the node being parsed (one buffer, truncated on the way back up).
    path: String,
    locations: Locations,
    data: Map<String, Value>,
}

impl<'t> Parser<'t> {
    fn new(text: &'t str) -> Self {
        Self {
            text,
            bytes: text.as_bytes(),
            at: 0,
            line: 1,
            line_start: 0,
            continuation_bytes: 0,
            path: String::new(),
            // About one node per 16 to 30 bytes in configuration files; a guess only saves rehashing.
            locations: Locations::with_capacity(text.len() / 16, text.len()),
            data: Map::new(),
        }
    }

    fn document(&mut self) -> Step<()> {
        // A byte-order mark some editors write: not part of the document, nor of its columns.
        if self.bytes.starts_with("\u{feff}".as_bytes()) {
            self.at = 3;
            self.line_start = 3;
        }
        self.skip_whitespace()?;
        match self.peek() {
            None => return Ok(()),
            Some(b'{') => {
                let Value::Object(map) = self.value()? else { unreachable!("a document at an opening brace is an object") };
                self.data = map;
            }
            Some(_) => {
                let found = match self.value()? {
                    Value::Array(_) => "an array",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    Value::Null => "null",
                    Value::Object(_) => unreachable!("objects are parsed above"),
                };
                return Err(self.fail_at(0, FailureKind::TopLevel(found)));
            }
        }
        self.skip_whitespace()?;
        if self.at < self.bytes.len() {
            return Err(self.syntax("text after the end of the document"));
        }
        Ok(())
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn location(&self) -> Location {
        let column = self.at - self.line_start - self.continuation_bytes + 1;
        Location::Text { line: self.line, column: column as u32 }
    }

    fn fail_at(&self, offset: usize, kind: FailureKind) -> Failure {
        Failure { offset, kind }
    }

    fn syntax(&self, message: impl Into<String>) -> Failure {
        self.fail_at(self.at, FailureKind::Syntax(message.into()))
    }

    fn unexpected(&self, wanted: &str) -> Failure {
        match self.text[self.at..].chars().next() {
            None => self.syntax(format!("unexpected end of the document, expected {wanted}")),
            Some(found) => self.syntax(format!("unexpected `{found}`, expected {wanted}")),
        }
    }

    /// Skips JSON whitespace, keeping the line count; comments are refused by name.
    fn skip_whitespace(&mut self) -> Step<()> {
        loop {
            let rest = &self.bytes[self.at..];
            let blank = rest.iter().position(|&b| !matches!(b, b' ' | b'\t' | b'\r')).unwrap_or(rest.len());
            self.at += blank;
            match rest.get(blank) {
                Some(b'\n') => {
                    self.at += 1;
                    self.line += 1;
                    self.line_start = self.at;
                    self.continuation_bytes = 0;
                }
                Some(b'/') if matches!(rest.get(blank + 1), Some(b'/' | b'*')) => {
                    return Err(self.syntax("comments are not allowed in JSON"));
                }
                _ => return Ok(()),
            }
        }
    }

    fn expect(&mut self, byte: u8, wanted: &str) -> Step<()> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.unexpected(wanted))
        }
    }

    /// The value at the current position (whitespace skipped). Containers are kept on an explicit
    /// stack, not the call stack: a worker thread's small stack must hold any nesting up to the limit.
    fn value(&mut self) -> Step<Value> {
        let mut open: Vec<Container> = Vec::new();
        loop {
            // A value starts here: a scalar, an empty container, or a container to fill.
            let mut done = match self.peek() {
                Some(bracket @ (b'{' | b'[')) => {
                    if open.len() + 1 > MAX_DEPTH {
                        return Err(self.fail_at(self.at, FailureKind::Depth));
                    }
                    let mut container = Container::opened_by(bracket, self.path.len());
                    self.at += 1;
                    self.skip_whitespace()?;
                    if self.peek() == Some(container.closing_bracket()) {
                        self.at += 1;
                        container.into_value()
                    } else {
                        self.start_entry(&mut container)?;
                        open.push(container);
                        continue;
                    }
                }
                Some(b'"') => Value::String(self.string()?),
                Some(b't') => self.literal("true", Value::Bool(true))?,
                Some(b'f') => self.literal("false", Value::Bool(false))?,
                Some(b'n') => self.literal("null", Value::Null)?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                _ => return Err(self.unexpected("a value")),
            };
            // Hand the finished value to its container; close every container that ends here.
            loop {
                let Some(container) = open.last_mut() else { return Ok(done) };
                // The path is the finished value's own until here.
                if let Err(key_offset) = container.add(done) {
                    return Err(self.fail_at(key_offset, FailureKind::DuplicateKey(self.path.clone())));
                }
                self.path.truncate(container.parent_len());
                self.skip_whitespace()?;
                match self.peek() {
                    Some(b',') => {
                        self.at += 1;
                        self.skip_whitespace()?;
                        self.start_entry(container)?;
                        break;
                    }
                    Some(byte) if byte == container.closing_bracket() => {
                        self.at += 1;
                        done = open.pop().expect("the container just filled").into_value();
                    }
                    _ => return Err(self.unexpected(container.after_entry())),
                }
            }
        }
    }

    /// Starts the next entry of a container: an object member's key and `:`, or an array element;
    /// then the entry's path and location.
    fn start_entry(&mut self, container: &mut Container) -> Step<()> {
        if container.parent_len() > 0 {
            self.path.push('.');
        }
        match container {
            Container::Object { map, key, key_offset, .. } => {
                if self.peek() != Some(b'"') {
                    let wanted = if map.is_empty() { "a key in double quotes or `}`" } else { "a key in double quotes" };
                    return Err(self.trailing_comma_or(b'}', wanted));
                }
                *key_offset = self.at;
                *key = self.string()?;
                self.path.push_str(key);
                self.skip_whitespace()?;
                self.expect(b':', "`:` after the key")?;
                self.skip_whitespace()?;
            }
            Container::Array { items, .. } => {
                if self.peek() == Some(b']') {
                    return Err(self.syntax("trailing commas are not allowed in JSON"));
                }
                // Writing to a String cannot fail.
                let _ = write!(self.path, "{}", items.len());
            }
        }
        self.record();
        Ok(())
    }

    /// The location of the node at `self.path`, which starts at the current position.
    fn record(&mut self) {
        let location = self.location();
        self.locations.insert(&self.path, location);
    }

    /// After a comma: a closing bracket there is a trailing comma, anything else is `wanted` missing.
    fn trailing_comma_or(&self, close: u8, wanted: &str) -> Failure {
        if self.peek() == Some(close) {
            self.syntax("trailing commas are not allowed in JSON")
        } else {
            self.unexpected(wanted)
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Step<Value> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.unexpected("a value"))
        }
    }

    /// A string at `"`; strings cannot span lines (a raw line break is a control character).
    fn string(&mut self) -> Step<String> {
        self.at += 1; // `"`
        let start = self.at;
        // The common case: no escape, one copy of the text between the quotes.
        self.plain_run(start)?;
        if self.bytes[self.at] == b'"' {
            self.at += 1;
            return Ok(self.text[start..self.at - 1].to_owned());
        }
        let mut out = String::with_capacity(self.at - start + 16);
        out.push_str(&self.text[start..self.at]);
        loop {
            self.escape(&mut out)?;
            let run_start = self.at;
            self.plain_run(start)?;
            out.push_str(&self.text[run_start..self.at]);
            if self.bytes[self.at] == b'"' {
                self.at += 1;
                return Ok(out);
            }
        }
    }

    /// Moves to the next closing quote or backslash of a string opened at `opened` (counting the characters of the
    /// text passed); a control character or the end of the text fails.
    fn plain_run(&mut self, opened: usize) -> Step<()> {
        let rest = &self.bytes[self.at..];
        let Some(length) = rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20) else {
            return Err(self.fail_at(opened - 1, FailureKind::Syntax("unterminated string".into())));
        };
        let run_start = self.at;
        self.at += length;
        self.count_continuation_bytes(run_start);
        if rest[length] < 0x20 {
            return Err(self.control_character());
        }
        Ok(())
    }

    /// Columns count characters: the non-first bytes of multi-byte characters in `[from, at)`.
    fn count_continuation_bytes(&mut self, from: usize) {
        let run = &self.bytes[from..self.at];
        if !run.is_ascii() {
            self.continuation_bytes += run.iter().filter(|&&b| (b & 0xC0) == 0x80).count();
        }
    }

    fn control_character(&self) -> Failure {
        let byte = self.bytes[self.at];
        self.syntax(format!("control character U+{byte:04X} in a string (write it escaped)"))
    }

    /// One escape sequence at `\`, appended to `out`.
    fn escape(&mut self, out: &mut String) -> Step<()> {
        let escape_at = self.at;
        self.at += 1; // `\`
        let Some(byte) = self.peek() else {
            return Err(self.fail_at(escape_at, FailureKind::Syntax("unterminated string".into())));
        };
        self.at += 1;
        let decoded = match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => self.unicode_escape(escape_at)?,
            _ => return Err(self.fail_at(escape_at, FailureKind::Syntax(format!("invalid escape `\\{}`", byte as char)))),
        };
        out.push(decoded);
        Ok(())
    }

    /// `\uXXXX`, or a surrogate pair of two; the `u` is consumed.
    fn unicode_escape(&mut self, escape_at: usize) -> Step<char> {
        let invalid = |parser: &Self| parser.fail_at(escape_at, FailureKind::Syntax("invalid `\\u` escape".into()));
        let first = self.hex4().ok_or_else(|| invalid(self))?;
        let code = match first {
            0xD800..=0xDBFF => {
                if !self.bytes[self.at..].starts_with(b"\\u") {
                    return Err(invalid(self));
                }
                self.at += 2;
                let second = self.hex4().ok_or_else(|| invalid(self))?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(invalid(self));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(invalid(self)),
            code => code,
        };
        char::from_u32(code).ok_or_else(|| invalid(self))
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.bytes.get(self.at..self.at + 4)?;
        let mut code = 0;
        for &digit in digits {
            code = code * 16 + (digit as char).to_digit(16)?;
        }
        self.at += 4;
        Some(code)
    }

    /// A number as RFC 8259 writes it: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Step<Value> {
        let start = self.at;
        let digits = |parser: &mut Self| {
            let from = parser.at;
            while parser.peek().is_some_and(|b| b.is_ascii_digit()) {
                parser.at += 1;
            }
            parser.at - from
        };
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.at += 1;
                if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    return Err(self.fail_at(start, FailureKind::Syntax("numbers may not start with a leading zero".into())));
                }
            }
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.unexpected("a digit")),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            integer = false;
            self.at += 1;
            if digits(self) == 0 {
                return Err(self.unexpected("a digit after `.`"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            integer = false;
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return Err(self.unexpected("a digit in the exponent"));
            }
        }
        let text = &self.text[start..self.at];
        let number = if integer { integer_value(text) } else { None };
        number
            .or_else(|| text.parse::<f64>().ok().and_then(Number::from_f64))
            .map(Value::Number)
            .ok_or_else(|| self.fail_at(start, FailureKind::Syntax(format!("number `{text}` cannot be represented"))))
    }
}

/// An integer as i64, or u64 above i64's range; None past both (it becomes a float), and for `-0`,
/// which serde_json also reads as the float -0.0.
fn integer_value(text: &str) -> Option<Number> {
    if text == "-0" {
        return None;
    }
    if let Ok(i) = text.parse::<i64>() {
        return Some(i.into());
    }
    text.parse::<u64>().ok().map(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locations(text: &str) -> Vec<(String, u32, u32)> {
        let parsed = parse(text).unwrap();
        let mut found: Vec<_> = parsed
            .locations
            .iter()
            .map(|(path, location)| match location {
                Location::Text { line, column } => (path.to_string(), *line, *column),
                other => panic!("{other:?}"),
            })
            .collect();
        found.sort();
        found
    }

    #[test]
    fn every_node_has_its_line_and_character_column() {
        let text = "{\n  \"é\": \"ü\", \"a\": {\"b\": [1, {\"c\": null}]},\n\t\"z\": \"\\u00e9\\ud83d\\ude00\"\n}";
        assert_eq!(
            locations(text),
            vec![
                ("a".into(), 2, 18),
                ("a.b".into(), 2, 24),
                ("a.b.0".into(), 2, 25),
                ("a.b.1".into(), 2, 28),
                ("a.b.1.c".into(), 2, 34),
                ("z".into(), 3, 7),
                ("é".into(), 2, 8),
            ]
        );
        let parsed = parse(text).unwrap();
        assert_eq!(parsed.data["z"], Value::String("é😀".into()));
    }

    #[test]
    fn values_equal_serde_json() {
        let text = r#"{"i": -12, "u": 18446744073709551615, "big": 1e400, "f": 0.5e-3, "s": "a\"b\\c\/\n", "t": true, "n": null, "a": [], "o": {}}"#;
        let expected: Value = serde_json::from_str(text.replace("1e400", "1").as_str()).unwrap();
        let error = parse(text).unwrap_err();
        assert!(error.message.contains("cannot be represented"), "{error}");
        let parsed = parse(&text.replace("1e400", "1")).unwrap();
        assert_eq!(Value::Object(parsed.data), expected);
    }

    #[test]
    fn refusals_name_line_and_column() {
        for (text, position, says) in [
            ("{\"a\": 1,}", (1, 9), "trailing commas"),
            ("{\"a\": [1,]}", (1, 10), "trailing commas"),
            ("{\n  // note\n}", (2, 3), "comments"),
            ("{\"a\" 1}", (1, 6), "`:`"),
            ("{\"a\": 1 \"b\": 2}", (1, 9), "`,` or `}`"),
            ("{\"a\": 01}", (1, 7), "leading zero"),
            ("{\"a\": \"x\ny\"}", (1, 9), "control character"),
            ("{\"a\": \"x", (1, 7), "unterminated"),
            ("{\"a\": \"\\q\"}", (1, 8), "invalid escape"),
            ("{\"a\": \"\\ud800\"}", (1, 8), "`\\u`"),
            ("{\"a\": tru}", (1, 7), "expected a value"),
            ("{} {}", (1, 4), "after the end"),
            ("{\"a\": 1, \"a\": 2}", (1, 10), "duplicate key `a`"),
        ] {
            let error = parse(text).unwrap_err();
            assert_eq!((error.line, error.column), (Some(position.0), Some(position.1)), "{text}: {error}");
            assert!(error.message.contains(says), "{text}: {error}");
        }
        assert!(parse("[1]").unwrap_err().message.contains("found an array"));
        assert!(parse("  \n").unwrap().data.is_empty());
    }
}
