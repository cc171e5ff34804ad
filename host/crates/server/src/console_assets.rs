//! The web console's files (`host/crates/server/console/`), embedded in the binary and served at
//! `/` and `/console/...` on the API's origin with a strict Content-Security-Policy (docs/CONSOLE.md).
//! No token is needed to load them: they hold no configuration, the page asks for a token and
//! calls the API with it.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// Scripts, styles and connections only from this origin; no inline script or style, no eval, no
/// plugins, no framing, no base-URI tricks. Values are rendered as text nodes besides.
pub const CONTENT_SECURITY_POLICY_VALUE: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its name under `/console/`, its media type and its bytes.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $media_type:expr) => {
        Asset { name: $name, media_type: $media_type, bytes: include_bytes!(concat!("../console/", $name)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");

/// Every file the page loads (`index.html` is served at `/`).
const ASSETS: &[Asset] = &[
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("html.js", JS),
    asset!("tree.js", JS),
    asset!("editor.js", JS),
    asset!("history.js", JS),
    asset!("hosts.js", JS),
    asset!("reviews.js", JS),
    asset!("live.js", JS),
    asset!("vendor/preact.module.js", JS),
    asset!("vendor/hooks.module.js", JS),
    asset!("vendor/htm.module.js", JS),
    asset!("vendor/LICENSE-preact", "text/plain; charset=utf-8"),
    asset!("vendor/LICENSE-htm", "text/plain; charset=utf-8"),
    // Loaded only when a subtree is edited as YAML.
    asset!("vendor/js-yaml.mjs", JS),
    asset!("vendor/LICENSE-js-yaml", "text/plain; charset=utf-8"),
];

/// The routes of the page's files.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(|| async { served(&INDEX) })).route("/console/{*file}", get(file))
}

async fn file(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => served(asset),
        None => (StatusCode::NOT_FOUND, [(CONTENT_TYPE, "text/plain; charset=utf-8")], "no such console file").into_response(),
    }
}

fn served(asset: &Asset) -> Response {
    let mut response = asset.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.media_type));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // The files change with the binary: revalidate rather than keep a stale page after an upgrade.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The embedded files' total size in bytes (docs/CONSOLE.md states it).
pub fn embedded_bytes() -> usize {
    INDEX.bytes.len() + ASSETS.iter().map(|asset| asset.bytes.len()).sum::<usize>()
}
