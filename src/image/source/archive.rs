//! The member index of an uncompressed outer archive (oci-archive,
//! docker-archive): one pass over its headers with `pread`, recording where
//! each member's bytes are, so blobs are read in place — never extracted.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::blob::{self, Compression, FileRange};
use super::tar::clean_name;
use super::{SourceError, MAX_DOCUMENT_BYTES};

/// An archive with more members than this is refused (an image archive holds
/// a few per layer).
const MAX_MEMBERS: usize = 100_000;
/// Symlinked members (`docker save` links duplicate layers) are followed this deep.
const MAX_LINK_DEPTH: usize = 8;
/// Long-name and PAX headers of the outer archive are at most this large.
const MAX_EXTENSION_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone)]
enum Member {
    File { offset: u64, size: u64 },
    Link(PathBuf),
}

/// An opened archive and where its members are.
pub(crate) struct Archive {
    pub path: PathBuf,
    file: Arc<File>,
    members: HashMap<PathBuf, Member>,
}

fn malformed(path: &Path, reason: impl std::fmt::Display) -> SourceError {
    SourceError::malformed("archive", path.display(), reason)
}

impl Archive {
    /// Indexes the archive at `path` (a regular, uncompressed tar).
    pub(crate) fn open(path: &Path) -> Result<Archive, SourceError> {
        let file = blob::open_regular(path)?;
        let len = file
            .metadata()
            .map_err(SourceError::io("reading", path))?
            .len();
        let mut head = [0u8; 4];
        let n = file
            .read_at(&mut head, 0)
            .map_err(SourceError::io("reading", path))?;
        match Compression::sniff(&head[..n]) {
            Compression::None => {}
            c => {
                return Err(SourceError::Unsupported {
                    reference: path.display().to_string(),
                    what: format!(
                        "the archive is {}-compressed; blobs are read in place from an uncompressed archive, so decompress it first",
                        c.name()
                    ),
                })
            }
        }
        let mut members = HashMap::new();
        let mut off = 0u64;
        let mut block = [0u8; 512];
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            if off + 512 > len {
                if off == len {
                    break; // no end marker, but nothing cut either
                }
                return Err(malformed(path, "truncated inside a tar header"));
            }
            file.read_exact_at(&mut block, off)
                .map_err(SourceError::io("reading", path))?;
            if block.iter().all(|&b| b == 0) {
                break;
            }
            let h = ::tar::Header::from_byte_slice(&block);
            let sum: u32 = block[..148]
                .iter()
                .chain(&block[156..])
                .map(|&b| b as u32)
                .sum::<u32>()
                + 256;
            if h.cksum().ok() != Some(sum) {
                return Err(malformed(
                    path,
                    format!(
                        "bad tar header checksum at offset {off}; not an uncompressed tar archive"
                    ),
                ));
            }
            let size = h
                .entry_size()
                .map_err(|e| malformed(path, format!("bad size at offset {off}: {e}")))?;
            let data = off + 512;
            let next = data
                .checked_add(size.div_ceil(512) * 512)
                .filter(|&n| n <= len)
                .ok_or_else(|| {
                    malformed(
                        path,
                        format!("a member at offset {off} runs past the end of the archive"),
                    )
                })?;
            let flag = h.as_old().linkflag[0];
            let read_ext = || -> Result<Vec<u8>, SourceError> {
                if size > MAX_EXTENSION_BYTES {
                    return Err(malformed(
                        path,
                        format!("an extension header of {size} bytes"),
                    ));
                }
                let mut v = vec![0u8; size as usize];
                file.read_exact_at(&mut v, data)
                    .map_err(SourceError::io("reading", path))?;
                while v.last() == Some(&0) {
                    v.pop();
                }
                Ok(v)
            };
            match flag {
                b'L' => long_name = Some(read_ext()?),
                b'K' => long_link = Some(read_ext()?),
                b'x' => {
                    let ext = read_ext()?;
                    for e in ::tar::PaxExtensions::new(&ext).flatten() {
                        match e.key_bytes() {
                            b"path" => long_name = Some(e.value_bytes().to_vec()),
                            b"linkpath" => long_link = Some(e.value_bytes().to_vec()),
                            b"size" => {
                                return Err(malformed(
                                    path,
                                    "PAX size records in the outer archive are not supported",
                                ))
                            }
                            _ => {}
                        }
                    }
                }
                b'g' => {}
                _ => {
                    let name = long_name
                        .take()
                        .unwrap_or_else(|| h.path_bytes().into_owned());
                    let link = long_link
                        .take()
                        .or_else(|| h.link_name_bytes().map(|c| c.into_owned()));
                    // Members with odd names are simply not addressable.
                    if let Ok(Some(name)) = clean_name(&name) {
                        let member = match flag {
                            b'0' | b'\0' | b'7' => Some(Member::File { offset: data, size }),
                            b'1' => link
                                .and_then(|l| clean_name(&l).ok().flatten())
                                .map(Member::Link),
                            b'2' => link.and_then(|l| {
                                // Relative to the member's directory, like a symlink.
                                let mut joined = name
                                    .parent()
                                    .map(Path::to_path_buf)
                                    .unwrap_or_default()
                                    .into_os_string()
                                    .into_encoded_bytes();
                                if !joined.is_empty() {
                                    joined.push(b'/');
                                }
                                joined.extend_from_slice(&l);
                                lexical_clean(&joined).map(Member::Link)
                            }),
                            _ => None,
                        };
                        if let Some(m) = member {
                            if members.len() >= MAX_MEMBERS {
                                return Err(malformed(
                                    path,
                                    format!("more than {MAX_MEMBERS} members"),
                                ));
                            }
                            members.insert(name, m);
                        }
                    }
                }
            }
            off = next;
        }
        Ok(Archive {
            path: path.to_path_buf(),
            file: Arc::new(file),
            members,
        })
    }

    /// Where member `name` is: `(offset, size)`, links followed.
    pub(crate) fn locate(&self, name: &str) -> Option<(u64, u64)> {
        let mut key = clean_name(name.as_bytes()).ok().flatten()?;
        for _ in 0..MAX_LINK_DEPTH {
            match self.members.get(&key)? {
                Member::File { offset, size } => return Some((*offset, *size)),
                Member::Link(t) => key = t.clone(),
            }
        }
        None
    }

    /// A reader over member `name`.
    pub(crate) fn member(&self, name: &str) -> Option<(FileRange, u64)> {
        let (offset, size) = self.locate(name)?;
        Some((FileRange::new(self.file.clone(), offset, size), size))
    }

    /// A small member read whole (capped).
    pub(crate) fn document(
        &self,
        name: &str,
        what: &'static str,
    ) -> Result<Option<Vec<u8>>, SourceError> {
        let Some((r, size)) = self.member(name) else {
            return Ok(None);
        };
        let location = format!("{}:{name}", self.path.display());
        if size > MAX_DOCUMENT_BYTES {
            return Err(SourceError::TooLarge {
                what,
                location,
                bytes: size,
                cap: MAX_DOCUMENT_BYTES,
            });
        }
        blob::read_document(r, what, &location, None).map(Some)
    }

    /// The first bytes of a member (to sniff its compression).
    pub(crate) fn head(&self, name: &str) -> Option<Vec<u8>> {
        let (mut r, _) = self.member(name)?;
        let mut b = [0u8; 4];
        let n = r.read(&mut b).ok()?;
        Some(b[..n].to_vec())
    }
}

/// Resolves `..` lexically; `None` if it climbs above the archive root.
fn lexical_clean(bytes: &[u8]) -> Option<PathBuf> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in bytes.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join(&b'/');
    clean_name(&joined).ok().flatten()
}
