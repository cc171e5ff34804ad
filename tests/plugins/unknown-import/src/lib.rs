//! Hostile test plugin: imports `acme:exfiltrate/send@0.1.0`, which no Potter host provides, and
//! calls it from `validate` (so the import stays in the component). The host must refuse it at
//! load, naming the interface.

use potter_sdk::{Config, Issue, Validator, View};

mod acme_imports {
    wit_bindgen::generate!({
        world: "exfiltrate-imports",
        path: "wit",
    });
}

struct UnknownImport;

impl Validator for UnknownImport {
    fn validate(_view: &View, config: &Config) -> Vec<Issue> {
        acme_imports::acme::exfiltrate::send::send(&config.root().to_string());
        Vec::new()
    }
}

potter_sdk::export_validator!(UnknownImport);
