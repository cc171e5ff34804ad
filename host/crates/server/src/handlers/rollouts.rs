//! Progressive rollouts (`/v1/rollouts`) and a host's own health report
//! (`POST /v1/instances/self/health`, a rollout's health gate). The logic is the library's
//! (`potter_config::rollouts`); here the roles, the scopes and the audit lines: starting, advancing
//! and aborting need the editor role on the environment and every key; forcing a step (before its
//! bake ends or past a failing gate) needs an admin.

#[allow(unused_imports)]
use super::*;
use potter_config::rollouts::{Cohort, Plan, Rollout, RolloutEvent, RolloutState, Step};

/// `POST /v1/rollouts`: a change and its strategy.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRolloutBody {
    /// The environment; defaults to the `X-Potter-Environment` header.
    #[serde(default)]
    env: Option<String>,
    /// What the change does.
    title: String,
    /// A JSON Merge Patch of runtime overrides (no `null`: a rollout sets values).
    #[schema(value_type = Object)]
    pub(super) changes: Map<String, Value>,
    /// Who it reaches first: `{"kind": "users"}` (a share of the tree's users), `{"kind":
    /// "instances"}` (a share of the hosts), `{"kind": "chosen", "instances": [ids]}`,
    /// `{"kind": "label", "label": "region=eu"}` (the last three need the shared store).
    cohort: Cohort,
    /// The steps: shares rising to 100, each with its bake time.
    steps: Vec<Step>,
}

/// `POST /v1/rollouts/{id}/advance`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvanceBody {
    /// Past the bake time or a failing gate (admin only).
    #[serde(default)]
    force: bool,
}

/// `POST /v1/rollouts/{id}/abort`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AbortBody {
    /// Why, kept in the history and the rollout's timeline.
    reason: String,
}

/// `POST /v1/instances/self/health`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthReportBody {
    /// False: the service is unhealthy (a running rollout rolls back); true clears it.
    healthy: bool,
    /// Why (required when unhealthy).
    #[serde(default)]
    reason: Option<String>,
}

/// The answer of `POST /v1/instances/self/health`: the report as recorded.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthReport {
    pub healthy: bool,
    /// Why it is unhealthy.
    pub reason: Option<String>,
}

/// A rollout as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RolloutView {
    pub id: u64,
    pub env: String,
    pub title: String,
    /// Who started it (`token:<name>`, `cli:<name>`).
    pub author: String,
    pub state: RolloutState,
    pub keys: Vec<String>,
    pub cohort: Cohort,
    pub steps: Vec<Step>,
    /// The current step, 1-based.
    pub step: usize,
    /// The current step's share, percent.
    pub percent: u32,
    /// When the current step's bake ends (RFC 3339; running rollouts only).
    pub bake_ends_at: Option<String>,
    /// The tree's users the current step reaches (running user rollouts only), sorted.
    pub reached_users: Vec<String>,
    /// The hosts the current step reached when it started (running instance rollouts only).
    pub reached_instances: Vec<String>,
    /// Who did what, oldest first.
    pub timeline: Vec<RolloutEvent>,
}

impl RolloutView {
    fn of(rollout: Rollout, users: &[std::sync::Arc<str>]) -> Self {
        let running = rollout.state == RolloutState::Running;
        Self {
            id: rollout.id,
            keys: rollout.keys().map(str::to_owned).collect(),
            step: rollout.step + 1,
            percent: rollout.current_step().percent,
            bake_ends_at: running.then(|| rollout.bake_ends_at()),
            reached_users: rollout.reached_users(users),
            reached_instances: if running { rollout.members.clone() } else { Vec::new() },
            env: rollout.environment,
            title: rollout.title,
            author: rollout.author,
            state: rollout.state,
            cohort: rollout.cohort,
            steps: rollout.steps,
            timeline: rollout.timeline,
        }
    }
}

/// `GET /v1/rollouts`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RolloutList {
    /// Newest first; only rollouts of the token's environments whose keys all lie in its prefix.
    pub rollouts: Vec<RolloutView>,
}

/// `?env=` of `GET /v1/rollouts`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RolloutListParams {
    /// Only this environment's rollouts.
    env: Option<String>,
}

/// The path of a `/v1/rollouts/{id}` route.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // documents the path; the handlers read it as `u64`
pub struct RolloutPath {
    /// The rollout's id
    id: u64,
}

fn may_see(principal: &Principal, rollout: &Rollout) -> bool {
    principal.may_use_environment(&rollout.environment) && rollout.keys().all(|key| principal.may_use_key(key))
}

/// The rollout `id`, once the caller may act on it as `action`.
async fn rollout_for(state: &ApiState, principal: &Principal, id: u64, action: Action) -> ApiResult<Rollout> {
    let rollouts = state.host.rollouts();
    let rollout = blocking(move || rollouts.store().get(id)).await?;
    principal.authorize(action, &rollout.environment, None)?;
    rollout.keys().try_for_each(|key| principal.authorize(action, &rollout.environment, Some(key)))?;
    Ok(rollout)
}

fn shown(state: &ApiState, rollout: Rollout) -> RolloutView {
    RolloutView::of(rollout, &state.host.snapshot().axes().users)
}

/// The answer of a write to a rollout, with its audit line.
fn audited(state: &ApiState, status: StatusCode, rollout: Rollout, message: String) -> Response {
    let note = AuditNote { env: Some(rollout.environment.clone()), key: Some(rollout.keys().collect::<Vec<_>>().join(",")), message: Some(message) };
    let mut response = (status, Json(shown(state, rollout))).into_response();
    response.extensions_mut().insert(note);
    response
}

/// The rollouts the caller may see, newest first.
#[utoipa::path(
    get,
    path = "/v1/rollouts",
    params(RolloutListParams),
    responses(
        (status = 200, description = "The rollouts", body = RolloutList, content_type = "application/json"),
        (status = 400, description = "`bad_query`: an unknown parameter", body = crate::openapi::ErrorBody),
        (status = 403, description = "`forbidden`: `env` is outside the token's environments", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn list(State(state): State<ApiState>, Authenticated(principal): Authenticated, params: Result<Query<RolloutListParams>, QueryRejection>) -> ApiResult<Json<RolloutList>> {
    let params = params.map(|Query(p)| p).map_err(|rejection| ApiError::bad_request("bad_query", rejection.body_text()))?;
    if let Some(environment) = &params.env {
        principal.authorize(Action::Read, environment, None)?;
    }
    let rollouts = state.host.rollouts();
    let found = blocking(move || rollouts.store().list(params.env.as_deref())).await?;
    Ok(Json(RolloutList { rollouts: found.into_iter().filter(|rollout| may_see(&principal, rollout)).map(|rollout| shown(&state, rollout)).collect() }))
}

/// Starts a rollout on its first step: validated first on every view the change can reach
/// (422 naming the view and key), refused (409) while a running rollout covers one of its keys.
#[utoipa::path(
    post,
    path = "/v1/rollouts",
    params(
        ("X-Potter-Environment" = Option<String>, Header, description = "The environment, when the body does not name one"),
    ),
    request_body(content = NewRolloutBody, description = "`{\"env\"?: E, \"title\": \"…\", \"changes\": {merge patch}, \"cohort\": {\"kind\": \"users\"}, \"steps\": [{\"percent\": 10, \"bake_seconds\": 600}, …]}`"),
    responses(
        (status = 201, description = "Started (its first step is live)", body = RolloutView, content_type = "application/json"),
        (status = 400, description = "`malformed_json`, `missing_environment`, `bad_key` or `bad_rollout` (steps, a removal, an unhealthy host)", body = crate::openapi::ErrorBody),
        (status = 403, description = "`forbidden`: editor or admin role within the environment and prefix needed", body = crate::openapi::ErrorBody),
        (status = 404, description = "`unknown_view`: no such environment", body = crate::openapi::ErrorBody),
        (status = 409, description = "`rollout_overlap`: a running rollout covers one of its keys", body = crate::openapi::ErrorBody),
        (status = 422, description = "`invalid` (with the `issues` in the token's scope) or `secret_refused`: the change does not validate", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn start(State(state): State<ApiState>, Authenticated(principal): Authenticated, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> ApiResult<Response> {
    let body: NewRolloutBody = json_body(body)?;
    let environment = match body.env {
        Some(environment) => environment,
        None => environment_from_header(&headers)?,
    };
    let mut edits = Vec::new();
    for (key, value) in config::merge_patch_edits(&body.changes)? {
        let Some(value) = value else {
            return Err(ApiError::bad_request("bad_rollout", format!("`{key}`: a rollout sets values; remove an override with a normal change (DELETE or PATCH null)")));
        };
        edits.push((key, value));
    }
    principal.authorize(Action::Write, &environment, None)?;
    for (key, _) in &edits {
        principal.authorize(Action::Write, &environment, Some(key))?;
    }
    let rollouts = state.host.rollouts();
    let author = token_actor(&principal);
    let plan = Plan { environment, title: body.title, edits, cohort: body.cohort, steps: body.steps };
    let started = blocking_change(&principal, move || rollouts.start(plan, &author)).await?;
    let message = format!("rollout {} started: {}", started.id, started.title);
    Ok(audited(&state, StatusCode::CREATED, started, message))
}

/// One rollout: its step, the users its step reaches, its timeline.
#[utoipa::path(
    get,
    path = "/v1/rollouts/{id}",
    params(RolloutPath),
    responses(
        (status = 200, description = "The rollout as it stands now", body = RolloutView, content_type = "application/json"),
        (status = 400, description = "`bad_path`: not a rollout id", body = crate::openapi::ErrorBody),
        (status = 403, description = "`forbidden`: outside the token's environments or prefix", body = crate::openapi::ErrorBody),
        (status = 404, description = "`unknown_rollout`", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn status(State(state): State<ApiState>, Authenticated(principal): Authenticated, id: Result<Path<u64>, PathRejection>) -> ApiResult<Json<RolloutView>> {
    let id = path_params(id)?;
    let rollout = rollout_for(&state, &principal, id, Action::Read).await?;
    Ok(Json(shown(&state, rollout)))
}

/// Moves a rollout to its next step (its last: completes it, its change becoming runtime
/// overrides for every view). Refused while the step bakes or the host is unhealthy unless
/// forced, which needs an admin.
#[utoipa::path(
    post,
    path = "/v1/rollouts/{id}/advance",
    params(RolloutPath),
    request_body(content = AdvanceBody, description = "`{}` or `{\"force\": true}` (admin)"),
    responses(
        (status = 200, description = "Advanced (or completed)", body = RolloutView, content_type = "application/json"),
        (status = 400, description = "`bad_path`, `malformed_json` or `bad_rollout` (the host reports itself unhealthy)", body = crate::openapi::ErrorBody),
        (status = 403, description = "`forbidden`: editor or admin role needed; forcing needs admin", body = crate::openapi::ErrorBody),
        (status = 404, description = "`unknown_rollout`", body = crate::openapi::ErrorBody),
        (status = 409, description = "`rollout_baking`: its step's bake has not ended; `rollout_ended`: it is not running", body = crate::openapi::ErrorBody),
        (status = 422, description = "`invalid`: the host refused the step (the rollout rolled back)", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn advance(State(state): State<ApiState>, Authenticated(principal): Authenticated, id: Result<Path<u64>, PathRejection>, body: Result<Bytes, BytesRejection>) -> ApiResult<Response> {
    let id = path_params(id)?;
    rollout_for(&state, &principal, id, Action::Write).await?;
    let body: AdvanceBody = optional_json_body(body)?;
    if body.force && principal.role != Role::Admin {
        return Err(ApiError::forbidden(format!("token `{}` ({}) may not force a rollout's step past its bake or a gate (admin tokens may)", principal.name, principal.role.as_str())));
    }
    let rollouts = state.host.rollouts();
    let by = token_actor(&principal);
    let moved = blocking_change(&principal, move || rollouts.advance(id, &by, body.force)).await?;
    let message = match moved.state {
        RolloutState::Completed => format!("rollout {id} completed"),
        _ => format!("rollout {id} at step {}{}", moved.step + 1, if body.force { " (forced)" } else { "" }),
    };
    Ok(audited(&state, StatusCode::OK, moved, message))
}

/// Rolls a rollout back on every view, with the reason in the history.
#[utoipa::path(
    post,
    path = "/v1/rollouts/{id}/abort",
    params(RolloutPath),
    request_body(content = AbortBody, description = "`{\"reason\": \"…\"}`"),
    responses(
        (status = 200, description = "Rolled back", body = RolloutView, content_type = "application/json"),
        (status = 400, description = "`bad_path`, `malformed_json` or `bad_rollout` (no reason)", body = crate::openapi::ErrorBody),
        (status = 403, description = "`forbidden`: editor or admin role within the environment and prefix needed", body = crate::openapi::ErrorBody),
        (status = 404, description = "`unknown_rollout`", body = crate::openapi::ErrorBody),
        (status = 409, description = "`rollout_ended`: it is not running", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn abort(State(state): State<ApiState>, Authenticated(principal): Authenticated, id: Result<Path<u64>, PathRejection>, body: Result<Bytes, BytesRejection>) -> ApiResult<Response> {
    let id = path_params(id)?;
    rollout_for(&state, &principal, id, Action::Write).await?;
    let body: AbortBody = json_body(body)?;
    let rollouts = state.host.rollouts();
    let by = token_actor(&principal);
    let ended = blocking(move || rollouts.abort(id, &by, &body.reason)).await?;
    let message = format!("rollout {id} rolled back: {}", ended.timeline.last().and_then(|event| event.note.as_deref()).unwrap_or(""));
    Ok(audited(&state, StatusCode::OK, ended, message))
}

/// The service reports its own health: unhealthy fails every running rollout's health gate (the
/// driver rolls them back); healthy clears the report. Editor or admin tokens.
#[utoipa::path(
    post,
    path = "/v1/instances/self/health",
    request_body(content = HealthReportBody, description = "`{\"healthy\": false, \"reason\": \"…\"}` or `{\"healthy\": true}`"),
    responses(
        (status = 200, description = "Recorded (see `/v1/health`)", body = HealthReport, content_type = "application/json"),
        (status = 400, description = "`malformed_json` or `bad_report` (unhealthy without a reason)", body = crate::openapi::ErrorBody),
        (status = 403, description = "`forbidden`: editor or admin role needed", body = crate::openapi::ErrorBody),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn report_health(State(state): State<ApiState>, Authenticated(principal): Authenticated, body: Result<Bytes, BytesRejection>) -> ApiResult<Response> {
    if !matches!(principal.role, Role::Editor | Role::Publisher | Role::Admin) {
        return Err(ApiError::forbidden(format!("token `{}` ({}) may not report the host's health (editor and admin tokens may)", principal.name, principal.role.as_str())));
    }
    let body: HealthReportBody = json_body(body)?;
    let report = match (body.healthy, body.reason.as_deref().map(str::trim).filter(|reason| !reason.is_empty())) {
        (true, _) => {
            state.host.report_healthy();
            HealthReport { healthy: true, reason: None }
        }
        (false, Some(reason)) => {
            state.host.report_unhealthy(reason);
            HealthReport { healthy: false, reason: Some(reason.to_owned()) }
        }
        (false, None) => return Err(ApiError::bad_request("bad_report", "an unhealthy report needs a `reason`")),
    };
    let message = report.reason.as_ref().map_or_else(|| "healthy".to_owned(), |reason| format!("unhealthy: {reason}"));
    let mut response = (StatusCode::OK, Json(report)).into_response();
    response.extensions_mut().insert(AuditNote { env: None, key: None, message: Some(message) });
    Ok(response)
}

/// Runs the rollout driver every `period` until `stopped` turns true: gates and bake times
/// (see [`potter_config::rollouts::Rollouts::drive`]).
pub async fn drive(host: potter_config::ConfigHost, period: std::time::Duration, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopped.wait_for(|stopping| *stopping) => return,
        }
        let rollouts = host.rollouts();
        match tokio::task::spawn_blocking(move || rollouts.drive()).await {
            Ok(Ok(driven)) => {
                for done in driven {
                    tracing::info!(?done, "rollout driver");
                }
            }
            Ok(Err(error)) => tracing::warn!(%error, "rollout driver: pass failed (tried again next period)"),
            Err(error) => tracing::error!(%error, "rollout driver: pass panicked"),
        }
    }
}
