//! A layer stored as an overlay diff directory (containers-storage and Docker
//! overlay2 stores), read in place as an entry stream: char 0/0 is a
//! whiteout, the `overlay.opaque` xattr (`trusted.` or `user.`) an opaque
//! directory, and files sharing an inode become hard links to the first path
//! seen. Nothing is followed: symlinks are entries, content is opened with
//! `O_NOFOLLOW` and must be a regular file.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

use super::SourceError;
use crate::image::{Entry, EntryKind, EntrySink, ImageError, ImageInfo, ImageSource};

/// Directories deeper than this are refused (PATH_MAX allows ~2048 levels of
/// one-letter names; real trees stay under 64).
const MAX_DEPTH: usize = 512;

/// An image whose layers are diff dirs, bottom first.
pub(crate) struct DirImage {
    pub info: ImageInfo,
    pub dirs: Vec<PathBuf>,
}

impl ImageSource for DirImage {
    fn info(&self) -> &ImageInfo {
        &self.info
    }

    fn visit_layer(&self, index: usize, sink: &mut dyn EntrySink) -> Result<(), ImageError> {
        let dir = self.dirs.get(index).ok_or(ImageError::NoLayer {
            index,
            count: self.dirs.len(),
        })?;
        let name = &self.info.layers[index].digest;
        let mut w = Walker {
            layer: name,
            root: dir,
            inodes: HashMap::new(),
            sink,
        };
        w.walk()
    }
}

struct Walker<'a> {
    layer: &'a str,
    root: &'a Path,
    inodes: HashMap<(u64, u64), PathBuf>,
    sink: &'a mut dyn EntrySink,
}

fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

impl Walker<'_> {
    fn err(&self, rel: &Path, op: &'static str) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
        let path = self.root.join(rel);
        move |source| ImageError::Source(SourceError::Io { op, path, source })
    }

    /// The names in directory `rel`, sorted (the stream's order).
    fn list(&self, rel: &Path) -> Result<Vec<OsString>, ImageError> {
        let dir = self.root.join(rel);
        let mut names: Vec<OsString> = fs::read_dir(&dir)
            .map_err(self.err(rel, "reading the diff dir"))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(self.err(rel, "reading the diff dir"))?;
        names.sort();
        Ok(names)
    }

    /// Streams the diff dir: each directory's entries in name order, a
    /// subdirectory's own entries right after it (what a recursion does),
    /// iteratively: per level only its names are kept, the path is one
    /// buffer, so memory does not grow with the square of the depth and the
    /// stack not at all.
    fn walk(&mut self) -> Result<(), ImageError> {
        let mut rel = PathBuf::new();
        let mut stack: Vec<(Vec<OsString>, usize)> = vec![(self.list(&rel)?, 0)];
        while let Some((names, next)) = stack.last_mut() {
            let Some(name) = names.get(*next).cloned() else {
                stack.pop();
                rel.pop();
                continue;
            };
            *next += 1;
            let child = rel.join(&name);
            if self.entry(&child)? {
                // The level `child` would be: the root's entries are depth 1.
                if stack.len() > MAX_DEPTH {
                    return Err(ImageError::Source(SourceError::Hostile {
                        layer: self.layer.to_string(),
                        entry: child.display().to_string(),
                        reason: format!("directories nested deeper than {MAX_DEPTH}"),
                    }));
                }
                let names = self.list(&child)?;
                stack.push((names, 0));
                rel = child;
            }
        }
        Ok(())
    }

    /// Streams the entry at `rel`; `true` when it is a directory to walk into.
    fn entry(&mut self, rel: &Path) -> Result<bool, ImageError> {
        let rel = rel.to_path_buf();
        {
            let path = self.root.join(&rel);
            let meta = fs::symlink_metadata(&path).map_err(self.err(&rel, "reading"))?;
            let ft = meta.file_type();
            let mut xattrs = Vec::new();
            let mut opaque = false;
            if !ft.is_symlink() {
                let names = xattr::list(&path).map_err(self.err(&rel, "listing xattrs of"))?;
                for x in names {
                    let key = std::os::unix::ffi::OsStrExt::as_bytes(x.as_os_str());
                    if is_overlay_xattr(key) {
                        if key.ends_with(b"overlay.opaque") {
                            opaque = xattr::get(&path, &x)
                                .map_err(self.err(&rel, "reading xattrs of"))?
                                .as_deref()
                                == Some(b"y");
                        }
                        continue;
                    }
                    if let Some(v) =
                        xattr::get(&path, &x).map_err(self.err(&rel, "reading xattrs of"))?
                    {
                        xattrs.push((x, v));
                    }
                }
            }
            let kind = if ft.is_dir() {
                EntryKind::Dir
            } else if ft.is_symlink() {
                EntryKind::Symlink {
                    target: fs::read_link(&path).map_err(self.err(&rel, "reading the link"))?,
                }
            } else if ft.is_char_device() && meta.rdev() == 0 {
                EntryKind::Whiteout
            } else if ft.is_char_device() || ft.is_block_device() {
                let (major, minor) = (
                    // Linux device numbers are 32 bits each.
                    nix::sys::stat::major(meta.rdev()) as u32,
                    nix::sys::stat::minor(meta.rdev()) as u32,
                );
                if ft.is_char_device() {
                    EntryKind::CharDevice { major, minor }
                } else {
                    EntryKind::BlockDevice { major, minor }
                }
            } else if ft.is_fifo() {
                EntryKind::Fifo
            } else if ft.is_file() {
                let key = (meta.dev(), meta.ino());
                match self.inodes.get(&key) {
                    Some(first) if meta.nlink() > 1 => EntryKind::HardLink {
                        target: first.clone(),
                    },
                    _ => {
                        if meta.nlink() > 1 {
                            self.inodes.insert(key, rel.clone());
                        }
                        EntryKind::File { size: meta.len() }
                    }
                }
            } else {
                // Sockets cannot be carried by a layer tar either.
                return Ok(false);
            };
            let entry = Entry {
                path: rel.clone(),
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: meta.mtime(),
                xattrs,
            };
            match &entry.kind {
                EntryKind::File { size } => {
                    let f = fs::OpenOptions::new()
                        .read(true)
                        .custom_flags(
                            (OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits(),
                        )
                        .open(&path)
                        .map_err(self.err(&rel, "opening"))?;
                    let mut content = f.take(*size);
                    self.sink
                        .entry(&entry, &mut content)
                        .map_err(|_| ImageError::Stopped)?;
                }
                _ => self
                    .sink
                    .entry(&entry, &mut std::io::empty())
                    .map_err(|_| ImageError::Stopped)?,
            }
            if ft.is_dir() {
                if opaque {
                    let marker = Entry {
                        kind: EntryKind::Opaque,
                        xattrs: Vec::new(),
                        ..entry
                    };
                    self.sink
                        .entry(&marker, &mut std::io::empty())
                        .map_err(|_| ImageError::Stopped)?;
                }
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Reads a store's small metadata file (JSON, a single line) with the cap.
pub(crate) fn read_store_file(path: &Path, what: &'static str) -> Result<Vec<u8>, SourceError> {
    super::blob::read_capped(path, what, super::MAX_DOCUMENT_BYTES)
}

/// Whether `id` is a store layer/image id (64 hex digits), safe as a path component.
pub(crate) fn is_store_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}
