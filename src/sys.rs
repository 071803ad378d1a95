//! The system calls neither `nix` nor `rustix` wraps the way we need them, and
//! the only file that names the `libc` crate. Everything else reaches the
//! kernel through `nix` (the brief's crate) or, for what nix lacks — the new
//! mount API, xattrs and `openat2` on a held fd — through `rustix`, never both
//! in one file.
//!
//! Three kinds live here, each behind one wrapper whose `// SAFETY:` says why
//! it is sound:
//! - calls for a child between `fork` and `_exit` in a threaded process,
//!   which must not allocate (nix's `sendmsg` builds its control buffer in a
//!   `Vec`; nix has no `fsopen` and no `_exit`): [`fsopen`], [`fsconfig`],
//!   [`fsmount`], [`open_tree_clone`], [`send_with_fd`] (with [`recv_with_fd`] as the parent's
//!   half), [`exit_now`];
//! - calls neither crate has: [`mount_setattr`], [`resident_pages`] (`mincore`);
//! - `ioctl`s on our own structs ([`ioctl_ptr`], [`ioctl_none`]): the request
//!   decides what the kernel reads and writes, so these stay `unsafe` and each
//!   caller says what its struct holds.

use std::ffi::{c_int, c_ulong, CStr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The errno of the last failed call, as an i32 (EIO when there is none).
pub fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// `_exit(code)`: leaves a forked child at once, without the parent's atexit
/// handlers or destructors (nix 0.29 has no `_exit`).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// `ioctl(fd, request, arg)` with a pointer argument.
///
/// # Safety
/// `arg` must point to a live value of the layout `request` reads and writes,
/// at least as large as the kernel may write.
pub unsafe fn ioctl_ptr<T>(
    fd: BorrowedFd<'_>,
    request: c_ulong,
    arg: *mut T,
) -> std::io::Result<c_int> {
    // SAFETY: the caller vouches for `arg` (see above); the fd is borrowed live.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request, arg) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

/// `ioctl(fd, request, 0)`: a request that takes no argument.
///
/// # Safety
/// `request` must be one that reads and writes no memory of ours.
pub unsafe fn ioctl_none(fd: BorrowedFd<'_>, request: c_ulong) -> std::io::Result<c_int> {
    // SAFETY: the caller vouches that the request dereferences nothing.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request, 0 as c_ulong) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

/// `fsopen(name, FSOPEN_CLOEXEC)` as a raw fd (negative on failure, errno
/// set). Async-signal-safe: for a forked child.
pub fn fsopen(name: &CStr) -> RawFd {
    const FSOPEN_CLOEXEC: libc::c_long = 1;
    // SAFETY: a raw syscall given a NUL-terminated string that outlives it.
    unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) as RawFd }
}

/// What an [`fsconfig`] call does.
#[derive(Debug, Clone, Copy)]
pub enum FsConfig<'a> {
    /// `FSCONFIG_SET_FLAG key`.
    Flag(&'a CStr),
    /// `FSCONFIG_SET_STRING key=value`.
    String(&'a CStr, &'a CStr),
    /// `FSCONFIG_CMD_CREATE`.
    Create,
}

/// Raw `fsconfig` on the context `fs`; whether the kernel took it (errno set
/// when not). Async-signal-safe: for a forked child.
pub fn fsconfig(fs: RawFd, op: FsConfig<'_>) -> bool {
    const SET_FLAG: libc::c_long = 0;
    const SET_STRING: libc::c_long = 1;
    const CMD_CREATE: libc::c_long = 6;
    let null = std::ptr::null::<libc::c_char>();
    let (cmd, key, value) = match op {
        FsConfig::Flag(k) => (SET_FLAG, k.as_ptr(), null),
        FsConfig::String(k, v) => (SET_STRING, k.as_ptr(), v.as_ptr()),
        FsConfig::Create => (CMD_CREATE, null, null),
    };
    // SAFETY: a raw syscall with NUL-terminated strings that outlive it, or nulls
    // where the command takes none.
    unsafe { libc::syscall(libc::SYS_fsconfig, fs, cmd, key, value, 0 as libc::c_long) >= 0 }
}

/// Raw `fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)`:
/// the detached mount's fd, negative on failure (errno set). Async-signal-safe: for a forked child.
pub fn fsmount(fs: RawFd) -> RawFd {
    const FSMOUNT_CLOEXEC: libc::c_long = 1;
    // MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV: an image's setuid files and
    // device nodes stay inert through the container's mount.
    const ATTRS: libc::c_long = 0x2 | 0x4;
    // SAFETY: a raw syscall on integers only.
    unsafe { libc::syscall(libc::SYS_fsmount, fs, FSMOUNT_CLOEXEC, ATTRS) as RawFd }
}

/// `open_tree(path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)`: a detached copy of
/// the mount at `path` (a forked child's, so no allocation). Returns the fd,
/// or -1 with errno set.
pub fn open_tree_clone(path: &CStr) -> RawFd {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    // SAFETY: `path` is NUL-terminated and outlives the call; the flags ask
    // for a new fd only.
    unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        ) as RawFd
    }
}

/// Sends `bytes` and the descriptor `fd` in one message on the socket `sock`
/// (`SCM_RIGHTS`), from a stack buffer: async-signal-safe, for a forked child.
/// Whether the whole message went.
pub fn send_with_fd(sock: RawFd, bytes: &[u8], fd: RawFd) -> bool {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: the msghdr points at a live iovec over `bytes` (only read) and a
    // zeroed stack control buffer of 64 bytes, more than CMSG_SPACE(4); the
    // CMSG_* macros stay inside that buffer.
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
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        libc::sendmsg(sock, &msg, 0) == bytes.len() as isize
    }
}

/// Receives one message of exactly `buf.len()` bytes from `sock` and the
/// descriptor sent with it, if any (close-on-exec). `None` when the message
/// is short or the peer is gone. EINTR is retried.
pub fn recv_with_fd(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Option<Option<OwnedFd>> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: recvmsg writes at most `buf.len()` bytes through the iovec and at
    // most msg_controllen bytes into the stack control buffer; the fd read from
    // an SCM_RIGHTS message is new and ours alone.
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
        if n != buf.len() as isize {
            return None;
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        let fd = (!cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS)
            .then(|| {
                OwnedFd::from_raw_fd(std::ptr::read_unaligned(
                    libc::CMSG_DATA(cmsg).cast::<RawFd>(),
                ))
            });
        Some(fd)
    }
}

/// `MOUNT_ATTR_RDONLY`.
pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
/// `MOUNT_ATTR_IDMAP`.
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `struct mount_attr` (Linux 5.12).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH, attr)`: the one raw call both
/// wrappers below make.
fn raw_mount_setattr(fd: RawFd, attr: &MountAttr) -> std::io::Result<()> {
    // SAFETY: an empty C string and a live struct of the size passed; the
    // kernel refuses a bad fd before reading anything else.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `mount_setattr(tree, "", AT_EMPTY_PATH, {attr_set, userns_fd})` on the
/// detached or attached mount `tree` (nix and rustix lack it).
pub fn mount_setattr(
    tree: BorrowedFd<'_>,
    attr_set: u64,
    userns: Option<BorrowedFd<'_>>,
) -> std::io::Result<()> {
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.map_or(0, |u| u.as_raw_fd() as u64),
    };
    raw_mount_setattr(tree.as_raw_fd(), &attr)
}

/// Whether this kernel has `mount_setattr(2)` at all (Linux 5.12): an invalid
/// call (fd -1) fails with EBADF where it exists, ENOSYS where it does not.
pub fn mount_setattr_available() -> bool {
    let attr = MountAttr {
        attr_set: 0,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    !matches!(raw_mount_setattr(-1, &attr), Err(e) if e.raw_os_error() == Some(libc::ENOSYS))
}

/// One byte per page of the first `len` bytes of `file`, bit 0 set where the
/// page is in the page cache now (`mincore` over a shared read-only map).
pub fn resident_pages(file: BorrowedFd<'_>, len: usize, page: usize) -> std::io::Result<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: a fresh read-only shared mapping of `len` bytes of a live fd; it
    // is only passed to mincore, which writes one byte per page into `vec`
    // (sized for `len` at `page` bytes a page), and unmapped before return.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        if addr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let mut vec = vec![0u8; len.div_ceil(page)];
        let rc = libc::mincore(addr, len, vec.as_mut_ptr());
        let err = std::io::Error::last_os_error();
        libc::munmap(addr, len);
        if rc != 0 {
            return Err(err);
        }
        Ok(vec)
    }
}
