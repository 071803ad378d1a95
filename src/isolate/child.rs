//! Short-lived forked children for mount steps that need per-process state a
//! multi-threaded process must not change in place: the working directory
//! (containerd's relative lowerdirs, resolved against the cwd by `mount(2)`)
//! and the user namespace (a rootless overlay is made inside one).
//!
//! After `fork()` in a multi-threaded process only async-signal-safe calls are
//! allowed in the child: it runs raw syscalls on data the parent prepared
//! before the fork (C strings, fds, stack buffers) — no allocation, no locks, no
//! unwinding — reports back through a pipe or socket, and leaves with `_exit`.
//! It dies with us (`PR_SET_PDEATHSIG`) and is always reaped.

use std::ffi::{CStr, CString};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::time::{clock_gettime, ClockId};
use nix::unistd::{Gid, Pid, Uid};

use super::IsolateError;
use crate::sys::{self, FsConfig};

/// What a child reports: the step it reached, the errno it failed with (0 =
/// success), the time of the mount syscalls, and the kernel's own words (the
/// fsopen context log) when there are any.
#[repr(C)]
#[derive(Clone, Copy)]
struct Status {
    step: u32,
    errno: i32,
    elapsed_ns: u64,
    log_len: u32,
    log: [u8; 240],
    /// Explicit, so the struct has no padding and all of it is bytes.
    pad: [u8; 4],
}

impl Status {
    const fn new() -> Status {
        Status {
            step: 0,
            errno: 0,
            elapsed_ns: 0,
            log_len: 0,
            log: [0; 240],
            pad: [0; 4],
        }
    }

    fn as_bytes(&self) -> &[u8] {
        // SAFETY: a repr(C) struct of integers and byte arrays with no padding
        // (see `pad`): every byte is initialised.
        unsafe {
            std::slice::from_raw_parts(std::ptr::from_ref(self).cast(), std::mem::size_of::<Self>())
        }
    }

    fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and any bytes are a valid Status.
        unsafe {
            std::slice::from_raw_parts_mut(
                std::ptr::from_mut(self).cast(),
                std::mem::size_of::<Self>(),
            )
        }
    }

    fn log(&self) -> String {
        let n = (self.log_len as usize).min(self.log.len());
        String::from_utf8_lossy(&self.log[..n]).trim().to_string()
    }
}

fn last_errno() -> i32 {
    Errno::last_raw()
}

fn now_ns() -> u64 {
    // CLOCK_MONOTONIC cannot fail; 0 would only shorten the reported time.
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|ts| ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Writes all of `bytes`, retrying on EINTR (async-signal-safe: one syscall a
/// round, no allocation).
fn write_all(fd: BorrowedFd<'_>, bytes: &[u8]) -> bool {
    let mut off = 0;
    while off < bytes.len() {
        match nix::unistd::write(fd, &bytes[off..]) {
            Ok(0) => return false,
            Ok(n) => off += n,
            Err(Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
    true
}

/// Fills `buf`, retrying on EINTR; false when the peer closed first.
fn read_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> bool {
    let mut off = 0;
    while off < buf.len() {
        match nix::unistd::read(fd.as_raw_fd(), &mut buf[off..]) {
            Ok(0) => return false,
            Ok(n) => off += n,
            Err(Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
    true
}

/// Reads a whole status; None when the child died before writing one.
fn read_status(fd: &OwnedFd) -> Option<Status> {
    let mut st = Status::new();
    read_exact(fd.as_fd(), st.as_bytes_mut()).then_some(st)
}

/// Waits for `pid` (EINTR retried): the child is always reaped.
fn reap(pid: Pid) {
    while let Err(Errno::EINTR) = nix::sys::wait::waitpid(pid, None) {}
}

/// Dies with us: a child left running after a SIGKILL of the parent would hold
/// our mounts' layers open. Async-signal-safe.
fn die_with_parent(parent: Pid) -> bool {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_ok() && nix::unistd::getppid() == parent
}

/// An overlay to build inside a fresh user namespace. Paths are resolved by
/// the child in its own copy of the mount namespace: overlay clones the
/// layers' mounts privately, which it cannot do for mounts of another
/// namespace, so fds opened by the parent are refused ("failed to clone
/// upperpath").
#[derive(Debug, Clone, Copy)]
pub enum UsernsOverlay<'a> {
    /// `fsopen`/`fsconfig`/`fsmount` with one `lowerdir+` per layer (Linux 6.8
    /// and later); the mount is detached from the start.
    NewApi {
        /// Lower layers, topmost first: absolute, at most 255 bytes each
        /// (fsconfig's limit for one string).
        lowers: &'a [CString],
        /// Upper and work dirs.
        upper_work: Option<(&'a CString, &'a CString)>,
        /// Flags (`userxattr`, `volatile`).
        flags: &'a [CString],
        /// Key/value options.
        strings: &'a [(CString, CString)],
    },
    /// `mount(2)` with the whole option string (at most one page) on `at` in
    /// the child's own mount namespace, then `open_tree(OPEN_TREE_CLONE)` of
    /// it: a detached copy that outlives the namespace. For kernels without
    /// `lowerdir+` (before 6.8), where a `lowerdir` of several layers does
    /// not fit fsconfig's 255-byte string.
    Classic {
        /// The mount point (absolute; it exists in the child's copy of the
        /// namespace too).
        at: &'a CString,
        /// `lowerdir=…,upperdir=…,workdir=…,userxattr,…`.
        data: &'a CString,
    },
}

/// The child's half: unshare, wait for the maps, build the overlay, send its fd.
/// Only async-signal-safe calls (one syscall each, no allocation) until `_exit`.
fn userns_child(sock: RawFd, parent: Pid, spec: &UsernsOverlay<'_>) -> ! {
    const OVERLAY: &CStr = c"overlay";
    const LOWER: &CStr = c"lowerdir+";
    const UPPER: &CStr = c"upperdir";
    const WORK: &CStr = c"workdir";
    // SAFETY: the parent keeps its end of the pair open until it reaps us.
    let sock = unsafe { BorrowedFd::borrow_raw(sock) };
    let mut st = Status::new();
    'run: {
        st.step = 1;
        if !die_with_parent(parent) {
            st.errno = Errno::ESRCH as i32;
            break 'run;
        }
        if let Err(e) = nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS) {
            st.errno = e as i32;
            break 'run;
        }
        st.step = 2;
        let mut b = [b'r'];
        if !write_all(sock, &b) || !read_exact(sock, &mut b) || b[0] != b'g' {
            st.errno = Errno::EPIPE as i32;
            break 'run;
        }
        st.step = 3;
        // The maps make 0 a valid id in the namespace.
        let root = (Gid::from_raw(0), Uid::from_raw(0));
        if let Err(e) = nix::unistd::setresgid(root.0, root.0, root.0)
            .and_then(|()| nix::unistd::setresuid(root.1, root.1, root.1))
        {
            st.errno = e as i32;
            break 'run;
        }
        st.step = 4;
        let t0 = now_ns();
        let mnt = match *spec {
            UsernsOverlay::NewApi {
                lowers,
                upper_work,
                flags,
                strings,
            } => {
                let fs = sys::fsopen(OVERLAY);
                if fs < 0 {
                    st.errno = last_errno();
                    break 'run;
                }
                let mut ok = true;
                for l in lowers {
                    ok = ok && sys::fsconfig(fs, FsConfig::String(LOWER, l));
                }
                if let Some((u, w)) = upper_work {
                    ok = ok && sys::fsconfig(fs, FsConfig::String(UPPER, u));
                    ok = ok && sys::fsconfig(fs, FsConfig::String(WORK, w));
                }
                for f in flags {
                    ok = ok && sys::fsconfig(fs, FsConfig::Flag(f));
                }
                for (k, v) in strings {
                    ok = ok && sys::fsconfig(fs, FsConfig::String(k, v));
                }
                ok = ok && sys::fsconfig(fs, FsConfig::Create);
                let mnt = if ok { sys::fsmount(fs) } else { -1 };
                if mnt < 0 {
                    st.errno = last_errno();
                    // The kernel's reason, from the context log.
                    let n = nix::unistd::read(fs, &mut st.log).unwrap_or(0);
                    st.log_len = n as u32;
                    break 'run;
                }
                st.elapsed_ns = now_ns() - t0;
                mnt
            }
            UsernsOverlay::Classic { at, data } => {
                // CStr arguments: nix passes them through without copying.
                if let Err(e) = nix::mount::mount(
                    Some(OVERLAY),
                    at.as_c_str(),
                    Some(OVERLAY),
                    // An image's setuid files and device nodes stay inert.
                    nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
                    Some(data.as_c_str()),
                ) {
                    st.errno = e as i32;
                    break 'run;
                }
                // The mount's time; the clone below is how it travels.
                st.elapsed_ns = now_ns() - t0;
                st.step = 5;
                // The namespace (and this mount) ends with us; the clone is
                // detached and travels as an fd.
                let mnt = sys::open_tree_clone(at);
                if mnt < 0 {
                    st.errno = last_errno();
                    break 'run;
                }
                mnt
            }
        };
        st.step = 6;
        // One status and the mount fd in a single message.
        sys::send_with_fd(sock.as_raw_fd(), st.as_bytes(), mnt);
        crate::sys::exit_now(0);
    }
    // Before the handshake the parent waits for one byte: 'e' says a status follows.
    if st.step <= 1 {
        write_all(sock, b"e");
    }
    write_all(sock, st.as_bytes());
    // Leaves the child without running the parent's destructors.
    crate::sys::exit_now(0)
}

/// Receives the status and, on success, the mount fd.
fn recv_mount(sock: &OwnedFd) -> Option<(Status, Option<OwnedFd>)> {
    let mut st = Status::new();
    let fd = sys::recv_with_fd(sock.as_fd(), st.as_bytes_mut())?;
    Some((st, fd))
}

/// Builds an overlay inside a fresh user namespace with the identity map
/// `0 0 4294967295` (so on-disk ids stay those of root-made images; a shifted
/// map would mount silently read-only) and hands back its detached mount fd:
/// a rootless mount, made from a root process without leaving its namespace.
/// Returns the fd and the time of the fsopen…fsmount syscalls in the child.
pub fn overlay_in_user_namespace(
    spec: &UsernsOverlay<'_>,
    target: &Path,
) -> Result<(OwnedFd, Duration), IsolateError> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| IsolateError::io("making a socket pair for", target)(e.into()))?;
    let parent = nix::unistd::getpid();
    // SAFETY: the child only makes async-signal-safe syscalls (userns_child).
    let pid = match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => userns_child(theirs.as_raw_fd(), parent, spec),
        Ok(nix::unistd::ForkResult::Parent { child }) => child,
        Err(e) => {
            return Err(IsolateError::io(
                "forking a rootless mount helper for",
                target,
            )(e.into()))
        }
    };
    let mut mount_fd: Option<OwnedFd> = None;
    drop(theirs);
    let result = (|| -> Result<Status, IsolateError> {
        match read_byte(&ours) {
            Some(b'r') => {}
            // The helper failed before it could ask for the maps: its status follows.
            Some(b'e') => return read_status(&ours).ok_or_else(|| died(target)),
            _ => return Err(died(target)),
        }
        // The child is in its own user namespace now: map root to root, all ids.
        for map in ["uid_map", "gid_map"] {
            let path = format!("/proc/{pid}/{map}");
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|mut f| f.write_all(b"0 0 4294967295\n"))
                .map_err(IsolateError::io("writing", path.clone()))?;
        }
        if !write_byte(&ours, b'g') {
            return Err(died(target));
        }
        let (st, fd) = recv_mount(&ours).ok_or_else(|| died(target))?;
        match fd {
            Some(fd) if st.errno == 0 => {
                mount_fd = Some(fd);
                Ok(st)
            }
            _ => Ok(st),
        }
    })();
    reap(pid);
    let st = result?;
    match mount_fd {
        Some(fd) if st.errno == 0 => Ok((fd, Duration::from_nanos(st.elapsed_ns))),
        _ => {
            let step = match st.step {
                1 => "unshare(CLONE_NEWUSER|CLONE_NEWNS)",
                2 => "waiting for the id maps",
                3 => "setresuid/setresgid(0)",
                4 => match spec {
                    UsernsOverlay::NewApi { .. } => "fsopen/fsconfig/fsmount",
                    UsernsOverlay::Classic { .. } => "mount(2)",
                },
                5 => "open_tree(OPEN_TREE_CLONE)",
                _ => "sending the mount fd",
            };
            let log = st.log();
            Err(IsolateError::Mount {
                fstype: "overlay (in a user namespace)".into(),
                target: target.to_path_buf(),
                source: std::io::Error::new(
                    std::io::Error::from_raw_os_error(st.errno.max(1)).kind(),
                    format!(
                        "{step}: {}{}",
                        std::io::Error::from_raw_os_error(st.errno.max(1)),
                        if log.is_empty() {
                            String::new()
                        } else {
                            format!(" (kernel: {log})")
                        }
                    ),
                ),
            })
        }
    }
}

fn died(target: &Path) -> IsolateError {
    IsolateError::Command {
        command: format!("rootless mount helper for {}", target.display()),
        detail: "the child died before reporting".into(),
    }
}

fn read_byte(fd: &OwnedFd) -> Option<u8> {
    let mut b = [0u8];
    read_exact(fd.as_fd(), &mut b).then_some(b[0])
}

fn write_byte(fd: &OwnedFd, b: u8) -> bool {
    write_all(fd.as_fd(), &[b])
}
