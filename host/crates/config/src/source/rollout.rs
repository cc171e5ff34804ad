//! Staged changes of running rollouts (docs/ROLLOUT.md, "Progressive rollout"): each one's values
//! as a layer over the runtime overrides, only on the views its current step reaches.
//!
//! A user-percentage rollout reaches the views of the users (and services × users) whose bucket —
//! a stable hash of the rollout id and the user name, 0..10,000 — is below its step's share.
//! Raising the share only adds users (the same users stay in at every step). Which views are in
//! is decided here, once per build (a step, a reload); a read stays a pointer load and a lookup.

use std::collections::BTreeMap;
use std::sync::Arc;

use potter_engine::merge::set_path;
use potter_engine::{Layer, LayerSource, Rank, Scope};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{BuildContext, Source};
use crate::error::Error;

/// Buckets a share is counted in: a percentage with two decimals.
pub const BUCKETS: u32 = 10_000;

/// Who a rollout reaches before it reaches everyone. A step's share picks by a stable hash of
/// the rollout id and the user name (`users`) or the host's instance id (the others), so a wider
/// share keeps everyone a narrower one reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Cohort {
    /// A share of the tree's users: their user views (and services × users) get the change; the
    /// environment's and services' own views get it when the rollout completes. Works on one host.
    Users,
    /// A share of the hosts on the shared store: a reached host serves the change in every view
    /// of the environment.
    Instances,
    /// A share of these hosts (by instance id).
    Chosen {
        /// Their instance ids.
        instances: Vec<String>,
    },
    /// A share of the hosts with this label (`region=eu`).
    Label {
        /// `name=value`.
        label: String,
    },
}

impl Cohort {
    /// True for a cohort of hosts (not of users).
    pub fn of_instances(&self) -> bool {
        !matches!(self, Cohort::Users)
    }

    /// True when the host `id` with `labels` belongs to the cohort (before its step's share).
    pub fn selects(&self, id: &str, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Cohort::Users => false,
            Cohort::Instances => true,
            Cohort::Chosen { instances } => instances.iter().any(|chosen| chosen == id),
            Cohort::Label { label } => label.split_once('=').is_some_and(|(name, value)| labels.get(name).is_some_and(|held| held == value)),
        }
    }
}

/// One running rollout as a build needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedRollout {
    /// The rollout's id (the hash's salt: two rollouts pick different users).
    pub id: u64,
    /// The environment its change is for.
    pub environment: String,
    /// Who it reaches.
    pub cohort: Cohort,
    /// The change: dotted key -> value (a secret as its ciphertext).
    pub values: Vec<(String, Value)>,
    /// The share of users its current step reaches, in hundredths of a percent (0..=10,000).
    pub share: u32,
}

impl StagedRollout {
    /// True when `user` is in a user cohort at this step.
    pub fn reaches(&self, user: &str) -> bool {
        self.cohort == Cohort::Users && bucket(self.id, user) < self.share
    }

    /// True when the host `id` with `labels` is in an instance cohort at this step.
    pub fn reaches_instance(&self, id: &str, labels: &BTreeMap<String, String>) -> bool {
        self.cohort.selects(id, labels) && bucket(self.id, id) < self.share
    }

    fn tree(&self) -> Map<String, Value> {
        let mut tree = Map::new();
        for (key, value) in &self.values {
            let segments: Vec<&str> = key.split('.').collect();
            set_path(&mut tree, &segments, value.clone());
        }
        tree
    }
}

/// The bucket of `user` in rollout `id`: FNV-1a (64 bit) of `"<id>:<user>"` modulo [`BUCKETS`].
/// Fixed here (not the standard library's hasher, whose output may change between releases) so
/// that every host and every release puts a user in the same bucket.
pub fn bucket(id: u64, user: &str) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in id.to_string().bytes().chain(std::iter::once(b':')).chain(user.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    (hash % u64::from(BUCKETS)) as u32
}

/// The running rollouts' layers for a build over a tree with `users`.
pub struct RolloutSource<'a> {
    rollouts: &'a [StagedRollout],
    users: &'a [Arc<str>],
}

impl<'a> RolloutSource<'a> {
    /// The layers of `rollouts` for the views of `users`.
    pub fn new(rollouts: &'a [StagedRollout], users: &'a [Arc<str>]) -> Self {
        Self { rollouts, users }
    }
}

impl Source for RolloutSource<'_> {
    fn name(&self) -> &str {
        "rollouts"
    }

    fn rank(&self) -> Rank {
        // Over the runtime overrides: asked after them, so its layers come later in that rank.
        Rank::Overrides
    }

    fn layers(&mut self, context: &BuildContext<'_>) -> Result<Vec<Arc<Layer>>, Error> {
        let mut layers = Vec::new();
        // Asked only when an instance cohort runs (the default id reads the host name).
        let this_host = if self.rollouts.iter().any(|rollout| rollout.cohort.of_instances()) { context.options.instance_id() } else { String::new() };
        for rollout in self.rollouts.iter().filter(|rollout| context.options.serves(&rollout.environment)) {
            let tree = rollout.tree();
            if rollout.cohort.of_instances() {
                // This host is reached or not: every view of the environment, or none.
                if rollout.reaches_instance(&this_host, &context.options.instance_labels) {
                    let name = format!("rollout/{}/{}", rollout.id, rollout.environment);
                    layers.push(Arc::new(Layer::new(name, Rank::Overrides, Scope::environment(&rollout.environment), LayerSource::Rollout(rollout.id), tree)));
                }
                continue;
            }
            for user in self.users.iter().filter(|user| rollout.reaches(user)) {
                let scope = Scope { environment: Some(rollout.environment.as_str().into()), service: None, user: Some(user.clone()) };
                let name = format!("rollout/{}/{}@{user}", rollout.id, rollout.environment);
                layers.push(Arc::new(Layer::new(name, Rank::Overrides, scope, LayerSource::Rollout(rollout.id), tree.clone())));
            }
        }
        Ok(layers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_is_stable_and_a_wider_share_keeps_the_users_of_a_narrower_one() {
        // Fixed values: a change of the hash would move users between cohorts of a running rollout.
        assert_eq!(bucket(1, "alice"), bucket(1, "alice"));
        assert_ne!(bucket(1, "alice"), bucket(2, "alice"));
        let users: Vec<String> = (0..1000).map(|n| format!("user{n}")).collect();
        let at = |share: u32| -> Vec<&String> {
            let rollout = StagedRollout { id: 7, environment: "production".into(), cohort: Cohort::Users, values: vec![], share };
            users.iter().filter(|user| rollout.reaches(user)).collect()
        };
        let (ten, fifty, all) = (at(1_000), at(5_000), at(BUCKETS));
        assert!(ten.iter().all(|user| fifty.contains(user)));
        assert_eq!(all.len(), 1000);
        assert!((60..=140).contains(&ten.len()), "about 10 % of 1,000: {}", ten.len());
        assert!((420..=580).contains(&fifty.len()), "about 50 %: {}", fifty.len());
    }
}
