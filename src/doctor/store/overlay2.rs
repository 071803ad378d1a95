//! overlay2 stores (Docker's `overlay2/`, containers-storage's `overlay/`, rootful
//! or rootless) and Docker's legacy `overlay/`. overlay2: each layer is
//! `<id>/diff` with `link` (its `l/` short name) and `lower` (the short names of
//! every layer below, top first), so chains need no engine metadata. Legacy: each
//! image layer is `<id>/root`, a full tree whose files are hard links to its
//! parent's; containers are `<id>/upper` over one lower (`lower-id`).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::engines::{self, meta};
use super::walk::walk;
use super::{is_dir_no_follow, Found, LayerUsage, Mounts};
use crate::layout::stores::{LEGACY_OVERLAY, OVERLAY2};

/// Reads `dir` if it is an overlay2 or legacy overlay driver dir; `None` otherwise.
pub(crate) fn read(dir: &Path) -> std::io::Result<Option<Found>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(None);
    };
    let subdirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    if subdirs.iter().any(|p| is_dir_no_follow(&p.join("diff")))
        // An overlay2 store with no layer yet: only its `l/` dir.
        || (subdirs.len() == 1 && subdirs[0].ends_with("l"))
    {
        return overlay2(dir, &subdirs).map(Some);
    }
    if subdirs
        .iter()
        .any(|p| is_dir_no_follow(&p.join("root")) || is_dir_no_follow(&p.join("upper")))
    {
        return legacy(dir, &subdirs).map(Some);
    }
    Ok(None)
}

fn id_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn overlay2(dir: &Path, subdirs: &[PathBuf]) -> std::io::Result<Found> {
    let records = engines::read(dir);
    let mut links: HashMap<String, String> = HashMap::new();
    let mut by_link: HashMap<String, String> = HashMap::new();
    let layer_dirs: Vec<&PathBuf> = subdirs
        .iter()
        .filter(|p| is_dir_no_follow(&p.join("diff")))
        .collect();
    for p in &layer_dirs {
        if let Some(l) = meta(&p.join("link")) {
            links.insert(id_of(p), l.clone());
            by_link.insert(l, id_of(p));
        }
    }
    let uses_mount_program = meta(&dir.join(".has-mount-program")).map(|v| v == "true");
    let mut f = Found::new(
        dir,
        OVERLAY2.name,
        Mounts::Overlay2 {
            home: dir.display().to_string(),
            links,
            init_layer: records.engine == "docker",
        },
    );
    f.uses_mount_program = uses_mount_program;
    f.depth_set = true;
    f.chains_known = true;
    let mut linked = HashSet::new();
    for p in &layer_dirs {
        let id = id_of(p);
        let w = match walk(&p.join("diff"), &mut linked) {
            Ok(w) => w,
            Err(e) => {
                // A live store changes under the walk (a layer removed).
                f.notes.push(format!("layer {id}: not counted: {e}"));
                continue;
            }
        };
        f.add_walk(&w);
        let lowers: Vec<String> = meta(&p.join("lower"))
            .map(|l| {
                l.split(':')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let parent = lowers
            .first()
            .and_then(|l| by_link.get(l.trim_start_matches("l/")).cloned())
            .or_else(|| records.parents.get(&id).cloned());
        if !lowers.is_empty() && parent.is_none() {
            f.chains_known = false;
        }
        // Docker names a container's init layer `<mount-id>-init`.
        let init = records.inits.contains(&id)
            || id.strip_suffix("-init").is_some_and(|base| {
                records.containers.contains(base) || subdirs.iter().any(|s| s.ends_with(base))
            });
        let mut l = LayerUsage::new(id.clone());
        l.container = records.containers.contains(&id);
        l.init = init;
        l.inodes = w.inodes;
        l.bytes = w.bytes;
        l.whiteouts = w.whiteouts
            + if uses_mount_program == Some(true) {
                w.wh_files
            } else {
                0
            };
        l.depth = lowers.len();
        l.parent = parent;
        f.layers.push(l);
    }
    if let Ok(rd) = fs::read_dir(dir.join("l")) {
        for e in rd.flatten() {
            let p = e.path();
            if fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink())
                && fs::metadata(&p).is_err()
            {
                f.broken_links
                    .push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    f.hardlink_inodes = linked.len() as u64;
    f.engine = records.engine.into();
    f.named_images = records.images;
    f.notes.extend(records.notes);
    f.metadata = describe(&records.sources, "each layer's `lower` and `link` files");
    Ok(f)
}

fn describe(sources: &[String], store_own: &str) -> String {
    if sources.is_empty() {
        format!(
            "{store_own}; no engine records next to the store (containers and image names unknown)"
        )
    } else {
        format!("{store_own}; engine records: {}", sources.join(", "))
    }
}

fn legacy(dir: &Path, subdirs: &[PathBuf]) -> std::io::Result<Found> {
    let records = engines::read(dir);
    let mut f = Found::new(
        dir,
        LEGACY_OVERLAY.name,
        Mounts::Legacy {
            home: dir.display().to_string(),
        },
    );
    // Layer roots share file inodes by hard links: count the store as a whole.
    let mut linked = HashSet::new();
    let whole = walk(dir, &mut linked)?;
    f.add_walk(&whole);
    f.store_inodes = Some(whole.inodes);
    f.hardlink_inodes = linked.len() as u64;
    // Image layers' parents are not in the store (their roots are whole trees):
    // Docker's layerdb has them; containers name theirs in `lower-id`.
    for p in subdirs {
        let id = id_of(p);
        let (tree, container) = if is_dir_no_follow(&p.join("root")) {
            (p.join("root"), false)
        } else if is_dir_no_follow(&p.join("upper")) {
            (p.join("upper"), true)
        } else {
            continue;
        };
        let w = match walk(&tree, &mut HashSet::new()) {
            Ok(w) => w,
            Err(e) => {
                f.notes.push(format!("layer {id}: not counted: {e}"));
                continue;
            }
        };
        let mut l = LayerUsage::new(id.clone());
        l.init = id.ends_with("-init") || records.inits.contains(&id);
        l.container = container && !l.init;
        l.parent = meta(&p.join("lower-id")).or_else(|| records.parents.get(&id).cloned());
        l.inodes = w.inodes;
        l.bytes = w.bytes;
        l.whiteouts = w.whiteouts;
        f.layers.push(l);
    }
    // Without Docker's layerdb an image layer's parent is unknown.
    f.chains_known = records.engine == "docker";
    // The links of the store's files as Docker would see them, file by file.
    if let Some(p) = &f.max_links_path {
        if let Ok(m) = fs::symlink_metadata(p) {
            f.max_links = m.nlink();
        }
    }
    f.engine = records.engine.into();
    f.named_images = records.images;
    f.notes.extend(records.notes);
    f.metadata = describe(
        &records.sources,
        "containers' `lower-id` files (image layers record no parent in the store)",
    );
    Ok(f)
}
