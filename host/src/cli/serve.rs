//! `potter-config serve`: the host over HTTP (see docs/API.md).

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use super::{Cli, Failure, Outcome};
use crate::api::{self, Role, TokenStore};
use crate::error::Error;
use crate::runtime::ConfigHost;
use crate::watch::WatchOptions;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:7700")]
    pub listen: SocketAddr,
    /// Create (or replace) the admin token `dev` for every environment and print it (development only).
    #[arg(long)]
    pub dev_token: bool,
}

fn failure(code: u8, message: impl Into<String>) -> Failure {
    Failure { code, message: message.into() }
}

pub fn run(cli: &Cli, args: &ServeArgs) -> Outcome {
    let options = cli.options();
    let host = ConfigHost::open(options.clone())?;
    let serves_production = host.snapshot().axes().environments.iter().any(|e| &**e == potter_plugin::PRODUCTION);
    if cli.allow_unsigned && serves_production {
        return Err(Error::UnsignedRefused { reason: "serve exposes every environment, production included".to_owned() }.into());
    }
    let tokens = TokenStore::open(&options.state_dir).map_err(|e| failure(super::exit::INVALID, e.to_string()))?;
    if args.dev_token {
        let token = tokens.create("dev", Role::Admin, vec![api::tokens::ALL_ENVIRONMENTS.to_owned()], None, true).map_err(|e| failure(super::exit::INVALID, e.to_string()))?;
        println!("development token (admin, every environment; `token revoke dev` to remove): {token}");
    }
    // File saves go live while serving; dropping the watcher at the end stops it.
    let _watcher = host.watch(WatchOptions::default())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| failure(super::exit::INVALID, format!("cannot start the server runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| failure(super::exit::USAGE, format!("cannot listen on {}: {e}", args.listen)))?;
        let bound = listener.local_addr().map_err(|e| failure(super::exit::INVALID, e.to_string()))?;
        println!("listening on http://{bound}");
        let _ = std::io::stdout().flush();
        api::serve(listener, host, Arc::new(tokens), api::shutdown_signal()).await.map_err(|e| failure(super::exit::INVALID, format!("server failed: {e}")))
    })
}
