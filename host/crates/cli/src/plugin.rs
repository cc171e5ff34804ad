//! `potter-config plugin …`: signing keys, signatures, the trust store and the plugins folder.
//!
//! The trust store is `<state>/trusted-keys/`; nothing here prints private key material.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use potter_plugin::{default_trust_dir, Allowance, PluginInfo};
use potter_validate::{SchemaSet, Validation};

use super::scaffold::{self, Kind, Language, NewPlugin};
use super::{Cli, Outcome};
use potter_config::Error;
use crate::output::OutputFormat;
use potter_config::plugin_folder::{grant_rules, Plugins};
use potter_config::runtime::ConfigHost;

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Create a signing key pair: NAME.key (private, mode 0600) and NAME.pub.
    Keygen {
        /// Path and name of the key files, without extension.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign FILE (`<name>.wasm`) together with its manifest `<name>.plugin.toml`; writes `<name>.wasm.sig`.
    Sign {
        file: PathBuf,
        /// The private key (`NAME.key`).
        #[arg(long)]
        key: PathBuf,
    },
    /// Check FILE's signature against the trust store (exit 4 when refused).
    Verify { file: PathBuf },
    /// Add a public key (`NAME.pub`) to the trust store, with the grant kinds its plugins may use.
    Trust {
        public_key: PathBuf,
        /// Grant kinds the key's plugins may use, comma-separated: `env` (host variables), `dirs`
        /// (a read-only directory of the tree), `net` (the origins of `grants.http`), `sql` (the
        /// host's SQL connections of `grants.sql`, read-only). Default: none (plugins reach nothing outside their
        /// sandbox). Trusting a key again replaces its allowance.
        #[arg(long, value_name = "KINDS", value_parser = parse_allowance, default_value = "")]
        allow: Allowance,
    },
    /// Every plugin of the plugins folder: name, kind, sha256, signer, grants, limits, status, last error.
    List,
    /// A new plugin project in DIR (default `./NAME`): module, manifest, a development signing key
    /// and `install.sh ROOT`, which builds, signs and trusts it into ROOT's plugins folder.
    New {
        name: String,
        #[arg(long = "lang", value_enum)]
        language: Language,
        #[arg(long, value_enum)]
        kind: Kind,
        /// The project folder (default `./NAME`); must be empty or absent.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// A Potter Config checkout's `sdk/` folder: depend on its SDK packages by path instead of
        /// the published `potter-sdk`, `potter-config-sdk` or `@potter-config/sdk`.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

pub fn run(cli: &Cli, command: &PluginCommand) -> Outcome {
    let options = cli.options();
    let trust_dir = default_trust_dir(&options.state_dir);
    match command {
        PluginCommand::Keygen { out } => {
            let keys = potter_plugin::keygen(out).map_err(Error::from)?;
            println!("created signing key {} (private, mode 0600) and {}", keys.secret_key.display(), keys.public_key.display());
            println!("key id {}; keep the .key file out of version control, share the .pub file", keys.key_id);
            Ok(())
        }
        PluginCommand::Sign { file, key } => {
            let signature = potter_plugin::sign_with(file, key, &grant_rules(&options)).map_err(Error::from)?;
            println!("signed {} and its manifest: {}", file.display(), signature.display());
            Ok(())
        }
        PluginCommand::Verify { file } => {
            let verified = potter_plugin::verify_with(file, &trust_dir, &grant_rules(&options)).map_err(Error::from)?;
            let signer = verified.signer_key_id.as_deref().unwrap_or("nobody");
            println!("{}: signature good (plugin {} {}, key {signer}, module sha256 {})", file.display(), verified.manifest.name, verified.manifest.version, verified.module_sha256);
            Ok(())
        }
        PluginCommand::Trust { public_key, allow } => {
            let key_id = potter_plugin::trust_with(public_key, &trust_dir, allow).map_err(Error::from)?;
            println!("trusted key {key_id} (in {}); its plugins may use grants: {allow}", trust_dir.display());
            Ok(())
        }
        PluginCommand::List => list(cli),
        PluginCommand::New { name, language, kind, dir, sdk } => {
            scaffold::run(&NewPlugin { name, language: *language, kind: *kind, dir: dir.as_deref(), sdk: sdk.as_deref() })
        }
    }
}

fn list(cli: &Cli) -> Outcome {
    let options = cli.options();
    let infos = match Plugins::inspect(&options)? {
        Some(plugins) => {
            run_over_tree(cli, &plugins);
            let mut infos = plugins.list();
            add_source_staleness(cli, &mut infos);
            infos
        }
        None => Vec::new(),
    };
    match cli.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&infos).expect("plugin infos serialize")),
        _ if infos.is_empty() => println!("no plugins in {}", options.plugins_dir.display()),
        _ => infos.iter().for_each(print_info),
    }
    Ok(())
}

/// Asks the sources as a starting host would (a source that cannot load starts from its
/// last-known-good cache and is marked stale) and copies that staleness into `infos`. Skipped
/// without sources, or when the tree does not start with its plugins (`last error` says why).
fn add_source_staleness(cli: &Cli, infos: &mut [PluginInfo]) {
    if !infos.iter().any(|info| info.kind == Some(potter_plugin::PluginKind::Source)) {
        return;
    }
    let mut options = cli.options();
    options.history = false;
    let Ok(host) = ConfigHost::open(options) else { return };
    for running in host.plugin_list() {
        if let Some(info) = infos.iter_mut().find(|info| info.name == running.name) {
            info.stale = running.stale;
        }
    }
}

/// Runs the loaded validators over every view of the tree so `last error` says how they fare on
/// this configuration. Skipped when the tree does not load without plugins.
fn run_over_tree(cli: &Cli, plugins: &Plugins) {
    let mut options = cli.options();
    // An empty path never exists: the tree is opened without its plugins, and without recording.
    options.plugins_dir = PathBuf::new();
    options.history = false;
    let Ok(host) = ConfigHost::open(options) else { return };
    let mut checks = Validation::new(SchemaSet::empty());
    plugins.register(&mut checks);
    checks.validate_snapshot(&host.snapshot());
}

fn print_info(info: &PluginInfo) {
    let text = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    println!("{} ({})", info.name, display(&info.file));
    println!("  status      {}", json_word(&info.status));
    println!("  kind        {}", text(info.kind.as_ref().map(json_word)));
    println!("  version     {}", text(info.version.clone()));
    println!("  sha256      {}", text(info.sha256.clone()));
    println!("  signer      {}", info.signer_key_id.clone().unwrap_or_else(|| if info.status == potter_plugin::PluginStatus::Loaded { "UNSIGNED".to_owned() } else { "-".to_owned() }));
    let grants = info.grants.as_ref().map(|grants| {
        let mut parts = Vec::new();
        if !grants.env.is_empty() {
            parts.push(format!("env {}", grants.env.join(", ")));
        }
        if let Some(directory) = &grants.directory {
            parts.push(format!("directory {directory} (read-only)"));
        }
        for origin in &grants.http {
            let ca = grants.http_ca.get(origin).map(|file| format!(" (CA file {file})")).unwrap_or_default();
            parts.push(format!("http {origin}{ca}"));
        }
        for connection in &grants.sql {
            parts.push(format!("sql {connection} (read-only)"));
        }
        if parts.is_empty() { "none".to_owned() } else { parts.join("; ") }
    });
    println!("  grants      {}{}", text(grants), if info.secrets { "; sees secrets" } else { "" });
    if let Some(allowance) = &info.signer_allowance {
        println!("  key allows  {allowance}");
    }
    let limits = info.limits.map(|l| format!("{} MiB, {} ms, {} KiB output", l.memory_mib, l.timeout_ms, l.max_output_kib));
    println!("  limits      {}", text(limits));
    if let Some(http) = info.http_limits {
        println!("  http limits {} requests per call, {} KiB per response, {} ms to connect, {} ms per request", http.requests, http.response_kib, http.connect_ms, http.total_ms);
    }
    if let Some(sql) = info.sql_limits {
        println!("  sql limits  {} queries per call, {} rows and {} KiB per query, {} ms statement timeout", sql.queries, sql.rows, sql.result_kib, sql.statement_ms);
    }
    if let Some(stale) = &info.stale {
        let origin = if stale.from_cache { "its cached layer" } else { "its last good layer" };
        println!("  stale       serving {origin} since {} ms after the epoch: {}", stale.since_ms, stale.last_error);
    }
    println!("  last error  {}", text(info.last_error.clone()));
    if let Some(refused) = &info.refused_update {
        println!("  refused new version  {refused}");
    }
}

fn parse_allowance(text: &str) -> Result<Allowance, String> {
    Allowance::parse(text)
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// A serde enum's name as JSON shows it (`validator`, `loaded`).
fn json_word(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}
