//! The instance registry of hosts sharing one etcd store: each publishes its id, address, the
//! version it serves, its plugins and the last peer change it refused, under a lease (a host that
//! dies drops out after the lease's TTL). What `GET /v1/instances` and `potter-config instances`
//! show. See docs/FLEET.md.

use std::time::Duration;

pub use potter_history_etcd::InstanceInfo;

use crate::error::Error;
use crate::recording::lock;
use crate::runtime::ConfigHost;

/// How long a registry entry outlives a host that stopped renewing it, unless told otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

impl ConfigHost {
    /// Publishes this host in the registry (`id`, default [`crate::Options::instance_id`], which
    /// is also the id rollout cohorts select by; `address`: where its API listens) with its
    /// labels, under a lease of `ttl`, kept current as its live version, refusals and health
    /// report change. Nothing to do (`Ok(None)`) unless the history is a shared store. Returns the id.
    pub fn register_instance(&self, id: Option<String>, address: Option<String>, ttl: Duration) -> Result<Option<String>, Error> {
        let database = self.history_database();
        let Some(store) = database.etcd() else { return Ok(None) };
        let link = database.link();
        let id = id.unwrap_or_else(|| self.options().instance_id());
        let info = InstanceInfo {
            id: id.clone(),
            address,
            version: self.snapshot().version(),
            plugins: self.plugin_list().into_iter().map(|plugin| match plugin.version { Some(version) => format!("{}@{version}", plugin.name), None => plugin.name }).collect(),
            last_refusal: lock(&link.last_refusal).clone(),
            refused_version: *lock(&link.refused_version),
            labels: self.options().instance_labels.clone(),
            unhealthy: self.reported_unhealthy().map(|unhealthy| unhealthy.reason),
        };
        let registration = store.register_shared(&info, ttl)?;
        *lock(&link.instance) = Some(info);
        *lock(&link.registration) = Some(registration);
        Ok(Some(id))
    }

    /// Removes this host's entry at once (a clean shutdown).
    pub fn withdraw_instance(&self) -> Result<(), Error> {
        let link = self.history_database().link();
        let registration = lock(&link.registration).take();
        lock(&link.instance).take();
        match registration {
            Some(registration) => Ok(registration.withdraw()?),
            None => Ok(()),
        }
    }

    /// Every host registered on the shared store, ordered by id (None when the history is not
    /// shared: a lone host has no registry).
    pub fn instances(&self) -> Result<Option<Vec<InstanceInfo>>, Error> {
        match self.history_database().etcd() {
            Some(store) => Ok(Some(store.instances()?)),
            None => Ok(None),
        }
    }
}

/// The registry of the store `options` choose, read without loading a tree (for
/// `potter-config instances`); None when the history is not shared.
pub fn list(options: &crate::Options) -> Result<Option<Vec<InstanceInfo>>, Error> {
    let database = crate::recording::HistoryDatabase::open(options)?;
    match database.etcd() {
        Some(store) => Ok(Some(store.instances()?)),
        None => Ok(None),
    }
}
