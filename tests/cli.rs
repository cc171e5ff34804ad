//! The `potter-config` binary on the bundled example and on broken trees: output and exit codes.

use crate::common;

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

#[test]
fn validate_renders_its_report_as_toml() {
    let root = repo_path("examples/potter");
    let output = potter_example(&["--root", root.to_str().unwrap(), "--format", "toml", "validate"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(!text.contains("cannot render"), "{text}");
    let report: toml::Table = text.parse().unwrap_or_else(|e| panic!("not TOML ({e}): {text}"));
    assert_eq!(report["valid"].as_bool(), Some(true), "{text}");
    assert!(!report["views"].as_array().unwrap().is_empty(), "{text}");
}

/// Runs the binary with its stdout a pipe whose reading end is already closed.
fn with_closed_stdout(args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_potter-config"));
    command.args(args).envs(common::demo_keys()).stdout(writer).stderr(std::process::Stdio::piped());
    let child = command.spawn().unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_reader_that_goes_away_ends_every_command_quietly() {
    use std::os::unix::process::ExitStatusExt as _;
    let root = repo_path("examples/potter");
    let root = root.to_str().unwrap();
    for args in [&["--root", root, "validate"][..], &["--root", root, "dump"], &["--root", root, "--format", "json", "layers"], &["--root", root, "explain", "api.timeout"], &["--help"]] {
        let output = with_closed_stdout(args);
        assert_ne!(output.status.code(), Some(101), "{args:?}: {}", stderr(&output));
        assert!(!stderr(&output).contains("panicked"), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).is_empty(), "{args:?}: {}", stderr(&output));
        // Ended by SIGPIPE, as `cat` or `grep` are: the shell sees 141, `set -o pipefail` notices.
        assert_eq!(output.status.signal(), Some(13), "{args:?}: {:?}", output.status);
    }
}

/// The account name of the user running the tests, from the operating system.
fn account_name() -> String {
    let output = std::process::Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn latest_actor(root: &str, state: &str) -> String {
    let output = common::potter(&["--root", root, "--state", state, "--env", "staging", "--format", "json", "history", "--limit", "1"]);
    let records: Value = serde_json::from_str(&stdout(&output)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&output)));
    records[0]["actor"].as_str().unwrap().to_owned()
}

#[test]
fn changes_name_their_actor_from_the_os_account_or_actor_or_potter_actor() {
    let tree = Tree::minimal();
    let (root, state) = (tree.root(), tree.state());
    let (root, state) = (root.to_str().unwrap(), state.to_str().unwrap());
    let set = |value: &str, extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["--root", root, "--state", state, "--env", "staging", "set", "api.timeout", value];
        args.extend(extra);
        let output = common::potter_with(&args, env, None);
        assert!(output.status.success(), "{}", stderr(&output));
    };
    // No USER, no LOGNAME (the test runner's environment is cleared): the OS account.
    set("31", &[], &[]);
    assert_eq!(latest_actor(root, state), format!("cli:{}", account_name()));
    set("32", &[], &[("USER", "carol")]);
    assert_eq!(latest_actor(root, state), "cli:carol");
    set("33", &[], &[("USER", "carol"), ("POTTER_ACTOR", "bob")]);
    assert_eq!(latest_actor(root, state), "cli:bob");
    set("34", &["--actor", "alice"], &[("POTTER_ACTOR", "bob")]);
    assert_eq!(latest_actor(root, state), "cli:alice");
    // POTTER_ACTOR steers the tool: it is never configuration.
    let dump = common::potter_with(&["--root", root, "--state", state, "--env", "staging", "--format", "json", "dump"], &[("POTTER_ACTOR", "bob")], None);
    let config: Value = serde_json::from_str(&stdout(&dump)).unwrap();
    assert!(config.get("actor").is_none(), "{config}");
    // An actor with a control character is a usage error, and nothing is recorded.
    let refused = common::potter_with(&["--root", root, "--state", state, "--env", "staging", "set", "api.timeout", "35", "--actor", "eve\nroot"], &[], None);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--actor"), "{}", stderr(&refused));
    assert_eq!(latest_actor(root, state), "cli:alice");
}

#[test]
fn log_filters_and_formats_are_checked_and_a_bad_filter_is_a_usage_error() {
    let root = repo_path("examples/potter");
    let root = root.to_str().unwrap();
    let bad = common::potter_with(&["--root", root, "dump"], &[("POTTER_LOG", "info,potter=nonsense-level")], None);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("potter=nonsense-level"), "{}", stderr(&bad));
    let bad = potter_example(&["--root", root, "--log", "[", "dump"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    // A good filter changes nothing on stdout.
    let quiet = potter_example(&["--root", root, "--format", "json", "dump"]);
    let chatty = potter_example(&["--root", root, "--format", "json", "--log", "debug", "--log-format", "json", "dump"]);
    assert!(chatty.status.success(), "{}", stderr(&chatty));
    assert_eq!(stdout(&quiet), stdout(&chatty));
    for line in stderr(&chatty).lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    }
}

/// What a refused command must leave alone: every environment's configuration and the history.
fn cli_state(root: &str, state: &str) -> Vec<String> {
    let mut seen: Vec<String> = ENVIRONMENTS.iter().map(|env| stdout(&common::potter(&["--root", root, "--state", state, "--env", env, "--format", "json", "dump"]))).collect();
    seen.push(stdout(&common::potter(&["--root", root, "--state", state, "--format", "json", "history"])));
    seen
}

#[test]
fn bad_input_rows_exit_with_an_error_naming_the_key_or_file_and_change_nothing() {
    let tree = Tree::minimal();
    let (root, state) = (tree.root(), tree.state());
    let (root, state) = (root.to_str().unwrap(), state.to_str().unwrap());
    let first = common::potter(&["--root", root, "--state", state, "--env", "staging", "set", "api.timeout", "31"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let before = cli_state(root, state);
    // (what, arguments after --root/--state, exit code, text the error must name)
    let rows: [(&str, &[&str], i32, &str); 5] = [
        ("a top-level key holding `:`", &["--env", "staging", "set", "zzz:api.leak", "1"], 3, "zzz:api"),
        ("an actor with a control character", &["--env", "staging", "set", "api", r#"{"timeout": 1, "rate_limit": 2}"#, "--actor", "x\u{7}"], 2, "--actor"),
        ("a log filter that does not parse", &["--env", "staging", "--log", "api=loud", "set", "api.timeout", "1"], 2, "api=loud"),
        ("a log format that does not exist", &["--env", "staging", "--log-format", "xml", "set", "api.timeout", "1"], 2, "xml"),
        ("an actor that is only blanks", &["--env", "staging", "set", "api.timeout", "1", "--actor", "  "], 2, "--actor"),
    ];
    for (what, args, code, named) in rows {
        let mut all = vec!["--root", root, "--state", state];
        all.extend(args);
        let output = common::potter(&all);
        assert_eq!(output.status.code(), Some(code), "{what}: {}", stderr(&output));
        assert!(stderr(&output).contains(named), "{what}: {}", stderr(&output));
        assert_eq!(cli_state(root, state), before, "{what}");
    }
    // A FIFO in users/: refused naming it (the file, not a hang), nothing recorded.
    let fifo = tree.root().join("users/x.json");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let output = common::potter(&["--root", root, "--state", state, "--env", "staging", "set", "api.timeout", "1"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("users/x.json"), "{}", stderr(&output));
    std::fs::remove_file(&fifo).unwrap();
    assert_eq!(cli_state(root, state), before);
}

#[test]
fn completions_and_the_man_page_come_from_the_command_definitions() {
    for shell in ["bash", "zsh", "fish"] {
        let script = common::potter(&["completions", shell]);
        assert!(script.status.success(), "{shell}: {}", stderr(&script));
        let text = stdout(&script);
        // Subcommands and flags of the clap tree appear, e.g. `plugin new` and `--store`.
        assert!(text.contains("potter-config") && text.contains("rollback") && text.contains("store"), "{shell}: {text}");
    }
    // The bash script is valid bash: sourcing it defines the completion function.
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), &common::potter(&["completions", "bash"]).stdout).unwrap();
    let sourced = std::process::Command::new("bash").arg("-c").arg("source \"$0\" && complete -p potter-config").arg(script.path()).output().unwrap();
    assert!(sourced.status.success(), "{}", stderr(&sourced));
    assert!(stdout(&sourced).contains("potter-config"), "{}", stdout(&sourced));

    let page = common::potter(&["man"]);
    assert!(page.status.success(), "{}", stderr(&page));
    let roff = stdout(&page);
    assert!(roff.starts_with(".ie") || roff.contains(".TH potter-config"), "{roff}");
    assert!(roff.contains("Layered, validated configuration") && roff.contains("rollback"), "{roff}");

    let unknown = common::potter(&["completions", "tcsh"]);
    assert_eq!(unknown.status.code(), Some(2));
}
