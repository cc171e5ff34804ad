//! `rollout start|list|status|advance|abort`: progressive rollouts through the library on the
//! tree at `--root` and the state at `--state` (the same rollouts a server on that state serves at
//! `/v1/rollouts`, and whose driver steps them after their bake). The person is named as for
//! `set`. Without a running server nothing steps by itself: `advance` after the bake.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::write::{cli_actor, parse_value, ActorArg};
use super::{exit, Cli, Failure, Outcome};
use crate::output::{render, OutputFormat};
use potter_config::change_requests::Actor;
use potter_config::events::ChangeOrigin;
use potter_config::rollouts::{Cohort, Plan, Rollout, RolloutState, RolloutStore, Step};

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Start a rollout of --env: validated on every view first, then live for its first step's cohort.
    Start(StartArgs),
    /// Rollouts, newest first (every environment unless --env is given).
    List,
    /// One rollout: its step, the users the step reaches, its timeline.
    Status { id: u64 },
    /// Move a rollout to its next step (its last step: complete it), once its step baked.
    Advance {
        id: u64,
        /// Before the bake ends or past a failing gate.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        actor: ActorArg,
    },
    /// Roll a rollout back on every view.
    Abort {
        id: u64,
        /// Why (kept in the history and the rollout's timeline).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        actor: ActorArg,
    },
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The change, `KEY=VALUE` (the value is JSON when it parses as JSON, else text).
    #[arg(required = true)]
    pub edits: Vec<String>,
    /// What the change does.
    #[arg(long)]
    pub title: String,
    #[command(flatten)]
    pub strategy: StrategyArgs,
    #[command(flatten)]
    pub actor: ActorArg,
}

/// A rollout's cohort and steps (`rollout start`, `change approve --steps`).
#[derive(Debug, Args)]
pub struct StrategyArgs {
    /// The steps' shares of the cohort, percent, rising to 100 (`10,50,100`).
    #[arg(long, value_delimiter = ',')]
    pub steps: Vec<u32>,
    /// Seconds each step bakes before the next may start.
    #[arg(long, default_value_t = 600)]
    pub bake: u64,
    /// Who the steps' shares are of: `users` (the tree's users, on any host) or `instances`
    /// (the hosts of a shared store).
    #[arg(long, default_value = "users", value_parser = ["users", "instances"])]
    pub cohort: String,
    /// Only these hosts (instance ids): a share of them per step.
    #[arg(long, value_delimiter = ',', conflicts_with = "label")]
    pub instances: Vec<String>,
    /// Only the hosts with this label, `NAME=VALUE`: a share of them per step.
    #[arg(long)]
    pub label: Option<String>,
}

impl StrategyArgs {
    /// The cohort and steps given (None without `--steps`).
    pub fn strategy(&self) -> Option<(Cohort, Vec<Step>)> {
        if self.steps.is_empty() {
            return None;
        }
        let steps = self.steps.iter().map(|&percent| Step { percent, bake_seconds: self.bake }).collect();
        let cohort = match (&self.instances[..], &self.label) {
            ([_, ..], _) => Cohort::Chosen { instances: self.instances.clone() },
            (_, Some(label)) => Cohort::Label { label: label.clone() },
            _ if self.cohort == "instances" => Cohort::Instances,
            _ => Cohort::Users,
        };
        Some((cohort, steps))
    }
}

fn actor(named: &ActorArg) -> Actor {
    Actor::new(ChangeOrigin::Cli, cli_actor(named.actor.as_deref()))
}

pub fn run(cli: &Cli, command: &RolloutCommand) -> Outcome {
    match command {
        RolloutCommand::Start(args) => {
            let mut edits = Vec::new();
            for edit in &args.edits {
                let (key, value) = edit.split_once('=').ok_or_else(|| Failure { code: exit::USAGE, message: format!("`{edit}` is not KEY=VALUE") })?;
                edits.push((key.trim().to_owned(), parse_value(value)));
            }
            let (cohort, steps) = args.strategy.strategy().ok_or_else(|| Failure { code: exit::USAGE, message: "a rollout needs --steps (shares rising to 100, e.g. 10,50,100)".to_owned() })?;
            let host = super::write::open_to_repair_in(cli, &cli.environment)?;
            let plan = Plan { environment: cli.environment.clone(), title: args.title.clone(), edits, cohort, steps };
            let started = host.rollouts().start(plan, &actor(&args.actor))?;
            print_rollout(cli, &host, &started, "started");
            Ok(())
        }
        RolloutCommand::List => {
            let environment = super::history::environment_given().then_some(cli.environment.as_str());
            let host = super::write::open_to_repair_in(cli, &cli.environment)?;
            let rollouts = host.rollouts().store().list(environment)?;
            if cli.format != OutputFormat::Text {
                let list: Vec<Value> = rollouts.iter().map(|rollout| rollout_json(&host, rollout)).collect();
                println!("{}", render(&json!({ "rollouts": list }), cli.format, "rollouts").trim_end());
                return Ok(());
            }
            for rollout in &rollouts {
                println!("{:>4}  {:<12} {:<12} step {}/{} ({}%)  {}", rollout.id, rollout.state.as_str(), rollout.environment, rollout.step + 1, rollout.steps.len(), rollout.current_step().percent, rollout.title);
            }
            Ok(())
        }
        RolloutCommand::Status { id } => {
            let (host, rollout) = rollout_of(cli, *id)?;
            print_rollout(cli, &host, &rollout, "");
            Ok(())
        }
        RolloutCommand::Advance { id, force, actor: named } => {
            let (host, _) = rollout_of(cli, *id)?;
            let moved = host.rollouts().advance(*id, &actor(named), *force)?;
            print_rollout(cli, &host, &moved, if moved.state == RolloutState::Completed { "completed" } else { "advanced" });
            Ok(())
        }
        RolloutCommand::Abort { id, reason, actor: named } => {
            let (host, _) = rollout_of(cli, *id)?;
            let ended = host.rollouts().abort(*id, &actor(named), reason)?;
            print_rollout(cli, &host, &ended, "rolled back");
            Ok(())
        }
    }
}

/// A host serving the environment of rollout `id` (it validates and records there), and the rollout.
fn rollout_of(cli: &Cli, id: u64) -> Result<(potter_config::ConfigHost, Rollout), Failure> {
    let rollout = RolloutStore::open(&cli.options())?.get(id)?;
    let host = super::write::open_to_repair_in(cli, &rollout.environment)?;
    Ok((host, rollout))
}

/// The tree's users the rollout's current step reaches (none once it ended).
fn reached_users(host: &potter_config::ConfigHost, rollout: &Rollout) -> Vec<String> {
    rollout.reached_users(&host.snapshot().axes().users)
}

fn rollout_json(host: &potter_config::ConfigHost, rollout: &Rollout) -> Value {
    let mut shown = serde_json::to_value(rollout).expect("a rollout serializes");
    shown["reached_users"] = json!(reached_users(host, rollout));
    if rollout.state == RolloutState::Running {
        shown["bake_ends_at"] = json!(rollout.bake_ends_at());
    }
    shown
}

fn print_rollout(cli: &Cli, host: &potter_config::ConfigHost, rollout: &Rollout, done: &str) {
    if cli.format != OutputFormat::Text {
        println!("{}", render(&rollout_json(host, rollout), cli.format, "rollout").trim_end());
        return;
    }
    let done = if done.is_empty() { String::new() } else { format!(" {done}") };
    println!("rollout {}{done} ({}) in {}: {}", rollout.id, rollout.state, rollout.environment, rollout.title);
    let shares: Vec<String> = rollout.steps.iter().map(|step| format!("{}%", step.percent)).collect();
    println!("step {} of {} ({}), steps {}, keys {}", rollout.step + 1, rollout.steps.len(), rollout.current_step().percent, shares.join(" → "), rollout.keys().collect::<Vec<_>>().join(", "));
    if rollout.state == RolloutState::Running {
        println!("bakes until {}; reaches users: {}", rollout.bake_ends_at(), reached_users(host, rollout).join(", "));
    }
    for event in &rollout.timeline {
        let step = event.step.map(|step| format!(" step {step}")).unwrap_or_default();
        let version = event.version.map(|version| format!(" (version {version})")).unwrap_or_default();
        let note = event.note.as_deref().map(|note| format!(": {note}")).unwrap_or_default();
        println!("  {} {}{step} by {}{version}{note}", event.timestamp, event.milestone.as_str(), event.actor);
    }
}
