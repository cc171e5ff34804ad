//! Change requests: a batch of runtime-override edits for one environment is drafted first and
//! goes live only when someone approves it (docs/ROLLOUT.md, "Change requests").
//!
//! A draft is validated on every view it reaches exactly as the real change would be (a dry run
//! of [`ConfigHost::edit_overrides`]) and keeps its base (the version it was drafted on) and its
//! diff. Approving it first checks that none of its keys — or a key under or above one, as a
//! compare-and-set does — changed after the base (else it is refused naming them), then publishes
//! it as ONE normal change through `edit_overrides`, itself a compare-and-set on the base, with a
//! history reason naming the request, its author and its approver. In an environment the tree's
//! [`Policy`] marks `review = "required"`, the author can never approve their own request.
//!
//! The requests are one document replaced whole with compare-and-set on its stamp: in the
//! state directory (`<state>/change-requests.json`) for a SQLite history, beside the shared
//! history (etcd) for a fleet, so every host sees the same requests. The history keeps values
//! only, so a request's lifecycle (drafted, approved, published, rejected, withdrawn) is kept in
//! its own timeline; the server also writes it to its audit log. Roles (who may draft, approve,
//! reject) are the server's to check; this module checks what holds for everyone.

pub mod policy;

use std::collections::BTreeSet;
use std::sync::Arc;

use potter_engine::{Snapshot, ViewKey};
use potter_history::{DocumentStore, HistoryError};

use crate::documents::JsonDocument;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use policy::{Policy, PolicyFile, Review, INIT_POLICY, POLICY_FILE};

use crate::error::Error;
use crate::events::ChangeOrigin;
use crate::options::Options;
use crate::runtime::{ConfigHost, SetRequest};

/// The requests' document among a store's documents (`<state>/change-requests.json`).
const DOCUMENT: &str = "change-requests";

/// Largest document written: closed requests beyond it are dropped oldest first (the history
/// and the audit log keep their trail); if the open ones alone exceed it, a new draft is refused.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Longest title accepted, in characters.
const MAX_TITLE_CHARS: usize = 200;

/// Why a change request could not be drafted, approved, rejected or withdrawn.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// A direct write in an environment that requires review, by someone who may not break the glass.
    #[error("environment `{environment}` requires review: open a change request (`potter-config change create --env {environment} KEY=VALUE --title ...`, or POST /v1/changes) and have someone else approve it")]
    ReviewRequired {
        /// The environment.
        environment: String,
    },
    /// No request has this id.
    #[error("no change request {id}")]
    Unknown {
        /// The id asked for.
        id: u64,
    },
    /// The request is no longer open.
    #[error("change request {id} is {state}; only an open request can be {action}")]
    NotOpen {
        /// The request.
        id: u64,
        /// Its state.
        state: RequestState,
        /// What was asked (`approved`, `rejected`, `withdrawn`).
        action: &'static str,
    },
    /// The author of a request asked to approve it where review is required.
    #[error("change request {id} in `{environment}`: `{author}` drafted it and cannot approve it; `{environment}` requires review by a second person")]
    SelfApproval {
        /// The request.
        id: u64,
        /// Its environment.
        environment: String,
        /// Its author (the approver asked).
        author: String,
    },
    /// Someone other than the author asked to withdraw it.
    #[error("change request {id}: only its author `{author}` may withdraw it (`{actor}` asked; a publisher may reject it)")]
    NotAuthor {
        /// The request.
        id: u64,
        /// Its author.
        author: String,
        /// Who asked.
        actor: String,
    },
    /// Keys of the request changed after its base.
    #[error("change request {id} in `{environment}`: {} changed after its base version {base}; nothing was published (draft it again on the current values)", describe_conflicts(.conflicts))]
    Conflict {
        /// The request.
        id: u64,
        /// Its environment.
        environment: String,
        /// The version it was drafted on.
        base: u64,
        /// Each conflicting key of the request with the change that moved it.
        conflicts: Vec<KeyConflict>,
    },
    /// A draft without edits, a title, or with a key given twice.
    #[error("a change request needs {0}")]
    Incomplete(String),
    /// The requests' document could not be read or replaced.
    #[error("change requests in {location}: {message}")]
    Store {
        /// The state directory or shared store.
        location: String,
        /// What failed.
        message: String,
    },
}

fn describe_conflicts(conflicts: &[KeyConflict]) -> String {
    let keys: Vec<String> = conflicts.iter().map(|c| if c.key == c.changed { format!("`{}` (version {})", c.key, c.version) } else { format!("`{}` (`{}` at version {})", c.key, c.changed, c.version) }).collect();
    keys.join(", ")
}

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RequestState {
    /// Drafted, waiting for approval.
    Open,
    /// Approved and being published (back to open if the publication fails).
    Approved,
    /// Approved and live.
    Published,
    /// Refused by a publisher.
    Rejected,
    /// Taken back by its author.
    Withdrawn,
}

impl RequestState {
    /// Every state.
    pub const ALL: [RequestState; 5] = [RequestState::Open, RequestState::Approved, RequestState::Published, RequestState::Rejected, RequestState::Withdrawn];

    /// Its name in documents, routes and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Open => "open",
            RequestState::Approved => "approved",
            RequestState::Published => "published",
            RequestState::Rejected => "rejected",
            RequestState::Withdrawn => "withdrawn",
        }
    }
}

impl std::fmt::Display for RequestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RequestState {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        RequestState::ALL.into_iter().find(|state| state.as_str() == name).ok_or_else(|| format!("unknown state `{name}` (one of: open, approved, published, rejected, withdrawn)"))
    }
}

/// One edit of a request: a runtime override set (`value`) or removed (`null`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edit {
    /// The dotted key.
    pub key: String,
    /// The value (a secret as its ciphertext); None removes the override.
    #[serde(default)]
    pub value: Option<Value>,
}

/// A key of a request, as its environment's view has it now and as the request would make it
/// (secrets `<redacted>`, absent `null`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyDiff {
    /// The key.
    pub key: String,
    /// The value now.
    pub current: Value,
    /// The value once published.
    pub proposed: Value,
}

/// A key of a request that changed after the request's base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyConflict {
    /// The request's key.
    pub key: String,
    /// The key that changed: the same, one under it, or one above it.
    pub changed: String,
    /// The newest version that changed it.
    pub version: u64,
}

/// What happened to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Milestone {
    /// Drafted (validated) by its author.
    Created,
    /// Approved by a publisher; its publication follows.
    Approved,
    /// Live, as `version`.
    Published,
    /// The publication after an approval failed (`note` says why); the request is open again.
    PublicationFailed,
    /// Refused by a publisher (`note`: the reason).
    Rejected,
    /// Taken back by its author.
    Withdrawn,
}

impl Milestone {
    /// Its name in documents and output (`publication-failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Milestone::Created => "created",
            Milestone::Approved => "approved",
            Milestone::Published => "published",
            Milestone::PublicationFailed => "publication-failed",
            Milestone::Rejected => "rejected",
            Milestone::Withdrawn => "withdrawn",
        }
    }
}

/// One entry of a request's own timeline: who, when, what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// What happened.
    pub milestone: Milestone,
    /// Who (`token:<name>`, `cli:<name>`).
    pub actor: String,
    /// RFC 3339, UTC, milliseconds.
    pub timestamp: String,
    /// A rejection's reason, a failed publication's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The version a publication went live as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

impl Event {
    fn now(milestone: Milestone, actor: &str) -> Self {
        let timestamp = crate::documents::timestamp(crate::observers::now_ms() as i64);
        Self { milestone, actor: actor.to_owned(), timestamp, note: None, version: None }
    }
}

/// One change request as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRequest {
    /// Increasing, never reused.
    pub id: u64,
    /// The environment whose runtime overrides it edits.
    pub environment: String,
    /// What it does, for the people who review it.
    pub title: String,
    /// Who drafted it.
    pub author: String,
    /// The live version it was drafted (validated) on.
    pub base: u64,
    /// Where it is in its life.
    pub state: RequestState,
    /// The edits, in the order given.
    pub edits: Vec<Edit>,
    /// Its diff as drafted (secrets `<redacted>`).
    pub diff: Vec<KeyDiff>,
    /// The version its publication went live as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_version: Option<u64>,
    /// Who did what, oldest first.
    pub timeline: Vec<Event>,
}

impl ChangeRequest {
    /// The keys it edits.
    pub fn keys(&self) -> Vec<String> {
        self.edits.iter().map(|edit| edit.key.clone()).collect()
    }

    /// Who approved it (the latest approval), if anyone did.
    pub fn approver(&self) -> Option<&str> {
        self.timeline.iter().rev().find(|event| event.milestone == Milestone::Approved).map(|event| event.actor.as_str())
    }

    fn edit_pairs(&self) -> Vec<(String, Option<Value>)> {
        self.edits.iter().map(|edit| (edit.key.clone(), edit.value.clone())).collect()
    }

    fn ensure_open(&self, action: &'static str) -> Result<(), Error> {
        match self.state {
            RequestState::Open => Ok(()),
            state => Err(RequestError::NotOpen { id: self.id, state, action }.into()),
        }
    }
}

/// A request to draft: its environment, title and edits (key → value, None removes).
#[derive(Debug, Clone)]
pub struct Draft {
    /// The environment.
    pub environment: String,
    /// What it does.
    pub title: String,
    /// The edits, as `ConfigHost::edit_overrides` takes them.
    pub edits: Vec<(String, Option<Value>)>,
}

/// Who acts on a request and through what (the origin of the publication's history record).
#[derive(Debug, Clone)]
pub struct Actor {
    /// `token:<name>`, `cli:<name>`: compared to tell an author from an approver.
    pub name: String,
    /// `Api` or `Cli`.
    pub origin: ChangeOrigin,
}

impl Actor {
    /// `name` acting through `origin`.
    pub fn new(origin: ChangeOrigin, name: impl Into<String>) -> Self {
        Self { name: name.into(), origin }
    }
}

/// How an approved request goes live.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Release {
    /// One change, live for every view of the environment when approved.
    #[default]
    AtOnce,
    /// As a progressive rollout of its edits (sets only) with this cohort and these steps
    /// (docs/ROLLOUT.md): its first step is the publication; the rollout goes on from there.
    Rollout {
        /// Who it reaches first.
        cohort: crate::rollouts::Cohort,
        /// Its steps.
        steps: Vec<crate::rollouts::Step>,
    },
}

/// A request as it stands now: for an open one, its diff against the current values (rebased
/// when the base moved on without touching its keys) or the keys that moved under it.
#[derive(Debug, Clone)]
pub struct Standing {
    /// The request.
    pub request: ChangeRequest,
    /// The diff against the current values (an open request without conflicts), else as drafted.
    pub diff: Vec<KeyDiff>,
    /// True when the base moved on and the diff was recomputed against the current values.
    pub rebased: bool,
    /// Keys that changed after the base: an approval is refused while there are any.
    pub conflicts: Vec<KeyConflict>,
    /// Why the request would not validate on the current configuration (empty: it does).
    pub problems: Vec<String>,
}

/// The requests' document: every request, and the last id handed out.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RequestsDocument {
    last_id: u64,
    requests: Vec<ChangeRequest>,
}

/// Where the requests are kept: a document of the state directory, or of the shared store.
#[derive(Clone)]
pub struct RequestStore {
    document: JsonDocument<RequestsDocument>,
}

impl RequestStore {
    /// The store of a running host (the shared store's documents when it has one).
    pub fn of_host(host: &ConfigHost) -> Self {
        Self::over(host.shared_documents(), &host.options().state_dir)
    }

    /// The store of the state (and `--store`) that `options` name, without a host.
    pub fn open(options: &Options) -> Result<Self, Error> {
        Ok(Self::over(crate::recording::HistoryDatabase::open(options)?.documents(), &options.state_dir))
    }

    fn over(shared: Option<Arc<dyn DocumentStore>>, state_dir: &std::path::Path) -> Self {
        Self { document: JsonDocument::new(shared, state_dir, DOCUMENT, |location, message| RequestError::Store { location, message }.into()) }
    }

    /// The requests of `environment` (None: every one) in `state` (None: any), newest first.
    pub fn list(&self, environment: Option<&str>, state: Option<RequestState>) -> Result<Vec<ChangeRequest>, Error> {
        let (_, document) = self.document.read()?;
        let mut requests: Vec<ChangeRequest> =
            document.requests.into_iter().filter(|request| environment.is_none_or(|e| request.environment == e) && state.is_none_or(|s| request.state == s)).collect();
        requests.reverse();
        Ok(requests)
    }

    /// The request with this id.
    pub fn get(&self, id: u64) -> Result<ChangeRequest, Error> {
        let (_, document) = self.document.read()?;
        document.requests.into_iter().find(|request| request.id == id).ok_or_else(|| RequestError::Unknown { id }.into())
    }

    /// Reads, edits and replaces the document with compare-and-set on its stamp.
    fn edit<T>(&self, change: impl FnMut(&mut RequestsDocument) -> Result<T, Error>) -> Result<T, Error> {
        self.document.edit(change, |document| self.fitted(document))
    }

    /// The document's bytes, closed requests dropped oldest first while it is too large.
    fn fitted(&self, document: &mut RequestsDocument) -> Result<Vec<u8>, Error> {
        loop {
            let bytes = serde_json::to_vec_pretty(document).expect("change requests serialize");
            if bytes.len() <= MAX_DOCUMENT_BYTES {
                return Ok(bytes);
            }
            let closed = document.requests.iter().position(|request| matches!(request.state, RequestState::Published | RequestState::Rejected | RequestState::Withdrawn));
            match closed {
                Some(index) => {
                    document.requests.remove(index);
                }
                None => return Err(self.document.failure(format!("the open requests exceed {MAX_DOCUMENT_BYTES} bytes; approve, reject or withdraw some first"))),
            }
        }
    }

    /// Changes request `id` in place and returns it as written.
    fn update(&self, id: u64, mut change: impl FnMut(&mut ChangeRequest) -> Result<(), Error>) -> Result<ChangeRequest, Error> {
        self.edit(|document| {
            let request = document.requests.iter_mut().find(|request| request.id == id).ok_or(RequestError::Unknown { id })?;
            change(request)?;
            Ok(request.clone())
        })
    }
}

/// The change requests of a host: draft, show, approve (publish), reject, withdraw.
pub struct ChangeRequests {
    host: ConfigHost,
    store: RequestStore,
}

impl ConfigHost {
    /// The change requests of this host's tree, kept where its history is.
    pub fn change_requests(&self) -> ChangeRequests {
        ChangeRequests::new(self.clone(), RequestStore::of_host(self))
    }
}

impl ChangeRequests {
    /// The requests of `store`, validated and published through `host`.
    pub fn new(host: ConfigHost, store: RequestStore) -> Self {
        Self { host, store }
    }

    /// Where the requests are kept.
    pub fn store(&self) -> &RequestStore {
        &self.store
    }

    /// The tree's review policy, read now (an edit of `policy.toml` counts from the next call).
    pub fn policy(&self) -> Result<Policy, Error> {
        Policy::load(&self.host.options().root)
    }

    /// Drafts a request: refused unless it validates on every view it reaches (the report names
    /// the view and the key). Its base is the live version it was validated on.
    pub fn create(&self, draft: Draft, author: &Actor) -> Result<ChangeRequest, Error> {
        let title = draft.title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS || title.chars().any(char::is_control) {
            return Err(RequestError::Incomplete(format!("a title of 1 to {MAX_TITLE_CHARS} printable characters")).into());
        }
        if draft.edits.is_empty() {
            return Err(RequestError::Incomplete("at least one edit (KEY=VALUE)".to_owned()).into());
        }
        let mut seen = BTreeSet::new();
        for (key, value) in &draft.edits {
            potter_engine::parse_key_path(key)?;
            if value.is_some() {
                crate::recording::check_recordable_key(key).map_err(|message| Error::History(HistoryError::InvalidChange(message)))?;
            }
            if !seen.insert(key.as_str()) {
                return Err(RequestError::Incomplete(format!("each key once (`{key}` is given twice)")).into());
            }
        }
        let (diff, base) = self.preview(&draft.environment, &draft.edits, author.origin)?;
        let edits: Vec<Edit> = draft.edits.into_iter().map(|(key, value)| Edit { key, value }).collect();
        let created = self.store.edit(|document| {
            document.last_id += 1;
            let request = ChangeRequest {
                id: document.last_id,
                environment: draft.environment.clone(),
                title: title.to_owned(),
                author: author.name.clone(),
                base,
                state: RequestState::Open,
                edits: edits.clone(),
                diff: diff.clone(),
                published_version: None,
                timeline: vec![Event::now(Milestone::Created, &author.name)],
            };
            document.requests.push(request.clone());
            Ok(request)
        })?;
        tracing::info!(id = created.id, environment = %created.environment, author = %created.author, keys = created.edits.len(), "change request drafted");
        Ok(created)
    }

    /// The request `id` as it stands now (see [`Standing`]).
    pub fn show(&self, id: u64) -> Result<Standing, Error> {
        let request = self.store.get(id)?;
        let mut standing = Standing { diff: request.diff.clone(), rebased: false, conflicts: Vec::new(), problems: Vec::new(), request };
        if standing.request.state != RequestState::Open {
            return Ok(standing);
        }
        standing.conflicts = self.conflicts(&standing.request)?;
        if !standing.conflicts.is_empty() {
            return Ok(standing);
        }
        match self.preview(&standing.request.environment, &standing.request.edit_pairs(), ChangeOrigin::Api) {
            Ok((diff, version)) => {
                standing.rebased = version != standing.request.base;
                standing.diff = diff;
            }
            Err(error @ Error::Invalid(_)) => standing.problems = error.diagnostics(),
            Err(other) => return Err(other),
        }
        Ok(standing)
    }

    /// Approves request `id` on behalf of `approver` and publishes it as `release` says; returns
    /// it published. Refused when it is not open, when the approver drafted it in an environment
    /// that requires review, or when any of its keys changed after its base (naming them); a
    /// publication that fails (does not validate any more) leaves it open, the failure noted.
    pub fn approve(&self, id: u64, approver: &Actor, release: Release) -> Result<ChangeRequest, Error> {
        let request = self.store.get(id)?;
        request.ensure_open("approved")?;
        if self.policy()?.review_required(&request.environment) && approver.name == request.author {
            return Err(RequestError::SelfApproval { id, environment: request.environment.clone(), author: request.author.clone() }.into());
        }
        let conflicts = self.conflicts(&request)?;
        if !conflicts.is_empty() {
            return Err(RequestError::Conflict { id, environment: request.environment.clone(), base: request.base, conflicts }.into());
        }
        // The claim: of two approvals at once, only one moves the request out of `open`.
        let claimed = self.store.update(id, |request| {
            request.ensure_open("approved")?;
            request.state = RequestState::Approved;
            request.timeline.push(Event::now(Milestone::Approved, &approver.name));
            Ok(())
        })?;
        let published = match release {
            Release::AtOnce => self.publish_at_once(&claimed, approver).map(|version| (version, None)),
            Release::Rollout { cohort, steps } => self.publish_as_rollout(&claimed, approver, cohort, steps),
        };
        match published {
            Ok((version, note)) => {
                let request = self.store.update(id, |request| {
                    request.state = RequestState::Published;
                    request.published_version = Some(version);
                    request.timeline.push(Event { version: Some(version), note: note.clone(), ..Event::now(Milestone::Published, &approver.name) });
                    Ok(())
                })?;
                tracing::info!(id, environment = %request.environment, approver = %approver.name, version, "change request published");
                Ok(request)
            }
            Err(error) => {
                let error = self.as_conflict(&claimed, error);
                let note = error.to_string();
                self.store.update(id, |request| {
                    request.state = RequestState::Open;
                    request.timeline.push(Event { note: Some(note.clone()), ..Event::now(Milestone::PublicationFailed, &approver.name) });
                    Ok(())
                })?;
                Err(error)
            }
        }
    }

    /// Refuses request `id` with a reason; nothing changes in the configuration.
    pub fn reject(&self, id: u64, actor: &Actor, reason: &str) -> Result<ChangeRequest, Error> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(RequestError::Incomplete("a reason to be rejected".to_owned()).into());
        }
        self.store.update(id, |request| {
            request.ensure_open("rejected")?;
            request.state = RequestState::Rejected;
            request.timeline.push(Event { note: Some(reason.to_owned()), ..Event::now(Milestone::Rejected, &actor.name) });
            Ok(())
        })
    }

    /// Takes request `id` back; only its author may.
    pub fn withdraw(&self, id: u64, actor: &Actor) -> Result<ChangeRequest, Error> {
        self.store.update(id, |request| {
            request.ensure_open("withdrawn")?;
            if request.author != actor.name {
                return Err(RequestError::NotAuthor { id, author: request.author.clone(), actor: actor.name.clone() }.into());
            }
            request.state = RequestState::Withdrawn;
            request.timeline.push(Event::now(Milestone::Withdrawn, &actor.name));
            Ok(())
        })
    }

    /// The request's keys that changed after its base: the key itself or one under it (what a
    /// compare-and-set refuses), or one above it (an object replaced by a value).
    pub fn conflicts(&self, request: &ChangeRequest) -> Result<Vec<KeyConflict>, Error> {
        let Some(history) = self.host.history_store()? else { return Ok(Vec::new()) };
        let mut conflicts = Vec::new();
        for key in request.keys() {
            let ancestors = key.match_indices('.').map(|(at, _)| (key[..at].to_owned(), false));
            for (probe, subtree) in std::iter::once((key.clone(), true)).chain(ancestors) {
                if let Some((changed, version)) = crate::recording::changed_since(&*history, &request.environment, &probe, request.base, subtree)? {
                    conflicts.push(KeyConflict { key: key.clone(), changed, version });
                    break;
                }
            }
        }
        Ok(conflicts)
    }

    /// Validates `edits` on the current configuration without applying them: their diff against
    /// the current values and the version they were validated on.
    fn preview(&self, environment: &str, edits: &[(String, Option<Value>)], origin: ChangeOrigin) -> Result<(Vec<KeyDiff>, u64), Error> {
        let proposed = self.host.edit_overrides(environment, edits, SetRequest::new(origin, "change request (dry run)"), true)?;
        let current = self.host.snapshot();
        let diff = edits.iter().map(|(key, _)| KeyDiff { key: key.clone(), current: shown_value(&current, environment, key), proposed: shown_value(&proposed, environment, key) }).collect();
        Ok((diff, proposed.version()))
    }

    /// One change through the host's commit path, a compare-and-set on the request's base.
    fn publish_at_once(&self, request: &ChangeRequest, approver: &Actor) -> Result<u64, Error> {
        let mut change = SetRequest::new(approver.origin, approver.name.clone());
        change.reason = Some(publication_reason(request, &approver.name));
        change.if_version = Some(request.base);
        Ok(self.host.edit_overrides(&request.environment, &request.edit_pairs(), change, false)?.version())
    }

    /// Starts a rollout of the request's edits (refused when one is a removal): its first step is
    /// the publication. Returns that step's version and a note naming the rollout. The base was
    /// checked for conflicts just before (a rollout's start is not itself a compare-and-set).
    fn publish_as_rollout(&self, request: &ChangeRequest, approver: &Actor, cohort: crate::rollouts::Cohort, steps: Vec<crate::rollouts::Step>) -> Result<(u64, Option<String>), Error> {
        let mut edits = Vec::with_capacity(request.edits.len());
        for edit in &request.edits {
            let Some(value) = &edit.value else {
                return Err(crate::rollouts::RolloutError::Plan(format!("sets only to publish as a rollout (`{}` removes an override: publish at once)", edit.key)).into());
            };
            edits.push((edit.key.clone(), value.clone()));
        }
        let plan = crate::rollouts::Plan { environment: request.environment.clone(), title: request.title.clone(), edits, cohort, steps };
        let rollout = self.host.rollouts().start(plan, approver)?;
        let version = rollout.timeline.first().and_then(|event| event.version).unwrap_or_else(|| self.host.snapshot().version());
        Ok((version, Some(format!("as rollout {}", rollout.id))))
    }

    /// A compare-and-set refusal of the publication (a key moved between the check and the
    /// commit) as the request's conflict.
    fn as_conflict(&self, request: &ChangeRequest, error: Error) -> Error {
        match error {
            Error::History(HistoryError::Conflict { key, actual, .. }) => {
                let conflicts = vec![KeyConflict { key: key.clone(), changed: key, version: actual }];
                RequestError::Conflict { id: request.id, environment: request.environment.clone(), base: request.base, conflicts }.into()
            }
            other => other,
        }
    }
}

/// The edits a JSON Merge Patch (RFC 7386) of runtime overrides stands for, in order: a member
/// `null` removes its key, an object with members recurses, anything else sets the key. The body
/// of `PATCH /v1/config/{env}` and of a change request (`--file` of `change create`).
pub fn merge_patch_edits(patch: &Map<String, Value>) -> Result<Vec<(String, Option<Value>)>, String> {
    fn walk(at: &str, patch: &Map<String, Value>, edits: &mut Vec<(String, Option<Value>)>) -> Result<(), String> {
        for (name, value) in patch {
            if name.contains('.') {
                return Err(format!("member `{}` of the patch contains `.`: nest objects instead", name.escape_debug()));
            }
            let key = if at.is_empty() { name.clone() } else { format!("{at}.{name}") };
            match value {
                Value::Null => edits.push((key, None)),
                Value::Object(children) if !children.is_empty() => walk(&key, children, edits)?,
                other => edits.push((key, Some(other.clone()))),
            }
        }
        Ok(())
    }
    let mut edits = Vec::new();
    walk("", patch, &mut edits)?;
    Ok(edits)
}

/// The history reason of a request's publication: its id, title, author and approver.
pub fn publication_reason(request: &ChangeRequest, approver: &str) -> String {
    format!("change request {} \"{}\" by {}, approved by {}", request.id, request.title, request.author, approver)
}

/// The environment view's value at `key`, secrets `<redacted>`, absent `null`.
fn shown_value(snapshot: &Snapshot, environment: &str, key: &str) -> Value {
    let Ok(view) = snapshot.view(&ViewKey::environment(environment)) else { return Value::Null };
    view.get_ref(key).map_or(Value::Null, |value| crate::secret_values::redact(view, key, value))
}
