//! File watching: a change anywhere under the watched paths becomes one debounced reload.
//!
//! Editors and deploy tools save in many ways (in-place write, temp file + rename, delete + create,
//! Kubernetes ConfigMap `..data` symlink swaps, `git checkout` of many files); all of them produce
//! some event under the root, and the reload itself decides what changed from file stamps, so the
//! watcher does not need to understand any of them. Events that arrive within the debounce window
//! of each other cause one reload.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::error::Error;
use crate::events::{Cause, ChangeOrigin};
use crate::runtime::ConfigHost;

/// How to watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    /// Quiet time after the last event before reloading.
    pub debounce: Duration,
    /// Longest a stream of events may postpone a reload.
    pub max_delay: Duration,
    /// Poll at this interval instead of using filesystem events (for filesystems without them).
    pub poll_interval: Option<Duration>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self { debounce: Duration::from_millis(10), max_delay: Duration::from_millis(200), poll_interval: None }
    }
}

/// A running watcher; dropping it stops the watching thread.
pub struct FsWatcher {
    // Dropping the notify watcher and the stop sender closes the channel, which ends the thread.
    backend: Option<Box<dyn notify::Watcher + Send>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for FsWatcher {
    fn drop(&mut self) {
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
    pub fn start(paths: &[PathBuf], options: WatchOptions, mut on_change: impl FnMut() + Send + 'static) -> Result<Self, Error> {
        let (sender, receiver) = mpsc::channel::<()>();
        let backend: Option<Box<dyn notify::Watcher + Send>> = match options.poll_interval {
            // The sender stays in the thread's owner (Self::backend is None) until drop.
            Some(_) => None,
            None => {
                let events = sender.clone();
                let handler = move |result: notify::Result<notify::Event>| {
                    // Errors (e.g. a watched directory removed) still mean "look again".
                    if result.as_ref().map_or(true, |event| !event.kind.is_access()) {
                        let _ = events.send(());
                    }
                };
                let mut watcher = RecommendedWatcher::new(handler, notify::Config::default()).map_err(|e| watch_error(paths, e))?;
                for path in paths {
                    watcher.watch(path, RecursiveMode::Recursive).map_err(|e| watch_error(paths, e))?;
                }
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
                    while receiver.recv().is_ok() {
                        let first = Instant::now();
                        // Debounce: wait for a quiet window, but never longer than max_delay in total.
                        loop {
                            let remaining = options.max_delay.saturating_sub(first.elapsed());
                            match receiver.recv_timeout(options.debounce.min(remaining)) {
                                Ok(()) if !remaining.is_zero() => continue,
                                Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => break,
                                Err(mpsc::RecvTimeoutError::Disconnected) => return,
                            }
                        }
                        on_change();
                    }
                }
            })
            .map_err(|e| Error::io("watcher thread", e))?;
        Ok(Self { backend, stop: Some(sender), thread: Some(thread) })
    }
}

fn watch_error(paths: &[PathBuf], error: notify::Error) -> Error {
    let shown = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    Error::io(shown, std::io::Error::other(error.to_string()))
}

impl ConfigHost {
    /// Reloads on every change under the config root (actor `file-watch`) until the watcher is dropped.
    /// A rejected reload keeps the previous snapshot and is published as a `Rejected` event.
    pub fn watch(&self, options: WatchOptions) -> Result<FsWatcher, Error> {
        let host = self.clone();
        let root = self.options().root.clone();
        FsWatcher::start(&[root], options, move || {
            if let Err(error) = host.reload_because(Cause::new(ChangeOrigin::File, "file-watch")) {
                tracing::warn!(%error, "reload rejected; the previous configuration stays live");
            }
        })
    }
}
