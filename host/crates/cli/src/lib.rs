//! The `potter-config` command: a thin shell over the library.

mod change;
mod init;
pub mod logging;
mod history;
mod instances;
pub(crate) mod read;
mod serve;
mod token;
mod validate;
mod watch;
mod write;
mod secrets;
mod plugin;
mod scaffold;
mod output;
mod progress;
mod rollout;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use potter_config::change_requests::RequestError;
use potter_config::Error;
use potter_config::secret_values::{SecretProblem, SecretsError};
use potter_secrets::CipherError;
use crate::output::OutputFormat;
use potter_config::options::{default_state_dir, StoreChoice};
use potter_config::{ConfigHost, Options};

/// Exit codes shared by every command.
pub mod exit {
    pub const OK: u8 = 0;
    pub const NOT_FOUND: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const INVALID: u8 = 3;
    pub const REFUSED: u8 = 4;
}

#[derive(Debug, Parser)]
#[command(name = "potter-config", version, about = "Layered, validated configuration for Potter and any Rust service")]
pub struct Cli {
    /// The config tree.
    #[arg(long, global = true, default_value = "config")]
    pub root: PathBuf,
    /// Environment of the view.
    #[arg(long = "env", global = true, env = "POTTER_ENV", default_value = "development")]
    pub environment: String,
    /// Service of the view.
    #[arg(long, global = true)]
    pub service: Option<String>,
    /// User of the view.
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub format: OutputFormat,
    /// History, keyrings and caches (default: `.potter/` beside the root).
    #[arg(long, global = true)]
    pub state: Option<PathBuf>,
    /// The folder of signed Wasm plugins (default: `<root>/plugins`).
    #[arg(long = "plugins", global = true, value_name = "DIR")]
    pub plugins_dir: Option<PathBuf>,
    /// Load plugins that have no signature (development only; refused where production is served).
    #[arg(long, global = true)]
    pub allow_unsigned: bool,
    /// What to log on stderr: an env-filter such as `info` or `warn,potter_plugin=debug`
    /// (default: `warn`).
    #[arg(long = "log", global = true, env = "POTTER_LOG", value_name = "FILTER")]
    pub log: Option<String>,
    /// How log lines look on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: logging::LogFormat,
    /// Serve, load and validate only these environments (comma-separated); their keyrings are the
    /// only ones read. Default: every environment for `serve` and `validate`, and `--env` alone
    /// for the commands that act on one view (`get`, `dump`, `explain`, `set`, ...).
    #[arg(long, global = true, value_delimiter = ',', value_name = "ENV,...")]
    pub environments: Option<Vec<String>>,
    /// Where history, runtime overrides and audit lines live: `sqlite` (`<state>/history.db`,
    /// the default) or `etcd://host:port[,host:port...][/prefix]`, shared by every host on the
    /// prefix (docs/FLEET.md).
    #[arg(long, global = true, env = "POTTER_STORE", value_name = "STORE", value_parser = parse_store)]
    pub store: Option<StoreChoice>,
    /// etcd user of `--store etcd://...`; its password is read from `POTTER_STORE_PASSWORD`
    /// only (never a flag: command lines are visible to every local user).
    #[arg(long, global = true, env = "POTTER_STORE_USER", value_name = "NAME")]
    pub store_user: Option<String>,
    /// TLS to the etcd members, trusting this PEM CA certificate (endpoints dialled as https).
    #[arg(long, global = true, value_name = "FILE", value_parser = read_pem)]
    pub store_ca: Option<Pem>,
    /// A PEM client certificate for etcd (with `--store-key`; implies TLS).
    #[arg(long, global = true, value_name = "FILE", value_parser = read_pem, requires = "store_key")]
    pub store_cert: Option<Pem>,
    /// The PEM private key of `--store-cert`.
    #[arg(long, global = true, value_name = "FILE", value_parser = read_pem, requires = "store_cert")]
    pub store_key: Option<Pem>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the effective value of a key (secrets as `<redacted>` unless `--reveal`).
    Get {
        key: String,
        /// Print secrets in plaintext (needs the environment's keyring).
        #[arg(long)]
        reveal: bool,
    },
    /// Print the effective configuration of the view.
    Dump,
    /// Show every layer's value for a key, which one won, and the variable that would override it.
    Explain { key: String },
    /// List the layers of the view, lowest precedence first.
    Layers,
    /// Validate every view (each environment alone and with each service); exit 3 when any is invalid.
    Validate {
        /// Keys no schema describes are errors, not warnings.
        #[arg(long)]
        strict: bool,
        /// Print every view with the share of its keys that a schema describes.
        #[arg(long)]
        coverage: bool,
    },
    /// Scaffold a complete config tree that validates cleanly.
    Init {
        /// Where to create the tree (must not exist or be empty).
        dir: std::path::PathBuf,
        #[arg(long, value_enum, default_value = "potter")]
        template: init::Template,
    },
    /// Add a service file and its schema skeleton to the tree at --root.
    Template {
        #[command(subcommand)]
        command: init::TemplateCommand,
    },
    /// Print changes of the view live, one per line (rejected reloads too), until interrupted.
    Watch {
        /// Only keys under this prefix.
        prefix: Option<String>,
        /// Quiet time after a file event before reloading, in milliseconds.
        #[arg(long, default_value_t = 10)]
        debounce_ms: u64,
        /// Quiet time instead, after an event that finishes a save (a written file closed, a file
        /// renamed into place), in milliseconds.
        #[arg(long, default_value_t = 2)]
        finished_debounce_ms: u64,
        /// Poll the tree at this interval (milliseconds) instead of using filesystem events.
        #[arg(long)]
        poll_ms: Option<u64>,
    },
    /// Encrypted values: keyrings, `set` (value from stdin), `encrypt`, `rotate`, `list`.
    Secrets {
        #[command(subcommand)]
        command: secrets::SecretsCommand,
    },
    /// Signed Wasm plugins: `new`, `keygen`, `sign`, `verify`, `trust`, `list`.
    Plugin {
        #[command(subcommand)]
        command: plugin::PluginCommand,
    },
    /// Set a runtime override in --env (validated, recorded; `--if-version N` is compare-and-set).
    Set(write::SetArgs),
    /// Remove a runtime override from --env.
    Unset(write::UnsetArgs),
    /// The runtime overrides of --env: `list`, `release KEY...` (one change).
    Overrides {
        #[command(subcommand)]
        command: write::OverridesCommand,
    },
    /// Change requests: `create --env E KEY=VALUE... --title T`, `list`, `show ID`, `approve ID`,
    /// `reject ID --reason R`, `withdraw ID` (edit and publish as two steps; docs/ROLLOUT.md).
    Change {
        #[command(subcommand)]
        command: change::ChangeCommand,
    },
    /// Progressive rollouts: `start --env E KEY=VALUE... --title T --steps 10,50,100 [--bake S]`,
    /// `list`, `status ID`, `advance ID [--force]`, `abort ID --reason R` (docs/ROLLOUT.md).
    Rollout {
        #[command(subcommand)]
        command: rollout::RolloutCommand,
    },
    /// Recorded changes, newest first (`--env` filters); `history show V`, `history prune`.
    History(history::HistoryArgs),
    /// The effective configuration of the view at two versions, key by key (secrets redacted).
    Diff(history::DiffArgs),
    /// Bring --env back to a version's content as a NEW version of runtime overrides, pinning only
    /// the keys whose value then differs from what the files give now.
    Rollback(history::RollbackArgs),
    /// Serve the configuration over HTTP (JSON API, bearer tokens; see docs/API.md).
    Serve(serve::ServeArgs),
    /// The hosts sharing the `--store etcd://...` history: id, address, version served, plugins,
    /// last refused change.
    Instances,
    /// API bearer tokens: `create --env E1,E2` (printed once), `list`, `revoke`.
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// Print a shell completion script: `source <(potter-config completions bash)`, or save it
    /// where the shell looks (docs/GUIDE.md).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `potter-config man > potter-config.1`.
    Man,
}

impl Cli {
    pub fn options(&self) -> Options {
        let mut options = Options::new(&self.root);
        options.state_dir = self.state.clone().unwrap_or_else(|| default_state_dir(&self.root));
        if let Some(plugins_dir) = &self.plugins_dir {
            options.plugins_dir = plugins_dir.clone();
        }
        options.allow_unsigned = self.allow_unsigned;
        options.environments = self.environments.clone();
        options.store = self.store_choice();
        options.progress = progress::for_stderr();
        options
    }

    /// The host for a command that acts on the `--env` view: unless `--environments` says
    /// otherwise it loads that environment alone, so it needs that environment's keyring only.
    pub fn open(&self) -> Result<ConfigHost, Error> {
        if self.allow_unsigned && self.environment == potter_plugin::PRODUCTION {
            return Err(Error::UnsignedRefused { reason: "the environment is production".to_owned() });
        }
        match self.open_to_repair()? {
            (host, None) => Ok(host),
            (host, Some(report)) => {
                hint_overrides_behind(&host, &report);
                Err(Error::Invalid(report))
            }
        }
    }

    /// [`Cli::open`] for `set` and `unset`: the host even when its configuration is invalid now (a
    /// schema or validator that refuses an existing override), with what is invalid, so the change
    /// that repairs it can be made. The change is validated as any other.
    pub fn open_to_repair(&self) -> Result<(ConfigHost, Option<potter_validate::Report>), Error> {
        self.open_to_repair_in(&self.environment)
    }

    /// [`Cli::open_to_repair`] for `environment` (a change request's, which may not be `--env`).
    pub fn open_to_repair_in(&self, environment: &str) -> Result<(ConfigHost, Option<potter_validate::Report>), Error> {
        if self.allow_unsigned && environment == potter_plugin::PRODUCTION {
            return Err(Error::UnsignedRefused { reason: "the environment is production".to_owned() });
        }
        let mut options = self.options();
        options.environments.get_or_insert_with(|| vec![environment.to_owned()]);
        ConfigHost::open_to_repair(options)
    }
}

/// Tells on stderr which errors of an invalid configuration are about runtime overrides: no file
/// holds them, so the fix is `unset` (or a valid `set`), which [`Cli::open_to_repair`] allows.
pub(crate) fn hint_overrides_behind(host: &ConfigHost, report: &potter_validate::Report) {
    let mut hinted = std::collections::BTreeSet::new();
    for issue in report.issues().filter(|issue| issue.severity == potter_engine::Severity::Error) {
        let Some(view) = &issue.view else { continue };
        let environment = view.environment.to_string();
        // The issue is about an override when its key is held by one or lies under one (an
        // object set as one value).
        let overridden = host.override_of(&environment, &issue.path);
        if let Some(key) = overridden {
            if hinted.insert((environment.clone(), key.clone())) {
                eprintln!("hint: `{key}` in {environment} is a runtime override (no file holds it): `potter-config --env {environment} unset {key}` removes it, or `set` a valid value");
            }
        }
    }
}

fn parse_store(text: &str) -> Result<StoreChoice, String> {
    StoreChoice::parse(text).map_err(|error| error.to_string())
}

/// The contents of a PEM file given on the command line (read when the flag is parsed, so a
/// missing file is a usage error naming it).
#[derive(Clone)]
pub struct Pem(Vec<u8>);

impl std::fmt::Debug for Pem {
    // A client key is key material: never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pem({} bytes)", self.0.len())
    }
}

fn read_pem(path: &str) -> Result<Pem, String> {
    std::fs::read(path).map(Pem).map_err(|error| format!("cannot read `{path}`: {error}"))
}

impl Cli {
    /// `--store` with its credentials: user (password from `POTTER_STORE_PASSWORD`), CA, client
    /// certificate.
    fn store_choice(&self) -> StoreChoice {
        let Some(StoreChoice::Etcd(mut etcd)) = self.store.clone() else { return self.store.clone().unwrap_or_default() };
        if let Some(user) = &self.store_user {
            etcd = etcd.user(user.clone(), std::env::var("POTTER_STORE_PASSWORD").unwrap_or_default());
        }
        if self.store_ca.is_some() || self.store_cert.is_some() {
            use potter_config::options::etcd::{Certificate, Identity, TlsOptions};
            let mut tls = TlsOptions::new();
            if let Some(Pem(ca)) = &self.store_ca {
                tls = tls.ca_certificate(Certificate::from_pem(ca));
            }
            if let (Some(Pem(cert)), Some(Pem(key))) = (&self.store_cert, &self.store_key) {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            etcd = etcd.tls(tls);
        }
        StoreChoice::Etcd(etcd)
    }
}

/// A failed command: its message (already naming where) and exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let code = match &error {
            Error::NotFound(_) | Error::NoOverride { .. } => exit::NOT_FOUND,
            Error::Secret(secret) => secrets_exit_code(secret),
            Error::Plugin(plugin) if plugin.is_refusal() => exit::REFUSED,
            Error::UnsignedRefused { .. } => exit::REFUSED,
            Error::History(potter_history::HistoryError::Conflict { .. }) => exit::REFUSED,
            Error::ChangeRequest(request) => change_request_exit_code(request),
            Error::Rollout(rollout) => rollout_exit_code(rollout),
            Error::UnknownView(_) | Error::NotServed { .. } | Error::KeyPath(_) | Error::Root { .. } => exit::USAGE,
            _ => exit::INVALID,
        };
        Failure { code, message: error.to_string() }
    }
}

pub type Outcome = Result<(), Failure>;

/// The exit code of a rollout failure: 4 refused (overlapping keys, baking, ended), 1 no such
/// rollout, 2 a plan that cannot start, 3 the store failed.
fn rollout_exit_code(error: &potter_config::rollouts::RolloutError) -> u8 {
    use potter_config::rollouts::RolloutError;
    match error {
        RolloutError::Unknown { .. } => exit::NOT_FOUND,
        RolloutError::Plan(_) => exit::USAGE,
        RolloutError::Store { .. } => exit::INVALID,
        RolloutError::Overlap { .. } | RolloutError::Running { .. } | RolloutError::Baking { .. } | RolloutError::NotRunning { .. } => exit::REFUSED,
    }
}

/// The exit code of a change-request failure: 4 refused (review required, self-approval, not
/// the author, conflicting keys, not open), 1 no such request, 2 usage, 3 the store failed.
fn change_request_exit_code(error: &RequestError) -> u8 {
    match error {
        RequestError::Unknown { .. } => exit::NOT_FOUND,
        RequestError::Incomplete(_) => exit::USAGE,
        RequestError::Store { .. } => exit::INVALID,
        RequestError::ReviewRequired { .. } | RequestError::SelfApproval { .. } | RequestError::NotAuthor { .. } | RequestError::Conflict { .. } | RequestError::NotOpen { .. } => exit::REFUSED,
    }
}

/// The exit code of a secrets failure: 4 refused (keyring permissions, keyring exists), 2 usage,
/// 1 no keyring, 3 everything invalid.
pub(crate) fn secrets_exit_code(error: &SecretsError) -> u8 {
    fn keyring_code(error: &CipherError) -> u8 {
        match error {
            CipherError::KeyringPermissions { .. } | CipherError::KeyringExists { .. } => exit::REFUSED,
            CipherError::KeyringMissing { .. } => exit::NOT_FOUND,
            CipherError::InvalidEnvName { .. } => exit::USAGE,
            _ => exit::INVALID,
        }
    }
    match error {
        SecretsError::Keyring(error) => keyring_code(error),
        SecretsError::Usage(_) => exit::USAGE,
        SecretsError::Sealed(_) => exit::NOT_FOUND,
        SecretsError::Rejected(problems) => {
            let refused = problems.iter().any(|p| matches!(p, SecretProblem::Keyring { source, .. } if keyring_code(source) == exit::REFUSED));
            if refused {
                exit::REFUSED
            } else {
                exit::INVALID
            }
        }
        SecretsError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => exit::REFUSED,
        _ => exit::INVALID,
    }
}


/// Parses arguments, runs the command, prints errors, returns the exit code.
pub fn main() -> ExitCode {
    // A reader that goes away (`potter-config validate | head -2`) ends a command quietly, as it
    // does `cat` or `grep`, instead of a panic on the failed write. The server keeps ignoring
    // SIGPIPE: a closed stdout or stderr must not take it down.
    default_sigpipe(true);
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_)) {
        default_sigpipe(false);
    }
    if let Err(message) = logging::install(cli.log.as_deref(), cli.log_format) {
        eprintln!("error: {message}");
        return ExitCode::from(exit::USAGE);
    }
    match run(&cli) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// `SIGPIPE` to its default action (end the process) or ignored (a write fails with `EPIPE`).
fn default_sigpipe(default: bool) {
    let action = if default { libc::SIG_DFL } else { libc::SIG_IGN };
    // SAFETY: changes one signal's disposition before any other thread exists or while none
    // depends on it; no handler function is installed.
    unsafe {
        libc::signal(libc::SIGPIPE, action);
    }
}

pub fn run(cli: &Cli) -> Outcome {
    match &cli.command {
        Command::Get { key, reveal } => read::get(cli, key, *reveal),
        Command::Dump => read::dump(cli),
        Command::Explain { key } => read::explain(cli, key),
        Command::Layers => read::layers(cli),
        Command::Set(args) => write::set(cli, args),
        Command::Unset(args) => write::unset(cli, args),
        Command::Overrides { command } => write::overrides(cli, command),
        Command::Change { command } => change::run(cli, command),
        Command::Rollout { command } => rollout::run(cli, command),
        Command::History(args) => history::history(cli, args),
        Command::Diff(args) => history::diff(cli, args),
        Command::Rollback(args) => history::rollback(cli, args),
        Command::Serve(args) => serve::run(cli, args),
        Command::Token { command } => token::run(cli, command),
        Command::Instances => instances::run(cli),
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "potter-config", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map_err(|source| Error::Io { path: "<stdout>".into(), source }.into()),
        Command::Secrets { command } => secrets::run(cli, command),
        Command::Plugin { command } => plugin::run(cli, command),
        Command::Validate { strict, coverage } => validate::run(cli, *strict, *coverage),
        Command::Init { dir, template } => init::init(dir, *template),
        Command::Template { command } => init::template(cli, command),
        Command::Watch { prefix, debounce_ms, finished_debounce_ms, poll_ms } => {
            let quiet = watch::Quiet { debounce_ms: *debounce_ms, finished_debounce_ms: *finished_debounce_ms, poll_ms: *poll_ms };
            watch::run(cli, prefix.as_deref(), quiet)
        }
    }
}
