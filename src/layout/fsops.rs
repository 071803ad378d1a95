//! File-system writing shared by the layouts: trees from the image model, overlay
//! diff dirs, tree copies. Directories go first (in order, parents before
//! children), then file data in parallel on every core.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use rayon::prelude::*;

use super::LayoutError;
use crate::image::{content, Change, LayerSpec, NodeKind, Tree};

fn mkdir(path: &Path, mode: u32) -> Result<(), LayoutError> {
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(LayoutError::io("creating dir", path)(e)),
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(LayoutError::io("chmod", path))
}

/// Creates the missing ancestors of `rel` under `root` with the modes `tree` gives them.
fn ensure_parents(root: &Path, rel: &Path, tree: &Tree) -> Result<(), LayoutError> {
    let mut acc = PathBuf::new();
    if let Some(parent) = rel.parent() {
        for comp in parent.components() {
            acc.push(comp);
            let full = root.join(&acc);
            if !full.is_dir() {
                mkdir(&full, tree.dir_mode(&acc))?;
            }
        }
    }
    Ok(())
}

/// A file to write (or link) once its directory exists.
struct FileJob {
    path: PathBuf,
    size: u64,
    seed: u64,
    mode: u32,
    link_from: Option<PathBuf>,
}

fn run_file_jobs(jobs: Vec<FileJob>) -> Result<(), LayoutError> {
    jobs.into_par_iter().try_for_each(|j| match j.link_from {
        Some(src) => fs::hard_link(&src, &j.path).map_err(LayoutError::io("hard-linking", &j.path)),
        None => content::write_file(&j.path, j.size, j.seed, j.mode)
            .map_err(LayoutError::io("writing", &j.path)),
    })
}

/// Writes the merged `tree` under `dir`. With `link_from = Some((prev, layer))`,
/// files that layer `layer` did not write are hard links into `prev` — the legacy
/// driver's way of sharing unchanged files between layer roots.
pub fn write_tree(
    tree: &Tree,
    dir: &Path,
    link_from: Option<(&Path, usize)>,
) -> Result<(), LayoutError> {
    mkdir(dir, 0o755)?;
    let mut jobs = Vec::new();
    for (rel, node) in &tree.nodes {
        let full = dir.join(rel);
        match &node.kind {
            NodeKind::Dir => mkdir(&full, node.mode)?,
            NodeKind::Symlink { target } => std::os::unix::fs::symlink(target, &full)
                .map_err(LayoutError::io("symlinking", &full))?,
            NodeKind::File { size, seed } => jobs.push(FileJob {
                path: full,
                size: *size,
                seed: *seed,
                mode: node.mode,
                link_from: link_from
                    .filter(|(_, layer)| node.layer < *layer)
                    .map(|(prev, _)| prev.join(rel)),
            }),
        }
    }
    run_file_jobs(jobs)
}

/// Writes one overlay2 diff dir: this layer's changes only, deletions as whiteouts
/// (char 0/0), opaque dirs by xattr. `tree` is the merged tree below this layer;
/// it is advanced through the layer's changes so parent modes stay right.
pub fn write_diff(
    layer: &LayerSpec,
    index: usize,
    tree: &mut Tree,
    dir: &Path,
    opaque_xattr: &str,
) -> Result<(), LayoutError> {
    mkdir(dir, 0o755)?;
    // Keyed by path: a later change in this layer may replace a file written earlier in it.
    let mut jobs = std::collections::BTreeMap::new();
    for change in &layer.changes {
        match change {
            Change::Dir { path, mode } => {
                ensure_parents(dir, path, tree)?;
                mkdir(&dir.join(path), *mode)?;
            }
            Change::File {
                path,
                mode,
                size,
                seed,
            } => {
                ensure_parents(dir, path, tree)?;
                let full = dir.join(path);
                jobs.insert(
                    full.clone(),
                    FileJob {
                        path: full,
                        size: *size,
                        seed: *seed,
                        mode: *mode,
                        link_from: None,
                    },
                );
            }
            Change::Symlink { path, target } => {
                ensure_parents(dir, path, tree)?;
                let full = dir.join(path);
                std::os::unix::fs::symlink(target, &full)
                    .map_err(LayoutError::io("symlinking", &full))?;
            }
            Change::Delete { path } => {
                ensure_parents(dir, path, tree)?;
                let full = dir.join(path);
                // An earlier change in this layer may have put a parent dir of another
                // deletion here; the whiteout replaces it.
                clear(&full, &mut jobs)?;
                mknod(&full, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                    .map_err(|e| LayoutError::io("making whiteout", &full)(e.into()))?;
            }
            Change::Opaque { path } => {
                ensure_parents(dir, path, tree)?;
                let full = dir.join(path);
                // Opaque hides this layer's earlier content under it too (as in the model).
                clear(&full, &mut jobs)?;
                mkdir(&full, tree.dir_mode(path))?;
                xattr::set(&full, opaque_xattr, b"y")
                    .map_err(LayoutError::io("setting opaque xattr on", &full))?;
            }
        }
        tree.apply(change, index);
    }
    run_file_jobs(jobs.into_values().collect())
}

/// Removes what this layer already put at `full` (dirs made for earlier changes,
/// queued file writes), so a later whiteout or opaque dir replaces it.
fn clear(
    full: &Path,
    jobs: &mut std::collections::BTreeMap<PathBuf, FileJob>,
) -> Result<(), LayoutError> {
    jobs.retain(|k, _| !k.starts_with(full));
    match fs::symlink_metadata(full) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(full).map_err(LayoutError::io("removing", full)),
        Ok(_) => fs::remove_file(full).map_err(LayoutError::io("removing", full)),
        Err(_) => Ok(()),
    }
}

/// Copies a tree (data, modes, symlinks) the way a copying driver would.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<(), LayoutError> {
    let mut files = Vec::new();
    copy_dirs(src, dst, &mut files)?;
    files
        .into_par_iter()
        .try_for_each(|(s, d): (PathBuf, PathBuf)| {
            fs::copy(&s, &d)
                .map(|_| ())
                .map_err(LayoutError::io("copying to", &d))
        })
}

fn copy_dirs(
    src: &Path,
    dst: &Path,
    files: &mut Vec<(PathBuf, PathBuf)>,
) -> Result<(), LayoutError> {
    let meta = fs::symlink_metadata(src).map_err(LayoutError::io("reading", src))?;
    mkdir(dst, meta.permissions().mode() & 0o7777)?;
    for entry in fs::read_dir(src).map_err(LayoutError::io("reading dir", src))? {
        let entry = entry.map_err(LayoutError::io("reading dir", src))?;
        let (s, d) = (entry.path(), dst.join(entry.file_name()));
        let ft = entry.file_type().map_err(LayoutError::io("reading", &s))?;
        if ft.is_dir() {
            copy_dirs(&s, &d, files)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&s).map_err(LayoutError::io("reading link", &s))?;
            std::os::unix::fs::symlink(target, &d).map_err(LayoutError::io("symlinking", &d))?;
        } else {
            files.push((s, d));
        }
    }
    Ok(())
}
