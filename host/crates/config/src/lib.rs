//! Potter Config: the configuration runtime a service embeds.
//!
//! ```no_run
//! use potter_config::{ConfigHost, Options};
//!
//! let host = ConfigHost::open(Options::new("examples/potter")).unwrap();
//! let production = host.view("production", Some("api_service"), None).unwrap();
//! let rate_limit: u32 = production.get("api.rate_limit").unwrap();
//! # let _ = rate_limit;
//! ```

pub mod error;
pub mod events;
pub mod plugins;
pub mod recording;
pub mod watch;
pub mod runtime;
pub mod secrets;
pub mod source;
pub mod timeline;

pub use error::Error;
pub use potter_engine as engine;
pub use runtime::{ConfigHost, Options, ViewHandle};
