//! A layer tar → `Entry` stream, refusing hostile input before a sink sees it.
//!
//! The block loop is ours (header fields are decoded by the `tar` crate's
//! `Header`): the `tar` crate reads GNU long names and PAX headers into memory
//! without a bound, and a layer is untrusted input, so extension headers are
//! capped here (`MAX_EXTENSION_BYTES`). Entries are delivered in stream order;
//! what a sink leaves unread of a file is skipped.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::blob::{StoredBytes, StreamFault};
use super::{SourceError, MAX_ENTRY_BYTES};
use crate::image::{Entry, EntryKind, EntrySink, ImageError};

/// A PAX or GNU long-name header larger than this is refused (real ones are
/// a few hundred bytes; a path is at most 4 KiB on Linux).
const MAX_EXTENSION_BYTES: u64 = 1 << 20;

const BLOCK: usize = 512;

/// Linux's `NAME_MAX`: a longer component cannot be made on any filesystem
/// the layouts use (ext4, xfs, btrfs, tmpfs, overlay).
pub(crate) const NAME_MAX: usize = 255;

/// Linux's `PATH_MAX` less the NUL: a longer path (relative to the image
/// root) cannot be named in one syscall. It also caps the depth: at most
/// 2,048 components fit. Engines reach the same limit implicitly (moby and
/// containers/storage join the destination with the tar name and fail with
/// ENAMETOOLONG past it); here it is refused up front, naming the entry.
pub(crate) const PATH_MAX_BYTES: usize = 4095;

/// Linux's `XATTR_NAME_MAX` and `XATTR_SIZE_MAX`.
const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: usize = 65_536;

/// What may follow the tar's end marker, bytes (after decompression). Real
/// writers put nothing there (Go's archive/tar) or zero padding up to a
/// record (GNU tar: 10 KiB by default). Anything longer is refused without
/// reading on: a compressed bomb after the end marker would otherwise be
/// inflated to its end only to be thrown away. containers/storage drains it
/// all to check the digest; refusing past this bound keeps the work bounded
/// and the check honest (a layer is accepted only if it verified to its end).
pub(crate) const MAX_TRAILING_BYTES: u64 = 1 << 20;

/// Memory a layer may make the consumers keep (the index and the appliers
/// hold a path per entry and per directory an entry implies): the bytes of
/// the delivered paths plus those of the implied parent directories, each
/// plus `PATH_ENTRY_OVERHEAD`, may not exceed `PATH_BYTES_BASE` +
/// `PATH_BYTES_PER_STORED_BYTE` × the stored (compressed) bytes read so far.
/// Real layers stay far below (a Debian base: ~0.3 MB of paths for 30 MB
/// stored; a million empty files with 100-byte paths: ~2-3 × their stored
/// size); a 418-byte layer naming one entry 20,000 levels deep, or 601 KiB
/// of compressed 4,000-byte names, does not get gigabytes.
const PATH_BYTES_BASE: u64 = 8 << 20;
const PATH_BYTES_PER_STORED_BYTE: u64 = 32;
const PATH_ENTRY_OVERHEAD: u64 = 64;

/// The overlay/OCI whiteout prefix and the opaque marker.
const WH_PREFIX: &[u8] = b".wh.";
const WH_META_PREFIX: &[u8] = b".wh..wh.";
const WH_OPAQUE: &[u8] = b".wh..wh..opq";

/// Maps an I/O error from a layer stream to a typed error naming the layer
/// and, when inside one, the entry.
pub(crate) fn stream_error(layer: &str, entry: Option<&Path>, e: io::Error) -> SourceError {
    let entry = entry.map(|p| p.display().to_string());
    // Waiting on a registry failed (deadline, rate, a signal): not the layer's content.
    if let Some(f) = super::http::HttpFault::find(&e) {
        return f.to_source();
    }
    match StreamFault::find(&e) {
        // A signal, not the layer: the run ends as interrupted (128 + signal).
        Some(StreamFault::Stopped) => SourceError::Interrupted {
            url: format!("layer {layer}"),
        },
        Some(StreamFault::Mismatch {
            what,
            expected,
            actual,
        }) => SourceError::DigestMismatch {
            layer: layer.to_string(),
            what,
            expected: expected.to_string(),
            actual: actual.to_string(),
        },
        Some(f) => SourceError::Corrupt {
            layer: layer.to_string(),
            entry,
            reason: f.to_string(),
        },
        None if e.kind() == io::ErrorKind::UnexpectedEof => SourceError::Corrupt {
            layer: layer.to_string(),
            entry,
            reason: "the stream ends early (truncated)".into(),
        },
        None => SourceError::Corrupt {
            layer: layer.to_string(),
            entry,
            reason: format!("corrupt stream: {e}"),
        },
    }
}

/// Normalises a tar name: `./` prefixes, `.` components, repeated and
/// trailing slashes go; `None` is the layer root. Absolute names, `..` and NUL
/// bytes are refused.
pub(crate) fn clean_name(bytes: &[u8]) -> Result<Option<PathBuf>, &'static str> {
    if bytes.contains(&0) {
        return Err("the name contains a NUL byte");
    }
    if bytes.first() == Some(&b'/') {
        return Err("an absolute name");
    }
    let mut out = Vec::with_capacity(bytes.len());
    for comp in bytes.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err("a `..` component"),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    if out.is_empty() {
        Ok(None)
    } else {
        Ok(Some(PathBuf::from(OsString::from_vec(out))))
    }
}

/// Extension headers seen before the entry they describe.
#[derive(Default)]
struct Pending {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<i64>,
    xattrs: Vec<(OsString, Vec<u8>)>,
    sparse: bool,
}

fn parse_dec<T: std::str::FromStr>(v: &[u8]) -> Option<T> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

impl Pending {
    fn pax(&mut self, data: &[u8]) -> Result<(), String> {
        for ext in ::tar::PaxExtensions::new(data) {
            let ext = ext.map_err(|e| format!("bad PAX record: {e}"))?;
            let (k, v) = (ext.key_bytes(), ext.value_bytes());
            let bad = |what: &str| format!("bad PAX {what} {:?}", String::from_utf8_lossy(v));
            match k {
                b"path" => self.path = Some(v.to_vec()),
                b"linkpath" => self.link = Some(v.to_vec()),
                b"size" => self.size = Some(parse_dec(v).ok_or_else(|| bad("size"))?),
                b"uid" => self.uid = Some(parse_dec(v).ok_or_else(|| bad("uid"))?),
                b"gid" => self.gid = Some(parse_dec(v).ok_or_else(|| bad("gid"))?),
                b"mtime" => {
                    // Seconds with an optional fraction; the fraction is dropped.
                    let whole = v.split(|&b| b == b'.').next().unwrap_or_default();
                    self.mtime = Some(parse_dec(whole).ok_or_else(|| bad("mtime"))?);
                }
                _ if k.starts_with(b"SCHILY.xattr.") => {
                    let name = &k[b"SCHILY.xattr.".len()..];
                    if name.is_empty() || name.contains(&0) {
                        return Err("an xattr with an empty or NUL-containing name".into());
                    }
                    self.xattrs
                        .push((OsString::from_vec(name.to_vec()), v.to_vec()));
                }
                _ if k.starts_with(b"GNU.sparse.") => self.sparse = true,
                _ => {}
            }
        }
        Ok(())
    }
}

/// Reads exactly one block; `Ok(false)` at a clean end of stream.
fn read_block(r: &mut impl Read, block: &mut [u8; BLOCK]) -> io::Result<bool> {
    let mut got = 0;
    while got < BLOCK {
        match r.read(&mut block[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn skip(r: &mut impl Read, mut n: u64, buf: &mut [u8]) -> io::Result<()> {
    while n > 0 {
        let want = n.min(buf.len() as u64) as usize;
        let got = r.read(&mut buf[..want])?;
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        n -= got as u64;
    }
    Ok(())
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// The content reader a sink gets: bounded to the entry, and remembering a
/// stream fault so the source reports it (typed) instead of the sink's
/// generic write error.
struct Content<'a, R> {
    inner: &'a mut R,
    left: u64,
    fault: &'a mut Option<io::Error>,
}

impl<R: Read> Read for Content<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = self.left.min(buf.len() as u64) as usize;
        match self.inner.read(&mut buf[..want]) {
            Ok(0) => {
                *self.fault = Some(io::ErrorKind::UnexpectedEof.into());
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the layer stream ends inside this file",
                ))
            }
            Ok(n) => {
                self.left -= n as u64;
                Ok(n)
            }
            Err(e) => {
                let msg = e.to_string();
                *self.fault = Some(e);
                Err(io::Error::other(format!("reading the layer: {msg}")))
            }
        }
    }
}

/// An entry's name for messages: whole up to `SHOWN_NAME_BYTES`, else its
/// start and end with the length (a PAX name may be a megabyte long).
fn shown(name: &[u8]) -> String {
    if name.len() <= SHOWN_NAME_BYTES {
        return String::from_utf8_lossy(name).into_owned();
    }
    format!(
        "{}…{} ({} bytes)",
        String::from_utf8_lossy(&name[..SHOWN_NAME_BYTES / 2]),
        String::from_utf8_lossy(&name[name.len() - 64..]),
        name.len()
    )
}

const SHOWN_NAME_BYTES: usize = 512;

/// The non-directory paths of the layer so far (the only valid hard-link
/// targets), kept as keyed 128-bit hashes: memory per entry independent of
/// its path's length, and no collision a layer can aim at (the keys are
/// random per layer read).
#[derive(Default)]
struct Linkable {
    keys: (
        std::collections::hash_map::RandomState,
        std::collections::hash_map::RandomState,
    ),
    set: HashSet<u128>,
}

impl Linkable {
    fn key(&self, p: &Path) -> u128 {
        use std::hash::BuildHasher;
        let b = p.as_os_str().as_bytes();
        (u128::from(self.keys.0.hash_one(b)) << 64) | u128::from(self.keys.1.hash_one(b))
    }

    fn insert(&mut self, p: &Path) {
        let k = self.key(p);
        self.set.insert(k);
    }

    fn remove(&mut self, p: &Path) {
        let k = self.key(p);
        self.set.remove(&k);
    }

    fn contains(&self, p: &Path) -> bool {
        self.set.contains(&self.key(p))
    }
}

/// Counts the (uncompressed) tar bytes read, for the path budget when the
/// stream does not know its stored size.
struct Counted<'a, R> {
    inner: &'a mut R,
    read: u64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// The path bytes a layer has cost so far (see `PATH_BYTES_BASE`). Memory is
/// one path (the previous entry's parent), whatever the depth.
#[derive(Default)]
struct PathBudget {
    spent: u64,
    prev_parent: Vec<u8>,
}

impl PathBudget {
    /// Charges `path` and the parent directories it implies that the previous
    /// entry did not (tars list a directory's entries together, so a real
    /// layer pays for each directory about once; an attacker alternating
    /// between deep chains pays every time, which only refuses it sooner).
    fn charge(&mut self, path: &[u8]) {
        let parent = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => &path[..i],
            None => &b""[..],
        };
        // Length of the common prefix, in whole components.
        let mut common = 0;
        let (a, b) = (parent, self.prev_parent.as_slice());
        let mut i = 0;
        while i < a.len() && i < b.len() && a[i] == b[i] {
            i += 1;
            if (i == a.len() || a[i] == b'/') && (i == b.len() || b[i] == b'/') {
                common = i;
            }
        }
        let mut implied = 0u64;
        for (j, &c) in parent.iter().enumerate().skip(common) {
            if c == b'/' && j > common {
                implied += j as u64 + PATH_ENTRY_OVERHEAD;
            }
        }
        if parent.len() > common {
            implied += parent.len() as u64 + PATH_ENTRY_OVERHEAD;
        }
        self.spent = self
            .spent
            .saturating_add(implied + path.len() as u64 + PATH_ENTRY_OVERHEAD);
        self.prev_parent.clear();
        self.prev_parent.extend_from_slice(parent);
    }

    fn cap(stored: u64) -> u64 {
        PATH_BYTES_BASE.saturating_add(PATH_BYTES_PER_STORED_BYTE.saturating_mul(stored))
    }
}

/// Streams the tar in `r` as entries of `layer` into `sink`. Stops at the
/// tar's end marker and reads what follows only up to `MAX_TRAILING_BYTES`
/// (so the diff_id check at the end of `r` covers the whole tar without
/// inflating a bomb); the caller drains the stored blob for its digest.
pub(crate) fn visit<R: Read + StoredBytes>(
    layer: &str,
    r: &mut R,
    sink: &mut dyn EntrySink,
) -> Result<(), ImageError> {
    let r = &mut Counted { inner: r, read: 0 };
    let hostile = |entry: &[u8], reason: &str| {
        ImageError::Source(SourceError::Hostile {
            layer: layer.to_string(),
            entry: shown(entry),
            reason: reason.to_string(),
        })
    };
    let corrupt = |entry: Option<&[u8]>, reason: String| {
        ImageError::Source(SourceError::Corrupt {
            layer: layer.to_string(),
            entry: entry.map(shown),
            reason,
        })
    };
    let mut block = [0u8; BLOCK];
    let mut skip_buf = vec![0u8; 64 * 1024];
    let mut pending = Pending::default();
    let mut budget = PathBudget::default();
    // Non-directory entries seen so far: the only valid hard-link targets.
    let mut linkable = Linkable::default();
    loop {
        let more = read_block(r, &mut block).map_err(|e| stream_error(layer, None, e))?;
        if !more {
            return Ok(());
        }
        if block.iter().all(|&b| b == 0) {
            return drain_trailing(layer, r, &mut skip_buf);
        }
        let header = ::tar::Header::from_byte_slice(&block);
        let sum: u32 = block[..148]
            .iter()
            .chain(&block[156..])
            .map(|&b| b as u32)
            .sum::<u32>()
            + 8 * 32;
        if header.cksum().ok() != Some(sum) {
            return Err(corrupt(
                None,
                "a tar header's checksum is wrong (not a tar, or corrupt)".into(),
            ));
        }
        let header_name = header.path_bytes().into_owned();
        let typeflag = header.as_old().linkflag[0];
        let header_size = if is_blank(&header.as_old().size) {
            Ok(0)
        } else {
            header.entry_size()
        };
        let header_size =
            header_size.map_err(|e| corrupt(Some(&header_name), format!("bad size field: {e}")))?;
        match typeflag {
            b'x' | b'g' | b'L' | b'K' => {
                if header_size > MAX_EXTENSION_BYTES {
                    return Err(hostile(
                        &header_name,
                        &format!(
                            "an extension header of {header_size} bytes (limit {MAX_EXTENSION_BYTES})"
                        ),
                    ));
                }
                let mut data = vec![0u8; header_size as usize];
                r.read_exact(&mut data)
                    .map_err(|e| stream_error(layer, None, e))?;
                skip(r, padding(header_size), &mut skip_buf)
                    .map_err(|e| stream_error(layer, None, e))?;
                match typeflag {
                    b'x' => pending
                        .pax(&data)
                        .map_err(|reason| corrupt(Some(&header_name), reason))?,
                    b'L' | b'K' => {
                        while data.last() == Some(&0) {
                            data.pop();
                        }
                        if typeflag == b'L' {
                            pending.path = Some(data);
                        } else {
                            pending.link = Some(data);
                        }
                    }
                    // Global PAX headers set archive-wide defaults no image
                    // writer uses for the fields kept here.
                    _ => {}
                }
                continue;
            }
            _ => {}
        }
        let p = std::mem::take(&mut pending);
        let raw_name = p.path.unwrap_or(header_name);
        let size = p.size.unwrap_or(header_size);
        let deliver = deliver_entry(
            header,
            typeflag,
            &raw_name,
            p.link,
            size,
            p.uid,
            p.gid,
            p.mtime,
            p.xattrs,
            p.sparse,
            &mut linkable,
        );
        let entry = match deliver {
            Ok(Some(e)) => {
                budget.charge(e.path.as_os_str().as_bytes());
                let stored = r.inner.stored_bytes().unwrap_or(r.read);
                if budget.spent > PathBudget::cap(stored) {
                    return Err(hostile(
                        &raw_name,
                        &format!(
                            "the layer's paths (its entries' and the directories they imply) add up to {} bytes \
                             after {} stored bytes; a layer may hold {} bytes of paths plus {} per stored byte \
                             (a deep or long-named tree packed into a small compressed layer)",
                            budget.spent, stored, PATH_BYTES_BASE, PATH_BYTES_PER_STORED_BYTE
                        ),
                    ));
                }
                e
            }
            Ok(None) => {
                skip(r, size + padding(size), &mut skip_buf)
                    .map_err(|e| stream_error(layer, Some(Path::new(&shown(&raw_name))), e))?;
                continue;
            }
            Err(Refusal::Hostile(reason)) => return Err(hostile(&raw_name, &reason)),
        };
        let content_len = match entry.kind {
            EntryKind::File { size } => size,
            _ => 0,
        };
        let mut fault = None;
        let stopped = {
            let mut content = Content {
                inner: r,
                left: content_len,
                fault: &mut fault,
            };
            let res = sink.entry(&entry, &mut content);
            let left = content.left;
            (res, left)
        };
        if let Some(e) = fault {
            return Err(ImageError::Source(stream_error(
                layer,
                Some(&entry.path),
                e,
            )));
        }
        if stopped.0.is_err() {
            return Err(ImageError::Stopped);
        }
        // What the sink left unread, what the header declared beyond the
        // entry's content (hard links, dirs), and the block padding.
        skip(
            r,
            stopped.1 + (size - content_len) + padding(size),
            &mut skip_buf,
        )
        .map_err(|e| ImageError::Source(stream_error(layer, Some(&entry.path), e)))?;
    }
}

/// After the end marker: reads at most `MAX_TRAILING_BYTES` more (through
/// the diff_id check, which completes at the end of the stream) and refuses a
/// layer with more, without inflating the rest.
fn drain_trailing<R: Read>(layer: &str, r: &mut R, buf: &mut [u8]) -> Result<(), ImageError> {
    let mut trailing = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ImageError::Source(stream_error(layer, None, e))),
        };
        if n == 0 {
            return Ok(());
        }
        trailing += n as u64;
        if trailing > MAX_TRAILING_BYTES {
            return Err(ImageError::Source(SourceError::Corrupt {
                layer: layer.to_string(),
                entry: None,
                reason: format!(
                    "{trailing} bytes were read past the tar's end marker and more follow (at most \
                     {MAX_TRAILING_BYTES} may: a layer ends there, with at most a record of zero padding); \
                     the rest is not decompressed"
                ),
            }));
        }
    }
}

fn is_blank(raw: &[u8]) -> bool {
    raw.iter().all(|&b| b == 0 || b == b' ')
}

/// Why an entry is refused. Every refusal is bad input (exit 2), unsupported
/// features included: a layer this tool cannot reproduce identically in every
/// layout is the image's problem, not the host's.
enum Refusal {
    Hostile(String),
}

/// Checks an xattr as Linux would take it, so a bad one is refused here,
/// naming it, and not by the kernel halfway through a layout (and the same
/// way for every layout, rootless ones included).
fn check_xattr(name: &[u8], value: &[u8]) -> Result<(), String> {
    let shown = String::from_utf8_lossy(name);
    if name.len() > XATTR_NAME_MAX {
        return Err(format!(
            "xattr name {shown:?} is {} bytes (Linux's limit is {XATTR_NAME_MAX})",
            name.len()
        ));
    }
    if value.len() > XATTR_SIZE_MAX {
        return Err(format!(
            "xattr {shown:?} has a {}-byte value (Linux's limit is {XATTR_SIZE_MAX})",
            value.len()
        ));
    }
    let known = [&b"user."[..], b"trusted.", b"security."]
        .iter()
        .any(|ns| name.starts_with(ns) && name.len() > ns.len())
        || name == b"system.posix_acl_access"
        || name == b"system.posix_acl_default";
    if !known {
        return Err(format!(
            "xattr {shown:?} is in no namespace Linux stores (user., trusted., security., \
             system.posix_acl_access/default)"
        ));
    }
    if name == b"security.capability" {
        // struct vfs_ns_cap_data: revision 2 (20 bytes) or 3 (24 bytes, with a
        // root uid); the kernel refuses revision 1 and any other size since 4.14.
        let magic = value
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let ok = match magic.map(|m| (m & 0xFF00_0000, m & 0x00FF_FFFE)) {
            Some((0x0200_0000, 0)) => value.len() == 20,
            Some((0x0300_0000, 0)) => value.len() == 24,
            _ => false,
        };
        if !ok {
            return Err(format!(
                "xattr \"security.capability\" is malformed ({} bytes; Linux takes a revision-2 set of \
                 20 bytes or a revision-3 set of 24)",
                value.len()
            ));
        }
    }
    if name.starts_with(b"system.posix_acl_") {
        // posix_acl_xattr_header (version 2) then 8-byte entries.
        let ok = value.len() >= 4
            && (value.len() - 4).is_multiple_of(8)
            && value[..4] == 2u32.to_le_bytes();
        if !ok {
            return Err(format!(
                "xattr {shown:?} is not a POSIX ACL (version 2 header then 8-byte entries; {} bytes)",
                value.len()
            ));
        }
    }
    Ok(())
}

/// Checks a delivered path as the layouts will make it.
fn check_path(path: &Path) -> Result<(), String> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() > PATH_MAX_BYTES {
        return Err(format!(
            "a path of {} bytes (Linux's PATH_MAX allows {PATH_MAX_BYTES}; {} levels deep)",
            bytes.len(),
            bytes.iter().filter(|&&b| b == b'/').count() + 1
        ));
    }
    for comp in bytes.split(|&b| b == b'/') {
        if comp.len() > NAME_MAX {
            return Err(format!(
                "a name of {} bytes (Linux's NAME_MAX is {NAME_MAX})",
                comp.len()
            ));
        }
        if comp.starts_with(WH_PREFIX) {
            // A whiteout marker used as a directory (`a/.wh.x/f`): OCI gives
            // it no meaning, and overlay would keep it as a literal name
            // while the other layouts read it as a deletion.
            return Err(format!(
                "a whiteout marker {:?} used as a directory",
                String::from_utf8_lossy(comp)
            ));
        }
    }
    Ok(())
}

/// Builds the entry a header describes; `Ok(None)` for markers that are not
/// entries (the layer root, AUFS metadata).
#[allow(clippy::too_many_arguments)]
fn deliver_entry(
    header: &::tar::Header,
    typeflag: u8,
    raw_name: &[u8],
    link: Option<Vec<u8>>,
    size: u64,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<i64>,
    xattrs: Vec<(OsString, Vec<u8>)>,
    sparse: bool,
    linkable: &mut Linkable,
) -> Result<Option<Entry>, Refusal> {
    let h = |r: &str| Refusal::Hostile(r.to_string());
    let path = match clean_name(raw_name).map_err(h)? {
        Some(p) => p,
        // The layer root: its metadata is the layout's, not the image's.
        None => return Ok(None),
    };
    if size > MAX_ENTRY_BYTES {
        return Err(Refusal::Hostile(format!(
            "a size of {size} bytes (limit {MAX_ENTRY_BYTES})"
        )));
    }
    if sparse || typeflag == b'S' {
        return Err(Refusal::Hostile(
            "a GNU sparse file (OCI layers hold plain files; no engine writes sparse entries)"
                .into(),
        ));
    }
    let old = header.as_old();
    let num =
        |v: Option<u64>, field: io::Result<u64>, raw: &[u8], what: &str| -> Result<u32, Refusal> {
            let v = match v {
                Some(v) => v,
                // An empty field is 0, as Go's archive/tar reads it.
                None if is_blank(raw) => 0,
                None => field.map_err(|e| Refusal::Hostile(format!("bad {what} field: {e}")))?,
            };
            u32::try_from(v).map_err(|_| Refusal::Hostile(format!("{what} {v} is out of range")))
        };
    let uid = num(uid, header.uid(), &old.uid, "uid")?;
    let gid = num(gid, header.gid(), &old.gid, "gid")?;
    let mode = if is_blank(&old.mode) {
        0
    } else {
        header
            .mode()
            .map_err(|e| Refusal::Hostile(format!("bad mode field: {e}")))?
            & 0o7777
    };
    let mtime = match mtime {
        Some(m) => m,
        None => header.mtime().unwrap_or(0).min(i64::MAX as u64) as i64,
    };
    let file_name = path
        .file_name()
        .map(|n| std::os::unix::ffi::OsStrExt::as_bytes(n).to_vec())
        .unwrap_or_default();
    let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = |kind, path| Entry {
        path,
        kind,
        mode,
        uid,
        gid,
        mtime,
        xattrs: Vec::new(),
    };
    if file_name.starts_with(WH_PREFIX) {
        if file_name == WH_OPAQUE {
            if parent.as_os_str().is_empty() {
                return Err(h(
                    "an opaque marker at the layer root (it would hide every lower layer; overlay \
                     cannot mark its root opaque, so the layouts would differ)",
                ));
            }
            check_path(&parent).map_err(Refusal::Hostile)?;
            return Ok(Some(base(EntryKind::Opaque, parent)));
        }
        if file_name.starts_with(WH_META_PREFIX) {
            // AUFS bookkeeping (`.wh..wh.plnk`, …): not part of the tree, as Docker does.
            return Ok(None);
        }
        let target = &file_name[WH_PREFIX.len()..];
        if target.is_empty() || target == b"." || target == b".." {
            return Err(h("a whiteout of `.`, `..` or an empty name"));
        }
        let hidden = parent.join(OsString::from_vec(target.to_vec()));
        check_path(&hidden).map_err(Refusal::Hostile)?;
        linkable.remove(&hidden);
        return Ok(Some(base(EntryKind::Whiteout, hidden)));
    }
    let dev = |v: io::Result<Option<u32>>, what: &str| -> Result<u32, Refusal> {
        v.map(Option::unwrap_or_default)
            .map_err(|e| Refusal::Hostile(format!("bad device {what}: {e}")))
    };
    let kind = match typeflag {
        b'0' | b'\0' | b'7' => EntryKind::File { size },
        b'5' => EntryKind::Dir,
        b'2' => {
            let target = link
                .or_else(|| header.link_name_bytes().map(|c| c.into_owned()))
                .unwrap_or_default();
            if target.is_empty() || target.contains(&0) {
                return Err(h("a symlink with an empty or NUL-containing target"));
            }
            if target.len() > PATH_MAX_BYTES {
                return Err(Refusal::Hostile(format!(
                    "a symlink target of {} bytes (Linux's PATH_MAX allows {PATH_MAX_BYTES})",
                    target.len()
                )));
            }
            EntryKind::Symlink {
                target: PathBuf::from(OsString::from_vec(target)),
            }
        }
        b'1' => {
            let target = link
                .or_else(|| header.link_name_bytes().map(|c| c.into_owned()))
                .unwrap_or_default();
            let target = match clean_name(&target) {
                Ok(Some(t)) => t,
                Ok(None) | Err(_) => return Err(h("a hard link to a path outside the layer")),
            };
            if !linkable.contains(&target) {
                return Err(Refusal::Hostile(format!(
                    "a hard link to {:?}, which is not an earlier non-directory entry of this layer",
                    target.display().to_string()
                )));
            }
            EntryKind::HardLink { target }
        }
        b'3' => {
            let (major, minor) = (
                dev(header.device_major(), "major")?,
                dev(header.device_minor(), "minor")?,
            );
            // A char 0/0 device *is* overlay's whiteout: stored as such in an
            // overlay diff (overlay2, containerd, erofs lowers) it deletes the
            // lower path, while the flattening layouts (plain, legacy,
            // btrfs) and the index keep a device — the layouts would hold
            // different trees. It is refused rather than converted: no real
            // image ships one (device 0/0 opens nothing, ENXIO), engines do
            // not agree on it (moby and containers/storage mknod it as is,
            // so it acts as a whiteout there too), and an OCI whiteout has
            // its own spelling (`.wh.NAME`).
            if major == 0 && minor == 0 {
                return Err(h(
                    "a character device 0/0, which overlay reads as a whiteout (OCI spells a \
                     deletion `.wh.NAME`); refused so that every layout holds the same tree",
                ));
            }
            EntryKind::CharDevice { major, minor }
        }
        b'4' => EntryKind::BlockDevice {
            major: dev(header.device_major(), "major")?,
            minor: dev(header.device_minor(), "minor")?,
        },
        b'6' => EntryKind::Fifo,
        other => {
            return Err(Refusal::Hostile(format!(
                "tar entry type {:?} is not a file, link, directory, device or FIFO (sockets, \
                 volume labels and other types have no place in a layer)",
                other as char
            )))
        }
    };
    check_path(&path).map_err(Refusal::Hostile)?;
    for (k, v) in &xattrs {
        check_xattr(k.as_bytes(), v).map_err(Refusal::Hostile)?;
    }
    if matches!(kind, EntryKind::Dir) {
        linkable.remove(&path);
    } else {
        linkable.insert(&path);
    }
    let mut e = base(kind, path);
    e.xattrs = xattrs;
    Ok(Some(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, u8, &[u8], &str)]) -> Vec<u8> {
        let mut b = ::tar::Builder::new(Vec::new());
        for (name, kind, data, link) in entries {
            let mut h = ::tar::Header::new_gnu();
            h.set_entry_type(::tar::EntryType::new(*kind));
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            // Bypass the builder's own path checks: hostile names are the point.
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn entries(data: &[u8]) -> Result<Vec<(Entry, Vec<u8>)>, ImageError> {
        let mut out = Vec::new();
        let mut sink = |e: &Entry, c: &mut dyn Read| {
            let mut v = Vec::new();
            c.read_to_end(&mut v).map_err(|_| crate::image::Stop)?;
            out.push((e.clone(), v));
            Ok(())
        };
        visit("sha256:test", &mut &data[..], &mut sink)?;
        Ok(out)
    }

    #[test]
    fn names_are_normalised_and_whiteouts_decoded() {
        let t = tar_of(&[
            ("./", b'5', b"", ""),
            ("./a/", b'5', b"", ""),
            ("./a//f", b'0', b"data", ""),
            ("a/.wh.gone", b'0', b"", ""),
            ("a/.wh..wh..opq", b'0', b"", ""),
            ("a/.wh..wh.plnk", b'0', b"", ""),
            ("a/h", b'1', b"", "./a/f"),
        ]);
        let got = entries(&t).unwrap();
        let kinds: Vec<_> = got
            .iter()
            .map(|(e, c)| (e.path.display().to_string(), e.kind.clone(), c.clone()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("a".into(), EntryKind::Dir, vec![]),
                ("a/f".into(), EntryKind::File { size: 4 }, b"data".to_vec()),
                ("a/gone".into(), EntryKind::Whiteout, vec![]),
                ("a".into(), EntryKind::Opaque, vec![]),
                (
                    "a/h".into(),
                    EntryKind::HardLink {
                        target: "a/f".into()
                    },
                    vec![]
                ),
            ]
        );
    }

    #[test]
    fn hostile_names_and_links_are_refused_naming_the_entry() {
        for (entries_, what) in [
            (vec![("../x", b'0', &b""[..], "")], "`..`"),
            (vec![("/etc/passwd", b'0', &b""[..], "")], "absolute"),
            (vec![("a/.wh...", b'0', &b""[..], "")], "whiteout"),
            (vec![("h", b'1', &b""[..], "../../etc/shadow")], "outside"),
            (vec![("h", b'1', &b""[..], "/etc/shadow")], "outside"),
            (vec![("h", b'1', &b""[..], "missing")], "not an earlier"),
            (
                vec![("d", b'5', &b""[..], ""), ("h", b'1', &b""[..], "d")],
                "not an earlier",
            ),
        ] {
            let err = entries(&tar_of(&entries_)).expect_err(what).to_string();
            assert!(
                err.contains(what) && err.contains("sha256:test"),
                "{what}: {err}"
            );
        }
    }

    #[test]
    fn oversized_extension_headers_are_refused_before_reading_them() {
        let mut h = ::tar::Header::new_gnu();
        h.set_entry_type(::tar::EntryType::GNULongName);
        h.set_size(10 << 30);
        h.set_cksum();
        let mut t = h.as_bytes().to_vec();
        t.extend_from_slice(&[b'a'; 4096]);
        let err = entries(&t).unwrap_err().to_string();
        assert!(err.contains("extension header"), "{err}");
    }

    #[test]
    fn truncation_inside_a_file_names_the_entry() {
        let t = tar_of(&[("f", b'0', &[7u8; 2000][..], "")]);
        let err = entries(&t[..1200]).unwrap_err().to_string();
        assert!(
            err.contains("\"f\"") && err.contains("sha256:test"),
            "{err}"
        );
    }

    /// One entry (its PAX records first, when any), without the end marker.
    fn raw_entry(
        pax: &[(&str, &[u8])],
        name: &[u8],
        kind: u8,
        data: &[u8],
        dev: (u32, u32),
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut block = |h: &mut ::tar::Header, data: &[u8]| {
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len() + padding(data.len() as u64) as usize, 0);
        };
        if !pax.is_empty() {
            let mut recs = Vec::new();
            for (k, v) in pax {
                let body = 1 + k.len() + 1 + v.len() + 1;
                let mut len = body + 1;
                while len != body + len.to_string().len() {
                    len = body + len.to_string().len();
                }
                recs.extend_from_slice(format!("{len} {k}=").as_bytes());
                recs.extend_from_slice(v);
                recs.push(b'\n');
            }
            let mut x = ::tar::Header::new_ustar();
            x.set_entry_type(::tar::EntryType::XHeader);
            x.as_old_mut().name[..3].copy_from_slice(b"pax");
            x.set_size(recs.len() as u64);
            x.set_mode(0o644);
            block(&mut x, &recs);
        }
        let mut h = ::tar::Header::new_ustar();
        h.set_entry_type(::tar::EntryType::new(kind));
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        let n = name.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
        h.set_device_major(dev.0).unwrap();
        h.set_device_minor(dev.1).unwrap();
        block(&mut h, data);
        out
    }

    fn ended(mut t: Vec<u8>) -> Vec<u8> {
        t.extend_from_slice(&[0u8; 1024]);
        t
    }

    fn refused(t: &[u8], words: &[&str]) {
        let e = entries(t).expect_err("refused");
        let msg = e.to_string();
        assert_eq!(e.class(), crate::error::ErrorClass::Usage, "{msg}");
        for w in words {
            assert!(msg.contains(w), "{w:?} not in {msg}");
        }
    }

    #[test]
    fn names_up_to_name_max_pass_and_longer_ones_are_refused_naming_them() {
        let n255 = "n".repeat(255);
        let t = ended(raw_entry(
            &[("path", n255.as_bytes())],
            b"x",
            b'0',
            b"hi",
            (0, 0),
        ));
        let got = entries(&t).unwrap();
        assert_eq!(got[0].0.path, Path::new(&n255));
        let n256 = format!("d/{}", "n".repeat(256));
        let t = ended(raw_entry(
            &[("path", n256.as_bytes())],
            b"x",
            b'0',
            b"",
            (0, 0),
        ));
        refused(&t, &[&n256, "NAME_MAX", "256"]);
        // 4,096 bytes in 20 components of 204 bytes: over PATH_MAX.
        let long = vec!["c".repeat(204); 20].join("/");
        let long = format!("{long}/xxxxxxxxxxxxxxx");
        assert!(long.len() > PATH_MAX_BYTES);
        let t = ended(raw_entry(
            &[("path", long.as_bytes())],
            b"x",
            b'0',
            b"",
            (0, 0),
        ));
        refused(&t, &["PATH_MAX", "4095"]);
    }

    #[test]
    fn unsupported_entries_and_bad_xattrs_are_bad_input_naming_the_entry() {
        let cap_v2 = {
            let mut v = 0x0200_0001u32.to_le_bytes().to_vec();
            v.resize(20, 0);
            v
        };
        let ok = ended(raw_entry(
            &[
                ("SCHILY.xattr.security.capability", &cap_v2),
                ("SCHILY.xattr.user.k", b"v"),
            ],
            b"bin",
            b'0',
            b"",
            (0, 0),
        ));
        assert_eq!(entries(&ok).unwrap()[0].0.xattrs.len(), 2);
        let big = vec![b'v'; 70_000];
        for (t, words) in [
            (
                raw_entry(&[("SCHILY.xattr.bogus.k", b"v")], b"f1", b'0', b"", (0, 0)),
                &["\"f1\"", "bogus.k", "namespace"][..],
            ),
            (
                raw_entry(
                    &[("SCHILY.xattr.security.capability", b"\x01\x00\x00\x02abc")],
                    b"f2",
                    b'0',
                    b"",
                    (0, 0),
                ),
                &["\"f2\"", "security.capability", "malformed"],
            ),
            (
                raw_entry(&[("SCHILY.xattr.user.big", &big)], b"f3", b'0', b"", (0, 0)),
                &["\"f3\"", "70000-byte", "65536"],
            ),
            (
                raw_entry(&[], b"sock", b's', b"", (0, 0)),
                &["\"sock\"", "entry type 's'"],
            ),
            (
                raw_entry(&[], b".wh..wh..opq", b'0', b"", (0, 0)),
                &[".wh..wh..opq", "layer root"],
            ),
            (
                raw_entry(&[], b"sparse", b'S', b"", (0, 0)),
                &["\"sparse\"", "sparse"],
            ),
            (
                raw_entry(&[("GNU.sparse.map", b"0,0")], b"sp2", b'0', b"", (0, 0)),
                &["\"sp2\"", "sparse"],
            ),
            (
                raw_entry(&[], b"d/a", b'3', b"", (0, 0)),
                &["\"d/a\"", "0/0", "whiteout"],
            ),
        ] {
            refused(&ended(t), words);
        }
        let dev = ended(raw_entry(&[], b"null", b'3', b"", (1, 3)));
        assert_eq!(
            entries(&dev).unwrap()[0].0.kind,
            EntryKind::CharDevice { major: 1, minor: 3 }
        );
    }

    #[test]
    fn what_follows_the_end_marker_is_read_only_to_a_bound() {
        let t = tar_of(&[("f", b'0', b"data", "")]);
        // GNU tar's padding to a 10 KiB record, and a little more, pass.
        let mut padded = t.clone();
        padded.resize(padded.len() + 20 * 1024, 0);
        assert_eq!(entries(&padded).unwrap().len(), 1);
        let mut bomb = t.clone();
        bomb.resize(bomb.len() + 3 * MAX_TRAILING_BYTES as usize, 0);
        refused(&bomb, &["end marker", "1048576"]);
    }

    #[test]
    fn path_bytes_are_budgeted_by_what_the_layer_stores() {
        // Two chains 1,000 levels deep, entries alternating between them:
        // each entry implies ~1,000 parents (~1 MB of paths) for ~3 KB of tar.
        let chain = |c: &str| vec![c; 1000].join("/");
        let (a, b) = (chain("a"), chain("b"));
        let mut t = Vec::new();
        for i in 0..40 {
            let p = format!("{}/f{i}", if i % 2 == 0 { &a } else { &b });
            t.extend(raw_entry(
                &[("path", p.as_bytes())],
                b"x",
                b'0',
                b"",
                (0, 0),
            ));
        }
        refused(&ended(t), &["paths", "stored bytes"]);
        // Thousands of entries side by side in one deep directory pass.
        let mut t = Vec::new();
        for i in 0..3000 {
            let p = format!("{a}/f{i}");
            t.extend(raw_entry(
                &[("path", p.as_bytes())],
                b"x",
                b'0',
                b"",
                (0, 0),
            ));
        }
        assert_eq!(entries(&ended(t)).unwrap().len(), 3000);
    }
}
