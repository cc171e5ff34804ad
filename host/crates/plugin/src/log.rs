//! What plugins write to the host log: `host.log` lines and their captured stdout/stderr, as
//! `tracing` events (target `potter_plugin::guest`, field `plugin`), rate-limited per plugin.
//!
//! Each plugin version has one token bucket shared by all its instances and calls:
//! [`LINES_PER_SECOND`] lines a second, bursts up to [`BURST_LINES`]. Lines over it are counted,
//! not logged; the count is reported as one warning (`suppressed N lines`) at most once a
//! second, when the plugin next logs or a call of it ends. So a plugin can never flood the log,
//! whatever it writes and however often it is called.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sandbox::truncate;

/// The `tracing` target of every plugin line (filter with `potter_plugin::guest=warn`).
pub const GUEST_LOG_TARGET: &str = "potter_plugin::guest";
/// Lines per second a plugin may log once its burst is spent.
pub const LINES_PER_SECOND: u32 = 50;
/// Lines a plugin may log at once.
pub const BURST_LINES: u32 = 200;
/// Longest line passed on (longer ones are cut on a character boundary).
pub(crate) const LINE_MAX: usize = 4096;
/// At most one "suppressed" summary per plugin this often.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(1);

/// Level of a plugin line (`host.log` levels; captured stdout and stderr are `Info` and `Warn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// One plugin's log: its name and its rate limit.
pub(crate) struct PluginLog {
    plugin: Arc<str>,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
    /// Lines not logged since the last summary, and when the first of them came.
    suppressed: u64,
    suppressed_since: Option<Instant>,
    last_summary: Option<Instant>,
}

impl PluginLog {
    pub(crate) fn new(plugin: Arc<str>) -> Arc<PluginLog> {
        Arc::new(PluginLog {
            plugin,
            bucket: Mutex::new(Bucket { tokens: f64::from(BURST_LINES), refilled: Instant::now(), suppressed: 0, suppressed_since: None, last_summary: None }),
        })
    }

    /// Logs `message` (cut to [`LINE_MAX`]) unless the plugin is over its rate. `stream` names
    /// the captured stream a line came from (`None` for `host.log`).
    pub(crate) fn line(&self, level: Level, stream: Option<&'static str>, message: &str) {
        if !self.admit() {
            return;
        }
        let plugin = &*self.plugin;
        let message = truncate(message, LINE_MAX);
        // `tracing` needs the level and the field set at compile time: one arm per combination.
        macro_rules! emit {
            ($level:ident) => {
                match stream {
                    Some(stream) => tracing::$level!(target: GUEST_LOG_TARGET, plugin, stream, "{message}"),
                    None => tracing::$level!(target: GUEST_LOG_TARGET, plugin, "{message}"),
                }
            };
        }
        match level {
            Level::Trace => emit!(trace),
            Level::Debug => emit!(debug),
            Level::Info => emit!(info),
            Level::Warn => emit!(warn),
            Level::Error => emit!(error),
        }
    }

    /// Reports the lines suppressed so far unless a report was made less than a second ago
    /// (at the end of every call, so a flood within one call is reported when it ends).
    pub(crate) fn flush(&self) {
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        self.summarize(&mut bucket, Instant::now());
    }

    fn admit(&self) -> bool {
        let now = Instant::now();
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * f64::from(LINES_PER_SECOND)).min(f64::from(BURST_LINES));
        bucket.refilled = now;
        // While lines keep coming, their count is reported once it is a second old.
        if bucket.suppressed_since.is_some_and(|since| now.duration_since(since) >= SUMMARY_INTERVAL) {
            self.summarize(&mut bucket, now);
        }
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            bucket.suppressed += 1;
            bucket.suppressed_since.get_or_insert(now);
            false
        }
    }

    fn summarize(&self, bucket: &mut Bucket, now: Instant) {
        let due = bucket.last_summary.is_none_or(|at| now.duration_since(at) >= SUMMARY_INTERVAL);
        if bucket.suppressed == 0 || !due {
            return;
        }
        tracing::warn!(
            target: GUEST_LOG_TARGET,
            plugin = &*self.plugin,
            suppressed = bucket.suppressed,
            "suppressed {} line(s) of this plugin (over the limit of {LINES_PER_SECOND} lines per second)",
            bucket.suppressed
        );
        bucket.suppressed = 0;
        bucket.suppressed_since = None;
        bucket.last_summary = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_lines_are_counted_and_summarized_once() {
        let log = PluginLog::new(Arc::from("chatty"));
        let admitted = (0..1000).filter(|_| log.admit()).count();
        // The burst, plus what refilled while the loop ran.
        assert!((BURST_LINES as usize..BURST_LINES as usize + 5).contains(&admitted), "{admitted}");
        assert!(log.bucket.lock().unwrap().suppressed > 700);
        log.flush();
        let bucket = log.bucket.lock().unwrap();
        assert_eq!(bucket.suppressed, 0, "reported");
        assert!(bucket.last_summary.is_some());
    }
}
