//! The start-up read set of a container: which of its image's files the start
//! opens and reads, recorded with fanotify (issue 26; the `app` workload and
//! `storm --image` use it).
//!
//! API (all of it):
//! - [`Recorder::start`]`(rootfs, filter)` indexes the regular files under
//!   `rootfs` (the container's root, e.g. a layout's merged mount), puts a
//!   fanotify *filesystem* mark on the filesystem holding it
//!   (`FAN_OPEN | FAN_OPEN_EXEC | FAN_ACCESS`) and reads events on a thread;
//! - [`Recorder::stop`]`()` drains the queue, ends the thread and returns the
//!   [`ReadSet`]: paths relative to `rootfs` in first-open order, their sizes,
//!   totals, the fractions of the image's files and bytes, the top directories;
//!   [`ReadSet::write_list`] writes `app-readset.txt` (one path per line).
//! - [`pid_namespace_of`] gives a process's pid namespace for [`Filter::PidNamespace`];
//!   [`own_pid_namespace`] the tool's, for [`Filter::OutsidePidNamespace`].
//!
//! Why a filesystem mark: a mount mark sees only accesses through that mount,
//! and an OCI runtime reaches the rootfs through its own bind mount in its own
//! mount namespace; a filesystem mark sees every access to the superblock,
//! whichever mount it goes through. On the `plain` layout the rootfs is a
//! directory on the scratch filesystem, where the mark sees everything: events
//! count only if their file is one of the rootfs's (by device and inode, from
//! the index made at start) and, with [`Filter::PidNamespace`], if the process
//! is in the container's pid namespace.
//!
//! Paths come from the index, not from the event's fd path: the fd's path is
//! the one the process used, which lies in the runtime's mount namespace and
//! means nothing in ours.
//!
//! Bounded: at most `max_files` files are kept (a hostile image can open
//! millions) and the index holds at most [`MAX_INDEX`] files; the result says
//! when either cap or the kernel's queue (16384 events) overflowed. Bytes are
//! the files' sizes at open: fanotify does not say how many bytes a read
//! asked for; `read` says whether the file was read at all (`FAN_ACCESS`).
//!
//! Needs CAP_SYS_ADMIN (fanotify's notification class on a filesystem).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags};
use nix::sys::stat::fstat;

use crate::error::ErrorClass;

/// Most files the index of a rootfs holds (a real image has tens of thousands).
pub const MAX_INDEX: usize = 2_000_000;
/// Default cap on the files a read set keeps.
pub const DEFAULT_MAX_FILES: usize = 100_000;

/// Why recording failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadsetError {
    /// fanotify_init refused (no CAP_SYS_ADMIN, or a kernel without fanotify).
    #[error("fanotify_init: {0} (needs root and a kernel with fanotify)")]
    Init(Errno),
    /// The filesystem mark could not be put on the rootfs.
    #[error("fanotify filesystem mark on {path}: {errno}")]
    Mark {
        /// The rootfs.
        path: PathBuf,
        /// What the kernel said.
        errno: Errno,
    },
    /// The rootfs could not be walked.
    #[error("indexing {path}: {source}")]
    Index {
        /// The entry that failed.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Reading the event queue failed.
    #[error("reading fanotify events: {0}")]
    Read(Errno),
    /// The stop pipe could not be made or written.
    #[error("read-set recorder stop pipe: {0}")]
    Pipe(Errno),
    /// The reader thread panicked.
    #[error("the read-set reader thread panicked")]
    Thread,
    /// A process's pid namespace could not be read.
    #[error("pid namespace of process {pid}: {source}")]
    PidNamespace {
        /// The process.
        pid: i32,
        /// Why.
        source: std::io::Error,
    },
    /// The list could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl ReadsetError {
    /// Exit-code class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            ReadsetError::Init(Errno::EPERM | Errno::ENOSYS | Errno::EINVAL)
            | ReadsetError::Mark {
                errno: Errno::EPERM | Errno::ENOSYS | Errno::EINVAL | Errno::EOPNOTSUPP,
                ..
            } => ErrorClass::Unsupported,
            _ => ErrorClass::Runtime,
        }
    }
}

/// Whose accesses count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Processes in this pid namespace (its inode, from [`pid_namespace_of`]).
    /// A process that exited before its event was read cannot be checked; its
    /// events count (on the rootfs's own files, only a start touches them) and
    /// [`ReadSet::unattributed`] says how many.
    PidNamespace(u64),
    /// Processes *outside* this pid namespace (the tool's own, from
    /// [`own_pid_namespace`]): an OCI runtime makes the container's pid
    /// namespace before the container's first process runs, so with one
    /// container on the rootfs at a time this is exactly the container's
    /// processes, with no window in which the new namespace is not yet known
    /// (the runtime and the tool itself, in ours, are left out). A process
    /// that exited before its event was read counts as for `PidNamespace`.
    OutsidePidNamespace(u64),
    /// Every process (a rootfs only the recorded start uses).
    Everyone,
}

/// The pid namespace (inode of `/proc/PID/ns/pid`) of process `pid`.
pub fn pid_namespace_of(pid: i32) -> Result<u64, ReadsetError> {
    fs::metadata(format!("/proc/{pid}/ns/pid"))
        .map(|m| m.ino())
        .map_err(|source| ReadsetError::PidNamespace { pid, source })
}

/// The pid namespace of this process (for [`Filter::OutsidePidNamespace`]).
pub fn own_pid_namespace() -> Result<u64, ReadsetError> {
    fs::metadata("/proc/self/ns/pid")
        .map(|m| m.ino())
        .map_err(|source| ReadsetError::PidNamespace {
            pid: std::process::id() as i32,
            source,
        })
}

/// Recording options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Whose accesses count.
    pub filter: Filter,
    /// Most files kept; later first opens are counted in `dropped` only.
    pub max_files: usize,
}

impl Options {
    /// `filter`, with the default cap.
    pub fn new(filter: Filter) -> Self {
        Options {
            filter,
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

/// One file of the read set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFile {
    /// Relative to the rootfs.
    pub path: PathBuf,
    /// Its size at start (the index's).
    pub size: u64,
    /// Whether it was read (`FAN_ACCESS`) and not only opened.
    pub read: bool,
    /// Whether it was opened for execution (a program or the dynamic loader).
    pub exec: bool,
}

/// What a start read.
#[derive(Debug, Clone, Default)]
pub struct ReadSet {
    /// The files, in first-open order (a file read without an open we saw,
    /// e.g. mapped before the mark, comes at its first read).
    pub files: Vec<ReadFile>,
    /// Regular files in the image (the index).
    pub image_files: u64,
    /// Their bytes.
    pub image_bytes: u64,
    /// Events that counted.
    pub events: u64,
    /// Events of other processes or on files outside the rootfs.
    pub ignored: u64,
    /// Counted events whose process had exited before it could be checked.
    pub unattributed: u64,
    /// First opens beyond `max_files`, not kept.
    pub dropped: u64,
    /// Whether the index hit [`MAX_INDEX`] (files beyond it are not seen).
    pub index_truncated: bool,
    /// Whether the kernel's queue overflowed (events were lost).
    pub overflowed: bool,
}

/// A directory's share of a read set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirShare {
    /// The directory (relative, `depth` components at most).
    pub dir: PathBuf,
    /// Files of the read set under it.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl ReadSet {
    /// Bytes of the files kept.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Whether a cap was hit or events were lost: the set is incomplete.
    pub fn incomplete(&self) -> bool {
        self.dropped > 0 || self.index_truncated || self.overflowed
    }

    /// Fraction of the image's files in the set (0 for an empty image).
    pub fn file_fraction(&self) -> f64 {
        ratio(self.files.len() as u64, self.image_files)
    }

    /// Fraction of the image's bytes in the set.
    pub fn byte_fraction(&self) -> f64 {
        ratio(self.bytes(), self.image_bytes)
    }

    /// The `n` directories (cut at `depth` components) holding the most bytes
    /// of the set, most first (then by name).
    pub fn top_dirs(&self, depth: usize, n: usize) -> Vec<DirShare> {
        let mut by: HashMap<PathBuf, (u64, u64)> = HashMap::new();
        for f in &self.files {
            let dir: PathBuf = f
                .path
                .parent()
                .map(|p| p.components().take(depth).collect())
                .unwrap_or_default();
            let e = by.entry(dir).or_default();
            e.0 += 1;
            e.1 += f.size;
        }
        let mut v: Vec<DirShare> = by
            .into_iter()
            .map(|(dir, (files, bytes))| DirShare { dir, files, bytes })
            .collect();
        v.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.dir.cmp(&b.dir)));
        v.truncate(n);
        v
    }

    /// Writes the set as a prefetch list: one path per line, first-open order.
    /// Paths with a newline (a hostile image's) would split a line: they are
    /// left out of the list.
    pub fn write_list(&self, path: &Path) -> Result<(), ReadsetError> {
        let wrap = |source| ReadsetError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut out = std::io::BufWriter::new(fs::File::create(path).map_err(wrap)?);
        for f in &self.files {
            let s = f.path.to_string_lossy();
            if s.contains('\n') {
                continue;
            }
            writeln!(out, "{s}").map_err(wrap)?;
        }
        out.flush().map_err(wrap)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The rootfs's regular files by (device, inode): path and size.
struct Index {
    files: HashMap<(u64, u64), (PathBuf, u64)>,
    bytes: u64,
    truncated: bool,
}

impl Index {
    /// Walks `root` without following symlinks or crossing into other
    /// filesystems' mounts below it (a container's /proc, /dev are not the image's).
    fn build(root: &Path) -> Result<Index, ReadsetError> {
        let top = fs::symlink_metadata(root).map_err(|source| ReadsetError::Index {
            path: root.to_path_buf(),
            source,
        })?;
        let mut idx = Index {
            files: HashMap::new(),
            bytes: 0,
            truncated: false,
        };
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let dir = root.join(&rel);
            let rd = fs::read_dir(&dir).map_err(|source| ReadsetError::Index {
                path: dir.clone(),
                source,
            })?;
            for e in rd {
                let e = e.map_err(|source| ReadsetError::Index {
                    path: dir.clone(),
                    source,
                })?;
                let m = e.metadata().map_err(|source| ReadsetError::Index {
                    path: e.path(),
                    source,
                })?;
                let child = rel.join(e.file_name());
                if m.is_dir() {
                    // Another filesystem's directory is a mount point below
                    // the root (a container's /proc): not the image's. Files
                    // are kept whatever their device: overlay reports a
                    // lower layer's own device for its files when the layers
                    // sit on other filesystems (erofs images), and an event's
                    // fd, opened through the same mount, reports the same.
                    if m.dev() != top.dev() {
                        continue;
                    }
                    stack.push(child);
                } else if m.is_file() {
                    if idx.files.len() >= MAX_INDEX {
                        idx.truncated = true;
                        return Ok(idx);
                    }
                    // A hard link's second name keeps the first's entry.
                    if let std::collections::hash_map::Entry::Vacant(v) =
                        idx.files.entry((m.dev(), m.ino()))
                    {
                        v.insert((child, m.len()));
                        idx.bytes += m.len();
                    }
                }
            }
        }
        Ok(idx)
    }
}

/// A running recording; [`Recorder::stop`] ends it. Dropping it without
/// `stop` ends the thread too and closes the fanotify group.
pub struct Recorder {
    stop_tx: Option<OwnedFd>,
    thread: Option<JoinHandle<Result<ReadSet, ReadsetError>>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

const MASK: MaskFlags = MaskFlags::FAN_OPEN
    .union(MaskFlags::FAN_OPEN_EXEC)
    .union(MaskFlags::FAN_ACCESS);

impl Recorder {
    /// Indexes `rootfs`, marks its filesystem and starts reading events.
    /// Start the container's process after this returns.
    pub fn start(rootfs: &Path, options: Options) -> Result<Recorder, ReadsetError> {
        let index = Index::build(rootfs)?;
        let fan = Fanotify::init(
            InitFlags::FAN_CLASS_NOTIF | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK,
            EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC,
        )
        .map_err(ReadsetError::Init)?;
        fan.mark(
            MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_FILESYSTEM,
            MASK,
            None,
            Some(rootfs),
        )
        .map_err(|errno| ReadsetError::Mark {
            path: rootfs.to_path_buf(),
            errno,
        })?;
        let (stop_rx, stop_tx) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(ReadsetError::Pipe)?;
        let fan = Arc::new(fan);
        let thread = std::thread::Builder::new()
            .name("readset".into())
            .spawn(move || read_loop(&fan, stop_rx, index, options))
            .map_err(|e| ReadsetError::Pipe(Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
        Ok(Recorder {
            stop_tx: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Ends the recording: the events queued so far are read, the thread ends
    /// and the fanotify group is closed.
    pub fn stop(mut self) -> Result<ReadSet, ReadsetError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<ReadSet, ReadsetError> {
        // Closing the write end wakes the reader (POLLHUP on the read end).
        drop(self.stop_tx.take());
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| ReadsetError::Thread)?,
            None => Err(ReadsetError::Thread),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // Nothing to report to from a drop; the thread and fd end here.
            let _ = self.finish();
        }
    }
}

/// Per-file state of the reader.
struct Seen {
    slot: Option<usize>,
}

fn read_loop(
    fan: &Fanotify,
    stop_rx: OwnedFd,
    index: Index,
    options: Options,
) -> Result<ReadSet, ReadsetError> {
    let mut set = ReadSet {
        image_files: index.files.len() as u64,
        image_bytes: index.bytes,
        index_truncated: index.truncated,
        ..ReadSet::default()
    };
    let mut seen: HashMap<(u64, u64), Seen> = HashMap::new();
    let mut pids: HashMap<i32, Option<bool>> = HashMap::new();
    let mut stopping = false;
    loop {
        if !stopping {
            let mut fds = [
                PollFd::new(fan.as_fd(), PollFlags::POLLIN),
                PollFd::new(stop_rx.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(ReadsetError::Read(e)),
            }
            // Any readiness of the stop pipe (hang-up) means stop: drain, then end.
            stopping = fds[1].revents().is_some_and(|r| !r.is_empty());
        }
        let events = match fan.read_events() {
            Ok(ev) => ev,
            Err(Errno::EAGAIN) => {
                if stopping {
                    return Ok(set);
                }
                continue;
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(ReadsetError::Read(e)),
        };
        for ev in events {
            let Some(fd) = ev.fd() else {
                set.overflowed = true;
                continue;
            };
            let attributed = match options.filter {
                Filter::Everyone => Some(true),
                Filter::PidNamespace(ns) => *pids
                    .entry(ev.pid())
                    .or_insert_with(|| pid_namespace_of(ev.pid()).ok().map(|n| n == ns)),
                Filter::OutsidePidNamespace(ns) => *pids
                    .entry(ev.pid())
                    .or_insert_with(|| pid_namespace_of(ev.pid()).ok().map(|n| n != ns)),
            };
            if attributed == Some(false) {
                set.ignored += 1;
                continue;
            }
            let Ok(st) = fstat(fd.as_raw_fd()) else {
                set.ignored += 1;
                continue;
            };
            let key = (st.st_dev, st.st_ino);
            let Some((path, size)) = index.files.get(&key) else {
                set.ignored += 1;
                continue;
            };
            set.events += 1;
            if attributed.is_none() {
                set.unattributed += 1;
            }
            let mask = ev.mask();
            let entry = seen.entry(key).or_insert_with(|| {
                if set.files.len() < options.max_files {
                    set.files.push(ReadFile {
                        path: path.clone(),
                        size: *size,
                        read: false,
                        exec: false,
                    });
                    Seen {
                        slot: Some(set.files.len() - 1),
                    }
                } else {
                    set.dropped += 1;
                    Seen { slot: None }
                }
            });
            if let Some(f) = entry.slot.and_then(|i| set.files.get_mut(i)) {
                f.read |= mask.contains(MaskFlags::FAN_ACCESS);
                f.exec |= mask.contains(MaskFlags::FAN_OPEN_EXEC);
                let done = f.read && f.exec;
                // Further events of this file say nothing new: ignore them in
                // the kernel (an ignore mark on its inode), which keeps the cost
                // to the watched process to about one event per file.
                let mut ignore = MaskFlags::FAN_OPEN;
                if f.read {
                    ignore |= MaskFlags::FAN_ACCESS;
                }
                if done {
                    ignore |= MaskFlags::FAN_OPEN_EXEC;
                }
                ignore_inode(fan, fd, ignore);
            }
        }
    }
}

/// Adds an ignore mark for `mask` on `fd`'s inode. Best effort: without it
/// the recording is the same, only costlier.
fn ignore_inode(fan: &Fanotify, fd: BorrowedFd<'_>, mask: MaskFlags) {
    let _ = fan.mark::<Path>(
        MarkFlags::FAN_MARK_ADD
            | MarkFlags::FAN_MARK_IGNORED_MASK
            | MarkFlags::FAN_MARK_IGNORED_SURV_MODIFY,
        mask,
        Some(fd.as_raw_fd()),
        None,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(paths: &[(&str, u64)]) -> ReadSet {
        ReadSet {
            files: paths
                .iter()
                .map(|(p, s)| ReadFile {
                    path: PathBuf::from(p),
                    size: *s,
                    read: true,
                    exec: false,
                })
                .collect(),
            image_files: 10,
            image_bytes: 1000,
            ..ReadSet::default()
        }
    }

    #[test]
    fn fractions_and_top_dirs() {
        let s = set(&[
            ("usr/lib/a/x.py", 100),
            ("usr/lib/b/y.py", 300),
            ("usr/bin/python3", 50),
            ("etc/ld.so.cache", 50),
        ]);
        assert_eq!(s.bytes(), 500);
        assert!((s.file_fraction() - 0.4).abs() < 1e-9);
        assert!((s.byte_fraction() - 0.5).abs() < 1e-9);
        let top = s.top_dirs(2, 2);
        assert_eq!(top[0].dir, PathBuf::from("usr/lib"));
        assert_eq!((top[0].files, top[0].bytes), (2, 400));
        assert_eq!(top.len(), 2);
        assert_eq!(ReadSet::default().byte_fraction(), 0.0);
    }

    #[test]
    fn list_is_first_open_order_without_newline_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = set(&[("b", 1), ("a\nb", 1), ("a", 1)]);
        let p = dir.path().join("app-readset.txt");
        s.write_list(&p).expect("write");
        assert_eq!(fs::read_to_string(&p).expect("read"), "b\na\n");
    }

    #[test]
    fn records_only_the_rootfs_files_and_caps() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("needs root (fanotify): skipped");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("d")).expect("mkdir");
        for n in ["a", "b", "c"] {
            fs::write(root.join("d").join(n), n.repeat(10)).expect("write");
        }
        fs::write(dir.path().join("outside"), "x").expect("write");
        let mut opts = Options::new(Filter::Everyone);
        opts.max_files = 2;
        let rec = Recorder::start(&root, opts).expect("start");
        for n in ["c", "a", "b", "a"] {
            fs::read(root.join("d").join(n)).expect("read");
        }
        fs::read(dir.path().join("outside")).expect("read");
        let s = rec.stop().expect("stop");
        let paths: Vec<_> = s.files.iter().map(|f| f.path.clone()).collect();
        assert_eq!(paths, [PathBuf::from("d/c"), PathBuf::from("d/a")]);
        assert!(s.files.iter().all(|f| f.read && f.size == 10));
        assert_eq!(s.dropped, 1);
        assert!(s.incomplete());
        assert_eq!(s.image_files, 3);
        // Another pid namespace's filter sees none of this process's reads.
        let rec = Recorder::start(&root, Options::new(Filter::PidNamespace(1))).expect("start");
        fs::read(root.join("d/a")).expect("read");
        let s = rec.stop().expect("stop");
        assert!(s.files.is_empty());
        assert!(s.ignored >= 1);
        // Nor does a filter that leaves out this process's own namespace.
        let own = own_pid_namespace().expect("own pid ns");
        let rec =
            Recorder::start(&root, Options::new(Filter::OutsidePidNamespace(own))).expect("start");
        fs::read(root.join("d/b")).expect("read");
        let s = rec.stop().expect("stop");
        assert!(s.files.is_empty(), "{s:?}");
    }
}
