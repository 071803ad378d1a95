//! Kernel reads the workloads and the doctor rely on: targeted cache eviction
//! (`posix_fadvise`, `drop_caches`), page-cache residency (`mincore`, meminfo, the
//! memory cgroup), a census of a tree by inode kind, the start-up read set of a container
//! (fanotify), and a file's extents
//! (FIEMAP: which blocks a copy-on-write filesystem still shares). Readers of host state take
//! text or a root path so tests can feed captured files.

pub mod cache;
pub mod census;
pub mod extents;
pub mod memory;
pub mod readset;
pub mod residency;
