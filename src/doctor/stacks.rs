//! Probes beyond kernel overlay's own options that no one layout declares:
//! idmapped mounts (`mount_setattr(MOUNT_ATTR_IDMAP)` on a clone of a tmpfs dir
//! and of the store's filesystem). Each is observed, never inferred from a
//! version; both run on detached clones that are never attached. The layouts'
//! own probes (rootless overlay, fuse-overlayfs, btrfs, …) are declared by
//! their registry entries and run by `stack_mounts`.

use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use rustix::mount::{open_tree, OpenTreeFlags};

use super::probe::FeatureProbe;
use crate::isolate::userns_fd;

/// Idmapped mounts on the probes' tmpfs.
pub const IDMAP_TMPFS: &str = "idmapped mounts (tmpfs)";
/// Idmapped mounts on the inspected path's filesystem (name prefix).
pub const IDMAP_PATH: &str = "idmapped mounts (path)";

/// How long any one probe child may take.
const CHILD_TIMEOUT: Duration = Duration::from_secs(5);
/// The map the idmapped probes use: container root is host uid 100000.
const SHIFTED_MAP: &str = "0 100000 65536";
const SHIFT: u32 = 100_000;

fn probe(name: &str, supported: bool, detail: String) -> FeatureProbe {
    FeatureProbe {
        name: name.into(),
        supported,
        detail,
        version: None,
        mount_us: None,
    }
}

/// Clones the mount at `dir` (detached, never attached), idmaps the clone and
/// checks that the dir's owner shows shifted by 100000 through it.
fn idmap(dir: BorrowedFd<'_>) -> Result<String, String> {
    let owner = rustix::fs::fstat(dir)
        .map_err(|e| format!("fstat: {e}"))?
        .st_uid;
    let ns = userns_fd(SHIFTED_MAP, CHILD_TIMEOUT).map_err(|e| e.to_string())?;
    let tree = open_tree(
        dir,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map_err(|e| format!("open_tree(OPEN_TREE_CLONE): {e}"))?;
    crate::sys::mount_setattr(tree.as_fd(), crate::sys::MOUNT_ATTR_IDMAP, Some(ns.as_fd()))
        .map_err(|e| format!("mount_setattr(MOUNT_ATTR_IDMAP): {e}"))?;
    let seen = rustix::fs::fstat(&tree)
        .map_err(|e| format!("fstat through the clone: {e}"))?
        .st_uid;
    let expected = owner.checked_add(SHIFT).filter(|_| owner < 65536);
    if Some(seen) == expected {
        Ok(format!(
            "mount_setattr(MOUNT_ATTR_IDMAP) with map {SHIFTED_MAP} on a detached clone: uid {owner} shows as {seen}"
        ))
    } else {
        Err(format!(
            "uid {owner} shows as {seen} through the idmapped clone (expected {expected:?})"
        ))
    }
}

/// Idmapped mounts on doctor's tmpfs (a dir `dir` makes there).
pub fn idmap_tmpfs(dir: &Path) -> FeatureProbe {
    let d = dir.join("idmap");
    let r = fs::create_dir_all(&d)
        .map_err(|e| e.to_string())
        .and_then(|()| fs::File::open(&d).map_err(|e| e.to_string()))
        .and_then(|f| idmap(f.as_fd()));
    match r {
        Ok(detail) => probe(IDMAP_TMPFS, true, detail),
        Err(e) => probe(IDMAP_TMPFS, false, e),
    }
}

/// Idmapped mounts on the filesystem of `dir` (an fd opened before doctor's
/// tmpfs could cover it); nothing is written there.
pub fn idmap_path(dir: &OwnedFd, shown: &str) -> FeatureProbe {
    let name = format!("{IDMAP_PATH}: {shown}");
    match idmap(dir.as_fd()) {
        Ok(detail) => probe(&name, true, detail),
        Err(e) => probe(&name, false, e),
    }
}
