//! Writing one layer's entries into a directory, as engines do: either as an
//! overlay diff dir (whiteouts as char 0/0, opaque dirs by xattr) or onto an
//! existing tree (a whiteout deletes, an opaque dir loses what lower layers
//! put in it).
//!
//! Safety: every file is made with `*at` calls relative to a parent directory
//! opened beneath `dest` with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`,
//! so no entry — whatever symlinks earlier entries or lower layers made — is
//! written outside `dest`; a path that goes through a symlink is refused as
//! hostile input. Image xattrs in the overlay namespaces are dropped (an image
//! must not forge overlay's own markers) and counted.
//!
//! Speed: a layer is one sequential stream; the parent directory fd is
//! cached between entries (tars list a directory's files together), file data
//! is copied through one reusable 1 MiB buffer, and directory mtimes are set
//! once at the end (creating children changes them). Callers parallelise
//! across layers.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags,
};
use rustix::io::Errno;

use super::{Entry, EntryKind, EntrySink, ImageError, ImageSource, Stop};
use crate::error::ErrorClass;

/// How whiteouts and opaque directories are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutStyle {
    /// overlay2/containerd diff dirs: whiteouts as char 0/0, opaque dirs by
    /// the xattr `<prefix>opaque=y` (prefix `"trusted.overlay."` as root,
    /// `"user.overlay."` rootless). `dest` starts empty.
    OverlayDiff {
        /// `"trusted.overlay."` or `"user.overlay."`.
        xattr_prefix: &'static str,
    },
    /// Flattening onto an existing tree (plain copy, legacy overlay roots,
    /// btrfs snapshots): a whiteout deletes the path, an opaque dir loses its
    /// contents. Files are always replaced (unlink + create), never written
    /// through: the tree may share inodes by hard link with another tree.
    InPlace,
}

/// What to do with device nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevicePolicy {
    /// `mknod` them (needs root in the initial user namespace).
    Create,
    /// Skip them and count them (rootless).
    SkipAndCount,
}

/// How to apply a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Whiteout and opaque form.
    pub style: WhiteoutStyle,
    /// Device nodes.
    pub devices: DevicePolicy,
    /// Set uid/gid as stored in the layer (else files belong to the caller).
    pub owners: bool,
}

/// What one `apply_layer` wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ApplyStats {
    /// Entries received from the source.
    pub entries: u64,
    /// Regular files created.
    pub files: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Whiteouts written (OverlayDiff) or applied (InPlace).
    pub whiteouts: u64,
    /// Opaque directories marked (OverlayDiff) or emptied (InPlace).
    pub opaques: u64,
    /// Device nodes created.
    pub devices: u64,
    /// Device nodes skipped by `DevicePolicy::SkipAndCount`.
    pub devices_skipped: u64,
    /// FIFOs created.
    pub fifos: u64,
    /// Image xattrs set.
    pub xattrs: u64,
    /// Image xattrs in the overlay namespaces, dropped.
    pub xattrs_dropped: u64,
    /// `user.*` xattrs on symlinks and device nodes, which Linux refuses there.
    pub xattrs_refused: u64,
    /// File content written, bytes.
    pub bytes: u64,
    /// Directories the layer needed but did not list (made 0755, owned by the
    /// applier). In an overlay diff they shadow the lower layers' metadata of
    /// the same directory: give them that metadata with
    /// `inherit_implicit_dirs` once the lower diffs are written.
    #[serde(skip)]
    pub implicit_dirs: Vec<PathBuf>,
}

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The source failed (bad, hostile or unreadable layer).
    #[error(transparent)]
    Source(ImageError),
    /// An entry would be written through a symlink or over something that
    /// is not a directory.
    #[error("layer {layer}: refusing entry {entry:?}: {reason}")]
    Hostile {
        layer: String,
        entry: String,
        reason: String,
    },
    /// The scratch filesystem is full.
    #[error("writing {}: the image does not fit the scratch filesystem ({source}); give it more space (a larger --fs-size or another --backing)", path.display())]
    NoSpace {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Any other write failure.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ApplyError {
    /// Exit-code class: hostile input and a full scratch fs are `Usage` (the
    /// image or the size given is wrong); a refused permission `Unsupported`.
    pub fn class(&self) -> ErrorClass {
        match self {
            ApplyError::Source(e) => e.class(),
            ApplyError::Hostile { .. } | ApplyError::NoSpace { .. } => ErrorClass::Usage,
            ApplyError::Io { source, .. } => match source.raw_os_error() {
                Some(e) if e == Errno::PERM.raw_os_error() || e == Errno::ACCESS.raw_os_error() => {
                    ErrorClass::Unsupported
                }
                _ => ErrorClass::Runtime,
            },
        }
    }
}

/// Applies layer `index` of `src` to `dest` (which must exist). On error,
/// what was written is incomplete and must be discarded by the caller (a
/// layer's digest is only known to be right at the end of its stream).
pub fn apply_layer(
    src: &dyn ImageSource,
    index: usize,
    dest: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyStats, ApplyError> {
    let layer = src
        .info()
        .layers
        .get(index)
        .map(|l| l.digest.clone())
        .unwrap_or_else(|| format!("#{index}"));
    let root = rfs::open(
        dest,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ApplyError::Io {
        op: "opening the layer destination",
        path: dest.to_path_buf(),
        source: e.into(),
    })?;
    let mut a = Applier {
        root,
        dest: dest.to_path_buf(),
        layer,
        opts: *opts,
        stats: ApplyStats::default(),
        written: HashSet::new(),
        whiteouts_here: HashSet::new(),
        implicit: std::collections::BTreeSet::new(),
        dir_times: Vec::new(),
        cache: None,
        buf: vec![0u8; COPY_BUFFER_BYTES],
        failed: None,
    };
    let visited = src.visit_layer(index, &mut a);
    match (visited, a.failed.take()) {
        (Ok(()), _) => {}
        (Err(ImageError::Stopped), Some(e)) => return Err(e),
        (Err(e), _) => return Err(ApplyError::Source(e)),
    }
    a.finish_dir_times()?;
    a.stats.implicit_dirs = std::mem::take(&mut a.implicit).into_iter().collect();
    Ok(a.stats)
}

/// File data is copied through one buffer this large.
const COPY_BUFFER_BYTES: usize = 1 << 20;

struct Applier {
    root: OwnedFd,
    dest: PathBuf,
    layer: String,
    opts: ApplyOptions,
    stats: ApplyStats,
    /// InPlace: paths this layer wrote (a whiteout or opaque marker hides only
    /// what lower layers put there, per the OCI spec).
    written: HashSet<PathBuf>,
    /// OverlayDiff: whiteouts this layer wrote (a directory entry that
    /// replaces one must be opaque, or lower content would show through it).
    whiteouts_here: HashSet<PathBuf>,
    /// Directories made because an entry needed them, not listed (yet).
    implicit: std::collections::BTreeSet<PathBuf>,
    /// Directories whose mtime is set at the end, after their children.
    dir_times: Vec<(PathBuf, i64)>,
    /// The last parent directory opened, by relative path.
    cache: Option<(PathBuf, OwnedFd)>,
    buf: Vec<u8>,
    failed: Option<ApplyError>,
}

fn ts(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn is_overlay_xattr(name: &OsStr) -> bool {
    let b = name.as_bytes();
    b.starts_with(b"trusted.overlay.") || b.starts_with(b"user.overlay.")
}

impl EntrySink for Applier {
    fn entry(&mut self, entry: &Entry, content: &mut dyn Read) -> Result<(), Stop> {
        self.stats.entries += 1;
        match self.apply(entry, content) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.failed = Some(e);
                Err(Stop)
            }
        }
    }
}

impl Applier {
    fn hostile(&self, entry: &Path, reason: impl Into<String>) -> ApplyError {
        ApplyError::Hostile {
            layer: self.layer.clone(),
            entry: entry.display().to_string(),
            reason: reason.into(),
        }
    }

    fn io(&self, op: &'static str, rel: &Path, e: Errno) -> ApplyError {
        let path = self.dest.join(rel);
        let source: std::io::Error = e.into();
        if e == Errno::NOSPC || e == Errno::DQUOT {
            ApplyError::NoSpace { path, source }
        } else {
            ApplyError::Io { op, path, source }
        }
    }

    /// Opens directory `rel` beneath the root without following any symlink;
    /// with `create`, missing components are made (0755, as Docker does).
    fn open_dir(&mut self, rel: &Path, entry: &Path, create: bool) -> Result<OwnedFd, ApplyError> {
        if let Some((p, fd)) = &self.cache {
            if p == rel {
                return fd.try_clone().map_err(|e| {
                    self.io(
                        "opening",
                        rel,
                        Errno::from_io_error(&e).unwrap_or(Errno::IO),
                    )
                });
            }
        }
        let fd = match self.open_beneath(rel) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create => self.make_parents(rel, entry)?,
            Err(e) => return Err(self.resolve_error(rel, entry, e)),
        };
        let keep = fd.try_clone().ok();
        if let Some(k) = keep {
            self.cache = Some((rel.to_path_buf(), k));
        }
        Ok(fd)
    }

    fn open_beneath(&self, rel: &Path) -> Result<OwnedFd, Errno> {
        let path: &Path = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        rfs::openat2(
            &self.root,
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
            ResolveFlags::BENEATH
                | ResolveFlags::NO_SYMLINKS
                | ResolveFlags::NO_MAGICLINKS
                | ResolveFlags::NO_XDEV,
        )
    }

    fn resolve_error(&self, rel: &Path, entry: &Path, e: Errno) -> ApplyError {
        match e {
            Errno::LOOP | Errno::NOTDIR => {
                // Name the first component that is not a directory (checked in
                // order, so no symlink is followed to find it).
                let mut acc = PathBuf::new();
                for comp in rel.components() {
                    acc.push(comp);
                    match rfs::statat(&self.root, &acc, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                            return self.hostile(
                                entry,
                                format!(
                                    "its parent {:?} is a symlink; writing through it could leave the tree",
                                    acc.display().to_string()
                                ),
                            )
                        }
                        Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => break,
                        _ => {}
                    }
                }
                self.hostile(
                    entry,
                    format!(
                        "a component of its parent {:?} ({}) is not a directory",
                        rel.display().to_string(),
                        acc.display()
                    ),
                )
            }
            Errno::XDEV => self.hostile(entry, "its parent crosses a mount point"),
            e => self.io("opening", rel, e),
        }
    }

    fn make_parents(&mut self, rel: &Path, entry: &Path) -> Result<OwnedFd, ApplyError> {
        let mut fd = self.root.try_clone().map_err(|e| {
            self.io(
                "opening",
                Path::new(""),
                Errno::from_io_error(&e).unwrap_or(Errno::IO),
            )
        })?;
        let mut acc = PathBuf::new();
        for comp in rel.components() {
            acc.push(comp);
            let name = comp.as_os_str();
            let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
            fd = match rfs::openat(&fd, name, flags, Mode::empty()) {
                Ok(next) => next,
                Err(Errno::NOENT) => {
                    rfs::mkdirat(&fd, name, Mode::from_raw_mode(0o755))
                        .map_err(|e| self.io("creating dir", &acc, e))?;
                    let next = rfs::openat(&fd, name, flags, Mode::empty())
                        .map_err(|e| self.io("opening", &acc, e))?;
                    // Exactly 0755, whatever the umask.
                    rfs::fchmod(&next, Mode::from_raw_mode(0o755))
                        .map_err(|e| self.io("chmod", &acc, e))?;
                    if self.opts.style == WhiteoutStyle::InPlace {
                        self.written.insert(acc.clone());
                    }
                    self.implicit.insert(acc.clone());
                    next
                }
                Err(e) => return Err(self.resolve_error(&acc, entry, e)),
            };
        }
        Ok(fd)
    }

    /// Removes whatever is at `name` in `parent` (a whole tree for a directory).
    fn remove(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
    ) -> Result<(), ApplyError> {
        match rfs::unlinkat(parent, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(Errno::ISDIR) | Err(Errno::PERM) => {
                // Only a directory gets here on Linux (EISDIR; EPERM on some fs).
                self.cache = None;
                remove_tree(parent, name).map_err(|e| self.io("removing", rel, e))
            }
            Err(e) => Err(self.io("removing", rel, e)),
        }
    }

    fn apply(&mut self, entry: &Entry, content: &mut dyn Read) -> Result<(), ApplyError> {
        let rel = entry.path.as_path();
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let name = match rel.file_name() {
            Some(n) => n.to_os_string(),
            None => return Err(self.hostile(rel, "an entry without a name")),
        };
        if matches!(entry.kind, EntryKind::Whiteout) && self.opts.style == WhiteoutStyle::InPlace {
            return self.whiteout_in_place(entry, parent_rel, &name);
        }
        if matches!(
            entry.kind,
            EntryKind::CharDevice { .. } | EntryKind::BlockDevice { .. }
        ) && self.opts.devices == DevicePolicy::SkipAndCount
        {
            self.stats.devices_skipped += 1;
            return Ok(());
        }
        let parent = self.open_dir(parent_rel, rel, true)?;
        let pfd = parent.as_fd();
        match &entry.kind {
            EntryKind::Dir => self.dir(entry, pfd, &name),
            EntryKind::Opaque => self.opaque(entry, pfd, &name),
            EntryKind::File { size } => self.file(entry, pfd, &name, *size, content),
            EntryKind::Symlink { target } => {
                self.remove(pfd, &name, rel)?;
                rfs::symlinkat(target.as_path(), pfd, name.as_os_str())
                    .map_err(|e| self.io("creating symlink", rel, e))?;
                self.stats.symlinks += 1;
                self.node_metadata(entry, pfd, &name, false)
            }
            EntryKind::HardLink { target } => self.hardlink(entry, pfd, &name, target),
            EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => {
                let ft = if matches!(entry.kind, EntryKind::CharDevice { .. }) {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                self.remove(pfd, &name, rel)?;
                rfs::mknodat(
                    pfd,
                    name.as_os_str(),
                    ft,
                    Mode::from_raw_mode(0o600),
                    rfs::makedev(*major, *minor),
                )
                .map_err(|e| self.io("creating device node", rel, e))?;
                self.stats.devices += 1;
                self.node_metadata(entry, pfd, &name, true)
            }
            EntryKind::Fifo => {
                self.remove(pfd, &name, rel)?;
                rfs::mknodat(
                    pfd,
                    name.as_os_str(),
                    FileType::Fifo,
                    Mode::from_raw_mode(0o600),
                    0,
                )
                .map_err(|e| self.io("creating FIFO", rel, e))?;
                self.stats.fifos += 1;
                self.node_metadata(entry, pfd, &name, true)
            }
            EntryKind::Whiteout => self.whiteout_diff(entry, pfd, &name),
        }
    }

    fn mark_written(&mut self, rel: &Path) {
        if self.opts.style == WhiteoutStyle::InPlace {
            self.written.insert(rel.to_path_buf());
        }
    }

    fn dir(&mut self, entry: &Entry, pfd: BorrowedFd<'_>, name: &OsStr) -> Result<(), ApplyError> {
        let rel = entry.path.as_path();
        let mut replaced_whiteout = false;
        match rfs::statat(pfd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
            Ok(_) => {
                replaced_whiteout = self.whiteouts_here.remove(rel);
                self.remove(pfd, name, rel)?;
                self.mkdir(pfd, name, rel)?;
            }
            Err(Errno::NOENT) => self.mkdir(pfd, name, rel)?,
            Err(e) => return Err(self.io("reading", rel, e)),
        }
        let fd = rfs::openat(
            pfd,
            name,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| self.io("opening", rel, e))?;
        self.fd_metadata(entry, &fd)?;
        if replaced_whiteout {
            // A directory over this layer's own whiteout: lower content stays hidden.
            self.set_opaque(&fd, rel)?;
        }
        self.stats.dirs += 1;
        self.implicit.remove(rel);
        self.mark_written(rel);
        self.dir_times.push((rel.to_path_buf(), entry.mtime));
        // Its children usually come next.
        self.cache = Some((rel.to_path_buf(), fd));
        Ok(())
    }

    fn mkdir(&mut self, pfd: BorrowedFd<'_>, name: &OsStr, rel: &Path) -> Result<(), ApplyError> {
        rfs::mkdirat(pfd, name, Mode::from_raw_mode(0o700))
            .map_err(|e| self.io("creating dir", rel, e))
    }

    fn set_opaque(&mut self, fd: &OwnedFd, rel: &Path) -> Result<(), ApplyError> {
        if let WhiteoutStyle::OverlayDiff { xattr_prefix } = self.opts.style {
            let key = format!("{xattr_prefix}opaque");
            rfs::fsetxattr(fd, key.as_str(), b"y", XattrFlags::empty())
                .map_err(|e| self.io("setting the opaque xattr on", rel, e))?;
        }
        Ok(())
    }

    fn opaque(
        &mut self,
        entry: &Entry,
        pfd: BorrowedFd<'_>,
        name: &OsStr,
    ) -> Result<(), ApplyError> {
        let rel = entry.path.as_path();
        let exists_as_dir = matches!(
            rfs::statat(pfd, name, AtFlags::SYMLINK_NOFOLLOW),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory
        );
        if !exists_as_dir {
            self.remove(pfd, name, rel)?;
            rfs::mkdirat(pfd, name, Mode::from_raw_mode(0o755))
                .map_err(|e| self.io("creating dir", rel, e))?;
            self.mark_written(rel);
            self.implicit.insert(rel.to_path_buf());
        }
        let fd = rfs::openat(
            pfd,
            name,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| self.io("opening", rel, e))?;
        if !exists_as_dir {
            rfs::fchmod(&fd, Mode::from_raw_mode(0o755)).map_err(|e| self.io("chmod", rel, e))?;
        }
        match self.opts.style {
            WhiteoutStyle::OverlayDiff { .. } => self.set_opaque(&fd, rel)?,
            WhiteoutStyle::InPlace => {
                let children = list_dir(&fd).map_err(|e| self.io("reading dir", rel, e))?;
                for child in children {
                    let child_rel = rel.join(&child);
                    if !self.written.contains(&child_rel) {
                        self.remove(fd.as_fd(), &child, &child_rel)?;
                    }
                }
            }
        }
        self.stats.opaques += 1;
        Ok(())
    }

    fn whiteout_diff(
        &mut self,
        entry: &Entry,
        pfd: BorrowedFd<'_>,
        name: &OsStr,
    ) -> Result<(), ApplyError> {
        let rel = entry.path.as_path();
        match rfs::statat(pfd, name, AtFlags::SYMLINK_NOFOLLOW) {
            // This layer already put something here; a whiteout only hides
            // lower layers (OCI), and what this layer wrote hides them already.
            Ok(_) => return Ok(()),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(self.io("reading", rel, e)),
        }
        rfs::mknodat(
            pfd,
            name,
            FileType::CharacterDevice,
            Mode::empty(),
            rfs::makedev(0, 0),
        )
        .map_err(|e| self.io("creating whiteout", rel, e))?;
        self.whiteouts_here.insert(rel.to_path_buf());
        self.stats.whiteouts += 1;
        Ok(())
    }

    fn whiteout_in_place(
        &mut self,
        entry: &Entry,
        parent_rel: &Path,
        name: &OsStr,
    ) -> Result<(), ApplyError> {
        let rel = entry.path.as_path();
        if self.written.contains(rel) {
            return Ok(());
        }
        let parent = match self.open_beneath(parent_rel) {
            Ok(fd) => fd,
            // Nothing below to hide.
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(()),
            Err(e) => return Err(self.resolve_error(parent_rel, rel, e)),
        };
        self.remove(parent.as_fd(), name, rel)?;
        self.stats.whiteouts += 1;
        Ok(())
    }

    fn file(
        &mut self,
        entry: &Entry,
        pfd: BorrowedFd<'_>,
        name: &OsStr,
        size: u64,
        content: &mut dyn Read,
    ) -> Result<(), ApplyError> {
        let rel = entry.path.as_path();
        self.remove(pfd, name, rel)?;
        let fd = rfs::openat(
            pfd,
            name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| self.io("creating", rel, e))?;
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match content.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(ApplyError::Io {
                        op: "reading the layer for",
                        path: self.dest.join(rel),
                        source: std::io::ErrorKind::UnexpectedEof.into(),
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(ApplyError::Io {
                        op: "reading the layer for",
                        path: self.dest.join(rel),
                        source: e,
                    })
                }
            };
            let mut off = 0;
            while off < n {
                match rustix::io::write(&fd, &self.buf[off..n]) {
                    Ok(w) => off += w,
                    Err(Errno::INTR) => {}
                    Err(e) => return Err(self.io("writing", rel, e)),
                }
            }
            left -= n as u64;
        }
        self.stats.bytes += size;
        self.stats.files += 1;
        self.fd_metadata(entry, &fd)?;
        rfs::futimens(&fd, &ts(entry.mtime)).map_err(|e| self.io("setting mtime of", rel, e))?;
        self.mark_written(rel);
        Ok(())
    }

    fn hardlink(
        &mut self,
        entry: &Entry,
        pfd: BorrowedFd<'_>,
        name: &OsStr,
        target: &Path,
    ) -> Result<(), ApplyError> {
        let rel = entry.path.as_path();
        if target == rel {
            return Ok(());
        }
        let tname = target
            .file_name()
            .ok_or_else(|| self.hostile(rel, "a hard link to the layer root"))?
            .to_os_string();
        let tparent_rel = target.parent().unwrap_or(Path::new(""));
        let tparent = match self.open_beneath(tparent_rel) {
            Ok(fd) => fd,
            Err(e) => return Err(self.resolve_error(tparent_rel, rel, e)),
        };
        self.remove(pfd, name, rel)?;
        rfs::linkat(&tparent, tname.as_os_str(), pfd, name, AtFlags::empty()).map_err(
            |e| match e {
                Errno::NOENT => self.hostile(
                    rel,
                    format!(
                        "its hard-link target {:?} is gone",
                        target.display().to_string()
                    ),
                ),
                e => self.io("hard-linking", rel, e),
            },
        )?;
        self.stats.hardlinks += 1;
        self.mark_written(rel);
        Ok(())
    }

    /// Owner, mode and xattrs of an opened file or directory. chown comes
    /// first: it clears setuid/setgid bits and file capabilities.
    fn fd_metadata(&mut self, entry: &Entry, fd: &OwnedFd) -> Result<(), ApplyError> {
        let rel = entry.path.as_path();
        if self.opts.owners {
            rfs::fchown(
                fd,
                Some(rfs::Uid::from_raw(entry.uid)),
                Some(rfs::Gid::from_raw(entry.gid)),
            )
            .map_err(|e| self.io("chown", rel, e))?;
        }
        rfs::fchmod(fd, Mode::from_raw_mode(entry.mode & 0o7777))
            .map_err(|e| self.io("chmod", rel, e))?;
        for (k, v) in &entry.xattrs {
            if is_overlay_xattr(k) {
                self.stats.xattrs_dropped += 1;
                continue;
            }
            rfs::fsetxattr(fd, k.as_os_str(), v, XattrFlags::empty())
                .map_err(|e| self.io("setting xattr on", rel, e))?;
            self.stats.xattrs += 1;
        }
        Ok(())
    }

    /// Metadata of a node that cannot be opened for it (symlink, device,
    /// FIFO): by name relative to its parent, never following the node.
    fn node_metadata(
        &mut self,
        entry: &Entry,
        pfd: BorrowedFd<'_>,
        name: &OsStr,
        chmod: bool,
    ) -> Result<(), ApplyError> {
        let rel = entry.path.as_path();
        if self.opts.owners {
            rfs::chownat(
                pfd,
                name,
                Some(rfs::Uid::from_raw(entry.uid)),
                Some(rfs::Gid::from_raw(entry.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| self.io("chown", rel, e))?;
        }
        if chmod {
            // Not a symlink (just made by mknod), so following is moot.
            rfs::chmodat(
                pfd,
                name,
                Mode::from_raw_mode(entry.mode & 0o7777),
                AtFlags::empty(),
            )
            .map_err(|e| self.io("chmod", rel, e))?;
        }
        if !entry.xattrs.is_empty() {
            // No fd-relative lsetxattr before Linux 6.13: go through the
            // parent's fd in /proc, which resolves to the directory itself.
            let path = PathBuf::from(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&pfd)
            ))
            .join(name);
            for (k, v) in &entry.xattrs {
                if is_overlay_xattr(k) {
                    self.stats.xattrs_dropped += 1;
                    continue;
                }
                match rfs::lsetxattr(&path, k.as_os_str(), v, XattrFlags::empty()) {
                    Ok(()) => self.stats.xattrs += 1,
                    Err(Errno::PERM) if k.as_bytes().starts_with(b"user.") => {
                        self.stats.xattrs_refused += 1
                    }
                    Err(e) => return Err(self.io("setting xattr on", rel, e)),
                }
            }
        }
        rfs::utimensat(pfd, name, &ts(entry.mtime), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.io("setting mtime of", rel, e))?;
        self.mark_written(rel);
        Ok(())
    }

    fn finish_dir_times(&mut self) -> Result<(), ApplyError> {
        self.cache = None;
        let dirs = std::mem::take(&mut self.dir_times);
        for (rel, mtime) in dirs.iter().rev() {
            // A later entry may have removed or replaced it: then it is not ours to touch.
            let Ok(fd) = self.open_beneath(rel) else {
                continue;
            };
            rfs::futimens(&fd, &ts(*mtime)).map_err(|e| self.io("setting mtime of", rel, e))?;
        }
        Ok(())
    }
}

/// The names in the directory `fd`, `.` and `..` left out.
pub(crate) fn list_dir(fd: &OwnedFd) -> Result<Vec<OsString>, Errno> {
    let mut out = Vec::new();
    let mut dir = rfs::Dir::read_from(fd)?;
    while let Some(e) = dir.read() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    Ok(out)
}

/// Removes directory `name` in `parent` and everything in it, fd-relative and
/// without following symlinks. Iterative (a layer may replace a tree nested
/// as deep as a path allows) with one directory fd open at a time: the walk
/// climbs back through `..`, and keeps per level only the names left to do.
fn remove_tree(parent: BorrowedFd<'_>, name: &OsStr) -> Result<(), Errno> {
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let mut cur = rfs::openat(parent, name, flags, Mode::empty())?;
    // Per level: its name in the level above and the children still to remove.
    let mut stack: Vec<(OsString, Vec<OsString>)> = vec![(name.to_os_string(), list_dir(&cur)?)];
    while let Some((_, children)) = stack.last_mut() {
        match children.pop() {
            Some(child) => match rfs::unlinkat(&cur, child.as_os_str(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(Errno::ISDIR) | Err(Errno::PERM) => {
                    let sub = rfs::openat(&cur, child.as_os_str(), flags, Mode::empty())?;
                    let grandchildren = list_dir(&sub)?;
                    stack.push((child, grandchildren));
                    cur = sub;
                }
                Err(e) => return Err(e),
            },
            None => {
                let Some((done, _)) = stack.pop() else {
                    break;
                };
                if stack.is_empty() {
                    drop(cur);
                    return rfs::unlinkat(parent, done.as_os_str(), AtFlags::REMOVEDIR);
                }
                cur = rfs::openat(&cur, "..", flags, Mode::empty())?;
                rfs::unlinkat(&cur, done.as_os_str(), AtFlags::REMOVEDIR)?;
            }
        }
    }
    Ok(())
}

/// Gives the directories each overlay diff made implicitly (see
/// `ApplyStats::implicit_dirs`; `implicit[k]` for `diffs[k]`, bottom first)
/// the owner, mode, mtime and xattrs of the same directory in the nearest
/// lower diff that has it, as containerd does when it applies a layer over
/// its parents. Where no lower layer shows one (none has it, or a whiteout or
/// an opaque directory hides it), the 0755 default stays. Returns how many
/// directories were changed.
pub fn inherit_implicit_dirs(
    diffs: &[PathBuf],
    implicit: &[Vec<PathBuf>],
) -> Result<u64, ApplyError> {
    let io = |op: &'static str, path: PathBuf| {
        move |e: Errno| ApplyError::Io {
            op,
            path,
            source: e.into(),
        }
    };
    let roots: Vec<OwnedFd> = diffs
        .iter()
        .map(|d| {
            rfs::open(
                d,
                OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io("opening", d.clone()))
        })
        .collect::<Result<_, _>>()?;
    let beneath = |root: &OwnedFd, rel: &Path, flags: OFlags| {
        rfs::openat2(
            root,
            rel,
            flags | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
            ResolveFlags::BENEATH
                | ResolveFlags::NO_SYMLINKS
                | ResolveFlags::NO_MAGICLINKS
                | ResolveFlags::NO_XDEV,
        )
    };
    let mut changed = 0;
    for (k, dirs) in implicit.iter().enumerate().take(diffs.len()) {
        'dir: for rel in dirs {
            for j in (0..k).rev() {
                match beneath(&roots[j], rel, OFlags::DIRECTORY) {
                    Ok(lower) => {
                        let st = rfs::fstat(&lower).map_err(io("reading", diffs[j].join(rel)))?;
                        let target = diffs[k].join(rel);
                        let ours = beneath(&roots[k], rel, OFlags::DIRECTORY)
                            .map_err(io("opening", target.clone()))?;
                        rfs::fchown(
                            &ours,
                            Some(rfs::Uid::from_raw(st.st_uid)),
                            Some(rfs::Gid::from_raw(st.st_gid)),
                        )
                        .map_err(io("chown", target.clone()))?;
                        rfs::fchmod(&ours, Mode::from_raw_mode(st.st_mode & 0o7777))
                            .map_err(io("chmod", target.clone()))?;
                        let names = xattr_names(&lower)
                            .map_err(io("listing xattrs of", diffs[j].join(rel)))?;
                        for n in names.iter().filter(|n| !is_overlay_xattr(n)) {
                            let mut buf = vec![0u8; 64 * 1024];
                            let len = rfs::fgetxattr(&lower, n.as_os_str(), &mut buf)
                                .map_err(io("reading xattrs of", diffs[j].join(rel)))?;
                            rfs::fsetxattr(&ours, n.as_os_str(), &buf[..len], XattrFlags::empty())
                                .map_err(io("setting xattr on", target.clone()))?;
                        }
                        rfs::futimens(&ours, &ts(st.st_mtime))
                            .map_err(io("setting mtime of", target))?;
                        changed += 1;
                        continue 'dir;
                    }
                    Err(Errno::NOENT) => {
                        // Hidden below this layer if an ancestor here is opaque
                        // or not a directory (a whiteout).
                        let mut acc = PathBuf::new();
                        for comp in rel.components() {
                            acc.push(comp);
                            match beneath(&roots[j], &acc, OFlags::DIRECTORY) {
                                Ok(fd) => {
                                    let mut v = [0u8; 2];
                                    let opaque = ["trusted.overlay.opaque", "user.overlay.opaque"]
                                        .iter()
                                        .any(|k| {
                                            rfs::fgetxattr(&fd, *k, &mut v)
                                                .is_ok_and(|n| &v[..n] == b"y")
                                        });
                                    if opaque && acc != *rel {
                                        continue 'dir;
                                    }
                                }
                                Err(Errno::NOENT) => break,
                                Err(_) => continue 'dir,
                            }
                        }
                    }
                    // A whiteout or another non-directory hides lower layers.
                    Err(_) => continue 'dir,
                }
            }
        }
    }
    Ok(changed)
}

fn xattr_names(fd: &OwnedFd) -> Result<Vec<OsString>, Errno> {
    let mut buf = vec![0u8; 64 * 1024];
    let n = rfs::flistxattr(fd, &mut buf)?;
    Ok(buf[..n]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| OsStr::from_bytes(n).to_os_string())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::fsops::{deep_chain, on_small_stack};

    /// 2,100 levels on a 256 KiB stack: the recursive removal overflowed it.
    #[test]
    fn removes_a_tree_deeper_than_the_stack() {
        let d = tempfile::tempdir().expect("tempdir");
        deep_chain(d.path(), 2100).expect("deep chain");
        let root = d.path().to_path_buf();
        on_small_stack(move || {
            let fd = rfs::open(&root, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty())?;
            remove_tree(fd.as_fd(), OsStr::new("d"))
        })
        .expect("removed");
        assert!(!d.path().join("d").exists());
    }
}
