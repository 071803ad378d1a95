//! The scratch filesystem a run works in: made fresh for the run, mounted inside
//! the private namespace under `<scratch dir>/run-<random>/fs`, removed at the end.
//!
//! Invariants: we only ever write below a scratch dir that is empty or carries our
//! marker, belongs to root (or the caller) and that no one else can write, below
//! parents no one else can rename it in (sticky `/var/tmp` is fine); ext4/xfs
//! images are unlinked as soon as their loop device is attached (autoclear), so a
//! SIGKILLed run leaves at most an empty run dir.
//!
//! Run dirs are `run-<64 random bits>`, 0700, and `flock`ed by their run while it
//! lives: two runs in different PID namespaces (two pods, both PID 1) sharing one
//! hostPath scratch never pick the same name, and a run dir is stale — removed by
//! the next run — only when its lock is free (its holder is gone, wherever it ran).
//!
//! Why no other user can make mkfs or the loop device touch anything of theirs
//! choosing (a watcher swapping a new run dir for one whose `backing.img` is a
//! symlink), by construction rather than by timing:
//! - the root is walked from `/` with `O_NOFOLLOW` per component, each step
//!   checked (no other user owns or can write the root, nor rename it away), and
//!   kept open as an fd; the run dir is `mkdirat` + opened from that fd (openat2
//!   `RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS`) and locked;
//! - the image is `O_CREAT|O_EXCL|O_NOFOLLOW` relative to the run dir's fd: it is
//!   a new regular file of ours or the call fails (a planted symlink gives EEXIST);
//! - mkfs is given `/proc/self/fd/N` of that open file (inherited by mkfs alone),
//!   which names the inode, not a path: renaming or replacing the run dir, or
//!   anything in it, after we opened it changes nothing mkfs writes to;
//! - the loop device is attached from the same fd (LOOP_CONFIGURE), and the fs is
//!   mounted on `/proc/self/fd/M` of the `fs` dir we made; after that the run
//!   reaches the fs by the run dir's name, so the name is checked to lead to the
//!   dir we hold (else the run stops).
//!
//! Swapping names around can therefore only make *our* later steps fail (exit
//! non-zero), never redirect a write.

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::statvfs::statvfs;

use super::loopdev::LoopDevice;
use super::mountinfo::MountInfo;
use super::safe_dir::{self, fd_path};
use super::{IsolateError, MountGuard};

const MARKER: &str = ".overlaybench-scratch";

/// The filesystem a run's data lives on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackingKind {
    /// A fresh ext4 on a sparse image + loop device (what `/var/lib/docker` usually is).
    Ext4,
    /// A fresh xfs with reflink, on a loop device.
    Xfs,
    /// A fresh btrfs (btrfs-progs defaults: DUP metadata), on a loop device —
    /// what Docker's btrfs driver needs.
    Btrfs,
    /// A fresh tmpfs.
    Tmpfs,
    /// An existing directory; accounting then includes whatever else lives there.
    Dir(PathBuf),
}

impl FromStr for BackingKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ext4" => Ok(BackingKind::Ext4),
            "xfs" => Ok(BackingKind::Xfs),
            "btrfs" => Ok(BackingKind::Btrfs),
            "tmpfs" => Ok(BackingKind::Tmpfs),
            _ => match s.strip_prefix("dir:") {
                Some(p) if !p.is_empty() => Ok(BackingKind::Dir(PathBuf::from(p))),
                _ => Err(format!(
                    "unknown backing '{s}'; expected one of ext4, xfs, btrfs, tmpfs, dir:PATH"
                )),
            },
        }
    }
}

impl BackingKind {
    /// Whether file data on this backing lives in the page cache itself (tmpfs:
    /// shmem), so page sharing cannot be measured on it.
    pub fn data_is_page_cache(&self) -> bool {
        *self == BackingKind::Tmpfs
    }
}

impl fmt::Display for BackingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackingKind::Ext4 => f.write_str("ext4"),
            BackingKind::Xfs => f.write_str("xfs"),
            BackingKind::Btrfs => f.write_str("btrfs"),
            BackingKind::Tmpfs => f.write_str("tmpfs"),
            BackingKind::Dir(p) => write!(f, "dir:{}", p.display()),
        }
    }
}

/// How caches are made cold between samples.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum EvictionKind {
    /// Unmount and remount the scratch fs (+ BLKFLSBUF): its dentries, inodes and
    /// pages go, nothing else on the host is touched.
    RemountBacking,
    /// `sync; echo 3 > /proc/sys/vm/drop_caches`: host-wide, root only.
    DropCaches,
    /// Only the overlay mount is fresh; the lower fs keeps its caches (tmpfs, or
    /// a directory without `--drop-caches`).
    FreshMountOnly,
}

impl EvictionKind {
    /// The name reports use (as serialised).
    pub fn name(self) -> &'static str {
        match self {
            EvictionKind::RemountBacking => "remount-backing",
            EvictionKind::DropCaches => "drop-caches",
            EvictionKind::FreshMountOnly => "fresh-mount-only",
        }
    }
}

/// What to make.
#[derive(Debug, Clone)]
pub struct ScratchRequest {
    /// Parent dir for run dirs (and loop images); must be empty or ours.
    pub root: PathBuf,
    /// Filesystem to make.
    pub kind: BackingKind,
    /// Bytes the run is planned to write (checked against free space up front).
    pub planned_bytes: u64,
    /// Size of the filesystem to make (ext4/xfs/tmpfs).
    pub fs_size_bytes: u64,
    /// Inode count for ext4 (`mkfs.ext4 -N`) or tmpfs (`nr_inodes=`); `None` = fs default.
    pub inodes: Option<u64>,
}

/// How the backing filesystem was made and what is in force (goes into the report).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackingInfo {
    /// `ext4`, `xfs`, `tmpfs` or `dir:PATH`.
    pub kind: String,
    /// Filesystem type as the kernel names it.
    pub fstype: String,
    /// Loop device used, if any.
    pub device: Option<String>,
    /// Whether the loop device reads its image with direct I/O.
    pub loop_direct_io: Option<bool>,
    /// The command that made the filesystem.
    pub made_with: Option<String>,
    /// Total size of the filesystem.
    pub size_bytes: u64,
    /// Total inodes of the filesystem.
    pub inodes_total: u64,
    /// Mount options in force, read back from mountinfo.
    pub mount_options: String,
    /// Whether statvfs counts only our data (false for `dir:`).
    pub accounting_exact: bool,
    /// What keeps other local users away from the image content (setuid
    /// files, device nodes) on this backing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protection: Option<String>,
}

/// `statvfs` figures of the scratch filesystem.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct FsUsage {
    /// Inodes in use.
    pub used_inodes: u64,
    /// Bytes in use.
    pub used_bytes: u64,
    /// Inodes free.
    pub free_inodes: u64,
    /// Bytes available to unprivileged users.
    pub available_bytes: u64,
    /// Metadata bytes in use on disk, where the filesystem reports them apart
    /// (btrfs: `BTRFS_IOC_SPACE_INFO`, DUP counted twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_bytes: Option<u64>,
}

/// A live scratch filesystem; dropping it unmounts and removes everything.
#[derive(Debug)]
pub struct Scratch {
    request: ScratchRequest,
    run_dir: PathBuf,
    /// The run dir, open and `flock`ed while we live (what makes it not stale).
    run_fd: OwnedFd,
    work: PathBuf,
    /// The `fs` dir we made, which every (re)mount targets by fd.
    work_fd: OwnedFd,
    kind: BackingKind,
    loopdev: Option<LoopDevice>,
    guard: Option<MountGuard>,
    info: BackingInfo,
}

/// Smallest filesystem each mkfs accepts (xfsprogs refuses below 300 MiB).
pub fn min_fs_bytes(kind: &BackingKind) -> u64 {
    match kind {
        BackingKind::Xfs => 300 << 20,
        _ => 64 << 20,
    }
}

/// Run dirs of the live scratch filesystems of this process, for the cleanup a
/// second signal does before the process exits at once.
static LIVE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Detaches every mount of this process's live scratch filesystems and removes
/// their run dirs where that is quick (empty once detached: ext4, xfs, tmpfs);
/// a `dir:` backing's data is left for the next run to remove. For the abort
/// path only: the process exits right after.
pub fn abandon_live_scratches() {
    let dirs = match LIVE.lock() {
        Ok(l) => l.clone(),
        Err(p) => p.into_inner().clone(),
    };
    for run_dir in dirs {
        detach_mounts_under(&run_dir);
        let _ = fs::remove_dir(run_dir.join("fs"));
        let _ = fs::remove_file(run_dir.join(IMAGE));
        let _ = fs::remove_dir(&run_dir);
    }
}

/// The root a request works under: `--scratch` (made if missing), or the
/// directory of a `dir:` backing (which must exist).
fn root_of(req: &ScratchRequest) -> Result<PathBuf, IsolateError> {
    match &req.kind {
        BackingKind::Dir(p) => {
            let canon = fs::canonicalize(p).map_err(|e| {
                IsolateError::BadPath(format!(
                    "--backing dir:{}: {e}; name an existing directory",
                    p.display()
                ))
            })?;
            if !canon.is_dir() {
                return Err(IsolateError::BadPath(format!(
                    "--backing dir:{} is not a directory",
                    p.display()
                )));
            }
            Ok(canon)
        }
        _ => crate::input::canonical_for_creation("--scratch", &req.root)
            .map_err(|e| IsolateError::BadPath(e.to_string())),
    }
}

/// The nearest existing ancestor of `p` (itself if it exists).
fn existing_ancestor(p: &Path) -> PathBuf {
    let mut a = p.to_path_buf();
    while !a.exists() {
        if !a.pop() {
            return PathBuf::from("/");
        }
    }
    a
}

/// Checks, without writing anything, that `req` can be made: its root is a
/// writable directory that is empty or ours (or can be created), and the host
/// has room for the filesystem and what will be written to it.
pub fn preflight(req: &ScratchRequest) -> Result<(), IsolateError> {
    let root = root_of(req)?;
    if root.exists() && !root.is_dir() {
        return Err(IsolateError::BadPath(format!(
            "--scratch {} is not a directory; name a directory (it is made if missing)",
            root.display()
        )));
    }
    if let Some(opened) = safe_dir::open_root(option_of(&req.kind), &root, false)? {
        if !has_marker(opened.as_fd()) && !is_empty(opened.as_fd(), &root)? {
            return Err(IsolateError::ScratchNotOurs { path: root });
        }
    }
    let anc = existing_ancestor(&root);
    if let Err(e) = nix::unistd::access(&anc, nix::unistd::AccessFlags::W_OK) {
        return Err(IsolateError::BadPath(format!(
            "{} cannot be written ({}); name a writable scratch dir",
            anc.display(),
            std::io::Error::from(e)
        )));
    }
    check_space(&anc, &req.kind, req.planned_bytes, req.fs_size_bytes)
}

impl Scratch {
    /// Makes the scratch filesystem (after removing stale runs of ours under `root`).
    pub fn create(req: &ScratchRequest) -> Result<Scratch, IsolateError> {
        let root = root_of(req)?;
        let root_fd = claim_root(option_of(&req.kind), &root)?;
        remove_stale_runs(root_fd.as_fd(), &root);
        check_space(&root, &req.kind, req.planned_bytes, req.fs_size_bytes)?;
        let (name, run_fd) = make_run_dir(root_fd.as_fd(), &root)?;
        let run_dir = root.join(&name);
        if let Ok(mut live) = LIVE.lock() {
            live.push(run_dir.clone());
        }
        let work = run_dir.join("fs");
        // Until `scratch` exists, a failure must remove the run dir itself.
        let work_fd = match safe_dir::make_dir_beneath(run_fd.as_fd(), OsStr::new("fs"), 0o700) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = remove_tree(&run_dir);
                return Err(IsolateError::io("creating", &work)(e));
            }
        };
        let protection = protection_of(&req.kind, &run_dir);
        let mut scratch = Scratch {
            request: req.clone(),
            run_dir,
            run_fd,
            work,
            work_fd,
            kind: req.kind.clone(),
            loopdev: None,
            guard: None,
            info: BackingInfo {
                kind: req.kind.to_string(),
                fstype: String::new(),
                device: None,
                loop_direct_io: None,
                made_with: None,
                size_bytes: 0,
                inodes_total: 0,
                mount_options: String::new(),
                accounting_exact: !matches!(req.kind, BackingKind::Dir(_)),
                protection: Some(protection),
            },
        };
        scratch.make(req)?;
        scratch.refresh_info()?;
        Ok(scratch)
    }

    fn make(&mut self, req: &ScratchRequest) -> Result<(), IsolateError> {
        match &req.kind {
            BackingKind::Dir(_) => self.bind_nosuid_nodev()?,
            BackingKind::Tmpfs => {
                let mut data = format!("size={},mode=0700", req.fs_size_bytes);
                if let Some(n) = req.inodes {
                    data.push_str(&format!(",nr_inodes={n}"));
                }
                self.mount_fs("tmpfs", "tmpfs", &data)?;
                self.info.made_with = Some(format!("mount -t tmpfs -o {data}"));
            }
            BackingKind::Ext4 | BackingKind::Xfs | BackingKind::Btrfs => {
                let image = self.run_dir.join(IMAGE);
                // New and ours, or an error (O_CREAT|O_EXCL|O_NOFOLLOW below our fd).
                let file = safe_dir::create_new_file(self.run_fd.as_fd(), OsStr::new(IMAGE))
                    .map_err(IsolateError::io("creating", &image))?;
                file.set_len(req.fs_size_bytes)
                    .map_err(IsolateError::io("sizing", &image))?;
                // Where the swap race of issue 23 struck: a name swapped from here
                // on changes nothing below, which acts on `file` itself.
                crate::fault::hit("scratch-image-made");
                let (program, args, hint) = if req.kind == BackingKind::Ext4 {
                    let mut args = vec![
                        "-q".to_string(),
                        "-F".into(),
                        "-m".into(),
                        "0".into(),
                        "-E".into(),
                        "lazy_itable_init=0,lazy_journal_init=0,nodiscard".into(),
                        // Always 4 KiB blocks, as on container hosts: below
                        // 512 MiB mke2fs would pick 1 KiB ('small'), and a
                        // small fill would then store small files in a quarter
                        // of what the larger measuring fs charged.
                        "-b".into(),
                        "4096".into(),
                    ];
                    if let Some(n) = req.inodes {
                        args.extend(["-N".into(), n.to_string()]);
                    }
                    ("mkfs.ext4", args, "apt-get install e2fsprogs")
                } else if req.kind == BackingKind::Xfs {
                    let args = vec![
                        "-q".to_string(),
                        "-f".into(),
                        "-K".into(),
                        "-m".into(),
                        "reflink=1".into(),
                    ];
                    ("mkfs.xfs", args, "apt-get install xfsprogs")
                } else {
                    // btrfs has no inode table to size: `inodes` does not apply.
                    let args = vec!["-q".to_string(), "-f".into()];
                    ("mkfs.btrfs", args, "apt-get install btrfs-progs")
                };
                run_mkfs(program, &args, &file, hint)?;
                self.info.made_with = Some(format!("{program} {} <sparse image>", args.join(" ")));
                let dev = LoopDevice::attach_file(&file, &image)?;
                drop(file);
                // The loop holds the file open; unlinking now means no image can outlive us.
                safe_dir::unlink_beneath(self.run_fd.as_fd(), OsStr::new(IMAGE))
                    .map_err(IsolateError::io("removing", &image))?;
                self.info.device = Some(dev.path().display().to_string());
                self.info.loop_direct_io = Some(dev.direct_io());
                let fstype = match req.kind {
                    BackingKind::Ext4 => "ext4",
                    BackingKind::Xfs => "xfs",
                    _ => "btrfs",
                };
                let source = dev.path().to_path_buf();
                self.loopdev = Some(dev);
                self.mount_fs(source.as_os_str(), fstype, "")?;
            }
        }
        Ok(())
    }

    fn mount_fs(
        &mut self,
        source: impl AsRef<OsStr>,
        fstype: &str,
        data: &str,
    ) -> Result<(), IsolateError> {
        let data = (!data.is_empty()).then_some(data);
        // On the `fs` dir we made, by fd: nothing re-resolves the run dir's path.
        // nosuid,nodev: an image's setuid files and device nodes stay inert
        // (overlay whiteouts are char 0/0 inodes: made and recognised, never opened).
        mount(
            Some(source.as_ref()),
            &fd_path(&self.work_fd),
            Some(fstype),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            data,
        )
        .map_err(|e| IsolateError::Mount {
            fstype: fstype.into(),
            target: self.work.clone(),
            source: e.into(),
        })?;
        self.guard = Some(MountGuard::new(self.work.clone()));
        self.check_still_ours()
    }

    /// Everything after the mount reaches the scratch fs by the run dir's name:
    /// that name must still lead to the dir we made and hold open.
    fn check_still_ours(&self) -> Result<(), IsolateError> {
        match safe_dir::same_dir(self.run_fd.as_fd(), &self.run_dir) {
            Ok(true) => Ok(()),
            Ok(false) => Err(IsolateError::Replaced {
                path: self.run_dir.clone(),
            }),
            Err(e) => Err(IsolateError::io("checking", &self.run_dir)(e)),
        }
    }

    /// A `dir:` backing is bind-mounted onto itself `nosuid,nodev` inside our
    /// private namespace: what the image holds cannot act there either.
    fn bind_nosuid_nodev(&mut self) -> Result<(), IsolateError> {
        let at = fd_path(&self.work_fd);
        let err = |e: nix::Error| IsolateError::Mount {
            fstype: "bind".into(),
            target: self.work.clone(),
            source: e.into(),
        };
        mount(Some(&at), &at, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(err)?;
        self.guard = Some(MountGuard::new(self.work.clone()));
        mount(
            None::<&str>,
            &self.work,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            None::<&str>,
        )
        .map_err(err)?;
        self.check_still_ours()
    }

    fn refresh_info(&mut self) -> Result<(), IsolateError> {
        let info =
            MountInfo::current().map_err(IsolateError::io("reading", "/proc/self/mountinfo"))?;
        if self.guard.is_some() || matches!(self.kind, BackingKind::Dir(_)) {
            if let Some(e) = info.at(&self.work) {
                self.info.fstype = e.fstype.clone();
                self.info.mount_options = format!("{},{}", e.mount_options, e.super_options);
            }
        } else {
            // dir: the fs the directory lives on.
            let best = info
                .entries
                .iter()
                .filter(|e| self.work.starts_with(&e.mount_point))
                .max_by_key(|e| e.mount_point.as_os_str().len());
            if let Some(e) = best {
                self.info.fstype = e.fstype.clone();
                self.info.mount_options = format!("{},{}", e.mount_options, e.super_options);
            }
        }
        let st =
            statvfs(&self.work).map_err(|e| IsolateError::io("statvfs", &self.work)(e.into()))?;
        self.info.size_bytes = st.blocks() as u64 * st.fragment_size() as u64;
        self.info.inodes_total = st.files() as u64;
        Ok(())
    }

    /// The directory all work goes under.
    pub fn path(&self) -> &Path {
        &self.work
    }

    /// What this scratch fs was made from (to make a fresh sibling).
    pub fn request(&self) -> &ScratchRequest {
        &self.request
    }

    /// Which backing this is.
    pub fn kind(&self) -> &BackingKind {
        &self.kind
    }

    /// How the backing was made, for the report.
    pub fn info(&self) -> &BackingInfo {
        &self.info
    }

    /// Used/free inodes and bytes of the scratch filesystem.
    pub fn usage(&self) -> Result<FsUsage, IsolateError> {
        let st =
            statvfs(&self.work).map_err(|e| IsolateError::io("statvfs", &self.work)(e.into()))?;
        let frsize = st.fragment_size() as u64;
        let mut usage = FsUsage {
            used_inodes: (st.files() - st.files_free()) as u64,
            used_bytes: (st.blocks() - st.blocks_free()) as u64 * frsize,
            free_inodes: st.files_free() as u64,
            available_bytes: st.blocks_available() as u64 * frsize,
            metadata_bytes: None,
        };
        if self.info.fstype == "btrfs" {
            // statvfs bytes follow chunk allocation there: take what btrfs says is used.
            let b = super::btrfs::usage(&self.work)?;
            usage.used_bytes = b.used_bytes();
            usage.metadata_bytes = Some(b.metadata_bytes);
        }
        Ok(usage)
    }

    /// The strongest cache eviction this backing allows without touching the host.
    pub fn eviction(&self, drop_caches_allowed: bool) -> EvictionKind {
        match self.kind {
            BackingKind::Ext4 | BackingKind::Xfs | BackingKind::Btrfs => {
                EvictionKind::RemountBacking
            }
            BackingKind::Dir(_) if drop_caches_allowed => EvictionKind::DropCaches,
            _ => EvictionKind::FreshMountOnly,
        }
    }

    /// Evicts the scratch fs's dentries, inodes and pages by unmounting and
    /// remounting it. Every mount on top of it must be gone first.
    pub fn remount(&mut self) -> Result<(), IsolateError> {
        let (Some(guard), Some(dev)) = (self.guard.take(), self.loopdev.as_ref()) else {
            return Ok(());
        };
        guard.unmount()?;
        dev.flush_buffers().map_err(|source| IsolateError::Loop {
            image: dev.path().to_path_buf(),
            what: "flushing buffers",
            source,
        })?;
        let source = dev.path().to_path_buf();
        let fstype = self.info.fstype.clone();
        self.mount_fs(source.as_os_str(), &fstype, "")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        detach_mounts_under(&self.run_dir);
        if let Some(g) = self.guard.take() {
            drop(g);
        }
        self.loopdev.take();
        let _ = remove_tree(&self.run_dir);
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|d| d != &self.run_dir);
        }
    }
}

/// Lazily unmounts every mount below `dir`, deepest first.
fn detach_mounts_under(dir: &Path) {
    let Ok(info) = MountInfo::current() else {
        return;
    };
    let mut points: Vec<PathBuf> = info.under(dir).map(|e| e.mount_point.clone()).collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let _ = umount2(&p, MntFlags::MNT_DETACH);
    }
}

/// Removes a tree of ours, never crossing into another filesystem.
fn remove_tree(dir: &Path) -> Result<(), IsolateError> {
    detach_mounts_under(dir);
    fs::remove_dir_all(dir).map_err(IsolateError::io("removing", dir))
}

/// The image file's name in a run dir (unlinked once its loop is attached).
const IMAGE: &str = "backing.img";

/// The flag a request's root came from, for messages.
fn option_of(kind: &BackingKind) -> &'static str {
    match kind {
        BackingKind::Dir(_) => "--backing dir:",
        _ => "--scratch",
    }
}

/// What keeps other users from the image content, for the report.
fn protection_of(kind: &BackingKind, run_dir: &Path) -> String {
    let uid = nix::unistd::geteuid();
    let mounted = match kind {
        BackingKind::Dir(_) => {
            "the directory is bind-mounted nosuid,nodev inside the run's private mount namespace"
        }
        _ => "the filesystem is mounted nosuid,nodev inside the run's private mount namespace",
    };
    format!(
        "run dir {} is mode 0700, owned by uid {uid} and locked while the run lives, in a scratch root \
         no other user can write; {mounted}",
        run_dir.display()
    )
}

fn has_marker(root: BorrowedFd<'_>) -> bool {
    safe_dir::is_regular_file(root, OsStr::new(MARKER))
}

fn is_empty(dir: BorrowedFd<'_>, path: &Path) -> Result<bool, IsolateError> {
    Ok(safe_dir::names_in(dir)
        .map_err(IsolateError::io("reading scratch dir", path))?
        .is_empty())
}

/// Opens (making it 0700 if missing) and checks the scratch root, and marks it
/// ours when it is empty; returns its fd.
fn claim_root(option: &str, root: &Path) -> Result<OwnedFd, IsolateError> {
    if root.exists() && !root.is_dir() {
        return Err(IsolateError::BadPath(format!(
            "{option} {} is not a directory; name a directory (it is made if missing)",
            root.display()
        )));
    }
    let fd = safe_dir::open_root(option, root, true)?.ok_or_else(|| {
        IsolateError::BadPath(format!(
            "{option} {}: vanished while being made",
            root.display()
        ))
    })?;
    if has_marker(fd.as_fd()) {
        return Ok(fd);
    }
    if !is_empty(fd.as_fd(), root)? {
        return Err(IsolateError::ScratchNotOurs {
            path: root.to_path_buf(),
        });
    }
    let mut marker = match safe_dir::create_new_file(fd.as_fd(), OsStr::new(MARKER)) {
        Ok(f) => f,
        // Another run marked it meanwhile.
        Err(e) if e.raw_os_error() == Some(Errno::EEXIST as i32) => return Ok(fd),
        Err(e) => return Err(IsolateError::io("writing marker in", root)(e)),
    };
    std::io::Write::write_all(
        &mut marker,
        b"made by overlaybench; run-* dirs below are removed once no run holds their lock\n",
    )
    .map_err(IsolateError::io("writing marker in", root))?;
    Ok(fd)
}

/// Makes a fresh run dir `run-<random>` (0700) below the root's fd and locks
/// it; returns its name and fd (the lock lives as long as the fd).
fn make_run_dir(root: BorrowedFd<'_>, root_path: &Path) -> Result<(String, OwnedFd), IsolateError> {
    for _ in 0..16 {
        let name = format!("run-{:016x}", rand::random::<u64>());
        let fd = match safe_dir::make_dir_beneath(root, OsStr::new(&name), 0o700) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(Errno::EEXIST as i32) => continue,
            Err(e) => return Err(IsolateError::io("creating", root_path.join(&name))(e)),
        };
        // Between mkdir and flock another run's stale sweep may take the free lock
        // and remove the dir: then our lock is on a dead inode, so try a new name.
        let locked =
            safe_dir::try_lock(&fd).map_err(IsolateError::io("locking", root_path.join(&name)))?;
        let linked = safe_dir::still_linked(&fd)
            .map_err(IsolateError::io("checking", root_path.join(&name)))?;
        if locked && linked {
            return Ok((name, fd));
        }
    }
    Err(IsolateError::io("creating a run dir in", root_path)(
        std::io::Error::from(Errno::EEXIST),
    ))
}

/// Removes the run dirs no live run holds the lock of (a SIGKILLed run's
/// leftovers), whichever PID namespace it ran in. A run dir named the old way
/// (`run-<pid>-<n>`, made before runs locked theirs) also needs its pid gone.
fn remove_stale_runs(root: BorrowedFd<'_>, root_path: &Path) {
    for name in safe_dir::names_in(root).unwrap_or_default() {
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("run-")) else {
            continue;
        };
        // Only a real directory of ours (a symlink there is refused, not followed).
        let Ok(fd) = safe_dir::open_dir_beneath(root, &name) else {
            continue;
        };
        if !safe_dir::try_lock(&fd).unwrap_or(false) {
            continue;
        }
        let legacy_pid = rest
            .split_once('-')
            .filter(|(_, n)| n.parse::<u64>().is_ok())
            .and_then(|(p, _)| p.parse::<i32>().ok());
        if let Some(pid) = legacy_pid {
            let gone = matches!(
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
                Err(nix::errno::Errno::ESRCH)
            );
            if pid == std::process::id() as i32 || !gone {
                continue;
            }
        }
        // Removed while we hold its lock: no run can be starting in it.
        let _ = remove_tree(&root_path.join(&name));
    }
}

/// What the host has for a backing of `kind` under `root`: free bytes of the
/// filesystem holding `root` (MemAvailable for tmpfs).
pub fn host_available_bytes(root: &Path, kind: &BackingKind) -> Result<u64, IsolateError> {
    if *kind == BackingKind::Tmpfs {
        return Ok(mem_available_bytes().unwrap_or(u64::MAX));
    }
    let at = existing_ancestor(root);
    let st = statvfs(&at).map_err(|e| IsolateError::io("statvfs", &at)(e.into()))?;
    Ok(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// The planned writes must fit the host; so must a loop image's full size (a
/// sparse image larger than the free space would hit the host's ENOSPC from
/// inside the loop device, as I/O errors).
fn check_space(
    root: &Path,
    kind: &BackingKind,
    needed_bytes: u64,
    fs_size_bytes: u64,
) -> Result<(), IsolateError> {
    let available_bytes = host_available_bytes(root, kind)?;
    let needed_bytes = match kind {
        BackingKind::Ext4 | BackingKind::Xfs => needed_bytes.max(fs_size_bytes),
        _ => needed_bytes,
    };
    if needed_bytes > available_bytes {
        return Err(IsolateError::NoSpace {
            path: existing_ancestor(root),
            needed_bytes,
            available_bytes,
        });
    }
    Ok(())
}

fn mem_available_bytes() -> Option<u64> {
    crate::probe::memory::Memory::current().and_then(|m| m.available_bytes)
}

/// mkfs writes its inode tables eagerly (lazy_itable_init=0): generous, but bounded.
const MKFS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(900);

/// Runs mkfs on the open file `image`, named to it as `/proc/self/fd/N`: the
/// inode we created, whatever its name points to by now.
fn run_mkfs(
    program: &str,
    args: &[String],
    image: &fs::File,
    hint: &str,
) -> Result<(), IsolateError> {
    let fd = image.as_raw_fd();
    let mut cmd = Command::new(program);
    cmd.args(args).arg(fd_path(image));
    // SAFETY: fcntl is async-signal-safe; it clears close-on-exec on the image
    // fd in the child only, so mkfs alone inherits it.
    unsafe {
        cmd.pre_exec(move || {
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
            )?;
            Ok(())
        });
    }
    let out = super::run_command(&mut cmd, MKFS_TIMEOUT, hint)?;
    if !out.status.success() {
        return Err(IsolateError::Command {
            command: format!("{program} {}", args.join(" ")),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_backings() {
        assert_eq!("ext4".parse::<BackingKind>(), Ok(BackingKind::Ext4));
        assert_eq!("btrfs".parse::<BackingKind>(), Ok(BackingKind::Btrfs));
        assert_eq!(
            "dir:/x".parse::<BackingKind>(),
            Ok(BackingKind::Dir("/x".into()))
        );
        let err = "zfs".parse::<BackingKind>().unwrap_err();
        assert!(
            err.contains("zfs") && err.contains("ext4, xfs, btrfs, tmpfs, dir:PATH"),
            "{err}"
        );
        assert!("dir:".parse::<BackingKind>().is_err());
    }

    #[test]
    fn refuses_a_foreign_non_empty_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("precious"), "x").expect("write");
        let canon = |p: &Path| fs::canonicalize(p).expect("canon");
        assert!(matches!(
            claim_root("--scratch", &canon(dir.path())),
            Err(IsolateError::ScratchNotOurs { .. })
        ));
        assert!(dir.path().join("precious").exists());
        let empty = tempfile::tempdir().expect("tempdir");
        claim_root("--scratch", &canon(empty.path())).expect("empty dir is claimed");
        claim_root("--scratch", &canon(empty.path())).expect("our dir is ours again");
    }
}
