//! Environments do not need each other's keys: a process decrypts only the environments it
//! serves, and an environment whose keyring is absent still loads, validates and serves its
//! non-secret values, refusing only to reveal its secrets. Real binary, real example tree, real
//! HTTP on loopback, and the embedding API.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{demo_keys, potter_with, stderr, stdout, Tree};
use potter_config::{ConfigHost, Error, Options};
use potter_secrets::{encrypt, Keyring};
use serde_json::Value;

const DEVELOPMENT_KEY: &str = "POTTER_SECRET_KEY_DEVELOPMENT";
const PRODUCTION_KEY: &str = "POTTER_SECRET_KEY_PRODUCTION";
const OPENAI_KEY: &str = "llm_providers.openai.api_key";

/// The bundled example with development's first ciphertext altered so that it can no longer
/// decrypt (still well formed): any process that decrypts development fails its load.
fn example_with_corrupt_development_secret() -> Tree {
    let tree = Tree::copy_of("examples/potter");
    let file = tree.root().join("environments/development.json");
    let text = std::fs::read_to_string(&file).unwrap();
    let start = text.find("enc:v1:").unwrap();
    let end = start + text[start..].find('"').unwrap();
    let fields: Vec<&str> = text[start..end].split(':').collect();
    let sealed = fields[4];
    let flipped = if sealed.starts_with('A') { "B" } else { "A" };
    let corrupt = format!("{}:{flipped}{}", fields[..4].join(":"), &sealed[1..]);
    tree.write("environments/development.json", &text.replacen(&text[start..end], &corrupt, 1));
    tree
}

/// The example's demo key of each named environment (`PRODUCTION`, ...).
fn keys(names: &[&str]) -> Vec<(String, String)> {
    demo_keys().into_iter().filter(|(variable, _)| names.iter().any(|name| variable == &format!("POTTER_SECRET_KEY_{name}"))).collect()
}

fn run(tree: &Tree, keys: &[(String, String)], args: &[&str]) -> Output {
    let (root, state) = (tree.root(), tree.state());
    let mut all = vec!["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap()];
    all.extend(args);
    let env: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    potter_with(&all, &env, None)
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "exit {:?}\nstdout: {}\nstderr: {}", output.status.code(), stdout(&output), stderr(&output));
    stdout(&output)
}

fn failed(output: Output, code: i32) -> String {
    assert_eq!(output.status.code(), Some(code), "stdout: {}\nstderr: {}", stdout(&output), stderr(&output));
    stderr(&output)
}

#[test]
fn with_only_productions_key_every_read_of_production_works() {
    let tree = example_with_corrupt_development_secret();
    let production = keys(&["PRODUCTION"]);
    let dump = ok(run(&tree, &production, &["--env", "production", "dump"]));
    assert!(dump.contains("<redacted>") && dump.contains("gpt-4o"), "{dump}");
    let revealed = ok(run(&tree, &production, &["--env", "production", "get", OPENAI_KEY, "--reveal"]));
    assert!(!revealed.contains("<redacted>") && !revealed.contains("enc:v1:") && !revealed.trim().is_empty(), "{revealed}");
    let explained = ok(run(&tree, &production, &["--env", "production", "explain", OPENAI_KEY]));
    assert!(explained.contains("environments/production.json") && explained.contains("<redacted>"), "{explained}");
    // `validate` checks every environment; the ones without a key are reported, not failed.
    let validated = ok(run(&tree, &production, &["validate"]));
    assert!(validated.contains(DEVELOPMENT_KEY) && validated.contains("POTTER_SECRET_KEY_STAGING"), "{validated}");
    assert!(!validated.contains(PRODUCTION_KEY), "production was decrypted and checked: {validated}");
    let restricted = ok(run(&tree, &production, &["validate", "--environments", "production"]));
    assert!(!restricted.contains(DEVELOPMENT_KEY) && !restricted.lines().any(|line| line.starts_with("development")), "{restricted}");
}

#[test]
fn a_read_of_one_environment_never_decrypts_another_even_with_its_key() {
    let tree = example_with_corrupt_development_secret();
    let all = keys(&["PRODUCTION", "STAGING", "DEVELOPMENT"]);
    ok(run(&tree, &all, &["--env", "production", "dump"]));
    ok(run(&tree, &all, &["--env", "production", "get", OPENAI_KEY, "--reveal"]));
    ok(run(&tree, &all, &["validate", "--environments", "production,staging"]));
    // The corrupt ciphertext is real: a process that serves development does decrypt it, and fails.
    let message = failed(run(&tree, &all, &["validate"]), 3);
    assert!(message.contains("environments/development.json:") && message.contains(OPENAI_KEY), "{message}");
    let message = failed(run(&tree, &all, &["--env", "development", "dump"]), 3);
    assert!(message.contains("environments/development.json:"), "{message}");
}

#[test]
fn revealing_a_secret_without_its_key_names_the_missing_variable() {
    let tree = example_with_corrupt_development_secret();
    let production = keys(&["PRODUCTION"]);
    // Development loads and serves its non-secret values; its secrets stay redacted.
    let dump = ok(run(&tree, &production, &["--env", "development", "dump"]));
    assert!(dump.contains("<redacted>") && !dump.contains("enc:v1:"), "{dump}");
    assert_eq!(ok(run(&tree, &production, &["--env", "development", "get", "llm_providers.openai.model"])).trim(), "gpt-4o");
    assert_eq!(ok(run(&tree, &production, &["--env", "development", "get", OPENAI_KEY])).trim(), "<redacted>");
    let message = failed(run(&tree, &production, &["--env", "development", "get", OPENAI_KEY, "--reveal"]), 1);
    assert!(message.contains(DEVELOPMENT_KEY) && message.contains("environments/development.json:16:"), "{message}");
    assert!(!message.contains("enc:v1:"), "{message}");
    let message = failed(run(&tree, &production, &["--env", "development", "get", "llm_providers", "--reveal"]), 1);
    assert!(message.contains(DEVELOPMENT_KEY), "{message}");
}

#[test]
fn an_environment_outside_environments_answers_as_not_served() {
    let tree = example_with_corrupt_development_secret();
    let production = keys(&["PRODUCTION"]);
    let message = failed(run(&tree, &production, &["--environments", "production", "--env", "development", "dump"]), 2);
    assert!(message.contains("not served by this process") && message.contains("production"), "{message}");
    let message = failed(run(&tree, &production, &["--environments", "production,nowhere", "--env", "production", "dump"]), 2);
    assert!(message.contains("unknown environment `nowhere`"), "{message}");
}

/// A check that needs the plaintext (a pattern) is a warning naming the key when the key is
/// absent, and still an error when the key is there and the plaintext is wrong.
#[test]
fn a_pattern_on_a_secret_is_checked_only_where_the_key_is_held() {
    let tree = Tree::minimal();
    tree.write(
        "schemas/global_schema.json",
        r#"{"type": "object", "properties": {"db": {"type": "object", "properties": {"password": {"type": "string", "secret": true, "pattern": "^pw-"}}}}}"#,
    );
    let keyring = Keyring::generate("production").unwrap();
    let key = vec![(PRODUCTION_KEY.to_owned(), keyring.to_env_value().expose().to_owned())];
    let write = |plaintext: &str| {
        let sealed = encrypt(&keyring, "production", &["db", "password"], plaintext).unwrap();
        tree.write("environments/production.json", &format!(r#"{{"db": {{"password": "{sealed}"}}}}"#));
    };
    write("not-matching");
    let output = run(&tree, &key, &["validate"]);
    assert!(stdout(&output).contains("db.password") && stdout(&output).contains("pattern"), "{}", stdout(&output));
    failed(output, 3);
    let report = ok(run(&tree, &[], &["validate"]));
    assert!(report.contains(PRODUCTION_KEY) && report.contains("schema:pattern") && report.contains("warning"), "{report}");
    write("pw-right");
    ok(run(&tree, &key, &["validate"]));
}

/// The real server on loopback.
struct Server {
    child: Child,
    addr: String,
    token: String,
}

impl Server {
    fn start(tree: &Tree, keys: &[(String, String)], extra: &[&str]) -> Self {
        let (root, state) = (tree.root(), tree.state());
        let mut child = Command::new(env!("CARGO_BIN_EXE_potter-config"))
            .args(["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0", "--dev-token"])
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(keys.iter().cloned())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines().map(Result::unwrap);
        let token = lines.next().expect("the development token").rsplit(' ').next().unwrap().to_owned();
        let addr = lines.next().expect("the address").strip_prefix("listening on http://").expect("an http address").to_owned();
        std::thread::spawn(move || lines.for_each(drop));
        Server { child, addr, token }
    }

    /// GET with the admin token: status and JSON body.
    fn read(&self, path: &str) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n", self.addr, self.token).unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        let status = raw.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
        let body = raw.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        // Small bodies may come chunked: take the JSON between the first `{` and the last `}`.
        let json = body.find('{').zip(body.rfind('}')).map_or("null", |(start, end)| &body[start..=end]);
        (status, serde_json::from_str(json).unwrap_or(Value::Null))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_with_environments_production_serves_production_and_refuses_development() {
    let tree = example_with_corrupt_development_secret();
    // Development's key is given too: restricted to production, the server never uses it.
    let server = Server::start(&tree, &keys(&["PRODUCTION", "DEVELOPMENT"]), &["--environments", "production"]);
    let (status, body) = server.read(&format!("/v1/config/production/{OPENAI_KEY}"));
    assert_eq!(status, 200, "{body}");
    assert!(body["value"].as_str().is_some_and(|value| !value.starts_with("enc:") && value != "<redacted>"), "{body}");
    assert_eq!(server.read("/v1/config/production").0, 200);
    for path in ["/v1/config/development", "/v1/config/development/llm_providers.openai.model"] {
        let (status, body) = server.read(path);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("not served by this process"), "{body}");
    }
    let (_, environments) = server.read("/v1/environments");
    assert!(!environments.to_string().contains("development"), "{environments}");
}

#[test]
fn serve_without_a_key_serves_the_environment_but_not_its_secrets() {
    let tree = example_with_corrupt_development_secret();
    let server = Server::start(&tree, &keys(&["PRODUCTION"]), &[]);
    let (status, body) = server.read("/v1/config/development/llm_providers.openai.model");
    assert_eq!((status, body["value"].as_str()), (200, Some("gpt-4o")), "{body}");
    for path in [format!("/v1/config/development/{OPENAI_KEY}"), "/v1/config/development".to_owned()] {
        let (status, body) = server.read(&path);
        assert_eq!((status, body["error"]["code"].as_str()), (503, Some("secret_sealed")), "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(DEVELOPMENT_KEY) && !message.contains("enc:v1:"), "{message}");
    }
    assert_eq!(server.read(&format!("/v1/config/production/{OPENAI_KEY}")).0, 200);
}

fn embedder_options(tree: &Tree, keys: Vec<(String, String)>) -> Options {
    let mut options = Options::new(tree.root());
    options.state_dir = tree.state();
    options.env_vars = Some(keys);
    options
}

#[test]
fn an_embedder_reads_production_with_productions_key_alone() {
    let tree = example_with_corrupt_development_secret();
    let host = ConfigHost::open(embedder_options(&tree, keys(&["PRODUCTION"]))).unwrap();
    let production = host.view("production", None, None).unwrap();
    let secret: String = production.get(OPENAI_KEY).unwrap();
    assert!(!secret.starts_with("enc:"));
    let development = host.view("development", None, None).unwrap();
    assert_eq!(development.get::<String>("llm_providers.openai.model").unwrap(), "gpt-4o");
    let error = development.get::<String>(OPENAI_KEY).unwrap_err();
    assert!(error.to_string().contains(DEVELOPMENT_KEY), "{error}");
    let error = development.extract::<Value>("llm_providers").unwrap_err();
    assert!(error.to_string().contains(DEVELOPMENT_KEY), "{error}");
    assert_eq!(development.value(OPENAI_KEY), Some(Value::String("<redacted>".into())));
    assert!(format!("{error:?}").find("enc:v1:").is_none());
}

#[test]
fn an_embedder_restricted_to_production_never_touches_development() {
    let tree = example_with_corrupt_development_secret();
    let mut options = embedder_options(&tree, keys(&["PRODUCTION", "DEVELOPMENT"]));
    // Serving development too decrypts its corrupt ciphertext: the load fails.
    assert!(matches!(ConfigHost::open(options.clone()), Err(Error::Secret(_))));
    options.environments = Some(vec!["production".to_owned()]);
    let host = ConfigHost::open(options).unwrap();
    assert!(host.view("production", Some("api_service"), None).unwrap().get::<String>(OPENAI_KEY).is_ok());
    let error = host.view("development", None, None).err().expect("development is not served");
    assert!(matches!(error, Error::NotServed { .. }) && error.to_string().contains("not served"), "{error}");
    let served: Vec<String> = host.snapshot().axes().environments.iter().map(|env| env.to_string()).collect();
    assert_eq!(served, ["production"]);
    assert!(host.validate().issues().all(|issue| issue.view.as_ref().is_none_or(|view| &*view.environment == "production")));
}
