//! Directories opened without trusting any path string twice: the scratch root
//! is walked from `/` one component at a time with `O_NOFOLLOW`, each step
//! checked (owner, who may write it), and everything below it is made relative
//! to the directory fds that walk returned (openat2 `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS` where the kernel has it, `O_NOFOLLOW` on the single
//! name otherwise). Another local user can then rename, replace or symlink
//! whatever they like: our fds keep pointing at the inodes we made.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{fstat, mkdirat, openat, openat2, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::IsolateError;

fn errno_io(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

/// Opens the single name `name` below `dir`, never following a symlink and
/// never leaving `dir`.
pub fn open_beneath(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    flags: OFlags,
    mode: Mode,
) -> std::io::Result<OwnedFd> {
    if name.is_empty() || name.as_bytes().contains(&b'/') || name == ".." || name == "." {
        return Err(std::io::Error::from(Errno::INVAL));
    }
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match openat2(
        dir,
        name,
        flags,
        mode,
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    ) {
        // Kernels before 5.6 (or a seccomp filter) lack openat2: the name is one
        // component and O_NOFOLLOW refuses a symlink there, which is the same.
        Err(Errno::NOSYS) | Err(Errno::PERM) => openat(dir, name, flags, mode).map_err(errno_io),
        other => other.map_err(errno_io),
    }
}

/// Opens `rel` (relative, any number of components) below `root` for
/// reading, the way an image's own paths must be read from the host: no
/// symlink followed, nothing outside `root` and no other mount reached, and
/// non-blocking (a FIFO in the image cannot hang the reader; the scratch is
/// `nodev`, so a device node there does not open).
pub fn open_read_beneath(root: BorrowedFd<'_>, rel: &Path) -> std::io::Result<std::fs::File> {
    let mut names = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => names.push(n),
            Component::CurDir => {}
            _ => return Err(std::io::Error::from(Errno::INVAL)),
        }
    }
    let Some((last, parents)) = names.split_last() else {
        return Err(std::io::Error::from(Errno::INVAL));
    };
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    match openat2(
        root,
        rel,
        flags,
        Mode::empty(),
        ResolveFlags::BENEATH
            | ResolveFlags::NO_SYMLINKS
            | ResolveFlags::NO_MAGICLINKS
            | ResolveFlags::NO_XDEV,
    ) {
        // Without openat2: one component at a time, each refusing a symlink.
        Err(Errno::NOSYS) | Err(Errno::PERM) => {
            let mut dir: Option<OwnedFd> = None;
            for name in parents {
                let next = open_dir_beneath(dir.as_ref().map_or(root, |d| d.as_fd()), name)?;
                dir = Some(next);
            }
            let parent = dir.as_ref().map_or(root, |d| d.as_fd());
            open_beneath(
                parent,
                last,
                OFlags::RDONLY | OFlags::NONBLOCK,
                Mode::empty(),
            )
            .map(std::fs::File::from)
        }
        other => other.map(std::fs::File::from).map_err(errno_io),
    }
}

/// Opens the directory `name` below `dir` (no symlink followed).
pub fn open_dir_beneath(dir: BorrowedFd<'_>, name: &OsStr) -> std::io::Result<OwnedFd> {
    open_beneath(dir, name, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty())
}

/// Makes the directory `name` below `dir` with exactly `mode` (the umask
/// cannot widen or narrow it) and opens it.
pub fn make_dir_beneath(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> std::io::Result<OwnedFd> {
    mkdirat(dir, name, Mode::from_raw_mode(mode)).map_err(errno_io)?;
    let fd = open_dir_beneath(dir, name)?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(errno_io)?;
    Ok(fd)
}

/// The uids a scratch path may belong to: root and the caller; inside a user
/// namespace also the overflow uid, which is how every id the namespace does
/// not map (host root included) shows there — the run then has no more right
/// than its caller, so nothing it can be steered into is the caller's loss alone.
fn trusted_owner(uid: u32) -> bool {
    let me = rustix::process::geteuid().as_raw();
    if uid == 0 || uid == me {
        return true;
    }
    super::in_user_namespace()
        && std::fs::read_to_string("/proc/sys/kernel/overflowuid")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .is_some_and(|o| o == uid)
}

fn refuse(
    option: &str,
    path: &Path,
    st: &rustix::fs::Stat,
    why: &str,
    what_to_do: &str,
) -> IsolateError {
    IsolateError::BadPath(format!(
        "{option} {}: owned by uid {} with mode {:04o}: {why}; {what_to_do}",
        path.display(),
        st.st_uid,
        st.st_mode & 0o7777
    ))
}

/// Opens the canonical absolute dir `root` for use as a scratch root, walking
/// from `/` without following symlinks. Every ancestor must belong to root or
/// the caller and be writable by no one else unless sticky (`/var/tmp`: others
/// can add entries but not rename or remove ours); the root itself must belong
/// to root or the caller and be writable by no one else, sticky or not. With
/// `create`, missing components are made (the root itself 0700, ancestors
/// 0755) — a dir we make ourselves is trusted as made; without, a missing
/// component ends the walk with `None` (its ancestors checked). `option` names the flag.
pub fn open_root(option: &str, root: &Path, create: bool) -> Result<Option<OwnedFd>, IsolateError> {
    let io = |what: &'static str, p: &Path| IsolateError::io(what, p.to_path_buf());
    let names: Vec<&OsStr> = root
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    if !root.is_absolute()
        || root
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(IsolateError::BadPath(format!(
            "{option} {}: not a canonical absolute path",
            root.display()
        )));
    }
    let mut fd = rustix::fs::open(
        "/",
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io("opening", Path::new("/"))(errno_io(e)))?;
    let mut here = PathBuf::from("/");
    let mut fresh = false;
    for (i, name) in names.iter().enumerate() {
        let last = i + 1 == names.len();
        // The dir `name` sits in must keep others from renaming it away.
        let st = fstat(&fd).map_err(|e| io("checking", &here)(errno_io(e)))?;
        check_ancestor(option, root, &here, &st)?;
        here.push(name);
        let next = match open_dir_beneath(fd.as_fd(), name) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) && !create => return Ok(None),
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                let mode = if last { 0o700 } else { 0o755 };
                match make_dir_beneath(fd.as_fd(), name, mode) {
                    Ok(f) => {
                        fresh = last;
                        f
                    }
                    // Someone else made it meanwhile: checked below like any other.
                    Err(e) if e.raw_os_error() == Some(Errno::EXIST.raw_os_error()) => {
                        open_dir_beneath(fd.as_fd(), name).map_err(io("opening", &here))?
                    }
                    Err(e) => return Err(io("creating", &here)(e)),
                }
            }
            Err(e) if e.raw_os_error() == Some(Errno::LOOP.raw_os_error()) => {
                return Err(IsolateError::BadPath(format!(
                    "{option} {}: {} became a symbolic link after the path was resolved; name a directory \
                     whose path no one else can change",
                    root.display(),
                    here.display()
                )))
            }
            Err(e) => return Err(io("opening", &here)(e)),
        };
        fd = next;
    }
    if !fresh {
        let st = fstat(&fd).map_err(|e| io("checking", root)(errno_io(e)))?;
        if !trusted_owner(st.st_uid) {
            return Err(refuse(
                option,
                root,
                &st,
                "another user owns it and could swap what the tool makes there",
                "name a directory owned by root (or let the tool make a fresh one: name a path that does not exist)",
            ));
        }
        if st.st_mode & 0o022 != 0 {
            return Err(refuse(
                option,
                root,
                &st,
                "others can write it and could swap what the tool makes there",
                &format!(
                    "run `chmod go-w {}` or name a fresh path (made 0700)",
                    root.display()
                ),
            ));
        }
    }
    Ok(Some(fd))
}

fn check_ancestor(
    option: &str,
    root: &Path,
    dir: &Path,
    st: &rustix::fs::Stat,
) -> Result<(), IsolateError> {
    let sticky = Mode::from_raw_mode(st.st_mode).contains(Mode::SVTX);
    if !trusted_owner(st.st_uid) {
        return Err(IsolateError::BadPath(format!(
            "{option} {}: its parent {} is owned by uid {} (mode {:04o}), who could swap the scratch dir; \
             name a scratch dir whose parents belong to root",
            root.display(),
            dir.display(),
            st.st_uid,
            st.st_mode & 0o7777
        )));
    }
    if st.st_mode & 0o022 != 0 && !sticky {
        return Err(IsolateError::BadPath(format!(
            "{option} {}: its parent {} (mode {:04o}) can be written by others, who could swap the scratch \
             dir; run `chmod go-w {}` or name a scratch dir elsewhere",
            root.display(),
            dir.display(),
            st.st_mode & 0o7777,
            dir.display()
        )));
    }
    Ok(())
}

/// `/proc/self/fd/N` of `fd`: the inode itself, for a syscall or child
/// process that takes a path (mount(2)'s target, mkfs's device).
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Takes an exclusive lock on `fd` without waiting; `Ok(false)` when another
/// open file holds it.
pub fn try_lock(fd: &impl AsFd) -> std::io::Result<bool> {
    match rustix::fs::flock(fd, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(errno_io(e)),
    }
}

/// `O_CREAT|O_EXCL` a regular file `name` below `dir` with mode 0600: it is
/// ours and new, or this fails (a symlink or anything else already there).
pub fn create_new_file(dir: BorrowedFd<'_>, name: &OsStr) -> std::io::Result<std::fs::File> {
    let fd = open_beneath(
        dir,
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::RDWR,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(std::fs::File::from(fd))
}

/// Whether the directory open at `fd` still has a name (not removed meanwhile).
pub fn still_linked(fd: &impl AsFd) -> std::io::Result<bool> {
    Ok(fstat(fd).map_err(errno_io)?.st_nlink > 0)
}

/// Whether `name` below `dir` is a regular file (a symlink there is not).
pub fn is_regular_file(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
    })
}

/// The names in the directory open at `dir` (`.` and `..` left out).
pub fn names_in(dir: BorrowedFd<'_>) -> std::io::Result<Vec<std::ffi::OsString>> {
    let entries = rustix::fs::Dir::read_from(dir).map_err(errno_io)?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(errno_io)?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    Ok(names)
}

/// Removes the file `name` below `dir` (the name, not whatever it points to).
pub fn unlink_beneath(dir: BorrowedFd<'_>, name: &OsStr) -> std::io::Result<()> {
    rustix::fs::unlinkat(dir, name, rustix::fs::AtFlags::empty()).map_err(errno_io)
}

/// Whether the name `path` (its last component not followed) is the directory
/// open at `fd`: same device and inode.
pub fn same_dir(fd: BorrowedFd<'_>, path: &Path) -> std::io::Result<bool> {
    let held = fstat(fd).map_err(errno_io)?;
    match rustix::fs::lstat(path) {
        Ok(named) => Ok(named.st_dev == held.st_dev && named.st_ino == held.st_ino),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(errno_io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// An image's paths are read below its root only: a symlink (to a host
    /// file or out through a directory), `..` and an absolute path are
    /// refused; a FIFO opens without waiting for a writer.
    #[test]
    fn image_paths_are_read_beneath_their_root_only() {
        let d = tempfile::tempdir().expect("tempdir");
        let outside = d.path().join("host-secret");
        std::fs::write(&outside, "host").expect("write");
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("usr/lib")).expect("mkdir");
        std::fs::write(root.join("usr/lib/x.so"), "image").expect("write");
        std::os::unix::fs::symlink(&outside, root.join("usr/lib/abs")).expect("symlink");
        std::os::unix::fs::symlink("../../../host-secret", root.join("usr/lib/rel"))
            .expect("symlink");
        std::os::unix::fs::symlink("/", root.join("up")).expect("symlink");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("fifo"),
            rustix::fs::FileType::Fifo,
            Mode::RUSR,
            0,
        )
        .expect("mkfifo");
        let dir = std::fs::File::open(&root).expect("root");
        let read = |p: &str| -> std::io::Result<String> {
            let mut s = String::new();
            open_read_beneath(dir.as_fd(), Path::new(p))?.read_to_string(&mut s)?;
            Ok(s)
        };
        assert_eq!(read("usr/lib/x.so").expect("inside"), "image");
        assert_eq!(read("./usr/lib/x.so").expect("inside"), "image");
        for refused in [
            "usr/lib/abs",
            "usr/lib/rel",
            "up/tmp",
            "../host-secret",
            "usr/../../host-secret",
            "/etc/hostname",
            "",
        ] {
            assert!(read(refused).is_err(), "{refused} was read");
        }
        assert!(open_read_beneath(dir.as_fd(), Path::new("fifo")).is_ok());
    }
}
