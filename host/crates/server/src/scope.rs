//! What one caller may be told about problems of the configuration: the issues of a validation
//! (`POST /v1/validate`, the 422 answers of writes) and the diagnostics of a refused change on a
//! change stream. One rule for both: an issue is shown when it is about a view of an environment
//! in scope and a key under the prefix; the others are withheld and counted.

use potter_validate::Report;
use serde_json::{json, Value};

use super::rbac::{Principal, Role};
use super::tokens::ALL_ENVIRONMENTS;
use potter_config::events::Event;

/// The environments and key prefix an answer about issues is limited to.
#[derive(Debug, Clone)]
pub struct IssueScope {
    /// The environments whose views' issues may be shown (`*`: every environment).
    environments: Vec<String>,
    /// Only keys under it (empty: every key).
    prefix: String,
    /// Admins and `*` tokens may see issues that name no view (a file that does not parse).
    sees_every_environment: bool,
}

impl IssueScope {
    /// A change stream's scope: its one environment and its prefix.
    pub fn for_stream(principal: &Principal, environment: &str, prefix: &str) -> Self {
        Self { environments: vec![environment.to_owned()], prefix: prefix.to_owned(), sees_every_environment: sees_every_environment(principal) }
    }

    /// A token's scope: every environment it may use, and its prefix.
    pub fn for_token(principal: &Principal) -> Self {
        let prefix = principal.prefix.clone().filter(|_| !principal.may_use_key("")).unwrap_or_default();
        let environments = if principal.role == Role::Admin { vec![ALL_ENVIRONMENTS.to_owned()] } else { principal.environments.clone() };
        Self { environments, prefix, sees_every_environment: sees_every_environment(principal) }
    }

    fn unrestricted(&self) -> bool {
        self.prefix.is_empty() && self.sees_every_environment
    }

    /// The rule: an issue about `key` (`""`: the view's root) of a view of `environment` (None: an
    /// issue that names no view, e.g. a file that does not parse).
    fn admits(&self, environment: Option<&str>, key: &str) -> bool {
        if self.unrestricted() {
            return true;
        }
        let Some(environment) = environment else { return false };
        self.environment_admitted(environment) && (self.prefix.is_empty() || (!key.is_empty() && potter_engine::is_under(key, &self.prefix)))
    }

    /// A diagnostic line reads `<view>: <key> [at <where>] — <message> (<rule>)` (`potter_engine::Issue`).
    fn admits_line(&self, line: &str) -> bool {
        if self.unrestricted() {
            return true;
        }
        // Anything that does not name a view (a file that does not parse) is not shown to a scoped caller.
        let Some((view, rest)) = line.split_once(": ").filter(|(view, _)| !view.is_empty() && !view.contains(' ')) else { return false };
        let environment = view.split(['/', '@']).next().unwrap_or(view);
        let key = rest.split([' ', '\u{2014}']).next().unwrap_or("");
        self.admits(Some(environment), if key == "(root)" { "" } else { key })
    }

    /// What a change stream may tell of an event: a refused change keeps only the diagnostics in
    /// scope (the others withheld and counted); a refusal with nothing in scope is not sent to a
    /// stream with a prefix.
    pub fn filter_event(&self, event: Event) -> Option<Event> {
        let Event::Rejected { origin, actor, diagnostics } = event else { return Some(event) };
        let total = diagnostics.len();
        let mut kept: Vec<String> = diagnostics.into_iter().filter(|line| self.admits_line(line)).collect();
        let withheld = total - kept.len();
        if kept.is_empty() && !self.prefix.is_empty() {
            return None;
        }
        if withheld > 0 {
            kept.push(format!("({withheld} more diagnostic(s) outside this stream's scope withheld)"));
        }
        Some(Event::Rejected { origin, actor, diagnostics: kept })
    }

    /// A validation report as JSON with only the views of environments in scope and, in them,
    /// only the issues in scope; `withheld` counts the issues left out.
    pub fn report_json(&self, report: &Report) -> Value {
        let mut withheld = 0;
        let mut views = Vec::new();
        for view_report in &report.views {
            let environment = &*view_report.view.environment;
            let (kept, left): (Vec<_>, Vec<_>) = view_report.issues.iter().partition(|issue| {
                let about = issue.view.as_ref().map_or(environment, |view| &*view.environment);
                self.admits(Some(about), &issue.path)
            });
            withheld += left.len();
            if self.unrestricted() || self.environment_admitted(environment) {
                views.push(json!({ "view": view_report.view, "issues": kept, "coverage": view_report.coverage }));
            }
        }
        // Tree-level issues name files of the whole tree: only a caller who sees everything gets them.
        let tree = if self.unrestricted() { report.tree.clone() } else {
            withheld += report.tree.len();
            Vec::new()
        };
        if tree.is_empty() {
            json!({ "views": views, "withheld": withheld })
        } else {
            json!({ "views": views, "tree": tree, "withheld": withheld })
        }
    }

    fn environment_admitted(&self, environment: &str) -> bool {
        self.environments.iter().any(|e| e == environment || e == ALL_ENVIRONMENTS)
    }
}

fn sees_every_environment(principal: &Principal) -> bool {
    principal.role == Role::Admin || principal.environments.iter().any(|e| e == ALL_ENVIRONMENTS)
}

#[cfg(test)]
mod tests {
    use potter_engine::{Issue, SourcePosition, ViewKey};
    use potter_validate::{Report, ViewReport};

    use super::*;

    fn principal(role: Role, environments: &[&str], prefix: Option<&str>) -> Principal {
        Principal { name: "t".into(), role, environments: environments.iter().map(|e| (*e).to_owned()).collect(), prefix: prefix.map(str::to_owned) }
    }

    fn issue(view: &ViewKey, path: &str, file: &str) -> Issue {
        let mut issue = Issue::warning(path, "is not described by any schema", "coverage");
        issue.view = Some(view.clone());
        issue.source = Some(SourcePosition { file: file.into(), line: 1, column: 2 });
        issue
    }

    /// Staging and production views, each with an issue under `api` and one outside it.
    fn report() -> Report {
        let staging = ViewKey::environment("staging");
        let production = ViewKey::new("production", Some("api_service"), None);
        let views = [(staging, "environments/staging.json"), (production, "environments/production.json")]
            .into_iter()
            .map(|(view, file)| ViewReport { issues: vec![issue(&view, "api.timeout", file), issue(&view, "db.host", file)], view, coverage: None })
            .collect();
        Report { views, tree: Vec::new() }
    }

    #[test]
    fn a_token_sees_the_issues_of_its_environments_and_prefix_and_a_count_of_the_rest() {
        let shown = IssueScope::for_token(&principal(Role::Editor, &["staging"], Some("api"))).report_json(&report());
        assert_eq!(shown["withheld"], 3, "{shown}");
        let text = shown.to_string();
        assert!(text.contains("api.timeout") && !text.contains("db.host") && !text.contains("production"), "{text}");
        let shown = IssueScope::for_token(&principal(Role::Viewer, &["staging", "production"], None)).report_json(&report());
        assert_eq!(shown["withheld"], 0, "{shown}");
        assert_eq!(shown["views"].as_array().unwrap().len(), 2);
        // An admin's prefix does not limit it, as for every other route.
        let shown = IssueScope::for_token(&principal(Role::Admin, &[], Some("api"))).report_json(&report());
        assert_eq!(shown["withheld"], 0, "{shown}");
    }

    #[test]
    fn a_diagnostic_line_is_shown_by_the_same_rule() {
        let lines: Vec<String> = report().issues().map(ToString::to_string).chain(["global.json:1:2: expected `,`".to_owned()]).collect();
        let event = |scope: &IssueScope| scope.filter_event(Event::Rejected { origin: potter_config::events::ChangeOrigin::File, actor: "file-watch".into(), diagnostics: lines.clone() });
        let scoped = IssueScope::for_token(&principal(Role::Viewer, &["production"], Some("api")));
        let Some(Event::Rejected { diagnostics, .. }) = event(&scoped) else { panic!("a refusal with an issue in scope is sent") };
        assert_eq!(diagnostics.len(), 2, "{diagnostics:?}");
        assert!(diagnostics[0].starts_with("production/api_service: api.timeout"), "{diagnostics:?}");
        assert!(diagnostics[1].contains("4 more"), "{diagnostics:?}");
        let every = IssueScope::for_token(&principal(Role::Viewer, &["*"], None));
        let Some(Event::Rejected { diagnostics, .. }) = event(&every) else { panic!() };
        assert_eq!(diagnostics, lines);
    }
}
