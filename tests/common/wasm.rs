//! Signed plugins in a temporary tree: real components built once per test process by
//! `scripts/build-plugins` into `target/plugins/`, signed with a key the tree's state trusts.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use potter_config::Options;
use potter_plugin::KeyFiles;

use super::{demo_keys, repo_path, Tree};

/// `target/plugins/`, after running `scripts/build-plugins` once per test process.
pub fn built_plugins() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new("bash").arg(repo_path("scripts/build-plugins")).status().expect("scripts/build-plugins runs");
        assert!(status.success(), "scripts/build-plugins failed");
        repo_path("target/plugins")
    })
}

/// A tree whose plugins folder starts empty, with a signing key its state directory trusts.
pub struct PluginTree {
    pub tree: Tree,
    pub key: KeyFiles,
    staging: tempfile::TempDir,
}

impl PluginTree {
    pub fn new(tree: Tree) -> Self {
        let plugins = tree.root().join("plugins");
        let _ = fs::remove_dir_all(&plugins);
        fs::create_dir_all(&plugins).unwrap();
        let key = potter_plugin::keygen(&tree.root().parent().unwrap().join("test-signer")).unwrap();
        // Test plugins ask for every grant kind: the key may use them all.
        potter_plugin::trust_with(&key.public_key, &tree.state().join("trusted-keys"), &potter_plugin::Allowance::all()).unwrap();
        Self { tree, key, staging: tempfile::tempdir().unwrap() }
    }

    pub fn plugins(&self) -> PathBuf {
        self.tree.root().join("plugins")
    }

    pub fn wasm(&self, name: &str) -> PathBuf {
        self.plugins().join(format!("{name}.wasm"))
    }

    /// Host options for the tree, with the example's demo keyrings.
    pub fn options(&self) -> Options {
        let mut options = Options::new(self.tree.root());
        options.state_dir = self.tree.state();
        options.env_vars = Some(demo_keys());
        options
    }

    /// Installs the built plugin `built` under its own name, signed.
    pub fn install(&self, built: &str) {
        self.install_as(built, built, |manifest| manifest);
    }

    /// Installs the built plugin `built` as `name`, its manifest passed through `edit` (after the
    /// name is changed), signed.
    pub fn install_as(&self, built: &str, name: &str, edit: impl FnOnce(String) -> String) {
        self.install_prepared(name, self.prepare(built, name, edit));
    }

    /// Moves prepared files (module, manifest, signature) into the folder as `name`: renamed in
    /// (signature last), as a careful deploy would.
    pub fn install_prepared(&self, name: &str, (wasm, manifest, signature): (PathBuf, PathBuf, PathBuf)) {
        fs::rename(&manifest, potter_plugin::manifest_path(&self.wasm(name))).unwrap();
        fs::rename(&wasm, self.wasm(name)).unwrap();
        fs::rename(&signature, potter_plugin::signature_path(&self.wasm(name))).unwrap();
    }

    /// The signed files of `built` as `name`, in a staging folder: (module, manifest, signature).
    pub fn prepare(&self, built: &str, name: &str, edit: impl FnOnce(String) -> String) -> (PathBuf, PathBuf, PathBuf) {
        self.prepare_signed(built, name, edit, Signing::Checked)
    }

    /// [`Self::prepare`], signed as `signing` says.
    pub fn prepare_signed(&self, built: &str, name: &str, edit: impl FnOnce(String) -> String, signing: Signing) -> (PathBuf, PathBuf, PathBuf) {
        self.prepare_signed_by(built, name, edit, signing, &self.key)
    }

    /// [`Self::prepare_signed`] with another signing key (e.g. one trusted for fewer grant kinds).
    pub fn prepare_signed_by(&self, built: &str, name: &str, edit: impl FnOnce(String) -> String, signing: Signing, key: &KeyFiles) -> (PathBuf, PathBuf, PathBuf) {
        let from = built_plugins();
        let dir = self.staging.path().join(format!("{name}-{}", unique()));
        fs::create_dir_all(&dir).unwrap();
        let wasm = dir.join(format!("{name}.wasm"));
        fs::copy(from.join(format!("{built}.wasm")), &wasm).unwrap();
        let manifest = fs::read_to_string(from.join(format!("{built}.plugin.toml"))).unwrap();
        let manifest = manifest.replace(&format!("name = \"{built}\""), &format!("name = \"{name}\""));
        fs::write(potter_plugin::manifest_path(&wasm), edit(manifest)).unwrap();
        let signature = match signing {
            Signing::Checked => potter_plugin::sign(&wasm, &key.secret_key),
            Signing::Forged => potter_plugin::testing::forge_signature(&wasm, &key.secret_key),
        };
        (wasm.clone(), potter_plugin::manifest_path(&wasm), signature.unwrap())
    }

    pub fn remove(&self, name: &str) {
        fs::remove_file(self.wasm(name)).unwrap();
        let _ = fs::remove_file(potter_plugin::signature_path(&self.wasm(name)));
        let _ = fs::remove_file(potter_plugin::manifest_path(&self.wasm(name)));
    }
}

/// How a prepared plugin is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// By `plugin sign`, which refuses what the host would refuse.
    Checked,
    /// Without `sign`'s checks: a manifest `sign` refuses, signed by some other tool.
    Forged,
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
