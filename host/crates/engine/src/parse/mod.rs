//! Text → configuration tree with the line and column of every node.
//!
//! Each format module turns text into a JSON object plus a [`Location`] per dotted path, refusing
//! duplicate keys, nesting deeper than [`MAX_DEPTH`] and values JSON cannot represent. Parsing is
//! pure: reading files is the host's job.

mod json;
mod toml;
mod yaml;

use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use crate::layer::Location;

/// Deepest nesting accepted in a configuration file; deeper input is refused, never recursed into.
pub const MAX_DEPTH: usize = 128;

/// The formats a configuration file may be written in, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Json,
    Yaml,
    Toml,
}

impl Format {
    /// The format for a file extension (`json`, `yaml`, `yml`, `toml`), if it is one.
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }

    /// Every accepted extension.
    pub const EXTENSIONS: [&'static str; 4] = ["json", "yaml", "yml", "toml"];
}

/// A parsed document: its top-level object and the location of every node.
#[derive(Debug, Default)]
pub struct Parsed {
    pub data: Map<String, Value>,
    pub locations: FxHashMap<Box<str>, Location>,
}

/// Why a document could not be parsed. Line and column are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", position_prefix(*line, *column))]
pub struct ParseError {
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub message: String,
}

fn position_prefix(line: Option<u32>, column: Option<u32>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!("{line}:{column}: "),
        (Some(line), None) => format!("{line}: "),
        _ => String::new(),
    }
}

impl ParseError {
    pub(crate) fn at(position: Option<(u32, u32)>, message: impl Into<String>) -> Self {
        Self { line: position.map(|p| p.0), column: position.map(|p| p.1), message: message.into() }
    }
}

/// Parses a document whose top level must be an object (an empty document is an empty object).
pub fn parse_document(text: &str, format: Format) -> Result<Parsed, ParseError> {
    match format {
        Format::Json => json::parse(text),
        Format::Yaml => yaml::parse(text),
        Format::Toml => toml::parse(text),
    }
}

/// Byte offset → 1-based (line, column in characters).
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(memchr_newlines(text));
        Self { text, line_starts }
    }

    pub(crate) fn position(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[line];
        let column = self.text.get(start..offset).map_or(offset - start, |s| s.chars().count());
        (line as u32 + 1, column as u32 + 1)
    }

    pub(crate) fn location(&self, offset: usize) -> Location {
        let (line, column) = self.position(offset);
        Location::Text { line, column }
    }
}

fn memchr_newlines(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.bytes().enumerate().filter(|&(_, b)| b == b'\n').map(|(i, _)| i + 1)
}

/// Shared builder state: the path being built and the locations found so far.
pub(crate) struct Collector {
    pub(crate) locations: FxHashMap<Box<str>, Location>,
}

impl Collector {
    pub(crate) fn new() -> Self {
        Self { locations: FxHashMap::default() }
    }

    pub(crate) fn record(&mut self, path: &str, location: Location) {
        self.locations.insert(path.into(), location);
    }
}

pub(crate) fn depth_error(position: Option<(u32, u32)>) -> ParseError {
    ParseError::at(position, format!("nesting deeper than {MAX_DEPTH} levels"))
}

pub(crate) fn duplicate_key_error(position: Option<(u32, u32)>, path: &str) -> ParseError {
    ParseError::at(position, format!("duplicate key `{path}`"))
}

pub(crate) fn top_level_error(found: &str) -> ParseError {
    ParseError::at(Some((1, 1)), format!("the top level must be an object (a table of keys), found {found}"))
}
