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

/// Evicts one file's clean pages (`POSIX_FADV_DONTNEED`) — the targeted way.
pub fn evict_file(path: &Path) -> std::io::Result<()> {
    let f = File::open(path)?;
    match f.sync_all() {
        // A read-only filesystem without fsync (EROFS) has nothing dirty.
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EINVAL as i32) => {}
        r => r?,
    }
    nix::fcntl::posix_fadvise(
        f.as_raw_fd(),
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    )?;
    Ok(())
}
