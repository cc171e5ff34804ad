//! The plugin manifest: a sidecar `<name>.plugin.toml` beside `<name>.wasm`,
//! covered by the signature together with the module.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::PluginError;

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
}

/// Limits a manifest may ask for; unset fields take the host defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitRequest {
    pub memory_mib: Option<u32>,
    pub timeout_ms: Option<u32>,
    pub max_output_kib: Option<u32>,
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
        let pick = |name: &str, asked: Option<u32>, default: u32, max: u32| match asked {
            Some(0) => Err(format!("limits.{name} must be greater than 0")),
            Some(value) if value > max => Err(format!(
                "limits.{name} = {value} exceeds the host maximum of {max}"
            )),
            Some(value) => Ok(value),
            None => Ok(default.min(max)),
        };
        Ok(Limits {
            memory_mib: pick(
                "memory_mib",
                request.memory_mib,
                defaults.memory_mib,
                maxima.memory_mib,
            )?,
            timeout_ms: pick(
                "timeout_ms",
                request.timeout_ms,
                defaults.timeout_ms,
                maxima.timeout_ms,
            )?,
            max_output_kib: pick(
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

    /// The key path of this plugin's own namespace, `plugins.<name>`.
    pub fn namespace(&self) -> String {
        format!("plugins.{}", self.name)
    }
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

fn is_plugin_name(name: &str) -> bool {
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
