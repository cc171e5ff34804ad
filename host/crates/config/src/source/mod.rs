//! Where layers come from: the config tree's files and the process environment.

pub mod env;
pub mod tree;
