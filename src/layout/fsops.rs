//! File-system work shared by the layouts: applying an image's layers (through
//! `image::apply`, the one place entries become files) and cloning trees the
//! way the drivers do — the legacy driver's hard-linked layer roots and the
//! plain driver's full copies. Directories go first (parents before children),
//! then file work in parallel on every core.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rustix::fs::{self as rfs, AtFlags, FileType, OFlags, ResolveFlags, XattrFlags};
use rustix::io::Errno;

use super::{LayoutConfig, LayoutError};
use crate::image::apply::{apply_layer, ApplyOptions, ApplyStats, DevicePolicy, WhiteoutStyle};
use crate::image::ImageSource;
use crate::isolate::Privilege;

/// How entries become files for this layout's privilege: as root owners and
/// device nodes are kept; rootless, devices are skipped (and counted).
pub fn apply_options(config: &LayoutConfig, style: WhiteoutStyle) -> ApplyOptions {
    let root = config.privilege == Privilege::Root;
    ApplyOptions {
        style,
        devices: if root {
            DevicePolicy::Create
        } else {
            DevicePolicy::SkipAndCount
        },
        owners: root,
    }
}

/// Applies layer `index` of `image` onto `dest` (made if missing).
pub fn apply(
    image: &dyn ImageSource,
    index: usize,
    dest: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyStats, LayoutError> {
    fs::create_dir_all(dest).map_err(LayoutError::io("creating", dest))?;
    Ok(apply_layer(image, index, dest, opts)?)
}

/// The hex part of a digest (`sha256:ab…` → `ab…`), used for directory names.
pub fn digest_hex(digest: &str) -> &str {
    digest.rsplit(':').next().unwrap_or(digest)
}

/// How a clone makes a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileClone {
    /// A hard link to the source (the legacy driver's shared layer roots).
    HardLink,
    /// A full copy of the data (a plain container's private tree); hard links
    /// inside the tree stay hard links.
    Copy,
}

/// A directory of the tree being cloned: its parent (an index into the same
/// table; the root has none) and its name. Memory per directory is its name,
/// whatever its depth: a full path per directory would grow with the square
/// of a deep chain's depth.
struct DirNode {
    parent: Option<usize>,
    name: OsString,
    mtime: (i64, u64),
}

/// One non-directory to make once its directory exists: `name` in the
/// directory `dir` (of both trees).
struct Job {
    dir: usize,
    name: OsString,
    kind: JobKind,
}

enum JobKind {
    File,
    /// A later path of a file already copied: link to that copy (its
    /// directory and name).
    LinkTo(usize, OsString),
}

/// A directory being listed: its entries, read at once, and how far the
/// clone has got. The walk keeps one of these per level it is inside (the
/// entries still to do of every ancestor), never an open fd per level.
struct Level {
    dir: usize,
    names: Vec<OsString>,
    next: usize,
}

/// The path of directory `dir` relative to the tree's root (empty for the root).
fn rel_of(dirs: &[DirNode], mut dir: usize) -> PathBuf {
    let mut names = Vec::new();
    while let Some(parent) = dirs[dir].parent {
        names.push(dirs[dir].name.as_os_str());
        dir = parent;
    }
    names.iter().rev().collect()
}

fn dir_flags() -> OFlags {
    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW
}

/// Opens `rel` (a directory) beneath `root`, never through a symlink. A
/// path longer than one syscall takes (`PATH_MAX`) is opened a segment at a
/// time, each beneath the directory the previous one reached.
fn open_beneath(root: BorrowedFd<'_>, rel: &Path) -> Result<OwnedFd, Errno> {
    const SEGMENT_BYTES: usize = 2048;
    let open = |at: BorrowedFd<'_>, seg: &Path| {
        rfs::openat2(
            at,
            seg,
            dir_flags(),
            rfs::Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
    };
    let mut cur: Option<OwnedFd> = None;
    let mut seg = PathBuf::new();
    for comp in rel.components() {
        if !seg.as_os_str().is_empty()
            && seg.as_os_str().len() + comp.as_os_str().len() + 1 > SEGMENT_BYTES
        {
            let at = cur.as_ref().map_or(root, |f| f.as_fd());
            cur = Some(open(at, &seg)?);
            seg.clear();
        }
        seg.push(comp);
    }
    if seg.as_os_str().is_empty() {
        seg.push(".");
    }
    let at = cur.as_ref().map_or(root, |f| f.as_fd());
    open(at, &seg)
}

fn open_dir_path(path: &Path) -> Result<OwnedFd, LayoutError> {
    rfs::open(path, dir_flags(), rfs::Mode::empty())
        .map_err(|e| LayoutError::io("opening", path)(e.into()))
}

/// The xattrs of `name` in `dir` (not following it), read through
/// `/proc/self/fd`: a symlink or device node cannot be opened for them, and
/// the path through the directory fd stays short at any depth.
fn proc_path(dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name)
}

/// The two trees of a clone and how errors name their paths.
struct Trees<'a> {
    src: &'a Path,
    dst: &'a Path,
    src_root: OwnedFd,
    dst_root: OwnedFd,
    owners: bool,
}

impl Trees<'_> {
    fn err(&self, what: &'static str, dst: bool, rel: &Path) -> impl FnOnce(Errno) -> LayoutError {
        let path = if dst { self.dst } else { self.src }.join(rel);
        move |e| LayoutError::Io {
            what,
            path,
            source: e.into(),
        }
    }

    /// Sets what `st` (the source's metadata) says on `name` in `dst_dir`
    /// (owner, mode, xattrs), not following links; `fd`, when given, is the
    /// destination itself, open.
    #[allow(clippy::too_many_arguments)]
    fn copy_meta(
        &self,
        src_dir: BorrowedFd<'_>,
        dst_dir: BorrowedFd<'_>,
        name: &OsStr,
        st: &rfs::Stat,
        fds: Option<(BorrowedFd<'_>, BorrowedFd<'_>)>,
        rel: &Path,
    ) -> Result<(), LayoutError> {
        let ft = FileType::from_raw_mode(st.st_mode);
        if self.owners {
            rfs::chownat(
                dst_dir,
                name,
                Some(rfs::Uid::from_raw(st.st_uid)),
                Some(rfs::Gid::from_raw(st.st_gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(self.err("chown", true, rel))?;
        }
        if ft != FileType::Symlink {
            let mode = rfs::Mode::from_raw_mode(st.st_mode & 0o7777);
            match fds {
                Some((_, d)) => rfs::fchmod(d, mode),
                None => rfs::chmodat(dst_dir, name, mode, AtFlags::empty()),
            }
            .map_err(self.err("chmod", true, rel))?;
        }
        match fds {
            Some((s, d)) => copy_xattrs(s, d),
            None => {
                let (s, d) = (proc_path(src_dir, name), proc_path(dst_dir, name));
                copy_xattrs_by_path(&s, &d)
            }
        }
        .map_err(self.err("copying xattrs to", true, rel))
    }
}

const XATTR_BUF: usize = 64 * 1024;

/// Names in a `listxattr` buffer.
fn xattr_names(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    list.split(|&b| b == 0).filter(|n| !n.is_empty())
}

fn copy_xattrs(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> Result<(), Errno> {
    let mut list = vec![0u8; XATTR_BUF];
    let n = rfs::flistxattr(src, &mut list)?;
    let mut value = vec![0u8; XATTR_BUF];
    for name in xattr_names(&list[..n]) {
        let name = OsStr::from_bytes(name);
        let len = rfs::fgetxattr(src, name, &mut value)?;
        rfs::fsetxattr(dst, name, &value[..len], XattrFlags::empty())?;
    }
    Ok(())
}

fn copy_xattrs_by_path(src: &Path, dst: &Path) -> Result<(), Errno> {
    let mut list = vec![0u8; XATTR_BUF];
    let n = rfs::llistxattr(src, &mut list)?;
    if n == 0 {
        return Ok(());
    }
    let mut value = vec![0u8; XATTR_BUF];
    for name in xattr_names(&list[..n]) {
        let name = OsStr::from_bytes(name);
        let len = rfs::lgetxattr(src, name, &mut value)?;
        rfs::lsetxattr(dst, name, &value[..len], XattrFlags::empty())?;
    }
    Ok(())
}

/// Clones the tree at `src` to `dst` (which must not exist): directories,
/// symlinks, FIFOs and device nodes made anew with their metadata; regular
/// files hard-linked or copied. Directory mtimes follow at the end.
///
/// The walk is iterative (an image may nest directories as deep as a path
/// allows: a recursion that deep overflows a worker thread's stack) and
/// fd-relative (a deep entry's full path can be longer than `PATH_MAX`).
pub fn clone_tree(
    src: &Path,
    dst: &Path,
    files: FileClone,
    owners: bool,
) -> Result<(), LayoutError> {
    let src_root = open_dir_path(src)?;
    let meta = rfs::fstat(&src_root).map_err(|e| LayoutError::io("reading", src)(e.into()))?;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dst)
        .map_err(LayoutError::io("creating dir", dst))?;
    let dst_root = open_dir_path(dst)?;
    let t = Trees {
        src,
        dst,
        src_root,
        dst_root,
        owners,
    };
    let root_rel = Path::new("");
    t.copy_meta(
        t.src_root.as_fd(),
        t.dst_root.as_fd(),
        OsStr::new("."),
        &meta,
        Some((t.src_root.as_fd(), t.dst_root.as_fd())),
        root_rel,
    )?;
    let mut dirs = vec![DirNode {
        parent: None,
        name: OsString::new(),
        mtime: (meta.st_mtime, meta.st_mtime_nsec),
    }];
    let mut jobs = Vec::new();
    let mut first_path: HashMap<(u64, u64), (usize, OsString)> = HashMap::new();
    // The directory being listed, open in both trees; its ancestors are
    // reopened through `..` when the walk climbs back (one pair of fds open
    // whatever the depth).
    let mut cur_src = rfs::openat(&t.src_root, ".", dir_flags(), rfs::Mode::empty())
        .map_err(t.err("opening", false, root_rel))?;
    let mut cur_dst = rfs::openat(&t.dst_root, ".", dir_flags(), rfs::Mode::empty())
        .map_err(t.err("opening", true, root_rel))?;
    let mut stack = vec![Level {
        dir: 0,
        names: crate::image::apply::list_dir(&cur_src).map_err(t.err(
            "reading dir",
            false,
            root_rel,
        ))?,
        next: 0,
    }];
    while let Some(level) = stack.last_mut() {
        let Some(name) = level.names.get(level.next).cloned() else {
            stack.pop();
            if !stack.is_empty() {
                let up = |fd: &OwnedFd| rfs::openat(fd, "..", dir_flags(), rfs::Mode::empty());
                cur_src = up(&cur_src).map_err(|e| LayoutError::io("opening", src)(e.into()))?;
                cur_dst = up(&cur_dst).map_err(|e| LayoutError::io("opening", dst)(e.into()))?;
            }
            continue;
        };
        level.next += 1;
        let dir = level.dir;
        // Only built when an error names it.
        let rel = || rel_of(&dirs, dir).join(&name);
        let st = rfs::statat(&cur_src, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| t.err("reading", false, &rel())(e))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                rfs::mkdirat(&cur_dst, name.as_os_str(), rfs::Mode::from_raw_mode(0o700))
                    .map_err(|e| t.err("creating dir", true, &rel())(e))?;
                let s = rfs::openat(&cur_src, name.as_os_str(), dir_flags(), rfs::Mode::empty())
                    .map_err(|e| t.err("opening", false, &rel())(e))?;
                let d = rfs::openat(&cur_dst, name.as_os_str(), dir_flags(), rfs::Mode::empty())
                    .map_err(|e| t.err("opening", true, &rel())(e))?;
                t.copy_meta(
                    cur_src.as_fd(),
                    cur_dst.as_fd(),
                    &name,
                    &st,
                    Some((s.as_fd(), d.as_fd())),
                    &rel(),
                )?;
                let names = crate::image::apply::list_dir(&s)
                    .map_err(|e| t.err("reading dir", false, &rel())(e))?;
                dirs.push(DirNode {
                    parent: Some(dir),
                    name,
                    mtime: (st.st_mtime, st.st_mtime_nsec),
                });
                stack.push(Level {
                    dir: dirs.len() - 1,
                    names,
                    next: 0,
                });
                (cur_src, cur_dst) = (s, d);
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(&cur_src, name.as_os_str(), Vec::new())
                    .map_err(|e| t.err("reading link", false, &rel())(e))?;
                rfs::symlinkat(target.as_c_str(), &cur_dst, name.as_os_str())
                    .map_err(|e| t.err("symlinking", true, &rel())(e))?;
                t.copy_meta(cur_src.as_fd(), cur_dst.as_fd(), &name, &st, None, &rel())?;
            }
            FileType::RegularFile => {
                let kind = match (files, st.st_nlink > 1) {
                    (FileClone::Copy, true) => match first_path.get(&(st.st_dev, st.st_ino)) {
                        Some((d, n)) => JobKind::LinkTo(*d, n.clone()),
                        None => {
                            first_path.insert((st.st_dev, st.st_ino), (dir, name.clone()));
                            JobKind::File
                        }
                    },
                    _ => JobKind::File,
                };
                jobs.push(Job { dir, name, kind });
            }
            ft => {
                // FIFOs, sockets and device nodes (whiteouts included) are made anew.
                rfs::mknodat(
                    &cur_dst,
                    name.as_os_str(),
                    ft,
                    rfs::Mode::from_raw_mode(st.st_mode & 0o7777),
                    st.st_rdev,
                )
                .map_err(|e| t.err("making node", true, &rel())(e))?;
                t.copy_meta(cur_src.as_fd(), cur_dst.as_fd(), &name, &st, None, &rel())?;
            }
        }
    }
    drop((cur_src, cur_dst));
    // Copies first, then the links to them (a link needs its copy to exist).
    let (links, files_now): (Vec<Job>, Vec<Job>) = jobs
        .into_iter()
        .partition(|j| matches!(j.kind, JobKind::LinkTo(..)));
    // Each worker keeps the directory pair of its last job open: jobs come
    // in walk order, so neighbours share a directory.
    type Open = Option<(usize, OwnedFd, OwnedFd)>;
    let open = |cache: &mut Open, dir: usize| -> Result<(), LayoutError> {
        if cache.as_ref().is_some_and(|c| c.0 == dir) {
            return Ok(());
        }
        let rel = rel_of(&dirs, dir);
        let s = open_beneath(t.src_root.as_fd(), &rel).map_err(t.err("opening", false, &rel))?;
        let d = open_beneath(t.dst_root.as_fd(), &rel).map_err(t.err("opening", true, &rel))?;
        *cache = Some((dir, s, d));
        Ok(())
    };
    let run = |cache: &mut Open, j: Job| -> Result<(), LayoutError> {
        open(cache, j.dir)?;
        let Some((_, s, d)) = cache.as_ref() else {
            return Ok(());
        };
        let rel = || rel_of(&dirs, j.dir).join(&j.name);
        let name = j.name.as_os_str();
        match j.kind {
            JobKind::LinkTo(first_dir, first) => {
                let rel_first = rel_of(&dirs, first_dir);
                let fd = open_beneath(t.dst_root.as_fd(), &rel_first)
                    .map_err(t.err("opening", true, &rel_first))?;
                rfs::linkat(&fd, first.as_os_str(), d, name, AtFlags::empty())
                    .map_err(|e| t.err("hard-linking", true, &rel())(e))
            }
            JobKind::File => match files {
                FileClone::HardLink => rfs::linkat(s, name, d, name, AtFlags::empty())
                    .map_err(|e| t.err("hard-linking", true, &rel())(e)),
                FileClone::Copy => {
                    let from = rfs::openat(
                        s,
                        name,
                        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                        rfs::Mode::empty(),
                    )
                    .map_err(|e| t.err("opening", false, &rel())(e))?;
                    let st = rfs::fstat(&from).map_err(|e| t.err("reading", false, &rel())(e))?;
                    let to = rfs::openat(
                        d,
                        name,
                        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                        rfs::Mode::from_raw_mode(0o600),
                    )
                    .map_err(|e| t.err("copying to", true, &rel())(e))?;
                    let (mut from, mut to) = (fs::File::from(from), fs::File::from(to));
                    std::io::copy(&mut from, &mut to)
                        .map_err(|e| LayoutError::io("copying to", &t.dst.join(rel()))(e))?;
                    t.copy_meta(
                        s.as_fd(),
                        d.as_fd(),
                        name,
                        &st,
                        Some((from.as_fd(), to.as_fd())),
                        &rel(),
                    )
                }
            },
        }
    };
    files_now.into_par_iter().try_for_each_init(|| None, run)?;
    links.into_par_iter().try_for_each_init(|| None, run)?;
    // Children changed the directories' mtimes: set them last, deepest first.
    for (i, node) in dirs.iter().enumerate().rev() {
        let rel = rel_of(&dirs, i);
        let fd = open_beneath(t.dst_root.as_fd(), &rel).map_err(t.err("opening", true, &rel))?;
        let ts = rfs::Timespec {
            tv_sec: node.mtime.0,
            tv_nsec: node.mtime.1 as _,
        };
        rfs::futimens(
            &fd,
            &rfs::Timestamps {
                last_access: ts,
                last_modification: ts,
            },
        )
        .map_err(t.err("setting times of", true, &rel))?;
    }
    Ok(())
}

/// A chain of `levels` directories `d/d/…` under `root`, with a file `f`
/// and a symlink `s` at the bottom, made fd-relative (its full path may be
/// longer than `PATH_MAX`). For tests of the walks.
#[cfg(test)]
pub(crate) fn deep_chain(root: &Path, levels: usize) -> Result<(), Errno> {
    let mut fd = rfs::open(root, dir_flags(), rfs::Mode::empty())?;
    for _ in 0..levels {
        rfs::mkdirat(&fd, "d", rfs::Mode::from_raw_mode(0o755))?;
        fd = rfs::openat(&fd, "d", dir_flags(), rfs::Mode::empty())?;
    }
    let f = rfs::openat(
        &fd,
        "f",
        OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
        rfs::Mode::from_raw_mode(0o644),
    )?;
    rustix::io::write(&f, b"hi")?;
    rfs::symlinkat("f", &fd, "s")
}

/// Runs `f` on a thread with a 256 KiB stack: a walk that recursed once per
/// level of a deep chain overflows it (and aborts the test binary).
#[cfg(test)]
pub(crate) fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("the walk panicked")
}

/// Removes a tree made by `deep_chain` (std's `remove_dir_all` keeps a
/// directory fd open per level).
#[cfg(test)]
pub(crate) fn remove_deep(root: &Path) {
    let _ = std::process::Command::new("rm")
        .arg("-rf")
        .arg(root)
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2,100 levels: deeper than a recursion fits in a worker's stack, and a
    /// full path (4,200 bytes) past PATH_MAX. It used to overflow the stack.
    #[test]
    fn clones_a_tree_deeper_than_the_stack_and_path_max() {
        let d = tempfile::tempdir().expect("tempdir");
        let src = d.path().join("src");
        std::fs::create_dir(&src).expect("mkdir");
        deep_chain(&src, 2100).expect("deep chain");
        for (k, files) in [FileClone::Copy, FileClone::HardLink]
            .into_iter()
            .enumerate()
        {
            let (s, dst) = (src.clone(), d.path().join(format!("dst{k}")));
            let done = dst.clone();
            on_small_stack(move || clone_tree(&s, &dst, files, false)).expect("clone");
            let a = crate::probe::census::census(&src).expect("census src");
            let b = crate::probe::census::census(&done).expect("census dst");
            assert_eq!((b.dirs, b.files, b.symlinks), (2101, 1, 1), "{files:?}");
            assert_eq!((a.dirs, a.files), (b.dirs, b.files));
            remove_deep(&done);
        }
        remove_deep(&src);
    }
}
