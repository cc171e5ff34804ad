//! What `GET /metrics` reports, in the Prometheus text format (OpenMetrics 1.0, as
//! `prometheus-client` encodes it): the live version, requests and their latency by route
//! template and status, open change streams, the changes applied by origin and refused by origin
//! and cause, history commit latency, and each plugin's calls, time-outs, traps and memory-limit
//! stops.
//!
//! The counting lives here, not in the library: the library only publishes what became of each
//! change ([`potter_config::Outcomes`]) and keeps each plugin's call counts, and
//! [`Metrics::count_outcomes`] and [`Metrics::render`] turn those into metrics.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use potter_config::{Outcome, Outcomes};
use potter_plugin::CallCounts;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
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
struct OriginLabels {
    origin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    origin: String,
    cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

/// The server's metrics, registered once per router.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
    stream_clients: Gauge,
    version: Gauge,
    applied: Family<OriginLabels, Counter>,
    refused: Family<RefusalLabels, Counter>,
    missed: Counter,
    commit_latency: Histogram,
    plugin_calls: Arc<PluginCalls>,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … about 16 s: a cached read to a write waiting for a plugin's time limit.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn commit_histogram() -> Histogram {
    // 0.1 ms … about 3 s: a group commit to SQLite on a fast disk to an etcd quorum under load.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("potter");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let stream_clients = Gauge::default();
        let version = Gauge::default();
        let applied = Family::<OriginLabels, Counter>::default();
        let refused = Family::<RefusalLabels, Counter>::default();
        let missed = Counter::default();
        let commit_latency = commit_histogram();
        let plugin_calls = Arc::new(PluginCalls::default());
        registry.register("config_version", "The live configuration's version (one version spans every environment)", version.clone());
        registry.register("http_requests", "HTTP requests answered, by method, route template and status", requests.clone());
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its answer's headers, by method, route template and status",
            prometheus_client::registry::Unit::Seconds,
            latency.clone(),
        );
        registry.register("watch_clients", "Open change streams (GET /v1/watch/{env})", stream_clients.clone());
        registry.register("changes_applied", "Changes that went live, by origin (file, cli, api, plugin, rollback)", applied.clone());
        registry.register(
            "changes_refused",
            "Changes refused (the previous configuration stayed live) and source failures whose last good output was kept, by origin and cause (parse, validation, plugin, secrets, store, other)",
            refused.clone(),
        );
        registry.register("change_outcomes_missed", "Change outcomes the metrics fell too far behind to count", missed.clone());
        registry.register_with_unit(
            "history_commit_duration",
            "Time from a change's record being queued to its being durable in the history store",
            prometheus_client::registry::Unit::Seconds,
            commit_latency.clone(),
        );
        registry.register_collector(Box::new(plugin_calls.clone()));
        Self { registry, requests, latency, stream_clients, version, applied, refused, missed, commit_latency, plugin_calls }
    }

    /// Counts every change's outcome until the host is gone (run on its own task).
    pub async fn count_outcomes(self: Arc<Self>, mut outcomes: Outcomes) {
        while let Some(outcome) = outcomes.recv().await {
            match outcome {
                Outcome::Applied { origin, recorded_in, .. } => {
                    self.applied.get_or_create(&OriginLabels { origin: origin.as_str().to_owned() }).inc();
                    if let Some(recorded_in) = recorded_in {
                        self.commit_latency.observe(recorded_in.as_secs_f64());
                    }
                }
                Outcome::Refused { origin, refused_by } => {
                    self.refused.get_or_create(&RefusalLabels { origin: origin.as_str().to_owned(), cause: refused_by.as_str().to_owned() }).inc();
                }
                Outcome::Missed(missed) => {
                    self.missed.inc_by(missed);
                }
            }
        }
    }

    /// The text a scrape gets, with the live `version` and each loaded plugin's call counts.
    pub fn render(&self, version: u64, plugins: Vec<(String, CallCounts)>) -> String {
        self.version.set(i64::try_from(version).unwrap_or(i64::MAX));
        *self.plugin_calls.latest.lock().unwrap_or_else(|p| p.into_inner()) = plugins;
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
    let labels = RequestLabels { method, route, status };
    state.metrics.latency.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    state.metrics.requests.get_or_create(&labels).inc();
    response
}

/// Each loaded plugin's call counts as of the scrape: the plugin host keeps the counts (they
/// start again at 0 when a new version of a plugin loads, which Prometheus reads as a reset).
#[derive(Debug, Default)]
struct PluginCalls {
    latest: Mutex<Vec<(String, CallCounts)>>,
}

impl Collector for PluginCalls {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        let families: [(&str, &str, fn(&CallCounts) -> u64); 4] = [
            ("plugin_calls", "Calls into each plugin since it was loaded", |c| c.calls),
            ("plugin_timeouts", "Plugin calls stopped at the plugin's time limit", |c| c.timeouts),
            ("plugin_traps", "Plugin calls that trapped", |c| c.traps),
            ("plugin_memory_limits", "Plugin calls stopped at the plugin's memory limit", |c| c.memory_limits),
        ];
        for (name, help, count) in families {
            let counter_type = ConstCounter::new(0u64).metric_type();
            let mut family = encoder.encode_descriptor(name, help, None, counter_type)?;
            for (plugin, counts) in latest.iter() {
                ConstCounter::new(count(counts)).encode(family.encode_family(&PluginLabels { plugin: plugin.clone() })?)?;
            }
        }
        Ok(())
    }
}
