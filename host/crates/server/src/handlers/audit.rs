//! The audit log of the API (`GET /v1/audit`).

#[allow(unused_imports)]
use super::*;

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
