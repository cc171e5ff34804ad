//! The instance registry: each host publishes what it serves under `P/instances/<id>`, attached to
//! a lease it keeps alive. A host that stops cleanly revokes the lease (its entry goes at once); a
//! host that dies stops renewing it and etcd deletes the entry when the lease's TTL runs out.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{GetOptions, PutOptions};
use potter_history::Result;
use serde::{Deserialize, Serialize};

/// What one host publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// Unique per running host (a host name plus process id, a pod name, ...).
    pub id: String,
    /// Where its API listens, if it serves one (`10.0.0.5:8080`).
    pub address: Option<String>,
    /// The history version its live snapshot includes.
    pub version: u64,
    /// Its plugins as `name@version`.
    pub plugins: Vec<String>,
    /// The last peer change it could not validate (and so did not apply), if any.
    pub last_refusal: Option<String>,
    /// The store's version when it refused that change (a rollout's gate compares it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_version: Option<u64>,
    /// Its labels (`--label region=eu`): what a rollout's label cohort selects.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Why the service says it is unhealthy, while it does (`report_unhealthy`): fails a
    /// rollout's health gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy: Option<String>,
}

/// A published entry; dropping it stops the keep-alive (the entry expires after the TTL), and
/// [`Registration::withdraw`] removes it at once.
pub struct Registration<'s> {
    store: StoreRef<'s>,
    lease: i64,
    key: Vec<u8>,
    keep_alive: tokio::task::AbortHandle,
}

/// The store a registration renews through: borrowed, or shared by a host that keeps both.
enum StoreRef<'s> {
    Borrowed(&'s crate::EtcdStore),
    Shared(Arc<crate::EtcdStore>),
}

impl std::ops::Deref for StoreRef<'_> {
    type Target = crate::EtcdStore;

    fn deref(&self) -> &crate::EtcdStore {
        match self {
            StoreRef::Borrowed(store) => store,
            StoreRef::Shared(store) => store,
        }
    }
}

impl crate::EtcdStore {
    /// Publishes `info` under a lease of `ttl` (at least 2 s), renewed every third of it.
    pub fn register(&self, info: &InstanceInfo, ttl: Duration) -> Result<Registration<'_>> {
        self.register_through(StoreRef::Borrowed(self), info, ttl)
    }

    /// [`Self::register`] holding the store itself (a host keeps the registration beside it).
    pub fn register_shared(self: &Arc<Self>, info: &InstanceInfo, ttl: Duration) -> Result<Registration<'static>> {
        self.register_through(StoreRef::Shared(self.clone()), info, ttl)
    }

    fn register_through<'s>(&self, store: StoreRef<'s>, info: &InstanceInfo, ttl: Duration) -> Result<Registration<'s>> {
        let ttl_secs = i64::try_from(ttl.as_secs().max(2)).unwrap_or(i64::MAX);
        let lease = self.call((), move |mut client, _| async move { client.lease_grant(ttl_secs, None).await })?.id();
        let key = self.key(&format!("instances/{}", info.id));
        let registration = Registration {
            store,
            lease,
            key,
            keep_alive: self.runtime.spawn(keep_alive(self.client.clone(), lease, ttl_secs)).abort_handle(),
        };
        registration.update(info)?;
        Ok(registration)
    }

    /// Every host currently registered under the prefix, ordered by id.
    pub fn instances(&self) -> Result<Vec<InstanceInfo>> {
        let prefix = self.key("instances/");
        let response = self.call(prefix, move |mut client, prefix| async move {
            client.get(prefix, Some(GetOptions::new().with_prefix())).await
        })?;
        response
            .kvs()
            .iter()
            .map(|kv| {
                serde_json::from_slice(kv.value())
                    .map_err(|error| self.decode_error(0, "instance entry", error))
            })
            .collect()
    }
}

impl Registration<'_> {
    /// Replaces the published entry (a new version served, a refusal to report).
    pub fn update(&self, info: &InstanceInfo) -> Result<()> {
        let (key, lease) = (self.key.clone(), self.lease);
        let value = serde_json::to_string(info).expect("instance entries serialise");
        self.store
            .call((key, value), move |mut client, (key, value)| async move {
                client.put(key, value, Some(PutOptions::new().with_lease(lease))).await
            })
            .map(|_| ())
    }

    /// Removes the entry now (a clean shutdown).
    pub fn withdraw(self) -> Result<()> {
        self.keep_alive.abort();
        let lease = self.lease;
        self.store
            .call((), move |mut client, _| async move { client.lease_revoke(lease).await })
            .map(|_| ())
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.keep_alive.abort();
    }
}

/// Renews the lease every third of its TTL; after a failure (etcd unreachable) it starts a new
/// keep-alive stream, so a short outage does not drop the entry if the lease has not expired.
async fn keep_alive(mut client: etcd_client::Client, lease: i64, ttl_secs: i64) {
    let period = Duration::from_millis((ttl_secs as u64 * 1000 / 3).max(500));
    loop {
        if let Ok((mut keeper, mut stream)) = client.lease_keep_alive(lease).await {
            loop {
                if keeper.keep_alive().await.is_err() {
                    break;
                }
                match tokio::time::timeout(period, stream.message()).await {
                    Ok(Ok(Some(_))) => {}
                    _ => break,
                }
                tokio::time::sleep(period).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
