//! `change create|list|show|approve|reject|withdraw`: change requests through the library on the
//! tree at `--root` and the state at `--state` (the same requests a server on that state serves
//! at `/v1/changes`). The person is named as for `set` (`--actor`, `POTTER_ACTOR`, `$USER`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::write::{cli_actor, parse_value, ActorArg};
use super::{exit, Cli, Failure, Outcome};
use crate::output::{inline, render, OutputFormat};
use potter_config::change_requests::{merge_patch_edits, Actor, ChangeRequest, ChangeRequests, Draft, KeyDiff, Release, RequestState, RequestStore, Standing};
use potter_config::events::ChangeOrigin;

#[derive(Debug, Subcommand)]
pub enum ChangeCommand {
    /// Draft a change request for --env: validated on every view it reaches, live only once approved.
    Create(CreateArgs),
    /// Change requests, newest first (every environment unless --env is given).
    List {
        /// Only requests in this state: open, approved, published, rejected or withdrawn (`--status`,
        /// as the global `--state` names the state directory).
        #[arg(long, value_name = "STATE", value_parser = parse_state)]
        status: Option<RequestState>,
    },
    /// One request: its diff against the current values (rebased) or the keys that moved under it.
    Show { id: u64 },
    /// Approve a request and publish it at once as one new version, or as a rollout (`--steps`).
    Approve {
        id: u64,
        /// With `--steps`: publish as a progressive rollout (docs/ROLLOUT.md).
        #[command(flatten)]
        rollout: super::rollout::StrategyArgs,
        #[command(flatten)]
        actor: ActorArg,
    },
    /// Reject a request; nothing changes.
    Reject {
        id: u64,
        /// Why (kept with the request).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        actor: ActorArg,
    },
    /// Withdraw your own request; nothing changes.
    Withdraw {
        id: u64,
        #[command(flatten)]
        actor: ActorArg,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Edits `KEY=VALUE`: the value is JSON when it parses as JSON, else text; `KEY=null`
    /// removes the override.
    pub edits: Vec<String>,
    /// More edits as a JSON Merge Patch, as `PATCH /v1/config/{env}` takes (`null` removes).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// What the change does, for its reviewers.
    #[arg(long)]
    pub title: String,
    #[command(flatten)]
    pub actor: ActorArg,
}

fn parse_state(text: &str) -> Result<RequestState, String> {
    text.parse()
}

fn usage(message: String) -> Failure {
    Failure { code: exit::USAGE, message }
}

fn actor(named: &ActorArg) -> Actor {
    Actor::new(ChangeOrigin::Cli, cli_actor(named.actor.as_deref()))
}

pub fn run(cli: &Cli, command: &ChangeCommand) -> Outcome {
    match command {
        ChangeCommand::Create(args) => create(cli, args),
        ChangeCommand::List { status } => {
            let environment = super::history::environment_given().then_some(cli.environment.as_str());
            let requests = RequestStore::open(&cli.options())?.list(environment, *status)?;
            print_list(cli, &requests);
            Ok(())
        }
        ChangeCommand::Show { id } => {
            let standing = requests_of(cli, *id)?.show(*id)?;
            print_standing(cli, &standing);
            Ok(())
        }
        ChangeCommand::Approve { id, rollout, actor: named } => {
            let release = match rollout.strategy() {
                Some((cohort, steps)) => Release::Rollout { cohort, steps },
                None => Release::AtOnce,
            };
            let published = requests_of(cli, *id)?.approve(*id, &actor(named), release)?;
            let how = published.timeline.last().and_then(|event| event.note.clone()).map(|note| format!(" {note}")).unwrap_or_default();
            print_outcome(cli, &published, &format!("approved and published as version {}{how}", published.published_version.unwrap_or_default()));
            Ok(())
        }
        ChangeCommand::Reject { id, reason, actor: named } => {
            let rejected = requests_of(cli, *id)?.reject(*id, &actor(named), reason)?;
            print_outcome(cli, &rejected, "rejected; nothing changed");
            Ok(())
        }
        ChangeCommand::Withdraw { id, actor: named } => {
            let withdrawn = requests_of(cli, *id)?.withdraw(*id, &actor(named))?;
            print_outcome(cli, &withdrawn, "withdrawn; nothing changed");
            Ok(())
        }
    }
}

/// The requests over a host of the environment of request `id` (it validates and publishes there).
fn requests_of(cli: &Cli, id: u64) -> Result<ChangeRequests, Failure> {
    let store = RequestStore::open(&cli.options())?;
    let environment = store.get(id)?.environment;
    let host = super::write::open_to_repair_in(cli, &environment)?;
    Ok(ChangeRequests::new(host, store))
}

fn create(cli: &Cli, args: &CreateArgs) -> Outcome {
    let mut edits = Vec::new();
    for edit in &args.edits {
        let (key, value) = edit.split_once('=').ok_or_else(|| usage(format!("`{edit}` is not KEY=VALUE")))?;
        let value = parse_value(value);
        edits.push((key.trim().to_owned(), (!value.is_null()).then_some(value)));
    }
    if let Some(file) = &args.file {
        let text = potter_files::read_regular_to_string(file, potter_config::source::tree::MAX_FILE_BYTES).map_err(|e| usage(e.to_string()))?;
        let patch: Map<String, Value> = serde_json::from_str(&text).map_err(|e| usage(format!("{}: not a JSON object (a merge patch): {e}", file.display())))?;
        edits.extend(merge_patch_edits(&patch).map_err(|message| usage(format!("{}: {message}", file.display())))?);
    }
    let host = super::write::open_to_repair_in(cli, &cli.environment)?;
    let draft = Draft { environment: cli.environment.clone(), title: args.title.clone(), edits };
    let created = host.change_requests().create(draft, &actor(&args.actor))?;
    if cli.format == OutputFormat::Text {
        println!("change request {} drafted in {} on version {}: {}", created.id, created.environment, created.base, created.title);
        print_diff(&created.diff);
        println!("publish with: potter-config change approve {} (by someone else where review is required)", created.id);
    } else {
        println!("{}", render(&request_json(&created, &created.diff, &[]), cli.format, "change").trim_end());
    }
    Ok(())
}

fn request_json(request: &ChangeRequest, diff: &[KeyDiff], extra: &[(&str, Value)]) -> Value {
    let mut shown = json!({
        "id": request.id,
        "env": request.environment,
        "title": request.title,
        "author": request.author,
        "base": request.base,
        "state": request.state,
        "keys": request.keys(),
        "diff": diff,
        "approver": request.approver(),
        "published_version": request.published_version,
        "timeline": request.timeline,
    });
    for (name, value) in extra {
        shown[*name] = value.clone();
    }
    shown
}

fn print_diff(diff: &[KeyDiff]) {
    for change in diff {
        println!("  {}: {} -> {}", change.key, inline(&change.current), inline(&change.proposed));
    }
}

fn print_list(cli: &Cli, requests: &[ChangeRequest]) {
    if cli.format != OutputFormat::Text {
        let list: Vec<Value> = requests.iter().map(|request| request_json(request, &request.diff, &[])).collect();
        println!("{}", render(&json!({ "requests": list }), cli.format, "requests").trim_end());
        return;
    }
    for request in requests {
        println!("{:>4}  {:<10} {:<12} {:<20} {}", request.id, request.state.as_str(), request.environment, request.author, request.title);
    }
}

fn print_standing(cli: &Cli, standing: &Standing) {
    let request = &standing.request;
    if cli.format != OutputFormat::Text {
        let extra = [("rebased", json!(standing.rebased)), ("conflicts", json!(standing.conflicts)), ("problems", json!(standing.problems))];
        println!("{}", render(&request_json(request, &standing.diff, &extra), cli.format, "change").trim_end());
        return;
    }
    println!("change request {} ({}) in {}: {}", request.id, request.state, request.environment, request.title);
    println!("author {}, drafted on version {}", request.author, request.base);
    if standing.rebased {
        println!("rebased: the configuration moved on after version {}, not on these keys; the diff is against the current values", request.base);
    }
    print_diff(&standing.diff);
    for conflict in &standing.conflicts {
        println!("conflict: `{}` changed after version {} (`{}` at version {}); an approval is refused", conflict.key, request.base, conflict.changed, conflict.version);
    }
    for problem in &standing.problems {
        println!("invalid now: {problem}");
    }
    for event in &request.timeline {
        let version = event.version.map(|v| format!(" as version {v}")).unwrap_or_default();
        let note = event.note.as_deref().map(|note| format!(": {note}")).unwrap_or_default();
        println!("  {} {} by {}{version}{note}", event.timestamp, event.milestone.as_str(), event.actor);
    }
}

fn print_outcome(cli: &Cli, request: &ChangeRequest, what: &str) {
    if cli.format == OutputFormat::Text {
        println!("change request {} in {} {what}", request.id, request.environment);
    } else {
        println!("{}", render(&request_json(request, &request.diff, &[]), cli.format, "change").trim_end());
    }
}
