//! What btrfs reports about its space, read with `BTRFS_IOC_SPACE_INFO` (what
//! `btrfs filesystem usage` prints as "Used"). `statvfs` is not exact there:
//! its used bytes follow chunk allocation, and it has no inode count at all
//! (`f_files = f_ffree = 0`: btrfs has no inode limit, metadata bytes are the
//! resource).

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use super::IsolateError;

/// `_IOWR(0x94, 20, struct btrfs_ioctl_space_args)`.
const BTRFS_IOC_SPACE_INFO: std::ffi::c_ulong = 0xc010_9414;

const BLOCK_GROUP_DATA: u64 = 1 << 0;
const BLOCK_GROUP_SYSTEM: u64 = 1 << 1;
const BLOCK_GROUP_METADATA: u64 = 1 << 2;
const BLOCK_GROUP_RAID1: u64 = 1 << 4;
const BLOCK_GROUP_DUP: u64 = 1 << 5;
const BLOCK_GROUP_RAID10: u64 = 1 << 6;
const BLOCK_GROUP_RAID1C3: u64 = 1 << 9;
const BLOCK_GROUP_RAID1C4: u64 = 1 << 10;
/// The global reserve is reported as a space of its own; it is not usage.
const SPACE_INFO_GLOBAL_RSV: u64 = 1 << 49;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct SpaceInfo {
    flags: u64,
    total_bytes: u64,
    used_bytes: u64,
}

#[repr(C)]
struct SpaceArgs {
    space_slots: u64,
    total_spaces: u64,
    spaces: [SpaceInfo; 16],
}

/// Bytes in use on a btrfs filesystem, by block group type, counted on disk
/// (a DUP or RAID1 profile stores every byte twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BtrfsUsage {
    /// File data, on disk.
    pub data_bytes: u64,
    /// Metadata (trees, inline files), on disk.
    pub metadata_bytes: u64,
    /// System chunks, on disk.
    pub system_bytes: u64,
}

impl BtrfsUsage {
    /// Everything in use, on disk.
    pub fn used_bytes(&self) -> u64 {
        self.data_bytes + self.metadata_bytes + self.system_bytes
    }
}

fn copies(flags: u64) -> u64 {
    if flags & BLOCK_GROUP_RAID1C4 != 0 {
        4
    } else if flags & BLOCK_GROUP_RAID1C3 != 0 {
        3
    } else if flags & (BLOCK_GROUP_DUP | BLOCK_GROUP_RAID1 | BLOCK_GROUP_RAID10) != 0 {
        2
    } else {
        1
    }
}

/// Reads the space in use of the btrfs filesystem holding `path`.
pub fn usage(path: &Path) -> Result<BtrfsUsage, IsolateError> {
    let dir = File::open(path).map_err(IsolateError::io("opening", path))?;
    let mut args = SpaceArgs {
        space_slots: 16,
        total_spaces: 0,
        spaces: [SpaceInfo::default(); 16],
    };
    // SAFETY: SPACE_INFO fills at most `space_slots` entries of the array that
    // follows the header, which SpaceArgs holds inline.
    unsafe { crate::sys::ioctl_ptr(dir.as_fd(), BTRFS_IOC_SPACE_INFO, &mut args) }
        .map_err(IsolateError::io("BTRFS_IOC_SPACE_INFO on", path))?;
    let n = (args.total_spaces.min(args.space_slots)) as usize;
    let mut u = BtrfsUsage::default();
    for s in &args.spaces[..n] {
        if s.flags & SPACE_INFO_GLOBAL_RSV != 0 {
            continue;
        }
        let on_disk = s.used_bytes * copies(s.flags);
        if s.flags & BLOCK_GROUP_DATA != 0 {
            u.data_bytes += on_disk;
        } else if s.flags & BLOCK_GROUP_METADATA != 0 {
            u.metadata_bytes += on_disk;
        } else if s.flags & BLOCK_GROUP_SYSTEM != 0 {
            u.system_bytes += on_disk;
        }
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_count_their_copies() {
        assert_eq!(copies(BLOCK_GROUP_DATA), 1);
        assert_eq!(copies(BLOCK_GROUP_METADATA | BLOCK_GROUP_DUP), 2);
        assert_eq!(copies(BLOCK_GROUP_METADATA | BLOCK_GROUP_RAID1C3), 3);
        assert_eq!(std::mem::size_of::<SpaceInfo>(), 24);
    }
}
