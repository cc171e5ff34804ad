//! The validation crate's integration tests, one module per file of this folder, in one test binary
//! (`cargo test -p potter-validate --test integration FILE::`): each test binary links the whole
//! crate and its dependencies, and one per file filled the CI machine's disk (tests/end_to_end.rs
//! at the repository's root says more).

mod common;

mod coverage_defaults_secrets;
mod custom_validators;
mod references;
mod schema_loading;
mod schema_rules;
