//! Strict JSON (no comments, no trailing commas) with a location per node, via `jsonc-parser`.

use jsonc_parser::ast;
use jsonc_parser::common::Ranged;
use jsonc_parser::{CollectOptions, ParseOptions};
use serde_json::{Map, Number, Value};

use super::{depth_error, duplicate_key_error, top_level_error, Collector, LineIndex, ParseError, Parsed, MAX_DEPTH};
use crate::path;

pub(super) fn parse(text: &str) -> Result<Parsed, ParseError> {
    let strict = ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        ..ParseOptions::default()
    };
    let lines = LineIndex::new(text);
    // jsonc-parser recurses per level; refuse deep input before it can exhaust a small thread stack.
    if let Some(offset) = too_deep_at(text) {
        return Err(depth_error(Some(lines.position(offset))));
    }
    let result = jsonc_parser::parse_to_ast(text, &CollectOptions::default(), &strict).map_err(|error| {
        ParseError::at(Some(lines.position(error.range().start)), error.kind().to_string())
    })?;
    let mut collector = Collector::new();
    let data = match result.value {
        None => Map::new(),
        Some(ast::Value::Object(object)) => {
            let mut builder = Builder { lines: &lines, collector: &mut collector };
            builder.object(&object, "", 1)?
        }
        Some(other) => return Err(top_level_error(kind_name(&other))),
    };
    Ok(Parsed { data, locations: collector.locations })
}

struct Builder<'a, 'c> {
    lines: &'a LineIndex<'a>,
    collector: &'c mut Collector,
}

impl Builder<'_, '_> {
    fn object(&mut self, object: &ast::Object<'_>, prefix: &str, depth: usize) -> Result<Map<String, Value>, ParseError> {
        if depth > MAX_DEPTH {
            return Err(depth_error(Some(self.lines.position(object.range.start))));
        }
        let mut map = Map::with_capacity(object.properties.len());
        for property in &object.properties {
            let key = property.name.as_str().to_owned();
            let child_path = path::join(prefix, &key);
            if map.contains_key(&key) {
                return Err(duplicate_key_error(Some(self.lines.position(property.name.range().start)), &child_path));
            }
            let value = self.value(&property.value, &child_path, depth + 1)?;
            map.insert(key, value);
        }
        Ok(map)
    }

    fn value(&mut self, node: &ast::Value<'_>, path: &str, depth: usize) -> Result<Value, ParseError> {
        self.collector.record(path, self.lines.location(node.range().start));
        Ok(match node {
            ast::Value::Object(object) => Value::Object(self.object(object, path, depth)?),
            ast::Value::Array(array) => {
                if depth > MAX_DEPTH {
                    return Err(depth_error(Some(self.lines.position(array.range.start))));
                }
                let mut items = Vec::with_capacity(array.elements.len());
                for (index, element) in array.elements.iter().enumerate() {
                    items.push(self.value(element, &path::join(path, &index.to_string()), depth + 1)?);
                }
                Value::Array(items)
            }
            ast::Value::StringLit(s) => Value::String(s.value.to_string()),
            ast::Value::BooleanLit(b) => Value::Bool(b.value),
            ast::Value::NullKeyword(_) => Value::Null,
            ast::Value::NumberLit(n) => number(n.value)
                .ok_or_else(|| ParseError::at(Some(self.lines.position(n.range.start)), format!("number `{}` cannot be represented", n.value)))?,
        })
    }
}

/// The byte offset where bracket nesting first exceeds [`MAX_DEPTH`], skipping string contents.
fn too_deep_at(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, byte) in text.bytes().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(offset);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

fn number(text: &str) -> Option<Value> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(Value::Number(i.into()));
    }
    if let Ok(u) = text.parse::<u64>() {
        return Some(Value::Number(u.into()));
    }
    text.parse::<f64>().ok().and_then(Number::from_f64).map(Value::Number)
}

fn kind_name(value: &ast::Value<'_>) -> &'static str {
    match value {
        ast::Value::Array(_) => "an array",
        ast::Value::StringLit(_) => "a string",
        ast::Value::NumberLit(_) => "a number",
        ast::Value::BooleanLit(_) => "a boolean",
        ast::Value::NullKeyword(_) => "null",
        ast::Value::Object(_) => "an object",
    }
}
