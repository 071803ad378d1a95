//! EROFS images: mounting one read-only, and knowing whether this kernel can.
//!
//! A file-backed mount (kernel >= 6.12 with `EROFS_FS_BACKED_BY_FILE`) reads the
//! image through the backing filesystem, no loop device. It needs a backing
//! filesystem that can serve page reads (`read_folio`): ext4, xfs and btrfs can,
//! tmpfs cannot and answers ENOTBLK — there a read-only loop device (autoclear)
//! carries the image instead, as containerd's EROFS snapshotter does. Which one
//! was used is reported, never hidden. `mount(8)` is not used: it makes a loop
//! device silently.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::MsFlags;

use super::{IsolateError, LoopDevice, MountGuard};

/// What carries a mounted EROFS image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErofsBacking {
    /// The image file itself (file-backed mount).
    File,
    /// A read-only loop device over the image (the backing cannot serve a
    /// file-backed mount).
    Loop {
        /// The device, e.g. `/dev/loop4` (detached by the kernel at unmount).
        device: PathBuf,
    },
}

impl ErofsBacking {
    /// How reports spell it.
    pub fn name(&self) -> &'static str {
        match self {
            ErofsBacking::File => "file-backed",
            ErofsBacking::Loop { .. } => "loop device",
        }
    }
}

/// A mounted EROFS image.
#[derive(Debug)]
pub struct MountedErofs {
    /// Unmounts on drop.
    pub guard: MountGuard,
    /// File-backed or through a loop device.
    pub backing: ErofsBacking,
    /// Wall time of the mount syscalls (and the loop set-up, when one was needed).
    pub elapsed: Duration,
}

/// Mounts the EROFS image `image` read-only at `target`: file-backed, or on a
/// read-only loop device where the backing filesystem cannot serve that.
pub fn mount_erofs(image: &Path, target: &Path) -> Result<MountedErofs, IsolateError> {
    let start = Instant::now();
    let mount = |source: &Path| {
        nix::mount::mount(
            Some(source),
            target,
            Some("erofs"),
            // A layer's setuid files and device nodes stay inert.
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            None::<&str>,
        )
    };
    let err = |e: Errno| {
        let mut source = std::io::Error::from(e);
        if e == Errno::EINVAL {
            source = std::io::Error::new(
                source.kind(),
                format!(
                    "{source} (not an EROFS image {}? dmesg says why)",
                    image.display()
                ),
            );
        }
        IsolateError::Mount {
            fstype: "erofs".into(),
            target: target.to_path_buf(),
            source,
        }
    };
    let backing = match mount(image) {
        Ok(()) => ErofsBacking::File,
        Err(Errno::ENOTBLK) => {
            // The loop device lives as long as the mount on it (autoclear): our
            // handle is dropped as soon as the mount holds it.
            let dev = LoopDevice::attach_read_only(image)?;
            mount(dev.path()).map_err(err)?;
            ErofsBacking::Loop {
                device: dev.path().to_path_buf(),
            }
        }
        Err(e) => return Err(err(e)),
    };
    Ok(MountedErofs {
        guard: MountGuard::new(target.to_path_buf()),
        backing,
        elapsed: start.elapsed(),
    })
}

/// Whether this kernel has EROFS: `fsopen("erofs")` is asked (it loads the
/// module if there is one). Nothing is mounted. `Err` says why not.
pub fn erofs_available() -> Result<(), String> {
    super::newmount::fs_type_opens("erofs")
}

/// The `mkfs.erofs` options containerd's EROFS differ and snapshotter use: file
/// data in whole blocks (no tail packed into the inode), no compression.
pub const MKFS_EROFS_ARGS: &[&str] = &["--quiet", "-Enoinline_data"];

fn run_tool(program: &str, args: &[&std::ffi::OsStr]) -> Result<Duration, IsolateError> {
    let start = Instant::now();
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                IsolateError::Unsupported(format!(
                    "{program} is not installed; install erofs-utils (apt-get install erofs-utils)"
                ))
            } else {
                IsolateError::Command {
                    command: program.into(),
                    detail: e.to_string(),
                }
            }
        })?;
    let elapsed = start.elapsed();
    if !out.status.success() {
        let shown: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
        let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if detail.is_empty() {
            detail = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        return Err(IsolateError::Command {
            command: format!("{program} {}", shown.join(" ")),
            detail: format!("{} ({detail})", out.status),
        });
    }
    Ok(elapsed)
}

/// Builds the EROFS image `image` from the directory `dir` with `mkfs.erofs`
/// (`MKFS_EROFS_ARGS`, plus `extra`); returns how long the tool ran.
pub fn mkfs_erofs(image: &Path, dir: &Path, extra: &[&str]) -> Result<Duration, IsolateError> {
    let mut args: Vec<&std::ffi::OsStr> = MKFS_EROFS_ARGS
        .iter()
        .chain(extra)
        .map(std::ffi::OsStr::new)
        .collect();
    args.push(image.as_os_str());
    args.push(dir.as_os_str());
    run_tool("mkfs.erofs", &args)
}

/// Checks the EROFS image `image` with `fsck.erofs` (superblock, inodes,
/// directories and every file's data).
pub fn fsck_erofs(image: &Path) -> Result<(), IsolateError> {
    run_tool(
        "fsck.erofs",
        &[std::ffi::OsStr::new("--extract"), image.as_os_str()],
    )
    .map(drop)
}

/// What this host's `mkfs.erofs` can take as input: `Ok(true)` when it reads a
/// layer tar itself (`--tar`, erofs-utils >= 1.6, what containerd's differ
/// uses), `Ok(false)` when it builds from a directory only; `Err` when the tool
/// is missing. Found from its `--help`, as containerd does.
pub fn mkfs_erofs_takes_tar() -> Result<bool, String> {
    let out = std::process::Command::new("mkfs.erofs")
        .arg("--help")
        .output()
        .map_err(|e| format!("mkfs.erofs cannot be run ({e}); install erofs-utils"))?;
    let text = [out.stdout, out.stderr].concat();
    Ok(String::from_utf8_lossy(&text).contains("--tar"))
}

/// How EROFS images on the filesystem holding `dir` get mounted here: a tiny
/// image is built in `dir` (made, then removed), mounted and unmounted.
pub fn probe_erofs_backing(dir: &Path) -> Result<ErofsBacking, IsolateError> {
    let io = |what, p: &Path| IsolateError::io(what, p.to_path_buf());
    let (src, image, mnt) = (dir.join("src"), dir.join("probe.erofs"), dir.join("mnt"));
    for d in [&src, &mnt] {
        std::fs::create_dir_all(d).map_err(io("creating", d))?;
    }
    std::fs::write(src.join("f"), b"probe").map_err(io("writing", &src))?;
    let result = mkfs_erofs(&image, &src, &[]).and_then(|_| {
        let m = mount_erofs(&image, &mnt)?;
        m.guard.unmount()?;
        Ok(m.backing)
    });
    std::fs::remove_dir_all(dir).map_err(io("removing", dir))?;
    result
}
