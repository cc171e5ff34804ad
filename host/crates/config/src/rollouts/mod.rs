//! Progressive rollouts (docs/ROLLOUT.md, "Progressive rollout"): a change of one environment's
//! runtime overrides that reaches a cohort first, step by step, and rolls back by itself when a
//! gate fails.
//!
//! Starting validates the change on every view it can reach (a dry run of the whole change as
//! runtime overrides), records the rollout in its document and stages its first step. Each step
//! is ONE change through the host's commit path (origin `rollout`, the actor and the step in its
//! reason): the document says the step, and the build stages the rollout's values on the views
//! the step reaches ([`crate::source::rollout`]). The last advance completes it: its values become
//! runtime overrides for every view and it stops being staged, in one change. A rollback
//! unstages it, also in one change, with its reason in the history.
//!
//! The steps are the document's (read by every process at every take-in of recorded changes),
//! so a server that restarts resumes from the recorded step, its bake counted from when that
//! step started. Roles (editor to start and abort, admin to force a step) are the server's to check.

mod document;

use crate::documents::timestamp;

use potter_engine::ViewKey;
use serde_json::Value;

pub use document::{Cohort, Rollout, RolloutEdit, RolloutError, RolloutEvent, RolloutMilestone, RolloutState, RolloutStore, Step};

use crate::change_requests::Actor;
use crate::error::Error;
use crate::events::ChangeOrigin;
use crate::runtime::{ConfigHost, SetRequest};

/// Most steps a rollout may have.
const MAX_STEPS: usize = 20;

/// The actor of what the driver does by itself (a step after its bake, a gate's rollback).
pub const DRIVER: &str = "rollout driver";

/// A rollout to start: its environment, title, change (key → value) and strategy.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The environment.
    pub environment: String,
    /// What it does.
    pub title: String,
    /// The change: dotted key → value (a secret as its ciphertext). Removals are not rolled out
    /// (a cohort cannot be shown "no override"): remove an override with a normal change.
    pub edits: Vec<(String, Value)>,
    /// Who it reaches first.
    pub cohort: Cohort,
    /// The steps, shares rising to 100.
    pub steps: Vec<Step>,
}

/// What the driver did to a running rollout in one pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Driven {
    /// Its bake ended and it moved on (or completed).
    Advanced(Rollout),
    /// A gate failed and it rolled back.
    RolledBack(Rollout),
}

/// The rollouts of a host: start, advance, abort, and the driver's pass.
pub struct Rollouts {
    host: ConfigHost,
    store: RolloutStore,
}

impl ConfigHost {
    /// The rollouts of this host's tree, kept where its history is.
    pub fn rollouts(&self) -> Rollouts {
        Rollouts { store: RolloutStore::over(self.shared_documents(), &self.options().state_dir), host: self.clone() }
    }
}

impl Rollouts {
    /// Where the rollouts are kept.
    pub fn store(&self) -> &RolloutStore {
        &self.store
    }

    /// Starts a rollout on its first step: refused unless the plan is sound, the change validates
    /// on every view it can reach, the host is healthy and no running rollout of the environment
    /// covers one of its keys.
    pub fn start(&self, plan: Plan, actor: &Actor) -> Result<Rollout, Error> {
        check_plan(&plan)?;
        if !self.host.options().history {
            return Err(RolloutError::Plan("the history (each step is recorded): this host runs without it".to_owned()).into());
        }
        self.host.options().check_served(&self.host.snapshot(), &ViewKey::environment(&plan.environment))?;
        if let Some(unhealthy) = self.host.reported_unhealthy() {
            return Err(RolloutError::Plan(format!("a healthy host (it reports: {})", unhealthy.reason)).into());
        }
        let registry = registered(&self.host)?;
        if plan.cohort.of_instances() && registry.is_none() {
            return Err(RolloutError::Plan("the shared store's instance registry for an instance cohort (`--store etcd://…`); on one host, roll out to a share of users".to_owned()).into());
        }
        if let Some(sick) = registry.iter().flatten().find(|host| host.unhealthy.is_some()) {
            return Err(RolloutError::Plan(format!("healthy hosts (instance `{}` reports: {})", sick.id, sick.unhealthy.as_deref().unwrap_or(""))).into());
        }
        // Refused before the (slower) validation, and checked again where the start is written.
        check_no_overlap(&self.store.list(Some(&plan.environment))?, &plan)?;
        let as_overrides: Vec<(String, Option<Value>)> = plan.edits.iter().map(|(key, value)| (key.clone(), Some(value.clone()))).collect();
        self.host.edit_overrides(&plan.environment, &as_overrides, SetRequest::new(actor.origin, "rollout (dry run)"), true)?;
        let now = now_ms();
        let started = self.store.edit(|document| {
            check_no_overlap(&document.rollouts, &plan)?;
            document.last_id += 1;
            let mut rollout = Rollout {
                id: document.last_id,
                environment: plan.environment.clone(),
                title: plan.title.trim().to_owned(),
                author: actor.name.clone(),
                edits: plan.edits.iter().map(|(key, value)| RolloutEdit { key: key.clone(), value: value.clone() }).collect(),
                cohort: plan.cohort.clone(),
                steps: plan.steps.clone(),
                step: 0,
                started_unix_ms: now,
                step_started_unix_ms: now,
                state: RolloutState::Running,
                timeline: vec![event(RolloutMilestone::Started, &actor.name, Some(1), None)],
                members: Vec::new(),
            };
            rollout.members = members(&rollout, registry.as_deref());
            document.rollouts.push(rollout.clone());
            Ok(rollout)
        })?;
        tracing::info!(id = started.id, environment = %started.environment, author = %started.author, "rollout started");
        self.publish(started, actor, &[])
    }

    /// Moves rollout `id` to its next step (its last: completes it). Refused while the step
    /// bakes or the host reports itself unhealthy, unless `force` (an admin's).
    pub fn advance(&self, id: u64, actor: &Actor, force: bool) -> Result<Rollout, Error> {
        let unhealthy = self.host.reported_unhealthy().map(|unhealthy| unhealthy.reason);
        let registry = registered(&self.host)?;
        let now = now_ms();
        let mut completes = false;
        let moved = self.store.update(id, |rollout| {
            rollout.ensure_running("advanced")?;
            let baking = now < rollout.bake_ends_unix_ms();
            if !force {
                if let Some(reason) = &unhealthy {
                    return Err(RolloutError::Plan(format!("a healthy host to advance (it reports: {reason}); the driver rolls it back, or an admin forces the step")).into());
                }
                if baking {
                    return Err(RolloutError::Baking { id, step: rollout.step + 1, until: rollout.bake_ends_at() }.into());
                }
            }
            let milestone = if force && (baking || unhealthy.is_some()) { RolloutMilestone::Forced } else { RolloutMilestone::Advanced };
            completes = rollout.on_last_step();
            if completes {
                rollout.state = RolloutState::Completed;
                rollout.timeline.push(event(RolloutMilestone::Completed, &actor.name, Some(rollout.step + 1), None));
            } else {
                rollout.step += 1;
                rollout.step_started_unix_ms = now;
                rollout.members = members(rollout, registry.as_deref());
                rollout.timeline.push(event(milestone, &actor.name, Some(rollout.step + 1), None));
            }
            Ok(())
        })?;
        let edits: Vec<(String, Option<Value>)> = match completes {
            true => moved.edits.iter().map(|edit| (edit.key.clone(), Some(edit.value.clone()))).collect(),
            false => Vec::new(),
        };
        self.publish(moved, actor, &edits)
    }

    /// Rolls rollout `id` back on every view, with `reason` in the history.
    pub fn abort(&self, id: u64, actor: &Actor, reason: &str) -> Result<Rollout, Error> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(RolloutError::Plan("a reason to be rolled back".to_owned()).into());
        }
        let ended = self.store.update(id, |rollout| {
            rollout.ensure_running("rolled back")?;
            rollout.state = RolloutState::RolledBack;
            rollout.timeline.push(event(RolloutMilestone::RolledBack, &actor.name, Some(rollout.step + 1), Some(reason.to_owned())));
            Ok(())
        })?;
        tracing::warn!(id, environment = %ended.environment, actor = %actor.name, reason, "rollout rolled back");
        self.publish(ended, actor, &[])
    }

    /// One pass of the driver (a server runs it every 250 ms): a running rollout rolls back when
    /// a gate fails (this host's report since it started; on a shared store, the registry's), and
    /// moves on when its step baked.
    pub fn drive(&self) -> Result<Vec<Driven>, Error> {
        // Every running rollout is staged by every host once its start's record is taken in: with
        // none staged there is nothing to drive, and the document is not read.
        if !self.host.stages_rollouts() {
            return Ok(Vec::new());
        }
        let driver = Actor::new(ChangeOrigin::Rollout, DRIVER);
        let unhealthy = self.host.reported_unhealthy();
        let running: Vec<Rollout> = self.store.list(None)?.into_iter().rev().filter(|rollout| rollout.state == RolloutState::Running).collect();
        if running.is_empty() {
            return Ok(Vec::new());
        }
        let registry = registered(&self.host)?;
        let mut driven = Vec::new();
        for rollout in running {
            if !self.host.options().serves(&rollout.environment) {
                continue;
            }
            let failed = match &unhealthy {
                Some(unhealthy) if unhealthy.since_unix_ms as i64 >= rollout.started_unix_ms => Some(format!("health gate: the host reported itself unhealthy ({})", unhealthy.reason)),
                _ => registry.as_deref().and_then(|registry| fleet_gate(&rollout, registry)),
            };
            let outcome = match failed {
                Some(reason) => self.abort(rollout.id, &driver, &reason).map(Driven::RolledBack),
                None if now_ms() >= rollout.bake_ends_unix_ms() => self.advance(rollout.id, &driver, false).map(Driven::Advanced),
                None => continue,
            };
            match outcome {
                Ok(done) => driven.push(done),
                // Someone else moved it meanwhile (another driver, an operator): nothing to do.
                Err(Error::Rollout(RolloutError::NotRunning { .. } | RolloutError::Baking { .. })) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(driven)
    }

    /// Stages the document's rollouts (with `edits` as runtime overrides, when it completes) as
    /// one change naming the rollout and its step; notes the version in its timeline. A change
    /// the host refuses rolls the rollout back (the refusal is the reason) and is returned.
    fn publish(&self, rollout: Rollout, actor: &Actor, edits: &[(String, Option<Value>)]) -> Result<Rollout, Error> {
        let mut request = SetRequest::new(ChangeOrigin::Rollout, actor.name.clone());
        request.reason = Some(history_reason(&rollout));
        match self.host.restage_rollouts(&rollout.environment, edits, request) {
            Ok(snapshot) => {
                let version = snapshot.version();
                self.store.update(rollout.id, |stored| {
                    if let Some(last) = stored.timeline.last_mut() {
                        last.version = Some(version);
                    }
                    Ok(())
                })
            }
            Err(error) if rollout.state == RolloutState::Running => {
                let reason = format!("refused by the host: {error}");
                let ended = self.store.update(rollout.id, |stored| {
                    stored.state = RolloutState::RolledBack;
                    stored.timeline.push(event(RolloutMilestone::RolledBack, DRIVER, Some(stored.step + 1), Some(reason.clone())));
                    Ok(())
                })?;
                let mut unstage = SetRequest::new(ChangeOrigin::Rollout, DRIVER);
                unstage.reason = Some(history_reason(&ended));
                self.host.restage_rollouts(&ended.environment, &[], unstage)?;
                Err(error)
            }
            Err(error) if rollout.state == RolloutState::Completed => {
                // The completion did not go live: the rollout runs on at its last step (its
                // cohort keeps the change) and the caller hears why.
                self.store.update(rollout.id, |stored| {
                    stored.state = RolloutState::Running;
                    stored.timeline.pop();
                    Ok(())
                })?;
                Err(error)
            }
            Err(error) => Err(error),
        }
    }
}

/// A host on the shared store as a rollout's gates see it.
struct Registered {
    id: String,
    labels: std::collections::BTreeMap<String, String>,
    unhealthy: Option<String>,
    last_refusal: Option<String>,
    refused_version: Option<u64>,
}

/// The hosts registered on the shared store (None: the history is not shared).
fn registered(host: &ConfigHost) -> Result<Option<Vec<Registered>>, Error> {
    #[cfg(feature = "etcd")]
    return Ok(host.instances()?.map(|listed| {
        listed
            .into_iter()
            .map(|info| Registered { id: info.id, labels: info.labels, unhealthy: info.unhealthy, last_refusal: info.last_refusal, refused_version: info.refused_version })
            .collect()
    }));
    #[cfg(not(feature = "etcd"))]
    {
        let _ = host;
        Ok(None)
    }
}

/// The hosts of an instance cohort that the rollout's current step reaches (none for users).
fn members(rollout: &Rollout, registry: Option<&[Registered]>) -> Vec<String> {
    let staged = rollout.staged();
    match registry {
        Some(registry) if rollout.cohort.of_instances() => registry.iter().filter(|host| staged.reaches_instance(&host.id, &host.labels)).map(|host| host.id.clone()).collect(),
        _ => Vec::new(),
    }
}

/// Why the fleet fails the rollout's gate, if it does: a host it reaches says it is unhealthy,
/// a host refused a change recorded since it started, or a host its step reached left (its
/// registry entry expired: it is neither waited for nor counted healthy).
fn fleet_gate(rollout: &Rollout, registry: &[Registered]) -> Option<String> {
    let reached = |id: &str| !rollout.cohort.of_instances() || rollout.members.iter().any(|member| member == id);
    if let Some(sick) = registry.iter().find(|host| reached(&host.id) && host.unhealthy.is_some()) {
        return Some(format!("health gate: instance `{}` reports itself unhealthy ({})", sick.id, sick.unhealthy.as_deref().unwrap_or("")));
    }
    let started_at = rollout.timeline.first().and_then(|event| event.version);
    if let Some(started_at) = started_at {
        if let Some(refusing) = registry.iter().find(|host| host.refused_version.is_some_and(|version| version >= started_at)) {
            return Some(format!("instance `{}` refused the change ({})", refusing.id, refusing.last_refusal.as_deref().unwrap_or("")));
        }
    }
    let gone = rollout.members.iter().find(|member| !registry.iter().any(|host| &host.id == *member))?;
    Some(format!("instance `{gone}` left during step {} (its registry entry expired)", rollout.step + 1))
}

/// The history reason of a rollout's change: its id, title, step and what happened.
fn history_reason(rollout: &Rollout) -> String {
    let step = rollout.current_step();
    let at = format!("rollout {} \"{}\"", rollout.id, rollout.title);
    match rollout.state {
        RolloutState::Running => {
            let of = if rollout.cohort.of_instances() { "instances" } else { "users" };
            format!("{at}: step {} of {} ({}% of {of})", rollout.step + 1, rollout.steps.len(), step.percent)
        }
        RolloutState::Completed => format!("{at}: completed (every view)"),
        RolloutState::RolledBack => {
            let why = rollout.timeline.last().and_then(|event| event.note.clone()).unwrap_or_default();
            format!("{at}: rolled back at step {}: {why}", rollout.step + 1)
        }
    }
}

fn check_plan(plan: &Plan) -> Result<(), Error> {
    let title = plan.title.trim();
    if title.is_empty() || title.chars().count() > 200 || title.chars().any(char::is_control) {
        return Err(RolloutError::Plan("a title of 1 to 200 printable characters".to_owned()).into());
    }
    if plan.edits.is_empty() {
        return Err(RolloutError::Plan("at least one key to change (KEY=VALUE)".to_owned()).into());
    }
    for (index, (key, _)) in plan.edits.iter().enumerate() {
        potter_engine::parse_key_path(key)?;
        crate::recording::check_recordable_key(key).map_err(RolloutError::Plan)?;
        if let Some((other, _)) = plan.edits[..index].iter().find(|(other, _)| potter_engine::overlaps(key, other)) {
            return Err(RolloutError::Plan(format!("each key once and none under another (`{key}` and `{other}`)")).into());
        }
    }
    if plan.steps.is_empty() || plan.steps.len() > MAX_STEPS {
        return Err(RolloutError::Plan(format!("1 to {MAX_STEPS} steps")).into());
    }
    match &plan.cohort {
        Cohort::Chosen { instances } if instances.is_empty() || instances.iter().any(|id| id.trim().is_empty()) => {
            return Err(RolloutError::Plan("at least one chosen instance id (none empty)".to_owned()).into());
        }
        Cohort::Label { label } if label.split_once('=').is_none_or(|(name, value)| name.trim().is_empty() || value.trim().is_empty()) => {
            return Err(RolloutError::Plan(format!("a label as `name=value` (given: `{label}`)")).into());
        }
        _ => {}
    }
    let shares: Vec<u32> = plan.steps.iter().map(|step| step.percent).collect();
    if shares.windows(2).any(|pair| pair[0] >= pair[1]) || shares[0] == 0 || shares.last() != Some(&100) {
        return Err(RolloutError::Plan(format!("shares rising from above 0 to 100 (given: {})", shares.iter().map(|share| format!("{share}%")).collect::<Vec<_>>().join(" → "))).into());
    }
    Ok(())
}

/// Refuses `plan` when a running rollout of its environment covers one of its keys.
fn check_no_overlap(rollouts: &[Rollout], plan: &Plan) -> Result<(), Error> {
    let running = rollouts.iter().filter(|rollout| rollout.state == RolloutState::Running && rollout.environment == plan.environment);
    for rollout in running {
        if let Some((key, _)) = plan.edits.iter().find(|(key, _)| rollout.keys().any(|held| potter_engine::overlaps(key, held))) {
            return Err(RolloutError::Overlap { running: rollout.id, environment: rollout.environment.clone(), key: key.clone() }.into());
        }
    }
    Ok(())
}

fn event(milestone: RolloutMilestone, actor: &str, step: Option<usize>, note: Option<String>) -> RolloutEvent {
    RolloutEvent { milestone, actor: actor.to_owned(), timestamp: timestamp(now_ms()), step, note, version: None }
}

fn now_ms() -> i64 {
    crate::observers::now_ms() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str) -> Registered {
        Registered { id: id.to_owned(), labels: Default::default(), unhealthy: None, last_refusal: None, refused_version: None }
    }

    fn running(cohort: Cohort, members: &[&str]) -> Rollout {
        Rollout {
            id: 1,
            environment: "production".to_owned(),
            title: "t".to_owned(),
            author: "token:a".to_owned(),
            edits: vec![RolloutEdit { key: "api.timeout".to_owned(), value: serde_json::json!(45) }],
            cohort,
            steps: vec![Step { percent: 100, bake_seconds: 60 }],
            step: 0,
            started_unix_ms: 0,
            step_started_unix_ms: 0,
            state: RolloutState::Running,
            timeline: vec![RolloutEvent { version: Some(10), ..event(RolloutMilestone::Started, "token:a", Some(1), None) }],
            members: members.iter().map(|id| id.to_string()).collect(),
        }
    }

    #[test]
    fn the_fleet_gate_fails_on_a_reached_hosts_report_a_refusal_since_the_start_or_a_member_gone() {
        let rollout = running(Cohort::Instances, &["a", "b"]);
        assert_eq!(fleet_gate(&rollout, &[host("a"), host("b"), host("c")]), None);
        // A host outside an instance cohort's step may be unhealthy for its own reasons.
        let outside = Registered { unhealthy: Some("disk".to_owned()), ..host("c") };
        assert_eq!(fleet_gate(&rollout, &[host("a"), host("b"), outside]), None);
        let sick = Registered { unhealthy: Some("5xx".to_owned()), ..host("b") };
        assert!(fleet_gate(&rollout, &[host("a"), sick, host("c")]).unwrap().contains("instance `b` reports itself unhealthy (5xx)"));
        // A refusal before the rollout's first step is not about it; one at or after it is.
        let before = Registered { refused_version: Some(9), last_refusal: Some("version 9: x".to_owned()), ..host("c") };
        assert_eq!(fleet_gate(&rollout, &[host("a"), host("b"), before]), None);
        let after = Registered { refused_version: Some(10), last_refusal: Some("version 10: y".to_owned()), ..host("c") };
        assert!(fleet_gate(&rollout, &[host("a"), host("b"), after]).unwrap().contains("instance `c` refused the change (version 10: y)"));
        assert!(fleet_gate(&rollout, &[host("a"), host("c")]).unwrap().contains("instance `b` left during step 1"));
        // For a user cohort every host serves the reached users: any host's report counts.
        let users = running(Cohort::Users, &[]);
        let sick = Registered { unhealthy: Some("oom".to_owned()), ..host("c") };
        assert!(fleet_gate(&users, &[host("a"), sick]).unwrap().contains("instance `c`"));
    }

    #[test]
    fn a_plan_needs_rising_shares_to_100_distinct_keys_and_a_sound_cohort() {
        let plan = |edits: Vec<(&str, i64)>, shares: &[u32], cohort: Cohort| Plan {
            environment: "production".to_owned(),
            title: "t".to_owned(),
            edits: edits.into_iter().map(|(key, value)| (key.to_owned(), serde_json::json!(value))).collect(),
            cohort,
            steps: shares.iter().map(|&percent| Step { percent, bake_seconds: 0 }).collect(),
        };
        let refused = |plan: Plan| check_plan(&plan).unwrap_err().to_string();
        assert!(check_plan(&plan(vec![("api.timeout", 1)], &[10, 50, 100], Cohort::Users)).is_ok());
        assert!(refused(plan(vec![("api.timeout", 1)], &[50, 50, 100], Cohort::Users)).contains("rising"));
        assert!(refused(plan(vec![("api.timeout", 1)], &[0, 100], Cohort::Users)).contains("rising from above 0"));
        assert!(refused(plan(vec![("api", 1), ("api.timeout", 2)], &[100], Cohort::Users)).contains("`api.timeout` and `api`"));
        assert!(refused(plan(vec![("api.timeout", 1)], &[100], Cohort::Label { label: "zone".to_owned() })).contains("`name=value`"));
        assert!(refused(plan(vec![("api.timeout", 1)], &[100], Cohort::Chosen { instances: vec![] })).contains("chosen instance"));
    }
}
