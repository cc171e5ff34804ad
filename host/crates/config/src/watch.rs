//! File watching: a change anywhere under the watched paths becomes one debounced reload.
//!
//! Editors and deploy tools save in many ways (in-place write, temp file + rename, delete + create,
//! Kubernetes ConfigMap `..data` symlink swaps, `git checkout` of many files); all of them produce
//! some event under the root, and the reload itself decides what changed from file stamps, so the
//! watcher does not need to understand any of them. Events that arrive within the debounce window
//! of each other cause one reload. Two kinds of event say that a save is complete: a file written
//! and closed, and a file or symlink renamed into place. After one of those the window is the
//! shorter `finished_debounce`, so a finished save goes live without waiting out the full debounce,
//! while the events a save makes on its way (a temp file's writes, a truncation) still wait for the
//! rest of it. A reload that meets a save still in flight (a file emptied or gone for a moment, or
//! changing while read) waits for it, up to `max_delay`, before taking anything in
//! (`FileCache::load_settled`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::error::Error;
use crate::events::{Cause, ChangeOrigin};
use crate::plugin_folder::WatchedSource;
use crate::runtime::{ConfigHost, WeakHost};

/// How to watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    /// Quiet time after the last event before reloading.
    pub debounce: Duration,
    /// Quiet time instead of `debounce` when the last event finished a save: a written file closed
    /// (not a temporary one: hidden, or a `~` backup), or a file or symlink renamed into place.
    pub finished_debounce: Duration,
    /// Longest a stream of events may postpone a reload.
    pub max_delay: Duration,
    /// Poll at this interval instead of using filesystem events (for filesystems without them).
    pub poll_interval: Option<Duration>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self { debounce: Duration::from_millis(10), finished_debounce: Duration::from_millis(2), max_delay: Duration::from_millis(200), poll_interval: None }
    }
}

/// The file events the event-driven watchers of a host have seen, counted, so that a change of
/// the runtime overrides alone can tell that the files are as the last full read found them and
/// build on that read instead of listing the tree again.
#[derive(Debug, Default)]
pub(crate) struct FileEvents {
    /// Event-driven watchers running (a polling watcher sees no events, so it vouches for nothing).
    watchers: AtomicUsize,
    /// Events seen, plus one at each start and stop of a watcher (so an unwatched gap shows).
    seen: AtomicU64,
}

impl FileEvents {
    /// The count to give [`FileEvents::none_since`] later, taken before the files are read; None
    /// while no event-driven watcher runs.
    pub(crate) fn mark(&self) -> Option<u64> {
        (self.watchers.load(Ordering::SeqCst) > 0).then(|| self.seen.load(Ordering::SeqCst))
    }

    /// True when a watcher has run since `mark` was taken and no file event came meanwhile.
    pub(crate) fn none_since(&self, mark: Option<u64>) -> bool {
        mark.is_some_and(|mark| self.watchers.load(Ordering::SeqCst) > 0 && self.seen.load(Ordering::SeqCst) == mark)
    }

    fn seen_one(&self) {
        self.seen.fetch_add(1, Ordering::SeqCst);
    }
}

/// A watcher counted in [`FileEvents::watchers`] until dropped.
struct Counted(Arc<FileEvents>);

impl Counted {
    fn start(events: Arc<FileEvents>) -> Self {
        events.watchers.fetch_add(1, Ordering::SeqCst);
        events.seen_one();
        Self(events)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.seen_one();
        self.0.watchers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running watcher; dropping it stops the watching thread.
pub struct FsWatcher {
    // Dropping the notify watcher and the stop sender closes the channel, which ends the thread.
    backend: Option<Box<dyn notify::Watcher + Send>>,
    stop: Option<mpsc::Sender<Seen>>,
    thread: Option<JoinHandle<()>>,
    counted: Option<Counted>,
}

impl Drop for FsWatcher {
    fn drop(&mut self) {
        // No longer vouching before the events stop coming.
        drop(self.counted.take());
        drop(self.backend.take());
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl FsWatcher {
    /// Watches `paths` recursively and calls `on_change` once per burst of events (or, with
    /// `poll_interval`, once per interval: the reload compares file stamps, so polling is cheap).
    pub fn start(paths: &[PathBuf], options: WatchOptions, on_change: impl FnMut() + Send + 'static) -> Result<Self, Error> {
        Self::start_counting(paths, options, None, on_change)
    }

    /// [`FsWatcher::start`] that also counts each event in `counter` as it arrives (before the
    /// debounce), when it is event-driven.
    pub(crate) fn start_counting(paths: &[PathBuf], options: WatchOptions, counter: Option<Arc<FileEvents>>, mut on_change: impl FnMut() + Send + 'static) -> Result<Self, Error> {
        let (sender, receiver) = mpsc::channel::<Seen>();
        let mut counted = None;
        let backend: Option<Box<dyn notify::Watcher + Send>> = match options.poll_interval {
            // The sender stays in the thread's owner (Self::backend is None) until drop.
            Some(_) => None,
            None => {
                let events = sender.clone();
                let count = counter.clone();
                let roots = paths.to_vec();
                let handler = move |result: notify::Result<notify::Event>| {
                    if let Some(seen) = Seen::of(&result, &roots) {
                        if let Some(count) = &count {
                            count.seen_one();
                        }
                        let _ = events.send(seen);
                    }
                };
                let mut watcher = RecommendedWatcher::new(handler, notify::Config::default()).map_err(|e| watch_error(paths, e))?;
                for path in paths {
                    watcher.watch(path, RecursiveMode::Recursive).map_err(|e| watch_error(paths, e))?;
                }
                // Counted once every path is watched: from here on, no change goes unseen.
                counted = counter.map(Counted::start);
                Some(Box::new(watcher))
            }
        };
        let thread = std::thread::Builder::new()
            .name("potter-watch".into())
            .spawn(move || match options.poll_interval {
                Some(interval) => loop {
                    match receiver.recv_timeout(interval) {
                        Err(mpsc::RecvTimeoutError::Timeout) => on_change(),
                        _ => return,
                    }
                },
                None => {
                    while let Ok(mut last) = receiver.recv() {
                        let first = Instant::now();
                        // Debounce: wait for a quiet window (the last event decides how long), but
                        // never longer than max_delay in total.
                        loop {
                            let remaining = options.max_delay.saturating_sub(first.elapsed());
                            let quiet = match last {
                                Seen::Finished => options.finished_debounce,
                                Seen::Step => options.debounce,
                            };
                            match receiver.recv_timeout(quiet.min(remaining)) {
                                Ok(seen) if !remaining.is_zero() => last = seen,
                                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => break,
                                Err(mpsc::RecvTimeoutError::Disconnected) => return,
                            }
                        }
                        on_change();
                    }
                }
            })
            .map_err(|e| Error::io("watcher thread", e))?;
        Ok(Self { backend, stop: Some(sender), thread: Some(thread), counted })
    }
}

/// What a notify answer means for the debounce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// A change that may be part of a save still going on (a write, a truncation, a removal).
    Step,
    /// A save is complete: a written file closed, or a file or symlink renamed into place.
    Finished,
}

impl Seen {
    /// None for what changes nothing (opens, reads, closes after reading) and for a temporary file
    /// closed after writing (an editor's temp file: its rename into place finishes the save).
    fn of(result: &notify::Result<notify::Event>, roots: &[PathBuf]) -> Option<Self> {
        // Errors (e.g. a watched directory removed, a lost event queue) still mean "look again".
        let Ok(event) = result else { return Some(Self::Step) };
        match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                (!event.paths.iter().any(|path| temporary_below(path, roots))).then_some(Self::Finished)
            }
            EventKind::Access(_) => None,
            EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => Some(Self::Finished),
            _ => Some(Self::Step),
        }
    }
}

/// True when a name on the way from the watched root to `path` is a temporary one: it starts with
/// a dot (a temp file, a ConfigMap's `..2026_…` folder) or ends with `~` (an editor's backup). The
/// root's own path does not count: a tree under `~/.config` is not hidden.
fn temporary_below(path: &Path, roots: &[PathBuf]) -> bool {
    let temporary = |name: &std::ffi::OsStr| {
        let name = name.to_string_lossy();
        name.starts_with('.') || name.ends_with('~')
    };
    match roots.iter().find_map(|root| path.strip_prefix(root).ok()) {
        Some(below) => below.components().any(|part| matches!(part, Component::Normal(name) if temporary(name))),
        None => path.file_name().is_some_and(temporary),
    }
}

fn watch_error(paths: &[PathBuf], error: notify::Error) -> Error {
    let shown = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    Error::io(shown, std::io::Error::other(error.to_string()))
}

/// What [`ConfigHost::watch`] runs: the file watcher and the timed checks. Dropping it stops both.
pub struct Watcher {
    _files: FsWatcher,
    _timed: TimedChecks,
    _waits: SourceWaits,
}

/// The push form of sources (0.2.0 `watch`): one thread per watching source and environment
/// calls its `wait-for-change` again and again (each call under the plugin's limits, with a
/// budget below its time limit) and asks the host to poll the source at once when the answer
/// differs from the token it holds. A supervisor thread follows the plugins as they come and go.
/// Dropping it stops them all: each ends after its current wait (they hold only a weak host).
struct SourceWaits {
    stop: Arc<AtomicBool>,
}

/// After a failed wait, the next one comes this much later (the host's own polls and retries go on).
const WAIT_RETRY: Duration = Duration::from_secs(1);

impl SourceWaits {
    fn start(host: &ConfigHost) -> Result<Self, Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let (weak, stopped) = (host.downgrade(), stop.clone());
        std::thread::Builder::new()
            .name("potter-source-waits".into())
            .spawn(move || {
                let mut running: BTreeMap<(String, String, String), Arc<AtomicBool>> = BTreeMap::new();
                while !stopped.load(Ordering::Relaxed) {
                    let Some(host) = weak.upgrade() else { break };
                    let wanted: BTreeSet<(String, String, String)> = host.watched_sources().iter().map(wait_key).collect();
                    drop(host);
                    running.retain(|key, own_stop| {
                        let keep = wanted.contains(key);
                        own_stop.store(!keep, Ordering::Relaxed);
                        keep
                    });
                    for key in wanted {
                        if running.contains_key(&key) {
                            continue;
                        }
                        let own_stop = Arc::new(AtomicBool::new(false));
                        let (weak, own, all) = (weak.clone(), own_stop.clone(), stopped.clone());
                        let spawned = std::thread::Builder::new().name(format!("potter-wait-{}", key.0)).spawn({
                            let key = key.clone();
                            move || wait_loop(&weak, &key, &|| own.load(Ordering::Relaxed) || all.load(Ordering::Relaxed))
                        });
                        if spawned.is_ok() {
                            running.insert(key, own_stop);
                        }
                    }
                    std::thread::sleep(TIMED_CHECK);
                }
                running.values().for_each(|own_stop| own_stop.store(true, Ordering::Relaxed));
            })
            .map_err(|e| Error::io("source waits thread", e))?;
        Ok(Self { stop })
    }
}

impl Drop for SourceWaits {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A wait target's identity: plugin name, module digest (a replaced plugin is a new target) and environment.
fn wait_key(watched: &WatchedSource) -> (String, String, String) {
    (watched.plugin.name().to_owned(), watched.plugin.module_sha256().to_owned(), watched.environment.clone())
}

/// Waits for changes of one source in one environment until `stopped`. A change, the first
/// failure after a success (so the source is marked stale promptly) and the first success after
/// failures (so it recovers promptly) each make the host poll the source now.
fn wait_loop(weak: &WeakHost, key: &(String, String, String), stopped: &dyn Fn() -> bool) {
    let mut failing = false;
    while !stopped() {
        let Some(host) = weak.upgrade() else { return };
        let Some(target) = host.watched_sources().into_iter().find(|watched| wait_key(watched) == *key) else { return };
        drop(host);
        let answer = target.plugin.wait_for_change(&target.environment, target.namespace.clone(), target.known.as_deref());
        let Some(host) = weak.upgrade() else { return };
        let poll_now = match &answer {
            Ok(token) => std::mem::replace(&mut failing, false) || (token.is_some() && *token != target.known),
            Err(_) => !std::mem::replace(&mut failing, true),
        };
        if let Err(error) = &answer {
            tracing::debug!(plugin = %key.0, environment = %key.2, %error, "waiting for a change failed; retrying");
        }
        if poll_now && !stopped() {
            if let Err(error) = host.source_changed(&key.0) {
                tracing::warn!(%error, "reload rejected; the previous configuration stays live");
            }
        }
        drop(host);
        if answer.is_err() {
            std::thread::sleep(WAIT_RETRY);
        }
    }
}

/// What no file event announces, checked on a timer: overrides another process recorded in the
/// history are taken in (at least every `TIMED_CHECK`), and a reload runs when a source plugin's
/// poll interval elapses or a plugin file that was still arriving has settled. Sleeps until the
/// next such moment.
struct TimedChecks {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Longest the timed checks sleep before looking at the history again and asking the host when a
/// plugin is due next.
const TIMED_CHECK: Duration = Duration::from_millis(250);

impl TimedChecks {
    fn start(host: ConfigHost) -> Result<Self, Error> {
        let (stop, stopped) = mpsc::channel::<()>();
        // The same failure (a shared store that stays unreachable) is logged once, not every tick.
        let mut last_sync_error = None;
        let thread = std::thread::Builder::new()
            .name("potter-timed-checks".into())
            .spawn(move || loop {
                let now = Instant::now();
                let wait = host.next_plugin_due().map_or(TIMED_CHECK, |due| due.saturating_duration_since(now).min(TIMED_CHECK));
                match stopped.recv_timeout(wait) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                match host.sync_recorded_overrides() {
                    Err(error) => {
                        let text = error.to_string();
                        if last_sync_error.as_ref() != Some(&text) {
                            tracing::warn!(%error, "cannot take in overrides recorded by another process");
                            last_sync_error = Some(text);
                        }
                    }
                    Ok(()) => last_sync_error = None,
                }
                if host.next_plugin_due().is_some_and(|due| due <= Instant::now()) {
                    if let Err(error) = host.reload_because(Cause::new(ChangeOrigin::Plugin, "plugin-poll")) {
                        tracing::warn!(%error, "reload rejected; the previous configuration stays live");
                    }
                }
            })
            .map_err(|e| Error::io("timed checks thread", e))?;
        Ok(Self { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for TimedChecks {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl ConfigHost {
    /// Reloads on every change under the config root and the plugins folder (actor `file-watch`),
    /// and when a source plugin is due for a poll (actor `plugin-poll`), and takes in overrides
    /// another process recorded, until the watcher is dropped. A rejected
    /// reload keeps the previous snapshot and is published as a `Rejected` event.
    pub fn watch(&self, options: WatchOptions) -> Result<Watcher, Error> {
        // A save in flight (a file emptied or gone for a moment) is waited for up to max_delay.
        self.set_settle_limit(options.max_delay);
        let host = self.clone();
        let root = self.options().root.clone();
        let plugins_dir = self.options().plugins_dir.clone();
        let mut paths = vec![root.clone()];
        // The folder is watched on its own when it lies outside the root (and once it exists).
        if plugins_dir.is_dir() && !plugins_dir.starts_with(&root) {
            paths.push(plugins_dir.clone());
        }
        // Trusting a key (`plugin trust`) gives a refused plugin its chance without touching its files.
        let trust_dir = crate::plugin_folder::trust_dir(self.options());
        if plugins_dir.is_dir() && trust_dir.is_dir() {
            paths.push(trust_dir);
        }
        let files = FsWatcher::start_counting(&paths, options, Some(self.file_events().clone()), move || {
            if let Err(error) = host.reload_because(Cause::new(ChangeOrigin::File, "file-watch")) {
                tracing::warn!(%error, "reload rejected; the previous configuration stays live");
            }
        })?;
        Ok(Watcher { _files: files, _timed: TimedChecks::start(self.clone())?, _waits: SourceWaits::start(self)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange};

    fn event(kind: EventKind, path: &str) -> notify::Result<notify::Event> {
        Ok(notify::Event::new(kind).add_path(PathBuf::from(path)))
    }

    #[test]
    fn a_closed_written_file_or_a_rename_into_place_finishes_a_save() {
        let roots = [PathBuf::from("/home/ann/.config/potter")];
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        let seen = |kind, path| Seen::of(&event(kind, path), &roots);
        assert_eq!(seen(closed, "/home/ann/.config/potter/environments/production.json"), Some(Seen::Finished), "the root's own dots do not count");
        assert_eq!(seen(EventKind::Modify(ModifyKind::Name(RenameMode::To)), "/home/ann/.config/potter/..data"), Some(Seen::Finished));
        assert_eq!(seen(EventKind::Modify(ModifyKind::Name(RenameMode::Both)), "/home/ann/.config/potter/global.json"), Some(Seen::Finished));
        // On its way: a write, a creation, the old name of a rename.
        assert_eq!(seen(EventKind::Modify(ModifyKind::Data(DataChange::Any)), "/home/ann/.config/potter/global.json"), Some(Seen::Step));
        assert_eq!(seen(EventKind::Create(CreateKind::File), "/home/ann/.config/potter/global.json"), Some(Seen::Step));
        assert_eq!(seen(EventKind::Modify(ModifyKind::Name(RenameMode::From)), "/home/ann/.config/potter/.global.json.tmp"), Some(Seen::Step));
        // Temporary files closed: their rename finishes the save. Reads change nothing.
        assert_eq!(seen(closed, "/home/ann/.config/potter/environments/.production.json.tmp"), None);
        assert_eq!(seen(closed, "/home/ann/.config/potter/..2026_12_07/global.json"), None);
        assert_eq!(seen(closed, "/home/ann/.config/potter/global.json~"), None);
        assert_eq!(seen(EventKind::Access(AccessKind::Close(AccessMode::Read)), "/home/ann/.config/potter/global.json"), None);
        // An error still means "look again".
        assert_eq!(Seen::of(&Err(notify::Error::generic("queue overflow")), &roots), Some(Seen::Step));
    }
}
