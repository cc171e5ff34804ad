//! The recorded past: changes (`GET /v1/history`, `GET /v1/history/{version}`) and rollback
//! (`POST /v1/rollback`).

#[allow(unused_imports)]
use super::*;
use potter_config::timeline::{Difference, RecordSummary, ShownChange};

/// `GET /v1/history`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    pub environment: String,
    /// Newest first.
    pub records: Vec<HistoryEntry>,
}

/// One recorded change, with its values for `/v1/history/{version}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// Who, when, which keys (only those within the token's scope).
    #[serde(flatten)]
    pub summary: RecordSummary,
    /// Only for one record: each key's value before and after (secrets `<redacted>`, absent `null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<ShownChange>>,
}

/// `POST /v1/rollback`: done (or a dry run that validates), or a dry run that does not validate.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documents the two bodies the handler answers with
pub enum RollbackOutcome {
    Done(RollbackDone),
    Refused(RollbackRefused),
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RollbackDone {
    pub environment: String,
    pub to_version: u64,
    pub dry_run: bool,
    /// Always true.
    pub valid: bool,
    /// `applied`, `dry run, validates` or `nothing to change`.
    pub outcome: &'static str,
    /// The new version when applied.
    pub version: Option<u64>,
    /// Every key that differs, current → then (absent `null`).
    pub changes: Vec<Difference>,
    /// The keys held as runtime overrides after the rollback: their value then differs from what
    /// the files give now. `POST /v1/overrides/{env}/release` releases a pin.
    pub pinned: Vec<String>,
    /// The runtime overrides the rollback removes (these keys follow the files again).
    pub released: Vec<String>,
    /// Always empty.
    pub issues: Vec<Value>,
}

/// A dry run whose result would not validate.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RollbackRefused {
    pub environment: String,
    pub to_version: u64,
    pub dry_run: bool,
    /// Always false.
    pub valid: bool,
    /// The validation report.
    #[schema(value_type = Object)]
    pub issues: Value,
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
fn history_entry(record: &potter_history::Record, scope: Option<&str>, qualifiers: &[String], with_values: bool) -> Option<HistoryEntry> {
    let in_scope = |key: &str| scope.is_none_or(|scope| potter_engine::is_under(potter_config::recording::recorded_key(key, qualifiers).1, scope));
    let keys: Vec<&String> = record.keys.iter().filter(|key| in_scope(key)).collect();
    if keys.is_empty() && scope.is_some() {
        return None;
    }
    let keys: Vec<String> = keys.into_iter().cloned().collect();
    // Stored secrets are fingerprints only; `ShownChange` turns them into `<redacted>` for every role.
    let changes = with_values.then(|| {
        record.payload.iter().flat_map(|payload| &payload.changes).filter(|change| in_scope(&change.key)).map(|change| ShownChange::new(&change.key, &change.before, &change.after)).collect()
    });
    Some(HistoryEntry { summary: RecordSummary::of(record, keys), changes })
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
fn scoped_records(store: &dyn potter_history::HistoryStore, query: potter_history::HistoryQuery, scope: Option<&str>, qualifiers: &[String]) -> Result<Vec<potter_history::Record>, potter_config::Error> {
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
        (status = 200, description = "Keys, actor, origin, reason of each change", body = HistoryPage, content_type = "application/json"),
        (status = 400, description = "`bad_query`, `missing_environment` or `bad_key`", body = crate::openapi::ErrorBody),
        crate::openapi::ViewRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn history(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    headers: HeaderMap,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> ApiResult<Json<HistoryPage>> {
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
            Some(store) => scoped_records(store.as_ref(), query, scope.as_deref(), &qualifiers)?,
            None => Vec::new(),
        };
        Ok(records.iter().filter_map(|record| history_entry(record, scope.as_deref(), &qualifiers, false)).collect::<Vec<HistoryEntry>>())
    })
    .await?;
    Ok(Json(HistoryPage { environment, records: entries }))
}

/// One recorded change with its (redacted) values.
#[utoipa::path(
    get,
    path = "/v1/history/{version}",
    params(
        ("version" = u64, Path, description = "A recorded version"),
    ),
    responses(
        (status = 200, description = "The record with its before/after values (secrets always `<redacted>`)", body = HistoryEntry, content_type = "application/json"),
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
) -> ApiResult<Json<HistoryEntry>> {
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
/// overrides (admin only), pinning only the keys whose value then differs from what the files
/// give now; `dry_run` shows the differences and validates without applying.
#[utoipa::path(
    post,
    path = "/v1/rollback",
    params(
        ("X-Potter-Environment" = Option<String>, Header, description = "The environment, when the body or query does not name one"),
    ),
    request_body(content = RollbackBody, description = "`{\"env\"?: E, \"version\": N, \"dry_run\"?: bool, \"reason\"?: \"…\"}`"),
    responses(
        (status = 200, description = "`{\"environment\", \"to_version\", \"dry_run\", \"valid\", \"outcome\", \"version\", \"changes\", \"pinned\", \"released\", \"issues\"}`; ETag when applied", body = RollbackOutcome, content_type = "application/json", headers(("ETag" = String, description = "The version, quoted"))),
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
            let body = RollbackRefused { environment, to_version: version, dry_run: true, valid: false, issues: report.to_json() };
            let mut response = Json(body).into_response();
            response.extensions_mut().insert(note);
            return Ok(response);
        }
        Err(other) => return Err(other.into()),
    };
    if let Some(applied) = rollback.applied {
        tracing::info!(token = %principal.name, %environment, to_version = version, version = applied, "rolled back");
    }
    let body = RollbackDone {
        environment,
        to_version: version,
        dry_run,
        valid: true,
        outcome: rollback.outcome(dry_run),
        version: rollback.applied,
        changes: Difference::all(&rollback.differences),
        pinned: rollback.pinned,
        released: rollback.released,
        issues: Vec::new(),
    };
    let mut response = match rollback.applied {
        Some(applied) => with_etag(applied, body),
        None => Json(body).into_response(),
    };
    response.extensions_mut().insert(note);
    Ok(response)
}
