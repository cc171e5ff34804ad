//! What the parser targets share: parse, then check what a caller relies on.

use potter_engine::{parse_document, Format, Location};

/// Parses `data` as `format` (when it is UTF-8, as the host requires) and checks that every
/// position, of a node or of an error, lies inside the text.
pub fn check_document(data: &[u8], format: Format) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // YAML also breaks lines at a lone `\r`: count both, as an upper bound for every format.
    let lone_returns = text.matches('\r').count() - text.matches("\r\n").count();
    let lines = (text.split('\n').count() + lone_returns) as u32;
    let longest = text.split('\n').map(|line| line.chars().count()).max().unwrap_or(0) as u32;
    let inside = |line: u32, column: u32| (1..=lines).contains(&line) && (1..=longest + 1).contains(&column);
    match parse_document(text, format) {
        Ok(parsed) => {
            for (path, location) in &parsed.locations {
                if let Location::Text { line, column } = location {
                    assert!(inside(*line, *column), "{path} at {line}:{column} outside {lines} lines");
                }
            }
            // The tree is plain JSON: it serializes.
            serde_json::to_vec(&parsed.data).expect("a parsed tree serializes");
        }
        Err(error) => {
            if let (Some(line), Some(column)) = (error.line, error.column) {
                assert!(inside(line, column), "error at {line}:{column} outside {lines} lines: {error}");
            }
        }
    }
}
