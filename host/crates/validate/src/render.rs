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
    render(issue, file_text, false)
}

/// Like [`render_issue`], with the value replaced by `<redacted>` in the header and in the shown line.
pub fn render_issue_redacted(issue: &Issue, file_text: Option<&str>) -> String {
    render(issue, file_text, true)
}

fn render(issue: &Issue, file_text: Option<&str>, redact: bool) -> String {
    let excerpt = issue.source.as_ref().zip(file_text).and_then(|(source, text)| {
        let line = text.lines().nth((source.line as usize).checked_sub(1)?)?;
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
    use super::token_length;

    #[test]
    fn tokens_end_where_the_value_ends() {
        assert_eq!(token_length(r#"  "rate_limit": 5000,"#, 16), 4);
        assert_eq!(token_length(r#"  "name": "a \" b", "#, 10), 8);
        assert_eq!(token_length("rate_limit: 5000  # comment", 12), 4);
        assert_eq!(token_length(r#"  "api": {"#, 9), 1);
    }
}
