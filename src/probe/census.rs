//! Counting what a tree holds, by kind, without crossing into other mounts: the
//! walk that `statvfs` deltas are checked against.

use std::collections::HashSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
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
pub fn census(root: &Path) -> std::io::Result<Census> {
    let dev = std::fs::symlink_metadata(root)?.dev();
    let mut c = Census::default();
    let mut seen = HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let m = std::fs::symlink_metadata(&dir)?;
        c.dirs += 1;
        seen.insert(m.ino());
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let m = entry.metadata()?;
            if m.dev() != dev {
                // A mount point (a container's merged view): not this filesystem.
                continue;
            }
            let ft = m.file_type();
            if ft.is_dir() {
                stack.push(entry.path());
                continue;
            }
            seen.insert(m.ino());
            if ft.is_file() {
                c.files += 1;
                if m.nlink() > 1 {
                    c.hardlink_paths += 1;
                }
            } else if ft.is_symlink() {
                c.symlinks += 1;
            } else if ft.is_char_device() && m.rdev() == 0 {
                c.whiteouts += 1;
            } else {
                c.other += 1;
            }
        }
    }
    c.distinct_inodes = seen.len() as u64;
    Ok(c)
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
}
