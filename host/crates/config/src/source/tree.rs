//! The config tree on disk: `global.*`, `environments/<env>.*`, `services/<service>.*`, `users/<user>.*`.
//!
//! Each file becomes one layer. Files are read with a size limit, must be UTF-8, and are parsed by
//! extension; a layer written twice (`global.json` and `global.yaml`) is refused, naming both files.
//! [`TreeSource`] is the tree as a [`Source`] of a snapshot build.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use potter_engine::{parse_document, Axes, Format, Layer, LayerSource, Rank, Scope};

use super::{BuildContext, Source};
use crate::error::Error;
use crate::options::Options;

/// Largest configuration file accepted: far above any real configuration, small enough to refuse junk early.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// One file of the tree and the layer it forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Layer name: `global`, `environments/production`, `services/api`, `users/alice`.
    pub layer: String,
    /// Its precedence level: global, environment, service or user file.
    pub rank: Rank,
    /// The environment, service or user name (empty for global).
    pub name: String,
    /// Path relative to the root, as shown in messages (`environments/production.json`).
    pub relative: String,
    /// Where it is read from (the root joined with `relative`).
    pub path: PathBuf,
    /// The format its extension names.
    pub format: Format,
}

const KINDS: [(&str, Rank); 3] = [("environments", Rank::EnvironmentFile), ("services", Rank::ServiceFile), ("users", Rank::UserFile)];

/// The files of a config tree, found by [`scan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeListing {
    /// The files, by rank, then layer name.
    pub files: Vec<TreeFile>,
    /// The environments, services and users the files name.
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
    let (bytes, _) = read_bytes(path).map_err(|error| file_error(path, shown_as, error))?;
    utf8_text(bytes, shown_as)
}

/// The file's bytes and the stamp of the handle they were read through. The path is opened
/// without blocking and refused unless it is a regular file within the size limit (a FIFO,
/// device or directory named like a configuration file is refused, never waited on).
fn read_bytes(path: &Path) -> Result<(Vec<u8>, FileStamp), potter_files::ReadError> {
    let (bytes, meta) = potter_files::read_regular_with_metadata(path, MAX_FILE_BYTES)?;
    Ok((bytes, FileStamp::from_metadata(&meta)))
}

/// The crate's error for a refused read, naming the file as shown in messages.
fn file_error(path: &Path, shown_as: &str, error: potter_files::ReadError) -> Error {
    match error {
        potter_files::ReadError::NotRegular { kind, .. } => Error::NotAFile { file: shown_as.to_owned(), kind },
        potter_files::ReadError::TooLarge { limit, .. } => {
            // The size is only for the message: a stat never blocks.
            let size = fs::metadata(path).map_or(limit + 1, |meta| meta.len());
            Error::TooLarge { file: shown_as.to_owned(), size, limit }
        }
        potter_files::ReadError::Io { source, .. } => Error::io(path, source),
    }
}

fn utf8_text(bytes: Vec<u8>, shown_as: &str) -> Result<String, Error> {
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
pub(crate) struct FileStamp {
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
    inode: u64,
    device: u64,
}

impl FileStamp {
    /// The stamp of the file at `path` (through symlinks); None if it cannot be read.
    pub(crate) fn of(path: &Path) -> Option<Self> {
        fs::metadata(path).ok().map(|meta| Self::from_metadata(&meta))
    }

    /// When the file was last modified (the epoch for a time before it).
    pub(crate) fn modified(&self) -> std::time::SystemTime {
        let (seconds, nanos) = self.modified;
        let Ok(seconds) = u64::try_from(seconds) else { return std::time::UNIX_EPOCH };
        std::time::UNIX_EPOCH + Duration::new(seconds, u32::try_from(nanos).unwrap_or(0))
    }

    /// True when the file was last modified less than `limit` ago (or, by its clock, in the future).
    fn written_within(&self, limit: Duration) -> bool {
        std::time::SystemTime::now().duration_since(self.modified()).map_or(true, |age| age < limit)
    }

    fn from_metadata(meta: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            len: meta.len(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
            inode: meta.ino(),
            device: meta.dev(),
        }
    }
}

/// How long a reload waits, at most, for a save in flight to finish (the watcher's default
/// `max_delay`) before it takes an empty or missing file as meant.
pub const DEFAULT_SETTLE_LIMIT: Duration = Duration::from_millis(200);

/// What one look at the tree's files found.
#[derive(Debug)]
pub enum Loaded {
    /// Every file read whole and unchanged while it was read, nothing looking like a save in
    /// flight: the layers, in the listing's order.
    Settled(Vec<Arc<Layer>>),
    /// Files (as shown in messages) that look like a save in progress: one of the live tree that
    /// is gone or has become empty, a new one that is still empty, one that changed while it was
    /// read, or one written within the settle limit that does not parse. Nothing was taken in;
    /// look again shortly.
    InFlight(Vec<String>),
}

/// Parsed layers by file, so a reload re-reads and re-parses only the files that changed.
#[derive(Debug)]
pub struct FileCache {
    entries: HashMap<PathBuf, (FileStamp, TreeFile, Arc<Layer>)>,
    /// True once a load was taken in: only then is there a live tree a save can be "in flight" against.
    primed: bool,
    /// How long [`FileCache::load_settled`] waits for a save in flight.
    settle_limit: Duration,
    /// The names of the last settled listing, whose `Arc`s the next listing takes over: a reader's
    /// view key from an earlier snapshot then still matches the new snapshot's by pointer.
    axes: Axes,
}

impl Default for FileCache {
    fn default() -> Self {
        Self { entries: HashMap::new(), primed: false, settle_limit: DEFAULT_SETTLE_LIMIT, axes: Axes::default() }
    }
}

/// How often a reload that met a save in flight looks at the tree again.
const SETTLE_STEP: Duration = Duration::from_millis(5);

impl FileCache {
    /// Sets how long a reload waits for a save in flight (zero: never waits).
    pub fn set_settle_limit(&mut self, limit: Duration) {
        self.settle_limit = limit;
    }

    /// Lists the tree and loads its files, waiting (up to the settle limit) while any file looks
    /// like a save in flight (see [`Loaded::InFlight`]); once the limit has passed, what is on
    /// disk is taken as meant. `before_read` sees every listing before its files are read: it may
    /// narrow the listing (the environments a process serves) and resolve keyrings on the first.
    pub fn load_settled(&mut self, root: &Path, mut before_read: impl FnMut(&mut TreeListing) -> Result<(), Error>) -> Result<(TreeListing, Vec<Arc<Layer>>), Error> {
        let deadline = Instant::now() + self.settle_limit;
        loop {
            let mut listing = scan(root)?;
            before_read(&mut listing)?;
            let now = Instant::now();
            match self.load_all(&listing.files, now >= deadline)? {
                Loaded::Settled(layers) => {
                    listing.axes.share_names_with(&self.axes);
                    self.axes = listing.axes.clone();
                    return Ok((listing, layers));
                }
                Loaded::InFlight(files) => {
                    tracing::debug!(?files, "a save is in flight; looking again before taking the tree in");
                    std::thread::sleep(SETTLE_STEP.min(deadline.saturating_duration_since(now)));
                }
            }
        }
    }

    /// The layers of `files`, parsing only those that changed since the last call. Unless
    /// `accept_in_flight`, a file that looks like a save in flight makes this
    /// [`Loaded::InFlight`] and leaves the cache as it was.
    pub fn load_all(&mut self, files: &[TreeFile], accept_in_flight: bool) -> Result<Loaded, Error> {
        let watch_saves = self.primed && !accept_in_flight;
        let mut in_flight = Vec::new();
        if watch_saves {
            let listed: HashSet<&Path> = files.iter().map(|file| file.path.as_path()).collect();
            in_flight.extend(self.entries.iter().filter(|(path, _)| !listed.contains(path.as_path())).map(|(_, (_, file, _))| file.relative.clone()));
        }
        let mut layers = Vec::with_capacity(files.len());
        let mut fresh = HashMap::with_capacity(files.len());
        for file in files {
            let cached = self.entries.get(&file.path).filter(|(_, cached_file, _)| cached_file == file);
            if let Some((stamp, _, layer)) = cached.filter(|(stamp, _, _)| FileStamp::of(&file.path) == Some(*stamp)) {
                fresh.insert(file.path.clone(), (*stamp, file.clone(), layer.clone()));
                layers.push(layer.clone());
                continue;
            }
            let (bytes, stamp) = match read_bytes(&file.path) {
                Ok(read) => read,
                // Listed a moment ago and gone now: deleted, or half of a delete-and-create save.
                Err(error) if error.is_not_found() && watch_saves => {
                    in_flight.push(file.relative.clone());
                    continue;
                }
                Err(error) => return Err(file_error(&file.path, &file.relative, error)),
            };
            if watch_saves {
                let was_empty = self.entries.get(&file.path).is_some_and(|(stamp, _, _)| stamp.len == 0);
                // Truncated and not yet written again (in-place saves, `>`), or created and not yet
                // written; or rewritten while it was read.
                if (bytes.is_empty() && !was_empty) || FileStamp::of(&file.path) != Some(stamp) {
                    in_flight.push(file.relative.clone());
                    continue;
                }
            }
            let layer = match utf8_text(bytes, &file.relative).and_then(|text| layer_from_text(file, &text)) {
                Ok(layer) => Arc::new(layer),
                // Written a moment ago and not parseable: most likely half-way through an in-place
                // save (truncate, write, write). Look again before refusing it; a file broken for
                // longer than the settle limit is refused at once.
                Err(_) if watch_saves && stamp.written_within(self.settle_limit) => {
                    in_flight.push(file.relative.clone());
                    continue;
                }
                Err(error) => return Err(error),
            };
            fresh.insert(file.path.clone(), (stamp, file.clone(), layer.clone()));
            layers.push(layer);
        }
        if !in_flight.is_empty() {
            in_flight.sort();
            return Ok(Loaded::InFlight(in_flight));
        }
        // Only a fully successful load replaces the cache; files that vanished drop out.
        self.entries = fresh;
        self.primed = true;
        Ok(Loaded::Settled(layers))
    }
}

/// Reads and parses one file of the tree.
pub fn load_file(file: &TreeFile) -> Result<Arc<Layer>, Error> {
    let text = read_text(&file.path, &file.relative)?;
    layer_from_text(file, &text).map(Arc::new)
}

/// The config tree's files, read through the parsed-file cache (waiting out saves in flight), as a
/// source. `on_listing` sees the listing whose files are taken (the first one, when a save in
/// flight makes the read look again) before they are read.
pub struct TreeSource<'a, F: FnOnce(&TreeListing)> {
    cache: &'a mut FileCache,
    on_listing: Option<F>,
    /// The listing of the files returned, once asked.
    listing: Option<TreeListing>,
}

impl<'a, F: FnOnce(&TreeListing)> TreeSource<'a, F> {
    /// The tree read through `cache`; `on_listing` sees its listing before the files are read.
    pub fn new(cache: &'a mut FileCache, on_listing: F) -> Self {
        Self { cache, on_listing: Some(on_listing), listing: None }
    }

    /// The listing of the files the source returned (None if it was never asked).
    pub fn into_listing(self) -> Option<TreeListing> {
        self.listing
    }
}

impl<F: FnOnce(&TreeListing)> Source for TreeSource<'_, F> {
    fn name(&self) -> &str {
        "tree"
    }

    fn rank(&self) -> Rank {
        Rank::GlobalFile
    }

    fn layers(&mut self, context: &BuildContext<'_>) -> Result<Vec<Arc<Layer>>, Error> {
        let mut first_listing = |listing: &TreeListing| {
            if let Some(on_listing) = self.on_listing.take() {
                on_listing(listing);
            }
        };
        let (listing, layers) = self.cache.load_settled(&context.options.root, |listing| {
            // Only the environments this process serves are read, decrypted and validated.
            restrict_to_served(context.options, listing)?;
            first_listing(listing);
            Ok(())
        })?;
        self.listing = Some(listing);
        Ok(layers)
    }
}

/// Drops the environments `options` does not serve from a listing (their files are not read);
/// a served environment the tree does not have is an error.
fn restrict_to_served(options: &Options, listing: &mut TreeListing) -> Result<(), Error> {
    let Some(served) = &options.environments else { return Ok(()) };
    if let Some(missing) = served.iter().find(|name| !listing.axes.environments.iter().any(|env| **env == ***name)) {
        let known = listing.axes.environments.iter().map(|env| env.to_string()).collect::<Vec<_>>().join(", ");
        return Err(Error::UnknownView(potter_engine::UnknownView::Environment { name: missing.clone(), known }));
    }
    listing.axes.environments.retain(|env| options.serves(env));
    listing.files.retain(|file| file.rank != Rank::EnvironmentFile || options.serves(&file.name));
    Ok(())
}
