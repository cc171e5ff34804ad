//! The `potter-config` binary on the bundled example and on broken trees: output and exit codes.

mod common;

use common::{potter_example, repo_path, stderr, stdout, Tree};
use serde_json::Value;

const ENVIRONMENTS: [&str; 3] = ["development", "staging", "production"];
const SERVICES: [Option<&str>; 4] = [None, Some("api_service"), Some("theme_service"), Some("notification_service")];

fn example_args<'a>(root: &'a str, env: &'a str, service: Option<&'a str>, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--root", root, "--env", env];
    if let Some(service) = service {
        args.extend(["--service", service]);
    }
    args.extend(rest);
    args
}

#[test]
fn read_commands_work_on_the_example_for_every_environment_and_service() {
    let root = repo_path("examples/potter");
    let root = root.to_str().unwrap();
    for env in ENVIRONMENTS {
        for service in SERVICES {
            for command in [&["get", "api.timeout"][..], &["dump"], &["explain", "api.rate_limit"], &["layers"], &["dump", "--format", "json"]] {
                let output = potter_example(&example_args(root, env, service, command));
                assert!(output.status.success(), "{env} {service:?} {command:?}: {}", stderr(&output));
                assert!(!stdout(&output).trim().is_empty());
            }
        }
    }
}

#[test]
fn get_in_json_prints_exactly_the_value() {
    let root = repo_path("examples/potter");
    let output = potter_example(&["--root", root.to_str().unwrap(), "--env", "production", "--service", "api_service", "get", "api.timeout", "--format", "json"]);
    assert_eq!(stdout(&output), "5\n");
    let output = potter_example(&["--root", root.to_str().unwrap(), "--env", "production", "get", "api", "--format", "json"]);
    let value: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(value, serde_json::json!({"rate_limit": 600, "timeout": 15}));
}

#[test]
fn explain_in_json_lists_layers_with_sources_and_the_winner() {
    let root = repo_path("examples/potter");
    let output = potter_example(&["--root", root.to_str().unwrap(), "--env", "production", "--service", "api_service", "explain", "api.timeout", "--format", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let doc: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(doc["value"], 5);
    assert_eq!(doc["env_var"], "POTTER_API__TIMEOUT");
    let layers = doc["layers"].as_array().unwrap();
    let winner: Vec<&Value> = layers.iter().filter(|l| l["won"] == true).collect();
    assert_eq!(winner.len(), 1);
    assert_eq!(winner[0]["file"], "services/api_service.json");
    assert_eq!(winner[0]["line"], 3);
    assert_eq!(winner[0]["column"], 16);
    let global = layers.iter().find(|l| l["layer"] == "global").unwrap();
    assert_eq!(global["value"], 30);
    assert_eq!(global["status"], "set");
}

#[test]
fn explain_shows_the_environment_variable_that_won() {
    let root = repo_path("examples/potter");
    let mut env: Vec<(String, String)> = common::demo_keys();
    env.push(("POTTER_LOGGING__MAX_SIZE".into(), "5".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let output = common::potter_with(&["--root", root.to_str().unwrap(), "--env", "production", "explain", "logging.max_size"], &env, None);
    let text = stdout(&output);
    assert!(text.contains("logging.max_size = 5"), "{text}");
    assert!(text.contains("POTTER_LOGGING__MAX_SIZE") && text.contains("<- wins"), "{text}");
}

#[test]
fn exit_codes_tell_not_found_usage_and_invalid_apart() {
    let root = repo_path("examples/potter");
    let root = root.to_str().unwrap();
    assert_eq!(potter_example(&["--root", root, "get", "no.such.key"]).status.code(), Some(1));
    let unknown_env = potter_example(&["--root", root, "--env", "qa", "get", "api.timeout"]);
    assert_eq!(unknown_env.status.code(), Some(2));
    assert!(stderr(&unknown_env).contains("unknown environment `qa`"));
    assert_eq!(potter_example(&["--root", root, "frobnicate"]).status.code(), Some(2));

    let tree = Tree::minimal();
    tree.write("environments/production.json", "{\"api\": {\"timeout\": 1,}}");
    let broken = potter_example(&["--root", tree.root().to_str().unwrap(), "--env", "production", "get", "api.timeout"]);
    assert_eq!(broken.status.code(), Some(3));
    assert!(stderr(&broken).contains("environments/production.json:1:"), "{}", stderr(&broken));
}

#[test]
fn output_formats_render_the_same_configuration() {
    let root = repo_path("examples/potter");
    let root = root.to_str().unwrap();
    let json: Value = serde_json::from_str(&stdout(&potter_example(&["--root", root, "--env", "staging", "dump", "--format", "json"]))).unwrap();
    let yaml = stdout(&potter_example(&["--root", root, "--env", "staging", "dump", "--format", "yaml"]));
    let toml = stdout(&potter_example(&["--root", root, "--env", "staging", "dump", "--format", "toml"]));
    assert_eq!(json["api"]["rate_limit"], 300);
    assert!(yaml.contains("rate_limit: 300"), "{yaml}");
    assert!(toml.contains("rate_limit = 300"), "{toml}");
}
