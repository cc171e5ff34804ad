//! Text form of an issue: one header line, then the source line with the offending value underlined.
//!
//! ```text
//! production: api.rate_limit = 5000 at environments/production.json:7:19 — must be ≤ 1000 (global_schema.json#/properties/api/properties/rate_limit/maximum)
//!    7 |     "rate_limit": 5000,
//!      |                   ^^^^
//! ```

use std::fmt::Write;

use potter_engine::Issue;

/// Longest value echoed in a header; longer ones are cut with `…`.
const MAX_SHOWN_VALUE: usize = 80;
const REDACTED: &str = "<redacted>";

/// Renders `issue`; `file_text` is the text of the file its source position points into.
/// For a secret path use [`render_issue_redacted`] (see [`crate::Validation::is_secret`]).
pub fn render_issue(issue: &Issue, file_text: Option<&str>) -> String {
    render(issue, line_of(issue, file_text), false)
}

/// Like [`render_issue`], with the value replaced by `<redacted>` in the header and in the shown line.
pub fn render_issue_redacted(issue: &Issue, file_text: Option<&str>) -> String {
    render(issue, line_of(issue, file_text), true)
}

/// [`render_issue`] (or, with `redact`, [`render_issue_redacted`]) for a report of many issues:
/// the file's lines are found once in `source`, not by a scan from the top for every issue.
pub fn render_issue_in(issue: &Issue, source: Option<&SourceText>, redact: bool) -> String {
    let line = issue.source.as_ref().zip(source).and_then(|(position, source)| source.line(position.line));
    render(issue, line, redact)
}

/// A file's text with the start of each line found once.
pub struct SourceText {
    text: String,
    starts: Vec<usize>,
}

impl SourceText {
    /// Finds where each line of `text` starts.
    pub fn new(text: String) -> Self {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(at, _)| at + 1)).collect();
        Self { text, starts }
    }

    /// The 1-based line `number` without its line ending, as [`str::lines`] gives it.
    pub fn line(&self, number: u32) -> Option<&str> {
        let index = (number as usize).checked_sub(1)?;
        let start = *self.starts.get(index)?;
        if start >= self.text.len() {
            return None;
        }
        let end = self.starts.get(index + 1).map_or(self.text.len(), |next| next - 1);
        let line = &self.text[start..end];
        Some(line.strip_suffix('\r').unwrap_or(line))
    }
}

/// The line of `file_text` that the issue's position names.
fn line_of<'a>(issue: &Issue, file_text: Option<&'a str>) -> Option<&'a str> {
    let number = issue.source.as_ref()?.line as usize;
    file_text?.lines().nth(number.checked_sub(1)?)
}

fn render(issue: &Issue, line: Option<&str>, redact: bool) -> String {
    let excerpt = issue.source.as_ref().zip(line).and_then(|(source, line)| {
        let start = (source.column as usize).checked_sub(1)?;
        (start <= line.chars().count()).then(|| (source.line, line, start, token_length(line, start)))
    });
    // The value itself, when the issue is about one and the position shows a scalar (not the
    // `{` of an object that lacks a key): only that is echoed, or redacted.
    let names_a_value = issue.rule != "schema:required" && !issue.path.is_empty();
    let value_token = excerpt.filter(|_| names_a_value).and_then(|(_, line, start, length)| {
        let token: String = line.chars().skip(start).take(length).collect();
        (!token.is_empty() && !token.starts_with(['{', '['])).then_some(token)
    });
    let mut out = String::new();
    if let Some(view) = &issue.view {
        let _ = write!(out, "{view}: ");
    }
    out.push_str(if issue.path.is_empty() { "(root)" } else { &issue.path });
    if let Some(token) = &value_token {
        let shown = if redact { REDACTED.to_owned() } else { shorten(token) };
        let _ = write!(out, " = {shown}");
    }
    if let Some(source) = &issue.source {
        let _ = write!(out, " at {source}");
    }
    let _ = write!(out, " — {}", issue.message);
    match &issue.schema_location {
        Some(location) => {
            let _ = write!(out, " ({location})");
        }
        None => {
            let _ = write!(out, " ({})", issue.rule);
        }
    }
    if let Some((number, line, start, length)) = excerpt {
        let gutter = number.to_string().len().max(4);
        let (shown_line, marker_length) = match &value_token {
            Some(_) if redact => {
                let before: String = line.chars().take(start).collect();
                let after: String = line.chars().skip(start + length).collect();
                (format!("{before}{REDACTED}{after}"), REDACTED.len())
            }
            _ => (line.to_owned(), length.max(1)),
        };
        let indent: String = line.chars().take(start).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        let _ = write!(out, "\n{number:>gutter$} | {shown_line}\n{:>gutter$} | {indent}{}", "", "^".repeat(marker_length));
    }
    out
}

/// Length in characters of the value starting at `start`: a quoted string, a bracket, or a bare scalar.
fn token_length(line: &str, start: usize) -> usize {
    let chars: Vec<char> = line.chars().skip(start).collect();
    match chars.first() {
        None => 0,
        Some('{' | '[') => 1,
        Some(&quote @ ('"' | '\'')) => {
            let mut escaped = false;
            for (i, &c) in chars.iter().enumerate().skip(1) {
                if quote == '"' && c == '\\' && !escaped {
                    escaped = true;
                    continue;
                }
                if c == quote && !escaped {
                    return i + 1;
                }
                escaped = false;
            }
            chars.len()
        }
        Some(_) => {
            let end = chars.iter().position(|c| matches!(c, ',' | '}' | ']' | '#')).unwrap_or(chars.len());
            chars[..end].iter().rposition(|c| !c.is_whitespace()).map_or(0, |last| last + 1)
        }
    }
}

fn shorten(token: &str) -> String {
    if token.chars().count() <= MAX_SHOWN_VALUE {
        token.to_owned()
    } else {
        let mut cut: String = token.chars().take(MAX_SHOWN_VALUE).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::{token_length, SourceText};

    #[test]
    fn source_lines_are_the_lines_str_lines_gives() {
        for text in ["", "a", "a\n", "a\nb", "a\r\nb\r\n", "\n\nc\n", "x\n\n", "é\nü\r\n\r\nlast"] {
            let source = SourceText::new(text.to_owned());
            let expected: Vec<&str> = text.lines().collect();
            let got: Vec<&str> = (1..).map_while(|number| source.line(number)).collect();
            assert_eq!(got, expected, "{text:?}");
            assert_eq!(source.line(0), None);
        }
    }

    #[test]
    fn tokens_end_where_the_value_ends() {
        assert_eq!(token_length(r#"  "rate_limit": 5000,"#, 16), 4);
        assert_eq!(token_length(r#"  "name": "a \" b", "#, 10), 8);
        assert_eq!(token_length("rate_limit: 5000  # comment", 12), 4);
        assert_eq!(token_length(r#"  "api": {"#, 9), 1);
    }
}
