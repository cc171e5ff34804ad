//! The Potter Config engine: layers, deep merge with provenance, views and immutable snapshots.
//!
//! The engine does no I/O and knows nothing of files, Wasm or HTTP: sources hand it layers, it hands
//! back views. Everything here is a pure function of its inputs.
//!
//! ```
//! use potter_engine::{parse_document, Axes, Format, Layer, LayerSource, Rank, Scope, Snapshot, ViewKey};
//! use std::sync::Arc;
//!
//! let global = parse_document(r#"{"api": {"timeout": 30, "rate_limit": 100}}"#, Format::Json).unwrap();
//! let prod = parse_document("api:\n  timeout: 5\n", Format::Yaml).unwrap();
//! let layers = vec![
//!     Arc::new(Layer::with_locations("global", Rank::GlobalFile, Scope::everywhere(),
//!         LayerSource::File("global.json".into()), global.data, global.locations)),
//!     Arc::new(Layer::with_locations("environments/production", Rank::EnvironmentFile,
//!         Scope::environment("production"), LayerSource::File("environments/production.yaml".into()),
//!         prod.data, prod.locations)),
//! ];
//! let axes = Axes { environments: vec!["production".into()], ..Axes::default() };
//! let snapshot = Snapshot::new(0, layers, axes);
//! let view = snapshot.view(&ViewKey::environment("production")).unwrap();
//! assert_eq!(view.extract::<u32>("api.timeout").unwrap(), 5);
//! assert_eq!(view.origin("api.timeout").unwrap().layer.name, "environments/production");
//! ```

pub mod diagnostic;
pub mod diff;
pub mod envvars;
pub mod layer;
pub mod locations;
pub mod merge;
pub mod parse;
pub mod path;
pub mod snapshot;
pub mod view;

pub use diagnostic::{Issue, Severity, SourcePosition};
pub use diff::{diff, KeyChange};
pub use layer::{Layer, LayerSource, Location, Provenance, Rank, RecordedVersion, Scope};
pub use locations::Locations;
pub use parse::{parse_document, Format, ParseError, Parsed};
pub use path::{is_under, overlaps, parse_key_path, KeyPath, KeyPathError};
pub use snapshot::{Axes, Snapshot, UnknownView};
pub use view::{Contribution, Origin, ReadError, View, ViewKey};
