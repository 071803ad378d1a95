//! What an image holds, read from its layers' streams alone — nothing is
//! written, nothing mounted: the flattened tree with the layer each path lives
//! in (the topmost layer whose diff holds it, which is where an overlay lookup
//! finds it), and a per-layer profile (entries by kind, hard links, whiteouts,
//! file sizes, the bytes later layers hide, the directories that grow most,
//! and what an overlay diff of the layer costs on a 4 KiB-block filesystem).
//!
//! Workloads pick their real-image subjects from it (every path by layer, the
//! largest files, a read set), `doctor --image` prints its profile, and runs
//! size their scratch filesystems from its estimate.
//!
//! The flattening follows the OCI rules `image::apply` implements: a whiteout
//! or an opaque directory hides what *lower* layers put there; a non-directory
//! over a directory replaces the whole subtree; parents a layer does not list
//! exist in its diff all the same.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Entry, EntryKind, EntrySink, ImageError, ImageInfo, ImageSource, Stop};

/// Block size the disk estimates round to (ext4's and xfs's default).
pub const BLOCK_BYTES: u64 = 4096;

/// Largest directories kept per layer and for the whole image.
pub const TOP_DIRS: usize = 10;

/// Image paths longer than this are not picked as workload subjects. A
/// workload names a subject by its full path under a scratch root and a
/// container's mount point, and the whole must fit `PATH_MAX` (4,095 bytes);
/// an image may hold paths up to that limit on their own (a chain of 2,000
/// directories). Such files are still imported, walked and counted: only
/// the per-file subjects (files copied up, read, looked up, modified) skip them.
pub const SUBJECT_PATH_MAX_BYTES: usize = 2048;

/// Whether a workload can name `path` (see `SUBJECT_PATH_MAX_BYTES`).
pub fn nameable(path: &Path) -> bool {
    path.as_os_str().len() <= SUBJECT_PATH_MAX_BYTES
}

/// What a path of the flattened image is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A character or block device node.
    Device,
    /// A named pipe.
    Fifo,
}

/// One path of the flattened image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexedPath {
    /// The layer (0 = bottom) whose diff holds this path on top.
    pub layer: usize,
    /// What it is.
    pub kind: PathKind,
    /// Content bytes (regular files; 0 otherwise).
    pub size: u64,
    /// Identity of the inode behind it: hard links of one layer share it.
    pub inode: u64,
}

/// A directory and how many entries it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DirEntries {
    /// Path in the image (`.` for the root).
    pub path: String,
    /// Entries in it.
    pub entries: u64,
}

/// One layer as its stream shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerProfile {
    /// Position, 0 = bottom.
    pub index: usize,
    /// Digest of the stored blob.
    pub digest: String,
    /// Chain id (the layer with all its parents): what stores share by.
    pub chain_id: String,
    /// Size of the stored blob, bytes.
    pub stored_bytes: u64,
    /// Entries in the stream (whiteout markers included).
    pub entries: u64,
    /// Directories listed.
    pub dirs: u64,
    /// Directories the layer needs but does not list (its diff holds them anyway).
    pub implicit_dirs: u64,
    /// Regular files (hard links not counted).
    pub files: u64,
    /// Hard links: paths that share an inode with an earlier entry.
    pub hardlinks: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Device nodes.
    pub devices: u64,
    /// Named pipes.
    pub fifos: u64,
    /// Whiteouts (`.wh.NAME`): deletions of lower paths.
    pub whiteouts: u64,
    /// Opaque directories (`.wh..wh..opq`).
    pub opaques: u64,
    /// Content bytes of its regular files.
    pub file_bytes: u64,
    /// Of those, bytes no container sees: later layers delete or replace them.
    pub hidden_file_bytes: u64,
    /// Median regular-file size, bytes.
    pub median_file_bytes: u64,
    /// 99th-percentile regular-file size, bytes.
    pub p99_file_bytes: u64,
    /// Largest regular file, bytes.
    pub max_file_bytes: u64,
    /// Inodes an overlay diff dir of this layer holds (estimated from the
    /// stream: every entry but hard links, whiteouts as char devices, the
    /// implicit directories and the diff root).
    pub est_inodes: u64,
    /// Bytes that diff dir takes on a filesystem of 4 KiB blocks (estimated:
    /// files and long symlinks rounded up to blocks, directories by their entries).
    pub est_disk_bytes: u64,
    /// The directories this layer adds most entries to.
    pub largest_dirs: Vec<DirEntries>,
}

/// An image's profile: its layers and the flattened tree a container sees.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageProfile {
    /// The reference as given.
    pub reference: String,
    /// Manifest digest, when the image has one.
    pub manifest_digest: Option<String>,
    /// Layers, bottom first.
    pub layers: Vec<LayerProfile>,
    /// Paths of the flattened tree (the root not counted).
    pub paths: u64,
    /// Distinct regular files (inodes) of the flattened tree.
    pub files: u64,
    /// Their content bytes.
    pub file_bytes: u64,
    /// Paths of the flattened tree that share an inode with another path.
    pub hardlink_paths: u64,
    /// The largest directories of the flattened tree.
    pub largest_dirs: Vec<DirEntries>,
    /// Bytes the layers store (Σ of their file bytes) that no container sees.
    pub hidden_file_bytes: u64,
}

/// The flattened tree and per-layer profile of an image.
#[derive(Debug, Clone)]
pub struct ImageIndex {
    info: ImageInfo,
    layers: Vec<LayerProfile>,
    nodes: BTreeMap<PathBuf, IndexedPath>,
}

/// What a scratch filesystem needs to hold an image, estimated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskEstimate {
    /// Bytes.
    pub bytes: u64,
    /// Inodes.
    pub inodes: u64,
}

fn round_up(n: u64) -> u64 {
    n.div_ceil(BLOCK_BYTES) * BLOCK_BYTES
}

/// ext4's directory entry: 8 bytes + the name, padded to 4.
fn dirent_bytes(name_len: usize) -> u64 {
    8 + (name_len as u64).div_ceil(4) * 4
}

/// A directory of `entries` with names of `name_bytes` in all: at least one block.
fn dir_bytes(name_bytes: u64) -> u64 {
    round_up((24 + name_bytes).max(1))
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn top_dirs(counts: impl Iterator<Item = (PathBuf, u64)>, n: usize) -> Vec<DirEntries> {
    let mut v: Vec<(PathBuf, u64)> = counts.collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.into_iter()
        .take(n)
        .map(|(p, entries)| DirEntries {
            path: if p.as_os_str().is_empty() {
                ".".into()
            } else {
                p.display().to_string()
            },
            entries,
        })
        .collect()
}

/// Per-directory entries and name bytes one layer adds.
#[derive(Default)]
struct DirGrowth {
    entries: u64,
    name_bytes: u64,
}

/// Flattens layer after layer; the sink of every stream.
struct Flattener {
    nodes: BTreeMap<PathBuf, IndexedPath>,
    next_inode: u64,
    layer: usize,
    profile: LayerProfile,
    sizes: Vec<u64>,
    /// Directories this layer's diff holds: `true` once listed.
    dirs_here: HashMap<PathBuf, bool>,
    growth: HashMap<PathBuf, DirGrowth>,
    /// Inode of each path this layer wrote (hard-link targets), by a keyed
    /// 128-bit hash of the path: the tree keeps the path itself once.
    written: HashMap<u128, (u64, PathKind, u64)>,
    written_keys: (
        std::collections::hash_map::RandomState,
        std::collections::hash_map::RandomState,
    ),
    long_symlinks: u64,
    /// The parent directory of the previous entry of this layer: its
    /// ancestors are already directories of this layer's diff, so an entry
    /// beside it costs no walk (a layer lists a directory's entries together;
    /// without this, N entries 2,000 levels deep cost N × 2,000 lookups of
    /// paths up to 4 KiB).
    last_parent: Option<PathBuf>,
    /// A regular file larger than this is refused from its header (the
    /// scratch filesystem's size): see `IndexedImage::with_max_file_bytes`.
    max_file_bytes: Option<u64>,
    /// Why the stream was stopped, when this sink stopped it.
    refused: Option<ImageError>,
}

impl Flattener {
    fn written_key(&self, path: &Path) -> u128 {
        use std::hash::BuildHasher;
        let b = path.as_os_str().as_encoded_bytes();
        (u128::from(self.written_keys.0.hash_one(b)) << 64)
            | u128::from(self.written_keys.1.hash_one(b))
    }

    fn inode(&mut self) -> u64 {
        self.next_inode += 1;
        self.next_inode
    }

    /// Removes `path` and everything below it that lower layers put there
    /// (`below` = only nodes of layers under this one).
    fn remove_tree(&mut self, path: &Path, below: bool) {
        let layer = self.layer;
        let doomed: Vec<PathBuf> = self
            .nodes
            .range(path.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(path))
            .filter(|(_, n)| !below || n.layer < layer)
            .map(|(p, _)| p.clone())
            .collect();
        for p in doomed {
            self.nodes.remove(&p);
        }
    }

    fn grow(&mut self, path: &Path) {
        let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let name = path.file_name().map_or(0, |n| n.len());
        let g = self.growth.entry(parent).or_default();
        g.entries += 1;
        g.name_bytes += dirent_bytes(name);
    }

    /// Every ancestor of `path` becomes a directory of this layer's diff.
    fn parents(&mut self, path: &Path) {
        let parent = path.parent().unwrap_or(Path::new(""));
        if self.last_parent.as_deref() == Some(parent) {
            // Only an entry at the parent or above can change the parent's
            // ancestors, and such an entry has another parent itself.
            return;
        }
        self.last_parent = Some(parent.to_path_buf());
        // Tars list a directory's entries after it: when the parent is a
        // directory this layer already holds, every ancestor was made one by
        // the same walk then (removing or replacing an ancestor removes the
        // parent too), so nothing is left to do. Without this, an entry cost
        // a hash of each ancestor's whole path, cubic in a chain's depth.
        if !parent.as_os_str().is_empty() {
            let held = self.dirs_here.contains_key(parent)
                && self
                    .nodes
                    .get(parent)
                    .is_some_and(|n| n.kind == PathKind::Dir && n.layer == self.layer);
            if held {
                return;
            }
        }
        let mut acc = PathBuf::new();
        let comps: Vec<_> = path.components().collect();
        for c in comps.iter().take(comps.len().saturating_sub(1)) {
            acc.push(c);
            if !self.dirs_here.contains_key(&acc) {
                self.dirs_here.insert(acc.clone(), false);
                self.grow(&acc.clone());
            }
            match self.nodes.get(&acc).map(|n| n.kind) {
                Some(PathKind::Dir) => {
                    if let Some(n) = self.nodes.get_mut(&acc) {
                        n.layer = self.layer;
                    }
                }
                Some(_) => {
                    self.remove_tree(&acc.clone(), false);
                    self.put_dir(&acc.clone());
                }
                None => self.put_dir(&acc.clone()),
            }
        }
    }

    fn put_dir(&mut self, path: &Path) {
        let inode = self.inode();
        self.nodes.insert(
            path.to_path_buf(),
            IndexedPath {
                layer: self.layer,
                kind: PathKind::Dir,
                size: 0,
                inode,
            },
        );
    }

    fn put(&mut self, path: &Path, kind: PathKind, size: u64, inode: u64) {
        if self
            .nodes
            .get(path)
            .is_some_and(|n| n.kind == PathKind::Dir)
        {
            self.remove_tree(path, false);
        }
        self.nodes.insert(
            path.to_path_buf(),
            IndexedPath {
                layer: self.layer,
                kind,
                size,
                inode,
            },
        );
        let key = self.written_key(path);
        self.written.insert(key, (inode, kind, size));
    }

    fn entry(&mut self, e: &Entry) {
        let p = &mut self.profile;
        p.entries += 1;
        let path = e.path.as_path();
        self.parents(path);
        let new_here = !self.dirs_here.contains_key(path)
            && !self.written.contains_key(&self.written_key(path));
        match &e.kind {
            EntryKind::Dir => {
                self.profile.dirs += 1;
                if !self.dirs_here.contains_key(path) {
                    self.grow(path);
                }
                self.dirs_here.insert(path.to_path_buf(), true);
                match self.nodes.get_mut(path) {
                    Some(n) if n.kind == PathKind::Dir => n.layer = self.layer,
                    _ => {
                        self.remove_tree(path, false);
                        self.put_dir(path);
                    }
                }
            }
            EntryKind::Opaque => {
                self.profile.opaques += 1;
                if !self.dirs_here.contains_key(path) {
                    self.grow(path);
                    self.dirs_here.insert(path.to_path_buf(), false);
                }
                // Everything lower layers put below it goes; the dir stays.
                let layer = self.layer;
                let doomed: Vec<PathBuf> = self
                    .nodes
                    .range(path.to_path_buf()..)
                    .take_while(|(q, _)| q.starts_with(path))
                    .filter(|(q, n)| q.as_path() != path && n.layer < layer)
                    .map(|(q, _)| q.clone())
                    .collect();
                for q in doomed {
                    self.nodes.remove(&q);
                }
                match self.nodes.get_mut(path) {
                    Some(n) if n.kind == PathKind::Dir => n.layer = self.layer,
                    _ => {
                        self.remove_tree(path, false);
                        self.put_dir(path);
                    }
                }
            }
            EntryKind::Whiteout => {
                self.profile.whiteouts += 1;
                if new_here {
                    self.grow(path);
                }
                self.remove_tree(path, true);
            }
            EntryKind::File { size } => {
                self.profile.files += 1;
                self.profile.file_bytes += size;
                self.sizes.push(*size);
                if new_here {
                    self.grow(path);
                }
                let inode = self.inode();
                self.put(path, PathKind::File, *size, inode);
            }
            EntryKind::HardLink { target } => {
                self.profile.hardlinks += 1;
                if new_here {
                    self.grow(path);
                }
                let (inode, kind, size) = match self.written.get(&self.written_key(target)) {
                    Some(t) => *t,
                    None => (self.inode(), PathKind::File, 0),
                };
                self.put(path, kind, size, inode);
            }
            EntryKind::Symlink { target } => {
                self.profile.symlinks += 1;
                // ext4 keeps a target shorter than 60 bytes in the inode.
                if target.as_os_str().len() >= 60 {
                    self.long_symlinks += 1;
                }
                if new_here {
                    self.grow(path);
                }
                let inode = self.inode();
                self.put(path, PathKind::Symlink, 0, inode);
            }
            EntryKind::CharDevice { .. } | EntryKind::BlockDevice { .. } => {
                self.profile.devices += 1;
                if new_here {
                    self.grow(path);
                }
                let inode = self.inode();
                self.put(path, PathKind::Device, 0, inode);
            }
            EntryKind::Fifo => {
                self.profile.fifos += 1;
                if new_here {
                    self.grow(path);
                }
                let inode = self.inode();
                self.put(path, PathKind::Fifo, 0, inode);
            }
        }
    }

    /// Closes the current layer's profile.
    fn finish_layer(&mut self) -> LayerProfile {
        let mut p = std::mem::take(&mut self.profile);
        self.sizes.sort_unstable();
        p.median_file_bytes = percentile(&self.sizes, 0.5);
        p.p99_file_bytes = percentile(&self.sizes, 0.99);
        p.max_file_bytes = self.sizes.last().copied().unwrap_or(0);
        p.implicit_dirs = self.dirs_here.values().filter(|listed| !**listed).count() as u64;
        let dirs_in_diff = self.dirs_here.len() as u64 + 1;
        p.est_inodes = dirs_in_diff + p.files + p.symlinks + p.devices + p.fifos + p.whiteouts;
        let growth = std::mem::take(&mut self.growth);
        let dir_bytes_total: u64 = self
            .dirs_here
            .keys()
            .chain(std::iter::once(&PathBuf::new()))
            .map(|d| dir_bytes(growth.get(d).map_or(0, |g| g.name_bytes)))
            .sum();
        let file_blocks: u64 = self.sizes.iter().map(|s| round_up(*s)).sum();
        p.est_disk_bytes = file_blocks + dir_bytes_total + self.long_symlinks * BLOCK_BYTES;
        p.largest_dirs = top_dirs(growth.into_iter().map(|(k, g)| (k, g.entries)), 5);
        self.sizes.clear();
        self.dirs_here.clear();
        self.written.clear();
        self.long_symlinks = 0;
        self.last_parent = None;
        p
    }
}

impl EntrySink for Flattener {
    fn entry(&mut self, entry: &Entry, _content: &mut dyn Read) -> Result<(), Stop> {
        if let (EntryKind::File { size }, Some(limit)) = (&entry.kind, self.max_file_bytes) {
            if *size > limit {
                // Stopping here, the source reads no byte of the content.
                self.refused = Some(ImageError::FileTooLarge {
                    layer: self.profile.digest.clone(),
                    entry: entry.path.display().to_string(),
                    size: *size,
                    limit,
                });
                return Err(Stop);
            }
        }
        // Content is left unread: the source skips it (a store's diff dir is
        // not read at all; a tar stream is still decompressed and verified).
        Flattener::entry(self, entry);
        Ok(())
    }
}

impl ImageIndex {
    /// Streams every layer of `src` once (each verified as it streams).
    pub fn build(src: &dyn ImageSource) -> Result<ImageIndex, ImageError> {
        ImageIndex::build_within(src, None)
    }

    /// As `build`, refusing (from its header, before its content is read) a
    /// regular file larger than `max_file_bytes`: the scratch filesystem's
    /// size, which such a file could never fit.
    pub fn build_within(
        src: &dyn ImageSource,
        max_file_bytes: Option<u64>,
    ) -> Result<ImageIndex, ImageError> {
        let info = src.info().clone();
        let mut f = Flattener {
            nodes: BTreeMap::new(),
            next_inode: 0,
            layer: 0,
            profile: LayerProfile::default(),
            sizes: Vec::new(),
            dirs_here: HashMap::new(),
            growth: HashMap::new(),
            written: HashMap::new(),
            written_keys: Default::default(),
            long_symlinks: 0,
            last_parent: None,
            max_file_bytes,
            refused: None,
        };
        let mut layers = Vec::with_capacity(info.layers.len());
        for (i, l) in info.layers.iter().enumerate() {
            f.layer = i;
            f.profile = LayerProfile {
                index: i,
                digest: l.digest.clone(),
                chain_id: l.chain_id.clone(),
                stored_bytes: l.stored_bytes,
                ..Default::default()
            };
            match src.visit_layer(i, &mut f) {
                Ok(()) => {}
                Err(ImageError::Stopped) if f.refused.is_some() => {
                    return Err(f.refused.take().unwrap_or(ImageError::Stopped))
                }
                Err(e) => return Err(e),
            }
            layers.push(f.finish_layer());
        }
        // What each layer stores that the flattened tree still shows.
        let mut visible = vec![0u64; layers.len()];
        let mut seen = std::collections::HashSet::new();
        for n in f.nodes.values() {
            if n.kind == PathKind::File && seen.insert(n.inode) {
                if let Some(v) = visible.get_mut(n.layer) {
                    *v += n.size;
                }
            }
        }
        for (l, v) in layers.iter_mut().zip(visible) {
            l.hidden_file_bytes = l.file_bytes.saturating_sub(v);
        }
        Ok(ImageIndex {
            info,
            layers,
            nodes: f.nodes,
        })
    }

    /// The image's identity as its source gave it.
    pub fn info(&self) -> &ImageInfo {
        &self.info
    }

    /// Per-layer profiles, bottom first.
    pub fn layers(&self) -> &[LayerProfile] {
        &self.layers
    }

    /// Every path of the flattened tree, in path order (parents before children).
    pub fn paths(&self) -> impl Iterator<Item = (&Path, &IndexedPath)> {
        self.nodes.iter().map(|(p, n)| (p.as_path(), n))
    }

    /// The node at `path`, if the flattened tree has it.
    pub fn get(&self, path: &Path) -> Option<&IndexedPath> {
        self.nodes.get(path)
    }

    /// Regular files, one path per inode (the first in path order), with sizes.
    pub fn regular_files(&self) -> Vec<(&Path, u64)> {
        let mut seen = std::collections::HashSet::new();
        self.nodes
            .iter()
            .filter(|(_, n)| n.kind == PathKind::File && seen.insert(n.inode))
            .map(|(p, n)| (p.as_path(), n.size))
            .collect()
    }

    /// The `n` largest regular files (distinct inodes), largest first; ties by path.
    pub fn largest_files(&self, n: usize) -> Vec<(PathBuf, u64)> {
        let mut v: Vec<(&Path, u64)> = self.regular_files();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.into_iter()
            .take(n)
            .map(|(p, s)| (p.to_path_buf(), s))
            .collect()
    }

    /// The largest directories of the flattened tree (entries in each).
    pub fn largest_dirs(&self, n: usize) -> Vec<DirEntries> {
        let mut counts: HashMap<PathBuf, u64> = HashMap::new();
        for p in self.nodes.keys() {
            *counts
                .entry(p.parent().unwrap_or(Path::new("")).to_path_buf())
                .or_default() += 1;
        }
        top_dirs(counts.into_iter(), n)
    }

    /// What storing every layer takes (as overlay diffs), estimated.
    pub fn stored_estimate(&self) -> DiskEstimate {
        DiskEstimate {
            bytes: self.layers.iter().map(|l| l.est_disk_bytes).sum(),
            inodes: self.layers.iter().map(|l| l.est_inodes).sum(),
        }
    }

    /// What one flattened copy of the image takes, estimated.
    pub fn flat_estimate(&self) -> DiskEstimate {
        let mut seen = std::collections::HashSet::new();
        let mut est = DiskEstimate {
            bytes: 0,
            inodes: 1,
        };
        let mut dir_names: HashMap<&Path, u64> = HashMap::new();
        for (p, n) in &self.nodes {
            let name = p.file_name().map_or(0, |x| x.len());
            *dir_names
                .entry(p.parent().unwrap_or(Path::new("")))
                .or_default() += dirent_bytes(name);
            if !seen.insert(n.inode) {
                continue;
            }
            est.inodes += 1;
            if n.kind == PathKind::File {
                est.bytes += round_up(n.size);
            }
        }
        let dirs = self
            .nodes
            .values()
            .filter(|n| n.kind == PathKind::Dir)
            .count() as u64
            + 1;
        est.bytes += dir_names.values().map(|b| dir_bytes(*b)).sum::<u64>()
            + (dirs - (dir_names.len() as u64).min(dirs)) * BLOCK_BYTES;
        est
    }

    /// The profile `doctor --image` prints and reports keep.
    pub fn profile(&self) -> ImageProfile {
        let mut links: HashMap<u64, u64> = HashMap::new();
        for n in self.nodes.values() {
            *links.entry(n.inode).or_default() += 1;
        }
        let files = self.regular_files();
        ImageProfile {
            reference: self.info.reference.clone(),
            manifest_digest: self.info.manifest_digest.clone(),
            layers: self.layers.clone(),
            paths: self.nodes.len() as u64,
            files: files.len() as u64,
            file_bytes: files.iter().map(|(_, s)| s).sum(),
            hardlink_paths: self
                .nodes
                .values()
                .filter(|n| links.get(&n.inode).is_some_and(|c| *c > 1))
                .count() as u64,
            largest_dirs: self.largest_dirs(TOP_DIRS),
            hidden_file_bytes: self.layers.iter().map(|l| l.hidden_file_bytes).sum(),
        }
    }
}

/// An image with its index, built on first use and then shared (every
/// workload of a run asks for it; the layers are streamed once).
pub struct IndexedImage {
    source: std::sync::Arc<dyn ImageSource>,
    index: std::sync::Mutex<Option<std::sync::Arc<ImageIndex>>>,
    max_file_bytes: Option<u64>,
    startup_reads: std::sync::Mutex<Option<std::sync::Arc<StartupReads>>>,
}

/// What the image's process opened while it started, as a workload that
/// started it recorded it: the regular files, relative to the image's root, in
/// first-open order. Kept on the image so a workload that starts containers of
/// it without running its process (storm) reads what the process would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupReads {
    /// Paths relative to the root, no `..`, first-open order.
    pub paths: Vec<std::path::PathBuf>,
    /// Who recorded them, for the report's notes (`app on overlay2`).
    pub recorded_by: String,
}

impl IndexedImage {
    /// `source`, not yet indexed.
    pub fn new(source: std::sync::Arc<dyn ImageSource>) -> IndexedImage {
        IndexedImage {
            source,
            index: std::sync::Mutex::new(None),
            max_file_bytes: None,
            startup_reads: std::sync::Mutex::new(None),
        }
    }

    /// Keeps what the image's start read (the last recording wins).
    pub fn set_startup_reads(&self, reads: StartupReads) {
        *self
            .startup_reads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(std::sync::Arc::new(reads));
    }

    /// What the image's start read, when a workload of this run recorded it.
    pub fn startup_reads(&self) -> Option<std::sync::Arc<StartupReads>> {
        self.startup_reads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Refuses, when the index is built, a layer declaring a regular file
    /// larger than `bytes` (a run's `--fs-size`): from the entry's header,
    /// before its content is decompressed or hashed.
    pub fn with_max_file_bytes(mut self, bytes: Option<u64>) -> IndexedImage {
        self.max_file_bytes = bytes;
        self
    }

    /// The image itself (layers stream from it).
    pub fn source(&self) -> &std::sync::Arc<dyn ImageSource> {
        &self.source
    }

    /// What the image is.
    pub fn info(&self) -> &ImageInfo {
        self.source.info()
    }

    /// The reference as the user gave it: what reports key its cases by.
    pub fn reference(&self) -> &str {
        &self.source.info().reference
    }

    /// Its index, streaming every layer the first time.
    pub fn index(&self) -> Result<std::sync::Arc<ImageIndex>, ImageError> {
        let mut guard = self
            .index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(i) = guard.as_ref() {
            return Ok(i.clone());
        }
        let built = std::sync::Arc::new(ImageIndex::build_within(
            self.source.as_ref(),
            self.max_file_bytes,
        )?);
        *guard = Some(built.clone());
        Ok(built)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Change, ImageSpec, LayerSpec, SyntheticImage};

    fn file(path: &str, size: u64) -> Change {
        Change::File {
            path: path.into(),
            mode: 0o644,
            size,
            seed: 1,
        }
    }

    fn dir(path: &str) -> Change {
        Change::Dir {
            path: path.into(),
            mode: 0o755,
        }
    }

    #[test]
    fn flattening_follows_whiteouts_opaques_and_replacements() {
        let spec = ImageSpec {
            layers: vec![
                LayerSpec {
                    changes: vec![
                        dir("a"),
                        file("a/x", 10_000),
                        file("a/y", 5),
                        dir("o"),
                        file("o/old", 7),
                        file("top", 3),
                    ],
                },
                LayerSpec {
                    changes: vec![
                        Change::Delete { path: "a/x".into() },
                        Change::Opaque { path: "o".into() },
                        file("o/new", 9),
                        file("n/deep/f", 1),
                    ],
                },
            ],
        };
        let idx = ImageIndex::build(&SyntheticImage::new("t", spec)).expect("index");
        let layer = |p: &str| idx.get(Path::new(p)).map(|n| n.layer);
        assert_eq!(layer("a/x"), None);
        assert_eq!(layer("a/y"), Some(0));
        assert_eq!(layer("o/old"), None);
        assert_eq!(layer("o/new"), Some(1));
        assert_eq!(layer("o"), Some(1));
        // Parents a layer does not list are in its diff: found there first.
        assert_eq!(layer("n/deep"), Some(1));
        assert_eq!(layer("a"), Some(1));
        let l = idx.layers();
        assert_eq!(l[0].files, 4);
        assert_eq!(l[0].file_bytes, 10_015);
        assert_eq!(l[0].hidden_file_bytes, 10_007);
        assert_eq!((l[1].whiteouts, l[1].opaques), (1, 1));
        assert!(l[1].implicit_dirs >= 2, "{:?}", l[1]);
        assert_eq!(idx.largest_files(1), vec![(PathBuf::from("o/new"), 9)]);
        let p = idx.profile();
        assert_eq!(p.files, 4);
        assert_eq!(p.hidden_file_bytes, 10_007);
        assert!(idx.stored_estimate().bytes >= 2 * BLOCK_BYTES);
    }

    #[test]
    fn a_file_larger_than_the_scratch_is_refused_from_its_header() {
        let spec = ImageSpec {
            layers: vec![LayerSpec {
                changes: vec![dir("d"), file("d/small", 10), file("d/big", 64 << 30)],
            }],
        };
        let img = SyntheticImage::new("t", spec);
        let started = std::time::Instant::now();
        let e = ImageIndex::build_within(&img, Some(700 << 20)).expect_err("refused");
        let msg = e.to_string();
        assert_eq!(e.class(), crate::error::ErrorClass::Usage, "{msg}");
        assert!(
            msg.contains("\"d/big\"") && msg.contains("68719476736") && msg.contains("734003200"),
            "{msg}"
        );
        // 64 GiB of content was never generated.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(ImageIndex::build_within(
            &SyntheticImage::new(
                "t",
                ImageSpec {
                    layers: vec![LayerSpec {
                        changes: vec![file("f", 1 << 20)]
                    }]
                }
            ),
            Some(1 << 20)
        )
        .is_ok());
    }
}
