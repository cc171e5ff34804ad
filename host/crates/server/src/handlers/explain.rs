//! Why a key has its value (`GET /v1/explain/{env}/{key}`) and dry runs (`POST /v1/validate`).

#[allow(unused_imports)]
use super::*;

/// `GET /v1/explain/{env}/{key}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Explanation {
    pub key: String,
    pub view: String,
    pub version: u64,
    /// Whether the key has a value in the view.
    pub found: bool,
    pub value: Option<Value>,
    /// The environment variable that would override the key; null when the key holds a secret
    /// (a secret is never taken from a variable: `secrets set` changes it).
    pub env_var: Option<String>,
    /// The runtime override of the environment that decides the key (a `PUT`, a `set` or a
    /// rollback's pin: the files do not change it), by its key; `POST
    /// /v1/overrides/{env}/release` releases it. Null when no override reaches the key.
    pub runtime_override: Option<String>,
    /// Every layer that has the key, lowest precedence first.
    pub layers: Vec<ExplainLayer>,
}

/// One layer of an explanation: where (the engine's provenance), what, and whether it won.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExplainLayer {
    pub layer: String,
    #[schema(value_type = String)]
    pub rank: potter_engine::Rank,
    pub source: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// `set`, `deletes` (an explicit null) or `not set`.
    pub status: &'static str,
    pub value: Option<Value>,
    pub won: bool,
}

/// `POST /v1/validate`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DryRun {
    pub environment: String,
    pub valid: bool,
    /// The version the changes were validated against (only when valid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// `[]` when valid, else `{"views": [...], "withheld": N}` (the issues in the token's scope).
    pub issues: Value,
}

/// Every layer's value for a key, the winner and the overriding environment variable.
#[utoipa::path(
    get,
    path = "/v1/explain/{env}/{key}",
    params(
        KeyPath,
        ViewQuery,
    ),
    responses(
        (status = 200, description = "Every layer's value for the key and the winner", body = Explanation, content_type = "application/json", headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "`bad_key` or `bad_query`", body = crate::openapi::ErrorBody),
        crate::openapi::ViewRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn explain(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    params: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<ViewQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let KeyRead { key, snapshot, view_key } = key_read(&state, &principal, params, query)?;
    let view = view_of(&state, &snapshot, &view_key)?;
    let effective = view.get_ref(&key).map(|value| shown(&principal, view, &key, value));
    let layers: Vec<ExplainLayer> = view
        .explain(&key)
        .iter()
        .map(|c| {
            let potter_engine::Provenance { layer, rank, source, file, line, column } = potter_engine::Provenance::of(c.layer, c.location);
            ExplainLayer {
                layer,
                rank,
                source,
                file,
                line,
                column,
                status: match c.value { None => "not set", Some(Value::Null) => "deletes", Some(_) => "set" },
                value: c.value.map(|value| shown(&principal, view, &key, value)),
                won: c.won,
            }
        })
        .collect();
    let body = Explanation {
        view: view_key.to_string(),
        version: snapshot.version(),
        found: effective.is_some(),
        value: effective,
        env_var: potter_config::secret_values::overriding_variable(view, &state.host.options().env_prefix, &key),
        runtime_override: state.host.override_of(&view_key.environment, &key),
        layers,
        key,
    };
    Ok(with_etag(snapshot.version(), body))
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
        (status = 200, description = "Whether the changes validate: only the issues of the token's environments and prefix, the others counted in `withheld`", body = DryRun, content_type = "application/json"),
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
) -> ApiResult<Json<DryRun>> {
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
        Ok(snapshot) => Ok(Json(DryRun { environment, valid: true, version: Some(snapshot.version()), issues: Value::Array(Vec::new()) })),
        Err(potter_config::Error::Invalid(report)) => Ok(Json(DryRun { environment, valid: false, version: None, issues: IssueScope::for_token(&principal).report_json(&report) })),
        Err(other) => Err(ApiError::in_scope(other, &IssueScope::for_token(&principal))),
    }
}
