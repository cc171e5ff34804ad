//! The history crate's integration tests, one module per file of this folder, in one test binary
//! (`cargo test -p potter-history --test integration FILE::`): each test binary links the whole
//! crate and its dependencies, and one per file filled the CI machine's disk (tests/end_to_end.rs
//! at the repository's root says more).

mod common;

mod audit;
mod bad_input;
mod crash;
mod operations;
