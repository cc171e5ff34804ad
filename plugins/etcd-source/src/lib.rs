//! Potter Config source plugin: a key prefix of etcd, read through etcd's v3 JSON gateway.
//!
//! Configured by its namespace, `plugins.etcd-source` (set in the tree like any key):
//!
//! | key | meaning |
//! |---|---|
//! | `endpoint` | etcd's client URL, e.g. `http://127.0.0.1:2379`. Required; its origin must be granted in `grants.http`. |
//! | `prefix` | the key prefix read, default `/config/{environment}/`; `{environment}` is replaced by the environment's name |
//! | `at` | dotted key path the keys are placed under (default: none) |
//! | `poll_interval_ms` | how often the host asks for the prefix's revision (default 200, so a put is live within a second) |
//!
//! Mapping: the key `/config/production/remote/api/timeout` under the prefix `/config/production/`
//! becomes `remote.api.timeout`. A value that parses as JSON is that JSON value (`30`, `true`,
//! `{"a":1}`); any other value is a string. A key equal to the prefix, or with an empty segment
//! (`a//b`), is refused naming it.
//!
//! Change detection: `change-token` reads the prefix once (one `POST /v3/kv/range`) and answers
//! the largest `mod_revision` and the key count; the host calls `load` only when that changed, and
//! `load` uses the response `change-token` already brought, so a change costs one request.
//!
//! Push (world `live-source`, 0.2.0): `wait-for-change` reads the prefix, and when its token is
//! still the host's, opens etcd's streaming `POST /v3/watch` from the next revision and reads the
//! stream until an event arrives or the budget is spent (waiting on the body and a timer at
//! once), so a put is live as soon as etcd tells. Provenance: each key is credited to
//! `<etcd key> @ revision <its mod_revision>`.

use std::cell::RefCell;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use std::time::{Duration, Instant};

use potter_sdk::{json, serde_json, LiveSource, Source, Value};
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, FutureIncomingResponse, IncomingResponse, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

/// Largest response read, whatever the host allows (the host's own limit cuts earlier when lower).
const MAX_BODY: usize = 16 * 1024 * 1024;

const DEFAULT_POLL_MS: u32 = 200;

/// One read of the prefix.
struct Range {
    /// (key below the prefix, value text, mod_revision) in key order.
    entries: Vec<(String, String, u64)>,
    /// The store's revision when it was read.
    revision: u64,
}

impl Range {
    fn token(&self) -> String {
        let newest = self.entries.iter().map(|(_, _, revision)| *revision).max().unwrap_or(0);
        format!("{newest}:{}", self.entries.len())
    }
}

thread_local! {
    /// A read `change-token` made and `load` has not used yet, with its prefix.
    static PENDING: RefCell<Option<(String, Range)>> = const { RefCell::new(None) };
}

struct Settings {
    endpoint: String,
    prefix: String,
    at: Option<String>,
}

fn settings() -> Result<Settings, String> {
    let config = potter_sdk::namespace_config();
    let text = |key: &str| config.get(key).and_then(Value::as_str).map(str::to_owned);
    let endpoint = text("endpoint").ok_or("plugins.etcd-source.endpoint is not set (etcd's client URL)")?;
    let environment = potter_sdk::environment();
    let prefix = text("prefix").unwrap_or_else(|| "/config/{environment}/".to_owned()).replace("{environment}", &environment);
    Ok(Settings { endpoint: endpoint.trim_end_matches('/').to_owned(), prefix, at: text("at") })
}

struct EtcdSource;

impl Source for EtcdSource {
    fn load(environment: &str) -> Result<Value, String> {
        Self::load_with_origins(environment).map(|(layer, _)| layer)
    }

    fn poll_interval_ms() -> u32 {
        potter_sdk::namespace_config().get("poll_interval_ms").and_then(Value::as_u64).map_or(DEFAULT_POLL_MS, |ms| ms.min(u64::from(u32::MAX)) as u32)
    }

    /// The prefix's newest `mod_revision` and key count. None when etcd cannot be asked: `load`
    /// then reports why.
    fn change_token() -> Option<String> {
        let settings = settings().ok()?;
        let range = read_range(&settings).ok()?;
        let token = range.token();
        PENDING.with(|p| *p.borrow_mut() = Some((settings.prefix, range)));
        Some(token)
    }
}

impl LiveSource for EtcdSource {
    fn load_with_origins(_environment: &str) -> Result<(Value, Vec<(String, String)>), String> {
        let settings = settings()?;
        let pending = PENDING.with(|p| p.borrow_mut().take()).filter(|(prefix, _)| *prefix == settings.prefix);
        let range = match pending {
            Some((_, range)) => range,
            None => read_range(&settings)?,
        };
        let mut document = json!({});
        let mut origins = Vec::with_capacity(range.entries.len());
        for (key, text, mod_revision) in &range.entries {
            let path: Vec<&str> = key.split('/').collect();
            if path.iter().any(|segment| segment.is_empty()) {
                return Err(format!("{}: key {}{key} does not map to a dotted key (empty segment)", settings.endpoint, settings.prefix));
            }
            let value = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()));
            insert(&mut document, &path, value).map_err(|conflict| format!("{}: key {}{key} conflicts with {}{conflict}", settings.endpoint, settings.prefix, settings.prefix))?;
            let dotted = settings.at.iter().filter(|at| !at.is_empty()).map(String::as_str).chain(path.iter().copied()).collect::<Vec<_>>().join(".");
            origins.push((dotted, format!("{}{key} @ revision {mod_revision}", settings.prefix)));
        }
        potter_sdk::log(potter_sdk::LogLevel::Debug, &format!("{}{} @ revision {}: {} keys", settings.endpoint, settings.prefix, range.revision, range.entries.len()));
        Ok((place(settings.at.as_deref(), document), origins))
    }

    fn wait_for_change(known: Option<&str>, budget_ms: u32) -> Result<Option<String>, String> {
        let deadline = Instant::now() + Duration::from_millis(u64::from(budget_ms));
        let settings = settings()?;
        let range = read_range(&settings)?;
        if known != Some(range.token().as_str()) {
            return Ok(Some(range.token()));
        }
        let url = format!("{}/v3/watch", settings.endpoint);
        let request = json!({"create_request": {
            "key": BASE64.encode(settings.prefix.as_bytes()),
            "range_end": BASE64.encode(range_end(settings.prefix.as_bytes())),
            "start_revision": (range.revision + 1).to_string(),
        }});
        let fail = |what: String| format!("POST {url} (prefix {}): {what}", settings.prefix);
        let Some(response) = wait_response(send_post(&url, &request.to_string())?, deadline).map_err(fail)? else { return Ok(None) };
        if response.status() != 200 {
            return Err(fail(format!("HTTP {}", response.status())));
        }
        let incoming = response.consume().map_err(|()| fail("the body was already read".into()))?;
        let stream = incoming.stream().map_err(|()| fail("cannot read the body".into()))?;
        // Each message of the stream is one JSON object; the first says the watch was created,
        // later ones carry events. Any event under the prefix: read it again for the new token.
        let mut seen = Vec::new();
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return Ok(None) };
            let timer = wasi::clocks::monotonic_clock::subscribe_duration(left.as_nanos() as u64);
            let readable = stream.subscribe();
            wasi::io::poll::poll(&[&readable, &timer]);
            match stream.read(64 * 1024) {
                Ok(chunk) => seen.extend_from_slice(&chunk),
                Err(StreamError::Closed) => return Ok(None),
                Err(StreamError::LastOperationFailed(error)) => return Err(fail(format!("reading the watch: {}", error.to_debug_string()))),
            }
            if seen.len() > MAX_BODY {
                return Err(fail(format!("watch stream larger than {MAX_BODY} bytes")));
            }
            if seen.windows(8).any(|w| w == b"\"events\"") {
                let now = read_range(&settings)?.token();
                if known != Some(now.as_str()) {
                    return Ok(Some(now));
                }
                seen.clear();
            }
        }
    }
}

/// Sets `path` in `document`; a path running through a non-object value (or onto an object) is a
/// conflict, answered with the dotted prefix already taken.
fn insert(document: &mut Value, path: &[&str], value: Value) -> Result<(), String> {
    let mut node = document;
    for (depth, segment) in path.iter().enumerate() {
        let object = node.as_object_mut().ok_or_else(|| path[..depth].join("/"))?;
        if depth + 1 == path.len() {
            if object.contains_key(*segment) {
                return Err(path.join("/"));
            }
            object.insert((*segment).to_owned(), value);
            return Ok(());
        }
        node = object.entry((*segment).to_owned()).or_insert_with(|| json!({}));
    }
    Ok(())
}

/// `document` under the dotted path `at` (the document itself without one).
fn place(at: Option<&str>, document: Value) -> Value {
    let Some(at) = at.filter(|at| !at.is_empty()) else { return document };
    at.rsplit('.').fold(document, |inner, segment| json!({ segment: inner }))
}

/// The end of etcd's range for every key starting with `prefix`: the prefix with its last byte
/// incremented (bytes 0xff are dropped first).
fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Every key under the prefix (`POST /v3/kv/range`).
fn read_range(settings: &Settings) -> Result<Range, String> {
    let request = json!({
        "key": BASE64.encode(settings.prefix.as_bytes()),
        "range_end": BASE64.encode(range_end(settings.prefix.as_bytes())),
    });
    let url = format!("{}/v3/kv/range", settings.endpoint);
    let answer = post_json(&url, &request.to_string())?;
    let fail = |what: String| format!("POST {url} (prefix {}): {what}", settings.prefix);
    let answer: Value = serde_json::from_str(&answer).map_err(|e| fail(format!("not JSON: {e}")))?;
    let number = |value: Option<&Value>| value.and_then(Value::as_str).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    let revision = number(answer.pointer("/header/revision"));
    let mut entries = Vec::new();
    for kv in answer.get("kvs").and_then(Value::as_array).into_iter().flatten() {
        let decode = |field: &str| -> Result<String, String> {
            let text = kv.get(field).and_then(Value::as_str).unwrap_or("");
            let bytes = BASE64.decode(text).map_err(|e| fail(format!("{field} is not base64: {e}")))?;
            String::from_utf8(bytes).map_err(|_| fail(format!("a {field} is not UTF-8")))
        };
        let key = decode("key")?;
        let below = key.strip_prefix(&settings.prefix).ok_or_else(|| fail(format!("key {key} is outside the prefix")))?.to_owned();
        entries.push((below, decode("value")?, number(kv.get("mod_revision"))));
    }
    Ok(Range { entries, revision })
}

/// Sends `POST url` with a JSON body; the response is still to come.
fn send_post(url: &str, body: &str) -> Result<FutureIncomingResponse, String> {
    let fail = |what: String| format!("POST {url}: {what}");
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(format!("plugins.etcd-source.endpoint `{url}` must start with http:// or https://"));
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let headers = Fields::new();
    headers.append("content-type", b"application/json").map_err(|e| fail(format!("header: {e:?}")))?;
    let request = OutgoingRequest::new(headers);
    request.set_method(&Method::Post).map_err(|()| fail("cannot set the method".into()))?;
    request.set_scheme(Some(&scheme)).map_err(|()| fail("cannot set the scheme".into()))?;
    request.set_authority(Some(authority)).map_err(|()| fail(format!("bad authority `{authority}`")))?;
    request.set_path_with_query(Some(path)).map_err(|()| fail(format!("bad path `{path}`")))?;
    let outgoing = request.body().map_err(|()| fail("no request body".into()))?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| fail(describe(&e)))?;
    {
        let stream = outgoing.write().map_err(|()| fail("cannot write the body".into()))?;
        stream.blocking_write_and_flush(body.as_bytes()).map_err(|e| fail(format!("writing the body: {e:?}")))?;
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| fail(describe(&e)))?;
    Ok(pending)
}

/// The response's head, or None when `deadline` came first.
fn wait_response(pending: FutureIncomingResponse, deadline: Instant) -> Result<Option<IncomingResponse>, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    let timer = wasi::clocks::monotonic_clock::subscribe_duration(left.as_nanos() as u64);
    let ready = pending.subscribe();
    wasi::io::poll::poll(&[&ready, &timer]);
    match pending.get() {
        Some(Ok(Ok(response))) => Ok(Some(response)),
        Some(Ok(Err(e))) => Err(describe(&e)),
        Some(Err(())) => Err("no response".into()),
        None => Ok(None),
    }
}

/// `POST url` with a JSON body; the response body on `200`.
fn post_json(url: &str, body: &str) -> Result<String, String> {
    let fail = |what: String| format!("POST {url}: {what}");
    let pending = send_post(url, body)?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return Err(fail(describe(&e))),
        Some(Err(())) | None => return Err(fail("no response".into())),
    };
    let status = response.status();
    let incoming = response.consume().map_err(|()| fail("the body was already read".into()))?;
    let mut bytes = Vec::new();
    {
        let stream = incoming.stream().map_err(|()| fail("cannot read the body".into()))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) if bytes.len() + chunk.len() > MAX_BODY => return Err(fail(format!("body larger than {MAX_BODY} bytes"))),
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(error)) => {
                    let reason = wasi::http::types::http_error_code(&error).map(|code| describe(&code)).unwrap_or_else(|| error.to_debug_string());
                    return Err(fail(format!("reading the body: {reason}")));
                }
            }
        }
    }
    let text = String::from_utf8(bytes).map_err(|_| fail("the body is not UTF-8".into()))?;
    match status {
        200 => Ok(text),
        status => Err(fail(format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()))),
    }
}

/// The host's message when it refused or cut a request; the error code otherwise.
fn describe(error: &ErrorCode) -> String {
    match error {
        ErrorCode::InternalError(Some(message)) => message.clone(),
        other => format!("{other:?}"),
    }
}

potter_sdk::export_live_source!(EtcdSource);
