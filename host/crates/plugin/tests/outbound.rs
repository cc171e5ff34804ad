//! Outbound HTTP: the `http-source` example plugin against real HTTP servers on loopback.
//! Every request is checked by the host against the signed `grants.http` before it is sent;
//! limits cut oversize and slow answers; an ungranted origin is never contacted.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{CapturedLog, Fixture};
use potter_plugin::{trust_with, Allowance, PluginError};
use serde_json::json;

/// What the test server does with a request.
#[derive(Clone)]
enum Reply {
    /// Status, extra header lines, body (sent with its Content-Length).
    Full(u16, Vec<String>, String),
    /// 200 with `bytes` bytes of body and no Content-Length (read until close).
    Endless(usize),
    /// Accepts and never answers.
    Silent,
    /// Headers at once, then the body one byte every `interval`.
    Trickle(Duration),
}

/// A real HTTP/1.1 server on a free loopback port (one thread per connection), recording what it
/// was asked.
struct Server {
    port: u16,
    hits: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(reply: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let reply = Arc::new(reply);
        let (hits2, requests2) = (hits.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                hits2.fetch_add(1, Ordering::SeqCst);
                let (reply, requests) = (reply.clone(), requests2.clone());
                std::thread::spawn(move || serve(stream, &*reply, &requests));
            }
        });
        Server { port, hits, requests }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, reply: &(dyn Fn(&str) -> Reply + Send + Sync), requests: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    requests.lock().unwrap().push(head.clone());
    let mut stream = stream;
    match reply(&head) {
        Reply::Full(status, headers, body) => {
            let mut text = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n", body.len());
            for header in headers {
                text.push_str(&header);
                text.push_str("\r\n");
            }
            text.push_str("\r\n");
            text.push_str(&body);
            let _ = stream.write_all(text.as_bytes());
        }
        Reply::Endless(bytes) => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n");
            let chunk = vec![b' '; 64 * 1024];
            let mut sent = 0;
            while sent < bytes {
                if stream.write_all(&chunk).is_err() {
                    return;
                }
                sent += chunk.len();
            }
        }
        Reply::Silent => {
            let _ = reader.read(&mut [0; 1]);
            std::thread::sleep(Duration::from_secs(30));
        }
        Reply::Trickle(interval) => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n");
            for _ in 0..1000 {
                if stream.write_all(b" ").is_err() {
                    return;
                }
                std::thread::sleep(interval);
            }
        }
    }
}

/// Installs `http-source` granted exactly `origins`, with `limits` lines added, signed.
fn install(fixture: &Fixture, origins: &[String], limits: &str) -> PathBuf {
    let granted: Vec<String> = origins.iter().map(|o| format!("{o:?}")).collect();
    fixture.install_edited("http-source", |text| {
        let text = text.replace("http = [\"http://127.0.0.1:8780\"]", &format!("http = [{}]", granted.join(", ")));
        let mut out = String::new();
        for line in text.lines() {
            out.push_str(line);
            out.push('\n');
            if line == "[limits]" {
                out.push_str(limits);
                out.push('\n');
            }
        }
        // The test's own limits replace the example's where both are given.
        dedupe_limits(&out)
    })
}

/// Keeps the first occurrence of each `key =` line (the test's, inserted right after `[limits]`).
fn dedupe_limits(text: &str) -> String {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = String::new();
    let mut in_limits = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_limits = line == "[limits]";
        }
        if in_limits {
            if let Some((key, _)) = line.split_once('=') {
                if !seen.insert(key.trim().to_owned()) {
                    continue;
                }
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn namespace(url: &str) -> String {
    json!({ "url": url }).to_string()
}

fn document() -> String {
    json!({"remote": {"api": {"timeout": 5}}}).to_string()
}

#[test]
fn a_granted_origin_serves_its_document_and_an_unchanged_one_is_not_fetched_twice() {
    let server = Server::start(|head| {
        if head.to_ascii_lowercase().contains("if-none-match: \"v1\"") {
            Reply::Full(304, vec!["etag: \"v1\"".into()], String::new())
        } else {
            Reply::Full(200, vec!["etag: \"v1\"".into(), "content-type: application/json".into()], document())
        }
    });
    let fixture = Fixture::new();
    let host = fixture.host("production");
    let plugin = host.load_file(&install(&fixture, &[server.origin()], "")).unwrap();
    let url = format!("{}/config/production.json", server.origin());
    let token = plugin.change_token("production", namespace(&url)).unwrap();
    assert_eq!(token.as_deref(), Some("\"v1\""));
    // The body the token's request brought is the one `load` uses: one request so far.
    let layer = plugin.load_source("production", namespace(&url)).unwrap();
    assert_eq!(layer, json!({"remote": {"api": {"timeout": 5}}}));
    assert_eq!(server.requests().len(), 1);
    // Asked again: a conditional request, answered 304, the same token (the host skips `load`).
    assert_eq!(plugin.change_token("production", namespace(&url)).unwrap().as_deref(), Some("\"v1\""));
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].starts_with("GET /config/production.json HTTP/1.1"), "{}", requests[1]);
    assert!(requests[1].to_ascii_lowercase().contains("if-none-match: \"v1\""), "{}", requests[1]);
    assert!(requests[1].to_ascii_lowercase().contains(&format!("host: 127.0.0.1:{}", server.port)), "{}", requests[1]);
    // The listing shows the grant and the outbound limits.
    let info = host.list().into_iter().find(|info| info.name == "http-source").unwrap();
    assert_eq!(info.grants.unwrap().http, vec![server.origin()]);
    assert_eq!(info.http_limits.unwrap().requests, 4);
}

#[test]
fn an_ungranted_origin_is_refused_before_anything_is_sent_naming_the_url_and_the_plugin() {
    let granted = Server::start(|_| Reply::Full(200, vec![], document()));
    let other = Server::start(|_| Reply::Full(200, vec![], document()));
    let fixture = Fixture::new();
    let host = fixture.host("production");
    let plugin = host.load_file(&install(&fixture, &[granted.origin()], "")).unwrap();
    let url = format!("{}/config.json", other.origin());
    let log = CapturedLog::default();
    let error = tracing::subscriber::with_default(log.clone(), || plugin.load_source("production", namespace(&url)).unwrap_err());
    let text = error.to_string();
    assert!(matches!(error, PluginError::SourceFailed { .. }), "{text}");
    assert!(text.starts_with("plugin http-source: load"), "{text}");
    assert!(text.contains(&format!("{url}: refused: origin {} is not granted to plugin http-source (grants.http: {})", other.origin(), granted.origin())), "{text}");
    assert_eq!(other.hits(), 0, "the ungranted server was never contacted");
    assert_eq!(granted.hits(), 0);
    let logged = log.text();
    assert!(logged.contains("outbound request refused") && logged.contains("plugin=http-source") && logged.contains(&url), "{logged}");
    // Another port of the granted host, another scheme: refused alike.
    for url in [format!("http://127.0.0.1:{}/", other.port), format!("https://127.0.0.1:{}/", granted.port)] {
        let text = plugin.load_source("production", namespace(&url)).unwrap_err().to_string();
        assert!(text.contains("is not granted to plugin http-source"), "{text}");
    }
    assert_eq!(other.hits() + granted.hits(), 0);
}

#[test]
fn a_redirect_to_an_ungranted_origin_is_refused() {
    let elsewhere = Server::start(|_| Reply::Full(200, vec![], document()));
    let target = format!("{}/stolen", elsewhere.origin());
    let redirecting = Server::start(move |_| Reply::Full(302, vec![format!("location: {target}")], String::new()));
    let fixture = Fixture::new();
    let host = fixture.host("production");
    let plugin = host.load_file(&install(&fixture, &[redirecting.origin()], "")).unwrap();
    let url = format!("{}/config.json", redirecting.origin());
    let text = plugin.load_source("production", namespace(&url)).unwrap_err().to_string();
    assert!(text.contains(&format!("{url}: redirect refused: {}/stolen: refused: origin {} is not granted", elsewhere.origin(), elsewhere.origin())), "{text}");
    assert_eq!(elsewhere.hits(), 0);
}

#[test]
fn a_body_past_the_response_limit_is_cut_and_the_call_fails() {
    // Declared too long: refused on its headers.
    let declared = Server::start(|_| Reply::Full(200, vec![], " ".repeat(300 * 1024)));
    // Not declared (read until close): cut when the limit is passed.
    let endless = Server::start(|_| Reply::Endless(100 * 1024 * 1024));
    let fixture = Fixture::new();
    let host = fixture.host("production");
    let plugin = host.load_file(&install(&fixture, &[declared.origin(), endless.origin()], "http_response_kib = 256")).unwrap();
    let url = format!("{}/big.json", declared.origin());
    let text = plugin.load_source("production", namespace(&url)).unwrap_err().to_string();
    assert!(text.contains(&format!("{url}: response of 307200 bytes exceeds the limit of 262144 bytes (limits.http_response_kib)")), "{text}");
    let started = Instant::now();
    let url = format!("{}/endless.json", endless.origin());
    let text = plugin.load_source("production", namespace(&url)).unwrap_err().to_string();
    assert!(text.contains(&format!("{url}: response body exceeds the limit of 262144 bytes (limits.http_response_kib); cut")), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3), "cut early, not after 100 MB: {:?}", started.elapsed());
    // The plugin still works afterwards.
    let fine = Server::start(|_| Reply::Full(200, vec![], document()));
    let plugin = host.load_file(&install(&fixture, &[fine.origin()], "")).unwrap();
    assert!(plugin.load_source("production", namespace(&format!("{}/c.json", fine.origin()))).is_ok());
}

#[test]
fn a_server_that_never_answers_or_trickles_is_cut_off_at_the_total_time_limit() {
    let silent = Server::start(|_| Reply::Silent);
    let trickling = Server::start(|_| Reply::Trickle(Duration::from_millis(20)));
    let fixture = Fixture::new();
    let host = fixture.host("production");
    let plugin = host.load_file(&install(&fixture, &[silent.origin(), trickling.origin()], "http_total_ms = 400")).unwrap();
    for (server, expected) in [(&silent, "no response within the limit of 400 ms (limits.http_total_ms)"), (&trickling, "response body not complete within the limit of 400 ms (limits.http_total_ms)")] {
        let url = format!("{}/c.json", server.origin());
        let started = Instant::now();
        let text = plugin.load_source("production", namespace(&url)).unwrap_err().to_string();
        let took = started.elapsed();
        assert!(text.contains(&format!("{url}: {expected}")), "{text}");
        assert!(took >= Duration::from_millis(400) && took < Duration::from_millis(2500), "{took:?}");
    }
    // The call's own limit holds too: a total limit above it ends at the call's deadline.
    let plugin = host.load_file(&install(&fixture, &[silent.origin()], "timeout_ms = 300\nhttp_total_ms = 5000")).unwrap();
    let error = plugin.load_source("production", namespace(&format!("{}/c.json", silent.origin()))).unwrap_err();
    assert_eq!(error.to_string(), "plugin http-source: load: timed out (limit 300 ms)");
}

#[test]
fn without_grants_http_the_import_is_refused_and_without_the_net_allowance_the_grant_is() {
    let fixture = Fixture::new();
    let host = fixture.host("production");
    let wasm = fixture.install_edited("http-source", |text| text.replace("http = [\"http://127.0.0.1:8780\"]", ""));
    let error = host.load_file(&wasm).unwrap_err();
    assert!(error.is_refusal(), "{error}");
    let text = error.to_string();
    assert!(text.starts_with("plugin http-source: refused: imports `wasi:http/outgoing-handler@0.2."), "{text}");
    assert!(text.ends_with("not granted (network access is granted only to a source whose signed manifest lists origins in `grants.http`)"), "{text}");

    trust_with(&fixture.key.public_key, &fixture.state.join("trusted-keys"), &Allowance::parse("env,dirs").unwrap()).unwrap();
    let wasm = install(&fixture, &["http://127.0.0.1:9".to_owned()], "");
    let text = host.load_file(&wasm).unwrap_err().to_string();
    assert!(text.contains("grants.http `http://127.0.0.1:9` is a `net` grant, which the trust store does not allow key"), "{text}");
}

#[test]
fn sign_refuses_outbound_limits_above_the_ceilings_and_malformed_origins() {
    let fixture = Fixture::new();
    let wasm = fixture.install_unsigned("http-source");
    let manifest = potter_plugin::manifest_path(&wasm);
    let original = std::fs::read_to_string(&manifest).unwrap();
    for (edit, expected) in [
        (original.replace("http_requests = 4", "http_requests = 1000"), "limits.http_requests = 1000 exceeds the host maximum of 64"),
        (original.replace("http_response_kib = 1024", "http_response_kib = 1048576"), "limits.http_response_kib = 1048576 exceeds the host maximum of 16384"),
        (original.replace("http://127.0.0.1:8780", "http://127.0.0.1:8780/path"), "no path, query, fragment or user"),
        (original.replace("http://127.0.0.1:8780", "ftp://127.0.0.1:21"), "the scheme must be http or https"),
    ] {
        std::fs::write(&manifest, edit).unwrap();
        let text = potter_plugin::sign(&wasm, &fixture.key.secret_key).unwrap_err().to_string();
        assert!(text.contains(expected), "{text}");
    }
}
