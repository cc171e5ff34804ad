//! The running configuration: loads layers, builds snapshots and swaps them atomically.
//!
//! Every change — first load, reload, runtime override — goes through [`ConfigHost::apply`]: collect
//! the layers, build a snapshot, check it, and only then swap it in. A failed change leaves the
//! previous snapshot live. Readers load the current snapshot with one atomic pointer read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use potter_engine::{Layer, LayerSource, Location, Rank, Scope, Snapshot, View, ViewKey};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::events::{Cause, ChangeOrigin, EventBus, Published, Subscription, DEFAULT_CAPACITY};
use crate::source::{env, tree};

/// How to find and read the configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config tree.
    pub root: PathBuf,
    /// History, keyrings and caches; never inside the root.
    pub state_dir: PathBuf,
    /// Prefix of configuration environment variables.
    pub env_prefix: String,
    /// Environment variables to use instead of the process's own (embedders and tests).
    pub env_vars: Option<Vec<(String, String)>>,
}

impl Options {
    /// Options for a tree at `root` with the default state directory and the process environment.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self { state_dir: default_state_dir(&root), root, env_prefix: env::DEFAULT_PREFIX.to_owned(), env_vars: None }
    }
}

/// `.potter/` beside the root (`./config` → `./.potter`).
pub fn default_state_dir(root: &Path) -> PathBuf {
    let parent = root.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    parent.join(".potter")
}

/// The configuration host an application embeds.
#[derive(Clone)]
pub struct ConfigHost {
    shared: Arc<Shared>,
}

struct Shared {
    options: Options,
    current: ArcSwap<Snapshot>,
    /// Serialises writers; readers never take it.
    writer: Mutex<WriterState>,
    events: EventBus,
}

/// What only the writer touches: the overrides and the parsed-file cache.
struct WriterState {
    overrides: Overrides,
    files: tree::FileCache,
}

/// Runtime overrides per environment (made durable by the history store).
type Overrides = BTreeMap<String, Map<String, Value>>;

impl ConfigHost {
    /// Loads the tree; fails if any file is unreadable or malformed.
    pub fn open(options: Options) -> Result<Self, Error> {
        let mut state = WriterState { overrides: Overrides::new(), files: tree::FileCache::default() };
        let snapshot = build_snapshot(&options, &state.overrides, &mut state.files, 0)?;
        Ok(Self {
            shared: Arc::new(Shared {
                options,
                current: ArcSwap::from_pointee(snapshot),
                writer: Mutex::new(state),
                events: EventBus::new(DEFAULT_CAPACITY),
            }),
        })
    }

    pub fn options(&self) -> &Options {
        &self.shared.options
    }

    /// The current snapshot (cheap: one reference count).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.current.load_full()
    }

    /// Re-reads every source and swaps in the result; on error the previous snapshot stays live.
    /// Files whose size, times and inode are unchanged are not re-read.
    pub fn reload(&self) -> Result<Arc<Snapshot>, Error> {
        self.reload_because(Cause::new(ChangeOrigin::File, "reload"))
    }

    /// [`ConfigHost::reload`] on behalf of someone (the file watcher is `file-watch`).
    pub fn reload_because(&self, cause: Cause) -> Result<Arc<Snapshot>, Error> {
        let mut state = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        let WriterState { overrides, files } = &mut *state;
        self.apply(overrides, files, cause)
    }

    /// Changes of `prefix` in one view, from now on.
    pub fn subscribe(&self, view: &ViewKey, prefix: &str) -> Result<Subscription, Error> {
        if !prefix.is_empty() {
            potter_engine::parse_key_path(prefix)?;
        }
        let receiver = self.shared.events.subscribe();
        let baseline = self.snapshot();
        baseline.view(view)?;
        let shared = self.shared.clone();
        Ok(Subscription::new(receiver, view.clone(), prefix, baseline, Box::new(move || shared.current.load_full())))
    }

    /// Sets a runtime override (precedence above everything else) in one environment.
    pub fn set(&self, environment: &str, key: &str, value: Value) -> Result<Arc<Snapshot>, Error> {
        self.change_override(environment, key, Some(value))
    }

    /// Removes a runtime override.
    pub fn unset(&self, environment: &str, key: &str) -> Result<Arc<Snapshot>, Error> {
        self.change_override(environment, key, None)
    }

    fn change_override(&self, environment: &str, key: &str, value: Option<Value>) -> Result<Arc<Snapshot>, Error> {
        let segments = potter_engine::parse_key_path(key)?;
        self.snapshot().view(&ViewKey::environment(environment))?;
        let mut state = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        let WriterState { overrides, files } = &mut *state;
        let mut proposed = overrides.clone();
        let tree = proposed.entry(environment.to_owned()).or_default();
        match value {
            Some(value) => set_path(tree, &segments, value),
            None => remove_path(tree, &segments),
        }
        let snapshot = self.apply(&proposed, files, Cause::new(ChangeOrigin::Cli, "runtime"))?;
        *overrides = proposed;
        Ok(snapshot)
    }

    /// The one path every change takes: build, check, swap, publish. A change that alters nothing
    /// keeps the current snapshot (no new version, no event).
    fn apply(&self, overrides: &Overrides, files: &mut tree::FileCache, cause: Cause) -> Result<Arc<Snapshot>, Error> {
        let before = self.shared.current.load_full();
        let built = build_snapshot(&self.shared.options, overrides, files, before.version() + 1);
        let snapshot = match built {
            Ok(snapshot) => Arc::new(snapshot),
            Err(error) => {
                self.shared.events.publish(Published::Rejected { cause, diagnostics: vec![error.to_string()] });
                return Err(error);
            }
        };
        if same_layers(before.layers(), snapshot.layers()) && before.axes() == snapshot.axes() {
            return Ok(before);
        }
        self.shared.current.store(snapshot.clone());
        self.shared.events.publish(Published::Applied { cause, after: snapshot.clone() });
        Ok(snapshot)
    }

    /// A handle on one view; reads through it always see the latest snapshot.
    pub fn view(&self, environment: &str, service: Option<&str>, user: Option<&str>) -> Result<ViewHandle, Error> {
        let key = ViewKey::new(environment, service, user);
        self.snapshot().view(&key)?;
        Ok(ViewHandle { shared: self.shared.clone(), key })
    }
}

/// True when two layer lists would merge to the same views.
fn same_layers(a: &[Arc<Layer>], b: &[Arc<Layer>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            Arc::ptr_eq(x, y) || (x.name == y.name && x.rank == y.rank && x.order == y.order && x.scope == y.scope && x.data == y.data && x.locations == y.locations)
        })
}

fn build_snapshot(options: &Options, overrides: &Overrides, files: &mut tree::FileCache, version: u64) -> Result<Snapshot, Error> {
    let listing = tree::scan(&options.root)?;
    // Keyrings are read before the files so a concurrent `secrets rotate` cannot retire a key a file still uses.
    let mut keyrings = crate::secrets::Keyrings::resolve_all(options, listing.axes.environments.iter());
    let mut layers: Vec<Arc<Layer>> = Vec::with_capacity(listing.files.len() + 2 + overrides.len());
    for layer in files.load_all(&listing.files)? {
        layers.push(layer);
    }
    layers.push(Arc::new(match &options.env_vars {
        Some(vars) => potter_engine::envvars::env_layer(&options.env_prefix, vars.iter().cloned()),
        None => env::from_process(&options.env_prefix),
    }));
    for (environment, tree) in overrides {
        layers.push(Arc::new(override_layer(environment, tree)));
    }
    // Decrypt ciphertexts, mark secret paths; the extra patterns are for schema `"secret": true` paths.
    crate::secrets::decrypt_layers(&mut keyrings, &mut layers, &[])?;
    Ok(Snapshot::new(version, layers, listing.axes))
}

fn override_layer(environment: &str, tree: &Map<String, Value>) -> Layer {
    let mut layer = Layer::new(format!("overrides/{environment}"), Rank::Overrides, Scope::environment(environment), LayerSource::Overrides, tree.clone());
    layer.locations.values_mut().for_each(|location| *location = Location::Layer);
    layer
}

fn set_path(tree: &mut Map<String, Value>, segments: &[&str], value: Value) {
    let (last, parents) = segments.split_last().expect("a key path has at least one segment");
    let mut node = tree;
    for segment in parents {
        let child = node.entry(segment.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if !child.is_object() {
            *child = Value::Object(Map::new());
        }
        node = child.as_object_mut().expect("just made an object");
    }
    node.insert(last.to_string(), value);
}

fn remove_path(tree: &mut Map<String, Value>, segments: &[&str]) {
    fn remove(node: &mut Map<String, Value>, segments: &[&str]) {
        match segments {
            [last] => {
                node.shift_remove(*last);
            }
            [first, rest @ ..] => {
                if let Some(Value::Object(child)) = node.get_mut(*first) {
                    remove(child, rest);
                    if child.is_empty() {
                        node.shift_remove(*first);
                    }
                }
            }
            [] => {}
        }
    }
    remove(tree, segments);
}

/// Typed, lock-free reads of one view of the live configuration.
#[derive(Clone)]
pub struct ViewHandle {
    shared: Arc<Shared>,
    key: ViewKey,
}

impl ViewHandle {
    pub fn key(&self) -> &ViewKey {
        &self.key
    }

    /// The view as of the current snapshot.
    pub fn current(&self) -> Result<Arc<View>, Error> {
        Ok(self.shared.current.load().view(&self.key)?.clone())
    }

    /// The raw value at `key`, or None when it is not set.
    pub fn value(&self, key: &str) -> Option<Value> {
        let snapshot = self.shared.current.load();
        snapshot.view(&self.key).ok()?.get(key)
    }

    /// The value at `key` as `T` (`get::<u32>("api.rate_limit")`).
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, Error> {
        let snapshot = self.shared.current.load();
        let view = snapshot.view(&self.key)?;
        let value = view.get_ref(key).ok_or_else(|| Error::NotFound(key.to_owned()))?;
        T::deserialize(value).map_err(|e| Error::Type { path: key.to_owned(), message: crate::secrets::safe_type_message(view, key, e.to_string()) })
    }

    /// The value at `key` as `T`, or `default` when the key is not set. A value of the wrong type is
    /// an error, not a silent default.
    pub fn get_or<T: DeserializeOwned>(&self, key: &str, default: T) -> Result<T, Error> {
        match self.get(key) {
            Err(Error::NotFound(_)) => Ok(default),
            other => other,
        }
    }

    /// A whole subtree as `T` (`extract::<ApiSettings>("api")`).
    pub fn extract<T: DeserializeOwned>(&self, prefix: &str) -> Result<T, Error> {
        self.get(prefix)
    }
}

