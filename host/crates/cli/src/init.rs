//! `init DIR --template potter|minimal` and `template service NAME`: trees and services that
//! validate cleanly from the first command.
//!
//! Templates hold no secrets: LLM provider keys are added per environment with `secrets set`.

use std::fs;
use std::path::Path;

use potter_config::change_requests::{INIT_POLICY, POLICY_FILE};
use serde_json::json;

use super::{exit, Cli, Failure, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    /// Potter's tree: app, logging, api, three services, two users, the shipped schemas.
    Potter,
    /// The smallest complete tree: global, three environments, the shipped schemas.
    Minimal,
}

#[derive(Debug, clap::Subcommand)]
pub enum TemplateCommand {
    /// Add `services/NAME.json` and `schemas/service_schemas/NAME.json`.
    Service { name: String },
}

const SHIPPED_SCHEMAS: [(&str, &str); 2] = [
    ("schemas/global_schema.json", include_str!("../../../../schemas/global_schema.json")),
    ("schemas/service_schemas/llm_providers.json", include_str!("../../../../schemas/service_schemas/llm_providers.json")),
];

const MINIMAL: [(&str, &str); 4] = [
    ("global.json", include_str!("../templates/minimal/global.json")),
    ("environments/development.json", include_str!("../templates/minimal/development.json")),
    ("environments/staging.json", include_str!("../templates/minimal/staging.json")),
    ("environments/production.json", include_str!("../templates/minimal/production.json")),
];

const POTTER: [(&str, &str); 12] = [
    ("global.json", include_str!("../templates/potter/global.json")),
    ("environments/development.json", include_str!("../templates/potter/development.json")),
    ("environments/staging.json", include_str!("../templates/potter/staging.json")),
    ("environments/production.json", include_str!("../templates/potter/production.json")),
    ("services/api_service.json", include_str!("../../../../examples/potter/services/api_service.json")),
    ("services/theme_service.yaml", include_str!("../../../../examples/potter/services/theme_service.yaml")),
    ("services/notification_service.toml", include_str!("../../../../examples/potter/services/notification_service.toml")),
    ("users/alice.json", include_str!("../../../../examples/potter/users/alice.json")),
    ("users/bob.yaml", include_str!("../../../../examples/potter/users/bob.yaml")),
    ("schemas/service_schemas/api_service.json", include_str!("../../../../schemas/service_schemas/api_service.json")),
    ("schemas/service_schemas/theme_service.json", include_str!("../../../../schemas/service_schemas/theme_service.json")),
    ("schemas/service_schemas/notification_service.json", include_str!("../../../../schemas/service_schemas/notification_service.json")),
];

fn io_failure(path: &Path, error: std::io::Error) -> Failure {
    Failure { code: exit::INVALID, message: format!("{}: {error}", path.display()) }
}

fn write_new(root: &Path, relative: &str, text: &str) -> Result<(), Failure> {
    let path = root.join(relative);
    if path.exists() {
        return Err(Failure { code: exit::REFUSED, message: format!("{} already exists; nothing was overwritten", path.display()) });
    }
    let parent = path.parent().expect("template paths have a parent");
    fs::create_dir_all(parent).map_err(|e| io_failure(parent, e))?;
    fs::write(&path, text).map_err(|e| io_failure(&path, e))
}

pub fn init(dir: &Path, template: Template) -> Outcome {
    if dir.exists() && fs::read_dir(dir).map_err(|e| io_failure(dir, e))?.next().is_some() {
        return Err(Failure { code: exit::REFUSED, message: format!("{} is not empty; init only creates new trees", dir.display()) });
    }
    let files: &[(&str, &str)] = match template {
        Template::Potter => &POTTER,
        Template::Minimal => &MINIMAL,
    };
    // Every template has production: it publishes only through reviewed change requests.
    let policy = [(POLICY_FILE, INIT_POLICY)];
    for (relative, text) in files.iter().chain(SHIPPED_SCHEMAS.iter()).chain(policy.iter()) {
        write_new(dir, relative, text)?;
    }
    for folder in ["services", "users"] {
        fs::create_dir_all(dir.join(folder)).map_err(|e| io_failure(dir, e))?;
    }
    println!("created {} ({template:?} template); try: potter-config --root {} validate", dir.display(), dir.display());
    Ok(())
}

pub fn template(cli: &Cli, command: &TemplateCommand) -> Outcome {
    let TemplateCommand::Service { name } = command;
    let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(Failure { code: exit::USAGE, message: format!("service name `{}` must be letters, digits, `_` or `-`", name.escape_debug()) });
    }
    let file = json!({ name.as_str(): { "enabled": true } });
    let schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": format!("{name} service"),
        "type": "object",
        "properties": {
            name.as_str(): {
                "type": "object",
                "properties": { "enabled": { "type": "boolean", "default": true } },
                "additionalProperties": false
            }
        }
    });
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).expect("JSON values serialize") + "\n";
    write_new(&cli.root, &format!("services/{name}.json"), &pretty(&file))?;
    write_new(&cli.root, &format!("schemas/service_schemas/{name}.json"), &pretty(&schema))?;
    println!("added services/{name}.json and schemas/service_schemas/{name}.json");
    Ok(())
}
