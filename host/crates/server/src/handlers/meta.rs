//! What needs no resource: liveness, this document, the axes of the tree and its schemas.

#[allow(unused_imports)]
use super::*;

/// `GET /v1/health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` while the shared store cannot be reached (the last good configuration
    /// is served; writes are refused with 503).
    pub status: &'static str,
    /// The live snapshot's version.
    pub version: u64,
    /// Source plugins serving a last good (or cached) layer because asking them failed: the host
    /// is alive and serving, but these parts of its configuration may be out of date.
    pub stale_sources: Vec<StaleSource>,
    /// Why the shared (etcd) history store is unreachable, while it is; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_unreachable: Option<String>,
}

/// One stale source in `GET /v1/health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StaleSource {
    /// The source plugin's name.
    pub plugin: String,
    #[serde(flatten)]
    pub staleness: super::plugins::SourceStaleness,
}

/// `GET /v1/environments`: the environments in the token's scope, the services and the users.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Axes {
    pub version: u64,
    pub environments: Vec<String>,
    pub services: Vec<String>,
    pub users: Vec<String>,
}

/// `GET /v1/schemas`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Schemas {
    pub schemas: Vec<SchemaFile>,
}

/// One schema file: its path under the tree and its JSON (null when it does not parse).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SchemaFile {
    pub file: String,
    pub schema: Option<Value>,
}

/// Liveness and the current version (no token needed).
#[utoipa::path(
    get,
    path = "/v1/health",
    responses(
        (status = 200, description = "Alive", body = Health, content_type = "application/json"),
    ),
)]
pub async fn health(State(state): State<ApiState>) -> Json<Health> {
    let snapshot = state.host.snapshot();
    // No token here: the error is redacted of every environment's secret values.
    let redacted = |text: &str| snapshot.axes().environments.iter().filter_map(|e| snapshot.view(&ViewKey::environment(e)).ok()).fold(text.to_owned(), |text, view| potter_config::secret_values::redact_text(view, &text));
    let stale_sources = state.host.stale_sources().iter().map(|(plugin, stale)| StaleSource { plugin: plugin.clone(), staleness: super::plugins::SourceStaleness::new(stale, redacted(&stale.last_error)) }).collect();
    let store_unreachable = state.host.store_unreachable();
    let status = if store_unreachable.is_some() { "degraded" } else { "ok" };
    Json(Health { status, version: snapshot.version(), stale_sources, store_unreachable })
}

/// This document (no token needed).
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    responses(
        (status = 200, description = "The OpenAPI document", body = Object, content_type = "application/json"),
    ),
)]
pub async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}

/// Environments (those in the token's scope), services and users.
#[utoipa::path(
    get,
    path = "/v1/environments",
    responses(
        (status = 200, description = "The axes of the tree", body = Axes, content_type = "application/json"),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn environments(State(state): State<ApiState>, Authenticated(principal): Authenticated) -> ApiResult<Json<Axes>> {
    let snapshot = state.host.snapshot();
    let axes = snapshot.axes();
    let environments: Vec<&str> = axes.environments.iter().map(|e| &**e).filter(|e| principal.may_use_environment(e)).collect();
    Ok(Json(Axes {
        version: snapshot.version(),
        environments: environments.into_iter().map(str::to_owned).collect(),
        services: axes.services.iter().map(|s| s.to_string()).collect(),
        users: axes.users.iter().map(|u| u.to_string()).collect(),
    }))
}

/// The schema files of the tree (`<root>/schemas/**.json`), as parsed JSON.
#[utoipa::path(
    get,
    path = "/v1/schemas",
    responses(
        (status = 200, description = "The schema files", body = Schemas, content_type = "application/json"),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn schemas(State(state): State<ApiState>, Authenticated(_): Authenticated) -> ApiResult<Json<Schemas>> {
    let dir = state.host.options().root.join("schemas");
    let mut found = Vec::new();
    fn walk(dir: &FsPath, base: &FsPath, found: &mut Vec<SchemaFile>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if path.is_dir() {
                walk(&path, base, found);
            } else if path.extension().is_some_and(|ext| ext == "json") {
                let schema = potter_files::read_regular_to_string(&path, potter_validate::MAX_SCHEMA_BYTES).ok().and_then(|text| serde_json::from_str::<Value>(&text).ok());
                let relative = path.strip_prefix(base).unwrap_or(&path).display().to_string();
                found.push(SchemaFile { file: format!("schemas/{relative}"), schema });
            }
        }
    }
    walk(&dir, &dir, &mut found);
    Ok(Json(Schemas { schemas: found }))
}

/// The server's metrics in the Prometheus text format (OpenMetrics 1.0). See docs/API.md for each
/// metric and its labels.
#[utoipa::path(
    get,
    path = "/metrics",
    responses(
        (status = 200, description = "The metrics", body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (status = 403, description = "`forbidden`: only metrics and admin tokens may", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn metrics(State(state): State<ApiState>, _reader: crate::gate::MetricsReader) -> Response {
    let text = state.metrics.render(state.host.snapshot().version());
    ([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}
