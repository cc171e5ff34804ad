//! The sandbox: one shared engine with epoch interruption, per-store memory
//! limits, the host functions of `potter:config/host`, captured stdio, and the
//! import policy that refuses ungranted capabilities at load time.
//!
//! Guests run asynchronously (async WASI, `call_async`) so that a call can be cut off at its
//! deadline whatever the guest is doing; see `executor.rs`.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::error::{describe, PluginError};
use crate::log::{Level, PluginLog};
use crate::manifest::{Grants, GRANTED_DIRECTORY_GUEST_PATH};
use crate::outbound::{OutboundHooks, OutboundPolicy};
use crate::sql::{Param, SqlPolicy, SqlSession};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

// The worlds as of 0.1.0 (the frozen copy in wit/v0.1.0). Their exports are unchanged in 0.2.0, and
// component-model types are structural, so these bindings call the exports of a component of
// either version; only the imported `host` interface differs by name (both are linked).
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        world: "validator",
        path: "../../../wit/v0.1.0",
        exports: { default: async },
    });
}

/// World `source`; shares the host interface (and so the linker entries) with `validator`.
pub(crate) mod source_bindings {
    wasmtime::component::bindgen!({
        world: "source",
        path: "../../../wit/v0.1.0",
        with: {
            "potter:config/host": super::bindings::potter::config::host,
        },
        exports: { default: async },
    });
}

/// World `live-source` of 0.2.0: its `host` import (linked beside 0.1.0's) and the optional
/// `provenance` and `watch` exports, which a source of 0.2.0 may export.
pub(crate) mod live_bindings {
    wasmtime::component::bindgen!({
        world: "live-source",
        path: "../../../wit",
        exports: { default: async },
    });
}

/// World `sql-source` of 0.2.0 (a source importing `potter:config/sql`); only its `sql` interface
/// is new, `host` is shared with `live-source`. The query runs asynchronously, so the
/// call's deadline ends it like any other wait.
pub(crate) mod sql_source_bindings {
    wasmtime::component::bindgen!({
        world: "sql-source",
        path: "../../../wit",
        with: {
            "potter:config/host": super::live_bindings::potter::config::host,
        },
        imports: { "potter:config/sql.query": async },
        exports: { default: async },
    });
}

/// The optional `namespace` export (`defaults`, `on-config-changed`), looked up by name because a
/// plugin of either world may or may not export it; one name per version of the package.
pub(crate) const NAMESPACE_INTERFACES: [&str; 2] = ["potter:config/namespace@0.2.0", "potter:config/namespace@0.1.0"];
/// The optional exports of a 0.2.0 source.
pub(crate) const PROVENANCE_INTERFACE: &str = "potter:config/provenance@0.2.0";
pub(crate) const WATCH_INTERFACE: &str = "potter:config/watch@0.2.0";

use bindings::potter::config::host::{Host as HostImports, LogLevel};

/// How often the ticker thread advances the engine's epoch: a computing guest yields to the
/// executor this often, which is when its deadline is checked.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Captured stdout/stderr per instance; a guest that writes more gets a closed stream.
pub(crate) const STDIO_CAPACITY: usize = 64 * 1024;
/// Host log lines one call may emit through `host.log`; the rest are dropped (beside the
/// plugin's rate limit, which spans calls).
const LOG_LINES_PER_CALL: u32 = 100;
/// Stack left to host functions (WASI, `potter:config/host`) above the Wasm stack on the fiber
/// every guest call runs on.
const HOST_STACK: usize = 1024 * 1024;

/// Build the shared engine and start its epoch ticker.
pub(crate) fn new_engine(max_wasm_stack: usize) -> Result<Engine, PluginError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(max_wasm_stack);
    config.async_stack_size(max_wasm_stack + HOST_STACK);
    config.parallel_compilation(true);
    let engine = Engine::new(&config)
        .map_err(|e| PluginError::Host(format!("cannot create engine: {}", describe(&e))))?;
    start_epoch_ticker(&engine)?;
    Ok(engine)
}

/// One thread per engine advances the epoch; it ends when the engine is dropped.
fn start_epoch_ticker(engine: &Engine) -> Result<(), PluginError> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("potter-plugin-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        })
        .map(|_| ())
        .map_err(|e| PluginError::Host(format!("cannot start the epoch ticker: {e}")))
}

/// The linker every plugin is instantiated with: all of WASI p2 plus
/// `potter:config/host`. What a plugin may actually use is decided by
/// [`check_imports`] before instantiation and by the (empty) WASI context.
pub(crate) fn new_linker(engine: &Engine) -> Result<Linker<CallState>, PluginError> {
    let mut linker = Linker::new(engine);
    let fail = |e: wasmtime::Error| {
        PluginError::Host(format!("cannot build the linker: {}", describe(&e)))
    };
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(fail)?;
    // Linked for every plugin, importable only by a source whose manifest grants origins
    // (`check_imports`); every request is checked again by `OutboundHooks`.
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(fail)?;
    bindings::Validator::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)
        .map_err(fail)?;
    live_bindings::LiveSource::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)
        .map_err(fail)?;
    // `types` holds only types (no functions): an empty instance satisfies a 0.2.0 import of it.
    linker.instance("potter:config/types@0.2.0").map_err(fail)?;
    // Importable only by a source whose manifest grants connections (`check_imports`); every
    // query is checked again by `SqlSession`.
    sql_source_bindings::potter::config::sql::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |state| state)
        .map_err(fail)?;
    Ok(linker)
}

/// Refuse a component that imports anything beyond the harmless default set, naming the interfaces.
/// `wasi:http` (its outgoing handler and types) is allowed only when the manifest grants origins,
/// `potter:config/sql` only when it grants connections.
pub(crate) fn check_imports(
    engine: &Engine,
    plugin: &str,
    component: &Component,
    grants: &Grants,
) -> Result<(), PluginError> {
    let mut refused: Vec<(String, String)> = component
        .component_type()
        .imports(engine)
        .filter_map(|(name, _)| {
            import_allowed(name, grants)
                .err()
                .map(|why| (name.to_string(), why))
        })
        .collect();
    refused.sort();
    match refused.first() {
        None => Ok(()),
        Some((_, why)) => Err(PluginError::UngrantedImport {
            plugin: plugin.to_string(),
            interface: refused
                .iter()
                .map(|(name, _)| name.as_str())
                .collect::<Vec<_>>()
                .join("`, `"),
            why: why.clone(),
        }),
    }
}

fn import_allowed(import: &str, grants: &Grants) -> Result<(), String> {
    let interface = import.split('@').next().unwrap_or(import);
    let grants_http = !grants.http.is_empty();
    match interface {
        "potter:config/host" | "potter:config/types" => Ok(()),
        "potter:config/sql" => match grants.sql.is_empty() {
            false => Ok(()),
            true => Err("SQL is granted only to a source whose signed manifest lists connections in `grants.sql`".into()),
        },
        // Harmless: streams, clocks, randomness, exit, and stdio that the host
        // captures (stdin is empty).
        "wasi:io/error"
        | "wasi:io/poll"
        | "wasi:io/streams"
        | "wasi:clocks/monotonic-clock"
        | "wasi:clocks/wall-clock"
        | "wasi:random/random"
        | "wasi:random/insecure"
        | "wasi:random/insecure-seed"
        | "wasi:cli/exit"
        | "wasi:cli/stdin"
        | "wasi:cli/stdout"
        | "wasi:cli/stderr"
        | "wasi:cli/terminal-input"
        | "wasi:cli/terminal-output"
        | "wasi:cli/terminal-stdin"
        | "wasi:cli/terminal-stdout"
        | "wasi:cli/terminal-stderr" => Ok(()),
        // Every Rust std guest imports this (libc start-up), so it cannot be
        // refused; the environment a plugin sees is empty unless `grants.env`
        // names variables (see `new_store`).
        "wasi:cli/environment" => Ok(()),
        // Language runtimes (CPython, StarlingMonkey, wasi-libc) import these whether or not the
        // plugin uses them. Linking them grants nothing: a store has no preopened directory unless
        // a source's manifest grants one (read-only), and its context refuses every socket.
        i if i.starts_with("wasi:filesystem/") || i.starts_with("wasi:sockets/") => Ok(()),
        // The host provides the 0.2 client interfaces; serving requests (`incoming-handler`) and
        // other versions are not provided to plugins at all.
        "wasi:http/outgoing-handler" | "wasi:http/types" if import.contains("@0.2.") => match grants_http {
            true => Ok(()),
            false => Err("network access is granted only to a source whose signed manifest lists origins in `grants.http`".into()),
        },
        i if i.starts_with("wasi:http/") => Err("network access is never granted to plugins".into()),
        _ => Err("the host does not provide this interface to plugins".into()),
    }
}

/// Caps linear memory; remembers whether the cap was hit so a failure can say so.
pub(crate) struct MemoryCap {
    max_bytes: usize,
    pub(crate) exceeded: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Data of one plugin store. Per-call fields are reset before every call.
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    /// Checks and sends every outgoing request (refuses all without `grants.http`).
    pub(crate) outbound: OutboundHooks,
    /// Checks and runs every SQL query (refuses all without `grants.sql`).
    pub(crate) sql: SqlSession,
    pub(crate) memory: MemoryCap,
    log: Arc<PluginLog>,
    pub(crate) environment: String,
    pub(crate) namespace_json: String,
    pub(crate) log_lines_left: u32,
}

/// A store plus the pipes its guest's stdout and stderr write into.
pub(crate) struct SandboxStore {
    pub(crate) store: Store<CallState>,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
}

/// A fresh store with no capabilities beyond the granted environment variables and, for a
/// source, its granted directory (read-only, at `/data`).
pub(crate) fn new_store(
    engine: &Engine,
    plugin: &str,
    log: Arc<PluginLog>,
    grants: &Grants,
    directory: Option<&std::path::Path>,
    outbound: Arc<OutboundPolicy>,
    sql: Arc<SqlPolicy>,
    memory_mib: u32,
) -> Result<SandboxStore, PluginError> {
    let stdout = MemoryOutputPipe::new(STDIO_CAPACITY);
    let stderr = MemoryOutputPipe::new(STDIO_CAPACITY);
    let mut wasi = WasiCtxBuilder::new();
    wasi.stdout(stdout.clone()).stderr(stderr.clone());
    wasi.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    for name in &grants.env {
        if let Ok(value) = std::env::var(name) {
            wasi.env(name, value);
        }
    }
    if let Some(directory) = directory {
        wasi.preopened_dir(directory, GRANTED_DIRECTORY_GUEST_PATH, FsPerms::ReadOnly)
            .map_err(|e| PluginError::Io {
                plugin: plugin.to_string(),
                path: directory.to_path_buf(),
                source: std::io::Error::other(describe(&e)),
            })?;
    }
    let state = CallState {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        http: WasiHttpCtx::new(),
        outbound: OutboundHooks::new(outbound),
        sql: SqlSession::new(sql),
        memory: MemoryCap {
            max_bytes: memory_mib as usize * 1024 * 1024,
            exceeded: false,
        },
        log,
        environment: String::new(),
        namespace_json: String::new(),
        log_lines_left: LOG_LINES_PER_CALL,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.memory);
    // A computing guest yields at every tick, so its deadline is checked every tick.
    store.epoch_deadline_async_yield_and_update(1);
    Ok(SandboxStore {
        store,
        stdout,
        stderr,
    })
}

impl CallState {
    pub(crate) fn begin_call(&mut self, environment: &str, namespace_json: String) {
        self.environment.clear();
        self.environment.push_str(environment);
        self.namespace_json = namespace_json;
        self.log_lines_left = LOG_LINES_PER_CALL;
        self.memory.exceeded = false;
        self.outbound.begin_call();
        self.sql.begin_call();
    }

    /// The first request or query the host refused or cut during this call, if any.
    pub(crate) fn first_refusal(&self) -> Option<String> {
        self.outbound.first_refusal().or_else(|| self.sql.first_refusal())
    }
}

impl sql_source_bindings::potter::config::sql::Host for CallState {
    async fn query(&mut self, connection: String, statement: String, params: Vec<sql_source_bindings::potter::config::sql::SqlParam>) -> Result<String, String> {
        use sql_source_bindings::potter::config::sql::SqlParam;
        let params = params
            .into_iter()
            .map(|param| match param {
                SqlParam::Null => Param::Null,
                SqlParam::Boolean(value) => Param::Boolean(value),
                SqlParam::Integer(value) => Param::Integer(value),
                SqlParam::Float(value) => Param::Float(value),
                SqlParam::Text(value) => Param::Text(value),
            })
            .collect();
        self.sql.query(&connection, &statement, params).await
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.outbound }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::potter::config::types::Host for CallState {}

impl HostImports for CallState {
    fn log(&mut self, level: LogLevel, message: String) {
        if self.log_lines_left == 0 {
            return;
        }
        self.log_lines_left -= 1;
        let level = match level {
            LogLevel::Trace => Level::Trace,
            LogLevel::Debug => Level::Debug,
            LogLevel::Info => Level::Info,
            LogLevel::Warn => Level::Warn,
            LogLevel::Error => Level::Error,
        };
        self.log.line(level, None, &message);
        if self.log_lines_left == 0 {
            self.log.line(Level::Warn, None, &format!("log limit of {LOG_LINES_PER_CALL} lines per call reached; further lines dropped"));
        }
    }

    fn environment(&mut self) -> String {
        self.environment.clone()
    }

    fn namespace_config(&mut self) -> String {
        self.namespace_json.clone()
    }
}

/// `host` of 0.2.0: the same functions as 0.1.0's.
impl live_bindings::potter::config::host::Host for CallState {
    fn log(&mut self, level: live_bindings::potter::config::host::LogLevel, message: String) {
        use live_bindings::potter::config::host::LogLevel as Newer;
        let level = match level {
            Newer::Trace => LogLevel::Trace,
            Newer::Debug => LogLevel::Debug,
            Newer::Info => LogLevel::Info,
            Newer::Warn => LogLevel::Warn,
            Newer::Error => LogLevel::Error,
        };
        HostImports::log(self, level, message)
    }

    fn environment(&mut self) -> String {
        HostImports::environment(self)
    }

    fn namespace_config(&mut self) -> String {
        HostImports::namespace_config(self)
    }
}

/// Cut `text` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Forward what the guest wrote to stdout/stderr since `from` to the host log (stdout at info,
/// stderr at warn). Returns the new offset.
pub(crate) fn forward_output(
    log: &PluginLog,
    stream: &'static str,
    pipe: &MemoryOutputPipe,
    from: usize,
) -> usize {
    let bytes = pipe.contents();
    if bytes.len() > from {
        let level = if stream == "stderr" { Level::Warn } else { Level::Info };
        let text = String::from_utf8_lossy(&bytes[from..]);
        for line in text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(LOG_LINES_PER_CALL as usize)
        {
            log.line(level, Some(stream), line);
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granting(http: bool, sql: bool) -> Grants {
        Grants {
            http: if http { vec!["http://127.0.0.1:1".into()] } else { Vec::new() },
            sql: if sql { vec!["settings-db".into()] } else { Vec::new() },
            ..Grants::default()
        }
    }

    #[test]
    fn sql_is_importable_only_with_granted_connections() {
        assert!(import_allowed("potter:config/sql@0.2.0", &granting(false, true)).is_ok());
        let refused = import_allowed("potter:config/sql@0.2.0", &granting(true, false)).unwrap_err();
        assert!(refused.contains("lists connections in `grants.sql`"), "{refused}");
    }

    #[test]
    fn default_grants_allow_only_harmless_interfaces() {
        assert!(import_allowed("wasi:io/streams@0.2.6", &granting(false, false)).is_ok());
        assert!(import_allowed("potter:config/host@0.1.0", &granting(false, false)).is_ok());
        assert!(
            import_allowed("wasi:cli/environment@0.2.6", &granting(false, false)).is_ok(),
            "empty unless granted"
        );
        assert!(
            import_allowed("wasi:filesystem/preopens@0.2.6", &granting(false, false)).is_ok(),
            "no directory unless granted"
        );
        assert!(
            import_allowed("wasi:sockets/tcp@0.2.6", &granting(false, false)).is_ok(),
            "every socket refused by the context"
        );
        assert!(import_allowed("wasi:http/outgoing-handler@0.2.6", &granting(false, false)).is_err());
        assert!(import_allowed("wasi:http/outgoing-handler@0.2.6", &granting(true, false)).is_ok(), "granted origins");
        assert!(import_allowed("wasi:http/types@0.2.6", &granting(true, false)).is_ok());
        assert!(import_allowed("wasi:http/incoming-handler@0.2.6", &granting(true, false)).is_err(), "plugins serve nothing");
        assert!(import_allowed("wasi:http/handler@0.3.0-rc-2025-09-16", &granting(true, false)).is_err());
        assert!(import_allowed("acme:evil/thing", &granting(true, false)).is_err());
    }
}
