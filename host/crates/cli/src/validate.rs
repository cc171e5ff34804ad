//! `validate`: every view of the tree against its schemas, native rules and Wasm validators.

use std::collections::HashMap;

use potter_engine::{Issue, Severity, Snapshot};
use potter_validate::{render_issue_in, Report, SourceText};
use serde_json::json;

use super::{exit, Cli, Failure, Outcome};
use crate::output::{render, OutputFormat};

pub fn run(cli: &Cli, strict: bool, coverage: bool) -> Outcome {
    let mut options = cli.options();
    options.strict |= strict;
    // The review policy is a file of the tree: a malformed one is an error naming file:line:col.
    potter_config::change_requests::Policy::load(&options.root)?;
    let (snapshot, report) = potter_config::runtime::ConfigHost::inspect(&options)?;
    match cli.format {
        OutputFormat::Text => print_text(cli, &report, &snapshot, coverage),
        format => {
            let mut document = report.to_json();
            if let Some(object) = document.as_object_mut() {
                object.insert("valid".into(), json!(!report.has_errors()));
            }
            println!("{}", render(&document, format, "report").trim_end());
        }
    }
    if report.has_errors() {
        return Err(Failure { code: exit::INVALID, message: format!("{} error(s) in {} view(s)", report.error_count(), report.views.iter().filter(|v| v.has_errors()).count()) });
    }
    Ok(())
}

fn print_text(cli: &Cli, report: &Report, snapshot: &Snapshot, coverage: bool) {
    // Each file read and split into lines once: a report can hold thousands of issues per file.
    let mut files: HashMap<String, Option<SourceText>> = HashMap::new();
    for view_report in &report.views {
        let errors = view_report.issues.iter().filter(|i| i.severity == Severity::Error).count();
        let warnings = view_report.issues.len() - errors;
        let share = view_report.coverage.map(|c| format!(", coverage {:.1}% of {} keys", c.percent, c.leaves)).unwrap_or_default();
        let status = if errors == 0 && warnings == 0 { "ok".to_owned() } else { format!("{errors} error(s), {warnings} warning(s)") };
        if coverage || !view_report.issues.is_empty() {
            println!("{}: {status}{share}", view_report.view);
        }
        for issue in &view_report.issues {
            if let Some(source) = issue.source.as_ref().filter(|source| !files.contains_key(&source.file)) {
                let text = potter_files::read_regular_to_string(&cli.root.join(&source.file), potter_config::source::tree::MAX_FILE_BYTES).ok();
                files.insert(source.file.clone(), text.map(SourceText::new));
            }
            let text = issue.source.as_ref().and_then(|source| files.get(&source.file)?.as_ref());
            println!("  {}: {}", issue.severity, indent(&render_for(issue, text, snapshot)));
        }
    }
    for issue in &report.tree {
        println!("{}: {}", issue.severity, issue.message);
    }
    println!("{} view(s), {} error(s), {} warning(s)", report.views.len(), report.error_count(), report.warning_count());
}

/// Secret values never reach the terminal: a value at a secret path is shown redacted.
fn render_for(issue: &Issue, text: Option<&SourceText>, snapshot: &Snapshot) -> String {
    let secret = issue
        .view
        .as_ref()
        .and_then(|key| snapshot.view(key).ok())
        .is_none_or(|view| view.is_secret(&issue.path) || potter_config::secret_values::holds_secret(view, &issue.path));
    render_issue_in(issue, text, secret)
}

fn indent(text: &str) -> String {
    text.replace('\n', "\n    ")
}
