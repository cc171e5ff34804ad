//! The command's log: every `tracing` event of the host and its plugins (a plugin's `log()` lines,
//! its stdout/stderr, the host's own warnings) goes to stderr, filtered by `--log` / `POTTER_LOG`.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// What is logged when neither `--log` nor `POTTER_LOG` says: warnings and errors of every part.
pub const DEFAULT_FILTER: &str = "warn";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`, plugin lines' `plugin`).
    Json,
}

/// Installs the subscriber for this process. `filter` uses `tracing-subscriber`'s `EnvFilter`
/// syntax (`info`, `warn,potter_plugin=debug`); an unparsable filter is a usage error naming it.
pub fn install(filter: Option<&str>, format: LogFormat) -> Result<(), String> {
    let directives = filter.map(str::trim).filter(|f| !f.is_empty()).unwrap_or(DEFAULT_FILTER);
    let filter = EnvFilter::builder().parse(directives).map_err(|e| format!("--log / POTTER_LOG `{directives}`: {e}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second install (a test calling `run` twice) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
    Ok(())
}
