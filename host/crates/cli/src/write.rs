//! `set`, `unset` and `overrides list|release`: runtime overrides through the library
//! (`ConfigHost::set_with`, `unset_with`, `release_overrides`), validated and recorded like any
//! other change, and who a command-line change is by.

use clap::{Args, Subcommand};
use potter_engine::ViewKey;
use serde_json::{json, Value};

use super::{Cli, Outcome};
use crate::output::{inline, OutputFormat};
use potter_config::events::ChangeOrigin;
use potter_config::runtime::SetRequest;
use potter_config::Error;

/// Who a recorded change is by, beyond the account running the command.
#[derive(Debug, Args)]
pub struct ActorArg {
    /// The person behind this change (an automation's operator), recorded as `cli:<NAME>`;
    /// default: `$USER`, `$LOGNAME`, else the operating system's account name.
    #[arg(long = "actor", env = "POTTER_ACTOR", value_name = "NAME", value_parser = actor_name)]
    pub actor: Option<String>,
}

/// An actor name: printable text (it is shown in `history` and the audit of every change).
fn actor_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() || name.chars().any(char::is_control) || name.chars().count() > 200 {
        return Err("an actor is 1 to 200 printable characters".to_owned());
    }
    Ok(name.to_owned())
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// Dotted key path, e.g. `api.rate_limit`.
    pub key: String,
    /// The value: JSON when it parses as JSON (`5000`, `true`, `{"a":1}`), else a string.
    pub value: String,
    /// Why (kept in the history).
    #[arg(long)]
    pub reason: Option<String>,
    /// Compare-and-set: fail (exit 4) if the key changed after this version.
    #[arg(long)]
    pub if_version: Option<u64>,
    #[command(flatten)]
    pub actor: ActorArg,
    #[command(flatten)]
    pub glass: BreakGlassArg,
}

#[derive(Debug, Args)]
pub struct UnsetArgs {
    /// Dotted key path of the override to remove.
    pub key: String,
    #[arg(long)]
    pub reason: Option<String>,
    #[arg(long)]
    pub if_version: Option<u64>,
    #[command(flatten)]
    pub actor: ActorArg,
    #[command(flatten)]
    pub glass: BreakGlassArg,
}

/// The way past a review policy, for emergencies.
#[derive(Debug, Args)]
pub struct BreakGlassArg {
    /// Write directly in an environment whose policy requires review (`policy.toml`): for an
    /// emergency only; the history's reason says `break-glass`. Everyone else opens a change
    /// request (`potter-config change create`).
    #[arg(long)]
    pub break_glass: bool,
}

/// The reason of a direct write of `--env`: refused where the tree's policy requires review,
/// unless it is a break-glass write, whose reason says so.
pub(crate) fn direct_write_reason(cli: &Cli, glass: &BreakGlassArg, reason: &Option<String>) -> Result<Option<String>, Error> {
    let policy = potter_config::change_requests::Policy::load(&cli.root)?;
    if !policy.check_direct_write(&cli.environment, glass.break_glass)? {
        return Ok(reason.clone());
    }
    eprintln!("warning: break-glass write in {}, which requires review; the history records it as such", cli.environment);
    Ok(Some(format!("break-glass: {}", reason.as_deref().unwrap_or("no reason given"))))
}

#[derive(Debug, Subcommand)]
pub enum OverridesCommand {
    /// The runtime overrides --env holds (each key pinned above its files), secrets redacted.
    List,
    /// Remove runtime overrides (a rollback's pins, say) from --env as ONE change: the files'
    /// values show through again.
    Release(ReleaseArgs),
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// Dotted key paths of the overrides to remove (each one must be held by --env).
    #[arg(required = true)]
    pub keys: Vec<String>,
    /// Why (kept in the history).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub actor: ActorArg,
    #[command(flatten)]
    pub glass: BreakGlassArg,
}

/// A command-line value: JSON when it parses, else the text itself.
pub fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

pub(crate) fn request(actor: &ActorArg, reason: &Option<String>, if_version: Option<u64>) -> SetRequest {
    let mut request = SetRequest::new(ChangeOrigin::Cli, cli_actor(actor.actor.as_deref()));
    request.reason = reason.clone();
    request.if_version = if_version;
    request
}

pub fn set(cli: &Cli, args: &SetArgs) -> Outcome {
    let reason = direct_write_reason(cli, &args.glass, &args.reason)?;
    let host = open_to_repair_in(cli, &cli.environment)?;
    let value = parse_value(&args.value);
    let snapshot = host.set_with(&cli.environment, &args.key, value, request(&args.actor, &reason, args.if_version))?;
    let view = snapshot.view(&ViewKey::environment(&cli.environment)).map_err(Error::from)?;
    let shown = view.get(&args.key).map(|value| potter_config::secret_values::redact(view, &args.key, &value));
    report_change(cli, "set", &args.key, shown, snapshot.version());
    Ok(())
}

pub fn unset(cli: &Cli, args: &UnsetArgs) -> Outcome {
    let reason = direct_write_reason(cli, &args.glass, &args.reason)?;
    let host = open_to_repair_in(cli, &cli.environment)?;
    let snapshot = host.unset_with(&cli.environment, &args.key, request(&args.actor, &reason, args.if_version))?;
    report_change(cli, "unset", &args.key, None, snapshot.version());
    Ok(())
}

pub fn overrides(cli: &Cli, command: &OverridesCommand) -> Outcome {
    match command {
        OverridesCommand::List => list_overrides(cli),
        OverridesCommand::Release(args) => release(cli, args),
    }
}

fn list_overrides(cli: &Cli) -> Outcome {
    let host = cli.open()?;
    let snapshot = host.snapshot();
    let view = host.options().served_view(&snapshot, &ViewKey::environment(&cli.environment))?;
    let held = potter_config::recording::flatten(&host.overrides(&cli.environment));
    let shown: serde_json::Map<String, Value> = held.iter().map(|(key, value)| (key.clone(), potter_config::secret_values::redact(view, key, value))).collect();
    if cli.format == OutputFormat::Json {
        println!("{}", json!({ "env": cli.environment, "version": snapshot.version(), "overrides": shown }));
    } else if shown.is_empty() {
        println!("no runtime overrides in {}", cli.environment);
    } else {
        println!("runtime overrides of {} (version {}):", cli.environment, snapshot.version());
        for (key, value) in &shown {
            let said = if value.is_null() { "null (deletes)".to_owned() } else { inline(value) };
            println!("  {key} = {said}");
        }
    }
    Ok(())
}

fn release(cli: &Cli, args: &ReleaseArgs) -> Outcome {
    let reason = direct_write_reason(cli, &args.glass, &args.reason)?;
    let host = open_to_repair_in(cli, &cli.environment)?;
    let snapshot = host.release_overrides(&cli.environment, &args.keys, request(&args.actor, &reason, None))?;
    if cli.format == OutputFormat::Json {
        println!("{}", json!({ "op": "release", "env": cli.environment, "keys": args.keys, "version": snapshot.version() }));
    } else {
        println!("released {} in {} (version {})", args.keys.join(", "), cli.environment, snapshot.version());
    }
    Ok(())
}

/// The host for a change of `environment`, even over an invalid configuration: the change may
/// be what repairs it (it is recorded only if every view is valid after it).
pub(crate) fn open_to_repair_in(cli: &Cli, environment: &str) -> Result<potter_config::runtime::ConfigHost, Error> {
    let (host, invalid) = cli.open_to_repair_in(environment)?;
    if let Some(report) = invalid {
        eprintln!("warning: the configuration is invalid now ({} error(s)); this change is recorded only if every view is valid after it", report.error_count());
        super::hint_overrides_behind(&host, &report);
    }
    Ok(host)
}

fn report_change(cli: &Cli, what: &str, key: &str, value: Option<Value>, version: u64) {
    if cli.format == OutputFormat::Json {
        println!("{}", json!({ "op": what, "env": cli.environment, "key": key, "value": value, "version": version }));
    } else {
        match value {
            Some(value) => println!("{what} {key} = {} in {} (version {version})", inline(&value), cli.environment),
            None => println!("{what} {key} in {} (version {version})", cli.environment),
        }
    }
}

/// The actor of a command-line change: `cli:<name>`. The name is `named` (`--actor` or
/// `POTTER_ACTOR`: the person behind an automation), else `USER`, else `LOGNAME`, else the
/// account name of the process's user from the operating system (containers, CI and systemd
/// units often set neither variable), else `uid <N>`.
pub fn cli_actor(named: Option<&str>) -> String {
    let from_environment = || ["USER", "LOGNAME"].iter().find_map(|name| std::env::var(name).ok());
    let name = named
        .map(str::to_owned)
        .or_else(from_environment)
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| whoami::username().ok().filter(|name| !name.is_empty()))
        // SAFETY: geteuid has no preconditions and cannot fail.
        .unwrap_or_else(|| format!("uid {}", unsafe { libc::geteuid() }));
    format!("cli:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_json_else_as_text() {
        assert_eq!(parse_value("5000"), json!(5000));
        assert_eq!(parse_value("{\"a\":1}"), json!({"a": 1}));
        assert_eq!(parse_value("hello world"), json!("hello world"));
    }
}
