//! A small service that embeds potter-config the way Potter's SettingsService does.
//!
//! At start-up it opens the tree, checks every view it serves and binds its typed settings;
//! any problem (a schema violation, a file that does not parse, a value that is not of the
//! settings' type) is printed with its file:line:col and the service does not start. Running, it
//! watches the tree: a saved file changes the settings its handlers read, and each typed change
//! (or refusal) is logged and kept for `/changes.json`. Each request's environment comes from the
//! `X-Environment` header, the host name or the default, among the environments it was started for.
//!
//! Routes: `/` (a greeting read from the live settings), `/settings` (an HTML page of its own
//! settings), `/settings.json`, `/changes.json`, `/healthz`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Json};
use axum::routing::get;
use axum::Router;
use potter_config::health::Status;
use potter_config::{ConfigHost, Options, Settings, SettingsChanges, SettingsUpdate, ViewKey, WatchOptions, Watcher};
use potter_config_tower::{ChosenBy, Environment, EnvironmentLayer};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The service's API settings (`api.*`), typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiSettings {
    /// Requests per second a client may make.
    pub rate_limit: u32,
    /// How long a request may take.
    pub timeout_ms: u64,
    /// What `/` answers.
    pub greeting: String,
}

/// Feature switches (`features.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSettings {
    /// The new checkout flow.
    #[serde(default)]
    pub new_checkout: bool,
    /// A banner shown on every page.
    #[serde(default)]
    pub banner: Option<String>,
}

/// How the service was started.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// The config tree.
    pub root: PathBuf,
    /// History and keyrings (default: `.potter` beside the root).
    pub state_dir: Option<PathBuf>,
    /// The environments this process serves; no request can select another.
    pub environments: Vec<String>,
    /// The environment of a request that names none.
    pub default_environment: String,
}

/// One environment's typed settings.
struct EnvironmentSettings {
    api: Settings<ApiSettings>,
    features: Settings<FeatureSettings>,
}

/// A typed change (or refusal) the service saw, for `/changes.json`.
#[derive(Debug, Clone, Serialize)]
pub struct SeenChange {
    /// The environment.
    pub environment: String,
    /// `api` or `features`.
    pub prefix: String,
    /// `changed` or `refused`.
    pub kind: &'static str,
    /// The version that went live (or was refused for these settings).
    pub version: u64,
    /// Before and after (a change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<serde_json::Value>,
    /// After (a change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<serde_json::Value>,
    /// Why (a refusal): the serde error with file:line:col.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The running service's state.
pub struct App {
    host: ConfigHost,
    settings: BTreeMap<String, EnvironmentSettings>,
    layer: EnvironmentLayer,
    seen: Arc<Mutex<Vec<SeenChange>>>,
    // `Watcher` is Send but not Sync (notify's backend); the lock makes `App` shareable.
    _watcher: Mutex<Watcher>,
}

/// Why the service did not start: every problem found, one line each.
#[derive(Debug)]
pub struct StartupError {
    /// Each problem, naming where (file:line:col, key path, view).
    pub problems: Vec<String>,
}

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "the configuration is not usable ({} problem{}):", self.problems.len(), if self.problems.len() == 1 { "" } else { "s" })?;
        for problem in &self.problems {
            writeln!(f, "  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StartupError {}

impl App {
    /// Opens the tree, validates the views served, binds the typed settings and starts watching.
    /// Every problem is collected before giving up, so one start names them all.
    pub fn start(start: StartOptions) -> Result<Self, StartupError> {
        let mut options = Options::new(&start.root);
        if let Some(state_dir) = &start.state_dir {
            options.state_dir = state_dir.clone();
        }
        options.environments = Some(start.environments.clone());
        let host = ConfigHost::open(options).map_err(|error| StartupError { problems: error.diagnostics() })?;
        let views: Vec<ViewKey> = start.environments.iter().map(|name| ViewKey::environment(name)).collect();
        let mut problems = match host.validate_on_startup(&views) {
            Ok(_) => Vec::new(),
            Err(error) => error.diagnostics(),
        };
        let mut settings = BTreeMap::new();
        for key in &views {
            let api = host.bind::<ApiSettings>(key, "api").map_err(|error| format!("{key}: {error}"));
            let features = host.bind::<FeatureSettings>(key, "features").map_err(|error| format!("{key}: {error}"));
            match (api, features) {
                (Ok(api), Ok(features)) => {
                    settings.insert(key.environment.to_string(), EnvironmentSettings { api, features });
                }
                (api, features) => problems.extend(api.err().into_iter().chain(features.err())),
            }
        }
        let layer = EnvironmentLayer::builder(&host)
            .allow(start.environments.iter().cloned())
            .header("x-environment")
            .default_environment(start.default_environment.clone())
            .build()
            .map_err(|error| vec![error.to_string()]);
        let layer = match layer {
            Ok(layer) => Some(layer),
            Err(errors) => {
                problems.extend(errors);
                None
            }
        };
        if !problems.is_empty() {
            return Err(StartupError { problems });
        }
        let watcher = host.watch(WatchOptions::default()).map_err(|error| StartupError { problems: vec![error.to_string()] })?;
        Ok(Self { host, settings, layer: layer.expect("no problems"), seen: Arc::default(), _watcher: Mutex::new(watcher) })
    }

    /// The configuration host (for shutdown and health).
    pub fn host(&self) -> &ConfigHost {
        &self.host
    }

    /// Spawns one task per binding that logs each typed change and keeps it for `/changes.json`.
    /// Needs a tokio runtime.
    pub fn follow_changes(&self) {
        for (environment, settings) in &self.settings {
            tokio::spawn(follow(environment.clone(), settings.api.clone(), self.seen.clone()));
            tokio::spawn(follow(environment.clone(), settings.features.clone(), self.seen.clone()));
        }
    }

    /// The service's routes, behind the environment layer.
    pub fn router(self: Arc<Self>) -> Router {
        let layer = self.layer.clone();
        Router::new()
            .route("/", get(hello))
            .route("/settings", get(settings_page))
            .route("/settings.json", get(settings_json))
            .route("/changes.json", get(changes_json))
            .route("/healthz", get(health))
            .layer(layer)
            .with_state(self)
    }

    fn settings_of(&self, environment: &Environment) -> &EnvironmentSettings {
        // The layer only ever chooses an environment the service was started for, and each has settings.
        &self.settings[environment.name()]
    }
}

async fn follow<T: Serialize + DeserializeOwned + Send + Sync + 'static>(environment: String, settings: Settings<T>, seen: Arc<Mutex<Vec<SeenChange>>>) {
    let mut changes: SettingsChanges<T> = settings.changes();
    let prefix = settings.prefix();
    while let Some(update) = changes.recv().await {
        let change = match update {
            SettingsUpdate::Changed { version, old, new } => {
                tracing::info!(%environment, prefix, version, old = ?serde_json::to_value(&*old).ok(), new = ?serde_json::to_value(&*new).ok(), "settings changed");
                SeenChange { environment: environment.clone(), prefix: prefix.to_owned(), kind: "changed", version, old: serde_json::to_value(&*old).ok(), new: serde_json::to_value(&*new).ok(), message: None }
            }
            SettingsUpdate::Refused(refusal) => {
                // Logged by the library already; kept here so the page can show it.
                SeenChange { environment: environment.clone(), prefix: prefix.to_owned(), kind: "refused", version: refusal.version, old: None, new: None, message: Some(refusal.message) }
            }
        };
        seen.lock().unwrap_or_else(|p| p.into_inner()).push(change);
    }
}

async fn hello(State(app): State<Arc<App>>, Extension(environment): Extension<Environment>) -> String {
    let settings = app.settings_of(&environment);
    let api = settings.api.load();
    match &**settings.features.load() {
        FeatureSettings { banner: Some(banner), .. } => format!("{} [{banner}]\n", api.greeting),
        _ => format!("{}\n", api.greeting),
    }
}

#[derive(Serialize)]
struct SettingsBody {
    environment: String,
    chosen_by: &'static str,
    version: u64,
    api: Arc<ApiSettings>,
    features: Arc<FeatureSettings>,
}

fn settings_body(app: &App, environment: &Environment) -> SettingsBody {
    let settings = app.settings_of(environment);
    let chosen_by = match environment.chosen_by() {
        ChosenBy::Header => "header",
        ChosenBy::HostName => "host name",
        ChosenBy::Default => "default",
    };
    SettingsBody { environment: environment.name().to_owned(), chosen_by, version: settings.api.version().max(settings.features.version()), api: settings.api.get(), features: settings.features.get() }
}

async fn settings_json(State(app): State<Arc<App>>, Extension(environment): Extension<Environment>) -> Json<SettingsBody> {
    Json(settings_body(&app, &environment))
}

async fn settings_page(State(app): State<Arc<App>>, Extension(environment): Extension<Environment>) -> Html<String> {
    let body = settings_body(&app, &environment);
    let rows = [
        ("api.rate_limit", body.api.rate_limit.to_string()),
        ("api.timeout_ms", body.api.timeout_ms.to_string()),
        ("api.greeting", body.api.greeting.clone()),
        ("features.new_checkout", body.features.new_checkout.to_string()),
        ("features.banner", body.features.banner.clone().unwrap_or_else(|| "(none)".to_owned())),
    ];
    let rows: String = rows.iter().map(|(key, value)| format!("<tr><th>{}</th><td>{}</td></tr>\n", escape(key), escape(value))).collect();
    Html(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>settings: {env}</title></head><body>\n<h1>Settings of {env}</h1>\n<p>version {version}, environment chosen by {chosen}</p>\n<table>\n{rows}</table>\n</body></html>\n",
        env = escape(&body.environment),
        version = body.version,
        chosen = body.chosen_by,
    ))
}

async fn changes_json(State(app): State<Arc<App>>) -> Json<Vec<SeenChange>> {
    Json(app.seen.lock().unwrap_or_else(|p| p.into_inner()).clone())
}

/// 200 while the service can take traffic (the configuration live is valid, even when a change
/// was refused: that is `degraded`), 503 once it reported itself unhealthy (say, while draining).
async fn health(State(app): State<Arc<App>>) -> impl IntoResponse {
    let health = app.host.health();
    let status = if health.status == Status::Unhealthy { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (status, Json(health))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// docs/EMBEDDING.md's snippets, compiled and run as doctests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/EMBEDDING.md")]
pub struct EmbeddingGuide;
