//! Maps keyed by dotted path without one allocation per path: the location of every node of a
//! layer ([`Locations`]), and a view's leaf index.
//!
//! A parse records a location for every node (objects included), so this map is as large as the
//! tree. With a `HashMap<Box<str>, Location>` each node cost a path allocation, and malloc/free
//! were about 30 % of a small document's parse (docs/PERFORMANCE.md). Here every path is appended
//! to one string, and the table holds only its offset and length beside the value.

use std::fmt;
use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use crate::layer::Location;

/// Dotted path → [`Location`], in no particular order (as a hash map iterates).
pub type Locations = PathMap<Location>;

/// Dotted path → `V`, in no particular order (as a hash map iterates).
#[derive(Clone)]
pub struct PathMap<V> {
    /// Every path recorded, back to back.
    paths: String,
    entries: HashTable<Entry<V>>,
}

impl<V> Default for PathMap<V> {
    fn default() -> Self {
        Self { paths: String::new(), entries: HashTable::new() }
    }
}

#[derive(Clone)]
struct Entry<V> {
    start: u32,
    len: u32,
    value: V,
}

impl<V> Entry<V> {
    fn path<'a>(&self, paths: &'a str) -> &'a str {
        &paths[self.start as usize..(self.start + self.len) as usize]
    }
}

fn hash(path: &str) -> u64 {
    FxBuildHasher.hash_one(path)
}

impl<V> PathMap<V> {
    /// An empty map with room for about `nodes` paths of `path_bytes` bytes in all.
    pub fn with_capacity(nodes: usize, path_bytes: usize) -> Self {
        Self { paths: String::with_capacity(path_bytes), entries: HashTable::with_capacity(nodes) }
    }

    /// Sets the value of `path`, returning the one it replaces.
    pub fn insert(&mut self, path: &str, value: V) -> Option<V> {
        let hash = hash(path);
        let paths = &self.paths;
        if let Some(entry) = self.entries.find_mut(hash, |entry| entry.path(paths) == path) {
            return Some(std::mem::replace(&mut entry.value, value));
        }
        self.insert_new(hash, path, value);
        None
    }

    /// The value of `path`, recorded first with `value()` if it has none.
    pub fn get_or_insert_with(&mut self, path: &str, value: impl FnOnce() -> V) -> &mut V {
        let hash = hash(path);
        let paths = &self.paths;
        if self.entries.find(hash, |entry| entry.path(paths) == path).is_none() {
            self.insert_new(hash, path, value());
        }
        let paths = &self.paths;
        &mut self.entries.find_mut(hash, |entry| entry.path(paths) == path).expect("just recorded").value
    }

    fn insert_new(&mut self, hash: u64, path: &str, value: V) {
        let start = u32::try_from(self.paths.len()).expect("a layer's paths fit in 4 GiB");
        let len = u32::try_from(path.len()).expect("a path fits in 4 GiB");
        self.paths.push_str(path);
        let paths = &self.paths;
        self.entries.insert_unique(hash, Entry { start, len, value }, |entry| self::hash(entry.path(paths)));
    }

    /// The value recorded for `path`.
    pub fn get(&self, path: &str) -> Option<&V> {
        let paths = &self.paths;
        self.entries.find(hash(path), |entry| entry.path(paths) == path).map(|entry| &entry.value)
    }

    /// The value recorded for `path`, to change it.
    pub fn get_mut(&mut self, path: &str) -> Option<&mut V> {
        let paths = &self.paths;
        self.entries.find_mut(hash(path), |entry| entry.path(paths) == path).map(|entry| &mut entry.value)
    }

    /// True when `path` has a value.
    pub fn contains_key(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// How many paths have a value.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no path has a value.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every path with its value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        let paths = &self.paths;
        self.entries.iter().map(move |entry| (entry.path(paths), &entry.value))
    }

    /// Every path with its value, to change the values.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut V)> {
        let paths = &self.paths;
        self.entries.iter_mut().map(move |entry| (entry.path(paths), &mut entry.value))
    }

    /// Every path.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(path, _)| path)
    }

    /// Every value, to change them.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|entry| &mut entry.value)
    }
}

impl<V: PartialEq> PartialEq for PathMap<V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(path, value)| other.get(path) == Some(value))
    }
}

impl<V: fmt::Debug> fmt::Debug for PathMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<P: AsRef<str>, V> FromIterator<(P, V)> for PathMap<V> {
    fn from_iter<I: IntoIterator<Item = (P, V)>>(items: I) -> Self {
        let mut map = PathMap::default();
        for (path, value) in items {
            map.insert(path.as_ref(), value);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: u32) -> Location {
        Location::Text { line, column: 1 }
    }

    #[test]
    fn a_path_keeps_its_latest_location() {
        let mut locations = Locations::default();
        assert_eq!(locations.insert("a", at(1)), None);
        assert_eq!(locations.insert("a.b", at(2)), None);
        assert_eq!(locations.insert("a", at(3)), Some(at(1)));
        assert_eq!(locations.len(), 2);
        assert_eq!(locations.get("a"), Some(&at(3)));
        assert_eq!(locations.get("a.b"), Some(&at(2)));
        assert_eq!(locations.get("a.c"), None);
        assert_eq!(locations.get(""), None);
    }

    #[test]
    fn many_paths_survive_the_table_growing() {
        let mut locations = Locations::default();
        for i in 0..10_000u32 {
            locations.insert(&format!("k{i}.child"), at(i));
        }
        assert_eq!(locations.len(), 10_000);
        assert!((0..10_000u32).all(|i| locations.get(&format!("k{i}.child")) == Some(&at(i))));
        let mut keys: Vec<&str> = locations.keys().collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 10_000);
    }

    #[test]
    fn changes_in_place_and_equality_ignore_order() {
        let mut first: Locations = [("x", at(1)), ("y", at(2))].into_iter().collect();
        let second: Locations = [("y", at(2)), ("x", at(1))].into_iter().collect();
        assert_eq!(first, second);
        *first.get_or_insert_with("z", || at(9)) = at(4);
        assert_eq!(*first.get_or_insert_with("z", || at(9)), at(4), "an existing location is kept");
        assert_ne!(first, second);
        first.values_mut().for_each(|location| *location = Location::Layer);
        assert!(first.iter().all(|(_, location)| *location == Location::Layer));
        if let Some(location) = first.get_mut("x") {
            *location = at(7);
        }
        assert_eq!(first.iter_mut().find(|(path, _)| *path == "x").map(|(_, location)| location.clone()), Some(at(7)));
    }
}
