//! Potter Config source plugin: configuration from an HTTP(S) endpoint.
//!
//! Configured by its namespace, `plugins.http-source` (set in the tree like any key):
//!
//! | key | meaning |
//! |---|---|
//! | `url` | the endpoint; `{environment}` is replaced by the environment's name. Required. |
//! | `format` | `auto` (default: by `Content-Type`, then the URL's extension, then JSON), `json`, `yaml`, `toml`, or `potter` (another Potter Config server's `GET /v1/config/{env}`: its `config` member) |
//! | `at` | dotted key path the document is placed under (default: the document's own keys) |
//! | `poll_interval_ms` | how often the host asks again (default 0: never) |
//! | `bearer_token_env` | a variable (granted in the manifest's `grants.env`) whose value is sent as `Authorization: Bearer …` |
//!
//! Change detection: `change-token` sends `If-None-Match` with the last `ETag`; a `304` keeps the
//! token, so the host does not call `load` and nothing is parsed again. Within a response's
//! `Cache-Control: max-age`, no request is sent at all. The body a `200` brought to
//! `change-token` is kept for the `load` that follows, so a change costs one request.
//!
//! The host lets requests reach only the origins the signed manifest lists in `grants.http`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use potter_sdk::{json, serde_json, Source, Value};
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, IncomingResponse, Method, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

/// Largest body read, whatever the host allows (the host's own limit cuts earlier when lower).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// What the last fetch of one URL left behind (per instance; a fresh instance starts empty).
#[derive(Default)]
struct Fetched {
    etag: Option<String>,
    token: Option<String>,
    fresh_until: Option<Instant>,
    /// A body `change-token` fetched and `load` has not used yet.
    pending: Option<(String, Option<String>)>,
}

thread_local! {
    static FETCHED: RefCell<HashMap<String, Fetched>> = RefCell::new(HashMap::new());
}

struct Settings {
    url: String,
    format: String,
    at: Option<String>,
    token_env: Option<String>,
}

fn settings() -> Result<Settings, String> {
    let config = potter_sdk::namespace_config();
    let text = |key: &str| config.get(key).and_then(Value::as_str).map(str::to_owned);
    let url = text("url").ok_or("plugins.http-source.url is not set (the endpoint to read)")?;
    let environment = potter_sdk::environment();
    Ok(Settings {
        url: url.replace("{environment}", &environment),
        format: text("format").unwrap_or_else(|| "auto".to_owned()),
        at: text("at"),
        token_env: text("bearer_token_env"),
    })
}

struct HttpSource;

impl Source for HttpSource {
    fn load(_environment: &str) -> Result<Value, String> {
        let settings = settings()?;
        let pending = FETCHED.with(|f| f.borrow_mut().get_mut(&settings.url).and_then(|f| f.pending.take()));
        let (body, content_type) = match pending {
            Some(pending) => pending,
            None => match get(&settings, None)? {
                Answer::Body { body, content_type, etag, max_age } => {
                    remember(&settings.url, etag, token_of(&body), max_age, None);
                    (body, content_type)
                }
                Answer::NotModified { .. } => return Err(format!("GET {}: 304 without a conditional request", settings.url)),
            },
        };
        let document = parse(&settings, &body, content_type.as_deref())?;
        Ok(place(settings.at.as_deref(), document))
    }

    fn poll_interval_ms() -> u32 {
        potter_sdk::namespace_config().get("poll_interval_ms").and_then(Value::as_u64).map_or(0, |ms| ms.min(u64::from(u32::MAX)) as u32)
    }

    /// The current version of the endpoint's document: its ETag (or a digest of the body).
    /// None when the endpoint cannot be asked: `load` then reports why.
    fn change_token() -> Option<String> {
        let settings = settings().ok()?;
        let (etag, token, fresh) = FETCHED.with(|f| {
            let fetched = f.borrow();
            let known = fetched.get(&settings.url);
            let fresh = known.and_then(|k| k.fresh_until).is_some_and(|until| Instant::now() < until);
            (known.and_then(|k| k.etag.clone()), known.and_then(|k| k.token.clone()), fresh)
        });
        if fresh && token.is_some() {
            return token;
        }
        match get(&settings, etag.as_deref()).ok()? {
            Answer::NotModified { max_age } => {
                FETCHED.with(|f| {
                    if let Some(known) = f.borrow_mut().get_mut(&settings.url) {
                        known.fresh_until = max_age.map(|age| Instant::now() + age);
                    }
                });
                token
            }
            Answer::Body { body, content_type, etag, max_age } => {
                let token = etag.clone().unwrap_or_else(|| token_of(&body));
                remember(&settings.url, etag, token.clone(), max_age, Some((body, content_type)));
                Some(token)
            }
        }
    }
}

fn remember(url: &str, etag: Option<String>, token: String, max_age: Option<Duration>, pending: Option<(String, Option<String>)>) {
    let token = etag.clone().unwrap_or(token);
    FETCHED.with(|f| {
        f.borrow_mut().insert(url.to_owned(), Fetched { etag, token: Some(token), fresh_until: max_age.map(|age| Instant::now() + age), pending });
    });
}

/// A digest of a body without an ETag (FNV-1a, 64 bits, and the length).
fn token_of(body: &str) -> String {
    let hash = body.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    format!("fnv:{hash:016x}:{}", body.len())
}

fn parse(settings: &Settings, body: &str, content_type: Option<&str>) -> Result<Value, String> {
    let url = &settings.url;
    let format = match settings.format.as_str() {
        "auto" => detect(url, content_type),
        other => other,
    };
    let document: Value = match format {
        "json" | "potter" => serde_json::from_str(body).map_err(|e| format!("{url}: not JSON: {e}"))?,
        "yaml" => serde_yaml_ng::from_str(body).map_err(|e| format!("{url}: not YAML: {e}"))?,
        "toml" => {
            let table: toml::Table = body.parse().map_err(|e: toml::de::Error| format!("{url}: not TOML: {}", e.to_string().trim()))?;
            serde_json::to_value(table).map_err(|e| format!("{url}: {e}"))?
        }
        other => return Err(format!("plugins.http-source.format `{other}` is not auto, json, yaml, toml or potter")),
    };
    let document = if format == "potter" {
        document.get("config").cloned().ok_or_else(|| format!("{url}: no `config` member (is it a Potter Config server's GET /v1/config/{{env}}?)"))?
    } else {
        document
    };
    if !document.is_object() {
        return Err(format!("{url}: the document is not an object"));
    }
    Ok(document)
}

fn detect<'a>(url: &str, content_type: Option<&str>) -> &'a str {
    let content_type = content_type.unwrap_or("").to_ascii_lowercase();
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    if content_type.contains("yaml") || path.ends_with(".yaml") || path.ends_with(".yml") {
        "yaml"
    } else if content_type.contains("toml") || path.ends_with(".toml") {
        "toml"
    } else {
        "json"
    }
}

/// `document` under the dotted path `at` (the document itself without one).
fn place(at: Option<&str>, document: Value) -> Value {
    let Some(at) = at.filter(|at| !at.is_empty()) else { return document };
    at.rsplit('.').fold(document, |inner, segment| json!({ segment: inner }))
}

enum Answer {
    Body { body: String, content_type: Option<String>, etag: Option<String>, max_age: Option<Duration> },
    NotModified { max_age: Option<Duration> },
}

/// `GET url`, conditional on `etag` when given.
fn get(settings: &Settings, etag: Option<&str>) -> Result<Answer, String> {
    let url = &settings.url;
    let fail = |what: String| format!("GET {url}: {what}");
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(format!("plugins.http-source.url `{url}` must start with http:// or https://"));
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let headers = Fields::new();
    let header = |name: &str, value: &str| headers.append(name, value.as_bytes()).map_err(|e| fail(format!("header {name}: {e:?}")));
    header("accept", "application/json, application/yaml, application/toml;q=0.9, */*;q=0.1")?;
    if let Some(etag) = etag {
        header("if-none-match", etag)?;
    }
    if let Some(name) = &settings.token_env {
        let token = std::env::var(name).map_err(|_| format!("plugins.http-source.bearer_token_env: variable {name} is not set or not granted (grants.env)"))?;
        header("authorization", &format!("Bearer {token}"))?;
    }
    let request = OutgoingRequest::new(headers);
    request.set_method(&Method::Get).map_err(|()| fail("cannot set the method".into()))?;
    request.set_scheme(Some(&scheme)).map_err(|()| fail("cannot set the scheme".into()))?;
    request.set_authority(Some(authority)).map_err(|()| fail(format!("bad authority `{authority}`")))?;
    request.set_path_with_query(Some(path)).map_err(|()| fail(format!("bad path `{path}`")))?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| fail(describe(&e)))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return Err(fail(describe(&e))),
        Some(Err(())) | None => return Err(fail("no response".into())),
    };
    let header_value = |response: &IncomingResponse, name: &str| {
        response.headers().get(name).first().map(|value| String::from_utf8_lossy(value).into_owned())
    };
    let max_age = header_value(&response, "cache-control").and_then(|value| max_age(&value));
    match response.status() {
        304 => Ok(Answer::NotModified { max_age }),
        200 => {
            let content_type = header_value(&response, "content-type");
            let etag = header_value(&response, "etag");
            let body = read_body(&response).map_err(fail)?;
            let body = String::from_utf8(body).map_err(|_| fail("the body is not UTF-8".into()))?;
            Ok(Answer::Body { body, content_type, etag, max_age })
        }
        status => Err(fail(format!("HTTP {status}{}", header_value(&response, "location").map(|l| format!(" (Location: {l})")).unwrap_or_default()))),
    }
}

fn read_body(response: &IncomingResponse) -> Result<Vec<u8>, String> {
    let body = response.consume().map_err(|()| "the body was already read".to_owned())?;
    let mut bytes = Vec::new();
    {
        let stream = body.stream().map_err(|()| "cannot read the body".to_owned())?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() > MAX_BODY {
                        return Err(format!("body larger than {MAX_BODY} bytes"));
                    }
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(error)) => {
                    let reason = wasi::http::types::http_error_code(&error).map(|code| describe(&code)).unwrap_or_else(|| error.to_debug_string());
                    return Err(format!("reading the body: {reason}"));
                }
            }
        }
    }
    Ok(bytes)
}

/// The host's message when it refused or cut a request; the error code otherwise.
fn describe(error: &ErrorCode) -> String {
    match error {
        ErrorCode::InternalError(Some(message)) => message.clone(),
        other => format!("{other:?}"),
    }
}

/// `max-age=N` of a `Cache-Control` value (none with `no-cache` / `no-store`).
fn max_age(cache_control: &str) -> Option<Duration> {
    let directives: Vec<String> = cache_control.split(',').map(|d| d.trim().to_ascii_lowercase()).collect();
    if directives.iter().any(|d| d == "no-cache" || d == "no-store") {
        return None;
    }
    directives.iter().find_map(|d| d.strip_prefix("max-age=")).and_then(|n| n.trim_matches('"').parse::<u64>().ok()).map(Duration::from_secs)
}

potter_sdk::export_source!(HttpSource);
