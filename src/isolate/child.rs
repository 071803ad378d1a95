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
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use super::IsolateError;

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
}

impl Status {
    const fn new() -> Status {
        Status {
            step: 0,
            errno: 0,
            elapsed_ns: 0,
            log_len: 0,
            log: [0; 240],
        }
    }

    fn log(&self) -> String {
        let n = (self.log_len as usize).min(self.log.len());
        String::from_utf8_lossy(&self.log[..n]).trim().to_string()
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec; async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Writes the whole status, retrying on EINTR (async-signal-safe).
fn send_status(fd: RawFd, st: &Status) {
    let bytes = std::ptr::from_ref(st).cast::<u8>();
    let len = std::mem::size_of::<Status>();
    let mut off = 0;
    while off < len {
        // SAFETY: the pointer covers `len` bytes of `st`.
        let n = unsafe { libc::write(fd, bytes.add(off).cast(), len - off) };
        if n < 0 && last_errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            return;
        }
        off += n as usize;
    }
}

/// Reads a whole status; None when the child died before writing one.
fn read_status(fd: &OwnedFd) -> Option<Status> {
    let mut st = Status::new();
    let bytes = std::ptr::from_mut(&mut st).cast::<u8>();
    let len = std::mem::size_of::<Status>();
    let mut off = 0;
    while off < len {
        // SAFETY: the pointer covers `len` bytes of `st`.
        let n = unsafe { libc::read(fd.as_raw_fd(), bytes.add(off).cast(), len - off) };
        if n < 0 && last_errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            return None;
        }
        off += n as usize;
    }
    Some(st)
}

/// Waits for `pid` (EINTR retried): the child is always reaped.
fn reap(pid: libc::pid_t) {
    loop {
        let mut status = 0;
        // SAFETY: waits for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r >= 0 || last_errno() != libc::EINTR {
            return;
        }
    }
}

/// Dies with us: a child left running after a SIGKILL of the parent would hold
/// our mounts' layers open. Async-signal-safe.
fn die_with_parent(parent: libc::pid_t) -> bool {
    // SAFETY: prctl and getppid are async-signal-safe syscalls.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) == 0
            && libc::getppid() == parent
    }
}

/// An overlay to build inside a fresh user namespace. Layers are absolute
/// paths (at most 255 bytes each, fsconfig's limit), resolved by the child in
/// its own copy of the mount namespace: overlay clones the layers' mounts
/// privately, which it cannot do for mounts of another namespace, so fds
/// opened by the parent are refused ("failed to clone upperpath").
pub struct UsernsOverlay<'a> {
    /// Lower layers, topmost first.
    pub lowers: &'a [CString],
    /// Upper and work dirs.
    pub upper_work: Option<(&'a CString, &'a CString)>,
    /// Flags (`userxattr`, `volatile`).
    pub flags: &'a [CString],
    /// Key/value options.
    pub strings: &'a [(CString, CString)],
}

const FSCONFIG_SET_FLAG: libc::c_long = 0;
const FSCONFIG_SET_STRING: libc::c_long = 1;
const FSCONFIG_CMD_CREATE: libc::c_long = 6;
const FSMOUNT_CLOEXEC: libc::c_long = 1;

/// Raw fsconfig (async-signal-safe).
fn fsconfig(
    fd: RawFd,
    cmd: libc::c_long,
    key: *const libc::c_char,
    value: *const libc::c_void,
    aux: libc::c_long,
) -> bool {
    // SAFETY: a raw syscall with pointers to NUL-terminated strings or null.
    unsafe { libc::syscall(libc::SYS_fsconfig, fd, cmd, key, value, aux) >= 0 }
}

/// The child's half: unshare, wait for the maps, build the overlay, send its fd.
fn userns_child(sock: RawFd, parent: libc::pid_t, spec: &UsernsOverlay<'_>) -> ! {
    const OVERLAY: &CStr = c"overlay";
    const LOWER: &CStr = c"lowerdir+";
    const UPPER: &CStr = c"upperdir";
    const WORK: &CStr = c"workdir";
    let mut st = Status::new();
    let fail = |st: &mut Status| {
        st.errno = last_errno();
    };
    'run: {
        st.step = 1;
        if !die_with_parent(parent) {
            st.errno = libc::ESRCH;
            break 'run;
        }
        // SAFETY: unshare is a syscall; we are single-threaded here.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) } < 0 {
            fail(&mut st);
            break 'run;
        }
        st.step = 2;
        let mut b = [b'r'];
        // SAFETY: one byte to and from the socket.
        if unsafe { libc::write(sock, b.as_ptr().cast(), 1) } != 1
            || unsafe { libc::read(sock, b.as_mut_ptr().cast(), 1) } != 1
            || b[0] != b'g'
        {
            st.errno = libc::EPIPE;
            break 'run;
        }
        st.step = 3;
        // SAFETY: plain syscalls; the maps make 0 a valid id in the namespace.
        if unsafe { libc::setresgid(0, 0, 0) } < 0 || unsafe { libc::setresuid(0, 0, 0) } < 0 {
            fail(&mut st);
            break 'run;
        }
        st.step = 4;
        let t0 = now_ns();
        // SAFETY: raw fsopen with a static name.
        let fs = unsafe { libc::syscall(libc::SYS_fsopen, OVERLAY.as_ptr(), 1 as libc::c_long) }
            as RawFd;
        if fs < 0 {
            fail(&mut st);
            break 'run;
        }
        let mut ok = true;
        for l in spec.lowers {
            ok = ok
                && fsconfig(
                    fs,
                    FSCONFIG_SET_STRING,
                    LOWER.as_ptr(),
                    l.as_ptr().cast(),
                    0,
                );
        }
        if let Some((u, w)) = spec.upper_work {
            ok = ok
                && fsconfig(
                    fs,
                    FSCONFIG_SET_STRING,
                    UPPER.as_ptr(),
                    u.as_ptr().cast(),
                    0,
                );
            ok = ok && fsconfig(fs, FSCONFIG_SET_STRING, WORK.as_ptr(), w.as_ptr().cast(), 0);
        }
        for f in spec.flags {
            ok = ok && fsconfig(fs, FSCONFIG_SET_FLAG, f.as_ptr(), std::ptr::null(), 0);
        }
        for (k, v) in spec.strings {
            ok = ok && fsconfig(fs, FSCONFIG_SET_STRING, k.as_ptr(), v.as_ptr().cast(), 0);
        }
        ok = ok
            && fsconfig(
                fs,
                FSCONFIG_CMD_CREATE,
                std::ptr::null(),
                std::ptr::null(),
                0,
            );
        let mnt = if ok {
            // SAFETY: raw fsmount on the configured context.
            unsafe {
                libc::syscall(libc::SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0 as libc::c_long) as RawFd
            }
        } else {
            -1
        };
        st.elapsed_ns = now_ns() - t0;
        if mnt < 0 {
            fail(&mut st);
            // The kernel's reason, from the context log.
            // SAFETY: reads into a stack buffer.
            let n = unsafe { libc::read(fs, st.log.as_mut_ptr().cast(), st.log.len()) };
            st.log_len = n.max(0) as u32;
            break 'run;
        }
        st.step = 5;
        // One status and the mount fd in a single message.
        let mut iov = libc::iovec {
            iov_base: std::ptr::from_mut(&mut st).cast(),
            iov_len: std::mem::size_of::<Status>(),
        };
        let mut cbuf = [0u64; 8];
        // SAFETY: msghdr/cmsghdr arithmetic on a stack buffer large enough for one fd.
        unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(4) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), mnt);
            libc::sendmsg(sock, &msg, 0);
            libc::_exit(0);
        }
    }
    // Before the handshake the parent waits for one byte: 'e' says a status follows.
    if st.step <= 1 {
        let e = [b'e'];
        // SAFETY: one byte to the socket.
        unsafe { libc::write(sock, e.as_ptr().cast(), 1) };
    }
    send_status(sock, &st);
    // SAFETY: leaves the child without running the parent's destructors.
    unsafe { libc::_exit(0) }
}

/// Receives the status and, on success, the mount fd.
fn recv_mount(sock: &OwnedFd) -> Option<(Status, Option<OwnedFd>)> {
    let mut st = Status::new();
    let mut iov = libc::iovec {
        iov_base: std::ptr::from_mut(&mut st).cast(),
        iov_len: std::mem::size_of::<Status>(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: recvmsg into a status and a control buffer sized for one fd.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        let n = loop {
            let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n < 0 && last_errno() == libc::EINTR {
                continue;
            }
            break n;
        };
        if n != std::mem::size_of::<Status>() as isize {
            return None;
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        let fd = if !cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS
        {
            Some(OwnedFd::from_raw_fd(std::ptr::read_unaligned(
                libc::CMSG_DATA(cmsg).cast::<RawFd>(),
            )))
        } else {
            None
        };
        Some((st, fd))
    }
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
    let mut fds = [0; 2];
    // SAFETY: socketpair fills two fds.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } < 0
    {
        return Err(IsolateError::io("making a socket pair for", target)(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: both fds were just returned to us.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: getpid is always safe.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the child only makes async-signal-safe syscalls (userns_child).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(IsolateError::io(
            "forking a rootless mount helper for",
            target,
        )(std::io::Error::last_os_error()));
    }
    if pid == 0 {
        userns_child(theirs.as_raw_fd(), parent, spec);
    }
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
                4 => "fsopen/fsconfig/fsmount",
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
    loop {
        // SAFETY: one byte into a stack buffer.
        let n = unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        if n < 0 && last_errno() == libc::EINTR {
            continue;
        }
        return (n == 1).then_some(b[0]);
    }
}

fn write_byte(fd: &OwnedFd, b: u8) -> bool {
    // SAFETY: one byte from a stack value.
    unsafe { libc::write(fd.as_raw_fd(), std::ptr::from_ref(&b).cast(), 1) == 1 }
}
