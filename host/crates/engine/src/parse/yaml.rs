//! YAML (1.2 core schema) with a location per node, built from `saphyr-parser` events with an
//! explicit stack, so deep nesting is refused instead of overflowing the call stack.

use rustc_hash::FxHashMap;
use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

use super::{depth_error, duplicate_key_error, top_level_error, Collector, ParseError, Parsed, MAX_DEPTH};
use crate::layer::Location;
use crate::path;

/// Copies made by anchors and aliases beyond this many nodes in all are refused ("billion laughs").
const MAX_ALIAS_NODES: usize = 1_000_000;
/// Copies beyond this many bytes of keys and scalars in all are refused: a few aliases of
/// one large string stay under the node limit yet expand to gigabytes. As much as the largest
/// configuration file the host reads (16 MiB): an alias may double a file, no more.
const MAX_ALIAS_BYTES: usize = 16 * 1024 * 1024;

/// An anchored value, with its size counted once when the anchor completes.
struct Anchored {
    value: Value,
    size: Size,
}

/// What copying a value costs: its nodes, and the bytes of its keys and scalars.
#[derive(Clone, Copy, Default)]
struct Size {
    nodes: usize,
    bytes: usize,
}

enum Frame {
    Mapping { map: Map<String, Value>, path: String, key: Option<String>, anchor: usize },
    Sequence { items: Vec<Value>, path: String, anchor: usize },
}

fn position(span: &Span) -> (u32, u32) {
    (span.start.line() as u32, span.start.col() as u32 + 1)
}

pub(super) fn parse(text: &str) -> Result<Parsed, ParseError> {
    let mut collector = Collector::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: FxHashMap<usize, Anchored> = FxHashMap::default();
    let mut expanded = Size::default();
    let mut root: Option<Value> = None;
    let mut documents = 0;

    let end = end_position(text);
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|error| {
            let marker = error.marker();
            let reported = (marker.line() as u32, marker.col() as u32 + 1);
            // At the end of the input the parser names the line after the last one, and after some
            // unprintable characters a column past the line's end: name a place inside the text.
            ParseError::at(Some(within_line(text, reported.min(end))), error.info().to_owned())
        })?;
        // An empty value at the end of the input is placed after the last line: keep it inside.
        let here = position(&span).min(end);
        // The path a value arriving now would take, or None when it is a mapping key.
        let value_path = match stack.last() {
            Some(Frame::Mapping { path, key: Some(key), .. }) => Some(path::join(path, key)),
            Some(Frame::Mapping { key: None, .. }) => None,
            Some(Frame::Sequence { path, items, .. }) => Some(path::join(path, &items.len().to_string())),
            None => Some(String::new()),
        };
        let completed = match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => None,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(ParseError::at(Some(here), "more than one YAML document in a configuration file"));
                }
                None
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                let Some(path) = value_path else {
                    return Err(ParseError::at(Some(here), "a mapping key must be a plain value, not a mapping or sequence"));
                };
                if stack.len() >= MAX_DEPTH {
                    return Err(depth_error(Some(here)));
                }
                if !path.is_empty() {
                    collector.record(&path, Location::Text { line: here.0, column: here.1 });
                }
                stack.push(if matches!(event, Event::MappingStart(..)) {
                    Frame::Mapping { map: Map::new(), path, key: None, anchor }
                } else {
                    Frame::Sequence { items: Vec::new(), path, anchor }
                });
                None
            }
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Mapping { map, anchor, .. }) => Some((Value::Object(map), anchor)),
                _ => return Err(ParseError::at(Some(here), "unbalanced mapping end")),
            },
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Sequence { items, anchor, .. }) => Some((Value::Array(items), anchor)),
                _ => return Err(ParseError::at(Some(here), "unbalanced sequence end")),
            },
            Event::Scalar(text, style, anchor, tag) => {
                let forced_string = tag.as_ref().is_some_and(|tag| tag.suffix == "str");
                match value_path {
                    None => {
                        // A mapping key.
                        let Some(Frame::Mapping { map, path, key, .. }) = stack.last_mut() else { unreachable!() };
                        if map.contains_key(text.as_ref()) {
                            return Err(duplicate_key_error(Some(here), &path::join(path, &text)));
                        }
                        *key = Some(text.into_owned());
                        None
                    }
                    Some(path) => {
                        let value = if style == ScalarStyle::Plain && !forced_string {
                            resolve_plain(&text).map_err(|message| ParseError::at(Some(here), message))?
                        } else {
                            Value::String(text.into_owned())
                        };
                        if !path.is_empty() {
                            collector.record(&path, Location::Text { line: here.0, column: here.1 });
                        }
                        Some((value, anchor))
                    }
                }
            }
            Event::Alias(anchor) => {
                let Some(Anchored { value, size }) = anchors.get(&anchor) else {
                    return Err(ParseError::at(Some(here), "alias to an unknown anchor"));
                };
                expanded.charge(*size, here)?;
                match value_path {
                    None => return Err(ParseError::at(Some(here), "an alias cannot be a mapping key")),
                    Some(path) => {
                        if !path.is_empty() {
                            collector.record(&path, Location::Text { line: here.0, column: here.1 });
                        }
                        Some((value.clone(), 0))
                    }
                }
            }
        };
        if let Some((value, anchor)) = completed {
            if anchor != 0 {
                // The copy kept for later aliases is itself a copy: it counts, so anchors alone
                // cannot multiply memory either.
                let size = size_of(&value);
                expanded.charge(size, here)?;
                anchors.insert(anchor, Anchored { size, value: value.clone() });
            }
            match stack.last_mut() {
                Some(Frame::Mapping { map, key, .. }) => {
                    let key = key.take().expect("a value in a mapping follows its key");
                    map.insert(key, value);
                }
                Some(Frame::Sequence { items, .. }) => items.push(value),
                None => root = Some(value),
            }
        }
    }

    let data = match root {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(Value::Array(_)) => return Err(top_level_error("a sequence")),
        Some(_) => return Err(top_level_error("a scalar")),
    };
    Ok(Parsed { data, locations: collector.locations })
}

impl Size {
    /// Adds one copy's size to the running total, refusing once either bound is passed.
    fn charge(&mut self, copy: Size, here: (u32, u32)) -> Result<(), ParseError> {
        self.nodes = self.nodes.saturating_add(copy.nodes);
        self.bytes = self.bytes.saturating_add(copy.bytes);
        if self.nodes > MAX_ALIAS_NODES {
            return Err(ParseError::at(Some(here), format!("aliases expand to more than {MAX_ALIAS_NODES} nodes")));
        }
        if self.bytes > MAX_ALIAS_BYTES {
            let mib = MAX_ALIAS_BYTES / (1024 * 1024);
            return Err(ParseError::at(Some(here), format!("aliases expand to more than {mib} MiB of text")));
        }
        Ok(())
    }
}

/// `(line, column)` with the column kept at most one past the end of that line (lines broken as
/// YAML breaks them). Only called for an error, so the walk over the text costs nothing on success.
fn within_line(text: &str, (line, column): (u32, u32)) -> (u32, u32) {
    let mut lines = text.split("\r\n").flat_map(|part| part.split(['\n', '\r']));
    let length = lines.nth(line.saturating_sub(1) as usize).map_or(0, |l| l.chars().count() as u32);
    (line, column.min(length + 1))
}

/// The 1-based line and column just after the last character, lines broken as YAML breaks
/// them (`\r\n`, `\r` or `\n`).
fn end_position(text: &str) -> (u32, u32) {
    let last_break = text.rfind(['\n', '\r']);
    let breaks = text.matches('\n').count() + text.matches('\r').count() - text.matches("\r\n").count();
    let last_line = last_break.map_or(text, |i| &text[i + 1..]);
    (breaks as u32 + 1, last_line.chars().count() as u32 + 1)
}

/// Nodes and bytes of a value. Walked once per anchor; what it walks was itself bounded when built.
fn size_of(value: &Value) -> Size {
    let mut size = Size::default();
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        size.nodes += 1;
        match value {
            Value::Object(map) => {
                size.bytes += map.keys().map(String::len).sum::<usize>();
                pending.extend(map.values());
            }
            Value::Array(items) => pending.extend(items),
            Value::String(s) => size.bytes += s.len(),
            // Numbers, booleans and null: about what their text would take.
            _ => size.bytes += 8,
        }
    }
    size
}

/// Resolves a plain scalar by the YAML 1.2 core schema.
fn resolve_plain(text: &str) -> Result<Value, String> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF" | ".nan" | ".NaN" | ".NAN" => {
            return Err(format!("`{text}` cannot be represented in JSON"));
        }
        _ => {}
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if let Ok(u) = text.parse::<u64>() {
            return Ok(Value::Number(u.into()));
        }
    }
    let unrepresentable = || format!("`{text}` cannot be represented in JSON");
    for (prefix, radix) in [("0x", 16), ("0o", 8)] {
        if let Some(digits) = text.strip_prefix(prefix) {
            // The core schema's `0x[0-9a-fA-F]+` and `0o[0-7]+` are integers: too large is refused,
            // as JSON and TOML refuse it, never kept as a string.
            if !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix)) {
                return u64::from_str_radix(digits, radix).map(|n| Value::Number(n.into())).map_err(|_| unrepresentable());
            }
        }
    }
    if looks_like_float(text) {
        // Beyond f64 (`1e400`) parses to infinity, which JSON cannot hold: refused like `.inf`.
        return text.parse::<f64>().ok().and_then(Number::from_f64).map(Value::Number).ok_or_else(unrepresentable);
    }
    Ok(Value::String(text.to_owned()))
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn looks_like_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => (digits(int) && (frac.is_empty() || digits(frac))) || (int.is_empty() && digits(frac)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}
