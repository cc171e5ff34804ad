//! Long work a caller may want to show while it runs (a terminal progress bar): compiling a
//! plugin the first time, re-encrypting a tree, validating a rollback. The libraries report
//! through [`Progress`]; only the CLI draws (and only on a terminal).

use std::sync::Arc;

/// Receives the long tasks of the host.
pub trait Progress: Send + Sync {
    /// A task begins (`total` steps when known). It ends when the returned task is dropped.
    fn begin(&self, task: &str, total: Option<u64>) -> Box<dyn ProgressTask>;
}

/// One running task: advanced step by step, ended by dropping it.
pub trait ProgressTask: Send {
    /// `steps` more steps are done.
    fn advance(&mut self, steps: u64);
}

/// Where a host reports its long tasks: nowhere by default. Cheap to clone.
#[derive(Clone, Default)]
pub struct ProgressReport(Option<Arc<dyn Progress>>);

impl ProgressReport {
    pub fn to(progress: Arc<dyn Progress>) -> Self {
        ProgressReport(Some(progress))
    }

    /// Begins `task`, shown by the receiver if there is one.
    pub fn begin(&self, task: &str, total: Option<u64>) -> Box<dyn ProgressTask> {
        match &self.0 {
            Some(progress) => progress.begin(task, total),
            None => Box::new(Unshown),
        }
    }
}

impl std::fmt::Debug for ProgressReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "ProgressReport(shown)" } else { "ProgressReport(none)" })
    }
}

struct Unshown;

impl ProgressTask for Unshown {
    fn advance(&mut self, _steps: u64) {}
}
