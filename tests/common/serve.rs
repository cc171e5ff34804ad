//! `potter-config serve` as a real process on a loopback free port, and plain HTTP/1.1 requests
//! to it (one connection per request), for the end-to-end tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A running server, killed on drop.
pub struct Served {
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The development token it printed (`--dev-token`), else empty.
    pub token: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Runs `potter-config ARGS` (a `serve` command line, `--listen 127.0.0.1:0`) with a clean
    /// environment and waits for the address it prints.
    pub fn start(args: &[&str]) -> Served {
        Served::start_with(args, &[], Stdio::null())
    }

    /// `serve --dev-token` over `tree` with `env` (e.g. keyrings) in its environment.
    pub fn dev_server(tree: &super::Tree, env: &[(String, String)]) -> Served {
        let (root, state) = (tree.root(), tree.state());
        let args = ["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0", "--dev-token"];
        Served::start_with(&args, env, Stdio::null())
    }

    /// Serves the tree at `root` with state in `state` (no development token), with `env` in its
    /// environment and its log on the test's stderr.
    pub fn serve_tree(root: &Path, state: &Path, env: &[(String, String)]) -> Served {
        let args = ["--root", root.to_str().unwrap(), "--state", state.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"];
        Served::start_with(&args, env, Stdio::inherit())
    }

    fn start_with(args: &[&str], env: &[(String, String)], stderr: Stdio) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_potter-config"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the server starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut token = String::new();
        let addr = loop {
            let line = lines.next().expect("the server prints its address").unwrap();
            if let Some(addr) = line.strip_prefix("listening on http://") {
                break addr.to_owned();
            }
            if let Some((_, dev)) = line.strip_prefix("development token").and_then(|rest| rest.rsplit_once(": ")) {
                token = dev.trim().to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Served { child, addr, token }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The text of one request with the token.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Value>) -> String {
        self.request_as(&self.token, method, path, headers, body)
    }

    /// The text of one request with `token`.
    fn request_as(&self, token: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Value>) -> String {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n", self.addr);
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
        request
    }

    /// `(status, JSON body)` of one request with the token (every answer of the API is JSON).
    pub fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Value>) -> (u16, Value) {
        let mut headers = headers.to_vec();
        headers.push(("Connection", "close"));
        let (status, text) = self.exchange(&self.request(method, path, &headers, body));
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}")))
    }

    /// `(status, JSON body)` of one request with `token` instead of the server's own.
    pub fn call_as(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, text) = self.exchange(&self.request_as(token, method, path, &[("Connection", "close")], body));
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}")))
    }

    /// `(status, body as JSON or null)` of a GET with `token`, or with no `Authorization` at all.
    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let authorization = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{authorization}\r\n", self.addr);
        let (status, text) = self.exchange(&request);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sends one request on a new connection and reads the answer to its end: `(status, body)`.
    fn exchange(&self, request: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, rest) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let text = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(rest) } else { rest.to_owned() };
        (status, text)
    }
}

/// The body of a chunked HTTP/1.1 answer.
pub fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}
