//! What `GET /metrics` reports, in the Prometheus text format (OpenMetrics 1.0, as
//! `prometheus-client` encodes it): the live version, requests and their latency by route
//! template, open change streams, and the changes applied and refused by origin.
//!
//! The counting lives here, not in the library: the library only publishes what became of each
//! change ([`potter_config::Outcomes`]), and [`Metrics::count_outcomes`] turns that into counters.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use potter_config::{Outcome, Outcomes};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::ApiState;

/// The content type of the answer: the OpenMetrics text format Prometheus scrapes natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The route label of a request that matched no route (so unknown paths cannot grow the label set).
const UNMATCHED_ROUTE: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginLabels {
    origin: String,
}

/// The server's metrics, registered once per router.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    stream_clients: Gauge,
    version: Gauge,
    applied: Family<OriginLabels, Counter>,
    refused: Family<OriginLabels, Counter>,
    missed: Counter,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … about 16 s: a cached read to a write waiting for a plugin's time limit.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("potter");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let stream_clients = Gauge::default();
        let version = Gauge::default();
        let applied = Family::<OriginLabels, Counter>::default();
        let refused = Family::<OriginLabels, Counter>::default();
        let missed = Counter::default();
        registry.register("config_version", "The live configuration's version (one version spans every environment)", version.clone());
        registry.register("http_requests", "HTTP requests answered, by method, route template and status", requests.clone());
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its answer's headers, by method and route template",
            prometheus_client::registry::Unit::Seconds,
            latency.clone(),
        );
        registry.register("watch_clients", "Open change streams (GET /v1/watch/{env})", stream_clients.clone());
        registry.register("changes_applied", "Changes that went live, by origin (file, cli, api, plugin, rollback)", applied.clone());
        registry.register("changes_refused", "Changes refused (the previous configuration stayed live), by origin", refused.clone());
        registry.register("change_outcomes_missed", "Change outcomes the metrics fell too far behind to count", missed.clone());
        Self { registry, requests, latency, stream_clients, version, applied, refused, missed }
    }

    /// Counts every change's outcome until the host is gone (run on its own task).
    pub async fn count_outcomes(self: Arc<Self>, mut outcomes: Outcomes) {
        while let Some(outcome) = outcomes.recv().await {
            match outcome {
                Outcome::Applied { origin, .. } => self.applied.get_or_create(&OriginLabels { origin: origin.as_str().to_owned() }).inc(),
                Outcome::Refused { origin } => self.refused.get_or_create(&OriginLabels { origin: origin.as_str().to_owned() }).inc(),
                Outcome::Missed(missed) => self.missed.inc_by(missed),
            };
        }
    }

    /// The text a scrape gets, with the live `version`.
    pub fn render(&self, version: u64) -> String {
        self.version.set(i64::try_from(version).unwrap_or(i64::MAX));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }

    /// Held by an open change stream: counted while it lives.
    pub fn stream_opened(self: &Arc<Self>) -> StreamClient {
        self.stream_clients.inc();
        StreamClient(self.clone())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// One open change stream; dropping it (the stream ended or the client left) uncounts it.
pub struct StreamClient(Arc<Metrics>);

impl Drop for StreamClient {
    fn drop(&mut self) {
        self.0.stream_clients.dec();
    }
}

/// The middleware: counts each request by its route template and times it.
pub async fn measure(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request.extensions().get::<MatchedPath>().map_or(UNMATCHED_ROUTE, MatchedPath::as_str).to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    state.metrics.latency.get_or_create(&RouteLabels { method: method.clone(), route: route.clone() }).observe(started.elapsed().as_secs_f64());
    state.metrics.requests.get_or_create(&RequestLabels { method, route, status }).inc();
    response
}
