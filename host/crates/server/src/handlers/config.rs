//! The configuration of a view: the whole view (`GET /v1/config[/{env}]`), one key (`GET`, `PUT`,
//! `DELETE /v1/config/{env}/{key}`), a batch of overrides (`PATCH /v1/config/{env}`) and the
//! release of overrides (`POST /v1/overrides/{env}/release`).

#[allow(unused_imports)]
use super::*;

/// `GET /v1/config[/{env}]`: a view's whole configuration.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WholeConfig {
    /// The view, e.g. `production/api_service`.
    pub view: String,
    pub version: u64,
    /// The merged tree (secrets `<redacted>` unless the role may see them).
    pub config: Value,
}

/// `GET /v1/config/{env}/{key}`: one value and where it was set.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyValue {
    pub key: String,
    pub view: String,
    pub version: u64,
    pub value: Value,
    /// True when the key holds a secret.
    pub secret: bool,
    /// The winning layer and location (null when no layer records one).
    #[schema(value_type = Option<Source>)]
    pub source: Option<potter_engine::Provenance>,
}

/// `PUT` and `DELETE /v1/config/{env}/{key}`: the change applied.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyChanged {
    pub environment: String,
    pub key: String,
    /// The version the change went live as.
    pub version: u64,
}

/// `PATCH /v1/config/{env}`: the batch applied as one version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchApplied {
    pub environment: String,
    pub keys: Vec<String>,
    pub version: u64,
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
    Ok(with_etag(snapshot.version(), WholeConfig { view: key.to_string(), version: snapshot.version(), config }))
}

/// Effective configuration of a view (secrets redacted unless the role is secret-reader or admin).
#[utoipa::path(
    get,
    path = "/v1/config/{env}",
    params(
        ("env" = String, Path, description = "The environment (a file of `environments/`)"),
        ViewQuery,
    ),
    responses(
        (status = 200, description = "The view's configuration", body = WholeConfig, content_type = "application/json", headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "`bad_path` or `bad_query`", body = crate::openapi::ErrorBody),
        crate::openapi::ViewRefusals,
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

/// Effective configuration of a view; the environment comes from `X-Potter-Environment`.
#[utoipa::path(
    get,
    path = "/v1/config",
    params(
        ("X-Potter-Environment" = String, Header, description = "The environment"),
        ViewQuery,
    ),
    responses(
        (status = 200, description = "The view's configuration; secrets redacted unless the role is secret-reader or admin", body = WholeConfig, content_type = "application/json", headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "`missing_environment` or `bad_query`", body = crate::openapi::ErrorBody),
        crate::openapi::ViewRefusals,
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

/// One value with its provenance; the ETag is the version.
#[utoipa::path(
    get,
    path = "/v1/config/{env}/{key}",
    params(
        KeyPath,
        ViewQuery,
    ),
    responses(
        (status = 200, description = "The value and where it was set", body = KeyValue, content_type = "application/json", headers(("ETag" = String, description = "The version, quoted"))),
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
    let KeyRead { key, snapshot, view_key } = key_read(&state, &principal, params, query)?;
    let view = view_of(&state, &snapshot, &view_key)?;
    let value = view.get_ref(&key).ok_or_else(|| ApiError::not_found("key_not_set", format!("key `{key}` is not set in {view_key}")))?;
    revealable(&principal, view, &key)?;
    let source = view.origin(&key).map(|origin| origin.provenance());
    let body = KeyValue {
        value: shown(&principal, view, &key, value),
        secret: potter_config::secret_values::holds_secret(view, &key),
        view: view_key.to_string(),
        version: snapshot.version(),
        key,
        source,
    };
    Ok(with_etag(snapshot.version(), body))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutBody {
    value: Value,
    #[serde(default)]
    reason: Option<String>,
}

/// Sets a runtime override; `If-Match` makes it a compare-and-set.
#[utoipa::path(
    put,
    path = "/v1/config/{env}/{key}",
    params(
        KeyPath,
        ("If-Match" = Option<String>, Header, description = "A version ETag (`\"12\"`): refused with 412 when the keys changed after it; `*` means no condition"),
    ),
    request_body(content = PutBody, description = "`{\"value\": V, \"reason\"?: \"…\"}` (any content type; parsed as JSON)"),
    responses(
        (status = 200, description = "Applied", body = KeyChanged, content_type = "application/json", headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "`bad_key`, `malformed_json` or `bad_if_match`", body = crate::openapi::ErrorBody),
        crate::openapi::WriteRefusal,
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
    let break_glass = direct_write(&state, &principal, &environment, std::slice::from_ref(&key))?;
    let if_version = if_match(&headers)?;
    let body: PutBody = json_body(body)?;
    let request = set_request(&principal, body.reason, if_version);
    let host = state.host.clone();
    let (env, k) = (environment.clone(), key.clone());
    let snapshot = blocking_change(&principal, move || host.set_with(&env, &k, body.value, request)).await?;
    tracing::info!(token = %principal.name, %environment, %key, version = snapshot.version(), "override set");
    Ok(noted(with_etag(snapshot.version(), KeyChanged { environment, key, version: snapshot.version() }), break_glass))
}

/// Removes a runtime override; `If-Match` makes it a compare-and-set.
#[utoipa::path(
    delete,
    path = "/v1/config/{env}/{key}",
    params(
        KeyPath,
        ("If-Match" = Option<String>, Header, description = "A version ETag (`\"12\"`): refused with 412 when the keys changed after it; `*` means no condition"),
    ),
    responses(
        (status = 200, description = "Applied", body = KeyChanged, content_type = "application/json", headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "`bad_key` or `bad_if_match`", body = crate::openapi::ErrorBody),
        crate::openapi::WriteRefusal,
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
    let break_glass = direct_write(&state, &principal, &environment, std::slice::from_ref(&key))?;
    let request = set_request(&principal, None, if_match(&headers)?);
    let host = state.host.clone();
    let (env, k) = (environment.clone(), key.clone());
    let snapshot = blocking_change(&principal, move || host.unset_with(&env, &k, request)).await?;
    tracing::info!(token = %principal.name, %environment, %key, version = snapshot.version(), "override removed");
    Ok(noted(with_etag(snapshot.version(), KeyChanged { environment, key, version: snapshot.version() }), break_glass))
}

/// `POST /v1/overrides/{env}/release`: the overrides removed as one version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OverridesReleased {
    pub environment: String,
    /// The keys released, as asked.
    pub keys: Vec<String>,
    /// The version the change went live as.
    pub version: u64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    /// The keys whose runtime overrides to remove (each one held by the environment).
    pub(super) keys: Vec<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// Removes runtime overrides (a rollback's pins, say) as ONE version: the files' values show
/// through again. Needs write scope on every key, as `DELETE` of a key does.
#[utoipa::path(
    post,
    path = "/v1/overrides/{env}/release",
    params(
        ("env" = String, Path, description = "The environment (a file of `environments/`)"),
    ),
    request_body(content = ReleaseBody, description = "`{\"keys\": [K, ...], \"reason\"?: \"…\"}`"),
    responses(
        (status = 200, description = "Released as one version", body = OverridesReleased, content_type = "application/json", headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "`malformed_json`, `bad_key` or `empty_release`", body = crate::openapi::ErrorBody),
        crate::openapi::ScopeRefusal,
        (status = 404, description = "`unknown_view`, or `no_override`: a key has no runtime override in the environment; nothing was released", body = crate::openapi::ErrorBody),
        (status = 413, description = "`body_too_large`: over 64 KiB", body = crate::openapi::ErrorBody),
        (status = 422, description = "`invalid` (with the `issues` in the token's scope): the configuration without the overrides does not validate; `invalid_tree` (with `file`): a file of the tree cannot be loaded", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn release_overrides(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    environment: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let environment = path_params(environment)?;
    let body: ReleaseBody = json_body(body)?;
    if body.keys.is_empty() {
        return Err(ApiError::bad_request("empty_release", "name at least one key to release"));
    }
    for key in &body.keys {
        checked_key(key)?;
        principal.authorize(Action::Write, &environment, Some(key))?;
    }
    let break_glass = direct_write(&state, &principal, &environment, &body.keys)?;
    let request = set_request(&principal, body.reason, None);
    let host = state.host.clone();
    let (env, keys) = (environment.clone(), body.keys.clone());
    let snapshot = blocking_change(&principal, move || host.release_overrides(&env, &keys, request)).await?;
    tracing::info!(token = %principal.name, %environment, keys = body.keys.len(), version = snapshot.version(), "overrides released");
    // The audit line names every key released (and says so when it was a break-glass write).
    let note = AuditNote { env: Some(environment.clone()), key: Some(body.keys.join(",")), message: break_glass.and_then(|note| note.message) };
    let response = with_etag(snapshot.version(), OverridesReleased { environment, keys: body.keys, version: snapshot.version() });
    Ok(noted(response, Some(note)))
}

/// A JSON Merge Patch (RFC 7386) of runtime overrides as `(key, value or None to remove)` edits,
/// each key checked as a route's key is.
pub(super) fn merge_patch_edits(patch: &Map<String, Value>) -> ApiResult<Vec<(String, Option<Value>)>> {
    let edits = potter_config::change_requests::merge_patch_edits(patch).map_err(|message| ApiError::bad_request("bad_key", message))?;
    for (key, value) in &edits {
        match value {
            None => checked_key(key)?,
            Some(_) => checked_new_key(key)?,
        }
    }
    Ok(edits)
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
        (status = 200, description = "Applied as one version", body = BatchApplied, content_type = "application/json", headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "`malformed_json`, `bad_key`, `empty_patch` or `bad_if_match`", body = crate::openapi::ErrorBody),
        crate::openapi::WriteRefusal,
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
    let edits = merge_patch_edits(&patch)?;
    if edits.is_empty() {
        return Err(ApiError::bad_request("empty_patch", "the patch changes nothing"));
    }
    for (key, _) in &edits {
        principal.authorize(Action::Write, &environment, Some(key))?;
    }
    let keys: Vec<String> = edits.iter().map(|(key, _)| key.clone()).collect();
    let break_glass = direct_write(&state, &principal, &environment, &keys)?;
    // If-Match: the whole batch is refused (412) when any of its keys changed after that version.
    let request = set_request(&principal, None, if_match(&headers)?);
    let host = state.host.clone();
    let env = environment.clone();
    let snapshot = blocking_change(&principal, move || host.edit_overrides(&env, &edits, request, false)).await?;
    tracing::info!(token = %principal.name, %environment, keys = keys.len(), version = snapshot.version(), "overrides patched");
    let mut response = with_etag(snapshot.version(), BatchApplied { environment: environment.clone(), keys: keys.clone(), version: snapshot.version() });
    response.extensions_mut().insert(AuditNote { env: Some(environment), key: Some(keys.join(",")), message: None });
    Ok(noted(response, break_glass))
}

/// `response` with the audit note of a break-glass write, if it was one.
fn noted(mut response: Response, break_glass: Option<AuditNote>) -> Response {
    if let Some(note) = break_glass {
        response.extensions_mut().insert(note);
    }
    response
}

