//! The validation engine: every schema, coverage and every validator over every view.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use potter_engine::{Issue, Severity, Snapshot, View, ViewKey};
use rustc_hash::FxHashMap;
use serde_json::Value;

use crate::coverage::measure;
use crate::documents::Node;
use crate::report::{Report, ViewReport};
use crate::schema_issues::{schema_issues, source_position};
use crate::schema_set::SchemaSet;
use crate::secrets::{config_secret_patterns, SecretPattern};
use crate::validator::{NativeRule, Validator};

/// Holds the schemas and the validators, and validates views with them.
pub struct Validation {
    schemas: SchemaSet,
    validators: Vec<Arc<dyn Validator>>,
    strict: bool,
}

impl std::fmt::Debug for Validation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.validators.iter().map(|v| v.name()).collect();
        f.debug_struct("Validation").field("schemas", &self.schemas).field("validators", &names).field("strict", &self.strict).finish()
    }
}

impl Validation {
    pub fn new(schemas: SchemaSet) -> Self {
        Self { schemas, validators: Vec::new(), strict: false }
    }

    /// Strict mode: keys no schema describes are errors, not warnings (also on per view with
    /// `validation.strict: true`).
    pub fn set_strict(&mut self, strict: bool) {
        self.strict = strict;
    }

    pub fn schemas(&self) -> &SchemaSet {
        &self.schemas
    }

    /// For [`SchemaSet::reload`]; compiled schemas whose files did not change are kept.
    pub fn schemas_mut(&mut self) -> &mut SchemaSet {
        &mut self.schemas
    }

    /// Adds a native rule; its issues get the rule `native:<name>` unless they set one.
    pub fn add_custom_validator(&mut self, name: &str, rule: impl Fn(&View) -> Vec<Issue> + Send + Sync + 'static) {
        self.validators.push(Arc::new(NativeRule::new(name, rule)));
    }

    /// Adds any validator (a Wasm plugin's, for instance).
    pub fn add_validator(&mut self, validator: Arc<dyn Validator>) {
        self.validators.push(validator);
    }

    /// Removes the validators whose name `keep` refuses (plugins that left the folder).
    pub fn retain_validators(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.validators.retain(|validator| keep(validator.name()));
    }

    /// Names of the validators, in the order they run.
    pub fn validator_names(&self) -> Vec<&str> {
        self.validators.iter().map(|v| v.name()).collect()
    }

    /// Validates every view of the snapshot that can differ from another
    /// ([`Snapshot::distinct_view_keys`]): each environment, alone and with each service, and each
    /// of those with a user who has a layer of their own there.
    pub fn validate_snapshot(&self, snapshot: &Snapshot) -> Report {
        let mut report = self.validate_snapshot_where(snapshot, |_| true);
        report.tree.extend(self.schemas.refused_default_warnings());
        report
    }

    /// Validates the views of the snapshot for which `include` is true (the views a change can have
    /// affected, when the rest are known to be valid).
    ///
    /// A user view inherits its base view's findings: an issue it shares with the view without the
    /// user (same path, message, rule and source) is reported once, at the base view.
    pub fn validate_snapshot_where(&self, snapshot: &Snapshot, include: impl Fn(&ViewKey) -> bool) -> Report {
        let mut views: Vec<ViewReport> = Vec::new();
        // Where each base view's report is in `views`; keys are sorted, so a base view comes before
        // the user views built on it.
        let mut base_reports: FxHashMap<ViewKey, usize> = FxHashMap::default();
        for key in snapshot.distinct_view_keys().into_iter().filter(|key| include(key)) {
            // A view no schema and no validator looks at has nothing to report: don't merge it for nothing.
            if self.validators.is_empty() && self.schemas.schemas_for(key.service.as_deref()).is_empty() {
                views.push(ViewReport { view: key, issues: Vec::new(), coverage: None });
                continue;
            }
            let Ok(view) = snapshot.view(&key) else { continue };
            let mut report = self.validate_view(view);
            if key.user.is_none() {
                base_reports.insert(key, views.len());
            } else if !report.issues.is_empty() {
                // The base view is validated here only when the change left it out (it is valid then,
                // but may still carry warnings the user view shares).
                let base_key = ViewKey { user: None, ..key };
                let computed;
                let base = match base_reports.get(&base_key) {
                    Some(&at) => Some(&views[at]),
                    None => {
                        computed = snapshot.view(&base_key).ok().map(|view| self.validate_view(view));
                        computed.as_ref()
                    }
                };
                if let Some(base) = base {
                    // By path first: a user view can inherit thousands of warnings (coverage of a
                    // large tree), and comparing each with each would be quadratic.
                    let mut inherited: FxHashMap<&str, Vec<&Issue>> = FxHashMap::default();
                    for issue in &base.issues {
                        inherited.entry(issue.path.as_str()).or_default().push(issue);
                    }
                    report.issues.retain(|issue| !inherited.get(issue.path.as_str()).is_some_and(|at_path| at_path.iter().any(|inherited| same_finding(issue, inherited))));
                }
            }
            views.push(report);
        }
        Report { views, tree: Vec::new() }
    }

    /// Validates one view: the schemas that apply to it, coverage, then each validator.
    pub fn validate_view(&self, view: &View) -> ViewReport {
        let mut issues = Vec::new();
        let schemas = self.schemas.schemas_for(view.key().service.as_deref());
        let coverage = if schemas.is_empty() {
            None
        } else {
            // Merged for this check only when the view shares its base's parts: a snapshot's
            // checked views do not all stay in memory in full.
            let tree = view.tree();
            for (rel, schema) in &schemas {
                schema_issues(rel, schema, view, &tree, &mut issues);
            }
            let docs = self.schemas.docs();
            let roots = schemas.iter().filter_map(|(rel, _)| docs.get(rel)).map(|doc| Node::root(doc)).collect();
            let (coverage, undescribed) = measure(docs, self.schemas.patterns(), roots, &tree);
            let severity = if self.is_strict(view) { Severity::Error } else { Severity::Warning };
            for key in undescribed {
                let message = match key.leaves {
                    1 => "is not described by any schema".to_owned(),
                    n => format!("is not described by any schema (nor are the {n} keys below it)"),
                };
                issues.push(Issue {
                    view: Some(view.key().clone()),
                    source: source_position(view, &key.path),
                    path: key.path,
                    message,
                    rule: "coverage".to_owned(),
                    schema_location: None,
                    severity,
                });
            }
            Some(coverage)
        };
        for validator in &self.validators {
            issues.extend(self.run_validator(validator.as_ref(), view));
        }
        ViewReport { view: view.key().clone(), issues, coverage }
    }

    fn is_strict(&self, view: &View) -> bool {
        // Read from the tree directly: `View::get_ref` would build the view's leaf index just for this.
        self.strict || view.value_at("validation.strict") == Some(&Value::Bool(true))
    }

    /// Runs one validator; an error or a panic becomes an error issue naming it.
    fn run_validator(&self, validator: &dyn Validator, view: &View) -> Vec<Issue> {
        let name = validator.name();
        let outcome = catch_unwind(AssertUnwindSafe(|| validator.validate(view)));
        let mut issues = match outcome {
            Ok(Ok(issues)) => issues,
            Ok(Err(error)) => vec![Issue::error("", format!("validator `{name}` failed: {error}"), name)],
            Err(_) => vec![Issue::error("", format!("validator `{name}` panicked"), name)],
        };
        for issue in &mut issues {
            if issue.rule.is_empty() {
                issue.rule = name.to_owned();
            }
            if issue.view.is_none() {
                issue.view = Some(view.key().clone());
            }
            if issue.source.is_none() {
                issue.source = source_position(view, &issue.path);
            }
        }
        issues
    }

    /// The secret path patterns of a view: its schemas' plus its `secrets.paths`.
    pub fn secret_patterns(&self, view: &View) -> Vec<SecretPattern> {
        secret_patterns(&self.schemas, view)
    }

    /// True when the value at `path` in `view` is secret.
    pub fn is_secret(&self, view: &View, path: &str) -> bool {
        is_secret(&self.schemas, view, path)
    }
}

/// True when two issues say the same thing about the same place (whichever view they were found in).
fn same_finding(a: &Issue, b: &Issue) -> bool {
    a.path == b.path && a.message == b.message && a.rule == b.rule && a.severity == b.severity && a.source == b.source && a.schema_location == b.schema_location
}

/// The secret path patterns of a view: `"secret": true` in the schemas that apply to it, plus its
/// own `secrets.paths`.
pub fn secret_patterns(schemas: &SchemaSet, view: &View) -> Vec<SecretPattern> {
    let service = view.key().service.as_deref();
    let mut patterns: Vec<SecretPattern> = schemas.secret_patterns().iter().filter(|p| p.applies_to(service)).cloned().collect();
    patterns.extend(config_secret_patterns(view));
    patterns
}

/// True when the value at `path` (or an object above it) is declared secret for `view`.
pub fn is_secret(schemas: &SchemaSet, view: &View, path: &str) -> bool {
    let service = view.key().service.as_deref();
    schemas.secret_patterns().iter().any(|p| p.applies_to(service) && p.matches(path)) || config_secret_patterns(view).iter().any(|p| p.matches(path))
}

/// Every leaf path of `view` that is secret, sorted.
pub fn secret_leaf_paths(schemas: &SchemaSet, view: &View) -> Vec<String> {
    let patterns = secret_patterns(schemas, view);
    let mut paths: Vec<String> = view.leaf_paths().map(|(path, _)| path).filter(|path| patterns.iter().any(|p| p.matches(path))).map(str::to_owned).collect();
    paths.sort();
    paths
}
