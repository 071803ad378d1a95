//! Counting what a tree holds, by kind, without crossing into other mounts: the
//! walk that `statvfs` deltas are checked against.

use std::collections::HashSet;
use std::path::Path;

/// Entries of a tree by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Census {
    /// Directories (the root included).
    pub dirs: u64,
    /// Regular-file paths.
    pub files: u64,
    /// Overlay whiteouts (char devices 0/0).
    pub whiteouts: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Anything else.
    pub other: u64,
    /// Paths to files whose inode has more than one link.
    pub hardlink_paths: u64,
    /// Distinct inodes behind all those paths.
    pub distinct_inodes: u64,
}

/// Walks `root` (not crossing mount points) and counts its entries.
///
/// fd-relative and iterative: an image's tree may nest directories as deep
/// as a path allows, so a full path can be longer than `PATH_MAX` below a
/// scratch root, and one path kept per pending directory would grow with the
/// square of the depth. Per level the walk keeps the names of the
/// subdirectories still to visit; one directory is open at a time (it
/// climbs back through `..`).
pub fn census(root: &Path) -> std::io::Result<Census> {
    use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let mut cur = rfs::open(root, flags, Mode::empty())?;
    let top = rfs::fstat(&cur)?;
    let dev = top.st_dev;
    let mut c = Census::default();
    let mut seen = HashSet::new();
    seen.insert(top.st_ino);
    c.dirs += 1;
    let mut stack: Vec<Vec<std::ffi::CString>> = Vec::new();
    loop {
        let mut subdirs = Vec::new();
        {
            let mut d = rfs::Dir::read_from(&cur)?;
            while let Some(e) = d.read() {
                let e = e?;
                let name = e.file_name();
                if name.to_bytes() == b"." || name.to_bytes() == b".." {
                    continue;
                }
                let m = rfs::statat(&cur, name, AtFlags::SYMLINK_NOFOLLOW)?;
                if m.st_dev != dev {
                    // A mount point (a container's merged view): not this filesystem.
                    continue;
                }
                seen.insert(m.st_ino);
                match FileType::from_raw_mode(m.st_mode) {
                    FileType::Directory => {
                        c.dirs += 1;
                        subdirs.push(name.to_owned());
                    }
                    FileType::RegularFile => {
                        c.files += 1;
                        if m.st_nlink > 1 {
                            c.hardlink_paths += 1;
                        }
                    }
                    FileType::Symlink => c.symlinks += 1,
                    FileType::CharacterDevice if m.st_rdev == 0 => c.whiteouts += 1,
                    _ => c.other += 1,
                }
            }
        }
        stack.push(subdirs);
        // Down into the next subdirectory left, climbing back up as levels run out.
        loop {
            let Some(level) = stack.last_mut() else {
                c.distinct_inodes = seen.len() as u64;
                return Ok(c);
            };
            match level.pop() {
                Some(name) => {
                    cur = rfs::openat(&cur, name.as_c_str(), flags, Mode::empty())?;
                    break;
                }
                None => {
                    stack.pop();
                    if !stack.is_empty() {
                        cur = rfs::openat(&cur, "..", flags, Mode::empty())?;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_kinds_and_shared_inodes() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(d.path().join("a")).expect("mkdir");
        std::fs::write(d.path().join("a/f"), "x").expect("write");
        std::fs::hard_link(d.path().join("a/f"), d.path().join("g")).expect("link");
        std::os::unix::fs::symlink("a", d.path().join("s")).expect("symlink");
        let c = census(d.path()).expect("census");
        assert_eq!(
            (c.dirs, c.files, c.symlinks, c.hardlink_paths),
            (2, 2, 1, 2)
        );
        // root, a, one file inode (two links), the symlink
        assert_eq!(c.distinct_inodes, 4);
    }

    /// 2,100 levels: the full path (4,200 bytes) is past PATH_MAX. A walk by
    /// path names failed with ENAMETOOLONG.
    #[test]
    fn counts_a_tree_deeper_than_path_max() {
        let d = tempfile::tempdir().expect("tempdir");
        crate::layout::fsops::deep_chain(d.path(), 2100).expect("deep chain");
        let root = d.path().to_path_buf();
        let c = crate::layout::fsops::on_small_stack(move || census(&root)).expect("census");
        assert_eq!((c.dirs, c.files, c.symlinks), (2101, 1, 1));
        crate::layout::fsops::remove_deep(d.path());
    }
}
