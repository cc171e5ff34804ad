//! Potter Config: the configuration runtime a service embeds.
//!
//! A [`ConfigHost`] reads a config tree (`global.*`, `environments/*`, `services/*`, `users/*`,
//! `schemas/`, `plugins/`), validates every view, and serves typed, lock-free reads of the live
//! snapshot. A change (a file save, a runtime override, a rollback) goes live whole or not at all.
//!
//! ```
//! use potter_config::{ConfigHost, Options};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let root = dir.path().join("config");
//! std::fs::create_dir_all(root.join("environments"))?;
//! std::fs::write(root.join("global.json"), r#"{ "api": { "rate_limit": 100, "timeout_ms": 2000 } }"#)?;
//! std::fs::write(root.join("environments/production.json"), r#"{ "api": { "rate_limit": 500 } }"#)?;
//!
//! let host = ConfigHost::open(Options::new(&root))?;
//! let production = host.view("production", None, None)?;
//! assert_eq!(production.get::<u32>("api.rate_limit")?, 500);
//! assert_eq!(production.get::<u32>("api.timeout_ms")?, 2000);
//!
//! // A runtime override: validated, recorded in the history, then live for every reader.
//! host.set("production", "api.rate_limit", 800.into())?;
//! assert_eq!(production.get::<u32>("api.rate_limit")?, 800);
//! # Ok(()) }
//! ```
//!
//! A service binds its settings to its own types once ([`ConfigHost::bind`]: deserialized once per
//! change, read with a pointer load, changes as typed `(old, new)` pairs) and reports its health
//! from [`ConfigHost::health`]; docs/EMBEDDING.md walks through a whole service.
//!
//! The modules below the root re-exports are the parts the server (`potter-server`) and the
//! command (`potter-cli`) build on; an embedder needs only the root.

#![deny(missing_docs)]

pub mod change_requests;
mod documents;
pub mod error;
pub mod events;
#[cfg(feature = "etcd")]
mod fleet;
#[cfg(feature = "etcd")]
pub mod instances;
mod observers;
pub mod health;
pub mod options;
pub mod plugin_folder;
pub mod recording;
pub mod rollouts;
pub mod runtime;
pub mod secret_values;
pub mod settings;
pub mod source;
pub mod timeline;
pub mod watch;

// The embedder's surface: open a tree, read views, change overrides, follow changes, watch files.
pub use error::Error;
pub use potter_plugin::{Progress, ProgressReport, ProgressTask};
pub use events::{Cause, ChangeOrigin, Event, Outcome, Outcomes, RefusedBy, Subscription};
pub use health::{Health, Status};
pub use options::Options;
pub use potter_engine as engine;
pub use potter_engine::{View, ViewKey};
pub use potter_validate::Report;
pub use runtime::{ConfigHost, SetRequest, ViewHandle};
pub use settings::{SettingsRefusal, Settings, SettingsChanges, SettingsUpdate};
pub use watch::{WatchOptions, Watcher};
