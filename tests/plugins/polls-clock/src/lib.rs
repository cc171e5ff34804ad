//! Hostile test plugin: `validate` asks `wasi:clocks/monotonic-clock` for a pollable due in an
//! hour and waits on it with `wasi:io/poll.poll` (the raw calls, not `std::thread::sleep`). The
//! host must cut the call off at its time limit.

use potter_sdk::{Config, Issue, Validator, View};

mod wasi_imports {
    wit_bindgen::generate!({
        world: "clock-imports",
        path: "wit",
        generate_all,
    });
}

use wasi_imports::wasi::clocks::monotonic_clock;
use wasi_imports::wasi::io::poll;

const HOUR_NS: u64 = 3600 * 1_000_000_000;

struct PollsClock;

impl Validator for PollsClock {
    fn validate(_view: &View, _config: &Config) -> Vec<Issue> {
        let due = monotonic_clock::subscribe_duration(HOUR_NS);
        let ready = poll::poll(&[&due]);
        vec![Issue::error("app", format!("poll returned {ready:?} before the hour was up"))]
    }
}

potter_sdk::export_validator!(PollsClock);
