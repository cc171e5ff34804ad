//! Long work shown on a terminal: the library's [`potter_config::Progress`] reports drawn by
//! indicatif on stderr — only when stderr is a terminal, so pipes, logs and scripts get no bars.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use potter_config::{Progress, ProgressReport, ProgressTask};

/// Bars on stderr when it is a terminal; nowhere otherwise.
pub fn for_stderr() -> ProgressReport {
    if std::io::stderr().is_terminal() {
        ProgressReport::to(Arc::new(TerminalProgress))
    } else {
        ProgressReport::default()
    }
}

struct TerminalProgress;

impl Progress for TerminalProgress {
    fn begin(&self, task: &str, total: Option<u64>) -> Box<dyn ProgressTask> {
        let bar = match total {
            Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
                .with_style(ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}").expect("a valid template").progress_chars("=> ")),
            None => {
                let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"));
                // A spinner moves on its own: the task reports no steps.
                spinner.enable_steady_tick(Duration::from_millis(120));
                spinner
            }
        };
        bar.set_message(task.to_owned());
        Box::new(TerminalTask(bar))
    }
}

struct TerminalTask(ProgressBar);

impl ProgressTask for TerminalTask {
    fn advance(&mut self, steps: u64) {
        self.0.inc(steps);
    }
}

impl Drop for TerminalTask {
    // The line is cleared when the task ends: what it did is printed by the command itself.
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
