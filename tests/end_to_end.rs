//! The end-to-end tests of the repository, one module per file of this folder, in one test binary.
//!
//! Why one binary: each test binary links the whole runtime (wasmtime and cranelift, the server,
//! the etcd and PostgreSQL clients), about 120 MB apiece, and one binary per file filled the CI
//! machine's disk and spent minutes linking. A file's tests run with `cargo test -p potter-cli
//! --test end_to_end FILE::` (e.g. `reload::`). Suites that need the machine to themselves keep a
//! binary of their own: `many_hosts` (tests/fleet.rs, tests/fleet_rollouts.rs) and `console`.

mod common;

mod api;
mod bad_input;
mod change_requests;
mod cli;
mod commit_path;
mod environment_isolation;
mod etcd_source;
mod history;
mod host;
mod hostile;
mod json_schema_suite;
mod network_sources;
mod openapi;
mod plugin_grants;
mod plugin_new;
mod plugin_sources;
mod plugins;
mod plugins_folder;
mod postgres_source;
mod progress;
mod reload;
mod rollouts;
mod sdk_readmes;
mod secrets;
mod user_views;
mod validate;
