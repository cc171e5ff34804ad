//! The plugin manifest: a sidecar `<name>.plugin.toml` beside `<name>.wasm`,
//! covered by the signature together with the module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::PluginError;
use crate::outbound::{Origin, OriginScheme, OutboundLimits};

/// File name suffix of a manifest: `<name>.plugin.toml`.
pub const MANIFEST_SUFFIX: &str = ".plugin.toml";

/// What a plugin does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Exports `validate` (world `validator`).
    Validator,
    /// Exports `load`, `poll-interval-ms` and `change-token` (world `source`).
    Source,
}

/// What the host does when a source's `load` fails (or its output is refused) on a later load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Keep the source's last good output; report the failure.
    #[default]
    Keep,
    /// Reject the whole reload: the running configuration stays as it was.
    Reject,
}

/// Guest path at which a source's granted directory is preopened (read-only).
pub const GRANTED_DIRECTORY_GUEST_PATH: &str = "/data";

/// Capabilities beyond the default of none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Host environment variables the plugin may read (by exact name);
    /// without this grant a plugin's environment is empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Sources only: a directory, relative to the configuration root, preopened read-only at
    /// `/data` in the guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// Sources only: origins (`scheme://host:port`, `*` as the port only where written) the plugin
    /// may send HTTP requests to through `wasi:http`; nothing else is reachable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<String>,
    /// A CA file (PEM, relative to the configuration root or absolute) trusted beside the
    /// system's roots for one `https` origin of `http`, keyed by that origin as written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub http_ca: BTreeMap<String, String>,
    /// Sources only: connections the operator configured on the host (`sql-connections.toml`)
    /// the plugin may query through `potter:config/sql`, read-only; it never holds their password.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sql: Vec<String>,
}

/// Variables the tool reads whatever the configured prefix: keyrings and the API token.
pub const RESERVED_VARIABLES: [&str; 2] = ["POTTER_SECRET_KEY_", "POTTER_TOKEN"];

/// The kinds of grant a manifest can ask for. The trust store records, per trusted key, which
/// kinds plugins it signed may use (`plugin trust --allow env,dirs,net,sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantKind {
    /// `grants.env`: host environment variables.
    Env,
    /// `grants.directory`: a read-only directory of the configuration root.
    Dirs,
    /// `grants.http`: outbound HTTP to the origins listed.
    Net,
    /// `grants.sql`: read-only queries on the host's connections listed.
    Sql,
}

impl GrantKind {
    /// Every kind, in order.
    pub const ALL: [GrantKind; 4] = [GrantKind::Env, GrantKind::Dirs, GrantKind::Net, GrantKind::Sql];

    /// The name used by `plugin trust --allow` and in the trust store.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::Env => "env",
            GrantKind::Dirs => "dirs",
            GrantKind::Net => "net",
            GrantKind::Sql => "sql",
        }
    }
}

impl std::str::FromStr for GrantKind {
    type Err = String;
    fn from_str(text: &str) -> Result<GrantKind, String> {
        GrantKind::ALL.into_iter().find(|kind| kind.as_str() == text.trim()).ok_or_else(|| {
            let known: Vec<&str> = GrantKind::ALL.iter().map(|kind| kind.as_str()).collect();
            format!("unknown grant kind `{}` (known: {})", text.trim(), known.join(", "))
        })
    }
}

/// The grant kinds a trusted key's plugins may use. The default (a key trusted without
/// `--allow`, or before allowances existed) is the safe set: no kind at all, so such a plugin
/// reads nothing outside its sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Allowance(pub BTreeSet<GrantKind>);

impl Allowance {
    /// Every grant kind.
    pub fn all() -> Allowance {
        Allowance(GrantKind::ALL.into_iter().collect())
    }

    /// Parses `env,dirs,net` (empty text: the safe set).
    pub fn parse(text: &str) -> Result<Allowance, String> {
        text.split(',').filter(|part| !part.trim().is_empty()).map(str::parse).collect::<Result<_, _>>().map(Allowance)
    }

    pub fn allows(&self, kind: GrantKind) -> bool {
        self.0.contains(&kind)
    }
}

impl std::fmt::Display for Allowance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let kinds: Vec<&str> = self.0.iter().map(|kind| kind.as_str()).collect();
        f.write_str(&kinds.join(","))
    }
}

/// Why `name` may not be granted to a plugin, if it is one of the tool's own variables: a keyring
/// (`POTTER_SECRET_KEY_<ENV>`), the API token, or anything under the configuration variable
/// prefix (`env_prefix`, `POTTER_` by default), which may carry overrides of secret keys.
pub fn reserved_variable(name: &str, env_prefix: &str) -> Option<String> {
    if name.starts_with(RESERVED_VARIABLES[0]) {
        return Some("it holds an environment's keyring".to_owned());
    }
    if name == RESERVED_VARIABLES[1] {
        return Some("it holds the tool's API token".to_owned());
    }
    (!env_prefix.is_empty() && name.starts_with(env_prefix))
        .then(|| format!("it is under the tool's own variable prefix `{env_prefix}`"))
}

/// Limits a manifest may ask for; unset fields take the host defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitRequest {
    pub memory_mib: Option<u32>,
    pub timeout_ms: Option<u32>,
    pub max_output_kib: Option<u32>,
    /// Outbound HTTP (sources with `grants.http`): requests per call.
    pub http_requests: Option<u32>,
    /// Largest response body, in KiB.
    pub http_response_kib: Option<u32>,
    /// Time to connect, in milliseconds.
    pub http_connect_ms: Option<u32>,
    /// Time for one request, connect to last byte, in milliseconds.
    pub http_total_ms: Option<u32>,
    /// SQL (sources with `grants.sql`): queries per call.
    pub sql_queries: Option<u32>,
    /// Rows one query may return.
    pub sql_rows: Option<u32>,
    /// Largest result of one query (JSON text), in KiB.
    pub sql_result_kib: Option<u32>,
    /// Statement timeout of one query, in milliseconds.
    pub sql_statement_ms: Option<u32>,
}

/// Effective limits of one plugin (or the host's defaults / maxima).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Linear memory cap, in MiB.
    pub memory_mib: u32,
    /// Wall-clock time per call, in milliseconds (epoch interruption).
    pub timeout_ms: u32,
    /// Largest result a call may return, in KiB.
    pub max_output_kib: u32,
}

impl Limits {
    /// The host's defaults: 64 MiB, 100 ms, 64 KiB.
    pub const DEFAULT: Limits = Limits {
        memory_mib: 64,
        timeout_ms: 100,
        max_output_kib: 64,
    };
    /// The host's maxima: 512 MiB, 10 s, 4 MiB.
    pub const MAXIMA: Limits = Limits {
        memory_mib: 512,
        timeout_ms: 10_000,
        max_output_kib: 4096,
    };

    /// Apply a manifest's request to the defaults, refusing anything above the maxima.
    pub fn resolve(
        request: &LimitRequest,
        defaults: &Limits,
        maxima: &Limits,
    ) -> Result<Limits, String> {
        Ok(Limits {
            memory_mib: pick_limit(
                "memory_mib",
                request.memory_mib,
                defaults.memory_mib,
                maxima.memory_mib,
            )?,
            timeout_ms: pick_limit(
                "timeout_ms",
                request.timeout_ms,
                defaults.timeout_ms,
                maxima.timeout_ms,
            )?,
            max_output_kib: pick_limit(
                "max_output_kib",
                request.max_output_kib,
                defaults.max_output_kib,
                maxima.max_output_kib,
            )?,
        })
    }
}

/// A parsed, checked manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Plugin name; must equal the file stem (`<name>.wasm`).
    pub name: String,
    pub kind: PluginKind,
    /// The plugin's own version (free text, shown by `plugin list`).
    pub version: String,
    /// Dotted key prefixes the plugin receives (validators) or may write (sources).
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Whether the plugin may see secret values under its prefixes.
    #[serde(default)]
    pub secrets: bool,
    #[serde(default)]
    pub grants: Grants,
    #[serde(default)]
    pub limits: LimitRequest,
    /// Sources: order among sources; a higher priority overrides a lower one, ties go by name
    /// (the later name wins).
    #[serde(default)]
    pub priority: i32,
    /// Sources: keep the last good output (default) or reject the reload when `load` fails.
    #[serde(default)]
    pub on_error: OnError,
    /// Sources: how old a cached last good layer may be to start from when the source fails at
    /// start-up (`"90s"`, `"30m"`, `"12h"`, `"7d"`); without it any age is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stale: Option<String>,
    /// Sources: every value the source yields is a secret (a secrets store such as Vault): marked
    /// secret in its layer, so redacted at every exit like a decrypted value of the tree.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret_output: bool,
    /// JSON Schema (as JSON text) for the plugin's namespace `plugins.<name>`; validated like the
    /// tree's own schemas. Inline so the signature covers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_schema: Option<String>,
}

impl Manifest {
    /// Parse and check manifest text. `expected_name` is the module's file stem.
    pub fn parse(text: &str, expected_name: &str, path: &Path) -> Result<Manifest, PluginError> {
        let fail = |reason: String| PluginError::Manifest {
            plugin: expected_name.to_string(),
            path: path.to_path_buf(),
            reason,
        };
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| fail(e.to_string().trim().to_string()))?;
        if manifest.name != expected_name {
            return Err(fail(format!(
                "name `{}` does not match the module file name `{expected_name}.wasm`",
                manifest.name
            )));
        }
        if !is_plugin_name(&manifest.name) {
            return Err(fail(format!(
                "name `{}` must be 1-64 characters of a-z, 0-9 and `-`, starting with a letter or digit",
                manifest.name
            )));
        }
        let own_namespace = format!("plugins.{}", manifest.name);
        for prefix in &manifest.prefixes {
            if !is_key_path(prefix) {
                return Err(fail(format!("prefix `{prefix}` is not a dotted key path")));
            }
            let under_plugins = prefix == "plugins" || prefix.starts_with("plugins.");
            let inside_own =
                prefix == &own_namespace || prefix.starts_with(&format!("{own_namespace}."));
            if under_plugins && !inside_own {
                return Err(fail(format!(
                    "prefix `{prefix}` reaches into other plugins' namespaces; a plugin sees only {own_namespace}"
                )));
            }
        }
        for name in &manifest.grants.env {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(fail(format!(
                    "grants.env entry `{name}` is not a variable name"
                )));
            }
        }
        if let Some(directory) = &manifest.grants.directory {
            if manifest.kind != PluginKind::Source {
                return Err(fail("grants.directory is only for sources".to_string()));
            }
            if !is_relative_inside(directory) {
                return Err(fail(format!(
                    "grants.directory `{directory}` must be a relative path inside the configuration root (no `..`, not absolute)"
                )));
            }
        }
        if !manifest.grants.http.is_empty() && manifest.kind != PluginKind::Source {
            return Err(fail("grants.http is only for sources".to_string()));
        }
        if !manifest.grants.sql.is_empty() && manifest.kind != PluginKind::Source {
            return Err(fail("grants.sql is only for sources".to_string()));
        }
        if let Some(name) = manifest.grants.sql.iter().find(|name| !crate::sql::is_connection_name(name)) {
            return Err(fail(format!("grants.sql entry `{name}` is not a connection name (1-64 letters, digits, `-` and `_`)")));
        }
        let mut origins = Vec::new();
        for text in &manifest.grants.http {
            origins.push(Origin::parse(text).map_err(|e| fail(format!("grants.http: {e}")))?);
        }
        for (origin, file) in &manifest.grants.http_ca {
            let Some(index) = manifest.grants.http.iter().position(|granted| granted == origin) else {
                return Err(fail(format!("grants.http_ca `{origin}` is not one of grants.http")));
            };
            if origins[index].scheme != OriginScheme::Https {
                return Err(fail(format!("grants.http_ca `{origin}`: a CA file is only for an https origin")));
            }
            if file.trim().is_empty() {
                return Err(fail(format!("grants.http_ca `{origin}`: empty file name")));
            }
        }
        if let Some(text) = &manifest.max_stale {
            if manifest.kind != PluginKind::Source {
                return Err(fail("max_stale is only for sources".to_string()));
            }
            parse_duration(text).map_err(|e| fail(format!("max_stale: {e}")))?;
        }
        if manifest.secret_output && manifest.kind != PluginKind::Source {
            return Err(fail("secret_output is only for sources".to_string()));
        }
        if manifest.kind == PluginKind::Source && manifest.prefixes.is_empty() {
            return Err(fail(
                "a source must declare the key prefixes it may write (`prefixes`)".to_string(),
            ));
        }
        if let Some(schema) = &manifest.namespace_schema {
            let parsed: serde_json::Value = serde_json::from_str(schema)
                .map_err(|e| fail(format!("namespace_schema is not JSON: {e}")))?;
            if !parsed.is_object() && !parsed.is_boolean() {
                return Err(fail("namespace_schema must be a JSON Schema object".to_string()));
            }
        }
        Ok(manifest)
    }

    /// Each grant the manifest asks for, with its kind: (kind, `grants.env `NAME``).
    pub fn grants_asked(&self) -> Vec<(GrantKind, String)> {
        let env = self.grants.env.iter().map(|name| (GrantKind::Env, format!("grants.env `{name}`")));
        let directory = self.grants.directory.iter().map(|dir| (GrantKind::Dirs, format!("grants.directory `{dir}`")));
        let http = self.grants.http.iter().map(|origin| (GrantKind::Net, format!("grants.http `{origin}`")));
        let sql = self.grants.sql.iter().map(|connection| (GrantKind::Sql, format!("grants.sql `{connection}`")));
        env.chain(directory).chain(http).chain(sql).collect()
    }

    /// The first `grants.env` entry naming one of the tool's own variables: (grant, why).
    pub fn reserved_env_grant(&self, env_prefix: &str) -> Option<(String, String)> {
        self.grants.env.iter().find_map(|name| reserved_variable(name, env_prefix).map(|why| (format!("grants.env `{name}`"), why)))
    }

    /// `max_stale` as a duration (None: no limit; the text was checked at parse).
    pub fn max_stale_duration(&self) -> Option<std::time::Duration> {
        self.max_stale.as_deref().and_then(|text| parse_duration(text).ok())
    }

    /// The key path of this plugin's own namespace, `plugins.<name>`.
    pub fn namespace(&self) -> String {
        format!("plugins.{}", self.name)
    }
}

/// What a manifest may ask of this host, checked at `plugin sign` and again at load.
#[derive(Debug, Clone)]
pub struct GrantRules {
    /// The configuration variable prefix (`POTTER_`); no variable under it may be granted.
    pub env_prefix: String,
    /// Highest limits a manifest may ask for.
    pub max_limits: Limits,
    /// What `grants.directory` is relative to; without it directory grants are checked at load only.
    pub grants_root: Option<PathBuf>,
    /// Directories no granted directory may contain or lie in: the state directory (keyrings,
    /// `tokens.json`, the trust store, signing keys) and whatever else the host protects.
    pub protected: Vec<PathBuf>,
    /// Host variables no plugin may be granted, with why: the passwords of the host's SQL
    /// connections (`sql-connections.toml`'s `password_env`).
    pub protected_variables: Vec<(String, String)>,
}

impl Default for GrantRules {
    fn default() -> GrantRules {
        GrantRules { env_prefix: DEFAULT_ENV_PREFIX.to_owned(), max_limits: Limits::MAXIMA, grants_root: None, protected: Vec::new(), protected_variables: Vec::new() }
    }
}

/// The configuration variable prefix the CLI uses unless an embedder changes it.
pub const DEFAULT_ENV_PREFIX: &str = "POTTER_";

impl GrantRules {
    /// Refuses a grant of one of the tool's own variables, a limit above the maxima, and a
    /// directory reaching a protected one (when the directory can be resolved here).
    pub fn check(&self, manifest: &Manifest, manifest_path: &Path) -> Result<(), PluginError> {
        let plugin = manifest.name.clone();
        if let Some((grant, reason)) = manifest.reserved_env_grant(&self.env_prefix) {
            return Err(PluginError::ForbiddenGrant { plugin, grant, reason });
        }
        for name in &manifest.grants.env {
            if let Some((_, why)) = self.protected_variables.iter().find(|(variable, _)| variable == name) {
                return Err(PluginError::ForbiddenGrant { plugin, grant: format!("grants.env `{name}`"), reason: why.clone() });
            }
        }
        Limits::resolve(&manifest.limits, &Limits::DEFAULT, &self.max_limits)
            .and_then(|_| OutboundLimits::resolve(&manifest.limits))
            .and_then(|_| crate::sql::SqlLimits::resolve(&manifest.limits))
            .map_err(|reason| PluginError::Manifest { plugin: plugin.clone(), path: manifest_path.to_path_buf(), reason })?;
        if let (Some(root), Some(relative)) = (&self.grants_root, &manifest.grants.directory) {
            // At signing time the tree may not hold the directory: the load checks it again.
            if let Ok(resolved) = resolve_granted_directory(root, relative) {
                self.check_directory(&plugin, relative, &resolved)?;
            }
        }
        Ok(())
    }

    /// Refuses a granted directory (resolved) that contains or lies inside a protected one.
    pub fn check_directory(&self, plugin: &str, relative: &str, resolved: &Path) -> Result<(), PluginError> {
        for protected in &self.protected {
            let protected = protected.canonicalize().unwrap_or_else(|_| protected.clone());
            if resolved.starts_with(&protected) || protected.starts_with(resolved) {
                return Err(PluginError::ForbiddenGrant {
                    plugin: plugin.to_owned(),
                    grant: format!("grants.directory `{relative}`"),
                    reason: format!("it reaches {}, which holds the host's keyrings, tokens and trusted keys", protected.display()),
                });
            }
        }
        Ok(())
    }
}

/// `<root>/<relative>`, which must be an existing directory that stays inside the root once
/// symbolic links are resolved.
pub fn resolve_granted_directory(root: &Path, relative: &str) -> Result<PathBuf, String> {
    let joined = root.join(relative);
    let resolved = joined.canonicalize().map_err(|e| format!("grants.directory `{}`: {e}", joined.display()))?;
    let root = root.canonicalize().map_err(|e| format!("configuration root {}: {e}", root.display()))?;
    if !resolved.starts_with(&root) {
        return Err(format!("grants.directory `{relative}` leaves the configuration root through a symbolic link"));
    }
    if !resolved.is_dir() {
        return Err(format!("grants.directory `{}` is not a directory", joined.display()));
    }
    Ok(resolved)
}

/// Where the manifest of `<dir>/<name>.wasm` lives.
pub fn manifest_path(wasm_path: &Path) -> PathBuf {
    sibling(wasm_path, MANIFEST_SUFFIX)
}

/// `<dir>/<stem><suffix>` for a module at `<dir>/<stem>.wasm`.
pub(crate) fn sibling(wasm_path: &Path, suffix: &str) -> PathBuf {
    let stem = plugin_stem(wasm_path);
    wasm_path.with_file_name(format!("{stem}{suffix}"))
}

/// The file stem of a module path, used as the plugin's name in errors.
pub(crate) fn plugin_stem(wasm_path: &Path) -> String {
    wasm_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| wasm_path.display().to_string())
}

/// `<number><unit>` with unit `s`, `m`, `h` or `d`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let bad = || format!("`{text}` is not a duration such as \"90s\", \"30m\", \"12h\" or \"7d\"");
    let unit = text.chars().last().ok_or_else(bad)?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    let number: u64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
    Ok(std::time::Duration::from_secs(number.saturating_mul(seconds)))
}

/// A plugin name: 1-64 characters of a-z, 0-9 and `-`, not starting with `-`.
pub fn is_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A relative path with no `..`, `.`-only or empty components.
fn is_relative_inside(path: &str) -> bool {
    let path = Path::new(path);
    !path.as_os_str().is_empty()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// A dotted key path: segments of letters, digits, `_` and `-`.
pub(crate) fn is_key_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 512
        && path.split('.').all(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// One limit of a manifest's `[limits]`: what it asks (0 refused, above `max` refused naming
/// the host maximum), or the host's default (never above `max`).
pub(crate) fn pick_limit(name: &str, asked: Option<u32>, default: u32, max: u32) -> Result<u32, String> {
    match asked {
        Some(0) => Err(format!("limits.{name} must be greater than 0")),
        Some(value) if value > max => Err(format!("limits.{name} = {value} exceeds the host maximum of {max}")),
        Some(value) => Ok(value),
        None => Ok(default.min(max)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, PluginError> {
        Manifest::parse(text, "demo", Path::new("demo.plugin.toml"))
    }

    #[test]
    fn minimal_manifest_gets_no_grants_and_default_limits() {
        let m =
            parse("name = \"demo\"\nkind = \"validator\"\nversion = \"1\"\nprefixes = [\"app\"]")
                .unwrap();
        assert_eq!(m.grants, Grants::default());
        assert!(!m.secrets);
        let limits = Limits::resolve(&m.limits, &Limits::DEFAULT, &Limits::MAXIMA).unwrap();
        assert_eq!(limits, Limits::DEFAULT);
    }

    #[test]
    fn name_must_match_file() {
        let err = parse("name = \"other\"\nkind = \"validator\"\nversion = \"1\"").unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn prefix_into_another_plugins_namespace_is_refused() {
        let err = parse("name = \"demo\"\nkind = \"validator\"\nversion = \"1\"\nprefixes = [\"plugins.other\"]")
            .unwrap_err();
        assert!(
            err.to_string().contains("other plugins' namespaces"),
            "{err}"
        );
        parse("name = \"demo\"\nkind = \"validator\"\nversion = \"1\"\nprefixes = [\"plugins.demo.x\"]").unwrap();
    }

    #[test]
    fn source_fields_are_checked() {
        let source = |extra: &str| {
            parse(&format!(
                "name = \"demo\"\nkind = \"source\"\nversion = \"1\"\nprefixes = [\"remote\"]\n{extra}"
            ))
        };
        let m = source("priority = 5\non_error = \"reject\"\n[grants]\ndirectory = \"data/props\"").unwrap();
        assert_eq!(source("max_stale = \"30m\"").unwrap().max_stale_duration(), Some(std::time::Duration::from_secs(1800)));
        assert!(source("max_stale = \"30 minutes\"").unwrap_err().to_string().contains("max_stale: `30 minutes` is not a duration"));
        assert_eq!((m.priority, m.on_error), (5, OnError::Reject));
        assert_eq!(m.grants.directory.as_deref(), Some("data/props"));
        for bad in ["../outside", "/etc", "a/../../b", ""] {
            let err = source(&format!("[grants]\ndirectory = \"{bad}\"")).unwrap_err();
            assert!(err.to_string().contains("relative path inside"), "{bad}: {err}");
        }
        let err = parse("name = \"demo\"\nkind = \"source\"\nversion = \"1\"").unwrap_err();
        assert!(err.to_string().contains("must declare the key prefixes"), "{err}");
        let err = parse("name = \"demo\"\nkind = \"validator\"\nversion = \"1\"\n[grants]\ndirectory = \"x\"")
            .unwrap_err();
        assert!(err.to_string().contains("only for sources"), "{err}");
        let err = source("namespace_schema = \"{not json\"").unwrap_err();
        assert!(err.to_string().contains("namespace_schema is not JSON"), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(
            parse("name = \"demo\"\nkind = \"validator\"\nversion = \"1\"\nnetwork = true")
                .is_err()
        );
    }

    #[test]
    fn limit_above_host_maximum_is_refused() {
        let request = LimitRequest {
            memory_mib: Some(4096),
            ..Default::default()
        };
        let err = Limits::resolve(&request, &Limits::DEFAULT, &Limits::MAXIMA).unwrap_err();
        assert!(
            err.contains("memory_mib = 4096 exceeds the host maximum of 512"),
            "{err}"
        );
        let lowered = LimitRequest {
            timeout_ms: Some(20),
            ..Default::default()
        };
        assert_eq!(
            Limits::resolve(&lowered, &Limits::DEFAULT, &Limits::MAXIMA)
                .unwrap()
                .timeout_ms,
            20
        );
    }
}
