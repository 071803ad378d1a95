//! Read-only inventories of container stores, each in its engine's own layout:
//! - Docker's `overlay2/` and containers-storage's `overlay/` (`<id>/diff`,
//!   `link`, `lower`, `l/`), rootful or rootless (`~/.local/share/containers/storage`);
//! - Docker's legacy `overlay/` (`<id>/root`, containers `<id>/upper`);
//! - containerd's overlayfs snapshotter (`snapshots/<N>/fs`, chains from its
//!   `metadata.db`, read without taking containerd's lock);
//! - Docker's and containers-storage's btrfs driver (`subvolumes/<id>`, each layer
//!   a snapshot of its parent).
//!
//! Nothing is written. Every count comes from a walk that does not cross into
//! another filesystem, and every metadata file is read through the bounded reader
//! (a hostile store cannot make doctor block, read without end or panic).
//!
//! What the figures mean, so they can be checked with standard tools:
//! - a layer's `inodes` are the distinct inodes of its tree, its root included
//!   (`find DIR -xdev -printf '%i\n' | sort -u | wc -l`), and its `bytes` their
//!   blocks, each once (`du -sxB1 DIR`); for btrfs, where every layer is a whole
//!   tree, those are `referenced_*`, and `inodes`/`bytes` count what differs from
//!   the parent snapshot;
//! - `hardlink_paths` are regular-file paths whose inode has other links
//!   (`find */diff -type f -links +1`), `hardlink_inodes` the inodes behind them;
//! - an image's figures add up its chain of layers.

mod bolt;
mod btrfs;
mod containerd;
mod engines;
mod options;
mod overlay2;
mod walk;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::layout::stores::{LEGACY_OVERLAY, OVERLAY2};

pub use bolt::BoltError;
pub use options::MountOptionBytes;
pub(crate) use options::Mounts;

/// One layer's footprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerUsage {
    /// Layer id (its directory name: a cache id, a containers-storage id, a
    /// containerd snapshot number).
    pub id: String,
    /// Distinct inodes in its diff (or root, or snapshot `fs`), the dir itself
    /// included; btrfs: the inodes that differ from the parent snapshot.
    pub inodes: u64,
    /// Bytes allocated to them (`du -sx`), the dir's own block included; btrfs:
    /// the blocks of the inodes that differ from the parent snapshot.
    pub bytes: u64,
    /// Whiteouts it holds (char 0/0; `.wh.` files in a store made through
    /// fuse-overlayfs).
    pub whiteouts: u64,
    /// Layers below it.
    pub depth: usize,
    /// Whether a container uses it as its upper layer (containerd: an Active or
    /// View snapshot).
    pub container: bool,
    /// Whether it is a Docker container's `-init` layer (hostname, resolv.conf
    /// mount points), neither an image layer nor the container's own.
    #[serde(default)]
    pub init: bool,
    /// The layer right below it, when the store or its engine records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The engine's name for it (containerd: the snapshot key `<ns>/<n>/<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// containerd's snapshot kind: `committed`, `active` or `view`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Inodes the engine recorded for it (containerd, committed snapshots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_inodes: Option<u64>,
    /// Bytes the engine recorded for it (containerd, committed snapshots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_bytes: Option<u64>,
    /// btrfs: distinct inodes of the whole snapshot, as `find -xdev` counts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referenced_inodes: Option<u64>,
    /// btrfs: their blocks as `du -sx` counts them (shared extents counted whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referenced_bytes: Option<u64>,
    /// btrfs: paths of the parent snapshot that are gone here (the topmost of each
    /// removed tree; overlay would store a whiteout for each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletions: Option<u64>,
}

impl LayerUsage {
    fn new(id: String) -> LayerUsage {
        LayerUsage {
            id,
            inodes: 0,
            bytes: 0,
            whiteouts: 0,
            depth: 0,
            container: false,
            init: false,
            parent: None,
            name: None,
            kind: None,
            recorded_inodes: None,
            recorded_bytes: None,
            referenced_inodes: None,
            referenced_bytes: None,
            deletions: None,
        }
    }
}

/// One image: a chain of layers a container mounts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageUsage {
    /// The engine's name for it (`name:tag`, containerd's image name), or empty
    /// when the engine's metadata names none (a chain ending at a layer no other
    /// image layer builds on).
    pub name: String,
    /// Its top layer's id.
    pub top_layer: String,
    /// Layers in its chain.
    pub layers: usize,
    /// Inodes of those layers (legacy overlay: of the top layer's root, which
    /// holds the whole image).
    pub inodes: u64,
    /// Bytes of those layers.
    pub bytes: u64,
    /// The option string a container on it needs; `None` where nothing is
    /// mounted (btrfs).
    pub mount_options: Option<MountOptionBytes>,
}

/// What a store holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreInventory {
    /// The driver directory inventoried.
    pub path: String,
    /// `overlay2` (Docker / containers-storage), `overlay` (Docker legacy),
    /// `containerd` (overlayfs snapshotter) or `btrfs`.
    pub format: String,
    /// Layer directories (image, container and init layers).
    pub layers: usize,
    /// Image layers among them.
    #[serde(default)]
    pub image_layers: usize,
    /// Container layers among them (from the engine's metadata).
    pub containers: usize,
    /// Docker `-init` layers among them (one per container).
    #[serde(default)]
    pub init_layers: usize,
    /// Longest chain of layers (a layer plus its lowers).
    pub deepest_chain: usize,
    /// `l/` links whose target is gone.
    pub broken_links: Vec<String>,
    /// Whiteouts in all layers.
    pub whiteouts: u64,
    /// Distinct inodes in all layers (legacy: across the whole store, shared ones once).
    pub inodes: u64,
    /// Bytes in all layers.
    pub bytes: u64,
    /// Regular-file paths whose inode has more than one link, in all layers.
    pub hardlink_paths: u64,
    /// The distinct inodes behind those paths.
    #[serde(default)]
    pub hardlink_inodes: u64,
    /// The largest layers by inode count (at most 10).
    pub top_layers: Vec<LayerUsage>,
    /// Every layer, largest first.
    #[serde(default)]
    pub all_layers: Vec<LayerUsage>,
    /// `docker`, `containers-storage`, `containerd`, or `unknown` (no engine
    /// metadata next to the driver dir).
    #[serde(default)]
    pub engine: String,
    /// The user whose rootless store this is (`~/.local/share/containers/storage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootless_user: Option<String>,
    /// Whether containers-storage mounts this store through a FUSE program
    /// (fuse-overlayfs) rather than the kernel (`overlay/.has-mount-program`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses_mount_program: Option<bool>,
    /// Where the chains, kinds and containers come from.
    #[serde(default)]
    pub metadata: String,
    /// Whether every layer's parent is known (chain depths are exact).
    #[serde(default)]
    pub chains_known: bool,
    /// Images, deepest first.
    #[serde(default)]
    pub images: Vec<ImageUsage>,
    /// The highest link count of a regular file in the store (legacy overlay
    /// links every file of a layer into each layer above it).
    #[serde(default)]
    pub max_links: u64,
    /// A file with that many links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_links_path: Option<String>,
    /// The filesystem the store is on (`ext4`, `xfs`, `btrfs`, …).
    #[serde(default)]
    pub fstype: String,
    /// btrfs: data + metadata bytes in use on the whole filesystem
    /// (`BTRFS_IOC_SPACE_INFO`); snapshots share blocks, so layers do not add up to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem_used_bytes: Option<u64>,
    /// What could not be read or does not add up (a layer that vanished during
    /// the walk, a snapshot without a directory, …).
    #[serde(default)]
    pub notes: Vec<String>,
}

impl StoreInventory {
    /// The image with the most layers, if any.
    pub fn deepest_image(&self) -> Option<&ImageUsage> {
        self.images
            .iter()
            .max_by_key(|i| (i.layers, i.mount_options.as_ref().map(|m| m.engine_bytes)))
    }

    /// The image whose container mount needs the longest option string.
    pub fn longest_mount(&self) -> Option<(&ImageUsage, &MountOptionBytes)> {
        self.images
            .iter()
            .filter_map(|i| i.mount_options.as_ref().map(|m| (i, m)))
            .max_by_key(|(_, m)| m.engine_bytes)
    }
}

/// What a format's reader found, before the figures every format shares.
#[derive(Debug)]
pub(crate) struct Found {
    pub dir: PathBuf,
    pub format: &'static str,
    pub engine: String,
    pub metadata: String,
    pub layers: Vec<LayerUsage>,
    /// `(name, top layer id)` from the engine's metadata.
    pub named_images: Vec<(String, String)>,
    /// Whether `depth` was set by the reader (overlay2's `lower` files) rather
    /// than from the parents.
    pub depth_set: bool,
    /// Whether the reader knows every layer's parent (or that it has none).
    pub chains_known: bool,
    pub broken_links: Vec<String>,
    pub hardlink_paths: u64,
    pub hardlink_inodes: u64,
    pub max_links: u64,
    pub max_links_path: Option<PathBuf>,
    /// Distinct inodes of the whole store when layers share inodes (legacy).
    pub store_inodes: Option<u64>,
    pub mounts: Mounts,
    pub uses_mount_program: Option<bool>,
    pub filesystem_used_bytes: Option<u64>,
    pub notes: Vec<String>,
}

impl Found {
    pub(crate) fn new(dir: &Path, format: &'static str, mounts: Mounts) -> Found {
        Found {
            dir: dir.to_path_buf(),
            format,
            engine: "unknown".into(),
            metadata: String::new(),
            layers: Vec::new(),
            named_images: Vec::new(),
            depth_set: false,
            chains_known: false,
            broken_links: Vec::new(),
            hardlink_paths: 0,
            hardlink_inodes: 0,
            max_links: 0,
            max_links_path: None,
            store_inodes: None,
            mounts,
            uses_mount_program: None,
            filesystem_used_bytes: None,
            notes: Vec::new(),
        }
    }

    /// Adds one walk's store-wide figures.
    pub(crate) fn add_walk(&mut self, w: &walk::Walk) {
        self.hardlink_paths += w.hardlink_paths;
        if w.max_links > self.max_links {
            self.max_links = w.max_links;
            self.max_links_path = w.max_links_path.clone();
        }
    }
}

/// What `--store` must name, for the error when it names something else.
pub const EXPECTED: &str =
    "a Docker data root (holding overlay2/, overlay/ or btrfs/), its driver directory, \
     a containers-storage root (holding overlay/ or btrfs/, rootful or rootless), \
     a containerd root or its io.containerd.snapshotter.v1.overlayfs directory";

/// containerd's overlayfs snapshotter directory under its root.
pub const CONTAINERD_SNAPSHOTTER: &str = "io.containerd.snapshotter.v1.overlayfs";

fn is_dir_no_follow(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

/// Finds the driver directory under `store` and inventories it; `None` when there
/// is no recognisable store there. With several (a Docker root that has held two
/// drivers), the first in the order overlay2, overlay, containerd, btrfs.
pub fn inventory(store: &Path) -> std::io::Result<Option<StoreInventory>> {
    Ok(inventories(store, None)?.into_iter().next())
}

/// Every store under `store` (a driver dir, an engine's root, a containerd root);
/// `rootless_user` names the user whose home holds it.
pub fn inventories(
    store: &Path,
    rootless_user: Option<&str>,
) -> std::io::Result<Vec<StoreInventory>> {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |p| p as usize);
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    let mut add = |f: Found, found: &mut Vec<Found>| {
        if seen.insert(f.dir.clone()) {
            found.push(f);
        }
    };
    for dir in [
        store.to_path_buf(),
        // Docker keeps each driver's store in a dir named after it.
        store.join(OVERLAY2.name),
        store.join(LEGACY_OVERLAY.name),
    ] {
        if let Some(f) = overlay2::read(&dir)? {
            add(f, &mut found);
        }
    }
    for dir in [store.to_path_buf(), store.join(CONTAINERD_SNAPSHOTTER)] {
        if containerd::is_store(&dir) {
            add(containerd::read(&dir)?, &mut found);
        }
    }
    for dir in [
        store.to_path_buf(),
        store.join("subvolumes"),
        store.join("btrfs/subvolumes"),
    ] {
        if btrfs::is_store(&dir) {
            add(btrfs::read(&dir)?, &mut found);
        }
    }
    let mounts = crate::isolate::MountInfo::current().unwrap_or_default();
    Ok(found
        .into_iter()
        .map(|f| {
            let fstype = fs::canonicalize(&f.dir)
                .ok()
                .and_then(|c| {
                    mounts
                        .entries
                        .iter()
                        .filter(|e| c.starts_with(&e.mount_point))
                        .max_by_key(|e| e.mount_point.as_os_str().len())
                        .map(|e| e.fstype.clone())
                })
                .unwrap_or_default();
            let mut inv = finish(f, page);
            inv.fstype = fstype;
            inv.rootless_user = rootless_user.map(str::to_string);
            inv
        })
        .collect())
}

/// A store found at an engine's default place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The directory to inventory.
    pub path: PathBuf,
    /// The user whose rootless store it is.
    pub rootless_user: Option<String>,
}

/// The stores at the engines' default places below `root` (normally `/`):
/// Docker's `/var/lib/docker`, containers-storage's `/var/lib/containers/storage`,
/// containerd's snapshotter, and each user's rootless
/// `~/.local/share/containers/storage` (root's and every `/home/*`'s).
pub fn discover(root: &Path) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = [
        "var/lib/docker",
        "var/lib/containers/storage",
        "var/lib/containerd",
    ]
    .iter()
    .map(|p| Candidate {
        path: root.join(p),
        rootless_user: None,
    })
    .collect();
    const ROOTLESS: &str = ".local/share/containers/storage";
    out.push(Candidate {
        path: root.join("root").join(ROOTLESS),
        rootless_user: Some("root".into()),
    });
    if let Ok(homes) = fs::read_dir(root.join("home")) {
        let mut homes: Vec<_> = homes.flatten().collect();
        homes.sort_by_key(|h| h.file_name());
        for h in homes {
            out.push(Candidate {
                path: h.path().join(ROOTLESS),
                rootless_user: Some(h.file_name().to_string_lossy().into_owned()),
            });
        }
    }
    out.retain(|c| is_dir_no_follow(&c.path));
    out
}

/// The chain of `top`, top first, following parents (a cycle in hostile
/// metadata ends it).
fn chain_of(layers: &[LayerUsage], by_id: &HashMap<String, usize>, top: &str) -> Vec<String> {
    let mut out = vec![top.to_string()];
    let mut seen: HashSet<&str> = HashSet::from([top]);
    let mut at = by_id.get(top).copied();
    while let Some(i) = at {
        match layers[i].parent.as_deref() {
            Some(p) if seen.insert(p) && by_id.contains_key(p) => {
                out.push(p.to_string());
                at = by_id.get(p).copied();
            }
            _ => break,
        }
    }
    out
}

/// The figures every format shares: depths from parents, roles, images and
/// their mount options, totals.
fn finish(mut f: Found, page: usize) -> StoreInventory {
    let by_id: HashMap<String, usize> = f
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| (l.id.clone(), i))
        .collect();
    if !f.depth_set {
        let depths: Vec<usize> = f
            .layers
            .iter()
            .map(|l| chain_of(&f.layers, &by_id, &l.id).len() - 1)
            .collect();
        for (l, d) in f.layers.iter_mut().zip(depths) {
            l.depth = d;
        }
    }
    let chain = |top: &str| chain_of(&f.layers, &by_id, top);
    let chains_known = f.chains_known
        && f.layers
            .iter()
            .all(|l| l.parent.as_ref().is_none_or(|p| by_id.contains_key(p)));
    // Images: the engine's named ones, then chains ending at an image layer no
    // other image layer builds on.
    let is_image = |l: &LayerUsage| !l.container && !l.init;
    let parents_of_images: HashSet<&str> = f
        .layers
        .iter()
        .filter(|l| is_image(l))
        .filter_map(|l| l.parent.as_deref())
        .collect();
    let mut tops: Vec<(String, String)> = f
        .named_images
        .iter()
        .filter(|(_, top)| by_id.contains_key(top))
        .cloned()
        .collect();
    let named: HashSet<String> = tops.iter().map(|(_, t)| t.clone()).collect();
    for l in f.layers.iter().filter(|l| is_image(l)) {
        if !parents_of_images.contains(l.id.as_str()) && !named.contains(&l.id) {
            tops.push((String::new(), l.id.clone()));
        }
    }
    let legacy = matches!(f.mounts, Mounts::Legacy { .. });
    let mut images: Vec<ImageUsage> = tops
        .into_iter()
        .map(|(name, top)| {
            let ids = chain(&top);
            let layers_in = ids
                .iter()
                .filter_map(|id| by_id.get(id).map(|&i| &f.layers[i]));
            let (inodes, bytes) = if legacy {
                by_id
                    .get(&top)
                    .map_or((0, 0), |&i| (f.layers[i].inodes, f.layers[i].bytes))
            } else {
                layers_in.fold((0, 0), |(n, b), l| (n + l.inodes, b + l.bytes))
            };
            let depth = by_id.get(&top).map_or(1, |&i| f.layers[i].depth + 1);
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            ImageUsage {
                name,
                layers: depth.max(ids.len()),
                inodes,
                bytes,
                mount_options: f.mounts.option_bytes(&refs, page),
                top_layer: top,
            }
        })
        .collect();
    images.sort_by(|a, b| {
        b.layers
            .cmp(&a.layers)
            .then(a.name.cmp(&b.name))
            .then(a.top_layer.cmp(&b.top_layer))
    });
    let layers = std::mem::take(&mut f.layers);
    summarise(f, layers, images, chains_known)
}

fn summarise(
    f: Found,
    mut layers: Vec<LayerUsage>,
    images: Vec<ImageUsage>,
    chains_known: bool,
) -> StoreInventory {
    layers.sort_by(|a, b| b.inodes.cmp(&a.inodes).then(a.id.cmp(&b.id)));
    let containers = layers.iter().filter(|l| l.container).count();
    let init_layers = layers.iter().filter(|l| l.init && !l.container).count();
    StoreInventory {
        path: f.dir.display().to_string(),
        format: f.format.into(),
        layers: layers.len(),
        image_layers: layers.len() - containers - init_layers,
        containers,
        init_layers,
        deepest_chain: layers.iter().map(|l| l.depth + 1).max().unwrap_or(0),
        broken_links: f.broken_links,
        whiteouts: layers.iter().map(|l| l.whiteouts).sum(),
        inodes: f
            .store_inodes
            .unwrap_or_else(|| layers.iter().map(|l| l.inodes).sum()),
        bytes: layers.iter().map(|l| l.bytes).sum(),
        hardlink_paths: f.hardlink_paths,
        hardlink_inodes: f.hardlink_inodes,
        top_layers: layers.iter().take(10).cloned().collect(),
        all_layers: layers,
        engine: f.engine,
        rootless_user: None,
        uses_mount_program: f.uses_mount_program,
        metadata: f.metadata,
        chains_known,
        images,
        max_links: f.max_links,
        max_links_path: f.max_links_path.map(|p| p.display().to_string()),
        fstype: String::new(),
        filesystem_used_bytes: f.filesystem_used_bytes,
        notes: f.notes,
    }
}
/// Short, unambiguous display ids: at least 12 characters (Docker's short id),
/// longer where two would print the same; a `-init` suffix is always kept.
pub fn short_ids(ids: &[&str]) -> Vec<String> {
    let split: Vec<(&str, &str)> = ids
        .iter()
        .map(|id| match id.strip_suffix("-init") {
            Some(base) => (base, "-init"),
            None => (*id, ""),
        })
        .collect();
    let mut len = 12;
    loop {
        let shown: Vec<String> = split
            .iter()
            .map(|(base, suffix)| {
                if base.chars().count() <= len {
                    format!("{base}{suffix}")
                } else {
                    let cut: String = base.chars().take(len).collect();
                    format!("{cut}…{suffix}")
                }
            })
            .collect();
        let unique: HashSet<&String> = shown.iter().collect();
        let longest = split
            .iter()
            .map(|(b, _)| b.chars().count())
            .max()
            .unwrap_or(0);
        if unique.len() == shown.len() || len >= longest {
            return shown;
        }
        len += 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_keep_init_suffixes_and_stay_unique() {
        let a = "a".repeat(64);
        let a_init = format!("{a}-init");
        let b = format!("{}b", "a".repeat(63));
        let shown = short_ids(&[&a, &a_init, &b, "short"]);
        assert!(
            shown[1].ends_with("-init") && shown[0] != shown[1],
            "{shown:?}"
        );
        assert_ne!(shown[0], shown[2], "{shown:?}");
        assert_eq!(shown[3], "short");
    }

    #[test]
    fn counts_the_root_hard_links_and_init_layers() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = d.path().join("overlay2");
        for id in ["img", "ctr", "ctr-init"] {
            fs::create_dir_all(s.join(id).join("diff")).expect("mkdir");
        }
        fs::write(s.join("img/diff/f"), "x").expect("write");
        fs::hard_link(s.join("img/diff/f"), s.join("img/diff/g")).expect("link");
        let mounts = d.path().join("image/overlay2/layerdb/mounts/c1");
        fs::create_dir_all(&mounts).expect("mkdir");
        fs::write(mounts.join("mount-id"), "ctr").expect("write");
        fs::write(mounts.join("init-id"), "ctr-init").expect("write");
        let inv = inventory(d.path()).expect("walk").expect("recognised");
        assert_eq!(
            (
                inv.layers,
                inv.image_layers,
                inv.containers,
                inv.init_layers
            ),
            (3, 1, 1, 1),
            "{inv:?}"
        );
        assert_eq!((inv.hardlink_paths, inv.hardlink_inodes), (2, 1));
        let img = inv.top_layers.iter().find(|l| l.id == "img").expect("img");
        // The diff dir and one file inode behind two names.
        assert_eq!(img.inodes, 2);
        assert!(
            img.bytes >= 4096,
            "the diff root's own block counts: {img:?}"
        );
    }
}
