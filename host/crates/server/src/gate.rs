//! What runs around every request: identifying the caller once, the per-token rate limit, and the
//! audit of every write and every refused request.
//!
//! Identification never refuses by itself (a missing or unknown token is refused by the route, so
//! an unknown route stays a 404); it only names the caller for the limit and the audit.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use potter_history::{AuditStore, NewAuditEntry};

use super::error::ApiError;
use super::rbac::{Principal, Role};
use super::{ApiState, ENVIRONMENT_HEADER};

/// Who is calling, as far as the token tells.
#[derive(Debug, Clone)]
pub enum Identity {
    /// No `Authorization` header.
    Anonymous,
    /// An `Authorization` header that is not `Bearer <token>` (scheme in any case).
    Malformed,
    /// A bearer token that matches no (unrevoked) token.
    Unknown,
    Token(Arc<Principal>),
    /// The tokens file could not be read.
    Failed(String),
}

impl Identity {
    /// The name the rate limit and the audit know the caller by.
    pub fn actor(&self) -> &str {
        match self {
            Identity::Anonymous | Identity::Malformed => "anonymous",
            Identity::Unknown | Identity::Failed(_) => "unknown token",
            Identity::Token(principal) => &principal.name,
        }
    }
}

fn identify(state: &ApiState, request: &Request) -> Identity {
    let Some(header) = request.headers().get(AUTHORIZATION) else { return Identity::Anonymous };
    let Some(token) = header.to_str().ok().and_then(bearer_token) else { return Identity::Malformed };
    match state.tokens.authenticate(token) {
        Ok(Some(principal)) => Identity::Token(Arc::new(principal)),
        Ok(None) => Identity::Unknown,
        Err(error) => Identity::Failed(error.to_string()),
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive
/// (RFC 7235 §2.1: `bearer`, `BEARER`), followed by one or more spaces.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The token's principal; 401 (with why) for anyone else.
fn principal_of(parts: &Parts) -> Result<Arc<Principal>, ApiError> {
    match parts.extensions.get::<Identity>() {
        Some(Identity::Token(principal)) => Ok(principal.clone()),
        Some(Identity::Anonymous) | None => Err(ApiError::unauthorized("missing `Authorization: Bearer <token>` header")),
        Some(Identity::Malformed) => Err(ApiError::unauthorized("the Authorization header must be `Bearer <token>`")),
        Some(Identity::Unknown) => Err(ApiError::unauthorized("the token is not valid (unknown or revoked)")),
        Some(Identity::Failed(message)) => Err(ApiError::internal(message.clone())),
    }
}

/// The authenticated caller of a route of the API; 401 (with why) for anyone else, and 403 for a
/// `metrics` token, which reads `/metrics` only (so a scraper's token opens nothing else).
pub struct Authenticated(pub Arc<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let principal = principal_of(parts)?;
        if principal.role == Role::Metrics {
            return Err(ApiError::forbidden(format!("token `{}` (metrics) may only read /metrics", principal.name)));
        }
        Ok(Authenticated(principal))
    }
}

/// The caller of `GET /metrics`: a `metrics` or `admin` token; 401 without one, 403 for other roles.
pub struct MetricsReader(pub Arc<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for MetricsReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let principal = principal_of(parts)?;
        if !principal.may_read_metrics() {
            return Err(ApiError::forbidden(format!("token `{}` ({}) may not read metrics: only metrics and admin tokens may", principal.name, principal.role.as_str())));
        }
        Ok(MetricsReader(principal))
    }
}

/// Requests per second per token, with a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

/// One token bucket per caller name (every anonymous caller shares one, as does every unknown
/// token, so floods of refused requests are limited too).
pub struct Limiter {
    buckets: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl Limiter {
    pub fn new(limit: RateLimit) -> Self {
        let quota = Quota::per_second(limit.per_second).allow_burst(limit.burst);
        Self { buckets: RateLimiter::keyed(quota), clock: DefaultClock::default() }
    }

    /// None when allowed; else how long until the next request would be.
    fn check(&self, actor: &str) -> Option<Duration> {
        // The bucket map is keyed by owned names; only the rare first request of a name allocates twice.
        match self.buckets.check_key(&actor.to_owned()) {
            Ok(()) => None,
            Err(not_until) => Some(not_until.wait_time_from(self.clock.now())),
        }
    }
}

/// Set by a handler (or an error) for the audit line of its request.
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    pub env: Option<String>,
    pub key: Option<String>,
    pub message: Option<String>,
}

/// Writes audit lines through the history store's group commit without waiting for them.
#[derive(Clone)]
pub struct AuditLog {
    store: Arc<dyn AuditStore>,
}

impl AuditLog {
    pub fn new(store: Arc<dyn AuditStore>) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Arc<dyn AuditStore> {
        &self.store
    }

    fn record(&self, entry: NewAuditEntry) {
        // A queue send, never a wait: the writer thread commits it with whatever else is queued.
        if let Err(error) = self.store.queue_audit(vec![entry]) {
            tracing::error!(%error, "audit line not recorded");
        }
    }
}

/// Routes anyone may call: not limited, not audited (the console's page files hold no configuration).
fn is_open_route(path: &str) -> bool {
    matches!(path, "/v1/health" | "/v1/openapi.json" | "/") || path.starts_with("/console/")
}

/// Writes (overrides, rollbacks, change requests) and secret reveals are audited whatever their
/// outcome; other reads only when refused.
fn is_write(method: &Method, path: &str) -> bool {
    matches!(*method, Method::PUT | Method::DELETE | Method::PATCH) || (*method == Method::POST && is_write_by_post(path)) || crate::handlers::console::is_audited_read(path)
}

/// The routes that change configuration with a POST: rollback, the release of overrides and
/// change requests (drafts, approvals, rejections).
fn is_write_by_post(path: &str) -> bool {
    path == "/v1/rollback" || (path.starts_with("/v1/overrides/") && path.ends_with("/release")) || path == "/v1/changes" || path.starts_with("/v1/changes/")
}

/// The environment and key a request names in its path (`/v1/config/{env}/{key}` and the like),
/// else the environment of its `env=` query or `X-Potter-Environment` header.
fn target_of(uri: &Uri, environment_header: Option<&HeaderValue>) -> (Option<String>, Option<String>) {
    let decode = |text: &str| percent_decode(text);
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let (env, key) = match segments.as_slice() {
        ["v1", "config" | "explain", env, key @ ..] if !key.is_empty() => (Some(decode(env)), Some(decode(&key.join("/")))),
        ["v1", "config" | "watch", env] | ["v1", "overrides", env, "release"] => (Some(decode(env)), None),
        _ => (None, None),
    };
    let env = env
        .or_else(|| uri.query().and_then(|query| query.split('&').find_map(|pair| pair.strip_prefix("env=")).map(decode)))
        .or_else(|| environment_header.and_then(|value| value.to_str().ok()).map(str::to_owned));
    (env, key)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match (bytes[index], hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                index += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn too_many_requests(actor: &str, wait: Duration) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", format!("too many requests for `{actor}`; retry in {seconds} s"))
        .with("retry_after_seconds", serde_json::json!(seconds))
        .into_response();
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// The middleware: identify, limit, run the route, audit.
pub async fn gate(State(state): State<ApiState>, mut request: Request, next: Next) -> Response {
    if is_open_route(request.uri().path()) {
        return next.run(request).await;
    }
    let identity = identify(&state, &request);
    if let Some(limiter) = &state.limiter {
        if let Some(wait) = limiter.check(identity.actor()) {
            tracing::warn!(actor = identity.actor(), "rate limited");
            return too_many_requests(identity.actor(), wait);
        }
    }
    let Some(audit) = state.audit.clone() else {
        request.extensions_mut().insert(identity);
        return next.run(request).await;
    };
    let method = request.method().clone();
    let write = is_write(&method, request.uri().path());
    // Cheap copies (shared buffers): most requests are allowed reads and are not audited at all.
    let uri = request.uri().clone();
    let environment_header = request.headers().get(ENVIRONMENT_HEADER).cloned();
    request.extensions_mut().insert(identity.clone());
    let response = next.run(request).await;
    let status = response.status();
    if !(write || status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN) || response.extensions().get::<crate::handlers::console::AlreadyAudited>().is_some() {
        return response;
    }
    let note = response.extensions().get::<AuditNote>().cloned().unwrap_or_default();
    let verdict = match status.as_u16() {
        401 | 403 => "denied",
        code if code < 400 => "allowed",
        _ => "failed",
    };
    let outcome = match &note.message {
        Some(message) => format!("{verdict}: {message}"),
        None => verdict.to_owned(),
    };
    let (env, key) = target_of(&uri, environment_header.as_ref());
    audit.record(NewAuditEntry {
        actor: identity.actor().to_owned(),
        method: method.as_str().to_owned(),
        route: uri.path().to_owned(),
        env: note.env.or(env),
        key: note.key.or(key),
        status: status.as_u16(),
        outcome,
    });
    response
}
