//! Read-only inventory of a container store: Docker's `overlay2/` (and
//! containers-storage's `overlay/`, the same shape: `<id>/diff`, `link`, `lower`,
//! `l/`) or Docker's legacy `overlay/` (`<id>/root`, containers `<id>/upper`).
//! Nothing is written; every count comes from a walk that does not cross into
//! another filesystem, and every metadata file is read through the bounded reader
//! (a hostile store cannot make it block or read without end).
//!
//! What the figures mean, so they can be checked with standard tools:
//! - a layer's `inodes` are the distinct inodes of its tree, its root included
//!   (`find DIR -xdev -printf '%i\n' | sort -u | wc -l`);
//! - its `bytes` are the blocks of those inodes, each once, the root's own block
//!   included (`du -sxB1 DIR`);
//! - `hardlink_paths` are regular-file paths whose inode has other links
//!   (`find */diff -type f -links +1`), `hardlink_inodes` the inodes behind them.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::input::{read_text, Follow, STORE_INDEX_MAX_BYTES, STORE_META_MAX_BYTES};

/// One layer's footprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerUsage {
    /// Layer id (directory name).
    pub id: String,
    /// Distinct inodes in its diff (or root), the diff dir itself included.
    pub inodes: u64,
    /// Bytes allocated to them (`du -sx`), the diff dir's own block included.
    pub bytes: u64,
    /// Whiteouts it holds.
    pub whiteouts: u64,
    /// Layers below it (from its `lower` file).
    pub depth: usize,
    /// Whether a container uses it as its upper layer.
    pub container: bool,
    /// Whether it is a Docker container's `-init` layer (hostname, resolv.conf
    /// mount points), neither an image layer nor the container's own.
    #[serde(default)]
    pub init: bool,
}

/// What a store holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreInventory {
    /// The driver directory inventoried.
    pub path: String,
    /// `overlay2` (Docker / containers-storage) or `overlay` (Docker legacy).
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
}

/// Finds the driver directory under `store` and inventories it; `None` when there
/// is no recognisable store there.
pub fn inventory(store: &Path) -> std::io::Result<Option<StoreInventory>> {
    for dir in [
        store.to_path_buf(),
        store.join("overlay2"),
        store.join("overlay"),
    ] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let subdirs: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        if subdirs.iter().any(|p| is_dir_no_follow(&p.join("diff"))) {
            return overlay2_format(store, &dir, &subdirs).map(Some);
        }
        if subdirs
            .iter()
            .any(|p| is_dir_no_follow(&p.join("root")) || is_dir_no_follow(&p.join("upper")))
        {
            return legacy_format(&dir, &subdirs).map(Some);
        }
    }
    Ok(None)
}

/// What `--store` must name, for the error when it names something else.
pub const EXPECTED: &str =
    "a Docker data root (holding overlay2/ or overlay/), its overlay2/ or overlay/ \
     directory, or a containers-storage root (holding overlay/)";

fn is_dir_no_follow(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

/// A one-line metadata file of the store (`link`, `lower`, `mount-id`), or None.
fn meta(path: &Path) -> Option<String> {
    read_text(
        path,
        STORE_META_MAX_BYTES,
        "a store metadata file",
        Follow::NoSymlinks,
    )
    .ok()
    .map(|s| s.trim().to_string())
}

/// Layer ids the engine's metadata names as containers' layers, and Docker's
/// containers' init layers.
fn container_layers(store: &Path, driver_dir: &Path) -> (HashSet<String>, HashSet<String>) {
    let mut containers = HashSet::new();
    let mut inits = HashSet::new();
    for root in [store, driver_dir.parent().unwrap_or(store)] {
        // containers-storage: <root>/overlay-containers/containers.json
        let index = root.join("overlay-containers/containers.json");
        if let Ok(text) = read_text(
            &index,
            STORE_INDEX_MAX_BYTES,
            "a store index",
            Follow::NoSymlinks,
        ) {
            if let Ok(serde_json::Value::Array(a)) =
                serde_json::from_str::<serde_json::Value>(&text)
            {
                containers.extend(
                    a.iter().filter_map(|c| {
                        c.get("layer").and_then(|v| v.as_str()).map(str::to_string)
                    }),
                );
            }
        }
        // Docker: <root>/image/overlay2/layerdb/mounts/<container>/{mount-id,init-id}
        if let Ok(mounts) = fs::read_dir(root.join("image/overlay2/layerdb/mounts")) {
            for m in mounts.flatten() {
                containers.extend(meta(&m.path().join("mount-id")));
                inits.extend(meta(&m.path().join("init-id")));
            }
        }
    }
    (containers, inits)
}

/// One tree's figures (not crossing into another filesystem).
#[derive(Debug, Default)]
struct Walk {
    inodes: u64,
    bytes: u64,
    whiteouts: u64,
    hardlink_paths: u64,
}

/// Walks `root`, adding linked regular files' inodes to `linked` (store-wide).
fn walk(root: &Path, linked: &mut HashSet<(u64, u64)>) -> std::io::Result<Walk> {
    let top = fs::symlink_metadata(root)?;
    let dev = top.dev();
    let mut w = Walk::default();
    let mut seen = HashSet::new();
    seen.insert(top.ino());
    w.inodes = 1;
    w.bytes = top.blocks() * 512;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let e = e?;
            let m = e.metadata()?;
            if m.dev() != dev {
                continue;
            }
            let ft = m.file_type();
            if seen.insert(m.ino()) {
                w.inodes += 1;
                w.bytes += m.blocks() * 512;
            }
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() && m.nlink() > 1 {
                w.hardlink_paths += 1;
                linked.insert((m.dev(), m.ino()));
            } else if ft.is_char_device() && m.rdev() == 0 {
                w.whiteouts += 1;
            }
        }
    }
    Ok(w)
}

fn overlay2_format(
    store: &Path,
    dir: &Path,
    subdirs: &[PathBuf],
) -> std::io::Result<StoreInventory> {
    let (containers, inits) = container_layers(store, dir);
    let mut layers = Vec::new();
    let mut linked = HashSet::new();
    let mut hardlink_paths = 0;
    for p in subdirs.iter().filter(|p| is_dir_no_follow(&p.join("diff"))) {
        let id = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let w = walk(&p.join("diff"), &mut linked)?;
        hardlink_paths += w.hardlink_paths;
        let depth = meta(&p.join("lower"))
            .map(|l| l.split(':').filter(|s| !s.is_empty()).count())
            .unwrap_or(0);
        // Docker names a container's init layer `<mount-id>-init`.
        let init = inits.contains(&id)
            || id.strip_suffix("-init").is_some_and(|base| {
                containers.contains(base) || subdirs.iter().any(|s| s.ends_with(base))
            });
        layers.push(LayerUsage {
            container: containers.contains(&id),
            init,
            inodes: w.inodes,
            bytes: w.bytes,
            whiteouts: w.whiteouts,
            depth,
            id,
        });
    }
    let mut broken = Vec::new();
    if let Ok(rd) = fs::read_dir(dir.join("l")) {
        for e in rd.flatten() {
            let p = e.path();
            if fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink())
                && fs::metadata(&p).is_err()
            {
                broken.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    let mut inv = summarise(dir, "overlay2", layers, broken);
    inv.hardlink_paths = hardlink_paths;
    inv.hardlink_inodes = linked.len() as u64;
    Ok(inv)
}

fn legacy_format(dir: &Path, subdirs: &[PathBuf]) -> std::io::Result<StoreInventory> {
    let mut layers = Vec::new();
    // Layer roots share file inodes by hard links: count the store as a whole.
    let mut linked = HashSet::new();
    let whole = walk(dir, &mut linked)?;
    // The chain: lower-id (containers) and parent ids are not recorded for image
    // layers in the store itself; depth is counted by the engine's metadata only.
    let mut parents: HashMap<String, String> = HashMap::new();
    for p in subdirs {
        let id = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(l) = meta(&p.join("lower-id")) {
            parents.insert(id.clone(), l);
        }
        let (tree, container) = if is_dir_no_follow(&p.join("root")) {
            (p.join("root"), false)
        } else if is_dir_no_follow(&p.join("upper")) {
            (p.join("upper"), true)
        } else {
            continue;
        };
        let w = walk(&tree, &mut HashSet::new())?;
        layers.push(LayerUsage {
            init: id.ends_with("-init"),
            id,
            inodes: w.inodes,
            bytes: w.bytes,
            whiteouts: w.whiteouts,
            depth: 0,
            container,
        });
    }
    for l in &mut layers {
        l.depth = usize::from(parents.contains_key(&l.id));
    }
    let mut inv = summarise(dir, "overlay", layers, Vec::new());
    inv.inodes = whole.inodes;
    inv.hardlink_paths = whole.hardlink_paths;
    inv.hardlink_inodes = linked.len() as u64;
    Ok(inv)
}

fn summarise(
    dir: &Path,
    format: &str,
    mut layers: Vec<LayerUsage>,
    broken: Vec<String>,
) -> StoreInventory {
    layers.sort_by(|a, b| b.inodes.cmp(&a.inodes).then(a.id.cmp(&b.id)));
    let containers = layers.iter().filter(|l| l.container).count();
    let init_layers = layers.iter().filter(|l| l.init && !l.container).count();
    StoreInventory {
        path: dir.display().to_string(),
        format: format.into(),
        layers: layers.len(),
        image_layers: layers.len() - containers - init_layers,
        containers,
        init_layers,
        deepest_chain: layers.iter().map(|l| l.depth + 1).max().unwrap_or(0),
        broken_links: broken,
        whiteouts: layers.iter().map(|l| l.whiteouts).sum(),
        inodes: layers.iter().map(|l| l.inodes).sum(),
        bytes: layers.iter().map(|l| l.bytes).sum(),
        hardlink_paths: 0,
        hardlink_inodes: 0,
        top_layers: layers.into_iter().take(10).collect(),
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
