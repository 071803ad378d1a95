//! Kernel reads the workloads and the doctor rely on: targeted cache eviction
//! (`posix_fadvise`, `drop_caches`), page-cache residency (`mincore`, meminfo, the
//! memory cgroup) and a census of a tree by inode kind. Readers of host state take
//! text or a root path so tests can feed captured files.

pub mod cache;
pub mod census;
pub mod memory;
pub mod residency;
