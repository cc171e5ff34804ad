//! Hostile test plugin: one `validate` call writes 50 MB to stdout, 50 MB to stderr and 50 MB
//! through `host.log` (12 800 lines of 4 KiB), ignoring every error, then reports nothing. The
//! host must keep what reaches its log and its memory bounded.

use std::io::Write;

use potter_sdk::{Config, Issue, LogLevel, Validator, View};

const TOTAL: usize = 50 * 1024 * 1024;
const CHUNK: usize = 4096;

struct FloodsOutput;

impl Validator for FloodsOutput {
    fn validate(_view: &View, _config: &Config) -> Vec<Issue> {
        let mut line = "x".repeat(CHUNK - 1);
        line.push('\n');
        for _ in 0..TOTAL / CHUNK {
            // A full capture stream is closed: the writes fail, and the flood goes on regardless.
            let _ = std::io::stdout().write_all(line.as_bytes());
            let _ = std::io::stderr().write_all(line.as_bytes());
            potter_sdk::log(LogLevel::Info, &line);
        }
        Vec::new()
    }
}

potter_sdk::export_validator!(FloodsOutput);
