//! Probes of the storage stacks beyond kernel overlay's own options: a rootless
//! overlay (as root of a user namespace, with `userxattr`), fuse-overlayfs
//! (installed, its version, and a real mount), btrfs (the kernel and
//! `mkfs.btrfs`), idmapped mounts (`mount_setattr(MOUNT_ATTR_IDMAP)` on a clone
//! of a tmpfs dir and of the store's filesystem) and EROFS. Each is observed,
//! never inferred from a version; all run inside the private mount namespace on
//! doctor's private tmpfs, or on detached clones that are never attached.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::mount::{open_tree, OpenTreeFlags};

use super::probe::FeatureProbe;
use crate::isolate::{rootless_overlay, run_command, userns_fd, Privilege, RootlessOverlay};

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
/// EROFS.
pub const EROFS: &str = "erofs";

/// How long any one probe child may take.
const CHILD_TIMEOUT: Duration = Duration::from_secs(5);
/// `FUSE_SUPER_MAGIC`.
const FUSE_MAGIC: i64 = 0x6573_5546;
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
        fuse_overlayfs(dir, filesystems),
        btrfs(filesystems),
        idmap_tmpfs(dir),
        erofs(filesystems),
    ]
}

fn rootless(dir: &Path, privilege: Privilege) -> FeatureProbe {
    if privilege == Privilege::Rootless {
        return probe(
            ROOTLESS,
            true,
            "doctor itself runs in a user namespace: its overlay probes above are rootless mounts with userxattr".into(),
        );
    }
    let d = dir.join("rootless");
    let made = (|| -> std::io::Result<RootlessOverlay> {
        let (l1, l2) = (d.join("l1"), d.join("l2"));
        for p in [&l1, &l2, &d.join("u"), &d.join("w"), &d.join("m")] {
            fs::create_dir_all(p)?;
        }
        fs::write(l1.join("gone"), "x")?;
        fs::write(l2.join("kept"), "y")?;
        Ok(RootlessOverlay {
            lowers: vec![l2, l1],
            upper: d.join("u"),
            work: d.join("w"),
            target: d.join("m"),
            create: "new".into(),
            remove: "gone".into(),
        })
    })();
    let plan = match made {
        Ok(p) => p,
        Err(e) => return probe(ROOTLESS, false, format!("preparing the probe dirs: {e}")),
    };
    let started = Instant::now();
    let outcome = rootless_overlay(&plan, CHILD_TIMEOUT);
    // Fork, id maps, mount and the child's writes: what a rootless engine pays
    // per container start beyond the mount itself.
    let took = started.elapsed();
    match outcome {
        Err(e) => probe(
            ROOTLESS,
            false,
            format!("as root of a user namespace (identity map), overlay with userxattr: {e}"),
        ),
        Ok(()) => {
            // The evidence stays in the upper dir after the child's mount died.
            let created = plan.upper.join("new").is_file();
            let whiteout = fs::symlink_metadata(plan.upper.join("gone"))
                .is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0);
            let mut xattrs: Vec<String> = [&plan.upper, &plan.work]
                .iter()
                .flat_map(|p| xattr::list(p).into_iter().flatten())
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| n.starts_with("user.overlay."))
                .collect();
            xattrs.sort();
            xattrs.dedup();
            let mut p = probe(
                ROOTLESS,
                created && whiteout,
                format!(
                    "mounted 2 lowers with userxattr as root of a user namespace (identity map) in {} µs \
                     (fork, id maps, mount, writes): a file created {}, a lower file removed {}; upper/work carry {}",
                    took.as_micros(),
                    if created {
                        "(in the upper)"
                    } else {
                        "(NOT in the upper)"
                    },
                    if whiteout {
                        "(char 0/0 whiteout)"
                    } else {
                        "(NO whiteout)"
                    },
                    if xattrs.is_empty() {
                        "no user.overlay.* xattrs".to_string()
                    } else {
                        xattrs.join(", ")
                    }
                ),
            );
            p.mount_us = Some(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
            p
        }
    }
}

fn fuse_overlayfs(dir: &Path, filesystems: &str) -> FeatureProbe {
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
        match fuse_mount(&dir.join("fuse")) {
            Ok((detail, took)) => {
                let mut p = probe(FUSE_OVERLAYFS, true, detail);
                p.mount_us = Some(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
                p
            }
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

/// Mounts one lower + upper through the daemon, reads a file through it, unmounts.
fn fuse_mount(d: &Path) -> Result<(String, Duration), String> {
    let io = |e: std::io::Error| e.to_string();
    let (l, u, w, m) = (d.join("l"), d.join("u"), d.join("w"), d.join("m"));
    for p in [&l, &u, &w, &m] {
        fs::create_dir_all(p).map_err(io)?;
    }
    fs::write(l.join("f"), "fuse").map_err(io)?;
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        l.display(),
        u.display(),
        w.display()
    );
    let mut cmd = Command::new("fuse-overlayfs");
    cmd.args(["-f", "-o", &opts])
        .arg(&m)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: prctl only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(io)?;
    let mounted = loop {
        if nix::sys::statfs::statfs(&m).is_ok_and(|s| s.filesystem_type().0 == FUSE_MAGIC) {
            break true;
        }
        if started.elapsed() > CHILD_TIMEOUT || child.try_wait().ok().flatten().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = started.elapsed();
    let mount_ms = took.as_secs_f64() * 1e3;
    let read = mounted.then(|| fs::read_to_string(m.join("f")));
    if mounted {
        // Unmounting ends the daemon; detach if it is stuck.
        if nix::mount::umount2(&m, nix::mount::MntFlags::empty()).is_err() {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    match read {
        None => Err(format!(
            "the daemon did not mount within {} s",
            CHILD_TIMEOUT.as_secs()
        )),
        Some(Ok(t)) if t == "fuse" => Ok((
            format!(
                "mounted 1 lower + upper through the daemon in {mount_ms:.1} ms (start to mounted) and read a lower file through it"
            ),
            took,
        )),
        Some(Ok(t)) => Err(format!("a lower file read back as {t:?}")),
        Some(Err(e)) => Err(format!("reading through the mount: {e}")),
    }
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

fn erofs(filesystems: &str) -> FeatureProbe {
    let kernel = kernel_has(filesystems, "erofs");
    let help = tool_output("mkfs.erofs", &["--help"]);
    let tar = help.as_ref().is_ok_and(|h| h.contains("--tar"));
    let detail = match (&help, kernel) {
        (Ok(_), true) => format!(
            "the kernel lists erofs and mkfs.erofs is installed ({}): EROFS layers and composefs images can be built",
            if tar {
                "with --tar: layers straight from tar"
            } else {
                "without --tar: layers must be unpacked to a dir first"
            }
        ),
        (Ok(_), false) => "mkfs.erofs is installed but the kernel has no erofs".to_string(),
        (Err(e), true) => format!("the kernel lists erofs, but {e}"),
        (Err(e), false) => format!("no erofs in the kernel, and {e}"),
    };
    probe(EROFS, kernel && help.is_ok(), detail)
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
