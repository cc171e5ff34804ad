//! Validates a config tree the way the host will: `cargo run -p potter-validate --example
//! validate_tree -- DIR [SCHEMAS_DIR]` (schemas default to `DIR/schemas`). Prints every issue with
//! its source line, the coverage of each view, and exits 3 when a view has an error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use potter_engine::{parse_document, Axes, Format, Layer, LayerSource, Rank, Scope, Snapshot};
use potter_validate::{defaults_layers, render_issue, render_issue_redacted, SchemaSet, Validation};

fn main() {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(args.next().expect("usage: validate_tree DIR [SCHEMAS_DIR]"));
    let schemas_dir = args.next().map(PathBuf::from).unwrap_or_else(|| root.join("schemas"));
    let schemas = SchemaSet::load(&schemas_dir).unwrap_or_else(|error| {
        eprintln!("{error}");
        std::process::exit(3);
    });
    let mut layers: Vec<Arc<Layer>> = defaults_layers(&schemas).into_iter().map(Arc::new).collect();
    let mut axes = Axes::default();
    for (rel, rank, scope) in files(&root) {
        let text = std::fs::read_to_string(root.join(&rel)).unwrap();
        let format = Format::from_extension(Path::new(&rel).extension().unwrap().to_str().unwrap()).unwrap();
        let parsed = parse_document(&text, format).unwrap_or_else(|error| panic!("{rel}: {error}"));
        match (&scope.environment, &scope.service) {
            (Some(env), _) => axes.environments.push(env.clone()),
            (_, Some(service)) => axes.services.push(service.clone()),
            _ => {}
        }
        let name = rel.rsplit_once('.').unwrap().0.to_owned();
        layers.push(Arc::new(Layer::with_locations(name, rank, scope, LayerSource::File(rel.as_str().into()), parsed.data, parsed.locations)));
    }
    let snapshot = Snapshot::new(0, layers, axes);
    let validation = Validation::new(schemas);
    let report = validation.validate_snapshot(&snapshot);
    for view_report in &report.views {
        let view = snapshot.view(&view_report.view).unwrap();
        let coverage = view_report.coverage.map_or("no schema".to_owned(), |c| format!("{:.1}% of {} keys", c.percent, c.leaves));
        println!("{}: {} issue(s), coverage {coverage}", view_report.view, view_report.issues.len());
        for issue in &view_report.issues {
            let text = issue.source.as_ref().and_then(|source| std::fs::read_to_string(root.join(&source.file)).ok());
            let rendered = if validation.is_secret(view, &issue.path) { render_issue_redacted(issue, text.as_deref()) } else { render_issue(issue, text.as_deref()) };
            println!("{}: {rendered}", issue.severity);
        }
    }
    if report.has_errors() {
        std::process::exit(3);
    }
}

/// global.*, environments/*.*, services/*.* (users are not base views).
fn files(root: &Path) -> Vec<(String, Rank, Scope)> {
    let mut out = Vec::new();
    for ext in Format::EXTENSIONS {
        if root.join(format!("global.{ext}")).exists() {
            out.push((format!("global.{ext}"), Rank::GlobalFile, Scope::everywhere()));
        }
    }
    for (folder, rank) in [("environments", Rank::EnvironmentFile), ("services", Rank::ServiceFile)] {
        let Ok(entries) = std::fs::read_dir(root.join(folder)) else { continue };
        let mut names: Vec<String> = entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        for name in names {
            let Some((stem, ext)) = name.rsplit_once('.') else { continue };
            if Format::from_extension(ext).is_none() {
                continue;
            }
            let scope = match rank {
                Rank::EnvironmentFile => Scope::environment(stem),
                _ => Scope { service: Some(stem.into()), ..Scope::everywhere() },
            };
            out.push((format!("{folder}/{name}"), rank, scope));
        }
    }
    out
}
