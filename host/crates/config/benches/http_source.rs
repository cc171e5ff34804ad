//! An HTTP source's poll over loopback: the `http-source` plugin (signed, compiled once) asked by
//! `reload()` while its document is unchanged (a conditional GET answered `304`: no body, no
//! parse, no new snapshot) and while it changes on every request (`200` with a new ETag: the body
//! parsed, a new layer and snapshot). Baseline in the same run: the same conditional GET sent by a
//! plain blocking client (one TCP connection per request, as the host's client opens). One
//! environment, so one poll is one request. Not a criterion bench: p50 and p99 matter.
//!
//! `cargo bench -p potter-config --bench http_source [-- ROUNDS]` (default 200)

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use potter_config::{ConfigHost, Options};

mod common;
use common::{count_arg, report};

/// Serves a 100-key JSON document; `changing` gives every request a new version (ETag).
fn serve(changing: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let version = Arc::new(AtomicU64::new(1));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut line, mut if_none_match) = (String::new(), None);
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("if-none-match:") {
                    if_none_match = Some(value.trim().to_owned());
                }
                line.clear();
            }
            if changing.load(Ordering::SeqCst) {
                version.fetch_add(1, Ordering::SeqCst);
            }
            let etag = format!("\"v{}\"", version.load(Ordering::SeqCst));
            let mut stream = stream;
            if if_none_match.as_deref() == Some(etag.as_str()) {
                let _ = write!(stream, "HTTP/1.1 304 Not Modified\r\netag: {etag}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            } else {
                let keys: Vec<String> = (0..100).map(|i| format!("\"key{i}\": {}", i * 7)).collect();
                let body = format!("{{\"remote\": {{\"version\": {}, {}}}}}", version.load(Ordering::SeqCst), keys.join(", "));
                let _ = write!(stream, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\netag: {etag}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            }
        }
    });
    port
}

/// One conditional GET by a plain client: the floor of a poll.
fn plain_get(port: u16, etag: &str) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET /config.json HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nif-none-match: {etag}\r\nconnection: close\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 304"));
}

fn main() {
    let rounds: usize = count_arg(200);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let status = Command::new("bash").arg(repo.join("scripts/build-plugins")).status().unwrap();
    assert!(status.success(), "scripts/build-plugins failed");

    let changing = Arc::new(AtomicBool::new(false));
    let port = serve(changing.clone());
    let dir = tempfile::tempdir().unwrap();
    let (root, state) = (dir.path().join("config"), dir.path().join("state"));
    fs::create_dir_all(root.join("environments")).unwrap();
    fs::create_dir_all(root.join("plugins")).unwrap();
    fs::write(root.join("global.json"), format!(r#"{{"plugins": {{"http-source": {{"url": "http://127.0.0.1:{port}/config.json"}}}}}}"#)).unwrap();
    fs::write(root.join("environments/production.json"), "{}").unwrap();
    let built = repo.join("target/plugins");
    let wasm = root.join("plugins/http-source.wasm");
    fs::copy(built.join("http-source.wasm"), &wasm).unwrap();
    let manifest = fs::read_to_string(built.join("http-source.plugin.toml")).unwrap().replace("http://127.0.0.1:8780", &format!("http://127.0.0.1:{port}"));
    fs::write(potter_plugin::manifest_path(&wasm), manifest).unwrap();
    let key = potter_plugin::keygen(&dir.path().join("signer")).unwrap();
    potter_plugin::trust_with(&key.public_key, &state.join("trusted-keys"), &potter_plugin::Allowance::all()).unwrap();
    potter_plugin::sign(&wasm, &key.secret_key).unwrap();

    let mut options = Options::new(&root);
    options.state_dir = state;
    options.history = false;
    let host = ConfigHost::open(options).unwrap();
    let version = host.snapshot().version();

    let (mut floor, mut unchanged, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = Instant::now();
        plain_get(port, "\"v1\"");
        floor.push(start.elapsed());
        let start = Instant::now();
        host.reload().unwrap();
        unchanged.push(start.elapsed());
    }
    assert_eq!(host.snapshot().version(), version, "unchanged polls made no version");
    changing.store(true, Ordering::SeqCst);
    for _ in 0..rounds {
        let start = Instant::now();
        host.reload().unwrap();
        changed.push(start.elapsed());
    }
    assert!(host.snapshot().version() > version + rounds as u64 / 2, "changed polls made new versions");
    report("baseline: a plain client's conditional GET (304) over loopback", floor);
    report("http-source unchanged poll: reload(), conditional GET answered 304", unchanged);
    report("http-source changed poll: reload(), 200 + parse + new snapshot", changed);
}
