//! The bounded reader.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::error::ErrorClass;

/// Largest report.json read (a full-suite report is a few MiB).
pub const REPORT_MAX_BYTES: u64 = 256 << 20;
/// Largest gate file or engine config read (they are a few hundred bytes).
pub const CONFIG_MAX_BYTES: u64 = 1 << 20;
/// Largest store metadata file read (`link`, `mount-id`: a line; `lower`: up to
/// 500 parents of 29 bytes each, 14.5 KiB).
pub const STORE_META_MAX_BYTES: u64 = 64 << 10;
/// Largest store index read (containers-storage's `containers.json`, `layers.json`).
pub const STORE_INDEX_MAX_BYTES: u64 = 64 << 20;

/// Whether the last component may be a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Follow symlinks (a path the user typed may name a link to a report).
    Symlinks,
    /// Refuse a symlink (a store's own metadata files are never links).
    NoSymlinks,
}

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: {}", path.display(), open_reason(source))]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is {kind}, not a regular file; name a regular file", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{} is too large: over the {cap_bytes}-byte limit for {what}; not read", path.display())]
    TooLarge {
        path: PathBuf,
        what: &'static str,
        cap_bytes: u64,
    },
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not UTF-8 text (invalid byte at offset {offset}){hint}", path.display())]
    NotUtf8 {
        path: PathBuf,
        offset: usize,
        hint: &'static str,
    },
}

fn open_reason(e: &std::io::Error) -> String {
    match e.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ELOOP) => {
            "too many levels of symbolic links (a symlink loop, or a symlink where none is allowed)"
                .into()
        }
        Some(Errno::ENOENT) => "no such file".into(),
        _ => e.to_string(),
    }
}

impl ReadError {
    /// A file the user named (or a store holds) that cannot be read as asked is
    /// bad input; only an I/O error in the middle of reading is a runtime failure.
    pub fn class(&self) -> ErrorClass {
        match self {
            ReadError::Read { .. } => ErrorClass::Runtime,
            _ => ErrorClass::Usage,
        }
    }

    /// Whether the file does not exist (callers that treat absence as "not configured").
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Open { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ReadError::Open { path, .. }
            | ReadError::NotRegular { path, .. }
            | ReadError::TooLarge { path, .. }
            | ReadError::Read { path, .. }
            | ReadError::NotUtf8 { path, .. } => path,
        }
    }
}

fn kind_of(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_symlink() {
        "a symlink"
    } else {
        "not a regular file"
    }
}

/// Reads at most `cap_bytes` of the regular file at `path` (`what` names the kind
/// of file in the error). Never blocks on a FIFO, never reads a device.
pub fn read_bytes(
    path: &Path,
    cap_bytes: u64,
    what: &'static str,
    follow: Follow,
) -> Result<Vec<u8>, ReadError> {
    let mut flags = OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    if follow == Follow::NoSymlinks {
        flags |= OFlag::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
        .map_err(|source| ReadError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let meta = file.metadata().map_err(|source| ReadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(meta.file_type()),
        });
    }
    let too_large = || ReadError::TooLarge {
        path: path.to_path_buf(),
        what,
        cap_bytes,
    };
    if meta.len() > cap_bytes {
        return Err(too_large());
    }
    // The size may grow while we read (or be 0 for procfs-like files): the cap
    // is enforced on what is read, one byte past it proves "too large".
    let mut buf = Vec::with_capacity(meta.len() as usize);
    (&file as &File)
        .take(cap_bytes + 1)
        .read_to_end(&mut buf)
        .map_err(|source| ReadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if buf.len() as u64 > cap_bytes {
        return Err(too_large());
    }
    Ok(buf)
}

/// `read_bytes`, as UTF-8 text.
pub fn read_text(
    path: &Path,
    cap_bytes: u64,
    what: &'static str,
    follow: Follow,
) -> Result<String, ReadError> {
    let bytes = read_bytes(path, cap_bytes, what, follow)?;
    String::from_utf8(bytes).map_err(|e| {
        let b = e.as_bytes();
        // A tar archive (docker-archive, oci-archive) has "ustar" at offset 257.
        let hint = if b.len() > 262 && &b[257..262] == b"ustar" {
            "; it looks like a tar archive (an image archive?), not the text file expected here"
        } else {
            ""
        };
        ReadError::NotUtf8 {
            path: path.to_path_buf(),
            offset: e.utf8_error().valid_up_to(),
            hint,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> Result<String, ReadError> {
        read_text(p, 1024, "a test file", Follow::Symlinks)
    }

    #[test]
    fn refuses_what_is_not_a_regular_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        // Would block forever with a plain open: no writer ever comes.
        assert!(matches!(
            read(&fifo),
            Err(ReadError::NotRegular { kind: "a FIFO", .. })
        ));
        assert!(matches!(
            read(Path::new("/dev/zero")),
            Err(ReadError::NotRegular {
                kind: "a character device",
                ..
            })
        ));
        assert!(matches!(
            read(d.path()),
            Err(ReadError::NotRegular {
                kind: "a directory",
                ..
            })
        ));
        let a = d.path().join("a");
        std::os::unix::fs::symlink("b", &a).expect("symlink");
        std::os::unix::fs::symlink("a", d.path().join("b")).expect("symlink");
        let err = read(&a).unwrap_err();
        assert!(err.to_string().contains("symlink loop"), "{err}");
        assert_eq!(err.class(), ErrorClass::Usage);
        let err = read(&d.path().join("none")).unwrap_err();
        assert!(err.is_not_found() && err.class() == ErrorClass::Usage);
    }

    #[test]
    fn caps_the_size_and_checks_utf8() {
        let d = tempfile::tempdir().expect("tempdir");
        let big = d.path().join("big");
        std::fs::write(&big, vec![b'x'; 1025]).expect("write");
        let err = read(&big).unwrap_err();
        assert!(
            err.to_string()
                .contains("over the 1024-byte limit for a test file"),
            "{err}"
        );
        std::fs::write(&big, vec![b'x'; 1024]).expect("write");
        assert_eq!(read(&big).expect("at the cap").len(), 1024);
        std::fs::write(&big, b"ok\xff").expect("write");
        assert!(read(&big).unwrap_err().to_string().contains("offset 2"));
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&big, &link).expect("symlink");
        assert!(read_bytes(&link, 10, "meta", Follow::NoSymlinks).is_err());
        assert!(read_bytes(&link, 10, "meta", Follow::Symlinks).is_ok());
    }
}
