//! A scripted HTTP/1.1 server on 127.0.0.1 (plain or TLS) for the network sources' tests: each
//! connection is read up to the end of its head and answered by the test's `handler`, which may
//! also misbehave (never answer, drip bytes, send far too much, close). Stopped on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One request's head.
pub struct Request {
    pub path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(have, _)| have.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

/// What the server does with a request.
pub enum Reply {
    /// A complete response (`content-length` and `connection: close` added).
    Send { status: u16, headers: Vec<(&'static str, String)>, body: Vec<u8> },
    /// Reads the request and never answers (until the server is dropped).
    Hang,
    /// A valid response sent one byte every 100 ms (slowloris).
    Drip(Vec<u8>),
    /// A `200` announcing and sending `usize` bytes of JSON-looking filler.
    Flood(usize),
    /// Closes the connection without an answer (a remote that went away).
    Close,
}

impl Reply {
    pub fn json(status: u16, body: &str) -> Reply {
        Reply::Send { status, headers: vec![("content-type", "application/json".into())], body: body.as_bytes().to_vec() }
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

pub struct Loopback {
    pub port: u16,
    /// Requests answered or refused so far.
    pub requests: Arc<AtomicUsize>,
    stopped: Arc<AtomicBool>,
}

impl Loopback {
    pub fn plain(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Loopback {
        Self::start(None, Arc::new(handler))
    }

    /// HTTPS with `config` (e.g. a certificate signed by a test CA).
    pub fn tls(config: Arc<rustls::ServerConfig>, handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Loopback {
        Self::start(Some(config), Arc::new(handler))
    }

    pub fn origin(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn start(tls: Option<Arc<rustls::ServerConfig>>, handler: Arc<Handler>) -> Loopback {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let stopped = Arc::new(AtomicBool::new(false));
        let (count, stop) = (requests.clone(), stopped.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let (handler, count, stop, tls) = (handler.clone(), count.clone(), stop.clone(), tls.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    match tls {
                        Some(config) => match rustls::ServerConnection::new(config) {
                            Ok(connection) => answer(rustls::StreamOwned::new(connection, stream), &*handler, &count, &stop),
                            Err(_) => {}
                        },
                        None => answer(stream, &*handler, &count, &stop),
                    }
                });
            }
        });
        Loopback { port, requests, stopped }
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn answer<S: Read + Write>(stream: S, handler: &Handler, count: &AtomicUsize, stop: &AtomicBool) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return; // e.g. a TLS handshake the client refused
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) <= 2 {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    count.fetch_add(1, Ordering::SeqCst);
    let reply = handler(&Request { path, headers });
    let mut stream = reader.into_inner();
    let head = |status: u16, headers: &[(&str, String)], length: usize| {
        let mut head = format!("HTTP/1.1 {status} {}\r\ncontent-length: {length}\r\nconnection: close\r\n", reason(status));
        headers.iter().for_each(|(name, value)| head.push_str(&format!("{name}: {value}\r\n")));
        head + "\r\n"
    };
    match reply {
        Reply::Send { status, headers, body } => {
            let length = if status == 304 { 0 } else { body.len() };
            let _ = stream.write_all(head(status, &headers, length).as_bytes());
            let _ = stream.write_all(&body);
            let _ = stream.flush();
        }
        Reply::Hang => {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Reply::Drip(body) => {
            let whole = head(200, &[("content-type", "application/json".into())], body.len()).into_bytes().into_iter().chain(body);
            for byte in whole {
                if stop.load(Ordering::SeqCst) || stream.write_all(&[byte]).and_then(|()| stream.flush()).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Reply::Flood(length) => {
            if stream.write_all(head(200, &[("content-type", "application/json".into())], length).as_bytes()).is_err() {
                return;
            }
            let chunk = vec![b' '; 64 * 1024];
            let mut sent = 0;
            while sent < length && !stop.load(Ordering::SeqCst) {
                let n = chunk.len().min(length - sent);
                if stream.write_all(&chunk[..n]).is_err() {
                    return; // the client cut it
                }
                sent += n;
            }
        }
        Reply::Close => {}
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        304 => "Not Modified",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Status",
    }
}
