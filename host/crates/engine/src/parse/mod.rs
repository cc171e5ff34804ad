//! Text → configuration tree with the line and column of every node.
//!
//! Each format module turns text into a JSON object plus a [`Location`] per dotted path, refusing
//! duplicate keys, nesting deeper than [`MAX_DEPTH`] and values JSON cannot represent. Parsing is
//! pure: reading files is the host's job.

mod json;
mod toml;
mod yaml;

use serde_json::{Map, Value};

use crate::layer::Location;
use crate::locations::Locations;

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
    pub locations: Locations,
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

/// Byte offset → 1-based (line, column in characters), in time independent of the line's length.
///
/// Columns count characters, so a column is the number of characters between the line start and the
/// offset. Counting them from the line start on every call is quadratic on one long line (minified
/// JSON); instead the index holds the character count at every [`CHUNK`]-byte boundary and counts at
/// most one chunk by hand.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
    /// `chars_before_chunk[i]`: characters in `text[..i * CHUNK]`.
    chars_before_chunk: Vec<u32>,
}

const CHUNK: usize = 64;

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        let mut line_starts = vec![0];
        let mut chars_before_chunk = Vec::with_capacity(bytes.len() / CHUNK + 1);
        let mut chars = 0u32;
        for (chunk_index, chunk) in bytes.chunks(CHUNK).enumerate() {
            chars_before_chunk.push(chars);
            let chunk_start = chunk_index * CHUNK;
            for (i, &byte) in chunk.iter().enumerate() {
                if byte == b'\n' {
                    line_starts.push(chunk_start + i + 1);
                }
            }
            chars = chars.saturating_add(count_chars(chunk));
        }
        chars_before_chunk.push(chars);
        Self { text, line_starts, chars_before_chunk }
    }

    pub(crate) fn position(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let column = self.chars_before(offset).saturating_sub(self.chars_before(self.line_starts[line]));
        (line as u32 + 1, column.saturating_add(1))
    }

    pub(crate) fn location(&self, offset: usize) -> Location {
        let (line, column) = self.position(offset);
        Location::Text { line, column }
    }

    /// Characters in `text[..offset]` (an offset inside a character counts that character as before it).
    fn chars_before(&self, offset: usize) -> u32 {
        let chunk = offset / CHUNK;
        let start = chunk * CHUNK;
        self.chars_before_chunk[chunk].saturating_add(count_chars(&self.text.as_bytes()[start..offset]))
    }
}

/// Characters in UTF-8 bytes: every byte that is not a continuation byte starts one.
fn count_chars(bytes: &[u8]) -> u32 {
    bytes.iter().filter(|&&b| (b & 0xC0) != 0x80).count() as u32
}

/// Shared builder state: the path being built and the locations found so far.
pub(crate) struct Collector {
    pub(crate) locations: Locations,
}

impl Collector {
    pub(crate) fn new() -> Self {
        Self { locations: Locations::default() }
    }

    pub(crate) fn record(&mut self, path: &str, location: Location) {
        self.locations.insert(path, location);
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
