//! Page-cache residency, read from the kernel: `mincore` over a mapping of each
//! file (no page is touched), `/proc/meminfo`, and the memory cgroup's file pages.

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Bytes of `path` in the page cache now.
pub fn resident_bytes(path: &Path) -> std::io::Result<u64> {
    let f = File::open(path)?;
    let len = f.metadata()?.len() as usize;
    if len == 0 {
        return Ok(0);
    }
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as usize;
    let pages = crate::sys::resident_pages(f.as_fd(), len, page)?;
    Ok(pages.iter().filter(|v| **v & 1 == 1).count() as u64 * page as u64)
}

/// Resident bytes summed over the *distinct* inodes behind `paths` (a file seen
/// through several paths or hard links counts once); returns (bytes, inodes).
pub fn resident_distinct(paths: &[PathBuf]) -> std::io::Result<(u64, usize)> {
    let mut seen = HashSet::new();
    let mut total = 0;
    for p in paths {
        let m = std::fs::metadata(p)?;
        if seen.insert((m.dev(), m.ino())) {
            total += resident_bytes(p)?;
        }
    }
    Ok((total, seen.len()))
}

/// The memory cgroup this process is charged to and the stat key for its file pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryCgroup {
    /// The cgroup's memory.stat file.
    pub stat: PathBuf,
    /// `file` (v2) or `total_cache` (v1).
    pub key: &'static str,
    /// The cgroup path as /proc/self/cgroup names it.
    pub path: String,
}

impl MemoryCgroup {
    /// Finds our memory cgroup from /proc/self/cgroup text under `sys_fs_cgroup`.
    pub fn find(proc_self_cgroup: &str, sys_fs_cgroup: &Path) -> Option<MemoryCgroup> {
        for line in proc_self_cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let rel = path.trim_start_matches('/');
            if controllers.split(',').any(|c| c == "memory") {
                let stat = sys_fs_cgroup.join("memory").join(rel).join("memory.stat");
                if stat.exists() {
                    return Some(MemoryCgroup {
                        stat,
                        key: "total_cache",
                        path: path.into(),
                    });
                }
            }
            if controllers.is_empty() {
                for base in [sys_fs_cgroup.to_path_buf(), sys_fs_cgroup.join("unified")] {
                    let stat = base.join(rel).join("memory.stat");
                    if stat.exists() {
                        return Some(MemoryCgroup {
                            stat,
                            key: "file",
                            path: path.into(),
                        });
                    }
                }
            }
        }
        None
    }

    /// File-backed bytes charged to the cgroup now.
    pub fn file_bytes(&self) -> Option<u64> {
        let text = std::fs::read_to_string(&self.stat).ok()?;
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == self.key).then(|| v.trim().parse().ok())?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_just_written_is_resident_and_evictable() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("f");
        let mut f = File::create(&p).expect("create");
        f.write_all(&vec![7u8; 1 << 20]).expect("write");
        drop(f);
        crate::probe::cache::evict_file(&p).expect("evict");
        let after_evict = resident_bytes(&p).expect("mincore");
        std::fs::read(&p).expect("read");
        let after_read = resident_bytes(&p).expect("mincore");
        assert!(
            after_read >= after_evict && after_read == 1 << 20,
            "{after_evict} → {after_read}"
        );
        let (bytes, inodes) = resident_distinct(&[p.clone(), p]).expect("distinct");
        assert_eq!((bytes, inodes), (1 << 20, 1));
    }

    #[test]
    fn finds_v1_and_v2_cgroups_in_a_captured_tree() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("memory/user.slice")).expect("mkdir");
        std::fs::write(
            root.path().join("memory/user.slice/memory.stat"),
            "cache 10\ntotal_cache 4096\n",
        )
        .expect("w");
        let v1 = MemoryCgroup::find("4:memory:/user.slice\n0::/x\n", root.path()).expect("v1");
        assert_eq!((v1.key, v1.file_bytes()), ("total_cache", Some(4096)));
        std::fs::create_dir_all(root.path().join("sys.slice")).expect("mkdir");
        std::fs::write(
            root.path().join("sys.slice/memory.stat"),
            "anon 1\nfile 8192\n",
        )
        .expect("w");
        let v2 = MemoryCgroup::find("0::/sys.slice\n", root.path()).expect("v2");
        assert_eq!((v2.key, v2.file_bytes()), ("file", Some(8192)));
    }
}
