//! Probes of the storage stacks beyond kernel overlay's own options: a rootless
//! overlay and fuse-overlayfs (mounted by this build's layouts, see
//! `stack_mounts`; fuse-overlayfs's version too), btrfs (the kernel and
//! `mkfs.btrfs`), idmapped mounts (`mount_setattr(MOUNT_ATTR_IDMAP)` on a clone
//! of a tmpfs dir and of the store's filesystem). Each is observed,
//! never inferred from a version; all run inside the private mount namespace on
//! doctor's private tmpfs, or on detached clones that are never attached.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rustix::mount::{open_tree, OpenTreeFlags};

use super::probe::FeatureProbe;
use super::stack_mounts;
use crate::isolate::{run_command, userns_fd, Privilege};

/// Probe names, for whoever reads the results.
pub const ROOTLESS: &str = "rootless overlay (user namespace)";
/// fuse-overlayfs.
pub const FUSE_OVERLAYFS: &str = "fuse-overlayfs";
/// btrfs driver stores.
pub const BTRFS: &str = "btrfs";
/// Idmapped mounts on the probes' tmpfs.
pub const IDMAP_TMPFS: &str = "idmapped mounts (tmpfs)";
/// Idmapped mounts on the inspected path's filesystem (name prefix).
pub const IDMAP_PATH: &str = "idmapped mounts (path)";
/// EROFS (the general probe's name: see `probe`).
pub const EROFS: &str = super::probe::EROFS_IMAGES;

/// How long any one probe child may take.
const CHILD_TIMEOUT: Duration = Duration::from_secs(5);
/// `MOUNT_ATTR_IDMAP`.
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
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

/// Whether /proc/filesystems (its text) lists `fs`.
pub fn kernel_has(filesystems: &str, fs: &str) -> bool {
    filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some(fs))
}

/// The first line of a tool's `--version` output that names a version, without
/// fuse-overlayfs 1.10's "unknown argument ignored: lazytime" noise.
pub fn version_line(output: &str, tool: &str) -> Option<String> {
    output
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("unknown argument ignored"))
        .find(|l| {
            l.starts_with(tool) && l.contains(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
        })
        .map(str::to_string)
}

fn tool_output(program: &str, args: &[&str]) -> Result<String, String> {
    let out = run_command(
        Command::new(program).args(args),
        CHILD_TIMEOUT,
        "scripts/setup installs it",
    )
    .map_err(|e| e.to_string())?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Every stack probe that needs no mount of ours beyond `dir` (doctor's private
/// tmpfs). `filesystems` is /proc/filesystems' text.
pub fn probe_on_tmpfs(dir: &Path, privilege: Privilege, filesystems: &str) -> Vec<FeatureProbe> {
    vec![
        rootless(dir, privilege),
        fuse_overlayfs(dir, privilege, filesystems),
        btrfs(filesystems),
        idmap_tmpfs(dir),
    ]
}

/// This build's `rootless` layout, made and mounted on the tmpfs.
fn rootless(dir: &Path, privilege: Privilege) -> FeatureProbe {
    stack_mounts::result(
        ROOTLESS,
        stack_mounts::rootless(&dir.join("rootless"), privilege),
    )
}

fn fuse_overlayfs(dir: &Path, privilege: Privilege, filesystems: &str) -> FeatureProbe {
    let version = match tool_output("fuse-overlayfs", &["--version"]) {
        Ok(out) => {
            let v = version_line(&out, "fuse-overlayfs");
            let lib = version_line(&out, "FUSE library");
            match (v, lib) {
                (Some(v), Some(l)) => format!("{v}, {l}"),
                (Some(v), None) => v,
                _ => "version not reported".to_string(),
            }
        }
        Err(e) => return probe(FUSE_OVERLAYFS, false, e),
    };
    let mut p = if !kernel_has(filesystems, "fuse") || !Path::new("/dev/fuse").exists() {
        probe(
            FUSE_OVERLAYFS,
            false,
            "installed, but the kernel has no FUSE (no fuse in /proc/filesystems or no /dev/fuse)"
                .into(),
        )
    } else {
        match stack_mounts::fuse_overlayfs(&dir.join("fuse"), privilege) {
            Ok(outcome) => stack_mounts::result(FUSE_OVERLAYFS, Ok(outcome)),
            Err(e) => probe(
                FUSE_OVERLAYFS,
                false,
                format!("installed, but a mount failed: {e}"),
            ),
        }
    };
    p.version = Some(version);
    p
}

fn btrfs(filesystems: &str) -> FeatureProbe {
    let kernel = kernel_has(filesystems, "btrfs");
    let mkfs = tool_output("mkfs.btrfs", &["--version"]);
    let version = mkfs.as_ref().ok().and_then(|o| {
        o.split_whitespace()
            .find(|w| w.starts_with('v') && w[1..].starts_with(|c: char| c.is_ascii_digit()))
            .map(|v| format!("btrfs-progs {v}"))
    });
    let detail = match (&mkfs, kernel) {
        (Ok(_), true) => "the kernel lists btrfs and mkfs.btrfs is installed: a btrfs filesystem can hold a btrfs driver store".to_string(),
        (Ok(_), false) => "mkfs.btrfs is installed but the kernel has no btrfs (not in /proc/filesystems)".to_string(),
        (Err(e), true) => format!("the kernel lists btrfs, but {e}"),
        (Err(e), false) => format!("no btrfs in the kernel, and {e}"),
    };
    let mut p = probe(BTRFS, kernel && mkfs.is_ok(), detail);
    p.version = version;
    p
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH, {attr_set = IDMAP, userns_fd})`.
fn set_idmap(tree: BorrowedFd<'_>, userns: BorrowedFd<'_>) -> std::io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: a valid struct of the size passed; empty path with AT_EMPTY_PATH.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
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
    set_idmap(tree.as_fd(), ns.as_fd())
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

fn idmap_tmpfs(dir: &Path) -> FeatureProbe {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_versions_and_filesystems_from_captured_output() {
        let fuse = "unknown argument ignored: lazytime\nfusermount3 version: 3.14.0\nfuse-overlayfs: version 1.10\nFUSE library version 3.14.0\nusing FUSE kernel interface version 7.31\n";
        assert_eq!(
            version_line(fuse, "fuse-overlayfs").as_deref(),
            Some("fuse-overlayfs: version 1.10")
        );
        assert_eq!(
            version_line(fuse, "FUSE library").as_deref(),
            Some("FUSE library version 3.14.0")
        );
        let fs = "nodev\tsysfs\nnodev\ttmpfs\n\text4\n\tbtrfs\nnodev\tfuse\n\terofs\n";
        assert!(kernel_has(fs, "btrfs") && kernel_has(fs, "fuse") && !kernel_has(fs, "xfs"));
        assert!(!kernel_has(fs, "tmp"), "whole names only");
    }
}
