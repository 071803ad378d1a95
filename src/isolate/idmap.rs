//! Idmapped mounts: a user namespace that only carries an id mapping, detached
//! clones of a directory tree (`open_tree(OPEN_TREE_CLONE)`) with that mapping
//! applied (`mount_setattr(MOUNT_ATTR_IDMAP)`), and a probe that says whether
//! this kernel, this filesystem and overlay accept them.
//!
//! This is how user-namespaced pods see their image layers: every lower is an
//! idmapped clone (containerd 2.1), or the layers' common parent is cloned once
//! and each layer opened below it (the fix of containerd#12048). The clones are
//! never attached: they reach overlay as file descriptors (`lowerdir+` by fd)
//! and add no line to the mount table.

use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use rustix::mount::{
    fsconfig_create, fsconfig_set_fd, fsconfig_set_string, fsmount, fsopen, open_tree,
    FsMountFlags, FsOpenFlags, MountAttrFlags, OpenTreeFlags,
};

use super::IsolateError;
use crate::sys::{MOUNT_ATTR_IDMAP, MOUNT_ATTR_RDONLY};

/// How lower layers are idmapped.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum IdmapMode {
    /// One idmapped clone per lower layer (containerd 2.1: `open_tree` + `mount_setattr` per layer).
    PerLayer,
    /// One idmapped clone of the layers' common parent, each layer opened below it
    /// (containerd's fix for containerd#12048).
    CommonParent,
}

/// A contiguous id mapping, as one line of `uid_map`: ids `inside..inside+count`
/// of the namespace are `outside..outside+count` outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id inside the namespace.
    pub inside: u32,
    /// The host id it maps to.
    pub outside: u32,
    /// How many ids.
    pub count: u32,
}

impl IdRange {
    /// What Kubernetes gives a user-namespaced pod: 65536 ids from 100000.
    pub const POD: IdRange = IdRange {
        inside: 0,
        outside: 100_000,
        count: 65_536,
    };

    /// The host uid a file owned by `host_uid` shows as through a mount idmapped
    /// with this range (None when it is not mapped).
    pub fn shown_as(self, host_uid: u32) -> Option<u32> {
        let off = host_uid.checked_sub(self.inside)?;
        (off < self.count).then(|| self.outside + off)
    }
}

/// A user namespace held by a file descriptor, for `MOUNT_ATTR_IDMAP`. No
/// process lives in it: the helper that made it has exited.
#[derive(Debug)]
pub struct UserNamespace {
    fd: OwnedFd,
    range: IdRange,
}

impl UserNamespace {
    /// Makes a user namespace mapping `range` (uids and gids alike).
    ///
    /// A forked helper unshares a user namespace and waits; we write its maps (as
    /// a privileged writer, no `setgroups` deny is needed), keep a descriptor of
    /// the namespace, and let the helper exit (`userns_fd`).
    pub fn with_map(range: IdRange) -> Result<UserNamespace, IsolateError> {
        let line = format!("{} {} {}\n", range.inside, range.outside, range.count);
        let fd = super::userns::userns_fd(&line, Duration::from_secs(10)).map_err(|e| {
            IsolateError::Unsupported(format!("making a user namespace for idmapped mounts: {e}"))
        })?;
        Ok(UserNamespace { fd, range })
    }

    /// The mapping.
    pub fn range(&self) -> IdRange {
        self.range
    }

    /// The namespace's descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// A detached, read-only clone of the tree at `dir`, idmapped with this namespace.
    pub fn idmapped_clone(&self, dir: &Path) -> std::io::Result<OwnedFd> {
        let tree = open_tree(
            rustix::fs::CWD,
            dir,
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
        )?;
        self.apply(tree.as_fd())?;
        Ok(tree)
    }

    fn apply(&self, tree: BorrowedFd<'_>) -> std::io::Result<()> {
        crate::sys::mount_setattr(
            tree,
            MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY,
            Some(self.fd.as_fd()),
        )
    }
}

/// Whether this kernel has `mount_setattr(2)` at all (Linux 5.12).
pub fn mount_setattr_available() -> bool {
    crate::sys::mount_setattr_available()
}

/// Checks that the filesystem holding `dir` takes an idmapped clone and that
/// overlay accepts one as a lower layer under a plain upper: makes `dir/{l,u,w}`,
/// builds that overlay with `fsmount` and never attaches it (nothing shows in
/// the mount table). The error says which step the kernel refused.
pub fn probe_idmapped_overlay(dir: &Path, userns: &UserNamespace) -> Result<(), String> {
    let (l, u, w) = (dir.join("l"), dir.join("u"), dir.join("w"));
    for d in [&l, &u, &w] {
        fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    }
    let tree = userns.idmapped_clone(&l).map_err(|e| {
        format!(
            "mount_setattr(MOUNT_ATTR_IDMAP) on a clone of {}: {e}",
            l.display()
        )
    })?;
    let step = |what: &str, e: rustix::io::Errno| {
        format!(
            "overlay over an idmapped lower ({what}): {}",
            std::io::Error::from_raw_os_error(e.raw_os_error())
        )
    };
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| step("fsopen", e))?;
    fsconfig_set_fd(fs.as_fd(), "lowerdir+", tree.as_fd()).map_err(|e| step("lowerdir+ fd", e))?;
    fsconfig_set_string(fs.as_fd(), "upperdir", u.as_path()).map_err(|e| step("upperdir", e))?;
    fsconfig_set_string(fs.as_fd(), "workdir", w.as_path()).map_err(|e| step("workdir", e))?;
    fsconfig_create(fs.as_fd()).map_err(|e| step("create", e))?;
    let mnt = fsmount(
        fs.as_fd(),
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::empty(),
    )
    .map_err(|e| step("fsmount", e))?;
    // The clone must outlive the create (it is dissolved when its fd closes).
    drop(tree);
    drop(mnt);
    let _ = fs::remove_dir_all(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_range_shows_root_as_100000() {
        assert_eq!(IdRange::POD.shown_as(0), Some(100_000));
        assert_eq!(IdRange::POD.shown_as(1000), Some(101_000));
        assert_eq!(IdRange::POD.shown_as(70_000), None);
    }
}
