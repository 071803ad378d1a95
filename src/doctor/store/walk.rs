//! One tree's figures, as the standard tools count them: distinct inodes
//! (`find -xdev -printf '%i\n' | sort -u`), their blocks once each (`du -sxB1`),
//! whiteouts (char 0/0), hard-linked regular files. The walk never crosses into
//! another filesystem (a btrfs subvolume has its own device number, so a nested
//! one is another tree) and never follows a symlink.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What one walk counted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Walk {
    /// Distinct inodes, the root's included.
    pub inodes: u64,
    /// Blocks of those inodes, bytes, each inode once.
    pub bytes: u64,
    /// Character devices 0/0 (overlay's whiteouts).
    pub whiteouts: u64,
    /// Regular files named `.wh.<name>` (fuse-overlayfs's and the tar form's
    /// whiteouts); the opaque marker `.wh..wh..opq` is not one.
    pub wh_files: u64,
    /// Regular-file paths whose inode has other links.
    pub hardlink_paths: u64,
    /// The highest link count of a regular file, and one path that has it.
    pub max_links: u64,
    /// Where `max_links` was seen.
    pub max_links_path: Option<PathBuf>,
}

/// Walks `root`, adding linked regular files' inodes to `linked` (store-wide).
pub(crate) fn walk(root: &Path, linked: &mut HashSet<(u64, u64)>) -> std::io::Result<Walk> {
    walk_with(root, linked, |_, _| {})
}

/// `walk`, calling `visit(path relative to root, metadata)` for every entry.
pub(crate) fn walk_with(
    root: &Path,
    linked: &mut HashSet<(u64, u64)>,
    mut visit: impl FnMut(&Path, &fs::Metadata),
) -> std::io::Result<Walk> {
    let top = fs::symlink_metadata(root)?;
    let dev = top.dev();
    let mut w = Walk::default();
    let mut seen = HashSet::new();
    seen.insert(top.ino());
    w.inodes = 1;
    w.bytes = top.blocks() * 512;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let e = e?;
            let m = e.metadata()?;
            if m.dev() != dev {
                continue;
            }
            let path = e.path();
            if let Ok(rel) = path.strip_prefix(root) {
                visit(rel, &m);
            }
            let ft = m.file_type();
            if seen.insert(m.ino()) {
                w.inodes += 1;
                w.bytes += m.blocks() * 512;
            }
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                if m.nlink() > 1 {
                    w.hardlink_paths += 1;
                    linked.insert((m.dev(), m.ino()));
                }
                if m.nlink() > w.max_links {
                    w.max_links = m.nlink();
                    w.max_links_path = Some(path.clone());
                }
                let name = e.file_name();
                let name = name.as_encoded_bytes();
                if name.starts_with(b".wh.") && name != b".wh..wh..opq" {
                    w.wh_files += 1;
                }
            } else if ft.is_char_device() && m.rdev() == 0 {
                w.whiteouts += 1;
            }
        }
    }
    Ok(w)
}
