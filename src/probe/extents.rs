//! A file's extents as the filesystem maps them (`FS_IOC_FIEMAP` with
//! `FIEMAP_FLAG_SYNC`, so delayed writes are allocated first): on a
//! copy-on-write filesystem the `SHARED` flag says which blocks a snapshot still
//! shares with its origin — how a block-level copy-on-write is verified.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

/// `_IOWR('f', 11, struct fiemap)`.
const FS_IOC_FIEMAP: std::ffi::c_ulong = 0xc020_660b;
const FIEMAP_FLAG_SYNC: u32 = 1;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
const FIEMAP_EXTENT_DATA_INLINE: u32 = 0x200;
const FIEMAP_EXTENT_SHARED: u32 = 0x2000;
/// Extents asked for per call.
const BATCH: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RawExtent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

#[repr(C)]
struct Fiemap {
    start: u64,
    length: u64,
    flags: u32,
    mapped_extents: u32,
    extent_count: u32,
    reserved: u32,
    extents: [RawExtent; BATCH],
}

/// One extent of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Offset in the file, bytes.
    pub logical: u64,
    /// Length, bytes.
    pub length: u64,
    /// Shared with another file or snapshot (copy-on-write not yet broken).
    pub shared: bool,
    /// Stored inline in metadata (small files on btrfs; never reported shared).
    pub inline: bool,
}

impl Extent {
    /// Whether the extent covers file offset `offset`.
    pub fn covers(&self, offset: u64) -> bool {
        offset >= self.logical && offset < self.logical + self.length
    }
}

/// Every extent of the file at `path`, after syncing its delayed writes.
pub fn extents(path: &Path) -> std::io::Result<Vec<Extent>> {
    let f = File::open(path)?;
    let mut out = Vec::new();
    let mut start = 0u64;
    loop {
        let mut m = Fiemap {
            start,
            length: u64::MAX - start,
            flags: FIEMAP_FLAG_SYNC,
            mapped_extents: 0,
            extent_count: BATCH as u32,
            reserved: 0,
            extents: [RawExtent::default(); BATCH],
        };
        // SAFETY: FIEMAP fills at most `extent_count` extents of the inline array.
        unsafe { crate::sys::ioctl_ptr(f.as_fd(), FS_IOC_FIEMAP, &mut m) }?;
        let n = (m.mapped_extents as usize).min(BATCH);
        if n == 0 {
            return Ok(out);
        }
        let mut last = false;
        for e in &m.extents[..n] {
            out.push(Extent {
                logical: e.logical,
                length: e.length,
                shared: e.flags & FIEMAP_EXTENT_SHARED != 0,
                inline: e.flags & FIEMAP_EXTENT_DATA_INLINE != 0,
            });
            last |= e.flags & FIEMAP_EXTENT_LAST != 0;
        }
        let end = m.extents[n - 1].logical + m.extents[n - 1].length;
        if last || end <= start {
            return Ok(out);
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_kernel_struct() {
        assert_eq!(std::mem::size_of::<RawExtent>(), 56);
        assert_eq!(std::mem::size_of::<Fiemap>(), 32 + 56 * BATCH);
        let e = Extent {
            logical: 4096,
            length: 4096,
            shared: false,
            inline: false,
        };
        assert!(e.covers(4096) && e.covers(8191) && !e.covers(8192) && !e.covers(0));
    }
}
