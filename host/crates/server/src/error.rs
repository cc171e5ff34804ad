//! API errors: every failure is a JSON body `{"error": {"code", "message", ...}}` with a fitting
//! status. Bad input is always a 4xx; a 500 means the server itself failed.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use potter_config::change_requests::RequestError;
use potter_config::rollouts::RolloutError;
use potter_config::Error;

/// A failed request: status, machine-readable code, human message, optional details.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Merged into the `error` object (e.g. `issues` of a validation failure).
    pub details: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: Map::new() }
    }

    pub fn with(mut self, field: &str, value: Value) -> Self {
        self.details.insert(field.to_owned(), value);
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The answer to a failed change on behalf of a caller: a validation failure lists only the
    /// issues within `scope` (the others withheld and counted), as `POST /v1/validate` does.
    pub fn in_scope(error: Error, scope: &super::scope::IssueScope) -> Self {
        match error {
            Error::Invalid(report) => invalid(scope.report_json(&report)),
            other => other.into(),
        }
    }
}

fn invalid(issues: Value) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "the change does not validate; nothing was applied").with("issues", issues)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("code".to_owned(), json!(self.code));
        error.insert("message".to_owned(), json!(self.message));
        error.extend(self.details);
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        response.extensions_mut().insert(super::gate::AuditNote { message: Some(self.message), ..Default::default() });
        response
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            // The shared store did not commit it (unreachable, no quorum): nothing was acknowledged.
            Error::History(ref history) if potter_config::recording::is_store_unavailable(history) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", message),
            Error::History(potter_history::HistoryError::PayloadPruned { .. }) => ApiError::new(StatusCode::CONFLICT, "history_pruned", message),
            Error::History(potter_history::HistoryError::InvalidChange(_)) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "cannot_apply", message),
            Error::UnknownView(_) | Error::NotServed { .. } => ApiError::not_found("unknown_view", message),
            Error::KeyPath(_) => ApiError::bad_request("bad_key", message),
            Error::NotFound(_) => ApiError::not_found("key_not_set", message),
            Error::NoOverride { .. } => ApiError::not_found("no_override", message),
            Error::Type { .. } => ApiError::bad_request("bad_type", message),
            Error::Invalid(report) => invalid(report.to_json()),
            Error::Secret(potter_config::secret_values::SecretsError::Rejected(_)) | Error::Secret(potter_config::secret_values::SecretsError::Usage(_)) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "secret_refused", message)
            }
            // Like a sealed vault: the server cannot decrypt it until it is given the key.
            Error::Secret(potter_config::secret_values::SecretsError::Sealed(_)) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "secret_sealed", message),
            Error::History(potter_history::HistoryError::Conflict { expected, actual, .. }) => {
                ApiError::new(StatusCode::PRECONDITION_FAILED, "conflict", message).with("expected", json!(expected)).with("actual", json!(actual))
            }
            // A file of the tree that cannot be loaded (does not parse, is not a regular file, is too
            // large): the change is refused, the old snapshot stays. The tree must be fixed first.
            Error::Parse { ref file, .. } | Error::TooLarge { ref file, .. } | Error::NotUtf8 { ref file, .. } | Error::NotAFile { ref file, .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_tree", message.clone()).with("file", json!(file))
            }
            Error::DuplicateLayer { .. } | Error::Schema(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_tree", message),
            Error::ChangeRequest(request) => change_request_error(request, message),
            Error::Rollout(rollout) => rollout_error(rollout, message),
            _ => {
                tracing::error!(%message, "request failed");
                ApiError::internal(message)
            }
        }
    }
}

fn rollout_error(error: RolloutError, message: String) -> ApiError {
    match error {
        RolloutError::Unknown { .. } => ApiError::not_found("unknown_rollout", message),
        RolloutError::NotRunning { .. } => ApiError::new(StatusCode::CONFLICT, "rollout_ended", message),
        RolloutError::Overlap { .. } => ApiError::new(StatusCode::CONFLICT, "rollout_overlap", message),
        RolloutError::Running { .. } => ApiError::new(StatusCode::CONFLICT, "rollout_running", message),
        RolloutError::Baking { .. } => ApiError::new(StatusCode::CONFLICT, "rollout_baking", message),
        RolloutError::Plan(_) => ApiError::bad_request("bad_rollout", message),
        RolloutError::Store { .. } => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", message),
    }
}

fn change_request_error(error: RequestError, message: String) -> ApiError {
    match error {
        RequestError::ReviewRequired { .. } => ApiError::new(StatusCode::FORBIDDEN, "review_required", message),
        RequestError::SelfApproval { .. } => ApiError::new(StatusCode::FORBIDDEN, "self_approval", message),
        RequestError::NotAuthor { .. } => ApiError::new(StatusCode::FORBIDDEN, "not_author", message),
        RequestError::Unknown { .. } => ApiError::not_found("unknown_change", message),
        RequestError::NotOpen { .. } => ApiError::new(StatusCode::CONFLICT, "change_closed", message),
        RequestError::Conflict { conflicts, .. } => ApiError::new(StatusCode::CONFLICT, "change_conflict", message).with("conflicts", json!(conflicts)),
        RequestError::Incomplete(_) => ApiError::bad_request("incomplete_change", message),
        RequestError::Store { .. } => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", message),
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
