//! Change requests (`/v1/changes`): an editor drafts a batch of runtime overrides, a publisher
//! approves (publishes) or rejects it, its author may withdraw it. The logic is the library's
//! (`potter_config::change_requests`); here the roles, the scopes and the audit lines.

#[allow(unused_imports)]
use super::*;
use potter_config::change_requests::{ChangeRequest, Draft, Event as RequestEvent, KeyConflict, KeyDiff, Release, RequestState, Standing};

/// `POST /v1/changes`: a draft.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChangeBody {
    /// The environment; defaults to the `X-Potter-Environment` header.
    #[serde(default)]
    env: Option<String>,
    /// What the change does, for its reviewers.
    title: String,
    /// A JSON Merge Patch of runtime overrides, as `PATCH /v1/config/{env}` takes: `null` removes,
    /// member names must not contain `.`.
    #[schema(value_type = Object)]
    pub(super) changes: Map<String, Value>,
}

/// `POST /v1/changes/{id}/approve`: nothing (publish at once) or a rollout's strategy.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// Publish as a progressive rollout (its first step is the publication) instead of at once.
    #[serde(default)]
    rollout: Option<RolloutStrategy>,
}

/// How a request approved as a rollout reaches its environment (docs/ROLLOUT.md).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutStrategy {
    cohort: potter_config::rollouts::Cohort,
    steps: Vec<potter_config::rollouts::Step>,
}

/// `POST /v1/changes/{id}/reject`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    /// Why, kept with the request.
    reason: String,
}

/// A change request as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChangeView {
    pub id: u64,
    pub env: String,
    pub title: String,
    /// Who drafted it (`token:<name>`, `cli:<name>`).
    pub author: String,
    /// The version it was drafted (validated) on.
    pub base: u64,
    pub state: RequestState,
    pub keys: Vec<String>,
    /// Current → proposed per key (secrets `<redacted>`): against the current values when an
    /// open request is shown alone (`GET /v1/changes/{id}`), else as drafted.
    pub diff: Vec<KeyDiff>,
    /// True when the base moved on without touching its keys and `diff` was recomputed.
    pub rebased: bool,
    /// Its keys that changed after the base: an approval is refused (409) while there are any.
    pub conflicts: Vec<KeyConflict>,
    /// Why it would not validate on the current configuration (empty: it does).
    pub problems: Vec<String>,
    /// Who approved it.
    pub approver: Option<String>,
    /// The version its publication went live as.
    pub published_version: Option<u64>,
    /// Who did what, oldest first.
    pub timeline: Vec<RequestEvent>,
}

impl ChangeView {
    fn of(standing: Standing) -> Self {
        let Standing { request, diff, rebased, conflicts, problems } = standing;
        Self {
            id: request.id,
            keys: request.keys(),
            approver: request.approver().map(str::to_owned),
            env: request.environment,
            title: request.title,
            author: request.author,
            base: request.base,
            state: request.state,
            diff,
            rebased,
            conflicts,
            problems,
            published_version: request.published_version,
            timeline: request.timeline,
        }
    }

    /// A request as stored (its diff as drafted).
    fn stored(request: ChangeRequest) -> Self {
        Self::of(Standing { diff: request.diff.clone(), rebased: false, conflicts: Vec::new(), problems: Vec::new(), request })
    }
}

/// `GET /v1/changes`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChangeList {
    /// Newest first; only requests of the token's environments whose keys all lie in its prefix.
    pub requests: Vec<ChangeView>,
}

/// `?env=&state=` of `GET /v1/changes`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChangeListParams {
    /// Only this environment's requests.
    env: Option<String>,
    /// Only requests in this state: `open`, `approved`, `published`, `rejected` or `withdrawn`.
    state: Option<String>,
}

/// The path of a `/v1/changes/{id}` route.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // documents the path; the handlers read it as `u64`
pub struct ChangePath {
    /// The request's id
    id: u64,
}

/// True when the caller may see `request`: its environment, and every key within the prefix.
fn may_see(principal: &Principal, request: &ChangeRequest) -> bool {
    principal.may_use_environment(&request.environment) && request.edits.iter().all(|edit| principal.may_use_key(&edit.key))
}

/// Allows `action` on the request's environment and every key of it, or says why not.
fn authorize_request(principal: &Principal, action: Action, request: &ChangeRequest) -> ApiResult<()> {
    principal.authorize(action, &request.environment, None)?;
    request.edits.iter().try_for_each(|edit| principal.authorize(action, &request.environment, Some(&edit.key)))
}

/// The request `id`, read off the async workers, once the caller may act on it as `action`.
async fn request_for(state: &ApiState, principal: &Principal, id: u64, action: Action) -> ApiResult<ChangeRequest> {
    let requests = state.host.change_requests();
    let request = blocking(move || requests.store().get(id)).await?;
    authorize_request(principal, action, &request)?;
    Ok(request)
}

/// The answer of a write to a request: its view, with the audit line's environment, keys and message.
fn audited(status: StatusCode, request: ChangeRequest, message: String) -> Response {
    let note = AuditNote { env: Some(request.environment.clone()), key: Some(request.keys().join(",")), message: Some(message) };
    let mut response = (status, Json(ChangeView::stored(request))).into_response();
    response.extensions_mut().insert(note);
    response
}

/// The change requests the caller may see, newest first.
#[utoipa::path(
    get,
    path = "/v1/changes",
    params(ChangeListParams),
    responses(
        (status = 200, description = "The requests (diffs as drafted)", body = ChangeList, content_type = "application/json"),
        (status = 400, description = "`bad_query`: an unknown parameter or state", body = crate::openapi::ErrorBody),
        (status = 403, description = "`forbidden`: `env` is outside the token's environments", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn list(State(state): State<ApiState>, Authenticated(principal): Authenticated, params: Result<Query<ChangeListParams>, QueryRejection>) -> ApiResult<Json<ChangeList>> {
    let params = params.map(|Query(p)| p).map_err(|rejection| ApiError::bad_request("bad_query", rejection.body_text()))?;
    let wanted = params.state.as_deref().map(str::parse::<RequestState>).transpose().map_err(|message| ApiError::bad_request("bad_query", message))?;
    if let Some(environment) = &params.env {
        principal.authorize(Action::Read, environment, None)?;
    }
    let requests = state.host.change_requests();
    let found = blocking(move || requests.store().list(params.env.as_deref(), wanted)).await?;
    Ok(Json(ChangeList { requests: found.into_iter().filter(|request| may_see(&principal, request)).map(ChangeView::stored).collect() }))
}

/// Drafts a change request: validated on every view it reaches as the real change would be,
/// refused (422, naming the view and key) when it does not validate; nothing goes live.
#[utoipa::path(
    post,
    path = "/v1/changes",
    params(
        ("X-Potter-Environment" = Option<String>, Header, description = "The environment, when the body does not name one"),
    ),
    request_body(content = NewChangeBody, description = "`{\"env\"?: E, \"title\": \"…\", \"changes\": {merge patch}}`"),
    responses(
        (status = 201, description = "Drafted (open)", body = ChangeView, content_type = "application/json"),
        (status = 400, description = "`malformed_json`, `missing_environment`, `bad_key` or `incomplete_change` (no title, no edits)", body = crate::openapi::ErrorBody),
        (status = 403, description = "`forbidden`: editor, publisher or admin role within the environments and prefix needed", body = crate::openapi::ErrorBody),
        (status = 404, description = "`unknown_view`: no such environment", body = crate::openapi::ErrorBody),
        (status = 413, description = "`body_too_large`: over 64 KiB", body = crate::openapi::ErrorBody),
        (status = 422, description = "`invalid` (with the `issues` in the token's scope) or `secret_refused`: the draft does not validate; `invalid_tree`: a file of the tree cannot be loaded", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn create(State(state): State<ApiState>, Authenticated(principal): Authenticated, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> ApiResult<Response> {
    let body: NewChangeBody = json_body(body)?;
    let environment = match body.env {
        Some(environment) => environment,
        None => environment_from_header(&headers)?,
    };
    let edits = config::merge_patch_edits(&body.changes)?;
    principal.authorize(Action::Write, &environment, None)?;
    for (key, _) in &edits {
        principal.authorize(Action::Write, &environment, Some(key))?;
    }
    let requests = state.host.change_requests();
    let author = token_actor(&principal);
    let draft = Draft { environment, title: body.title, edits };
    let created = blocking_change(&principal, move || requests.create(draft, &author)).await?;
    let message = format!("change request {} drafted: {}", created.id, created.title);
    Ok(audited(StatusCode::CREATED, created, message))
}

/// One change request; an open one with its diff against the current values (rebased when its
/// base moved on elsewhere) or the keys that changed under it.
#[utoipa::path(
    get,
    path = "/v1/changes/{id}",
    params(ChangePath),
    responses(
        (status = 200, description = "The request as it stands now", body = ChangeView, content_type = "application/json"),
        (status = 400, description = "`bad_path`: not a request id", body = crate::openapi::ErrorBody),
        (status = 403, description = "`forbidden`: outside the token's environments or prefix", body = crate::openapi::ErrorBody),
        (status = 404, description = "`unknown_change`", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn show(State(state): State<ApiState>, Authenticated(principal): Authenticated, id: Result<Path<u64>, PathRejection>) -> ApiResult<Json<ChangeView>> {
    let id = path_params(id)?;
    request_for(&state, &principal, id, Action::Read).await?;
    let requests = state.host.change_requests();
    let standing = blocking_change(&principal, move || requests.show(id)).await?;
    Ok(Json(ChangeView::of(standing)))
}

/// Approves a change request and publishes it at once as ONE new version (publisher or admin).
#[utoipa::path(
    post,
    path = "/v1/changes/{id}/approve",
    params(ChangePath),
    request_body(content = ApproveBody, description = "none or `{}` (at once), or `{\"rollout\": {\"cohort\": {\"kind\": \"users\"}, \"steps\": [...]}}`"),
    responses(
        (status = 200, description = "Published", body = ChangeView, content_type = "application/json"),
        (status = 400, description = "`bad_path`: not a request id", body = crate::openapi::ErrorBody),
        (status = 403, description = "`forbidden`: publisher or admin role within the environment and prefix needed; `self_approval`: the author cannot approve their own request where review is required", body = crate::openapi::ErrorBody),
        (status = 404, description = "`unknown_change`", body = crate::openapi::ErrorBody),
        (status = 409, description = "`change_conflict` (with `conflicts`): keys of the request changed after its base; `change_closed`: the request is not open; nothing was published", body = crate::openapi::ErrorBody),
        (status = 422, description = "`invalid` (with the `issues` in the token's scope): it does not validate any more; nothing was published", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn approve(State(state): State<ApiState>, Authenticated(principal): Authenticated, id: Result<Path<u64>, PathRejection>, body: Result<Bytes, BytesRejection>) -> ApiResult<Response> {
    let id = path_params(id)?;
    request_for(&state, &principal, id, Action::Publish).await?;
    let body: ApproveBody = optional_json_body(body)?;
    let release = match body.rollout {
        Some(RolloutStrategy { cohort, steps }) => Release::Rollout { cohort, steps },
        None => Release::AtOnce,
    };
    let requests = state.host.change_requests();
    let approver = token_actor(&principal);
    let published = blocking_change(&principal, move || requests.approve(id, &approver, release)).await?;
    let version = published.published_version.unwrap_or_default();
    let how = published.timeline.last().and_then(|event| event.note.clone()).map(|note| format!(" {note}")).unwrap_or_default();
    tracing::info!(token = %principal.name, id, environment = %published.environment, version, "change request approved and published{how}");
    let message = format!("change request {id} by {} approved and published as version {version}{how}", published.author);
    Ok(with_etag_response(version, audited(StatusCode::OK, published, message)))
}

/// Rejects a change request with a reason (publisher or admin); nothing changes.
#[utoipa::path(
    post,
    path = "/v1/changes/{id}/reject",
    params(ChangePath),
    request_body(content = RejectBody, description = "`{\"reason\": \"…\"}`"),
    responses(
        (status = 200, description = "Rejected", body = ChangeView, content_type = "application/json"),
        (status = 400, description = "`bad_path`, `malformed_json` or `incomplete_change` (no reason)", body = crate::openapi::ErrorBody),
        (status = 403, description = "`forbidden`: publisher or admin role within the environment and prefix needed", body = crate::openapi::ErrorBody),
        (status = 404, description = "`unknown_change`", body = crate::openapi::ErrorBody),
        (status = 409, description = "`change_closed`: the request is not open", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn reject(State(state): State<ApiState>, Authenticated(principal): Authenticated, id: Result<Path<u64>, PathRejection>, body: Result<Bytes, BytesRejection>) -> ApiResult<Response> {
    let id = path_params(id)?;
    request_for(&state, &principal, id, Action::Publish).await?;
    let body: RejectBody = json_body(body)?;
    let requests = state.host.change_requests();
    let rejecter = token_actor(&principal);
    let rejected = blocking(move || requests.reject(id, &rejecter, &body.reason)).await?;
    let message = format!("change request {id} rejected: {}", rejected.timeline.last().and_then(|event| event.note.as_deref()).unwrap_or(""));
    Ok(audited(StatusCode::OK, rejected, message))
}

/// Withdraws a change request (its author only); nothing changes.
#[utoipa::path(
    post,
    path = "/v1/changes/{id}/withdraw",
    params(ChangePath),
    responses(
        (status = 200, description = "Withdrawn", body = ChangeView, content_type = "application/json"),
        (status = 400, description = "`bad_path`: not a request id", body = crate::openapi::ErrorBody),
        (status = 403, description = "`forbidden`: outside the token's scope; `not_author`: only the author may withdraw", body = crate::openapi::ErrorBody),
        (status = 404, description = "`unknown_change`", body = crate::openapi::ErrorBody),
        (status = 409, description = "`change_closed`: the request is not open", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn withdraw(State(state): State<ApiState>, Authenticated(principal): Authenticated, id: Result<Path<u64>, PathRejection>) -> ApiResult<Response> {
    let id = path_params(id)?;
    request_for(&state, &principal, id, Action::Write).await?;
    let requests = state.host.change_requests();
    let author = token_actor(&principal);
    let withdrawn = blocking(move || requests.withdraw(id, &author)).await?;
    Ok(audited(StatusCode::OK, withdrawn, format!("change request {id} withdrawn")))
}

/// `response` with the version it went live as in its ETag.
fn with_etag_response(version: u64, mut response: Response) -> Response {
    response.headers_mut().insert(ETAG, etag(version));
    response
}
