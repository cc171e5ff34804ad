//! The config tree on disk: `global.*`, `environments/<env>.*`, `services/<service>.*`, `users/<user>.*`.
//!
//! Each file becomes one layer. Files are read with a size limit, must be UTF-8, and are parsed by
//! extension; a layer written twice (`global.json` and `global.yaml`) is refused, naming both files.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use potter_engine::{parse_document, Axes, Format, Layer, LayerSource, Rank, Scope};

use crate::error::Error;

/// Largest configuration file accepted: far above any real configuration, small enough to refuse junk early.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// One file of the tree and the layer it forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Layer name: `global`, `environments/production`, `services/api`, `users/alice`.
    pub layer: String,
    pub rank: Rank,
    /// The environment, service or user name (empty for global).
    pub name: String,
    /// Path relative to the root, as shown in messages (`environments/production.json`).
    pub relative: String,
    pub path: PathBuf,
    pub format: Format,
}

const KINDS: [(&str, Rank); 3] = [("environments", Rank::EnvironmentFile), ("services", Rank::ServiceFile), ("users", Rank::UserFile)];

/// The files of a config tree, found by [`scan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeListing {
    pub files: Vec<TreeFile>,
    pub axes: Axes,
}

/// Lists the configuration files under `root` (nothing is parsed yet).
pub fn scan(root: &Path) -> Result<TreeListing, Error> {
    let meta = fs::metadata(root).map_err(|e| Error::Root { path: root.to_owned(), reason: e.to_string() })?;
    if !meta.is_dir() {
        return Err(Error::Root { path: root.to_owned(), reason: "not a directory".into() });
    }
    let mut listing = TreeListing::default();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut add = |listing: &mut TreeListing, layer: String, rank: Rank, name: String, relative: String, path: PathBuf, format: Format| {
        if let Some(first) = seen.get(&layer) {
            let (first, second) = if *first <= relative { (first.clone(), relative) } else { (relative, first.clone()) };
            return Err(Error::DuplicateLayer { layer, first, second });
        }
        seen.insert(layer.clone(), relative.clone());
        listing.files.push(TreeFile { layer, rank, name, relative, path, format });
        Ok(())
    };
    for entry in read_dir_sorted(root)? {
        if let Some(("global", format)) = config_file_name(&entry) {
            let relative = file_name(&entry);
            add(&mut listing, "global".into(), Rank::GlobalFile, String::new(), relative, entry.clone(), format)?;
        }
    }
    for (dir, rank) in KINDS {
        let folder = root.join(dir);
        if !folder.exists() {
            continue;
        }
        for entry in read_dir_sorted(&folder)? {
            let Some((stem, format)) = config_file_name(&entry) else { continue };
            let stem = stem.to_owned();
            let relative = format!("{dir}/{}", file_name(&entry));
            let axis = match rank {
                Rank::EnvironmentFile => &mut listing.axes.environments,
                Rank::ServiceFile => &mut listing.axes.services,
                _ => &mut listing.axes.users,
            };
            if !axis.iter().any(|n| **n == *stem) {
                axis.push(stem.as_str().into());
            }
            add(&mut listing, format!("{dir}/{stem}"), rank, stem, relative, entry.clone(), format)?;
        }
    }
    listing.files.sort_by(|a, b| (a.rank, &a.layer).cmp(&(b.rank, &b.layer)));
    Ok(listing)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `(stem, format)` for a configuration file name; hidden files and other extensions are not ours.
fn config_file_name(path: &Path) -> Option<(&str, Format)> {
    let name = path.file_name()?.to_str()?;
    if name.starts_with('.') {
        return None;
    }
    let (stem, ext) = name.rsplit_once('.')?;
    let format = Format::from_extension(ext)?;
    (!stem.is_empty()).then_some((stem, format))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|entry| entry.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
        .collect::<Result<_, _>>()?;
    entries.sort();
    Ok(entries)
}

/// Reads a file as UTF-8 text with the size limit, naming the file in every error.
pub fn read_text(path: &Path, shown_as: &str) -> Result<String, Error> {
    let meta = fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::NotAFile { file: shown_as.to_owned() });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::TooLarge { file: shown_as.to_owned(), size: meta.len(), limit: MAX_FILE_BYTES });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::TooLarge { file: shown_as.to_owned(), size: bytes.len() as u64, limit: MAX_FILE_BYTES });
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
        let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&valid[line_start..]).chars().count() as u32 + 1;
        Error::NotUtf8 { file: shown_as.to_owned(), line, column }
    })
}

/// Parses one file's text into its layer.
pub fn layer_from_text(file: &TreeFile, text: &str) -> Result<Layer, Error> {
    let parsed = parse_document(text, file.format).map_err(|source| Error::Parse { file: file.relative.clone(), source })?;
    let scope = match file.rank {
        Rank::EnvironmentFile => Scope { environment: Some(file.name.as_str().into()), ..Scope::default() },
        Rank::ServiceFile => Scope { service: Some(file.name.as_str().into()), ..Scope::default() },
        Rank::UserFile => Scope { user: Some(file.name.as_str().into()), ..Scope::default() },
        _ => Scope::everywhere(),
    };
    Ok(Layer::with_locations(file.layer.clone(), file.rank, scope, LayerSource::File(file.relative.as_str().into()), parsed.data, parsed.locations))
}

/// What identifies one version of a file on disk (through symlinks): any write, rename or
/// ConfigMap-style symlink swap changes at least one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
    inode: u64,
    device: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(path).ok()?;
        Some(Self {
            len: meta.len(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
            inode: meta.ino(),
            device: meta.dev(),
        })
    }
}

/// Parsed layers by file, so a reload re-reads and re-parses only the files that changed.
#[derive(Debug, Default)]
pub struct FileCache {
    entries: std::collections::HashMap<PathBuf, (FileStamp, TreeFile, Arc<Layer>)>,
}

impl FileCache {
    /// The layers of `files`, parsing only those that changed since the last call.
    pub fn load_all(&mut self, files: &[TreeFile]) -> Result<Vec<Arc<Layer>>, Error> {
        let mut layers = Vec::with_capacity(files.len());
        let mut fresh = std::collections::HashMap::with_capacity(files.len());
        for file in files {
            let stamp = FileStamp::of(&file.path);
            let layer = match (stamp, self.entries.get(&file.path)) {
                (Some(stamp), Some((cached_stamp, cached_file, layer))) if stamp == *cached_stamp && cached_file == file => layer.clone(),
                _ => load_file(file)?,
            };
            if let Some(stamp) = stamp {
                fresh.insert(file.path.clone(), (stamp, file.clone(), layer.clone()));
            }
            layers.push(layer);
        }
        // Only a fully successful load replaces the cache; files that vanished drop out.
        self.entries = fresh;
        Ok(layers)
    }
}

/// Reads and parses one file of the tree.
pub fn load_file(file: &TreeFile) -> Result<Arc<Layer>, Error> {
    let text = read_text(&file.path, &file.relative)?;
    layer_from_text(file, &text).map(Arc::new)
}
