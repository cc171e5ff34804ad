//! The history store kept in etcd, so many Potter Config hosts share one set of runtime overrides
//! and one change history.
//!
//! [`EtcdStore`] implements [`potter_history::HistoryStore`] with the same contract as the SQLite
//! store: versions are global and strictly increasing, an append returns only once etcd has
//! committed it, and the override set changes atomically with the record that changes it.
//!
//! Layout under the prefix `P` (see docs/FLEET.md):
//!
//! | key | value |
//! |---|---|
//! | `P/version` | the newest version (decimal) |
//! | `P/record/<version, 20 digits>` | one record (JSON) |
//! | `P/env/<env>/overrides` | the environment's override layer (JSON object) |
//! | `P/env/<env>/key_versions` | key → the latest version that changed it (JSON object) |
//! | `P/env/<env>/override_versions` | override key → the version that set it (JSON object) |
//! | `P/pruned_through` | payloads up to this version were pruned (decimal) |
//! | `P/audit/<id, 20 digits>`, `P/audit_id` | the server's audit lines and their id counter |
//! | `P/instances/<id>` | one host's registry entry, under its lease |
//!
//! Every append is ONE etcd transaction guarded by the `mod_revision` of `P/version` as read when
//! the change was built: of two hosts writing at once exactly one transaction commits; the other
//! re-reads and either fails with [`HistoryError::Conflict`] (its compare-and-set expectation no
//! longer holds) or is rebuilt on the new state and retried. Nothing is ever half-applied.

mod audit;
mod follow;
mod location;
mod registry;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, SortOrder, SortTarget, Txn,
    TxnOp, TxnOpResponse,
};
use potter_history::{
    check_change, ChangeOrigin, Clock, HistoryError, HistoryQuery, HistoryStore, NewChange,
    OverrideOp, Payload, PruneReport, Record, RecordedChange, RecordedOverrides, Result, Retention, StoredValue,
    SystemClock,
};
use serde::{Deserialize, Serialize};

pub use etcd_client::{Certificate, Identity, TlsOptions};
pub use follow::{FollowEvent, Follower};
pub use location::{EtcdLocation, LocationError};
pub use registry::{InstanceInfo, Registration};

/// How often one append is rebuilt after losing the race to another writer before giving up with
/// [`HistoryError::Storage`]. Each lost race means another host's change committed, so the fleet
/// as a whole always makes progress.
const MAX_ATTEMPTS: usize = 64;

/// Records read per range request when scanning the history.
const PAGE: i64 = 256;

/// At most this many puts per transaction when pruning (etcd's default `--max-txn-ops` is 128).
const PRUNE_BATCH: usize = 100;

/// How to reach etcd: the endpoints and prefix (from an `etcd://` location) plus credentials.
#[derive(Clone)]
pub struct EtcdOptions {
    pub location: EtcdLocation,
    /// etcd user name and password (etcd's own authentication).
    pub user: Option<(String, String)>,
    /// TLS to the members (CA, and a client certificate via `TlsOptions::identity`). With TLS the
    /// endpoints are dialled as `https://`.
    pub tls: Option<TlsOptions>,
    /// Gives up connecting after this long (default 5 s).
    pub connect_timeout: Duration,
    /// Gives up on one request after this long (default 5 s); an append that times out is not
    /// acknowledged (it may still have committed: see docs/FLEET.md).
    pub request_timeout: Duration,
}

impl std::fmt::Debug for EtcdOptions {
    // The password never appears in Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdOptions")
            .field("location", &self.location.to_string())
            .field("user", &self.user.as_ref().map(|(name, _)| name))
            .field("tls", &self.tls.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl EtcdOptions {
    pub fn new(location: EtcdLocation) -> Self {
        EtcdOptions {
            location,
            user: None,
            tls: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
        }
    }

    pub fn user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.user = Some((name.into(), password.into()));
        self
    }

    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// A record as stored in etcd (the crate's model types stay free of a storage format).
#[derive(Serialize, Deserialize)]
struct StoredRecord {
    version: u64,
    timestamp_ms: i64,
    actor: String,
    origin: ChangeOrigin,
    env: String,
    reason: Option<String>,
    keys: Vec<String>,
    payload: Option<StoredPayload>,
}

#[derive(Serialize, Deserialize)]
struct StoredPayload {
    changes: Vec<RecordedChange>,
    override_ops: Vec<OverrideOp>,
}

impl StoredRecord {
    fn into_record(self) -> Record {
        Record {
            version: self.version,
            timestamp_ms: self.timestamp_ms,
            actor: self.actor,
            origin: self.origin,
            env: self.env,
            reason: self.reason,
            keys: self.keys,
            payload: self.payload.map(|payload| Payload {
                changes: payload.changes,
                override_ops: payload.override_ops,
            }),
        }
    }
}

/// The history store in etcd. Synchronous like the trait: calls run on the store's own Tokio
/// runtime and the caller's thread waits, so it works both from plain threads and from inside
/// another Tokio runtime (the server's).
pub struct EtcdStore {
    client: Client,
    runtime: Arc<tokio::runtime::Runtime>,
    prefix: String,
    /// Names the store in errors: `etcd://host:port,.../prefix`.
    name: String,
    request_timeout: Duration,
    clock: Arc<dyn Clock>,
    /// Serialises this process's appends: optimistic transactions from many threads of one host
    /// would mostly lose to each other (measured: 50 writers starve), so a host sends one change
    /// at a time and only hosts race each other.
    append_lock: std::sync::Mutex<()>,
    /// The queue of [`potter_history::AuditStore::queue_audit`], once used.
    audit_queue: std::sync::Mutex<Option<std::sync::mpsc::Sender<Vec<potter_history::NewAuditEntry>>>>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").field("location", &self.name).finish()
    }
}

impl EtcdStore {
    /// Connects to the members (fails with [`HistoryError::Storage`] naming the location if none
    /// answers within the connect timeout).
    pub fn connect(options: EtcdOptions) -> Result<EtcdStore> {
        Self::connect_with_clock(options, Arc::new(SystemClock))
    }

    pub fn connect_with_clock(options: EtcdOptions, clock: Arc<dyn Clock>) -> Result<EtcdStore> {
        let name = options.location.to_string();
        let storage = |detail: String| HistoryError::Storage {
            path: PathBuf::from(&name),
            detail,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("potter-etcd")
            .on_thread_start(block_sigpipe)
            .enable_all()
            .build()
            .map_err(|error| storage(format!("cannot start the etcd client runtime: {error}")))?;
        let runtime = Arc::new(runtime);
        let scheme = if options.tls.is_some() { "https" } else { "http" };
        let endpoints: Vec<String> = options
            .location
            .endpoints
            .iter()
            .map(|endpoint| format!("{scheme}://{endpoint}"))
            .collect();
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_timeout(options.request_timeout);
        if let Some((user, password)) = &options.user {
            connect = connect.with_user(user.clone(), password.clone());
        }
        if let Some(tls) = &options.tls {
            connect = connect.with_tls(tls.clone());
        }
        let connect_timeout = options.connect_timeout;
        let client = run_on(&runtime, async move {
            tokio::time::timeout(connect_timeout, Client::connect(endpoints, Some(connect))).await
        })
        .map_err(|_| storage("no etcd member answered within the connect timeout".to_owned()))?
        .map_err(|error| storage(format!("cannot connect: {error}")))?;
        let store = EtcdStore {
            client,
            runtime,
            prefix: options.location.prefix.clone(),
            name,
            request_timeout: options.request_timeout,
            clock,
            append_lock: std::sync::Mutex::new(()),
            audit_queue: std::sync::Mutex::new(None),
        };
        // One round trip so an unreachable cluster is reported at open, like a missing SQLite file.
        store.latest_version()?;
        Ok(store)
    }

    /// A second handle on the same connection and runtime (for a background writer).
    fn twin(&self) -> EtcdStore {
        EtcdStore {
            client: self.client.clone(),
            runtime: self.runtime.clone(),
            prefix: self.prefix.clone(),
            name: self.name.clone(),
            request_timeout: self.request_timeout,
            clock: self.clock.clone(),
            append_lock: std::sync::Mutex::new(()),
            audit_queue: std::sync::Mutex::new(None),
        }
    }

    /// The location as given (`etcd://...`), for messages.
    pub fn location(&self) -> &str {
        &self.name
    }

    fn key(&self, suffix: &str) -> Vec<u8> {
        format!("{}/{}", self.prefix, suffix).into_bytes()
    }

    fn record_key(&self, version: u64) -> Vec<u8> {
        self.key(&format!("record/{version:020}"))
    }

    fn storage(&self, detail: impl std::fmt::Display) -> HistoryError {
        HistoryError::Storage {
            path: PathBuf::from(&self.name),
            detail: detail.to_string(),
        }
    }

    fn decode_error(&self, version: u64, field: &'static str, detail: impl std::fmt::Display) -> HistoryError {
        HistoryError::Decode {
            path: PathBuf::from(&self.name),
            version,
            field,
            detail: detail.to_string(),
        }
    }

    /// Runs one etcd request (built from `input` by `request`) with the request timeout, mapping
    /// failures to a storage error.
    ///
    /// A request that could not even connect (the client picked a member that is down, or one
    /// whose connection is still being re-established after it came back) never reached etcd, so
    /// it is sent again, up to [`CONNECT_ATTEMPTS`] times within the timeout: the client's balancer
    /// picks another member. Any other failure is returned at once.
    fn call<T, I, F>(&self, input: I, request: impl Fn(Client, I) -> F) -> Result<T>
    where
        I: Clone,
        T: Send + 'static,
        F: Future<Output = std::result::Result<T, etcd_client::Error>> + Send + 'static,
    {
        let timeout = self.request_timeout;
        let deadline = std::time::Instant::now() + timeout;
        let mut attempt = 1;
        loop {
            let future = request(self.client.clone(), input.clone());
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match run_on(&self.runtime, async move { tokio::time::timeout(left, future).await }) {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) if attempt < CONNECT_ATTEMPTS && never_connected(&error) && std::time::Instant::now() + CONNECT_PAUSE < deadline => {
                    attempt += 1;
                    std::thread::sleep(CONNECT_PAUSE);
                }
                Ok(Err(error)) => return Err(self.storage(format!("etcd request failed: {error}"))),
                Err(_) => {
                    return Err(self.storage(format!(
                        "etcd did not answer within {} ms (nothing was acknowledged)",
                        timeout.as_millis()
                    )))
                }
            }
        }
    }

    fn get_one(&self, key: Vec<u8>) -> Result<Option<KeyValue>> {
        let response = self.call(key, move |mut client, key| async move { client.get(key, None).await })?;
        Ok(response.kvs().first().cloned())
    }

    fn read_u64(&self, key: &str) -> Result<u64> {
        match self.get_one(self.key(key))? {
            None => Ok(0),
            Some(kv) => parse_u64(kv.value()).ok_or_else(|| self.decode_error(0, "counter", key)),
        }
    }

    fn read_env_map<T: for<'de> Deserialize<'de>>(&self, env: &str, doc: &str) -> Result<BTreeMap<String, T>> {
        match self.get_one(self.key(&format!("env/{env}/{doc}")))? {
            None => Ok(BTreeMap::new()),
            Some(kv) => serde_json::from_slice(kv.value())
                .map_err(|error| self.decode_error(0, "environment document", error)),
        }
    }

    fn decode_record(&self, kv: &KeyValue) -> Result<Record> {
        serde_json::from_slice::<StoredRecord>(kv.value())
            .map(StoredRecord::into_record)
            .map_err(|error| {
                let version = kv
                    .key_str()
                    .ok()
                    .and_then(|key| key.rsplit('/').next())
                    .and_then(|digits| digits.parse().ok())
                    .unwrap_or(0);
                self.decode_error(version, "record", error)
            })
    }

    /// Records with versions in `[from, to)`, in the given order, `page` at a time, until `visit`
    /// returns false.
    fn scan_records(
        &self,
        from: u64,
        to: u64,
        order: SortOrder,
        mut visit: impl FnMut(Record) -> bool,
    ) -> Result<()> {
        let (mut low, mut high) = (self.record_key(from), self.record_key(to));
        loop {
            let (start, end) = (low.clone(), high.clone());
            let response = self.call((start, end), move |mut client, (start, end)| async move {
                let options = GetOptions::new()
                    .with_range(end)
                    .with_sort(SortTarget::Key, order)
                    .with_limit(PAGE);
                client.get(start, Some(options)).await
            })?;
            let kvs = response.kvs();
            for kv in kvs {
                if !visit(self.decode_record(kv)?) {
                    return Ok(());
                }
            }
            if !response.more() || kvs.is_empty() {
                return Ok(());
            }
            let last = kvs[kvs.len() - 1].key().to_vec();
            match order {
                // Continue strictly after the last key seen.
                SortOrder::Descend => high = last,
                _ => {
                    low = last;
                    low.push(0);
                }
            }
        }
    }
}

/// Runs `future` on the store's runtime and waits for it on the calling thread (which may itself
/// be a Tokio worker of another runtime: it only blocks, it never enters this runtime).
/// The client's socket writes happen on the runtime's threads, some with `writev`, which (unlike
/// `send` with `MSG_NOSIGNAL`) raises SIGPIPE when etcd has closed the connection. A program that
/// restored SIGPIPE's default action (the `potter-config` command does, for `... | head`) would be
/// killed by it; blocked on these threads, the write fails with `EPIPE` and the client reconnects.
fn block_sigpipe() {
    // SAFETY: changes only the calling thread's signal mask, with a set built here.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// How many times a request that could not connect is sent in all ([`EtcdStore::call`]).
const CONNECT_ATTEMPTS: usize = 4;
/// The pause before sending it again.
const CONNECT_PAUSE: Duration = Duration::from_millis(50);

/// True for a failure to connect to the member the request was routed to: the request was never
/// sent (gRPC's UNAVAILABLE, code 14, raised by the client's own connector). A connection that
/// failed later ("connection reset", a broken pipe) may have carried the request, so it is not
/// matched: a guarded transaction sent twice could be recorded twice.
fn never_connected(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            let message = status.message();
            status.code() as i32 == 14 && (message.contains("tcp connect error") || message.contains("error trying to connect"))
        }
        etcd_client::Error::TransportError(_) => true,
        _ => false,
    }
}

fn run_on<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    future: impl Future<Output = T> + Send + 'static,
) -> T {
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = sender.send(future.await);
    });
    receiver
        .recv()
        .expect("the etcd client runtime lives as long as the store")
}

/// A short, growing, jittered pause after losing a race, so hosts that collided do not collide
/// again in lockstep.
fn lost_race_pause(attempt: usize) {
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| u64::from(since.subsec_nanos()));
    let ceiling_us = 200u64 << attempt.min(6);
    std::thread::sleep(Duration::from_micros(jitter % ceiling_us));
}

fn parse_u64(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

/// One environment's documents as read at the start of an attempt and as the attempt leaves them.
struct EnvState {
    overrides: BTreeMap<String, StoredValue>,
    key_versions: BTreeMap<String, u64>,
    override_versions: BTreeMap<String, u64>,
}

/// The documents of one environment, in the order an append reads them.
const ENV_DOCUMENTS: [&str; 3] = ["overrides", "key_versions", "override_versions"];

impl HistoryStore for EtcdStore {
    fn append(&self, change: NewChange) -> Result<u64> {
        Ok(self.append_all(vec![change])?[0])
    }

    fn append_all(&self, changes: Vec<NewChange>) -> Result<Vec<u64>> {
        changes.iter().try_for_each(check_change)?;
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let mut envs: Vec<String> = changes.iter().map(|change| change.env.clone()).collect();
        envs.sort();
        envs.dedup();
        let version_key = self.key("version");
        let _one_at_a_time = self.append_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                lost_race_pause(attempt);
            }
            // One read transaction: the counter and every touched environment's documents at one
            // revision.
            let mut reads = vec![TxnOp::get(version_key.clone(), None)];
            for env in &envs {
                reads.extend(ENV_DOCUMENTS.iter().map(|doc| TxnOp::get(self.key(&format!("env/{env}/{doc}")), None)));
            }
            let snapshot = self.call(reads, move |mut client, reads| async move { client.txn(Txn::new().and_then(reads)).await })?;
            let responses = snapshot.op_responses();
            let first = |index: usize| -> Option<KeyValue> {
                match responses.get(index) {
                    Some(TxnOpResponse::Get(get)) => get.kvs().first().cloned(),
                    _ => None,
                }
            };
            let (mut version, base_revision) = match first(0) {
                None => (0, 0),
                Some(kv) => (
                    parse_u64(kv.value()).ok_or_else(|| self.decode_error(0, "counter", "version"))?,
                    kv.mod_revision(),
                ),
            };
            let mut states = BTreeMap::new();
            for (index, env) in envs.iter().enumerate() {
                let decode = |kv: Option<KeyValue>| -> Result<serde_json::Value> {
                    match kv {
                        None => Ok(serde_json::Value::Object(Default::default())),
                        Some(kv) => serde_json::from_slice(kv.value())
                            .map_err(|error| self.decode_error(0, "environment document", error)),
                    }
                };
                let at = 1 + ENV_DOCUMENTS.len() * index;
                let overrides = serde_json::from_value(decode(first(at))?)
                    .map_err(|error| self.decode_error(0, "overrides", error))?;
                let key_versions = serde_json::from_value(decode(first(at + 1))?)
                    .map_err(|error| self.decode_error(0, "key versions", error))?;
                let override_versions = serde_json::from_value(decode(first(at + 2))?)
                    .map_err(|error| self.decode_error(0, "override versions", error))?;
                states.insert(env.clone(), EnvState { overrides, key_versions, override_versions });
            }

            let now = self.clock.now_ms();
            let mut writes = Vec::new();
            let mut versions = Vec::new();
            for change in &changes {
                let state = states.get_mut(&change.env).expect("read above");
                for expectation in &change.expectations {
                    let actual = state.key_versions.get(&expectation.key).copied().unwrap_or(0);
                    if actual > expectation.version {
                        return Err(HistoryError::Conflict {
                            env: change.env.clone(),
                            key: expectation.key.clone(),
                            expected: expectation.version,
                            actual,
                        });
                    }
                }
                version += 1;
                for op in &change.override_ops {
                    op.apply_to(&mut state.overrides);
                    op.apply_version_to(&mut state.override_versions, version);
                }
                for key_change in &change.changes {
                    state.key_versions.insert(key_change.key.clone(), version);
                }
                let record = StoredRecord {
                    version,
                    timestamp_ms: now,
                    actor: change.actor.clone(),
                    origin: change.origin,
                    env: change.env.clone(),
                    reason: change.reason.clone(),
                    keys: change.changes.iter().map(|key_change| key_change.key.clone()).collect(),
                    payload: Some(StoredPayload {
                        changes: change.changes.clone(),
                        override_ops: change.override_ops.clone(),
                    }),
                };
                writes.push(TxnOp::put(self.record_key(version), to_json(&record), None));
                versions.push(version);
            }
            for (env, state) in &states {
                writes.push(TxnOp::put(self.key(&format!("env/{env}/overrides")), to_json(&state.overrides), None));
                writes.push(TxnOp::put(self.key(&format!("env/{env}/key_versions")), to_json(&state.key_versions), None));
                writes.push(TxnOp::put(self.key(&format!("env/{env}/override_versions")), to_json(&state.override_versions), None));
            }
            writes.push(TxnOp::put(version_key.clone(), version.to_string(), None));
            // Revision 0 compares equal to a key that does not exist yet (the first change).
            let guard = Compare::mod_revision(version_key.clone(), CompareOp::Equal, base_revision);
            let committed = self.call((guard, writes), move |mut client, (guard, writes)| async move {
                client.txn(Txn::new().when(vec![guard]).and_then(writes)).await
            })?;
            if committed.succeeded() {
                return Ok(versions);
            }
            // Another writer committed first: rebuild on its state (its change may make ours a
            // conflict).
        }
        Err(self.storage(format!(
            "gave up after losing the race to other writers {MAX_ATTEMPTS} times; nothing was recorded"
        )))
    }

    fn get(&self, version: u64) -> Result<Option<Record>> {
        match self.get_one(self.record_key(version))? {
            None => Ok(None),
            Some(kv) => self.decode_record(&kv).map(Some),
        }
    }

    fn latest_version(&self) -> Result<u64> {
        self.read_u64("version")
    }

    fn key_version(&self, env: &str, key: &str) -> Result<u64> {
        Ok(self.read_env_map::<u64>(env, "key_versions")?.get(key).copied().unwrap_or(0))
    }

    fn overrides_with_version(&self, envs: &[String]) -> Result<RecordedOverrides> {
        let mut reads = vec![TxnOp::get(self.key("version"), None)];
        for env in envs {
            reads.push(TxnOp::get(self.key(&format!("env/{env}/overrides")), None));
            reads.push(TxnOp::get(self.key(&format!("env/{env}/override_versions")), None));
        }
        let response = self.call(reads, move |mut client, reads| async move { client.txn(Txn::new().and_then(reads)).await })?;
        let responses = response.op_responses();
        let first = |index: usize| -> Option<KeyValue> {
            match responses.get(index) {
                Some(TxnOpResponse::Get(get)) => get.kvs().first().cloned(),
                _ => None,
            }
        };
        let version = match first(0) {
            None => 0,
            Some(kv) => parse_u64(kv.value()).ok_or_else(|| self.decode_error(0, "counter", "version"))?,
        };
        let mut recorded = RecordedOverrides { version, ..RecordedOverrides::default() };
        for (index, env) in envs.iter().enumerate() {
            let overrides = match first(1 + 2 * index) {
                None => BTreeMap::new(),
                Some(kv) => serde_json::from_slice(kv.value()).map_err(|error| self.decode_error(0, "overrides", error))?,
            };
            // A layer written before the versions were kept has none: each override shows 0.
            let set_at = match first(2 + 2 * index) {
                None => BTreeMap::new(),
                Some(kv) => serde_json::from_slice(kv.value()).map_err(|error| self.decode_error(0, "override versions", error))?,
            };
            recorded.values.insert(env.clone(), overrides);
            recorded.set_at.insert(env.clone(), set_at);
        }
        Ok(recorded)
    }

    fn overrides(&self, env: &str) -> Result<BTreeMap<String, StoredValue>> {
        self.read_env_map(env, "overrides")
    }

    fn override_versions(&self, env: &str) -> Result<BTreeMap<String, u64>> {
        self.read_env_map(env, "override_versions")
    }

    fn query(&self, query: &HistoryQuery) -> Result<Vec<Record>> {
        let mut found = Vec::new();
        if query.limit == 0 {
            return Ok(found);
        }
        // Records are scanned newest first and filtered here: the cost follows the number of
        // records walked (docs/FLEET.md), unlike SQLite's indexed prefix query.
        self.scan_records(0, u64::MAX, SortOrder::Descend, |record| {
            let matches = query.env.as_ref().is_none_or(|env| &record.env == env)
                && query.actor.as_ref().is_none_or(|actor| &record.actor == actor)
                && query.since_ms.is_none_or(|since| record.timestamp_ms >= since)
                && query
                    .key_prefix
                    .as_ref()
                    .is_none_or(|prefix| record.keys.iter().any(|key| key.starts_with(prefix.as_str())));
            if matches {
                found.push(record);
            }
            found.len() < query.limit
        })?;
        Ok(found)
    }

    fn changes_after(&self, env: &str, version: u64) -> Result<Vec<Record>> {
        let pruned_through = self.pruned_through()?;
        if version < pruned_through {
            return Err(HistoryError::PayloadPruned {
                requested: version,
                pruned_through,
            });
        }
        let mut found = Vec::new();
        self.scan_records(version.saturating_add(1), u64::MAX, SortOrder::Ascend, |record| {
            if record.env == env {
                found.push(record);
            }
            true
        })?;
        Ok(found)
    }

    fn pruned_through(&self) -> Result<u64> {
        self.read_u64("pruned_through")
    }

    fn prune(&self, retention: Retention) -> Result<PruneReport> {
        let already = self.pruned_through()?;
        let target = match retention {
            Retention::KeepVersions(keep) => self.latest_version()?.saturating_sub(keep),
            Retention::KeepDays(days) => {
                let cutoff = self.clock.now_ms().saturating_sub(i64::from(days) * 86_400_000);
                let mut newest_old = 0;
                self.scan_records(0, u64::MAX, SortOrder::Descend, |record| {
                    if record.timestamp_ms < cutoff {
                        newest_old = record.version;
                        false
                    } else {
                        true
                    }
                })?;
                newest_old
            }
        };
        if target <= already {
            return Ok(PruneReport {
                pruned_through: already,
                records_pruned: 0,
            });
        }
        let mut stripped = Vec::new();
        self.scan_records(already + 1, target + 1, SortOrder::Ascend, |record| {
            if record.payload.is_some() {
                stripped.push(record);
            }
            true
        })?;
        // Written first: from here on `changes_after` refuses these versions, so a prune interrupted
        // half-way never lets a rollback silently skip a stripped payload (the next prune finishes it).
        let key = self.key("pruned_through");
        let value = target.to_string();
        self.call((key, value), move |mut client, (key, value)| async move { client.put(key, value, None).await })?;
        let records_pruned = stripped.len() as u64;
        for batch in stripped.chunks(PRUNE_BATCH) {
            let writes: Vec<TxnOp> = batch
                .iter()
                .map(|record| {
                    let stored = StoredRecord {
                        version: record.version,
                        timestamp_ms: record.timestamp_ms,
                        actor: record.actor.clone(),
                        origin: record.origin,
                        env: record.env.clone(),
                        reason: record.reason.clone(),
                        keys: record.keys.clone(),
                        payload: None,
                    };
                    TxnOp::put(self.record_key(record.version), to_json(&stored), None)
                })
                .collect();
            self.call(writes, move |mut client, writes| async move { client.txn(Txn::new().and_then(writes)).await })?;
        }
        Ok(PruneReport {
            pruned_through: target,
            records_pruned,
        })
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("history values serialise")
}

/// `P/documents/<name>`: small documents replaced whole (the server's token list), stamped with
/// their etcd `mod_revision`.
impl potter_history::DocumentStore for EtcdStore {
    fn read_document(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>> {
        Ok(self
            .get_one(self.key(&format!("documents/{name}")))?
            .map(|kv| (u64::try_from(kv.mod_revision()).unwrap_or(0), kv.value().to_vec())))
    }

    fn replace_document(&self, name: &str, bytes: Vec<u8>, expected: Option<u64>) -> Result<bool> {
        let key = self.key(&format!("documents/{name}"));
        let guard = match expected {
            None => Compare::create_revision(key.clone(), CompareOp::Equal, 0),
            Some(stamp) => Compare::mod_revision(key.clone(), CompareOp::Equal, i64::try_from(stamp).unwrap_or(i64::MAX)),
        };
        let response = self.call((guard, key, bytes), move |mut client, (guard, key, bytes)| async move {
            client.txn(Txn::new().when(vec![guard]).and_then(vec![TxnOp::put(key, bytes, None)])).await
        })?;
        Ok(response.succeeded())
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod connect_retry_tests {
    use super::never_connected;
    use tonic::{Code, Status};

    fn status(code: Code, message: &str) -> etcd_client::Error {
        etcd_client::Error::GRpcStatus(Status::new(code, message))
    }

    #[test]
    fn only_a_request_that_never_connected_is_sent_again() {
        assert!(never_connected(&status(Code::Unavailable, "tcp connect error: Connection refused (os error 111)")));
        assert!(never_connected(&status(Code::Unavailable, "error trying to connect: tcp connect error")));
        // The connection broke after the request may have left: a guarded append could land twice.
        assert!(!never_connected(&status(Code::Unavailable, "transport error: connection reset by peer")));
        assert!(!never_connected(&status(Code::Unavailable, "broken pipe")));
        // etcd answered.
        assert!(!never_connected(&status(Code::FailedPrecondition, "etcdserver: requested lease not found")));
        assert!(!never_connected(&status(Code::DeadlineExceeded, "tcp connect error")));
    }
}
