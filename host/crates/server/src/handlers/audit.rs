//! The audit log of the API (`GET /v1/audit`).

#[allow(unused_imports)]
use super::*;

/// `GET /v1/audit`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditLog {
    pub entries: Vec<AuditLine>,
}

/// One audited request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditLine {
    pub id: u64,
    pub timestamp: String,
    pub actor: String,
    pub method: String,
    pub route: String,
    pub env: Option<String>,
    pub key: Option<String>,
    pub status: u16,
    /// `allowed`, `denied`, `failed`, or `rate-limited`, plus why when known.
    pub outcome: String,
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
        (status = 200, description = "The entries, newest first", body = AuditLog, content_type = "application/json"),
        (status = 400, description = "`bad_query`", body = crate::openapi::ErrorBody),
        (status = 403, description = "`forbidden`: only admin tokens may", body = crate::openapi::ErrorBody),
        (status = 404, description = "`no_audit`: this server keeps no audit log", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn audit(State(state): State<ApiState>, Authenticated(principal): Authenticated, params: Result<Query<AuditParams>, QueryRejection>) -> ApiResult<Json<AuditLog>> {
    if principal.role != Role::Admin {
        return Err(ApiError::forbidden(format!("token `{}` ({}) may not read the audit log: only admin tokens may", principal.name, principal.role.as_str())));
    }
    let params = params.map(|Query(p)| p).map_err(|rejection| ApiError::bad_request("bad_query", rejection.body_text()))?;
    let Some(audit) = state.audit.clone() else {
        return Err(ApiError::not_found("no_audit", "this server keeps no audit log"));
    };
    let query = potter_history::AuditQuery { actor: params.actor, env: params.env, min_status: params.denied.then_some(400), limit: params.limit.unwrap_or(100).clamp(1, 1000) };
    let entries = blocking(move || Ok(audit.store().audit(&query)?)).await?;
    let entries = entries
        .iter()
        .map(|line| AuditLine {
            id: line.id,
            timestamp: line.timestamp_rfc3339(),
            actor: line.entry.actor.clone(),
            method: line.entry.method.clone(),
            route: line.entry.route.clone(),
            env: line.entry.env.clone(),
            key: line.entry.key.clone(),
            status: line.entry.status,
            outcome: line.entry.outcome.clone(),
        })
        .collect();
    Ok(Json(AuditLog { entries }))
}
