//! Read-only inventory of a container store: Docker's `overlay2/` (and
//! containers-storage's `overlay/`, the same shape: `<id>/diff`, `link`, `lower`,
//! `l/`) or Docker's legacy `overlay/` (`<id>/root`, containers `<id>/upper`).
//! Nothing is written; every count comes from a walk.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::probe::census::census;

/// One layer's footprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerUsage {
    /// Layer id (directory name).
    pub id: String,
    /// Distinct inodes in its diff (or root).
    pub inodes: u64,
    /// Bytes allocated to them.
    pub bytes: u64,
    /// Whiteouts it holds.
    pub whiteouts: u64,
    /// Layers below it (from its `lower` file).
    pub depth: usize,
    /// Whether a container uses it as its upper layer.
    pub container: bool,
}

/// What a store holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreInventory {
    /// The driver directory inventoried.
    pub path: String,
    /// `overlay2` (Docker / containers-storage) or `overlay` (Docker legacy).
    pub format: String,
    /// Layer directories.
    pub layers: usize,
    /// Container layers among them (from the engine's metadata).
    pub containers: usize,
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
    /// Legacy format: file paths that are hard links, and the distinct inodes behind them.
    pub hardlink_paths: u64,
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
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        if subdirs.iter().any(|p| p.join("diff").is_dir()) {
            return overlay2_format(store, &dir, &subdirs).map(Some);
        }
        if subdirs
            .iter()
            .any(|p| p.join("root").is_dir() || p.join("upper").is_dir())
        {
            return legacy_format(&dir, &subdirs).map(Some);
        }
    }
    Ok(None)
}

/// Layer ids the engine's metadata names as containers' layers.
fn container_layers(store: &Path, driver_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    // containers-storage: <root>/overlay-containers/containers.json
    for root in [store, driver_dir.parent().unwrap_or(store)] {
        if let Ok(text) = fs::read_to_string(root.join("overlay-containers/containers.json")) {
            if let Ok(serde_json::Value::Array(a)) =
                serde_json::from_str::<serde_json::Value>(&text)
            {
                out.extend(
                    a.iter().filter_map(|c| {
                        c.get("layer").and_then(|v| v.as_str()).map(str::to_string)
                    }),
                );
            }
        }
        // Docker: <root>/image/overlay2/layerdb/mounts/<container>/mount-id
        if let Ok(mounts) = fs::read_dir(root.join("image/overlay2/layerdb/mounts")) {
            for m in mounts.flatten() {
                if let Ok(id) = fs::read_to_string(m.path().join("mount-id")) {
                    out.push(id.trim().to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn bytes_of(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    let dev = fs::symlink_metadata(dir).map(|m| m.dev()).unwrap_or(0);
    let mut seen = std::collections::HashSet::new();
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.dev() != dev {
                continue;
            }
            if seen.insert(m.ino()) {
                total += m.blocks() * 512;
            }
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

fn overlay2_format(
    store: &Path,
    dir: &Path,
    subdirs: &[PathBuf],
) -> std::io::Result<StoreInventory> {
    let containers = container_layers(store, dir);
    let mut layers = Vec::new();
    for p in subdirs.iter().filter(|p| p.join("diff").is_dir()) {
        let id = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let c = census(&p.join("diff"))?;
        let lower = fs::read_to_string(p.join("lower")).unwrap_or_default();
        let depth = lower.trim().split(':').filter(|s| !s.is_empty()).count();
        layers.push(LayerUsage {
            container: containers.contains(&id),
            inodes: c.distinct_inodes,
            bytes: bytes_of(&p.join("diff")),
            whiteouts: c.whiteouts,
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
    Ok(summarise(dir, "overlay2", layers, broken, 0))
}

fn legacy_format(dir: &Path, subdirs: &[PathBuf]) -> std::io::Result<StoreInventory> {
    let mut layers = Vec::new();
    // Layer roots share file inodes by hard links: count the store as a whole.
    let whole = census(dir)?;
    // The chain: lower-id (containers) and parent ids are not recorded for image
    // layers in the store itself; depth is counted by the engine's metadata only.
    let mut parents: HashMap<String, String> = HashMap::new();
    for p in subdirs {
        let id = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Ok(l) = fs::read_to_string(p.join("lower-id")) {
            parents.insert(id.clone(), l.trim().to_string());
        }
        let (tree, container) = if p.join("root").is_dir() {
            (p.join("root"), false)
        } else if p.join("upper").is_dir() {
            (p.join("upper"), true)
        } else {
            continue;
        };
        let c = census(&tree)?;
        layers.push(LayerUsage {
            id,
            inodes: c.distinct_inodes,
            bytes: bytes_of(&tree),
            whiteouts: c.whiteouts,
            depth: 0,
            container,
        });
    }
    for l in &mut layers {
        l.depth = usize::from(parents.contains_key(&l.id));
    }
    let mut inv = summarise(dir, "overlay", layers, Vec::new(), whole.hardlink_paths);
    inv.inodes = whole.distinct_inodes;
    Ok(inv)
}

fn summarise(
    dir: &Path,
    format: &str,
    mut layers: Vec<LayerUsage>,
    broken: Vec<String>,
    hardlink_paths: u64,
) -> StoreInventory {
    layers.sort_by(|a, b| b.inodes.cmp(&a.inodes).then(a.id.cmp(&b.id)));
    StoreInventory {
        path: dir.display().to_string(),
        format: format.into(),
        layers: layers.len(),
        containers: layers.iter().filter(|l| l.container).count(),
        deepest_chain: layers.iter().map(|l| l.depth + 1).max().unwrap_or(0),
        broken_links: broken,
        whiteouts: layers.iter().map(|l| l.whiteouts).sum(),
        inodes: layers.iter().map(|l| l.inodes).sum(),
        bytes: layers.iter().map(|l| l.bytes).sum(),
        hardlink_paths,
        top_layers: layers.into_iter().take(10).collect(),
    }
}
