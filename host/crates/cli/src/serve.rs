//! `potter-config serve`: the host over HTTP (see docs/API.md).

use std::io::Write as _;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{Cli, Failure, Outcome};
use potter_server::{self as api, Role, TokenStore};
use potter_config::Error;
use potter_config::runtime::ConfigHost;
use potter_config::watch::WatchOptions;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub listen: SocketAddr,
    /// Create (or replace) the admin token `dev` for every environment and print it (development only).
    #[arg(long)]
    pub dev_token: bool,
    /// Requests per second each token may make (0: unlimited); anonymous callers share one
    /// allowance, as do unknown tokens. Over it: 429 with `Retry-After`.
    #[arg(long, default_value_t = DEFAULT_RATE_LIMIT, value_name = "N")]
    pub rate_limit: u32,
    /// Requests a token may make at once above its rate (default: one second's worth, N).
    #[arg(long, value_name = "N")]
    pub rate_burst: Option<u32>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// This host's id in the instance registry of a shared store (default `<host name>-<pid>`).
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,
    /// A label of this host in the instance registry, `name=value` (repeat for more): what a
    /// rollout's label cohort selects.
    #[arg(long = "label", value_name = "NAME=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// The address peers and tools should use for this host in the instance registry (default:
    /// the bound address; give it when listening on 0.0.0.0 or behind a proxy).
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// Seconds a registry entry outlives this host if it stops without withdrawing it (killed).
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub instance_ttl: u64,
}

/// Requests per second per token unless `--rate-limit` says otherwise: far above what a service
/// polling its configuration needs, low enough that one runaway client cannot starve the others.
pub const DEFAULT_RATE_LIMIT: u32 = 1_000;

fn failure(code: u8, message: impl Into<String>) -> Failure {
    Failure { code, message: message.into() }
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() && !value.trim().is_empty() => Ok((name.trim().to_owned(), value.trim().to_owned())),
        _ => Err(format!("`{text}` is not NAME=VALUE")),
    }
}

pub fn run(cli: &Cli, args: &ServeArgs) -> Outcome {
    let mut options = cli.options();
    // Who this host is among a fleet's: its registry entry, and what rollout cohorts select.
    options.instance_id = args.instance_id.clone();
    options.instance_labels = args.labels.iter().cloned().collect();
    // Checked once at start-up so a malformed review policy is not first found by a write.
    potter_config::change_requests::Policy::load(&options.root)?;
    let host = ConfigHost::open(options.clone())?;
    let serves_production = host.snapshot().axes().environments.iter().any(|e| &**e == potter_plugin::PRODUCTION);
    if cli.allow_unsigned && serves_production {
        return Err(Error::UnsignedRefused { reason: "serve exposes every environment, production included".to_owned() }.into());
    }
    // With a shared store every host accepts the same tokens.
    let tokens = match host.shared_documents() {
        Some(shared) => TokenStore::open_shared(shared),
        None => TokenStore::open(&options.state_dir),
    }
    .map_err(|e| failure(super::exit::INVALID, e.to_string()))?;
    if args.dev_token {
        let token = tokens.create("dev", Role::Admin, vec![api::tokens::ALL_ENVIRONMENTS.to_owned()], None, true).map_err(|e| failure(super::exit::INVALID, e.to_string()))?;
        // The server ignores SIGPIPE (see `cli::main`): a closed stdout must not stop it.
        let _ = writeln!(std::io::stdout(), "development token (admin, every environment; `token revoke dev` to remove): {token}");
    }
    let rate_limit = NonZeroU32::new(args.rate_limit).map(|per_second| api::RateLimit {
        per_second,
        burst: args.rate_burst.and_then(NonZeroU32::new).unwrap_or(per_second),
    });
    // The audit log lives in the history database of the state directory (shared with the recorder).
    let audit = host.audit_log()?;
    let settings = api::Settings { rate_limit, audit: Some(api::AuditLog::new(audit)) };
    // File saves go live while serving; dropping the watcher at the end stops it.
    let watcher = host.watch(WatchOptions::default())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| failure(super::exit::INVALID, format!("cannot start the server runtime: {e}")))?;
    let served = runtime.block_on(async move {
        let cannot_listen = |e: std::io::Error| failure(super::exit::USAGE, format!("cannot listen on {}: {e}", args.listen));
        let (listener, scheme, bound) = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => {
                let tls = api::tls_config(cert, key).await.map_err(|e| failure(super::exit::USAGE, e.to_string()))?;
                let listener = std::net::TcpListener::bind(args.listen).map_err(cannot_listen)?;
                let bound = listener.local_addr().map_err(|e| failure(super::exit::INVALID, e.to_string()))?;
                (api::Listener::Https { listener, tls }, "https", bound)
            }
            _ => {
                let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(cannot_listen)?;
                let bound = listener.local_addr().map_err(|e| failure(super::exit::INVALID, e.to_string()))?;
                (api::Listener::Http(listener), "http", bound)
            }
        };
        let stop = api::shutdown_signal();
        let address = args.advertise.clone().unwrap_or_else(|| bound.to_string());
        if let Some(id) = host.register_instance(None, Some(address), Duration::from_secs(args.instance_ttl))? {
            let _ = writeln!(std::io::stdout(), "registered as instance {id}");
        }
        let registered = host.clone();
        let _ = writeln!(std::io::stdout(), "listening on {scheme}://{bound}");
        let _ = std::io::stdout().flush();
        let served = api::serve(listener, host, Arc::new(tokens), settings, stop).await.map_err(|e| failure(super::exit::INVALID, format!("server failed: {e}")));
        // A clean stop leaves the registry at once (a killed host drops out after the TTL).
        if let Err(error) = registered.withdraw_instance() {
            tracing::warn!(%error, "could not withdraw this host from the instance registry");
        }
        served
    });
    // Work still running past the grace (a request or reload inside a plugin call, bounded by
    // the plugin's limit) is not waited for: the process ends, and what it had not acknowledged
    // was never acknowledged.
    runtime.shutdown_background();
    drop_within(watcher, STOP_WATCHER_WAIT);
    served
}

/// How long stopping the file watcher may take at shutdown (it may be inside a reload).
const STOP_WATCHER_WAIT: Duration = Duration::from_millis(500);

/// Drops `value` on a thread of its own and waits for that at most `wait`.
fn drop_within<T: Send + 'static>(value: T, wait: Duration) {
    let (done, finished) = std::sync::mpsc::channel();
    let dropping = std::thread::Builder::new().name("potter-stop".into()).spawn(move || {
        drop(value);
        let _ = done.send(());
    });
    if dropping.is_ok() {
        let _ = finished.recv_timeout(wait);
    }
}
