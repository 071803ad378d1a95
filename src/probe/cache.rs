//! Cache control for cold measurements. Prefer the targeted ways (remounting the
//! scratch fs, `posix_fadvise`); `drop_caches` is host-wide and only when asked.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// `sync; echo 3 > /proc/sys/vm/drop_caches` (root only; affects the whole host).
pub fn drop_caches() -> std::io::Result<()> {
    nix::unistd::sync();
    std::fs::write("/proc/sys/vm/drop_caches", "3")
}

/// Whether this process may write `drop_caches`.
pub fn drop_caches_permitted() -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/vm/drop_caches")
        .is_ok()
}

/// Evicts one file's clean pages (`POSIX_FADV_DONTNEED`) — the targeted way.
pub fn evict_file(path: &Path) -> std::io::Result<()> {
    let f = File::open(path)?;
    match f.sync_all() {
        // A read-only filesystem without fsync (EROFS) has nothing dirty.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
        r => r?,
    }
    // SAFETY: plain syscall on a valid fd.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(())
}
