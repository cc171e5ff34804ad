//! Test helpers: real components built from source once per test process,
//! a throw-away state directory with a trusted key, and signed installs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use potter_plugin::{keygen, sign, trust_with, Allowance, HostOptions, KeyFiles, PluginHost};
use tempfile::TempDir;

/// The repository root (three levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../..")
        .canonicalize()
        .unwrap()
}

/// `target/plugins/`, after running `scripts/build-plugins` once per process.
pub fn built_plugins() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo_root();
        let status = Command::new("bash")
            .arg(root.join("scripts/build-plugins"))
            .status()
            .expect("run scripts/build-plugins");
        assert!(status.success(), "scripts/build-plugins failed");
        root.join("target/plugins")
    })
}

/// A state dir with one trusted signing key, and a plugins dir to install into.
pub struct Fixture {
    pub temp: TempDir,
    pub state: PathBuf,
    pub plugins: PathBuf,
    pub key: KeyFiles,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::in_temp(TempDir::new().unwrap())
    }

    fn in_temp(temp: TempDir) -> Fixture {
        let state = temp.path().join("state");
        let plugins = temp.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        let key = keygen(&temp.path().join("author")).unwrap();
        // Test plugins ask for every grant kind: the key may use them all.
        trust_with(&key.public_key, &state.join("trusted-keys"), &Allowance::all()).unwrap();
        Fixture {
            temp,
            state,
            plugins,
            key,
        }
    }

    /// Copy a built plugin (module + manifest) into the plugins dir, unsigned.
    pub fn install_unsigned(&self, name: &str) -> PathBuf {
        let built = built_plugins();
        let wasm = self.plugins.join(format!("{name}.wasm"));
        std::fs::copy(built.join(format!("{name}.wasm")), &wasm).unwrap();
        std::fs::copy(
            built.join(format!("{name}.plugin.toml")),
            self.plugins.join(format!("{name}.plugin.toml")),
        )
        .unwrap();
        wasm
    }

    /// Copy a built plugin and sign it with the trusted key.
    pub fn install(&self, name: &str) -> PathBuf {
        let wasm = self.install_unsigned(name);
        sign(&wasm, &self.key.secret_key).unwrap();
        wasm
    }

    /// Install arbitrary module bytes with a minimal validator manifest, signed.
    pub fn install_bytes(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let wasm = self.plugins.join(format!("{name}.wasm"));
        std::fs::write(&wasm, bytes).unwrap();
        std::fs::write(
            self.plugins.join(format!("{name}.plugin.toml")),
            format!(
                "name = \"{name}\"\nkind = \"validator\"\nversion = \"0\"\nprefixes = [\"app\"]\n"
            ),
        )
        .unwrap();
        sign(&wasm, &self.key.secret_key).unwrap();
        wasm
    }

    pub fn options(&self, environment: &str) -> HostOptions {
        HostOptions::new(&self.state, environment)
    }

    pub fn host(&self, environment: &str) -> PluginHost {
        PluginHost::new(self.options(environment)).unwrap()
    }
}

/// A tracing subscriber that keeps every event as one line of text:
/// `LEVEL field=value ... target=TARGET`.
#[derive(Clone, Default)]
pub struct CapturedLog {
    pub lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl CapturedLog {
    pub fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl tracing::Subscriber for CapturedLog {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!(" {}={:?}", field.name(), value));
            }
        }
        let mut fields = Fields(event.metadata().level().to_string());
        event.record(&mut fields);
        fields.0.push_str(&format!(" target={}", event.metadata().target()));
        self.lines.lock().unwrap().push(fields.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// The plugins written in other languages (built by `scripts/build-polyglot-plugins`, which
/// `scripts/build-plugins` runs last): componentize-py and componentize-js guests.
pub const PYTHON_VALIDATOR: &str = "python-validator";
pub const JS_VALIDATOR: &str = "js-validator";

/// A view of `environment` for the whole environment (no service).
pub fn environment_view(environment: &str) -> potter_plugin::ValidationTarget {
    potter_plugin::ValidationTarget {
        environment: environment.into(),
        service: None,
    }
}

impl Fixture {
    /// Like [`Fixture::new`], with the temporary directory inside `parent` (created if needed).
    /// For a fixture kept in a `static`, whose directory is never dropped: put it where the
    /// next run can clear it.
    pub fn new_in(parent: &Path) -> Fixture {
        std::fs::create_dir_all(parent).unwrap();
        Fixture::in_temp(TempDir::new_in(parent).unwrap())
    }
}

impl Fixture {
    /// Copy a built plugin, pass its manifest through `edit`, and sign it with the trusted key.
    pub fn install_edited(&self, name: &str, edit: impl FnOnce(String) -> String) -> PathBuf {
        let wasm = self.install_unsigned(name);
        let manifest = potter_plugin::manifest_path(&wasm);
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, edit(text)).unwrap();
        sign(&wasm, &self.key.secret_key).unwrap();
        wasm
    }
}

/// `text` with a `[limits]` section asking for `timeout_ms` (the built manifest has none).
pub fn with_timeout_ms(text: String, timeout_ms: u32) -> String {
    assert!(!text.contains("[limits]"), "{text}");
    format!("{text}\n[limits]\ntimeout_ms = {timeout_ms}\n")
}
