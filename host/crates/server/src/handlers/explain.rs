//! Why a key has its value (`GET /v1/explain/{env}/{key}`) and dry runs (`POST /v1/validate`).

#[allow(unused_imports)]
use super::*;

/// Every layer's value for a key, the winner and the overriding environment variable.
#[utoipa::path(
    get,
    path = "/v1/explain/{env}/{key}",
    params(
        KeyPath,
        ViewQuery,
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
    let KeyRead { key, snapshot, view_key } = key_read(&state, &principal, params, query)?;
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
