//! Memory figures from /proc/meminfo, parsed by the `procfs` crate (one reader
//! for the whole tool; tests feed captured text through `parse`).

use procfs::{Current, FromRead, Meminfo};

/// The figures the tool uses, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    /// `MemTotal`.
    pub total_bytes: u64,
    /// `MemAvailable` (absent on very old kernels).
    pub available_bytes: Option<u64>,
    /// `Cached`: page cache, shmem included.
    pub cached_bytes: u64,
}

impl Memory {
    fn from(m: Meminfo) -> Memory {
        Memory {
            total_bytes: m.mem_total,
            available_bytes: m.mem_available,
            cached_bytes: m.cached,
        }
    }

    /// This host's figures now (None when /proc/meminfo cannot be read).
    pub fn current() -> Option<Memory> {
        Meminfo::current().ok().map(Memory::from)
    }

    /// Figures from /proc/meminfo text.
    pub fn parse(text: &str) -> Option<Memory> {
        Meminfo::from_read(text.as_bytes()).ok().map(Memory::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_captured_meminfo() {
        let text = "MemTotal:       24571520 kB\nMemFree:        20000000 kB\nMemAvailable:   23000000 kB\n\
                    Buffers:           1000 kB\nCached:          500000 kB\nSwapCached:            0 kB\n\
                    Active:           10000 kB\nInactive:         10000 kB\nSwapTotal:            0 kB\n\
                    SwapFree:             0 kB\nDirty:                0 kB\nWriteback:            0 kB\n\
                    AnonPages:            0 kB\nMapped:               0 kB\nShmem:                0 kB\n\
                    Slab:                 0 kB\nSReclaimable:         0 kB\nSUnreclaim:           0 kB\n\
                    KernelStack:          0 kB\nPageTables:           0 kB\nNFS_Unstable:         0 kB\n\
                    Bounce:               0 kB\nWritebackTmp:         0 kB\nCommitLimit:          0 kB\n\
                    Committed_AS:         0 kB\nVmallocTotal:         0 kB\nVmallocUsed:          0 kB\n\
                    VmallocChunk:         0 kB\n";
        let m = Memory::parse(text).expect("parses");
        assert_eq!(m.total_bytes, 24_571_520 * 1024);
        assert_eq!(m.available_bytes, Some(23_000_000 * 1024));
        assert_eq!(m.cached_bytes, 500_000 * 1024);
        assert!(Memory::current().is_some_and(|m| m.total_bytes > 0));
    }
}
