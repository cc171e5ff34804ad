//! History commands: `set`, `unset`, `history [show|prune]`, `diff`, `rollback`.
//!
//! Every change goes through the library (`ConfigHost::set_with`, `edit_overrides`), so it is
//! validated and recorded like any other. Values shown from the history pass through
//! [`potter_config::history::shown`]: secrets print as `<redacted>`.

use clap::{Args, Subcommand};
use potter_engine::ViewKey;
use potter_history::{HistoryQuery, HistoryStore, Record, Retention, StoredValue};
use serde_json::{json, Value};

use super::{Cli, Outcome};
use potter_config::Error;
use potter_config::events::ChangeOrigin;
use potter_config::history as hist;
use crate::output::{inline, render, OutputFormat};
use potter_config::runtime::SetRequest;

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
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HistoryArgs {
    #[command(subcommand)]
    pub command: Option<HistoryCommand>,
    /// Only records that changed a key starting with this text.
    #[arg(long = "key")]
    pub key_prefix: Option<String>,
    /// Only records at or after this time: RFC 3339 (`2026-11-27T12:00:00Z`), milliseconds since
    /// the epoch, or an age (`30s`, `10m`, `2h`, `7d`).
    #[arg(long)]
    pub since: Option<String>,
    /// Only records by this actor (`cli:alice`, `file-watch`).
    #[arg(long)]
    pub actor: Option<String>,
    /// At most this many records (newest first).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// One record: who, when, why, and every changed key before → after (secrets redacted).
    Show { version: u64 },
    /// Drop old payloads (values), keeping every audit line (who, when, which keys).
    Prune {
        #[arg(long, conflicts_with = "keep_versions", required_unless_present = "keep_versions")]
        keep_days: Option<u32>,
        #[arg(long)]
        keep_versions: Option<u64>,
    },
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    pub version_a: u64,
    pub version_b: u64,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The version whose content the environment's view goes back to.
    pub version: u64,
    /// Show what would change (and check it validates) without applying it.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub actor: ActorArg,
}

fn view_key(cli: &Cli) -> ViewKey {
    ViewKey::new(&cli.environment, cli.service.as_deref(), cli.user.as_deref())
}

/// A command-line value: JSON when it parses, else the text itself.
pub fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn request(actor: &ActorArg, reason: &Option<String>, if_version: Option<u64>) -> SetRequest {
    let mut request = SetRequest::new(ChangeOrigin::Cli, cli_actor(actor.actor.as_deref()));
    request.reason = reason.clone();
    request.if_version = if_version;
    request
}

pub fn set(cli: &Cli, args: &SetArgs) -> Outcome {
    let host = cli.open()?;
    let value = parse_value(&args.value);
    let snapshot = host.set_with(&cli.environment, &args.key, value, request(&args.actor, &args.reason, args.if_version))?;
    let view = snapshot.view(&ViewKey::environment(&cli.environment)).map_err(Error::from)?;
    let shown = view.get(&args.key).map(|value| potter_config::secrets::redact(view, &args.key, &value));
    report_change(cli, "set", &args.key, shown, snapshot.version());
    Ok(())
}

pub fn unset(cli: &Cli, args: &UnsetArgs) -> Outcome {
    let host = cli.open()?;
    let snapshot = host.unset_with(&cli.environment, &args.key, request(&args.actor, &args.reason, args.if_version))?;
    report_change(cli, "unset", &args.key, None, snapshot.version());
    Ok(())
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

/// Whether `--env` (or `POTTER_ENV`) was given: `history` lists every environment otherwise.
fn environment_given() -> bool {
    std::env::var_os("POTTER_ENV").is_some() || std::env::args().any(|arg| arg == "--env" || arg.starts_with("--env="))
}

fn store(cli: &Cli) -> Result<Option<potter_history::SqliteStore>, Error> {
    hist::open_existing(&cli.options().state_dir)
}

pub fn history(cli: &Cli, args: &HistoryArgs) -> Outcome {
    match &args.command {
        Some(HistoryCommand::Show { version }) => show(cli, *version),
        Some(HistoryCommand::Prune { keep_days, keep_versions }) => prune(cli, *keep_days, *keep_versions),
        None => list(cli, args),
    }
}

fn list(cli: &Cli, args: &HistoryArgs) -> Outcome {
    let mut query = HistoryQuery::new().limit(args.limit);
    if environment_given() {
        query = query.env(cli.environment.clone());
    }
    if let Some(prefix) = &args.key_prefix {
        query = query.key_prefix(prefix.clone());
    }
    if let Some(actor) = &args.actor {
        query = query.actor(actor.clone());
    }
    if let Some(since) = &args.since {
        query = query.since_ms(parse_since(since).map_err(|message| super::Failure { code: super::exit::USAGE, message })?);
    }
    let records = match store(cli)? {
        Some(store) => store.query(&query).map_err(Error::from)?,
        None => Vec::new(),
    };
    if cli.format == OutputFormat::Json {
        let rows: Vec<Value> = records.iter().map(audit_line).collect();
        println!("{}", render(&Value::Array(rows), OutputFormat::Json, "history"));
    } else if records.is_empty() {
        println!("no recorded changes match");
    } else {
        for record in &records {
            let reason = record.reason.as_deref().map(|r| format!("  \"{r}\"")).unwrap_or_default();
            println!(
                "v{:<5} {}  {:<16} {:<8} {:<12} {}{}",
                record.version,
                record.timestamp_rfc3339(),
                record.actor,
                record.origin,
                record.env,
                summarize_keys(&record.keys),
                reason
            );
        }
    }
    Ok(())
}

fn summarize_keys(keys: &[String]) -> String {
    const SHOWN: usize = 4;
    let mut text = keys.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if keys.len() > SHOWN {
        text.push_str(&format!(" (+{} more)", keys.len() - SHOWN));
    }
    text
}

fn audit_line(record: &Record) -> Value {
    potter_config::history::audit_line(record, &record.keys)
}

fn shown_opt(value: &Option<StoredValue>) -> Value {
    value.as_ref().map(hist::shown).unwrap_or(Value::Null)
}

fn show(cli: &Cli, version: u64) -> Outcome {
    let record = store(cli)?.map(|store| store.get(version)).transpose().map_err(Error::from)?.flatten();
    let Some(record) = record else {
        return Err(Error::NotFound(format!("history version {version}")).into());
    };
    let changes: Vec<Value> = record
        .payload
        .iter()
        .flat_map(|payload| &payload.changes)
        .map(|change| json!({ "key": change.key, "before": shown_opt(&change.before), "after": shown_opt(&change.after) }))
        .collect();
    let overrides: Vec<Value> = record
        .payload
        .iter()
        .flat_map(|payload| &payload.override_ops)
        .map(|op| match op {
            potter_history::OverrideOp::Set { key, value } => json!({ "set": key, "value": hist::shown(value) }),
            potter_history::OverrideOp::Remove { key } => json!({ "remove": key }),
        })
        .collect();
    if cli.format == OutputFormat::Json {
        let mut document = audit_line(&record);
        document["changes"] = Value::Array(changes);
        document["overrides"] = Value::Array(overrides);
        println!("{}", render(&document, OutputFormat::Json, "record"));
        return Ok(());
    }
    println!("version {}  {}  by {} ({})  in {}", record.version, record.timestamp_rfc3339(), record.actor, record.origin, record.env);
    if let Some(reason) = &record.reason {
        println!("reason: {reason}");
    }
    if record.is_pruned() {
        println!("values pruned; changed keys: {}", record.keys.join(", "));
        return Ok(());
    }
    for change in &changes {
        println!("  {}: {} -> {}", change["key"].as_str().unwrap_or_default(), describe(&change["before"]), describe(&change["after"]));
    }
    for op in &overrides {
        match (op.get("set"), op.get("remove")) {
            (Some(key), _) => println!("  override set {} = {}", key.as_str().unwrap_or_default(), inline(&op["value"])),
            (_, Some(key)) => println!("  override removed {}", key.as_str().unwrap_or_default()),
            _ => {}
        }
    }
    Ok(())
}

fn describe(value: &Value) -> String {
    if value.is_null() {
        "(absent)".to_owned()
    } else {
        inline(value)
    }
}

fn prune(cli: &Cli, keep_days: Option<u32>, keep_versions: Option<u64>) -> Outcome {
    let retention = match (keep_days, keep_versions) {
        (Some(days), _) => Retention::KeepDays(days),
        (None, Some(versions)) => Retention::KeepVersions(versions),
        (None, None) => unreachable!("clap requires one of --keep-days and --keep-versions"),
    };
    let Some(store) = store(cli)? else {
        println!("no history yet; nothing to prune");
        return Ok(());
    };
    let report = store.prune(retention).map_err(Error::from)?;
    if cli.format == OutputFormat::Json {
        println!("{}", json!({ "pruned_through": report.pruned_through, "records_pruned": report.records_pruned }));
    } else {
        println!("dropped the values of {} record(s); payloads up to version {} are pruned (audit lines kept)", report.records_pruned, report.pruned_through);
    }
    Ok(())
}

fn print_differences(differences: &[hist::LeafDifference]) {
    if differences.is_empty() {
        println!("  (no differences)");
    }
    for d in differences {
        println!("  {}: {} -> {}", d.key, describe(&shown_opt(&d.from)), describe(&shown_opt(&d.to)));
    }
}

pub fn diff(cli: &Cli, args: &DiffArgs) -> Outcome {
    let key = view_key(cli);
    let host = cli.open()?;
    let leaves = hist::leaves_at_versions(&host, &key, &[args.version_a, args.version_b])?;
    let differences = hist::leaf_differences(&leaves[0], &leaves[1]);
    if cli.format == OutputFormat::Json {
        let document = json!({
            "view": key.to_string(),
            "a": { "version": args.version_a, "config": hist::redacted_tree(&leaves[0]) },
            "b": { "version": args.version_b, "config": hist::redacted_tree(&leaves[1]) },
            "changes": hist::differences_json(&differences),
        });
        println!("{}", render(&document, OutputFormat::Json, "diff"));
    } else {
        println!("{} from version {} to version {}:", key, args.version_a, args.version_b);
        print_differences(&differences);
    }
    Ok(())
}

pub fn rollback(cli: &Cli, args: &RollbackArgs) -> Outcome {
    let host = cli.open()?;
    let rollback = hist::rollback(&host, &cli.environment, args.version, request(&args.actor, &args.reason, None), args.dry_run)?;
    let outcome = match (rollback.differences.is_empty(), args.dry_run) {
        (true, _) => "nothing to change",
        (false, true) => "dry run, validates",
        (false, false) => "applied",
    };
    if cli.format == OutputFormat::Json {
        println!(
            "{}",
            json!({ "env": cli.environment, "to_version": args.version, "dry_run": args.dry_run, "outcome": outcome, "version": rollback.applied, "changes": hist::differences_json(&rollback.differences) })
        );
    } else {
        println!("rollback of {} to version {} ({outcome}):", cli.environment, args.version);
        print_differences(&rollback.differences);
        if let Some(version) = rollback.applied {
            println!("applied as version {version}");
        }
    }
    Ok(())
}

/// `--since`: RFC 3339 UTC, milliseconds since the epoch, or an age like `10m`.
pub fn parse_since(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    if let Some(unit) = text.chars().last().filter(|c| "smhd".contains(*c)) {
        if let Ok(amount) = text[..text.len() - 1].parse::<i64>() {
            let seconds = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3_600,
                _ => 86_400,
            };
            return Ok(now_ms - amount * seconds * 1000);
        }
    }
    parse_rfc3339_utc(text).ok_or_else(|| format!("--since `{text}`: expected RFC 3339 UTC (2026-11-27T12:00:00Z), milliseconds since the epoch, or an age (30s, 10m, 2h, 7d)"))
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` or a date `YYYY-MM-DD`, as ms since the epoch.
fn parse_rfc3339_utc(text: &str) -> Option<i64> {
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((date, time)) => (date, Some(time.strip_suffix('Z').or_else(|| time.strip_suffix("+00:00"))?)),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let (year, month, day): (i64, i64, i64) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    if let Some(time) = time {
        let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
        let mut fields = clock.split(':');
        let (h, m, s): (i64, i64, i64) = (fields.next()?.parse().ok()?, fields.next()?.parse().ok()?, fields.next()?.parse().ok()?);
        if fields.next().is_some() || h > 23 || m > 59 || s > 60 {
            return None;
        }
        let millis: i64 = if fraction.is_empty() { 0 } else { format!("{:0<3}", &fraction[..fraction.len().min(3)]).parse().ok()? };
        ms += ((h * 60 + m) * 60 + s) * 1000 + millis;
    }
    Some(ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_rfc3339_dates_and_epoch_milliseconds() {
        assert_eq!(parse_since("1970-01-02T00:00:01.5Z"), Ok(86_401_500));
        assert_eq!(parse_since("2000-03-01"), Ok(951_868_800_000));
        assert_eq!(parse_since("12345"), Ok(12345));
        assert!(parse_since("yesterday").is_err());
    }

    #[test]
    fn values_parse_as_json_else_as_text() {
        assert_eq!(parse_value("5000"), json!(5000));
        assert_eq!(parse_value("{\"a\":1}"), json!({"a": 1}));
        assert_eq!(parse_value("hello world"), json!("hello world"));
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
