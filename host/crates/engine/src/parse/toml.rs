//! TOML with a location per node, via `toml`'s spanned parser. The parser itself refuses duplicates.

use serde_json::{Map, Number, Value};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::{depth_error, Collector, LineIndex, ParseError, Parsed, MAX_DEPTH};
use crate::path;

pub(super) fn parse(text: &str) -> Result<Parsed, ParseError> {
    let lines = LineIndex::new(text);
    let table = DeTable::parse(text).map_err(|error| {
        ParseError::at(error.span().map(|span| lines.position(span.start)), error.message().trim().to_owned())
    })?;
    let mut builder = Builder { lines: &lines, collector: Collector::new() };
    let data = builder.table(table.get_ref(), "", 1)?;
    Ok(Parsed { data, locations: builder.collector.locations })
}

struct Builder<'a> {
    lines: &'a LineIndex<'a>,
    collector: Collector,
}

impl Builder<'_> {
    fn table(&mut self, table: &DeTable<'_>, prefix: &str, depth: usize) -> Result<Map<String, Value>, ParseError> {
        let mut map = Map::with_capacity(table.len());
        for (key, value) in table.iter() {
            let child_path = path::join(prefix, key.get_ref());
            let converted = self.value(value, &child_path, depth + 1)?;
            map.insert(key.get_ref().to_string(), converted);
        }
        Ok(map)
    }

    fn value(&mut self, node: &Spanned<DeValue<'_>>, path: &str, depth: usize) -> Result<Value, ParseError> {
        let position = self.lines.position(node.span().start);
        if depth > MAX_DEPTH {
            return Err(depth_error(Some(position)));
        }
        self.collector.record(path, self.lines.location(node.span().start));
        let unrepresentable = |what: &str| ParseError::at(Some(position), format!("{what} cannot be represented in JSON"));
        Ok(match node.get_ref() {
            DeValue::String(s) => Value::String(s.to_string()),
            DeValue::Boolean(b) => Value::Bool(*b),
            DeValue::Datetime(d) => Value::String(d.to_string()),
            DeValue::Integer(i) => {
                let digits = i.as_str().replace('_', "");
                i64::from_str_radix(&digits, i.radix())
                    .map(|n| Value::Number(n.into()))
                    .map_err(|_| unrepresentable(&format!("integer `{}`", i.as_str())))?
            }
            DeValue::Float(f) => {
                let digits = f.as_str().replace('_', "");
                digits
                    .parse::<f64>()
                    .ok()
                    .and_then(Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| unrepresentable(&format!("float `{}`", f.as_str())))?
            }
            DeValue::Array(array) => {
                let mut items = Vec::new();
                for (index, element) in array.into_iter().enumerate() {
                    items.push(self.value(element, &path::join(path, &index.to_string()), depth + 1)?);
                }
                Value::Array(items)
            }
            DeValue::Table(table) => Value::Object(self.table(table, path, depth)?),
        })
    }
}
