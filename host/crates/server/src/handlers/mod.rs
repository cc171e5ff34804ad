//! The endpoints, one module per resource; here what they share: extracting the path, query,
//! environment header and body, authorising keys, redaction, ETags and running host work off the
//! async workers.
//!
//! The endpoints. Each one authenticates, authorizes (role × environment × key prefix), then reads
//! the current snapshot or changes runtime overrides through the host. Values leave redacted unless
//! the caller's role may see secrets.

use std::convert::Infallible;
use std::path::Path as FsPath;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::{ETAG, IF_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use potter_engine::{Snapshot, View, ViewKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::gate::{AuditNote, Authenticated};
use crate::rbac::{Action, Principal, Role};
use crate::scope::IssueScope;
use crate::{ApiState, ENVIRONMENT_HEADER};
use potter_config::events::{ChangeOrigin, Event};
use potter_config::runtime::SetRequest;

pub mod audit;
pub mod changes;
pub mod config;
pub mod console;
pub mod explain;
pub mod history;
pub mod instances;
pub mod meta;
pub mod plugins;
pub mod rollouts;
pub mod watch;

/// `?service=&user=` (and `prefix=` for watch): the view of a route's environment.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ViewQuery {
    /// The service of the view
    service: Option<String>,
    /// The user of the view
    user: Option<String>,
    /// Only for `/v1/watch/{env}` (documented there).
    #[param(ignore)]
    prefix: Option<String>,
}

/// The path of a `/{env}/{key}` route.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // documents the path; the handlers read it as `(String, String)`
pub struct KeyPath {
    /// The environment (a file of `environments/`)
    env: String,
    /// A dotted key path, e.g. `api.timeout` (the router's catch-all `{*key}`)
    key: String,
}

/// A read of one key of a view: the key (authorised for the caller), the snapshot read and the view.
struct KeyRead {
    key: String,
    snapshot: std::sync::Arc<Snapshot>,
    view_key: ViewKey,
}

fn key_read(state: &ApiState, principal: &Principal, params: Result<Path<(String, String)>, PathRejection>, query: Result<Query<ViewQuery>, QueryRejection>) -> ApiResult<KeyRead> {
    let (environment, key) = keyed_request(principal, params, Action::Read)?;
    let query = query_params(query)?;
    Ok(KeyRead { key, snapshot: state.host.snapshot(), view_key: view_key(&environment, &query) })
}

fn path_params<T>(params: Result<Path<T>, PathRejection>) -> ApiResult<T> {
    params.map(|Path(params)| params).map_err(|rejection| ApiError::new(rejection.status(), "bad_path", rejection.body_text()))
}

fn query_params(query: Result<Query<ViewQuery>, QueryRejection>) -> ApiResult<ViewQuery> {
    query.map(|Query(query)| query).map_err(|rejection| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", rejection.body_text()))
}

/// A JSON body (any content type), or 400 / 413.
fn json_body<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let bytes = body.map_err(|rejection| {
        let code = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE { "body_too_large" } else { "bad_body" };
        ApiError::new(rejection.status(), code, format!("{} (limit {} bytes)", rejection.body_text(), crate::MAX_BODY_BYTES))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request("malformed_json", format!("the body is not the expected JSON: {e}")))
}

/// A body that may be left out: none at all reads as `T::default()` (`approve`, `advance`).
fn optional_json_body<T: serde::de::DeserializeOwned + Default>(body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    match body.as_deref() {
        Ok([]) => Ok(T::default()),
        _ => json_body(body),
    }
}

/// Who acts through the API on a change request or a rollout: `token:<name>`.
fn token_actor(principal: &Principal) -> potter_config::change_requests::Actor {
    potter_config::change_requests::Actor::new(ChangeOrigin::Api, format!("token:{}", principal.name))
}

/// Reads `bytes` as the body of every route that takes one, the way the handlers do, and returns
/// how many of the shapes accept it. The entry point of the API body fuzz target.
#[doc(hidden)]
pub fn read_request_bodies(bytes: &[u8]) -> usize {
    let body = || Ok(Bytes::copy_from_slice(bytes));
    let put = json_body::<config::PutBody>(body()).is_ok();
    let validate = json_body::<explain::ValidateBody>(body()).is_ok();
    let rollback = json_body::<history::RollbackBody>(body()).is_ok();
    let release = json_body::<config::ReleaseBody>(body()).is_ok_and(|release| release.keys.iter().all(|key| checked_key(key).is_ok()));
    let change = json_body::<changes::NewChangeBody>(body()).is_ok_and(|draft| config::merge_patch_edits(&draft.changes).is_ok());
    let patch = json_body::<Map<String, Value>>(body()).is_ok_and(|patch| config::merge_patch_edits(&patch).is_ok());
    let reject = json_body::<changes::RejectBody>(body()).is_ok();
    let approve = optional_json_body::<changes::ApproveBody>(body()).is_ok();
    let rollout = json_body::<rollouts::NewRolloutBody>(body()).is_ok_and(|plan| config::merge_patch_edits(&plan.changes).is_ok());
    let advance = optional_json_body::<rollouts::AdvanceBody>(body()).is_ok();
    let abort = json_body::<rollouts::AbortBody>(body()).is_ok();
    let health = json_body::<rollouts::HealthReportBody>(body()).is_ok();
    [put, validate, rollback, release, patch, change, reject, approve, rollout, advance, abort, health].into_iter().filter(|accepted| *accepted).count()
}

/// Refuses key paths that are not plain dotted names (`..`, `/`, empty segments, control characters).
fn checked_key(key: &str) -> ApiResult<()> {
    if key.contains('/') {
        return Err(ApiError::bad_request("bad_key", format!("key path `{}`: `/` is not allowed (use `.` between segments)", key.escape_debug())));
    }
    potter_engine::parse_key_path(key).map_err(|e| ApiError::bad_request("bad_key", e.to_string()))?;
    Ok(())
}

/// A key a change may give a value: a plain key the history can record unambiguously (its first
/// segment has no `:`, see [`potter_config::recording::check_recordable_key`]).
fn checked_new_key(key: &str) -> ApiResult<()> {
    checked_key(key)?;
    potter_config::recording::check_recordable_key(key).map_err(|message| ApiError::bad_request("bad_key", message))
}

fn view_key(environment: &str, query: &ViewQuery) -> ViewKey {
    ViewKey::new(environment, query.service.as_deref().filter(|s| !s.is_empty()), query.user.as_deref().filter(|s| !s.is_empty()))
}

fn view_of<'s>(state: &ApiState, snapshot: &'s Snapshot, key: &ViewKey) -> ApiResult<&'s std::sync::Arc<View>> {
    // An environment outside `--environments` answers like an unknown one, saying so.
    state.host.options().served_view(snapshot, key).map_err(|e| ApiError::not_found("unknown_view", e.to_string()))
}

/// `value` (the view's value at `key`) as this caller may see it.
fn shown(principal: &Principal, view: &View, key: &str, value: &Value) -> Value {
    if principal.sees_secrets() {
        potter_config::secret_values::redact_sealed(view, key, value)
    } else {
        potter_config::secret_values::redact(view, key, value)
    }
}

/// A read that would reveal secrets to this caller fails when one of them is sealed (this process
/// does not hold its environment's keyring), rather than handing out a placeholder.
fn revealable(principal: &Principal, view: &View, key: &str) -> ApiResult<()> {
    if principal.sees_secrets() {
        potter_config::secret_values::ensure_revealable(view, key).map_err(potter_config::Error::from)?;
    }
    Ok(())
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a valid header value")
}

fn with_etag(version: u64, body: impl serde::Serialize) -> Response {
    let mut response = Json(body).into_response();
    response.headers_mut().insert(ETAG, etag(version));
    response
}

/// Runs blocking host work (locks, files, the history database) off the async workers.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, potter_config::Error> + Send + 'static) -> ApiResult<T> {
    blocking_outcome(work).await?.map_err(ApiError::from)
}

/// [`blocking`] with the host's own error, for a handler that answers some errors itself.
async fn blocking_outcome<T: Send + 'static>(work: impl FnOnce() -> Result<T, potter_config::Error> + Send + 'static) -> ApiResult<Result<T, potter_config::Error>> {
    tokio::task::spawn_blocking(work).await.map_err(|e| ApiError::internal(format!("the request's work failed: {e}")))
}

/// [`blocking`] for a change on behalf of `principal`: a refusal lists only the issues in its scope.
async fn blocking_change<T: Send + 'static>(principal: &Principal, work: impl FnOnce() -> Result<T, potter_config::Error> + Send + 'static) -> ApiResult<T> {
    blocking_outcome(work).await?.map_err(|error| ApiError::in_scope(error, &IssueScope::for_token(principal)))
}

fn environment_from_header(headers: &HeaderMap) -> ApiResult<String> {
    let value = headers.get(ENVIRONMENT_HEADER).ok_or_else(|| ApiError::bad_request("missing_environment", "name the environment in the path or the `X-Potter-Environment` header"))?;
    value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::bad_request("missing_environment", "the `X-Potter-Environment` header is empty or not text"))
}

/// Where a value was set (the engine's `Provenance`, described for the document).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents `potter_engine::Provenance`, which serializes these fields
pub struct Source {
    /// The layer's name (`environments/production`, `env`, `overrides/production`...).
    layer: String,
    /// The layer's precedence class (`defaults`, `base`, `environment`, ...).
    rank: String,
    /// Where, as one line: `environments/production.json:3:5`, `POTTER_API__TIMEOUT`, ...
    source: String,
    /// The tree file, when the value was written in one.
    file: Option<String>,
    line: Option<u32>,
    column: Option<u32>,
}

/// The caller of a `/{env}/{key}` route, authenticated and authorised for `action` on that key.
fn keyed_request(principal: &Principal, params: Result<Path<(String, String)>, PathRejection>, action: Action) -> ApiResult<(String, String)> {
    let (environment, key) = path_params(params)?;
    checked_key(&key)?;
    principal.authorize(action, &environment, Some(&key))?;
    Ok((environment, key))
}

/// `If-Match: "12"` (or `12`, `W/"12"`): the version the caller last saw. `*` means no condition.
fn if_match(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    let Some(value) = headers.get(IF_MATCH) else { return Ok(None) };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    let digits = text.trim_start_matches("W/").trim_matches('"');
    digits.parse().map(Some).map_err(|_| ApiError::bad_request("bad_if_match", format!("If-Match must be a version ETag like \"12\", not `{}`", text.escape_debug())))
}

/// Refuses a direct write of `environment`'s runtime overrides when the tree's policy requires
/// review there (the caller is told to open a change request), except an admin's: that one is a
/// break-glass write, and the note returned says so in its audit line.
fn direct_write(state: &ApiState, principal: &Principal, environment: &str, keys: &[String]) -> ApiResult<Option<AuditNote>> {
    let policy = state.policy.current()?;
    if !policy.check_direct_write(environment, principal.role == Role::Admin)? {
        return Ok(None);
    }
    tracing::warn!(token = %principal.name, environment, "break-glass: direct write where review is required");
    let message = format!("break-glass: direct write in `{environment}`, which requires review");
    Ok(Some(AuditNote { env: Some(environment.to_owned()), key: Some(keys.join(",")), message: Some(message) }))
}

fn set_request(principal: &Principal, reason: Option<String>, if_version: Option<u64>) -> SetRequest {
    let mut request = SetRequest::new(ChangeOrigin::Api, format!("token:{}", principal.name));
    request.reason = reason;
    request.if_version = if_version;
    request
}

pub async fn unknown_route() -> ApiError {
    ApiError::not_found("unknown_route", "no such route (see docs/API.md)")
}

pub async fn wrong_method() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not accept that method")
}
