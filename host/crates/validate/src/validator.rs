//! The one validator interface: native Rust rules and Wasm plugins both implement it.

use potter_engine::{Issue, View};

use crate::error::ValidatorError;

/// A rule over a whole view. Issues it returns without a `rule` get the validator's name; without
/// a `view`, the view validated; without a `source`, the file position of their key path.
pub trait Validator: Send + Sync {
    /// Names the validator in issues and errors: `native:<name>` for native rules, `plugin:<name>` for Wasm.
    fn name(&self) -> &str;
    /// The issues the view has, or an error when the validator could not run (reported as an error issue).
    fn validate(&self, view: &View) -> Result<Vec<Issue>, ValidatorError>;
}

/// A native rule given as a closure ([`crate::Validation::add_custom_validator`]).
pub struct NativeRule<F> {
    name: String,
    rule: F,
}

impl<F> NativeRule<F>
where
    F: Fn(&View) -> Vec<Issue> + Send + Sync,
{
    /// A rule named `native:<name>`.
    pub fn new(name: &str, rule: F) -> Self {
        Self { name: format!("native:{name}"), rule }
    }
}

impl<F> Validator for NativeRule<F>
where
    F: Fn(&View) -> Vec<Issue> + Send + Sync,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self, view: &View) -> Result<Vec<Issue>, ValidatorError> {
        Ok((self.rule)(view))
    }
}
