//! Hostile test plugin: `validate` recurses without end until the Wasm call stack is exhausted
//! (a trap, not a crash of the host). Its frames hold nothing in linear memory, so it is the
//! host's Wasm stack limit that stops it, not the guest's own shadow stack.

use potter_sdk::{Config, Issue, Validator, View};

struct DeepRecursion;

#[inline(never)]
#[allow(unconditional_recursion)] // on purpose: it must never return
fn descend(depth: u64) -> u64 {
    // black_box keeps the recursion from being turned into a loop.
    std::hint::black_box(descend(std::hint::black_box(depth + 1))) + 1
}

impl Validator for DeepRecursion {
    fn validate(_view: &View, _config: &Config) -> Vec<Issue> {
        let depth = descend(std::hint::black_box(0));
        vec![Issue::error("app", format!("reached the bottom at {depth}"))]
    }
}

potter_sdk::export_validator!(DeepRecursion);
