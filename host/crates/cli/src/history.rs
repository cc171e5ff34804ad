//! History commands: `history [show|prune]`, `diff`, `rollback` (`set`/`unset`/`overrides` are in `write`).
//!
//! A rollback goes through the library (`timeline::rollback`, which ends in `edit_overrides`), so it
//! is validated and recorded like any other change. Values shown from the history pass through
//! [`potter_config::timeline::shown`]: secrets print as `<redacted>`.

use clap::{Args, Subcommand};
use potter_engine::ViewKey;
use potter_history::{HistoryQuery, HistoryStore, Retention};
use serde_json::{json, Value};

use super::write::{request, ActorArg};
use super::{Cli, Outcome};
use crate::output::{inline, render, OutputFormat};
use potter_config::timeline::{self as hist, Difference, RecordSummary, ShownChange, ShownOverride};
use potter_config::Error;

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
    #[command(flatten)]
    pub glass: super::write::BreakGlassArg,
}

fn view_key(cli: &Cli) -> ViewKey {
    ViewKey::new(&cli.environment, cli.service.as_deref(), cli.user.as_deref())
}

/// Whether `--env` (or `POTTER_ENV`) was given: `history` lists every environment otherwise.
pub(crate) fn environment_given() -> bool {
    std::env::var_os("POTTER_ENV").is_some() || std::env::args().any(|arg| arg == "--env" || arg.starts_with("--env="))
}

fn store(cli: &Cli) -> Result<Option<std::sync::Arc<dyn HistoryStore>>, Error> {
    potter_config::recording::open_store(&cli.options())
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
        let rows: Vec<RecordSummary> = records.iter().map(|record| RecordSummary::of(record, record.keys.clone())).collect();
        println!("{}", render(&json!(rows), OutputFormat::Json, "history"));
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

/// `history show --format json`: the summary with every key change and override operation.
#[derive(serde::Serialize)]
struct RecordShown<'r> {
    #[serde(flatten)]
    summary: RecordSummary,
    changes: &'r [ShownChange],
    overrides: &'r [ShownOverride],
}

fn show(cli: &Cli, version: u64) -> Outcome {
    let record = store(cli)?.map(|store| store.get(version)).transpose().map_err(Error::from)?.flatten();
    let Some(record) = record else {
        return Err(Error::NotFound(format!("history version {version}")).into());
    };
    let changes: Vec<ShownChange> = record.payload.iter().flat_map(|payload| &payload.changes).map(|change| ShownChange::new(&change.key, &change.before, &change.after)).collect();
    let overrides: Vec<ShownOverride> = record.payload.iter().flat_map(|payload| &payload.override_ops).map(ShownOverride::of).collect();
    if cli.format == OutputFormat::Json {
        let document = RecordShown { summary: RecordSummary::of(&record, record.keys.clone()), changes: &changes, overrides: &overrides };
        println!("{}", render(&json!(document), OutputFormat::Json, "record"));
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
        println!("  {}: {} -> {}", change.key, describe(&change.before), describe(&change.after));
    }
    for op in &overrides {
        match op {
            ShownOverride::Set { set, value } => println!("  override set {set} = {}", inline(value)),
            ShownOverride::Remove { remove } => println!("  override removed {remove}"),
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
    for d in differences.iter().map(Difference::of) {
        println!("  {}: {} -> {}", d.key, describe(&d.from), describe(&d.to));
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
            "changes": Difference::all(&differences),
        });
        println!("{}", render(&document, OutputFormat::Json, "diff"));
    } else {
        println!("{} from version {} to version {}:", key, args.version_a, args.version_b);
        print_differences(&differences);
    }
    Ok(())
}

pub fn rollback(cli: &Cli, args: &RollbackArgs) -> Outcome {
    // A rollback is a direct write: where review is required it takes `--break-glass` (a dry run does not).
    let reason = match args.dry_run {
        true => args.reason.clone(),
        false => super::write::direct_write_reason(cli, &args.glass, &Some(args.reason.clone().unwrap_or_else(|| format!("rollback to version {}", args.version))))?,
    };
    let host = cli.open()?;
    let rollback = hist::rollback(&host, &cli.environment, args.version, request(&args.actor, &reason, None), args.dry_run)?;
    let outcome = rollback.outcome(args.dry_run);
    if cli.format == OutputFormat::Json {
        println!(
            "{}",
            json!({
                "env": cli.environment,
                "to_version": args.version,
                "dry_run": args.dry_run,
                "outcome": outcome,
                "version": rollback.applied,
                "changes": Difference::all(&rollback.differences),
                "pinned": rollback.pinned,
                "released": rollback.released,
            })
        );
    } else {
        println!("rollback of {} to version {} ({outcome}):", cli.environment, args.version);
        print_differences(&rollback.differences);
        if !rollback.released.is_empty() {
            println!("released runtime overrides (these keys follow the files again): {}", rollback.released.join(", "));
        }
        if !rollback.pinned.is_empty() {
            println!("pinned as runtime overrides (the files give another value now): {}", rollback.pinned.join(", "));
            println!("  release a pin with: potter-config --env {} overrides release KEY...", cli.environment);
        }
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

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` (or `+00:00`, or a space for the `T`) or a date `YYYY-MM-DD`, as
/// ms since the epoch. Only UTC: an offset other than zero is refused rather than converted.
fn parse_rfc3339_utc(text: &str) -> Option<i64> {
    let moment = match text.split_once(['T', ' ']) {
        Some((date, time)) => {
            let time = time.strip_suffix('Z').or_else(|| time.strip_suffix("+00:00"))?;
            chrono::NaiveDateTime::parse_from_str(&format!("{date}T{time}"), "%Y-%m-%dT%H:%M:%S%.f").ok()?
        }
        None => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?.and_time(chrono::NaiveTime::MIN),
    };
    Some(moment.and_utc().timestamp_millis())
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
}
