//! What a validation found: per view, its issues and its coverage.

use potter_engine::{Issue, Severity, ViewKey};

use crate::coverage::Coverage;

/// The result of validating one view.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ViewReport {
    pub view: ViewKey,
    pub issues: Vec<Issue>,
    /// Share of the view's leaf keys some schema describes (`None` when no schema applies to it).
    pub coverage: Option<Coverage>,
}

impl ViewReport {
    pub fn has_errors(&self) -> bool {
        self.issues.iter().any(|issue| issue.severity == Severity::Error)
    }
}

/// The result of validating a snapshot: one entry per base view, sorted by view.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub views: Vec<ViewReport>,
    /// Issues about the tree as a whole rather than one view (a tree with secrets but no schemas).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tree: Vec<Issue>,
}

impl Report {
    /// True when any view has an error: such a snapshot must not go live.
    pub fn has_errors(&self) -> bool {
        self.views.iter().any(ViewReport::has_errors)
    }

    /// Every issue of every view, in view order, then the tree's own.
    pub fn issues(&self) -> impl Iterator<Item = &Issue> {
        self.views.iter().flat_map(|view| view.issues.iter()).chain(&self.tree)
    }

    pub fn error_count(&self) -> usize {
        self.issues().filter(|issue| issue.severity == Severity::Error).count()
    }

    pub fn warning_count(&self) -> usize {
        self.issues().filter(|issue| issue.severity == Severity::Warning).count()
    }

    /// The report of one view.
    pub fn view(&self, key: &ViewKey) -> Option<&ViewReport> {
        self.views.iter().find(|report| &report.view == key)
    }

    /// The machine-readable form (`validate --format json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}
