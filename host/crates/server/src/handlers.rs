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
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiResult};
use super::gate::{AuditNote, Authenticated};
use super::rbac::{Action, Principal, Role};
use super::scope::IssueScope;
use super::{ApiState, ENVIRONMENT_HEADER};
use potter_config::events::{ChangeOrigin, Event};
use potter_config::runtime::SetRequest;

/// `?service=&user=` (and `prefix=` for watch).
#[derive(Debug, Default, Deserialize)]
pub struct ViewQuery {
    service: Option<String>,
    user: Option<String>,
    prefix: Option<String>,
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
        ApiError::new(rejection.status(), code, format!("{} (limit {} bytes)", rejection.body_text(), super::MAX_BODY_BYTES))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request("malformed_json", format!("the body is not the expected JSON: {e}")))
}

/// Reads `bytes` as the body of every route that takes one, the way the handlers do, and returns
/// how many of the shapes accept it. The entry point of the API body fuzz target.
#[doc(hidden)]
pub fn read_request_bodies(bytes: &[u8]) -> usize {
    let body = || Ok(Bytes::copy_from_slice(bytes));
    let put = json_body::<PutBody>(body()).is_ok();
    let validate = json_body::<ValidateBody>(body()).is_ok();
    let rollback = json_body::<RollbackBody>(body()).is_ok();
    let patch = json_body::<Map<String, Value>>(body()).is_ok_and(|patch| merge_patch_edits("", &patch, &mut Vec::new()).is_ok());
    [put, validate, rollback, patch].into_iter().filter(|accepted| *accepted).count()
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
        potter_config::secrets::redact_sealed(view, key, value)
    } else {
        potter_config::secrets::redact(view, key, value)
    }
}

/// A read that would reveal secrets to this caller fails when one of them is sealed (this process
/// does not hold its environment's keyring), rather than handing out a placeholder.
fn revealable(principal: &Principal, view: &View, key: &str) -> ApiResult<()> {
    if principal.sees_secrets() {
        potter_config::secrets::ensure_revealable(view, key).map_err(potter_config::Error::from)?;
    }
    Ok(())
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a valid header value")
}

fn with_etag(version: u64, body: Value) -> Response {
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

/// Liveness and the current version (no token needed).
#[utoipa::path(
    get,
    path = "/v1/health",
    responses(
        (status = 200, description = "`{\"status\": \"ok\", \"version\": N}`", body = Value, content_type = "application/json"),
    ),
)]
pub async fn health(State(state): State<ApiState>) -> Json<Value> {
    Json(json!({ "status": "ok", "version": state.host.snapshot().version() }))
}

/// This document (no token needed).
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    responses(
        (status = 200, description = "The OpenAPI document", body = Value, content_type = "application/json"),
    ),
)]
pub async fn openapi() -> Json<Value> {
    Json(super::openapi::document())
}

/// Environments (those in the token's scope), services and users.
#[utoipa::path(
    get,
    path = "/v1/environments",
    responses(
        (status = 200, description = "`{\"version\", \"environments\", \"services\", \"users\"}`", body = Value, content_type = "application/json"),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn environments(State(state): State<ApiState>, Authenticated(principal): Authenticated) -> ApiResult<Json<Value>> {
    let snapshot = state.host.snapshot();
    let axes = snapshot.axes();
    let environments: Vec<&str> = axes.environments.iter().map(|e| &**e).filter(|e| principal.may_use_environment(e)).collect();
    Ok(Json(json!({
        "version": snapshot.version(),
        "environments": environments,
        "services": axes.services.iter().map(|s| &**s).collect::<Vec<_>>(),
        "users": axes.users.iter().map(|u| &**u).collect::<Vec<_>>(),
    })))
}

/// Only the branch of `value` that leads to `prefix` (for tokens scoped to a prefix).
fn restrict_to_prefix(value: &Value, prefix: &str) -> Value {
    let segments: Vec<&str> = prefix.split('.').collect();
    let mut node = value;
    for segment in &segments {
        match node.get(segment) {
            Some(child) => node = child,
            None => return json!({}),
        }
    }
    let mut built = node.clone();
    for segment in segments.iter().rev() {
        let mut map = Map::new();
        map.insert((*segment).to_owned(), built);
        built = Value::Object(map);
    }
    built
}

fn whole_config(state: &ApiState, principal: &Principal, environment: &str, query: &ViewQuery) -> ApiResult<Response> {
    principal.authorize(Action::Read, environment, None)?;
    let snapshot = state.host.snapshot();
    let key = view_key(environment, query);
    let view = view_of(state, &snapshot, &key)?;
    revealable(principal, view, "")?;
    let mut config = shown(principal, view, "", view.value());
    if let Some(prefix) = principal.prefix.as_deref().filter(|_| !principal.may_use_key("")) {
        config = restrict_to_prefix(&config, prefix);
    }
    Ok(with_etag(snapshot.version(), json!({ "view": key.to_string(), "version": snapshot.version(), "config": config })))
}

/// Effective configuration of a view (secrets redacted unless the role is secret-reader or admin).
#[utoipa::path(
    get,
    path = "/v1/config/{env}",
    params(
        ("env" = String, Path, description = "The environment (a file of `environments/`)"),
        ("service" = Option<String>, Query, description = "The service of the view"),
        ("user" = Option<String>, Query, description = "The user of the view"),
    ),
    responses(
        (status = 200, description = "`{\"view\", \"version\", \"config\"}`", body = Value, content_type = "application/json", headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "`bad_path` or `bad_query`", body = crate::openapi::ErrorBody),
        crate::openapi::ScopeRefusal,
        (status = 404, description = "`unknown_view`: no such environment, service or user", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn config(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    environment: Result<Path<String>, PathRejection>,
    query: Result<Query<ViewQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let environment = path_params(environment)?;
    let query = query_params(query)?;
    whole_config(&state, &principal, &environment, &query)
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

/// Effective configuration of a view; the environment comes from `X-Potter-Environment`.
#[utoipa::path(
    get,
    path = "/v1/config",
    params(
        ("X-Potter-Environment" = String, Header, description = "The environment"),
        ("service" = Option<String>, Query, description = "The service of the view"),
        ("user" = Option<String>, Query, description = "The user of the view"),
    ),
    responses(
        (status = 200, description = "`{\"view\", \"version\", \"config\"}`; secrets redacted unless the role is secret-reader or admin", body = Value, content_type = "application/json", headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "`missing_environment` or `bad_query`", body = crate::openapi::ErrorBody),
        crate::openapi::ScopeRefusal,
        (status = 404, description = "`unknown_view`: no such environment, service or user", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn config_from_header(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    query: Result<Query<ViewQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let environment = environment_from_header(&headers)?;
    let query = query_params(query)?;
    whole_config(&state, &principal, &environment, &query)
}

/// Where a value was set, as JSON.
fn provenance(layer: &potter_engine::Layer, location: Option<&potter_engine::Location>) -> Value {
    serde_json::to_value(potter_engine::Provenance::of(layer, location)).expect("provenance serializes")
}

/// The caller of a `/{env}/{key}` route, authenticated and authorised for `action` on that key.
fn keyed_request(principal: &Principal, params: Result<Path<(String, String)>, PathRejection>, action: Action) -> ApiResult<(String, String)> {
    let (environment, key) = path_params(params)?;
    checked_key(&key)?;
    principal.authorize(action, &environment, Some(&key))?;
    Ok((environment, key))
}

/// One value with its provenance; the ETag is the version.
#[utoipa::path(
    get,
    path = "/v1/config/{env}/{key}",
    params(
        ("env" = String, Path, description = "The environment (a file of `environments/`)"),
        ("key" = String, Path, description = "A dotted key path, e.g. `api.timeout` (the router's catch-all `{*key}`)"),
        ("service" = Option<String>, Query, description = "The service of the view"),
        ("user" = Option<String>, Query, description = "The user of the view"),
    ),
    responses(
        (status = 200, description = "`{\"key\", \"view\", \"version\", \"value\", \"secret\", \"source\"}`", body = Value, content_type = "application/json", headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "`bad_key` or `bad_query`", body = crate::openapi::ErrorBody),
        crate::openapi::ScopeRefusal,
        (status = 404, description = "`unknown_view`, or `key_not_set`", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn get_key(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    params: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<ViewQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let (environment, key) = keyed_request(&principal, params, Action::Read)?;
    let query = query_params(query)?;
    let snapshot = state.host.snapshot();
    let view_key = view_key(&environment, &query);
    let view = view_of(&state, &snapshot, &view_key)?;
    let value = view.get_ref(&key).ok_or_else(|| ApiError::not_found("key_not_set", format!("key `{key}` is not set in {view_key}")))?;
    revealable(&principal, view, &key)?;
    let source = view.origin(&key).map(|origin| provenance(origin.layer, Some(origin.location)));
    Ok(with_etag(
        snapshot.version(),
        json!({
            "key": key,
            "view": view_key.to_string(),
            "version": snapshot.version(),
            "value": shown(&principal, view, &key, value),
            "secret": potter_config::secrets::holds_secret(view, &key),
            "source": source,
        }),
    ))
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutBody {
    value: Value,
    #[serde(default)]
    reason: Option<String>,
}

fn set_request(principal: &Principal, reason: Option<String>, if_version: Option<u64>) -> SetRequest {
    let mut request = SetRequest::new(ChangeOrigin::Api, format!("token:{}", principal.name));
    request.reason = reason;
    request.if_version = if_version;
    request
}

/// Sets a runtime override; `If-Match` makes it a compare-and-set.
#[utoipa::path(
    put,
    path = "/v1/config/{env}/{key}",
    params(
        ("env" = String, Path, description = "The environment (a file of `environments/`)"),
        ("key" = String, Path, description = "A dotted key path, e.g. `api.timeout` (the router's catch-all `{*key}`)"),
        ("If-Match" = Option<String>, Header, description = "A version ETag (`\"12\"`): refused with 412 when the keys changed after it; `*` means no condition"),
    ),
    request_body(content = PutBody, description = "`{\"value\": V, \"reason\"?: \"…\"}` (any content type; parsed as JSON)"),
    responses(
        (status = 200, description = "Applied: `{\"environment\", \"key\", \"version\"}`", body = Value, content_type = "application/json", headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "`bad_key`, `malformed_json` or `bad_if_match`", body = crate::openapi::ErrorBody),
        crate::openapi::ScopeRefusal,
        (status = 404, description = "`unknown_view`: no such environment, service or user", body = crate::openapi::ErrorBody),
        (status = 412, description = "`conflict`: a key changed after the `If-Match` version; nothing was applied", body = crate::openapi::ErrorBody),
        (status = 413, description = "`body_too_large`: over 64 KiB", body = crate::openapi::ErrorBody),
        (status = 422, description = "`invalid` (with the `issues` in the token's scope) or `secret_refused`: the change does not validate; `invalid_tree` (with `file`): a file of the tree cannot be loaded; nothing was applied", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn put_key(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    params: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let (environment, key) = keyed_request(&principal, params, Action::Write)?;
    checked_new_key(&key)?;
    let if_version = if_match(&headers)?;
    let body: PutBody = json_body(body)?;
    let request = set_request(&principal, body.reason, if_version);
    let host = state.host.clone();
    let (env, k) = (environment.clone(), key.clone());
    let snapshot = blocking_change(&principal, move || host.set_with(&env, &k, body.value, request)).await?;
    tracing::info!(token = %principal.name, %environment, %key, version = snapshot.version(), "override set");
    Ok(with_etag(snapshot.version(), json!({ "environment": environment, "key": key, "version": snapshot.version() })))
}

/// Removes a runtime override; `If-Match` makes it a compare-and-set.
#[utoipa::path(
    delete,
    path = "/v1/config/{env}/{key}",
    params(
        ("env" = String, Path, description = "The environment (a file of `environments/`)"),
        ("key" = String, Path, description = "A dotted key path, e.g. `api.timeout` (the router's catch-all `{*key}`)"),
        ("If-Match" = Option<String>, Header, description = "A version ETag (`\"12\"`): refused with 412 when the keys changed after it; `*` means no condition"),
    ),
    responses(
        (status = 200, description = "Applied: `{\"environment\", \"key\", \"version\"}`", body = Value, content_type = "application/json", headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "`bad_key` or `bad_if_match`", body = crate::openapi::ErrorBody),
        crate::openapi::ScopeRefusal,
        (status = 404, description = "`unknown_view`: no such environment, service or user", body = crate::openapi::ErrorBody),
        (status = 412, description = "`conflict`: the key changed after the `If-Match` version", body = crate::openapi::ErrorBody),
        (status = 422, description = "`invalid` (with the `issues` in the token's scope): the configuration without the override does not validate; `invalid_tree` (with `file`): a file of the tree cannot be loaded", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn delete_key(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    params: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Response> {
    let (environment, key) = keyed_request(&principal, params, Action::Write)?;
    let request = set_request(&principal, None, if_match(&headers)?);
    let host = state.host.clone();
    let (env, k) = (environment.clone(), key.clone());
    let snapshot = blocking_change(&principal, move || host.unset_with(&env, &k, request)).await?;
    tracing::info!(token = %principal.name, %environment, %key, version = snapshot.version(), "override removed");
    Ok(with_etag(snapshot.version(), json!({ "environment": environment, "key": key, "version": snapshot.version() })))
}

/// Every layer's value for a key, the winner and the overriding environment variable.
#[utoipa::path(
    get,
    path = "/v1/explain/{env}/{key}",
    params(
        ("env" = String, Path, description = "The environment (a file of `environments/`)"),
        ("key" = String, Path, description = "A dotted key path, e.g. `api.timeout` (the router's catch-all `{*key}`)"),
        ("service" = Option<String>, Query, description = "The service of the view"),
        ("user" = Option<String>, Query, description = "The user of the view"),
    ),
    responses(
        (status = 200, description = "`{\"key\", \"view\", \"version\", \"found\", \"value\", \"env_var\", \"layers\"}`", body = Value, content_type = "application/json", headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "`bad_key` or `bad_query`", body = crate::openapi::ErrorBody),
        crate::openapi::ScopeRefusal,
        (status = 404, description = "`unknown_view`: no such environment, service or user", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn explain(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    params: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<ViewQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let (environment, key) = keyed_request(&principal, params, Action::Read)?;
    let query = query_params(query)?;
    let snapshot = state.host.snapshot();
    let view_key = view_key(&environment, &query);
    let view = view_of(&state, &snapshot, &view_key)?;
    let effective = view.get_ref(&key).map(|value| shown(&principal, view, &key, value));
    let layers: Vec<Value> = view
        .explain(&key)
        .iter()
        .map(|c| {
            let mut entry = provenance(c.layer, c.location);
            let extra = json!({
                "status": match c.value { None => "not set", Some(Value::Null) => "deletes", Some(_) => "set" },
                "value": c.value.map(|value| shown(&principal, view, &key, value)),
                "won": c.won,
            });
            if let (Some(entry), Value::Object(extra)) = (entry.as_object_mut(), extra) {
                entry.extend(extra);
            }
            entry
        })
        .collect();
    Ok(with_etag(
        snapshot.version(),
        json!({
            "key": key,
            "view": view_key.to_string(),
            "version": snapshot.version(),
            "found": effective.is_some(),
            "value": effective,
            "env_var": potter_engine::envvars::variable_for(&state.host.options().env_prefix, &key),
            "layers": layers,
        }),
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateBody {
    /// Defaults to the `X-Potter-Environment` header.
    #[serde(default)]
    environment: Option<String>,
    /// Proposed runtime overrides: key → value (`null` removes).
    #[serde(default)]
    changes: Map<String, Value>,
}

/// A dry run: the proposed overrides are merged and validated, nothing is applied.
#[utoipa::path(
    post,
    path = "/v1/validate",
    params(
        ("X-Potter-Environment" = Option<String>, Header, description = "The environment, when the body or query does not name one"),
    ),
    request_body(content = ValidateBody, description = "`{\"environment\"?: E, \"changes\": {key: value or null}}`"),
    responses(
        (status = 200, description = "`{\"valid\", \"issues\": {\"views\", \"withheld\"}}`: only the issues of the token's environments and prefix, the others counted in `withheld`", body = Value, content_type = "application/json"),
        (status = 422, description = "`invalid_tree` (with `file`): a file of the tree cannot be loaded", body = crate::openapi::ErrorBody),
        (status = 400, description = "`malformed_json`, `missing_environment` or `bad_key`", body = crate::openapi::ErrorBody),
        (status = 403, description = "`forbidden`: changes need write scope, an empty dry run read scope", body = crate::openapi::ErrorBody),
        (status = 404, description = "`unknown_view`: no such environment, service or user", body = crate::openapi::ErrorBody),
        (status = 413, description = "`body_too_large`: over 64 KiB", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn validate(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body: ValidateBody = json_body(body)?;
    let environment = match body.environment {
        Some(environment) => environment,
        None => environment_from_header(&headers)?,
    };
    for (key, value) in &body.changes {
        if value.is_null() {
            checked_key(key)?;
        } else {
            checked_new_key(key)?;
        }
        principal.authorize(Action::Write, &environment, Some(key))?;
    }
    if body.changes.is_empty() {
        principal.authorize(Action::Read, &environment, None)?;
    }
    let edits: Vec<(String, Option<Value>)> = body.changes.into_iter().map(|(key, value)| (key, (!value.is_null()).then_some(value))).collect();
    let request = set_request(&principal, Some("dry run".to_owned()), None);
    let host = state.host.clone();
    let env = environment.clone();
    match blocking_outcome(move || host.edit_overrides(&env, &edits, request, true)).await? {
        Ok(snapshot) => Ok(Json(json!({ "environment": environment, "valid": true, "version": snapshot.version(), "issues": [] }))),
        Err(potter_config::Error::Invalid(report)) => Ok(Json(json!({ "environment": environment, "valid": false, "issues": IssueScope::for_token(&principal).report_json(&report) }))),
        Err(other) => Err(ApiError::in_scope(other, &IssueScope::for_token(&principal))),
    }
}

fn event_name(event: &Event) -> &'static str {
    match event {
        Event::Changed { .. } => "changed",
        Event::Rejected { .. } => "rejected",
        Event::Lagged { .. } => "lagged",
    }
}

/// Server-Sent Events: `ready` once subscribed, then `changed`, `rejected` and `lagged` events.
/// Values of secret keys are always redacted in the stream.
#[utoipa::path(
    get,
    path = "/v1/watch/{env}",
    params(
        ("env" = String, Path, description = "The environment (a file of `environments/`)"),
        ("prefix" = Option<String>, Query, description = "Only changes under this key path (a prefix token's stream defaults to its prefix)"),
        ("service" = Option<String>, Query, description = "The service of the view"),
        ("user" = Option<String>, Query, description = "The user of the view"),
    ),
    responses(
        (status = 200, description = "The event stream", body = String, content_type = "text/event-stream"),
        (status = 400, description = "`bad_key` (the prefix) or `bad_query`", body = crate::openapi::ErrorBody),
        crate::openapi::ScopeRefusal,
        (status = 404, description = "`unknown_view`: no such environment, service or user", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn watch(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    environment: Result<Path<String>, PathRejection>,
    query: Result<Query<ViewQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let environment = path_params(environment)?;
    let query = query_params(query)?;
    let prefix = match (query.prefix.as_deref().filter(|p| !p.is_empty()), principal.prefix.as_deref()) {
        (Some(prefix), _) => {
            checked_key(prefix)?;
            prefix.to_owned()
        }
        (None, Some(scope)) if !principal.may_use_key("") => scope.to_owned(),
        (None, _) => String::new(),
    };
    principal.authorize(Action::Read, &environment, (!prefix.is_empty()).then_some(prefix.as_str()))?;
    let key = view_key(&environment, &query);
    let subscription = state.host.subscribe(&key, &prefix)?;
    let ready = SseEvent::default().event("ready").data(json!({ "view": key.to_string(), "prefix": prefix, "version": state.host.snapshot().version() }).to_string());
    let scope = IssueScope::for_stream(&principal, &environment, &prefix);
    let stream = futures_util::stream::unfold((Some(ready), subscription, state.shutdown.clone()), move |(ready, mut subscription, mut shutdown)| {
        let scope = scope.clone();
        async move {
            if let Some(ready) = ready {
                return Some((Ok::<_, Infallible>(ready), (None, subscription, shutdown)));
            }
            loop {
                if *shutdown.borrow() {
                    return None;
                }
                tokio::select! {
                    event = subscription.recv() => {
                        let Some(event) = scope.filter_event(event?) else { continue };
                        let data = serde_json::to_string(&event).unwrap_or_else(|e| json!({ "event": "error", "message": e.to_string() }).to_string());
                        return Some((Ok(SseEvent::default().event(event_name(&event)).data(data)), (None, subscription, shutdown)));
                    }
                    _ = shutdown.changed() => return None,
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// The schema files of the tree (`<root>/schemas/**.json`), as parsed JSON.
#[utoipa::path(
    get,
    path = "/v1/schemas",
    responses(
        (status = 200, description = "`{\"schemas\": [{\"file\", \"schema\"}]}`", body = Value, content_type = "application/json"),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn schemas(State(state): State<ApiState>, Authenticated(_): Authenticated) -> ApiResult<Json<Value>> {
    let dir = state.host.options().root.join("schemas");
    let mut found = Vec::new();
    fn walk(dir: &FsPath, base: &FsPath, found: &mut Vec<Value>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if path.is_dir() {
                walk(&path, base, found);
            } else if path.extension().is_some_and(|ext| ext == "json") {
                let schema = potter_files::read_regular_to_string(&path, potter_validate::MAX_SCHEMA_BYTES).ok().and_then(|text| serde_json::from_str::<Value>(&text).ok());
                let relative = path.strip_prefix(base).unwrap_or(&path).display().to_string();
                found.push(json!({ "file": format!("schemas/{relative}"), "schema": schema }));
            }
        }
    }
    walk(&dir, &dir, &mut found);
    Ok(Json(json!({ "schemas": found })))
}

pub async fn unknown_route() -> ApiError {
    ApiError::not_found("unknown_route", "no such route (see docs/API.md)")
}

pub async fn wrong_method() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not accept that method")
}

/// `?env=&key=&since_ms=&limit=` of `/v1/history`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    env: Option<String>,
    key: Option<String>,
    since_ms: Option<i64>,
    limit: Option<usize>,
}

/// The key prefix a caller's history is limited to: the asked-for key, else the token's prefix.
fn history_scope(principal: &Principal, key: Option<&str>) -> Option<String> {
    key.map(str::to_owned).or_else(|| principal.prefix.clone().filter(|_| !principal.may_use_key("")))
}

/// One record as JSON, only with the keys under `scope` (None: the record has none of them).
/// `qualifiers` are the view qualifiers of the record's environment: a key is scoped by its real
/// dotted key in its view, so `zzz:api.leak` (a key of the environment's own view) is not `api.leak`.
fn history_entry(record: &potter_history::Record, scope: Option<&str>, qualifiers: &[String], with_values: bool) -> Option<Value> {
    let in_scope = |key: &str| scope.is_none_or(|scope| potter_engine::is_under(potter_config::recording::recorded_key(key, qualifiers).1, scope));
    let keys: Vec<&String> = record.keys.iter().filter(|key| in_scope(key)).collect();
    if keys.is_empty() && scope.is_some() {
        return None;
    }
    let keys: Vec<String> = keys.into_iter().cloned().collect();
    let mut entry = serde_json::to_value(potter_config::timeline::RecordSummary::of(record, keys)).expect("a record summary serializes");
    if with_values {
        // Stored secrets are fingerprints only; `shown` turns them into `<redacted>` for every role.
        let shown = |value: &Option<potter_history::StoredValue>| value.as_ref().map(potter_config::timeline::shown).unwrap_or(Value::Null);
        let changes: Vec<Value> = record
            .payload
            .iter()
            .flat_map(|payload| &payload.changes)
            .filter(|change| in_scope(&change.key))
            .map(|change| json!({ "key": change.key, "before": shown(&change.before), "after": shown(&change.after) }))
            .collect();
        entry["changes"] = Value::Array(changes);
    }
    Some(entry)
}

/// The view qualifiers of `environment` (`""` for its own view, `api_service`, `@alice`, ...).
fn environment_qualifiers(snapshot: &Snapshot, environment: &str) -> Vec<String> {
    let mut qualifiers: Vec<String> = snapshot.all_view_keys().iter().filter(|key| *key.environment == *environment).map(potter_config::recording::qualifier).collect();
    qualifiers.sort();
    qualifiers.dedup();
    qualifiers
}

/// The newest `limit` records of `environment` that changed a key under `scope` in any of its views.
///
/// Keys of service and user views are recorded qualified (`api_service:api.timeout`), so a scoped
/// query asks once per view qualifier of the environment and merges the answers by version.
fn scoped_records(store: &potter_history::SqliteStore, query: potter_history::HistoryQuery, scope: Option<&str>, qualifiers: &[String]) -> Result<Vec<potter_history::Record>, potter_config::Error> {
    use potter_history::HistoryStore as _;
    let Some(scope) = scope else {
        return Ok(store.query(&query)?);
    };
    let limit = query.limit;
    let mut records: Vec<potter_history::Record> = Vec::new();
    for qualifier in qualifiers {
        let prefix = if qualifier.is_empty() { scope.to_owned() } else { format!("{qualifier}:{scope}") };
        records.extend(store.query(&query.clone().key_prefix(prefix))?);
    }
    records.sort_by_key(|record| std::cmp::Reverse(record.version));
    records.dedup_by_key(|record| record.version);
    records.truncate(limit);
    Ok(records)
}

/// Recorded changes of one environment, newest first.
#[utoipa::path(
    get,
    path = "/v1/history",
    params(
        HistoryParams,
        ("X-Potter-Environment" = Option<String>, Header, description = "The environment, when the body or query does not name one"),
    ),
    responses(
        (status = 200, description = "`{\"environment\", \"records\"}`: keys, actor, origin, reason of each change", body = Value, content_type = "application/json"),
        (status = 400, description = "`bad_query`, `missing_environment` or `bad_key`", body = crate::openapi::ErrorBody),
        crate::openapi::ScopeRefusal,
        (status = 404, description = "`unknown_view`: no such environment, service or user", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn history(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let params = params.map(|Query(p)| p).map_err(|rejection| ApiError::bad_request("bad_query", rejection.body_text()))?;
    let environment = match params.env {
        Some(environment) => environment,
        None => environment_from_header(&headers)?,
    };
    if let Some(key) = &params.key {
        checked_key(key)?;
    }
    principal.authorize(Action::Read, &environment, params.key.as_deref())?;
    let snapshot = state.host.snapshot();
    view_of(&state, &snapshot, &ViewKey::environment(&environment))?;
    let qualifiers = environment_qualifiers(&snapshot, &environment);
    drop(snapshot);
    let scope = history_scope(&principal, params.key.as_deref());
    let mut query = potter_history::HistoryQuery::new().env(environment.clone()).limit(params.limit.unwrap_or(100).clamp(1, 1000));
    if let Some(since) = params.since_ms {
        query = query.since_ms(since);
    }
    let host = state.host.clone();
    let entries = blocking(move || {
        let records = match host.history_store()? {
            Some(store) => scoped_records(&store, query, scope.as_deref(), &qualifiers)?,
            None => Vec::new(),
        };
        Ok(records.iter().filter_map(|record| history_entry(record, scope.as_deref(), &qualifiers, false)).collect::<Vec<Value>>())
    })
    .await?;
    Ok(Json(json!({ "environment": environment, "records": entries })))
}

/// One recorded change with its (redacted) values.
#[utoipa::path(
    get,
    path = "/v1/history/{version}",
    params(
        ("version" = u64, Path, description = "A recorded version"),
    ),
    responses(
        (status = 200, description = "The record with its before/after values (secrets always `<redacted>`)", body = Value, content_type = "application/json"),
        (status = 400, description = "`bad_path`: not a version number", body = crate::openapi::ErrorBody),
        (status = 403, description = "`forbidden`: outside the token's environments or prefix", body = crate::openapi::ErrorBody),
        (status = 404, description = "`version_not_found`", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn history_version(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    version: Result<Path<u64>, PathRejection>,
) -> ApiResult<Json<Value>> {
    use potter_history::HistoryStore as _;
    let version = path_params(version)?;
    let host = state.host.clone();
    let record = blocking(move || match host.history_store()? {
        Some(store) => Ok(store.get(version)?),
        None => Ok(None),
    })
    .await?;
    let Some(record) = record else {
        return Err(ApiError::not_found("version_not_found", format!("no recorded change has version {version}")));
    };
    principal.authorize(Action::Read, &record.env, None)?;
    let scope = history_scope(&principal, None);
    let qualifiers = environment_qualifiers(&state.host.snapshot(), &record.env);
    let entry = history_entry(&record, scope.as_deref(), &qualifiers, true).ok_or_else(|| ApiError::forbidden(format!("version {version} changed no key within the token's scope")))?;
    Ok(Json(entry))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// Defaults to the `X-Potter-Environment` header.
    #[serde(default)]
    env: Option<String>,
    version: u64,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// Brings an environment's view back to a recorded version as ONE new version of runtime
/// overrides (admin only); `dry_run` shows the differences and validates without applying.
#[utoipa::path(
    post,
    path = "/v1/rollback",
    params(
        ("X-Potter-Environment" = Option<String>, Header, description = "The environment, when the body or query does not name one"),
    ),
    request_body(content = RollbackBody, description = "`{\"env\"?: E, \"version\": N, \"dry_run\"?: bool, \"reason\"?: \"…\"}`"),
    responses(
        (status = 200, description = "`{\"environment\", \"to_version\", \"dry_run\", \"valid\", \"outcome\", \"version\", \"changes\", \"issues\"}`; ETag when applied", body = Value, content_type = "application/json", headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "`malformed_json` or `missing_environment`", body = crate::openapi::ErrorBody),
        (status = 403, description = "`forbidden`: only admin tokens may roll back", body = crate::openapi::ErrorBody),
        (status = 404, description = "`unknown_view` or `version_not_found`", body = crate::openapi::ErrorBody),
        (status = 409, description = "`history_pruned`: a needed payload was pruned", body = crate::openapi::ErrorBody),
        (status = 413, description = "`body_too_large`: over 64 KiB", body = crate::openapi::ErrorBody),
        (status = 422, description = "`invalid` (with `issues`) or `cannot_apply`; nothing was applied", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn rollback(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    if principal.role != Role::Admin {
        return Err(ApiError::forbidden(format!("token `{}` ({}) may not roll back: only admin tokens may", principal.name, principal.role.as_str())));
    }
    let body: RollbackBody = json_body(body)?;
    let environment = match body.env {
        Some(environment) => environment,
        None => environment_from_header(&headers)?,
    };
    view_of(&state, &state.host.snapshot(), &ViewKey::environment(&environment))?;
    let request = set_request(&principal, body.reason, None);
    let host = state.host.clone();
    let env = environment.clone();
    let (version, dry_run) = (body.version, body.dry_run);
    let outcome = blocking_outcome(move || potter_config::timeline::rollback(&host, &env, version, request, dry_run)).await?;
    let note = AuditNote { env: Some(environment.clone()), key: None, message: Some(format!("rollback to version {version}{}", if dry_run { " (dry run)" } else { "" })) };
    let rollback = match outcome {
        Ok(rollback) => rollback,
        Err(potter_config::Error::NotFound(what)) => return Err(ApiError::not_found("version_not_found", format!("no {what}"))),
        Err(potter_config::Error::Invalid(report)) if dry_run => {
            let body = json!({ "environment": environment, "to_version": version, "dry_run": true, "valid": false, "issues": report.to_json() });
            let mut response = Json(body).into_response();
            response.extensions_mut().insert(note);
            return Ok(response);
        }
        Err(other) => return Err(other.into()),
    };
    if let Some(applied) = rollback.applied {
        tracing::info!(token = %principal.name, %environment, to_version = version, version = applied, "rolled back");
    }
    let body = json!({
        "environment": environment,
        "to_version": version,
        "dry_run": dry_run,
        "valid": true,
        "outcome": match (rollback.differences.is_empty(), dry_run) {
            (true, _) => "nothing to change",
            (false, true) => "dry run, validates",
            (false, false) => "applied",
        },
        "version": rollback.applied,
        "changes": potter_config::timeline::Difference::all(&rollback.differences),
        "issues": [],
    });
    let mut response = match rollback.applied {
        Some(applied) => with_etag(applied, body),
        None => Json(body).into_response(),
    };
    response.extensions_mut().insert(note);
    Ok(response)
}

/// The plugins of the running host's plugins folder: name, kind, version, sha256, signer and the
/// grant kinds the trust store allows it, grants, limits, status, last error and a refused update.
/// Diagnostics are shown only for the environments the token may read (`errors`, per environment);
/// a diagnostic that names no environment is shown to a narrower token only when it is about the
/// plugin's files. Every diagnostic is redacted: no secret value of the snapshot appears in it.
#[utoipa::path(
    get,
    path = "/v1/plugins",
    responses(
        (status = 200, description = "`{\"plugins\": [{\"name\", \"file\", \"kind\", \"version\", \"sha256\", \"signer\", \"signer_allows\", \"status\", \"last_error\", \"errors\", \"refused_update\", \"grants\", \"secrets\", \"limits\"}]}`", body = Value, content_type = "application/json"),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn plugins(State(state): State<ApiState>, Authenticated(principal): Authenticated) -> ApiResult<Json<Value>> {
    // The list is read under the host's writer lock, which a change holds while it is recorded.
    let host = state.host.clone();
    let infos = blocking(move || Ok(host.plugin_list())).await?;
    let snapshot = state.host.snapshot();
    let diagnostics = PluginDiagnostics { snapshot: &snapshot, principal: &principal };
    let plugins: Vec<Value> = infos
        .iter()
        .map(|info| {
            let errors: Map<String, Value> = info
                .environment_errors
                .iter()
                .filter(|(environment, _)| principal.may_use_environment(environment))
                .map(|(environment, text)| (environment.clone(), Value::String(diagnostics.redacted(Some(environment), text))))
                .collect();
            let last_error = match (&info.last_error, info.status) {
                (Some(text), _) if diagnostics.sees_every_environment() => Some(diagnostics.redacted(None, text)),
                (Some(text), potter_plugin::PluginStatus::Refused) => Some(diagnostics.unscoped(text, info.refusal_about_files)),
                // A running plugin's last error may be about any environment: the narrower token sees
                // the last error of an environment it may read.
                (Some(_), potter_plugin::PluginStatus::Loaded) => errors.values().next().and_then(Value::as_str).map(str::to_owned),
                (None, _) => None,
            };
            let refused_update = info.refused_update.as_deref().map(|text| diagnostics.unscoped(text, info.refusal_about_files));
            json!({
                "name": info.name,
                "file": info.file.file_name().map(|name| name.to_string_lossy().into_owned()),
                "kind": info.kind,
                "version": info.version,
                "sha256": info.sha256,
                "signer": info.signer_key_id,
                "signer_allows": info.signer_allowance,
                "status": info.status,
                "last_error": last_error,
                "errors": errors,
                "refused_update": refused_update,
                "grants": info.grants,
                "secrets": info.secrets,
                "limits": info.limits,
            })
        })
        .collect();
    Ok(Json(json!({ "plugins": plugins })))
}

/// What `GET /v1/plugins` may tell one token of a plugin's failures.
struct PluginDiagnostics<'a> {
    snapshot: &'a Snapshot,
    principal: &'a Principal,
}

impl PluginDiagnostics<'_> {
    fn sees_every_environment(&self) -> bool {
        self.principal.role == Role::Admin || self.principal.environments.iter().any(|e| e == super::tokens::ALL_ENVIRONMENTS)
    }

    /// `text` with the secret values of `environment`'s view (None: of every environment) redacted.
    fn redacted(&self, environment: Option<&str>, text: &str) -> String {
        let environments = self.snapshot.axes().environments.iter().map(|e| e.to_string());
        let environments: Vec<String> = match environment {
            Some(environment) => vec![environment.to_owned()],
            None => environments.collect(),
        };
        environments.iter().filter_map(|environment| self.snapshot.view(&ViewKey::environment(environment)).ok()).fold(text.to_owned(), |text, view| potter_config::secrets::redact_text(view, &text))
    }

    /// A diagnostic that names no environment: shown when it is about the plugin's files (it quotes
    /// no configuration) or to a token that sees every environment; withheld otherwise.
    fn unscoped(&self, text: &str, about_files: bool) -> String {
        if about_files || self.sees_every_environment() {
            self.redacted(None, text)
        } else {
            "(withheld: the refusal came from running the plugin and may concern environments outside this token's scope)".to_owned()
        }
    }
}

/// `?limit=&actor=&env=&denied=` of `/v1/audit`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    limit: Option<usize>,
    actor: Option<String>,
    env: Option<String>,
    /// Only refused and failed requests (status 400 and above).
    #[serde(default)]
    denied: bool,
}

/// The audit log (admin only): every write and every refused request, newest first.
#[utoipa::path(
    get,
    path = "/v1/audit",
    params(
        AuditParams,
    ),
    responses(
        (status = 200, description = "`{\"entries\": [{\"id\", \"timestamp\", \"actor\", \"method\", \"route\", \"env\", \"key\", \"status\", \"outcome\"}]}`, newest first", body = Value, content_type = "application/json"),
        (status = 400, description = "`bad_query`", body = crate::openapi::ErrorBody),
        (status = 403, description = "`forbidden`: only admin tokens may", body = crate::openapi::ErrorBody),
        (status = 404, description = "`no_audit`: this server keeps no audit log", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn audit(State(state): State<ApiState>, Authenticated(principal): Authenticated, params: Result<Query<AuditParams>, QueryRejection>) -> ApiResult<Json<Value>> {
    if principal.role != Role::Admin {
        return Err(ApiError::forbidden(format!("token `{}` ({}) may not read the audit log: only admin tokens may", principal.name, principal.role.as_str())));
    }
    let params = params.map(|Query(p)| p).map_err(|rejection| ApiError::bad_request("bad_query", rejection.body_text()))?;
    let Some(audit) = state.audit.clone() else {
        return Err(ApiError::not_found("no_audit", "this server keeps no audit log"));
    };
    let query = potter_history::AuditQuery { actor: params.actor, env: params.env, min_status: params.denied.then_some(400), limit: params.limit.unwrap_or(100).clamp(1, 1000) };
    let entries = blocking(move || Ok(audit.store().audit(&query)?)).await?;
    let entries: Vec<Value> = entries
        .iter()
        .map(|line| {
            json!({
                "id": line.id,
                "timestamp": line.timestamp_rfc3339(),
                "actor": line.entry.actor,
                "method": line.entry.method,
                "route": line.entry.route,
                "env": line.entry.env,
                "key": line.entry.key,
                "status": line.entry.status,
                "outcome": line.entry.outcome,
            })
        })
        .collect();
    Ok(Json(json!({ "entries": entries })))
}

/// A JSON Merge Patch (RFC 7386) of runtime overrides as `(key, value or None to remove)` edits.
fn merge_patch_edits(at: &str, patch: &Map<String, Value>, edits: &mut Vec<(String, Option<Value>)>) -> ApiResult<()> {
    for (name, value) in patch {
        if name.contains('.') {
            return Err(ApiError::bad_request("bad_key", format!("member `{}` of the patch contains `.`: nest objects instead", name.escape_debug())));
        }
        let key = if at.is_empty() { name.clone() } else { format!("{at}.{name}") };
        if value.is_null() {
            checked_key(&key)?;
        } else {
            checked_new_key(&key)?;
        }
        match value {
            Value::Null => edits.push((key, None)),
            Value::Object(children) if !children.is_empty() => merge_patch_edits(&key, children, edits)?,
            other => edits.push((key, Some(other.clone()))),
        }
    }
    Ok(())
}

/// A batch: every edit validated together and applied as ONE version, or none of them.
#[utoipa::path(
    patch,
    path = "/v1/config/{env}",
    params(
        ("env" = String, Path, description = "The environment (a file of `environments/`)"),
        ("If-Match" = Option<String>, Header, description = "A version ETag (`\"12\"`): refused with 412 when the keys changed after it; `*` means no condition"),
    ),
    request_body(content = Object, description = "A JSON Merge Patch (RFC 7386) of runtime overrides; `null` removes; member names must not contain `.`"),
    responses(
        (status = 200, description = "Applied as one version: `{\"environment\", \"keys\", \"version\"}`", body = Value, content_type = "application/json", headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "`malformed_json`, `bad_key`, `empty_patch` or `bad_if_match`", body = crate::openapi::ErrorBody),
        crate::openapi::ScopeRefusal,
        (status = 404, description = "`unknown_view`: no such environment, service or user", body = crate::openapi::ErrorBody),
        (status = 412, description = "`conflict`: a key changed after the `If-Match` version; nothing was applied", body = crate::openapi::ErrorBody),
        (status = 413, description = "`body_too_large`: over 64 KiB", body = crate::openapi::ErrorBody),
        (status = 422, description = "`invalid` (with the `issues` in the token's scope) or `secret_refused`: the change does not validate; `invalid_tree` (with `file`): a file of the tree cannot be loaded; nothing was applied", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn patch_config(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    environment: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let environment = path_params(environment)?;
    let patch: Map<String, Value> = json_body(body)?;
    let mut edits = Vec::new();
    merge_patch_edits("", &patch, &mut edits)?;
    if edits.is_empty() {
        return Err(ApiError::bad_request("empty_patch", "the patch changes nothing"));
    }
    for (key, _) in &edits {
        principal.authorize(Action::Write, &environment, Some(key))?;
    }
    let keys: Vec<String> = edits.iter().map(|(key, _)| key.clone()).collect();
    // If-Match: the whole batch is refused (412) when any of its keys changed after that version.
    let request = set_request(&principal, None, if_match(&headers)?);
    let host = state.host.clone();
    let env = environment.clone();
    let snapshot = blocking_change(&principal, move || host.edit_overrides(&env, &edits, request, false)).await?;
    tracing::info!(token = %principal.name, %environment, keys = keys.len(), version = snapshot.version(), "overrides patched");
    let mut response = with_etag(snapshot.version(), json!({ "environment": environment, "keys": keys, "version": snapshot.version() }));
    response.extensions_mut().insert(AuditNote { env: Some(environment), key: Some(keys.join(",")), message: None });
    Ok(response)
}
