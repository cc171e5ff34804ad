//! What the web console needs beyond the rest of the API (docs/CONSOLE.md): who the caller is
//! (`GET /v1/console/session`), a view's leaves with their provenance and secrets always masked
//! (`GET /v1/console/tree/{env}`), and the explicit, audited reveal of one secret
//! (`POST /v1/console/reveal/{env}/{key}`).
//!
//! The tree masks secrets whatever the role, so a page holds a secret's plaintext only after the
//! click that reveals it; the reveal is the one read the gate audits (see [`is_audited_read`]).

#[allow(unused_imports)]
use super::*;

/// The route prefix of the reveal (audited like a write, whatever its outcome).
const REVEAL_ROUTE: &str = "/v1/console/reveal/";

/// Set on a response whose audit line its handler already made durable (an allowed reveal): the
/// gate does not record it again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AlreadyAudited;

/// True for the reads that are audited even when allowed: revealing a secret.
pub(crate) fn is_audited_read(path: &str) -> bool {
    path.starts_with(REVEAL_ROUTE)
}

/// The console's routes of the API (merged into [`crate::router`]).
pub fn routes() -> axum::Router<ApiState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/v1/console/session", get(session))
        .route("/v1/console/tree/{env}", get(tree))
        .route("/v1/console/reveal/{env}/{*key}", post(reveal))
}

/// `GET /v1/console/session`: the caller's token and what its role lets the page offer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Session {
    /// The token's name.
    pub name: String,
    /// `viewer`, `editor`, `secret-reader` or `admin`.
    pub role: &'static str,
    /// The environments it may use (`*`: every one).
    pub environments: Vec<String>,
    /// Only keys under it (null: every key).
    pub prefix: Option<String>,
    /// Editing controls (runtime overrides).
    pub may_write: bool,
    /// The reveal button of secrets.
    pub may_reveal: bool,
    /// Rollback (and the audit log).
    pub may_rollback: bool,
}

/// `GET /v1/console/tree/{env}`: every leaf of a view, in key order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Tree {
    /// E.g. `production/api_service`.
    pub view: String,
    pub version: u64,
    pub leaves: Vec<Leaf>,
}

/// One leaf: its value (a secret's is always null here), whether it is a secret, and where it was set.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Leaf {
    /// The dotted key path.
    pub key: String,
    /// The value; null for a secret (reveal it with `POST /v1/console/reveal/{env}/{key}`).
    pub value: Value,
    pub secret: bool,
    #[schema(value_type = Option<Source>)]
    pub source: Option<potter_engine::Provenance>,
    /// For a runtime override: the recorded change that last set it (absent when it is older
    /// than the newest [`OVERRIDE_LOOKBACK`] records of the environment, or nothing is recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_by: Option<SetBy>,
}

/// Who set a runtime override, and in which version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SetBy {
    pub version: u64,
    pub actor: String,
    /// `api`, `cli`, `rollback`...
    pub origin: String,
    /// RFC 3339.
    pub timestamp: String,
}

/// How many of an environment's newest records the tree reads to attribute its overrides.
pub const OVERRIDE_LOOKBACK: usize = 1000;

/// `POST /v1/console/reveal/{env}/{key}`: one value in plaintext.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Revealed {
    pub key: String,
    pub view: String,
    pub version: u64,
    pub value: Value,
}

/// The caller's token, role and what the console may offer it.
#[utoipa::path(
    get,
    path = "/v1/console/session",
    responses(
        (status = 200, description = "The caller's token and role", body = Session, content_type = "application/json"),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn session(Authenticated(principal): Authenticated) -> Json<Session> {
    Json(Session {
        name: principal.name.clone(),
        role: principal.role.as_str(),
        environments: principal.environments.clone(),
        prefix: principal.prefix.clone(),
        may_write: matches!(principal.role, Role::Editor | Role::Publisher | Role::Admin),
        may_reveal: principal.sees_secrets(),
        may_rollback: principal.role == Role::Admin,
    })
}

/// Every leaf of a view with its provenance; secrets are masked whatever the role.
#[utoipa::path(
    get,
    path = "/v1/console/tree/{env}",
    params(
        ("env" = String, Path, description = "The environment (a file of `environments/`)"),
        ViewQuery,
    ),
    responses(
        (status = 200, description = "The view's leaves (only those under the token's prefix)", body = Tree, content_type = "application/json", headers(("ETag" = String, description = "The version, quoted"))),
        (status = 400, description = "`bad_path` or `bad_query`", body = crate::openapi::ErrorBody),
        crate::openapi::ViewRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn tree(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    environment: Result<Path<String>, PathRejection>,
    query: Result<Query<ViewQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let environment = path_params(environment)?;
    let query = query_params(query)?;
    principal.authorize(Action::Read, &environment, None)?;
    let snapshot = state.host.snapshot();
    let view_key = view_key(&environment, &query);
    let view = view_of(&state, &snapshot, &view_key)?;
    let mut leaves: Vec<Leaf> = view
        .leaf_paths()
        .filter(|(key, _)| principal.may_use_key(key))
        .map(|(key, value)| {
            let secret = potter_config::secret_values::holds_secret(view, key);
            Leaf {
                key: key.to_owned(),
                // Not even a redaction marker inside a value: a secret leaf carries nothing.
                value: if secret { Value::Null } else { potter_config::secret_values::redact(view, key, value) },
                secret,
                source: view.origin(key).map(|origin| origin.provenance()),
                set_by: None,
            }
        })
        .collect();
    leaves.sort_by(|a, b| a.key.cmp(&b.key));
    let version = snapshot.version();
    drop(snapshot);
    attribute_overrides(&state, &environment, &mut leaves).await?;
    Ok(with_etag(version, Tree { view: view_key.to_string(), version, leaves }))
}

/// Fills in `set_by` of the leaves a runtime override set, from the environment's newest records
/// (one query; newest first, so each key gets the change that last wrote it).
async fn attribute_overrides(state: &ApiState, environment: &str, leaves: &mut [Leaf]) -> ApiResult<()> {
    let overridden: std::collections::HashSet<String> =
        leaves.iter().filter(|leaf| leaf.source.as_ref().is_some_and(|source| source.rank == potter_engine::Rank::Overrides)).map(|leaf| leaf.key.clone()).collect();
    if overridden.is_empty() {
        return Ok(());
    }
    let host = state.host.clone();
    let query = potter_history::HistoryQuery::new().env(environment.to_owned()).limit(OVERRIDE_LOOKBACK);
    let mut found = blocking(move || {
        let mut found = std::collections::HashMap::new();
        let Some(store) = host.history_store()? else { return Ok(found) };
        for record in store.query(&query)? {
            for key in record.keys.iter().filter(|key| overridden.contains(*key)) {
                found.entry(key.clone()).or_insert_with(|| SetBy {
                    version: record.version,
                    actor: record.actor.clone(),
                    origin: record.origin.to_string(),
                    timestamp: record.timestamp_rfc3339(),
                });
            }
            if found.len() == overridden.len() {
                break;
            }
        }
        Ok(found)
    })
    .await?;
    for leaf in leaves.iter_mut() {
        leaf.set_by = found.remove(&leaf.key);
    }
    Ok(())
}

/// Reveals one value in plaintext to a secret-reader or admin; every call is audited.
#[utoipa::path(
    post,
    path = "/v1/console/reveal/{env}/{key}",
    params(
        KeyPath,
        ViewQuery,
    ),
    responses(
        (status = 200, description = "The value in plaintext (audited)", body = Revealed, content_type = "application/json"),
        (status = 400, description = "`bad_key` or `bad_query`", body = crate::openapi::ErrorBody),
        (status = 403, description = "`forbidden`: only secret-reader and admin tokens may reveal, within their scope", body = crate::openapi::ErrorBody),
        (status = 404, description = "`unknown_view`, or `key_not_set`", body = crate::openapi::ErrorBody),
        (status = 422, description = "`sealed`: the secret's keyring is not held by this process", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn reveal(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    uri: axum::http::Uri,
    params: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<ViewQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let route = uri.path().to_owned();
    let KeyRead { key, snapshot, view_key } = key_read(&state, &principal, params, query)?;
    if !principal.sees_secrets() {
        return Err(ApiError::forbidden(format!("token `{}` ({}) may not reveal secrets", principal.name, principal.role.as_str())));
    }
    let view = view_of(&state, &snapshot, &view_key)?;
    let value = view.get_ref(&key).ok_or_else(|| ApiError::not_found("key_not_set", format!("key `{key}` is not set in {view_key}")))?;
    revealable(&principal, view, &key)?;
    let body = Revealed { value: shown(&principal, view, &key, value), view: view_key.to_string(), version: snapshot.version(), key: key.clone() };
    drop(snapshot);
    // The audit line is durable before the plaintext leaves: a reveal that was not recorded is
    // not answered (other audit lines are queued by the gate without waiting).
    if let Some(audit) = state.audit.clone() {
        let entry = potter_history::NewAuditEntry {
            actor: principal.name.clone(),
            method: "POST".to_owned(),
            route: route.clone(),
            env: Some(view_key.environment.to_string()),
            key: Some(key.clone()),
            status: 200,
            outcome: "allowed: revealed".to_owned(),
        };
        blocking(move || audit.store().append_audit(vec![entry]).map_err(potter_config::Error::from)).await?;
    }
    tracing::info!(token = %principal.name, view = %view_key, %key, "secret revealed");
    let mut response = Json(body).into_response();
    response.extensions_mut().insert(AlreadyAudited);
    Ok(response)
}
