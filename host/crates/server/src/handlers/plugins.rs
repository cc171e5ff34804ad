//! The plugins of the host's plugins folder (`GET /v1/plugins`).

#[allow(unused_imports)]
use super::*;

/// `GET /v1/plugins`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PluginList {
    pub plugins: Vec<PluginEntry>,
}

/// One plugin as a token may see it (diagnostics redacted and limited to its environments).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PluginEntry {
    pub name: String,
    /// The file's name in the plugins folder.
    pub file: Option<String>,
    /// `source` or `validator`; null when the plugin was refused before its manifest was read.
    #[schema(value_type = Option<String>)]
    pub kind: Option<potter_plugin::PluginKind>,
    pub version: Option<String>,
    pub sha256: Option<String>,
    /// The key id of the trusted key that signed it.
    pub signer: Option<String>,
    /// The grant kinds the trust store allows that signer.
    #[schema(value_type = Option<Object>)]
    pub signer_allows: Option<potter_plugin::Allowance>,
    /// `loaded` or `refused`.
    #[schema(value_type = String)]
    pub status: potter_plugin::PluginStatus,
    pub last_error: Option<String>,
    /// The last error per environment the token may read.
    #[schema(value_type = Object)]
    pub errors: Map<String, Value>,
    pub refused_update: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub grants: Option<potter_plugin::Grants>,
    /// Whether the plugin may read secrets.
    pub secrets: bool,
    #[schema(value_type = Option<Object>)]
    pub limits: Option<potter_plugin::Limits>,
    /// Set while a source serves its last good (or cached) layer because asking it failed.
    pub stale: Option<SourceStaleness>,
}

/// Why a source's layer is not fresh.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SourceStaleness {
    /// Since when (ms since the Unix epoch).
    pub since_ms: u64,
    /// The last failure of asking the source (redacted like every diagnostic).
    pub last_error: String,
    /// True when the host started from the source's last-known-good cache.
    pub from_cache: bool,
    /// When that cached layer was saved (ms since the epoch); null unless `from_cache`.
    pub cached_at_ms: Option<u64>,
}

impl SourceStaleness {
    pub(crate) fn new(stale: &potter_plugin::Staleness, last_error: String) -> Self {
        SourceStaleness { since_ms: stale.since_ms, last_error, from_cache: stale.from_cache, cached_at_ms: stale.cached_at_ms }
    }
}

/// The plugins of the running host's plugins folder: name, kind, version, sha256, signer and the
/// grant kinds the trust store allows it, grants, limits, status, last error and a refused update.
/// Diagnostics are shown only for the environments the token may read (`errors`, per environment);
/// a diagnostic that names no environment is shown to a narrower token only when it is about the
/// plugin's files. Every diagnostic is redacted: no secret value of the snapshot appears in it.
#[utoipa::path(
    get,
    path = "/v1/plugins",
    responses(
        (status = 200, description = "The plugins of the folder", body = PluginList, content_type = "application/json"),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = [])),
)]
pub async fn plugins(State(state): State<ApiState>, Authenticated(principal): Authenticated) -> ApiResult<Json<PluginList>> {
    // The list never waits for a change in progress, but it reads the plugin host's state: off the async workers.
    let host = state.host.clone();
    let infos = blocking(move || Ok(host.plugin_list())).await?;
    let snapshot = state.host.snapshot();
    let diagnostics = PluginDiagnostics { snapshot: &snapshot, principal: &principal };
    let plugins: Vec<PluginEntry> = infos
        .iter()
        .map(|info| {
            let errors: Map<String, Value> = info
                .environment_errors
                .iter()
                .filter(|(environment, _)| principal.may_use_environment(environment))
                .map(|(environment, text)| (environment.clone(), Value::String(diagnostics.redacted(Some(environment), text))))
                .collect();
            let last_error = match (&info.last_error, info.status) {
                (Some(text), _) if diagnostics.sees_every_environment() => Some(diagnostics.redacted(None, text)),
                (Some(text), potter_plugin::PluginStatus::Refused) => Some(diagnostics.unscoped(text, info.refusal_about_files)),
                // A running plugin's last error may be about any environment: the narrower token sees
                // the last error of an environment it may read.
                (Some(_), potter_plugin::PluginStatus::Loaded) => errors.values().next().and_then(Value::as_str).map(str::to_owned),
                (None, _) => None,
            };
            let refused_update = info.refused_update.as_deref().map(|text| diagnostics.unscoped(text, info.refusal_about_files));
            // Staleness names no environment: a narrower token sees its error as for `last_error`.
            let stale = info.stale.as_ref().map(|stale| {
                let text = if diagnostics.sees_every_environment() { diagnostics.redacted(None, &stale.last_error) } else { errors.values().next().and_then(Value::as_str).map_or_else(|| diagnostics.unscoped(&stale.last_error, false), str::to_owned) };
                SourceStaleness::new(stale, text)
            });
            PluginEntry {
                name: info.name.clone(),
                file: info.file.file_name().map(|name| name.to_string_lossy().into_owned()),
                kind: info.kind,
                version: info.version.clone(),
                sha256: info.sha256.clone(),
                signer: info.signer_key_id.clone(),
                signer_allows: info.signer_allowance.clone(),
                status: info.status,
                last_error,
                errors,
                refused_update,
                grants: info.grants.clone(),
                secrets: info.secrets,
                limits: info.limits.clone(),
                stale,
            }
        })
        .collect();
    Ok(Json(PluginList { plugins }))
}

/// What `GET /v1/plugins` may tell one token of a plugin's failures.
struct PluginDiagnostics<'a> {
    snapshot: &'a Snapshot,
    principal: &'a Principal,
}

impl PluginDiagnostics<'_> {
    fn sees_every_environment(&self) -> bool {
        self.principal.role == Role::Admin || self.principal.environments.iter().any(|e| e == crate::tokens::ALL_ENVIRONMENTS)
    }

    /// `text` with the secret values of `environment`'s view (None: of every environment) redacted.
    fn redacted(&self, environment: Option<&str>, text: &str) -> String {
        let environments = self.snapshot.axes().environments.iter().map(|e| e.to_string());
        let environments: Vec<String> = match environment {
            Some(environment) => vec![environment.to_owned()],
            None => environments.collect(),
        };
        environments.iter().filter_map(|environment| self.snapshot.view(&ViewKey::environment(environment)).ok()).fold(text.to_owned(), |text, view| potter_config::secret_values::redact_text(view, &text))
    }

    /// A diagnostic that names no environment: shown when it is about the plugin's files (it quotes
    /// no configuration) or to a token that sees every environment; withheld otherwise.
    fn unscoped(&self, text: &str, about_files: bool) -> String {
        if about_files || self.sees_every_environment() {
            self.redacted(None, text)
        } else {
            "(withheld: the refusal came from running the plugin and may concern environments outside this token's scope)".to_owned()
        }
    }
}
