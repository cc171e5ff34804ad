//! The HTTP API that `potter-config serve` runs: JSON over axum, bearer tokens, role-based access.
//!
//! [`router`] builds the routes over a running [`ConfigHost`]; [`serve`] runs them on a listener
//! until a shutdown signal, ending live change streams so the shutdown is not held up by them, and
//! giving requests in flight [`SHUTDOWN_GRACE`] to finish.

mod console_assets;
mod error;
pub mod gate;
mod handlers;
pub mod metrics;
pub mod scope;
pub mod openapi;
pub mod rbac;
pub mod tokens;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

use potter_config::runtime::ConfigHost;
pub use console_assets::{embedded_bytes as console_embedded_bytes, CONTENT_SECURITY_POLICY_VALUE as CONSOLE_CONTENT_SECURITY_POLICY};
pub use error::{ApiError, ApiResult};
#[doc(hidden)]
pub use handlers::read_request_bodies;
pub use gate::{AuditLog, RateLimit};
pub use rbac::{Action, Principal, Role};
pub use tokens::{TokenError, TokenRecord, TokenStore};

/// Largest request body accepted (larger: 413).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long requests in flight may still take once a shutdown signal came. A write can be
/// waiting for a reload that is inside a plugin call (bounded by the plugin's time limit, up to
/// 10 s); shutdown does not wait for it. Such a request gets no answer, and so was never
/// acknowledged: a change is acknowledged only once recorded.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(1000);

/// How often the rollout driver looks at the running rollouts (bake ends, health gates).
pub const ROLLOUT_DRIVER_PERIOD: Duration = Duration::from_millis(250);

/// The header that names the environment where a route does not.
pub const ENVIRONMENT_HEADER: &str = "x-potter-environment";

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub(crate) host: ConfigHost,
    pub(crate) tokens: Arc<TokenStore>,
    /// Becomes `true` when the server shuts down (ends change streams).
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) limiter: Option<Arc<gate::Limiter>>,
    /// None: nothing is audited (only when the server runs without a state directory's database).
    pub(crate) audit: Option<AuditLog>,
    pub(crate) metrics: Arc<metrics::Metrics>,
    /// The tree's review policy, consulted by every direct write (parsed once per file version).
    pub(crate) policy: Arc<potter_config::change_requests::PolicyFile>,
}

/// How the server treats callers beyond their tokens.
#[derive(Clone, Default)]
pub struct Settings {
    /// None: unlimited.
    pub rate_limit: Option<RateLimit>,
    pub audit: Option<AuditLog>,
}

/// Every route of the API over `host`, authenticating with `tokens`. Change streams end when
/// `shutdown` turns true (or its sender is dropped). Call it inside a tokio runtime: it starts the
/// task that counts change outcomes for `/metrics`.
pub fn router(host: ConfigHost, tokens: Arc<TokenStore>, shutdown: watch::Receiver<bool>, settings: Settings) -> Router {
    let limiter = settings.rate_limit.map(|limit| Arc::new(gate::Limiter::new(limit)));
    let metrics = Arc::new(metrics::Metrics::new());
    tokio::spawn(metrics.clone().count_outcomes(host.outcomes()));
    let policy = Arc::new(potter_config::change_requests::PolicyFile::new(&host.options().root));
    let state = ApiState { host, tokens, shutdown, limiter, audit: settings.audit, metrics, policy };
    Router::new()
        .route("/v1/health", get(handlers::meta::health))
        .route("/v1/openapi.json", get(handlers::meta::openapi))
        .route("/v1/environments", get(handlers::meta::environments))
        .route("/v1/config", get(handlers::config::config_from_header))
        .route("/v1/config/{env}", get(handlers::config::config).patch(handlers::config::patch_config))
        .route("/v1/config/{env}/{*key}", get(handlers::config::get_key).put(handlers::config::put_key).delete(handlers::config::delete_key))
        .route("/v1/overrides/{env}/release", post(handlers::config::release_overrides))
        .route("/v1/explain/{env}/{*key}", get(handlers::explain::explain))
        .route("/v1/validate", post(handlers::explain::validate))
        .route("/v1/watch/{env}", get(handlers::watch::watch))
        .route("/v1/schemas", get(handlers::meta::schemas))
        .route("/v1/history", get(handlers::history::history))
        .route("/v1/history/{version}", get(handlers::history::history_version))
        .route("/v1/rollback", post(handlers::history::rollback))
        .route("/v1/plugins", get(handlers::plugins::plugins))
        .route("/v1/audit", get(handlers::audit::audit))
        .route("/v1/changes", get(handlers::changes::list).post(handlers::changes::create))
        .route("/v1/changes/{id}", get(handlers::changes::show))
        .route("/v1/changes/{id}/approve", post(handlers::changes::approve))
        .route("/v1/changes/{id}/reject", post(handlers::changes::reject))
        .route("/v1/changes/{id}/withdraw", post(handlers::changes::withdraw))
        .route("/v1/rollouts", get(handlers::rollouts::list).post(handlers::rollouts::start))
        .route("/v1/rollouts/{id}", get(handlers::rollouts::status))
        .route("/v1/rollouts/{id}/advance", post(handlers::rollouts::advance))
        .route("/v1/rollouts/{id}/abort", post(handlers::rollouts::abort))
        .route("/v1/instances", get(handlers::instances::instances))
        .route("/v1/instances/self/health", post(handlers::rollouts::report_health))
        .route("/metrics", get(handlers::meta::metrics))
        .merge(handlers::console::routes())
        .merge(console_assets::routes())
        .fallback(handlers::unknown_route)
        .method_not_allowed_fallback(handlers::wrong_method)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), gate::gate))
        // Outermost, so rate-limited and refused requests are counted too.
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::measure))
        .with_state(state)
}

/// Where `serve` listens: plain HTTP, or HTTPS with a certificate chain and key (PEM files).
pub enum Listener {
    Http(tokio::net::TcpListener),
    Https { listener: std::net::TcpListener, tls: axum_server::tls_rustls::RustlsConfig },
}

/// Reads a PEM certificate chain and private key for HTTPS; the error names the files.
pub async fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> std::io::Result<axum_server::tls_rustls::RustlsConfig> {
    axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("TLS certificate {} / key {}: {e}", cert.display(), key.display())))
}

/// Serves the API on `listener` until `signal` completes, then stops accepting, ends the change
/// streams and waits for the requests in flight, at most [`SHUTDOWN_GRACE`].
pub async fn serve(listener: Listener, host: ConfigHost, tokens: Arc<TokenStore>, settings: Settings, signal: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    // Rollouts step by themselves after their bake and roll back on a failing gate while a server runs.
    tokio::spawn(handlers::rollouts::drive(host.clone(), ROLLOUT_DRIVER_PERIOD, stopped.clone()));
    let app = router(host, tokens, stopped.clone(), settings);
    let served = serve_until(listener, app, stop, signal);
    tokio::select! {
        served = served => served,
        () = grace_after(stopped) => {
            tracing::warn!(grace_ms = SHUTDOWN_GRACE.as_millis() as u64, "requests still in flight at shutdown were not waited for");
            Ok(())
        }
    }
}

/// Completes [`SHUTDOWN_GRACE`] after `stopped` turns true.
async fn grace_after(mut stopped: watch::Receiver<bool>) {
    if stopped.wait_for(|stopping| *stopping).await.is_err() {
        // The server ended without a signal: its own result decides.
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(SHUTDOWN_GRACE).await;
}

async fn serve_until(listener: Listener, app: Router, stop: watch::Sender<bool>, signal: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    match listener {
        Listener::Http(listener) => {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    signal.await;
                    let _ = stop.send(true);
                })
                .await
        }
        Listener::Https { listener, tls } => {
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                signal.await;
                let _ = stop.send(true);
                // Like plain HTTP: stop accepting, let requests in flight finish.
                stopper.graceful_shutdown(None);
            });
            axum_server::from_tcp_rustls(listener, tls)?.handle(handle).serve(app.into_make_service()).await
        }
    }
}

/// Completes on ctrl-c or SIGTERM. The handlers are installed at once (call it inside the runtime
/// before announcing the address), so a signal that comes right after start-up is not missed.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    let received = |stream: Option<tokio::signal::unix::Signal>| async move {
        match stream {
            Some(mut stream) => {
                stream.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    async move {
        tokio::select! {
            () = received(interrupt) => {},
            () = received(terminate) => {},
        }
    }
}
