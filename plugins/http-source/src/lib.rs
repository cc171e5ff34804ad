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
    let mut headers = vec![("accept", "application/json, application/yaml, application/toml;q=0.9, */*;q=0.1".to_owned())];
    if let Some(etag) = etag {
        headers.push(("if-none-match", etag.to_owned()));
    }
    if let Some(name) = &settings.token_env {
        let token = std::env::var(name).map_err(|_| format!("plugins.http-source.bearer_token_env: variable {name} is not set or not granted (grants.env)"))?;
        headers.push(("authorization", format!("Bearer {token}")));
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let response = guest_http::get(url, &headers)?;
    let max_age = response.header("cache-control").and_then(max_age);
    match response.status {
        304 => Ok(Answer::NotModified { max_age }),
        200 => {
            let body = response.text().map_err(|e| format!("GET {url}: {e}"))?.to_owned();
            Ok(Answer::Body { body, content_type: response.header("content-type").map(str::to_owned), etag: response.header("etag").map(str::to_owned), max_age })
        }
        status => Err(format!("GET {url}: HTTP {status}{}", response.header("location").map(|l| format!(" (Location: {l})")).unwrap_or_default())),
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
