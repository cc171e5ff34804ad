//! `potter-config watch [PREFIX]`: live change events of one view, one line each.

use std::io::Write;
use std::time::Duration;

use potter_engine::ViewKey;

use super::{Cli, Outcome};
use potter_config::Error;
use potter_config::events::Event;
use crate::output::{inline, OutputFormat};
use potter_config::watch::WatchOptions;

/// How long the watcher waits, as given on the command line (milliseconds).
pub struct Quiet {
    pub debounce_ms: u64,
    pub finished_debounce_ms: u64,
    pub poll_ms: Option<u64>,
}

pub fn run(cli: &Cli, prefix: Option<&str>, quiet: Quiet) -> Outcome {
    let host = cli.open()?;
    let key = ViewKey::new(&cli.environment, cli.service.as_deref(), cli.user.as_deref());
    let mut subscription = host.subscribe(&key, prefix.unwrap_or(""))?;
    let options = WatchOptions {
        debounce: Duration::from_millis(quiet.debounce_ms),
        finished_debounce: Duration::from_millis(quiet.finished_debounce_ms),
        poll_interval: quiet.poll_ms.map(Duration::from_millis),
        ..WatchOptions::default()
    };
    let _watcher = host.watch(options)?;
    eprintln!("watching {} for changes of {} (version {})", host.options().root.display(), describe(&key, prefix), host.snapshot().version());
    let mut out = std::io::stdout().lock();
    while let Some(event) = subscription.recv_blocking() {
        let line = match cli.format {
            OutputFormat::Json => serde_json::to_string(&event).expect("events serialize"),
            _ => text(&event),
        };
        writeln!(out, "{line}").and_then(|()| out.flush()).map_err(|e| Error::io("stdout", e))?;
    }
    Ok(())
}

fn describe(key: &ViewKey, prefix: Option<&str>) -> String {
    match prefix {
        Some(prefix) if !prefix.is_empty() => format!("{key} under `{prefix}`"),
        _ => key.to_string(),
    }
}

fn text(event: &Event) -> String {
    match event {
        Event::Changed { version, view, actor, changes, .. } => {
            let parts: Vec<String> = changes
                .iter()
                .map(|c| {
                    let show = |v: &Option<serde_json::Value>| v.as_ref().map_or("(unset)".to_owned(), inline);
                    format!("{}: {} -> {}", c.key, show(&c.old), show(&c.new))
                })
                .collect();
            format!("v{version} {view} by {actor}: {}", parts.join("; "))
        }
        Event::Rejected { actor, diagnostics, .. } => format!("reload rejected ({actor}): {}", diagnostics.join("; ")),
        Event::Lagged { missed, version, view, .. } => format!("lagged: missed {missed} changes; {view} is now at v{version}"),
    }
}
