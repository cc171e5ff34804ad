//! Potter Config source plugin: secrets from HashiCorp Vault's KV version 2 secrets engine
//! (`GET /v1/<mount>/data/<path>` with `X-Vault-Token`). Its manifest declares `secret_output`,
//! so every value it yields is a secret to the host.
//!
//! Configured by its namespace, `plugins.vault-source`:
//!
//! | key | meaning |
//! |---|---|
//! | `address` | the Vault server, e.g. `https://vault.internal:8200` (must be granted in `grants.http`). Required. |
//! | `mount` | the KV v2 mount (default `secret`) |
//! | `secrets` | `{name: path}`: each KV path's fields become `<at>.<name>.<field>`; `{environment}` in a path is replaced by the environment's name. Required. |
//! | `at` | dotted key path under which the secrets go (default `vault`) |
//! | `token_env` | the variable holding the token (default `VAULT_TOKEN`; must be in `grants.env`) |
//! | `poll_interval_ms` | how often the host asks again (default 0: never) |
//!
//! Change detection: the change token is the list of each path's `metadata.version`; the data a
//! poll fetched is kept for the `load` that follows, so a poll costs one request per path.

use std::cell::RefCell;
use std::collections::BTreeMap;

use potter_sdk::{serde_json, Source, Value};

thread_local! {
    /// Data fetched by `change-token` that `load` has not used yet, with its environment.
    static PENDING: RefCell<Option<(String, Value)>> = const { RefCell::new(None) };
}

struct Settings {
    address: String,
    mount: String,
    secrets: BTreeMap<String, String>,
    at: String,
    token_env: String,
}

fn settings() -> Result<Settings, String> {
    let config = potter_sdk::namespace_config();
    let text = |key: &str| config.get(key).and_then(Value::as_str).map(str::to_owned);
    let address = text("address").ok_or("plugins.vault-source.address is not set (the Vault server, e.g. https://vault.internal:8200)")?;
    let environment = potter_sdk::environment();
    let secrets = config.get("secrets").and_then(Value::as_object).ok_or("plugins.vault-source.secrets is not set ({name: KV path})")?;
    let secrets = secrets
        .iter()
        .map(|(name, path)| path.as_str().map(|path| (name.clone(), path.replace("{environment}", &environment))).ok_or_else(|| format!("plugins.vault-source.secrets.{name} is not a string (a KV path)")))
        .collect::<Result<_, _>>()?;
    Ok(Settings {
        address: address.trim_end_matches('/').to_owned(),
        mount: text("mount").unwrap_or_else(|| "secret".to_owned()).trim_matches('/').to_owned(),
        secrets,
        at: text("at").unwrap_or_else(|| "vault".to_owned()),
        token_env: text("token_env").unwrap_or_else(|| "VAULT_TOKEN".to_owned()),
    })
}

/// Reads every configured path: the layer and its change token (`name@version` of each path).
fn read_all(settings: &Settings) -> Result<(String, Value), String> {
    let token = std::env::var(&settings.token_env).map_err(|_| format!("plugins.vault-source.token_env: variable {} is not set or not granted (grants.env)", settings.token_env))?;
    let mut secrets = serde_json::Map::new();
    let mut versions = Vec::new();
    for (name, path) in &settings.secrets {
        let url = format!("{}/v1/{}/data/{}", settings.address, settings.mount, path.trim_matches('/'));
        let response = guest_http::get(&url, &[("x-vault-token", &token), ("accept", "application/json")])?;
        let body: Value = serde_json::from_slice(&response.body).map_err(|e| format!("GET {url}: HTTP {}: not JSON: {e}", response.status))?;
        if response.status != 200 {
            // Vault's error answer: {"errors": ["permission denied"]} (empty for a missing path).
            let errors: Vec<&str> = body.get("errors").and_then(Value::as_array).map(|list| list.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            let why = if errors.is_empty() && response.status == 404 { "no secret at this path".to_owned() } else { errors.join("; ") };
            return Err(format!("GET {url}: HTTP {}: {why}", response.status));
        }
        let data = body.pointer("/data/data").and_then(Value::as_object).ok_or_else(|| format!("GET {url}: not a KV version 2 answer (no data.data object; is the mount KV v1?)"))?;
        let version = body.pointer("/data/metadata/version").and_then(Value::as_u64).unwrap_or(0);
        versions.push(format!("{name}@{version}"));
        secrets.insert(name.clone(), Value::Object(data.clone()));
    }
    let layer = settings.at.rsplit('.').fold(Value::Object(secrets), |inner, segment| {
        let mut outer = serde_json::Map::new();
        outer.insert(segment.to_owned(), inner);
        Value::Object(outer)
    });
    Ok((versions.join(","), layer))
}

struct VaultSource;

impl Source for VaultSource {
    fn load(environment: &str) -> Result<Value, String> {
        if let Some((_, layer)) = PENDING.with(|pending| pending.borrow_mut().take()).filter(|(fetched_for, _)| fetched_for == environment) {
            return Ok(layer);
        }
        Ok(read_all(&settings()?)?.1)
    }

    fn poll_interval_ms() -> u32 {
        potter_sdk::namespace_config().get("poll_interval_ms").and_then(Value::as_u64).map_or(0, |ms| ms.min(u64::from(u32::MAX)) as u32)
    }

    /// The versions of every path; none when Vault cannot be asked (`load` then says why).
    fn change_token() -> Option<String> {
        let (token, layer) = read_all(&settings().ok()?).ok()?;
        PENDING.with(|pending| *pending.borrow_mut() = Some((potter_sdk::environment(), layer)));
        Some(token)
    }
}

potter_sdk::export_source!(VaultSource);
