//! Secrets end to end: the real binary and the embedding API over real trees, keyrings and files.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use common::{potter_with, stderr, stdout, Tree};
use potter_config::secret_values;
use potter_config::{ConfigHost, Options};
use potter_secrets::{encrypt, Keyring, SecretString};
use serde_json::Value;

const PLAINTEXT: &str = "sk-live-CANARY-7f3a9c21-do-not-leak";

fn options(tree: &Tree) -> Options {
    let mut options = Options::new(tree.root());
    options.state_dir = tree.state();
    options.env_vars = Some(Vec::new());
    options
}

/// Runs the binary on the tree with its state directory, stdin and extra variables.
fn run(tree: &Tree, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let root = tree.root();
    let state = tree.state();
    let mut all = vec!["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap()];
    all.extend(args);
    potter_with(&all, env, stdin)
}

fn ok(output: &Output) -> String {
    assert!(output.status.success(), "exit {:?}\nstdout: {}\nstderr: {}", output.status.code(), stdout(output), stderr(output));
    stdout(output)
}

/// The 1-based `line:column` where `needle` starts in `text`.
fn position_of(text: &str, needle: &str) -> String {
    let offset = text.find(needle).expect("needle in text");
    let line = text[..offset].matches('\n').count() + 1;
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    format!("{line}:{}", text[line_start..offset].chars().count() + 1)
}

/// A tree whose production file holds `db.password` = PLAINTEXT, encrypted with a fresh keyring.
fn tree_with_production_secret() -> (Tree, Keyring, String) {
    let tree = Tree::minimal();
    let keyring = Keyring::create_in_state(&tree.state(), "production").unwrap();
    let sealed = encrypt(&keyring, "production", &["db", "password"], PLAINTEXT).unwrap();
    tree.write("environments/production.json", &production_file(&sealed));
    (tree, keyring, sealed)
}

fn production_file(password: &str) -> String {
    format!("{{\n  \"db\": {{\n    \"host\": \"db.internal\",\n    \"password\": \"{password}\"\n  }}\n}}\n")
}

#[test]
fn round_trip_through_the_cli_reveals_the_secret_only_with_reveal() {
    let tree = Tree::minimal();
    ok(&run(&tree, &["secrets", "keygen", "--env", "development"], None, &[]));
    let said = ok(&run(&tree, &["secrets", "set", "llm_providers.openai.api_key", "--env", "development"], Some(&format!("{PLAINTEXT}\n")), &[]));
    assert!(said.contains("environments/development.json"), "{said}");
    let file = fs::read_to_string(tree.root().join("environments/development.json")).unwrap();
    assert!(file.contains("\"api_key\": \"enc:v1:k"), "{file}");

    let args = |rest: &[&'static str]| [&["--env", "development"][..], rest].concat();
    assert_eq!(ok(&run(&tree, &args(&["get", "llm_providers.openai.api_key", "--reveal"]), None, &[])), format!("{PLAINTEXT}\n"), "one trailing newline stripped");
    assert_eq!(ok(&run(&tree, &args(&["get", "llm_providers.openai.api_key"]), None, &[])), "<redacted>\n");
    let subtree: Value = serde_json::from_str(&ok(&run(&tree, &args(&["get", "llm_providers", "--format", "json"]), None, &[]))).unwrap();
    assert_eq!(subtree["openai"]["api_key"], "<redacted>");
    let dump: Value = serde_json::from_str(&ok(&run(&tree, &args(&["dump", "--format", "json"]), None, &[]))).unwrap();
    assert_eq!(dump["llm_providers"]["openai"]["api_key"], "<redacted>");
    assert_eq!(dump["api"]["timeout"], 30, "other values are untouched");
    let explain: Value = serde_json::from_str(&ok(&run(&tree, &args(&["explain", "llm_providers.openai.api_key", "--format", "json"]), None, &[]))).unwrap();
    assert_eq!(explain["value"], "<redacted>");
    assert!(explain["layers"].as_array().unwrap().iter().any(|l| l["value"] == "<redacted>" && l["won"] == true));
    let text = ok(&run(&tree, &args(&["explain", "llm_providers.openai.api_key"]), None, &[]));
    assert!(text.contains("<redacted>") && !text.contains(PLAINTEXT), "{text}");
    assert_eq!(ok(&run(&tree, &args(&["secrets", "list"]), None, &[])), "llm_providers.openai.api_key\n");
}

#[test]
fn a_secret_given_through_the_environment_variable_keyring_decrypts() {
    let tree = Tree::minimal();
    let keyring = Keyring::generate("staging").unwrap();
    let sealed = encrypt(&keyring, "staging", &["db", "password"], PLAINTEXT).unwrap();
    tree.write("environments/staging.json", &production_file(&sealed));
    let value = keyring.to_env_value();
    let env = [("POTTER_SECRET_KEY_STAGING", value.expose())];
    assert_eq!(ok(&run(&tree, &["--env", "staging", "get", "db.password", "--reveal"], None, &env)), format!("{PLAINTEXT}\n"));
    let dump = ok(&run(&tree, &["--env", "staging", "dump"], None, &env));
    assert!(!dump.contains(PLAINTEXT) && !dump.contains(value.expose()), "{dump}");
}

#[test]
fn ciphertext_moved_to_another_key_fails_naming_file_line_and_column() {
    let (tree, _, sealed) = tree_with_production_secret();
    let moved = format!("{{\n  \"db\": {{\n    \"password_backup\": \"{sealed}\"\n  }}\n}}\n");
    tree.write("environments/production.json", &moved);
    let output = run(&tree, &["--env", "production", "get", "db.password_backup", "--reveal"], None, &[]);
    assert_eq!(output.status.code(), Some(3));
    let message = stderr(&output);
    let at = format!("environments/production.json:{}", position_of(&moved, "\"enc:"));
    assert!(message.contains(&at), "{message} lacks {at}");
    assert!(message.contains("`db.password_backup`") && message.contains("`production`"), "{message}");
    assert!(message.contains("made for another key path or environment"), "{message}");
    assert!(!message.contains(PLAINTEXT));
}

#[test]
fn ciphertext_moved_to_another_environment_fails_even_with_the_same_key() {
    let (tree, keyring, sealed) = tree_with_production_secret();
    tree.write("environments/staging.json", &production_file(&sealed));
    // Staging's own keyring does not hold production's key.
    Keyring::create_in_state(&tree.state(), "staging").unwrap();
    let message = stderr(&run(&tree, &["--env", "staging", "get", "db.password"], None, &[]));
    assert!(message.contains("environments/staging.json:4:") && message.contains("another environment's keyring"), "{message}");
    // Even a staging keyring holding the very same key refuses it: the AAD names the environment.
    fs::remove_file(tree.state().join("keyrings/staging.json")).unwrap();
    let shared = keyring.to_env_value();
    let staging_value = shared.expose().to_owned();
    let output = run(&tree, &["--env", "staging", "get", "db.password"], None, &[("POTTER_SECRET_KEY_STAGING", &staging_value)]);
    assert_eq!(output.status.code(), Some(3));
    let message = stderr(&output);
    assert!(message.contains("environment `staging`") && message.contains("made for another key path or environment"), "{message}");
}

#[test]
fn every_bad_ciphertext_rejects_the_load_and_the_old_snapshot_stays() {
    let (tree, _, sealed) = tree_with_production_secret();
    let host = ConfigHost::open(options(&tree)).unwrap();
    let view = host.view("production", None, None).unwrap();
    assert_eq!(view.get::<String>("db.password").unwrap(), PLAINTEXT);

    let other_keyring = Keyring::generate("production").unwrap();
    let fields: Vec<&str> = sealed.split(':').collect();
    let (key_id, nonce, body) = (fields[2], fields[3], fields[4]);
    // Flip a character in the middle (the last one may carry only padding bits).
    let middle = body.len() / 2;
    let flipped = if &body[middle..=middle] == "A" { "B" } else { "A" };
    let tampered_body = format!("{}{flipped}{}", &body[..middle], &body[middle + 1..]);
    let cases: Vec<(&str, String, &str)> = vec![
        ("wrong key", encrypt(&other_keyring, "production", &["db", "password"], PLAINTEXT).unwrap(), "does not hold"),
        ("unknown key id", format!("enc:v1:k00000000:{nonce}:{body}"), "does not hold"),
        ("tampered", format!("enc:v1:{key_id}:{nonce}:{tampered_body}"), "or altered"),
        ("truncated", format!("enc:v1:{key_id}:{nonce}"), "truncated"),
        ("short ciphertext", format!("enc:v1:{key_id}:{nonce}:AAAA"), "truncated"),
        ("unknown version", format!("enc:v9:{key_id}:{nonce}:{body}"), "format v9"),
        ("bad base64", format!("enc:v1:{key_id}:{nonce}:{}!", &body[1..]), "not valid base64"),
    ];
    for (name, bad, expected) in cases {
        let text = production_file(&bad);
        tree.write("environments/production.json", &text);
        let error = host.reload().expect_err(name).to_string();
        let at = format!("environments/production.json:{}", position_of(&text, "\"enc:"));
        assert!(error.contains(&at), "{name}: {error} lacks {at}");
        assert!(error.contains("`db.password`") && error.contains("`production`") && error.contains(expected), "{name}: {error}");
        assert!(!error.contains(PLAINTEXT), "{name}: plaintext in {error}");
        assert_eq!(view.get::<String>("db.password").unwrap(), PLAINTEXT, "{name}: the old snapshot stays");
        let output = run(&tree, &["--env", "production", "get", "db.host"], None, &[]);
        assert_eq!(output.status.code(), Some(3), "{name}: {}", stderr(&output));
    }
}

// Issue 20 changed this: a missing keyring no longer fails the load (other environments, and this
// one's non-secret values, are served); revealing one of its secrets fails instead, naming where
// the secret is and the variable that would unseal it. Writing a secret still names keygen.
#[test]
fn a_missing_keyring_seals_the_environment_and_names_the_variable_and_the_command_that_creates_it() {
    let (tree, _, _) = tree_with_production_secret();
    fs::remove_file(tree.state().join("keyrings/production.json")).unwrap();
    ok(&run(&tree, &["--env", "development", "dump"], None, &[]));
    let dump = ok(&run(&tree, &["--env", "production", "dump"], None, &[]));
    assert!(dump.contains("db.internal") && dump.contains("<redacted>") && !dump.contains("enc:v1:"), "{dump}");
    let output = run(&tree, &["--env", "production", "get", "db.password", "--reveal"], None, &[]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("environments/production.json:4:") && message.contains("POTTER_SECRET_KEY_PRODUCTION"), "{message}");
    let output = run(&tree, &["--env", "production", "secrets", "set", "db.password"], Some("new"), &[]);
    assert!(stderr(&output).contains("secrets keygen --env production"), "{}", stderr(&output));
}

#[test]
fn a_group_readable_keyring_is_refused_with_exit_4() {
    use std::os::unix::fs::PermissionsExt;
    let (tree, _, _) = tree_with_production_secret();
    let file = tree.state().join("keyrings/production.json");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let output = run(&tree, &["--env", "production", "get", "db.password", "--reveal"], None, &[]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(stderr(&output).contains("chmod 600"), "{}", stderr(&output));
    assert!(!stdout(&output).contains(PLAINTEXT));
    let output = run(&tree, &["secrets", "set", "db.password", "--env", "production"], Some("x"), &[]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
}

#[test]
fn keygen_refuses_to_replace_a_keyring_and_a_state_dir_inside_the_tree() {
    let tree = Tree::minimal();
    ok(&run(&tree, &["secrets", "keygen", "--env", "production"], None, &[]));
    let before = fs::read(tree.state().join("keyrings/production.json")).unwrap();
    let output = run(&tree, &["secrets", "keygen", "--env", "production"], None, &[]);
    assert_eq!(output.status.code(), Some(4));
    assert!(stderr(&output).contains("already exists"), "{}", stderr(&output));
    assert_eq!(fs::read(tree.state().join("keyrings/production.json")).unwrap(), before);
    let inside = tree.root().join(".potter");
    let root = tree.root();
    let output = potter_with(&["--root", root.to_str().unwrap(), "--state", inside.to_str().unwrap(), "secrets", "keygen", "--env", "staging"], &[], None);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(!inside.exists());
}

#[test]
fn a_ciphertext_in_global_json_is_refused() {
    let (tree, _, sealed) = tree_with_production_secret();
    let global = format!("{{\n  \"api\": {{\"timeout\": 30}},\n  \"db\": {{\"password\": \"{sealed}\"}}\n}}\n");
    tree.write("global.json", &global);
    let output = run(&tree, &["--env", "production", "dump"], None, &[]);
    assert_eq!(output.status.code(), Some(3));
    let message = stderr(&output);
    let at = format!("global.json:{}", position_of(&global, "\"enc:"));
    assert!(message.contains(&at), "{message} lacks {at}");
    assert!(message.contains("bound to one environment") && message.contains("environments/<env>"), "{message}");
}

#[test]
fn a_ciphertext_in_a_service_file_or_environment_variable_is_refused() {
    let (tree, _, sealed) = tree_with_production_secret();
    tree.write("services/api.json", &format!("{{\"token\": \"{sealed}\"}}"));
    let message = stderr(&run(&tree, &["--env", "production", "dump"], None, &[]));
    assert!(message.contains("services/api.json:1:") && message.contains("not scoped to one environment"), "{message}");
    tree.remove("services/api.json");
    let message = stderr(&run(&tree, &["--env", "production", "dump"], None, &[("POTTER_DB__TOKEN", &sealed)]));
    assert!(message.contains("POTTER_DB__TOKEN") && message.contains("bound to one environment"), "{message}");
}

#[test]
fn plaintext_at_a_secrets_paths_path_is_refused_with_the_fix_command() {
    let tree = Tree::minimal();
    tree.write("global.json", r#"{"api": {"timeout": 30}, "secrets": {"paths": ["db.password", "llm_providers.*.api_key"]}}"#);
    let text = "{\n  \"llm_providers\": {\n    \"openai\": {\n      \"api_key\": \"hunter2-plain\"\n    }\n  }\n}\n";
    tree.write("environments/production.json", text);
    let output = run(&tree, &["--env", "production", "get", "api.timeout"], None, &[]);
    assert_eq!(output.status.code(), Some(3));
    let message = stderr(&output);
    let at = format!("environments/production.json:{}", position_of(text, "\"hunter2"));
    assert!(message.contains(&at), "{message} lacks {at}");
    assert!(message.contains("potter-config secrets set llm_providers.openai.api_key --env production"), "{message}");
    assert!(!message.contains("hunter2"), "the plaintext is not echoed: {message}");
    // A plain value where another layer holds a ciphertext is refused too.
    let (tree, _, _) = tree_with_production_secret();
    tree.write("users/alice.json", r#"{"db": {"password": "hunter2-plain"}}"#);
    let message = stderr(&run(&tree, &["--env", "production", "--user", "alice", "get", "db.host"], None, &[]));
    assert!(message.contains("users/alice.json:1:") && message.contains("secrets set db.password --env <env>"), "{message}");
}

#[test]
fn set_keeps_the_rest_of_toml_and_yaml_files() {
    let tree = Tree::minimal();
    tree.remove("environments/production.json");
    tree.remove("environments/staging.json");
    tree.write("environments/production.toml", "# production settings\n[api]\ntimeout = 5 # seconds\n");
    tree.write("environments/staging.yaml", "api:\n  timeout: 7\n");
    for env in ["production", "staging"] {
        ok(&run(&tree, &["secrets", "keygen", "--env", env], None, &[]));
        ok(&run(&tree, &["secrets", "set", "db.password", "--env", env], Some(PLAINTEXT), &[]));
        assert_eq!(ok(&run(&tree, &["--env", env, "get", "db.password", "--reveal"], None, &[])), format!("{PLAINTEXT}\n"));
    }
    let toml = fs::read_to_string(tree.root().join("environments/production.toml")).unwrap();
    assert!(toml.starts_with("# production settings\n[api]\ntimeout = 5 # seconds\n"), "{toml}");
    let yaml = fs::read_to_string(tree.root().join("environments/staging.yaml")).unwrap();
    assert!(yaml.starts_with("api:\n  timeout: 7\ndb:\n  password: enc:v1:"), "{yaml}");
    assert_eq!(ok(&run(&tree, &["--env", "staging", "get", "api.timeout"], None, &[])), "7\n");
}

#[test]
fn rotation_re_encrypts_retires_the_old_key_and_keeps_the_value() {
    let (tree, keyring, sealed) = tree_with_production_secret();
    let old_key = keyring.newest_key_id().to_owned();
    let said = ok(&run(&tree, &["--env", "production", "secrets", "rotate"], None, &[]));
    assert!(said.contains(&format!("retired {old_key}")), "{said}");
    let file = fs::read_to_string(tree.root().join("environments/production.json")).unwrap();
    assert!(!file.contains(&sealed) && !file.contains(&old_key), "{file}");
    assert!(file.contains("\"host\": \"db.internal\""));
    let keyring_file = fs::read_to_string(tree.state().join("keyrings/production.json")).unwrap();
    assert!(!keyring_file.contains(&old_key));
    assert_eq!(ok(&run(&tree, &["--env", "production", "get", "db.password", "--reveal"], None, &[])), format!("{PLAINTEXT}\n"));
}

#[test]
fn rotation_with_an_environment_variable_keyring_prints_instructions_and_saves_nothing() {
    let tree = Tree::minimal();
    let old = Keyring::generate("production").unwrap();
    let sealed = encrypt(&old, "production", &["db", "password"], PLAINTEXT).unwrap();
    tree.write("environments/production.json", &production_file(&sealed));
    let mut both = old.clone();
    let new_key = both.add_new_key();
    let value = both.to_env_value();
    let env = [("POTTER_SECRET_KEY_PRODUCTION", value.expose())];
    let said = ok(&run(&tree, &["--env", "production", "secrets", "rotate"], None, &env));
    assert!(said.contains("POTTER_SECRET_KEY_PRODUCTION") && said.contains(old.newest_key_id()), "{said}");
    assert!(!said.contains(value.expose()), "key material is never printed");
    assert!(!tree.state().join("keyrings/production.json").exists());
    let file = fs::read_to_string(tree.root().join("environments/production.json")).unwrap();
    assert!(file.contains(&format!("enc:v1:{new_key}:")), "re-encrypted with the newest key: {file}");
}

#[test]
fn rotation_while_readers_read_never_shows_a_wrong_value_or_fails_a_reload() {
    let (tree, _, _) = tree_with_production_secret();
    let options = options(&tree);
    let host = ConfigHost::open(options.clone()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for _ in 0..3 {
        let view = host.view("production", None, None).unwrap();
        let (stop, reads) = (stop.clone(), reads.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(view.get::<String>("db.password").unwrap(), PLAINTEXT);
                reads.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let reloader = {
        let (host, stop) = (host.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reloads = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Err(error) = host.reload() {
                    panic!("a reload during rotation failed: {error}");
                }
                reloads += 1;
            }
            reloads
        })
    };
    for _ in 0..8 {
        let report = secret_values::rotate(&options, "production").unwrap();
        assert_eq!(report.reencrypted, 1);
        assert_eq!(report.retired.len(), 1);
        host.reload().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reloader.join().unwrap() > 0);
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(reads.load(Ordering::Relaxed) > 0);
    assert_eq!(host.view("production", None, None).unwrap().get::<String>("db.password").unwrap(), PLAINTEXT);
}

#[test]
fn a_type_error_on_a_secret_does_not_quote_it() {
    let (tree, _, _) = tree_with_production_secret();
    let host = ConfigHost::open(options(&tree)).unwrap();
    let view = host.view("production", None, None).unwrap();
    let error = view.get::<u32>("db.password").unwrap_err().to_string();
    assert!(!error.contains(PLAINTEXT), "{error}");
    let error = view.get::<u32>("db").unwrap_err().to_string();
    assert!(!error.contains(PLAINTEXT), "{error}");
    let snapshot = host.snapshot();
    assert!(!format!("{snapshot:?} {:?}", snapshot.view(&potter_config::engine::ViewKey::environment("production")).unwrap()).contains(PLAINTEXT));
}

#[test]
fn a_runtime_override_with_a_ciphertext_is_decrypted_for_its_environment() {
    let (tree, keyring, _) = tree_with_production_secret();
    let host = ConfigHost::open(options(&tree)).unwrap();
    let sealed = encrypt(&keyring, "production", &["api", "token"], "override-secret").unwrap();
    host.set("production", "api.token", Value::String(sealed)).unwrap();
    let view = host.view("production", None, None).unwrap();
    assert_eq!(view.get::<String>("api.token").unwrap(), "override-secret");
    assert!(view.current().unwrap().is_secret("api.token"));
    assert!(host.set("production", "db.password", Value::String("plain".into())).is_err(), "plaintext over a secret path");
}

/// Runs the binary like [`run`], but kills it after `limit` (for commands that run until
/// interrupted, such as `watch`); the output is whatever it printed until then.
fn run_for(tree: &Tree, args: &[&str], env: &[(&str, &str)], limit: std::time::Duration, meanwhile: impl FnOnce()) -> Output {
    use std::process::{Command, Stdio};
    let root = tree.root();
    let state = tree.state();
    let mut command = Command::new(env!("CARGO_BIN_EXE_potter-config"));
    command.args(["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap()]).args(args);
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).envs(env.iter().copied());
    // Commands that take a path (`init DIR`) must land inside the temporary tree, never in the repo.
    command.current_dir(tree.root().parent().unwrap());
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("the potter-config binary runs");
    let started = std::time::Instant::now();
    meanwhile();
    while started.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The subcommands `potter-config --help` lists.
fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .filter(|name| name != "help")
        .collect()
}

#[test]
fn canary_the_plaintext_appears_in_no_output_file_or_temp_file() {
    let tree = Tree::minimal();
    tree.write("services/api.json", r#"{"api": {"timeout": 5}}"#);
    tree.write("users/alice.json", r#"{"ui": {"theme": "dark"}}"#);
    let noisy = [("RUST_LOG", "trace"), ("POTTER_LOG", "trace"), ("RUST_BACKTRACE", "1")];
    let mut outputs: Vec<(String, Output)> = Vec::new();
    let mut record = |label: String, output: Output| outputs.push((label, output));

    let setup: Vec<(Vec<&str>, Option<&str>)> = vec![
        (vec!["secrets", "keygen", "--env", "development"], None),
        (vec!["secrets", "keygen", "--env", "production"], None),
        (vec!["secrets", "set", "llm_providers.openai.api_key", "--env", "development"], Some(PLAINTEXT)),
        (vec!["secrets", "set", "llm_providers.openai.api_key", "--env", "production"], Some(PLAINTEXT)),
    ];
    for (args, stdin) in &setup {
        let output = run(&tree, args, *stdin, &noisy);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        record(format!("{args:?}"), output);
    }

    let key = "llm_providers.openai.api_key";
    let mut covered: Vec<&str> = vec!["secrets"];
    let commands: Vec<Vec<&str>> = vec![
        vec!["--help"],
        vec!["--version"],
        vec![],
        vec!["get", key],
        vec!["get", "llm_providers"],
        vec!["get", ""],
        vec!["get", "llm_providers.openai.api_key.deeper"],
        vec!["dump"],
        vec!["explain", key],
        vec!["explain", "llm_providers"],
        vec!["explain", "missing.key"],
        vec!["layers"],
        vec!["secrets", "list"],
        vec!["secrets", "keygen"],
        vec!["secrets", "rotate"],
        vec!["secrets", "--help"],
    ];
    covered.extend(["get", "dump", "explain", "layers"]);
    let help = stdout(&run(&tree, &["--help"], None, &[]));
    let listed = listed_commands(&help);
    assert!(listed.iter().any(|c| c == "secrets"), "{help}");
    // Commands added after the list above (e.g. `watch`) run too, with and without the key, and
    // are stopped after a while if they run until interrupted.
    let extra: Vec<String> = listed.iter().filter(|c| !covered.contains(&c.as_str())).cloned().collect();
    for name in &extra {
        for rest in [&[][..], &[key][..], &["llm_providers"][..], &["--help"][..]] {
            for format in ["text", "json"] {
                let args: Vec<&str> = [&["--env", "development", "--format", format, name.as_str()][..], rest].concat();
                record(format!("{args:?}"), run_for(&tree, &args, &noisy, std::time::Duration::from_secs(2), || ()));
            }
        }
    }
    // `watch` while the secret changes: the change event must be redacted too.
    if listed.iter().any(|c| c == "watch") {
        for format in ["text", "json"] {
            let output = run_for(&tree, &["--env", "development", "--format", format, "watch"], &noisy, std::time::Duration::from_secs(4), || {
                std::thread::sleep(std::time::Duration::from_millis(1500));
                let changed = run(&tree, &["--env", "development", "secrets", "set", key], Some(&format!("{PLAINTEXT}-v2")), &noisy);
                assert!(changed.status.success(), "{}", stderr(&changed));
                let rotated = run(&tree, &["--env", "development", "secrets", "rotate"], None, &noisy);
                assert!(rotated.status.success(), "{}", stderr(&rotated));
            });
            record(format!("watch {format}"), output);
            let restored = run(&tree, &["--env", "development", "secrets", "set", key], Some(PLAINTEXT), &noisy);
            assert!(restored.status.success());
        }
    }
    for env in ["development", "production"] {
        for view in [&[][..], &["--service", "api"][..], &["--user", "alice"][..]] {
            for command in &commands {
                for format in ["text", "json", "yaml", "toml"] {
                    let args: Vec<&str> = [&["--env", env, "--format", format][..], view, command].concat();
                    record(format!("{args:?}"), run(&tree, &args, None, &noisy));
                }
            }
        }
    }
    let encrypted = run(&tree, &["--env", "development", "secrets", "encrypt", "--key", "other.key"], Some("another-value"), &noisy);
    assert!(stdout(&encrypted).starts_with("enc:v1:"), "{}", stderr(&encrypted));
    record("secrets encrypt".into(), encrypted);
    record("secrets set other".into(), run(&tree, &["--env", "development", "secrets", "set", "other.key"], Some("another-value"), &noisy));
    record("secrets set empty".into(), run(&tree, &["--env", "development", "secrets", "set", "other.key"], Some(""), &noisy));
    // Error paths: a broken ciphertext, a plaintext at a secret path.
    let good = fs::read_to_string(tree.root().join("environments/development.json")).unwrap();
    tree.write("environments/development.json", &good.replacen("enc:v1:", "enc:v1:k00000000:", 1));
    record("broken dump".into(), run(&tree, &["--env", "development", "dump"], None, &noisy));
    record("broken reveal".into(), run(&tree, &["--env", "development", "get", key, "--reveal"], None, &noisy));
    tree.write("environments/development.json", &good);

    let mut revealed = 0;
    for (label, output) in &outputs {
        let (out, err) = (stdout(output), stderr(output));
        assert!(!err.contains(PLAINTEXT), "{label}: plaintext on stderr:\n{err}");
        if label.contains("--reveal") {
            revealed += 1;
            continue;
        }
        assert!(!out.contains(PLAINTEXT), "{label}: plaintext on stdout:\n{out}");
    }
    // `get --reveal` is the one exit that shows it.
    let shown = ok(&run(&tree, &["--env", "production", "get", key, "--reveal"], None, &noisy));
    assert_eq!(shown, format!("{PLAINTEXT}\n"));
    assert!(outputs.len() > 300, "ran {} commands", outputs.len());
    let _ = revealed;

    let mut files = Vec::new();
    files_under(&tree.root(), &mut files);
    files_under(&tree.state(), &mut files);
    assert!(files.iter().any(|f| f.ends_with("keyrings/development.json")));
    for file in &files {
        let bytes = fs::read(file).unwrap();
        assert!(!bytes.windows(PLAINTEXT.len()).any(|w| w == PLAINTEXT.as_bytes()), "plaintext in {}", file.display());
        let name = file.file_name().unwrap().to_string_lossy();
        assert!(!name.contains(".tmp"), "temp file left behind: {}", file.display());
    }
    let _unused: Option<SecretString> = None;
}

#[test]
fn a_type_error_about_a_secret_names_its_file_position_but_never_the_value() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Db {
        host: String,
        password: u32,
    }
    let (tree, _keyring, _sealed) = tree_with_production_secret();
    let host = ConfigHost::open(options(&tree)).unwrap();
    let production = host.view("production", None, None).unwrap();
    let leaf = production.get::<u32>("db.password").unwrap_err().to_string();
    assert!(leaf.contains("environments/production.json:4:"), "{leaf}");
    assert!(leaf.contains("details withheld") && !leaf.contains(PLAINTEXT), "{leaf}");
    let subtree = production.extract::<Db>("db").unwrap_err().to_string();
    assert!(subtree.contains("`db.password` at environments/production.json:4:"), "{subtree}");
    assert!(subtree.contains("details withheld") && !subtree.contains(PLAINTEXT), "{subtree}");
}

/// A rollback to a version before a rotation writes back the ciphertext that version held: the
/// rotation keeps the key that ciphertext needs (and says so) instead of retiring it.
#[test]
fn a_rotation_keeps_the_keys_a_rollback_to_an_older_version_needs() {
    let (tree, keyring, _) = tree_with_production_secret();
    let options = options(&tree);
    let host = ConfigHost::open(options.clone()).unwrap();
    let first = host.snapshot().version();
    // A new value of the secret, saved in the file and taken in by the host (recorded).
    let sealed = encrypt(&keyring, "production", &["db", "password"], "second-password").unwrap();
    tree.write("environments/production.json", &production_file(&sealed));
    host.reload().unwrap();
    let second = host.snapshot().version();
    assert!(second > first);
    let old_key = keyring.newest_key_id().to_owned();

    let report = secret_values::rotate(&options, "production").unwrap();
    host.reload().unwrap();
    assert!(report.retired.is_empty(), "{:?}", report.retired);
    assert_eq!(report.kept_for_history, vec![old_key.clone()]);

    let rolled = potter_config::timeline::rollback(&host, "production", first, potter_config::runtime::SetRequest::new(potter_config::ChangeOrigin::Rollback, "test"), false).unwrap();
    assert!(rolled.applied.is_some(), "nothing applied");
    assert_eq!(host.view("production", None, None).unwrap().get::<String>("db.password").unwrap(), PLAINTEXT);
}

/// `explain` never suggests an environment variable for a secret (a plain value there is
/// refused): it names `secrets set`, and its JSON has no variable.
#[test]
fn explain_suggests_secrets_set_for_a_secret_not_a_variable() {
    let (tree, _, _) = tree_with_production_secret();
    let said = ok(&run(&tree, &["--env", "production", "explain", "db.password"], None, &[]));
    assert!(!said.contains("POTTER_DB__PASSWORD"), "{said}");
    assert!(said.contains("change with: potter-config --env production secrets set db.password"), "{said}");
    let plain = ok(&run(&tree, &["--env", "production", "explain", "db.host"], None, &[]));
    assert!(plain.contains("override with: POTTER_DB__HOST=<value>"), "{plain}");
    let doc: Value = serde_json::from_str(&ok(&run(&tree, &["--env", "production", "explain", "db.password", "--format", "json"], None, &[]))).unwrap();
    assert_eq!(doc["env_var"], Value::Null, "{doc}");
}

/// `secrets set` checks the new value like any change before it writes the file: a value the
/// schema refuses is refused (named by key and rule, never quoted), and the file is untouched.
#[test]
fn secrets_set_refuses_a_value_the_schema_refuses_and_leaves_the_file() {
    let (tree, _, _) = tree_with_production_secret();
    tree.write("schemas/global_schema.json", r#"{"type": "object", "properties": {"db": {"type": "object", "properties": {"password": {"type": "string", "minLength": 12}}}}}"#);
    let before = fs::read_to_string(tree.root().join("environments/production.json")).unwrap();
    let refused = run(&tree, &["--env", "production", "secrets", "set", "db.password"], Some("short-pw\n"), &[]);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    let said = stderr(&refused);
    assert!(said.contains("db.password") && said.contains("minLength"), "{said}");
    assert!(!said.contains("short-pw") && !stdout(&refused).contains("short-pw"), "the refused value is quoted: {said}");
    assert_eq!(fs::read_to_string(tree.root().join("environments/production.json")).unwrap(), before, "the file was written");

    ok(&run(&tree, &["--env", "production", "secrets", "set", "db.password"], Some("a-long-enough-password\n"), &[]));
    assert_eq!(ok(&run(&tree, &["--env", "production", "get", "db.password", "--reveal"], None, &[])), "a-long-enough-password\n");
}

#[test]
fn overrides_built_on_the_watched_tree_decrypt_and_refuse_plaintext_as_a_full_build_does() {
    let (tree, keyring, _) = tree_with_production_secret();
    tree.write("global.json", r#"{"api": {"timeout": 30, "key": "plain-in-global"}}"#);
    let host = ConfigHost::open(options(&tree)).unwrap();
    let forever = std::time::Duration::from_secs(600);
    let _watcher = host.watch(potter_config::watch::WatchOptions { debounce: forever, finished_debounce: forever, max_delay: forever, poll_interval: None }).unwrap();
    // The first change after the watcher started reads the tree; the rest build on that read.
    host.set("production", "api.timeout", Value::from(31)).unwrap();
    let sealed = encrypt(&keyring, "production", &["api", "token"], "override-secret").unwrap();
    host.set("production", "api.token", Value::String(sealed)).unwrap();
    let view = host.view("production", None, None).unwrap();
    assert_eq!(view.get::<String>("api.token").unwrap(), "override-secret");
    assert_eq!(view.get::<String>("db.password").unwrap(), PLAINTEXT, "the file's secret stays decrypted");
    assert!(view.current().unwrap().is_secret("api.token"));
    // Plaintext over a path where a file holds a ciphertext.
    assert!(host.set("production", "db.password", Value::String("plain".into())).is_err());
    // A ciphertext where a file holds a plain value makes that plain value a leak.
    let over_plain = encrypt(&keyring, "production", &["api", "key"], "override-key").unwrap();
    let refused = host.set("production", "api.key", Value::String(over_plain)).unwrap_err().to_string();
    assert!(refused.contains("global.json:1:") && refused.contains("api.key"), "{refused}");
    assert!(!refused.contains("plain-in-global"), "the plaintext is not echoed: {refused}");
    assert_eq!(common::value_in(&host, "production", "api.key"), Some(Value::from("plain-in-global")));
    assert_eq!(common::value_in(&host, "production", "api.timeout"), Some(Value::from(31)));
}
