//! Live changes of a view as Server-Sent Events (`GET /v1/watch/{env}`).

#[allow(unused_imports)]
use super::*;

fn event_name(event: &Event) -> &'static str {
    match event {
        Event::Changed { .. } => "changed",
        Event::Rejected { .. } => "rejected",
        Event::Lagged { .. } => "lagged",
    }
}

/// Server-Sent Events: `ready` once subscribed, then `changed`, `rejected` and `lagged` events.
/// Values of secret keys are always redacted in the stream.
#[utoipa::path(
    get,
    path = "/v1/watch/{env}",
    params(
        ("env" = String, Path, description = "The environment (a file of `environments/`)"),
        ("prefix" = Option<String>, Query, description = "Only changes under this key path (a prefix token's stream defaults to its prefix)"),
        ViewQuery,
    ),
    responses(
        (status = 200, description = "The event stream", body = String, content_type = "text/event-stream"),
        (status = 400, description = "`bad_key` (the prefix) or `bad_query`", body = crate::openapi::ErrorBody),
        crate::openapi::ViewRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn watch(
    State(state): State<ApiState>,
    Authenticated(principal): Authenticated,
    environment: Result<Path<String>, PathRejection>,
    query: Result<Query<ViewQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let environment = path_params(environment)?;
    let query = query_params(query)?;
    let prefix = match (query.prefix.as_deref().filter(|p| !p.is_empty()), principal.prefix.as_deref()) {
        (Some(prefix), _) => {
            checked_key(prefix)?;
            prefix.to_owned()
        }
        (None, Some(scope)) if !principal.may_use_key("") => scope.to_owned(),
        (None, _) => String::new(),
    };
    principal.authorize(Action::Read, &environment, (!prefix.is_empty()).then_some(prefix.as_str()))?;
    let key = view_key(&environment, &query);
    let subscription = state.host.subscribe(&key, &prefix)?;
    let ready = SseEvent::default().event("ready").data(json!({ "view": key.to_string(), "prefix": prefix, "version": state.host.snapshot().version() }).to_string());
    let scope = IssueScope::for_stream(&principal, &environment, &prefix);
    // Counted in `potter_watch_clients` for as long as the stream lives (it is dropped with it).
    let client = state.metrics.stream_opened();
    let stream = futures_util::stream::unfold((Some(ready), subscription, state.shutdown.clone(), client), move |(ready, mut subscription, mut shutdown, client)| {
        let scope = scope.clone();
        async move {
            if let Some(ready) = ready {
                return Some((Ok::<_, Infallible>(ready), (None, subscription, shutdown, client)));
            }
            loop {
                if *shutdown.borrow() {
                    return None;
                }
                tokio::select! {
                    event = subscription.recv() => {
                        let Some(event) = scope.filter_event(event?) else { continue };
                        let data = serde_json::to_string(&event).unwrap_or_else(|e| json!({ "event": "error", "message": e.to_string() }).to_string());
                        return Some((Ok(SseEvent::default().event(event_name(&event)).data(data)), (None, subscription, shutdown, client)));
                    }
                    _ = shutdown.changed() => return None,
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}
