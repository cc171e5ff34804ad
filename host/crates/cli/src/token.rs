//! `potter-config token create|list|revoke`: the API's bearer tokens (only hashes are stored).

use serde_json::json;

use super::{Cli, Failure, Outcome};
use potter_server::{Role, TokenStore};
use crate::output::{render, OutputFormat};

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = role_parser())]
        role: Role,
        /// The environments the token may use, comma separated (`staging,production`; `'*'`: all).
        /// Required here, after `create`: the global `--env` (and POTTER_ENV) never scope a token,
        /// so a forgotten flag cannot silently make a development-only token.
        #[arg(id = "environment", long = "env", required = true, value_name = "E1,E2")]
        environments: String,
        /// Only keys under this dotted prefix.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// List tokens (names, roles, scopes; never the tokens).
    List,
    /// Remove a token; a running server refuses it from the next request on.
    Revoke { name: String },
}

fn store(cli: &Cli) -> Result<TokenStore, Failure> {
    let options = cli.options();
    match potter_config::recording::HistoryDatabase::open(&options)?.documents() {
        Some(shared) => TokenStore::open_shared(shared).map_err(failure),
        None => TokenStore::open(&options.state_dir).map_err(failure),
    }
}

fn failure(error: potter_server::TokenError) -> Failure {
    let code = match error {
        potter_server::TokenError::Unknown(_) => super::exit::NOT_FOUND,
        potter_server::TokenError::Io { .. } | potter_server::TokenError::Unreadable(_) | potter_server::TokenError::Malformed { .. } | potter_server::TokenError::Random(_) | potter_server::TokenError::Shared { .. } => super::exit::INVALID,
        _ => super::exit::USAGE,
    };
    Failure { code, message: error.to_string() }
}

pub fn run(cli: &Cli, command: &TokenCommand) -> Outcome {
    let store = store(cli)?;
    match command {
        TokenCommand::Create { name, role, environments, prefix } => {
            let environments = environments.split(',').map(str::to_owned).collect();
            let token = store.create(name, *role, environments, prefix.clone(), false).map_err(failure)?;
            println!("{token}");
            eprintln!("token `{name}` created; it is shown only now (the file {} keeps only its hash)", store.path().display());
        }
        TokenCommand::List => {
            let records = store.records().map_err(failure)?;
            if cli.format == OutputFormat::Text {
                for r in &records {
                    println!("{:<20} {:<14} env={:<30} prefix={}", r.name, r.role.as_str(), r.environments.join(","), r.prefix.as_deref().unwrap_or("*"));
                }
            } else {
                let list: Vec<_> = records.iter().map(|r| json!({"name": r.name, "role": r.role, "environments": r.environments, "prefix": r.prefix, "created": r.created})).collect();
                println!("{}", render(&json!({ "tokens": list }), cli.format, "tokens").trim_end());
            }
        }
        TokenCommand::Revoke { name } => {
            store.revoke(name).map_err(failure)?;
            println!("token `{name}` revoked");
        }
    }
    Ok(())
}

/// `--role`: the server's roles, listed in `--help` and checked by clap.
fn role_parser() -> impl clap::builder::TypedValueParser<Value = Role> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Role::ALL.map(Role::as_str)).map(|name| name.parse::<Role>().expect("a listed role"))
}
