//! The hosts sharing this host's etcd store (`GET /v1/instances`; docs/FLEET.md).

#[allow(unused_imports)]
use super::*;

/// `GET /v1/instances`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InstanceList {
    /// Every registered host, ordered by id.
    pub instances: Vec<Instance>,
}

/// One host's registry entry (kept under a lease: a host that stops renewing it drops out).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Instance {
    /// Unique per running host (`serve --instance-id`, default `<host name>-<pid>`).
    pub id: String,
    /// Where its API listens.
    pub address: Option<String>,
    /// The history version its live configuration includes.
    pub version: u64,
    /// Its plugins as `name@version`.
    pub plugins: Vec<String>,
    /// The last change its peers accepted that it could not validate (and so did not apply).
    pub last_refusal: Option<String>,
}

/// The fleet: every host registered on the shared store (any valid token).
#[utoipa::path(
    get,
    path = "/v1/instances",
    responses(
        (status = 200, description = "The registered hosts", body = InstanceList, content_type = "application/json"),
        (status = 404, description = "`no_registry`: this host's history is not a shared store (`--store etcd://...`)", body = crate::openapi::ErrorBody),
        (status = 503, description = "`store_unavailable`: the shared store cannot be reached", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn instances(State(state): State<ApiState>, Authenticated(_principal): Authenticated) -> ApiResult<Json<InstanceList>> {
    let host = state.host.clone();
    let Some(listed) = blocking(move || host.instances()).await? else {
        return Err(ApiError::not_found("no_registry", "this host's history is not shared, so there is no instance registry (serve with --store etcd://...)"));
    };
    let instances = listed
        .into_iter()
        .map(|info| Instance { id: info.id, address: info.address, version: info.version, plugins: info.plugins, last_refusal: info.last_refusal })
        .collect();
    Ok(Json(InstanceList { instances }))
}
