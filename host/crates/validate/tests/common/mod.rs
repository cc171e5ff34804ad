//! Small config trees in temporary folders, loaded the way the host loads them.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use potter_engine::{parse_document, Axes, Format, Layer, LayerSource, Rank, Scope, Snapshot, View, ViewKey};
use potter_validate::{SchemaSet, Validation};

pub struct Tree {
    pub dir: tempfile::TempDir,
}

/// The shipped schemas folder at the repository root.
pub fn shipped_schemas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../schemas")
}

pub const GLOBAL: &str = r#"{
  "app": {"name": "Potter", "version": "1.4.0", "environment": "development"},
  "logging": {"level": "INFO", "file": "potter.log", "max_size": 10},
  "api": {"rate_limit": 100, "timeout": 30}
}
"#;

impl Tree {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    /// A tree with the shipped schemas, a valid global file and three environments.
    pub fn potter() -> Self {
        let tree = Self::new().with_shipped_schemas().file("global.json", GLOBAL);
        for env in ["development", "staging", "production"] {
            tree.write(&format!("environments/{env}.json"), &format!("{{\n  \"app\": {{\"environment\": \"{env}\"}}\n}}\n"));
        }
        tree
    }

    pub fn with_shipped_schemas(self) -> Self {
        copy_dir(&shipped_schemas(), &self.dir.path().join("schemas"));
        self
    }

    pub fn file(self, rel: &str, text: &str) -> Self {
        self.write(rel, text);
        self
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.dir.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    pub fn remove(&self, rel: &str) {
        fs::remove_file(self.dir.path().join(rel)).unwrap();
    }

    pub fn text(&self, rel: &str) -> String {
        fs::read_to_string(self.dir.path().join(rel)).unwrap()
    }

    pub fn schemas_dir(&self) -> PathBuf {
        self.dir.path().join("schemas")
    }

    pub fn schemas(&self) -> SchemaSet {
        SchemaSet::load(&self.schemas_dir()).unwrap()
    }

    pub fn validation(&self) -> Validation {
        Validation::new(self.schemas())
    }

    /// The file layers of the tree (global, environments, services), plus `extra` layers.
    pub fn snapshot_with(&self, extra: Vec<Layer>) -> Snapshot {
        let mut layers: Vec<Arc<Layer>> = extra.into_iter().map(Arc::new).collect();
        let mut axes = Axes::default();
        let root = self.dir.path();
        if root.join("global.json").exists() {
            layers.push(Arc::new(self.layer("global.json", "global", Rank::GlobalFile, Scope::everywhere())));
        }
        for (folder, rank) in [("environments", Rank::EnvironmentFile), ("services", Rank::ServiceFile)] {
            let Ok(entries) = fs::read_dir(root.join(folder)) else { continue };
            let mut names: Vec<String> = entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
            names.sort();
            for name in names {
                let stem = name.strip_suffix(".json").unwrap().to_owned();
                let scope = match rank {
                    Rank::EnvironmentFile => {
                        axes.environments.push(stem.as_str().into());
                        Scope::environment(&stem)
                    }
                    _ => {
                        axes.services.push(stem.as_str().into());
                        Scope { service: Some(stem.as_str().into()), ..Scope::everywhere() }
                    }
                };
                layers.push(Arc::new(self.layer(&format!("{folder}/{name}"), &format!("{folder}/{stem}"), rank, scope)));
            }
        }
        Snapshot::new(0, layers, axes)
    }

    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_with(Vec::new())
    }

    fn layer(&self, rel: &str, name: &str, rank: Rank, scope: Scope) -> Layer {
        let parsed = parse_document(&self.text(rel), Format::Json).unwrap_or_else(|e| panic!("{rel}: {e}"));
        Layer::with_locations(name, rank, scope, LayerSource::File(rel.into()), parsed.data, parsed.locations)
    }
}

pub fn view<'s>(snapshot: &'s Snapshot, env: &str, service: Option<&str>) -> &'s Arc<View> {
    snapshot.view(&ViewKey::new(env, service, None)).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}
