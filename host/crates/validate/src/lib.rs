//! Potter Config validation: JSON Schema over every view, native and plugin rules, coverage,
//! schema defaults and secret paths.
//!
//! A schemas folder holds `global_schema.json` (validates every view) and
//! `service_schemas/<service>.json` (validates the views of that service); any other file is a
//! `$ref` target. Schemas are compiled once by the `jsonschema` crate (draft by `$schema`, format
//! assertions on, `$ref` only inside the folder) and recompiled only when a file changes.
//!
//! ```
//! use potter_engine::{parse_document, Axes, Format, Layer, LayerSource, Rank, Scope, Snapshot};
//! use potter_validate::{SchemaSet, Validation};
//! use std::sync::Arc;
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("global_schema.json"),
//!     r#"{"properties": {"api": {"properties": {"rate_limit": {"type": "integer", "maximum": 1000}}}}}"#).unwrap();
//! let validation = Validation::new(SchemaSet::load(dir.path()).unwrap());
//!
//! let text = r#"{"api": {"rate_limit": 5000}}"#;
//! let parsed = parse_document(text, Format::Json).unwrap();
//! let layer = Layer::with_locations("global", Rank::GlobalFile, Scope::everywhere(),
//!     LayerSource::File("global.json".into()), parsed.data, parsed.locations);
//! let axes = Axes { environments: vec!["production".into()], ..Axes::default() };
//! let snapshot = Snapshot::new(0, vec![Arc::new(layer)], axes);
//!
//! let report = validation.validate_snapshot(&snapshot);
//! assert!(report.has_errors());
//! let issue = report.issues().next().unwrap();
//! assert_eq!(issue.path, "api.rate_limit");
//! assert_eq!(issue.message, "must be ≤ 1000");
//! assert_eq!(issue.schema_location.as_deref(), Some("global_schema.json#/properties/api/properties/rate_limit/maximum"));
//! println!("{}", potter_validate::render_issue(issue, Some(text)));
//! ```

mod compile;
mod coverage;
mod defaults;
mod documents;
mod error;
mod links;
mod mounted;
mod refs;
mod render;
mod report;
mod schema_issues;
mod schema_set;
mod secrets;
mod validation;
mod validator;
mod walk;

pub use coverage::Coverage;
pub use defaults::{defaults_layer, defaults_layers, DEFAULTS_LAYER};
pub use documents::{MAX_SCHEMA_BYTES, MAX_SCHEMA_DEPTH, MAX_SCHEMA_FILES};
pub use error::{SchemaError, ValidatorError};
pub use mounted::MountedSchema;
pub use render::{render_issue, render_issue_in, render_issue_redacted, SourceText};
pub use report::{Report, ViewReport};
pub use schema_set::{ReloadSummary, SchemaSet, GLOBAL_SCHEMA, SERVICE_SCHEMAS_DIR};
pub use secrets::{config_secret_patterns, SecretPattern, SecretSegment};
pub use validation::{is_secret, secret_leaf_paths, secret_patterns, Validation};
pub use validator::{NativeRule, Validator};
