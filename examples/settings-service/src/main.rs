//! `settings-service --root DIR --environments production,staging [--default production]
//!  [--listen 127.0.0.1:8080] [--state-dir DIR] [--drain-ms 0]`
//!
//! Prints `listening on http://ADDR` once it accepts connections. Exits 2 when the configuration
//! is not usable (each problem on stderr). On SIGTERM or Ctrl-C it reports itself unhealthy (so a
//! load balancer polling `/healthz` stops sending traffic), waits `--drain-ms`, then stops.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use settings_service::{App, StartOptions};

struct Args {
    start: StartOptions,
    listen: SocketAddr,
    drain: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut root = None;
    let mut state_dir = None;
    let mut environments = None;
    let mut default_environment = None;
    let mut listen: SocketAddr = "127.0.0.1:8080".parse().expect("literal");
    let mut drain = Duration::ZERO;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--root" => root = Some(PathBuf::from(value()?)),
            "--state-dir" => state_dir = Some(PathBuf::from(value()?)),
            "--environments" => environments = Some(value()?.split(',').map(str::trim).filter(|name| !name.is_empty()).map(str::to_owned).collect::<Vec<_>>()),
            "--default" => default_environment = Some(value()?),
            "--listen" => listen = value()?.parse().map_err(|error| format!("--listen: {error}"))?,
            "--drain-ms" => drain = Duration::from_millis(value()?.parse().map_err(|error| format!("--drain-ms: {error}"))?),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let environments: Vec<String> = environments.ok_or("--environments is required (the environments this service serves)")?;
    let default_environment = default_environment.or_else(|| environments.first().cloned()).ok_or("--environments names no environment")?;
    Ok(Args { start: StartOptions { root: root.ok_or("--root is required")?, state_dir, environments, default_environment }, listen, drain })
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("settings-service: {message}");
            std::process::exit(64);
        }
    };
    let app = match App::start(args.start) {
        Ok(app) => Arc::new(app),
        Err(error) => {
            eprint!("settings-service: {error}");
            std::process::exit(2);
        }
    };
    app.follow_changes();
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("settings-service: cannot listen on {}: {error}", args.listen);
            std::process::exit(1);
        }
    };
    let address = listener.local_addr().expect("bound");
    println!("listening on http://{address}");
    let _ = std::io::stdout().flush();
    let host = app.host().clone();
    let drain = args.drain;
    let shutdown = async move {
        shutdown_signal().await;
        host.report_unhealthy("shutting down");
        tokio::time::sleep(drain).await;
    };
    if let Err(error) = axum::serve(listener, app.router()).with_graceful_shutdown(shutdown).await {
        eprintln!("settings-service: {error}");
        std::process::exit(1);
    }
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
