//! Reading blobs safely: regular files only, documents size-capped, streams
//! whose sha256 is checked as they are read, decompression chosen by media
//! type and checked against the stream's magic bytes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use nix::fcntl::OFlag;
use sha2::{Digest as _, Sha256};

use super::{SourceError, MAX_DOCUMENT_BYTES};

/// Read buffer for layer streams: large enough that the decoders and the
/// hashers work on big slices, small enough to stay far below the RSS target
/// with one stream per core.
pub(crate) const STREAM_BUFFER_BYTES: usize = 256 * 1024;

/// A sha256 content digest (`sha256:<64 hex>`). Parsing validates it, so a
/// digest can be used as a file name (`blobs/sha256/<hex>`) without escaping.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`; other algorithms are refused.
    pub fn parse(s: &str) -> Result<Digest, String> {
        let Some(hex) = s.strip_prefix("sha256:") else {
            return Err(format!(
                "digest {s:?} is not sha256:<64 hex digits> (only sha256 is supported)"
            ));
        };
        Digest::from_hex(hex)
            .ok_or_else(|| format!("digest {s:?} is not sha256:<64 lowercase hex digits>"))
    }

    /// Parses 64 lowercase hex digits.
    pub fn from_hex(hex: &str) -> Option<Digest> {
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            let nib = |c: u8| match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                _ => None,
            };
            out[i] = nib(pair[0])? << 4 | nib(pair[1])?;
        }
        Some(Digest(out))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// The 64 hex digits without the algorithm.
    pub fn hex(&self) -> String {
        use std::fmt::Write;
        let mut s = String::with_capacity(64);
        for b in self.0 {
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

fn kind_name(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "directory"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// Opens `path` for reading only if it is a regular file. `O_NONBLOCK` keeps
/// the open itself from hanging on a FIFO; `fstat` then refuses anything but
/// a regular file before a byte is read.
pub(crate) fn open_regular(path: &Path) -> Result<File, SourceError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY).bits())
        .open(path)
        .map_err(SourceError::io("opening", path))?;
    let meta = file.metadata().map_err(SourceError::io("reading", path))?;
    if !meta.file_type().is_file() {
        return Err(SourceError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_name(meta.file_type()),
        });
    }
    Ok(file)
}

/// Reads a whole regular file of at most `cap` bytes.
pub(crate) fn read_capped(
    path: &Path,
    what: &'static str,
    cap: u64,
) -> Result<Vec<u8>, SourceError> {
    let file = open_regular(path)?;
    read_capped_from(file, &path.display().to_string(), what, cap).map_err(|e| match e {
        CappedError::Io(source) => SourceError::Io {
            op: "reading",
            path: path.to_path_buf(),
            source,
        },
        CappedError::TooLarge(bytes) => SourceError::TooLarge {
            what,
            location: path.display().to_string(),
            bytes,
            cap,
        },
    })
}

pub(crate) enum CappedError {
    Io(io::Error),
    TooLarge(u64),
}

/// Reads at most `cap` bytes; more is `TooLarge` (with what was seen so far,
/// at least `cap + 1`).
pub(crate) fn read_capped_from(
    r: impl Read,
    _location: &str,
    _what: &'static str,
    cap: u64,
) -> Result<Vec<u8>, CappedError> {
    let mut buf = Vec::new();
    let n = r
        .take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(CappedError::Io)? as u64;
    if n > cap {
        return Err(CappedError::TooLarge(n));
    }
    Ok(buf)
}

/// Reads a document (manifest, index, config) from a source of known size,
/// refusing it above `MAX_DOCUMENT_BYTES`, and checks its digest.
pub(crate) fn read_document(
    r: impl Read,
    what: &'static str,
    location: &str,
    expected: Option<&Digest>,
) -> Result<Vec<u8>, SourceError> {
    let bytes = read_capped_from(r, location, what, MAX_DOCUMENT_BYTES).map_err(|e| match e {
        CappedError::Io(e) => SourceError::malformed(what, location, format!("reading: {e}")),
        CappedError::TooLarge(bytes) => SourceError::TooLarge {
            what,
            location: location.to_string(),
            bytes,
            cap: MAX_DOCUMENT_BYTES,
        },
    })?;
    if let Some(want) = expected {
        let got = Digest::of(&bytes);
        if got != *want {
            return Err(SourceError::DigestMismatch {
                layer: location.to_string(),
                what,
                expected: want.to_string(),
                actual: got.to_string(),
            });
        }
    }
    Ok(bytes)
}

/// What went wrong inside a verified stream; carried through `io::Error` so
/// that decoders and the tar reader pass it up unchanged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamFault {
    #[error("{what} digest mismatch: expected {expected}, got {actual}")]
    Mismatch {
        what: &'static str,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what} is truncated: {got} of {want} bytes")]
    Short {
        what: &'static str,
        got: u64,
        want: u64,
    },
    #[error("{what} is longer than its declared {want} bytes")]
    Long { what: &'static str, want: u64 },
    /// A stop was asked for (a signal): every blocking read of a layer checks
    /// it, so a stream is never read on for more than one buffer after it.
    #[error(
        "reading stopped: {} asked the run to stop",
        crate::stop::signal_name(crate::stop::signal())
    )]
    Stopped,
}

impl StreamFault {
    /// The fault inside `e`, if `e` carries one.
    pub(crate) fn find(e: &io::Error) -> Option<&StreamFault> {
        e.get_ref()?.downcast_ref::<StreamFault>()
    }
}

/// Hashes everything read through it and, at end of stream, compares the
/// digest (and the length, when declared) with the expected ones.
pub(crate) struct Verify<R> {
    inner: R,
    hasher: Sha256,
    read_bytes: u64,
    what: &'static str,
    expected: Option<Digest>,
    expected_len: Option<u64>,
    checked: bool,
}

impl<R: Read> Verify<R> {
    pub(crate) fn new(
        inner: R,
        what: &'static str,
        expected: Option<Digest>,
        expected_len: Option<u64>,
    ) -> Self {
        Verify {
            inner,
            hasher: Sha256::new(),
            read_bytes: 0,
            what,
            expected,
            expected_len,
            checked: false,
        }
    }

    pub(crate) fn into_inner(self) -> R {
        self.inner
    }
}

/// How many bytes of the *stored* blob (compressed as stored) a layer stream
/// has consumed so far: the tar reader caps what a layer may cost in memory
/// (its path bytes) by what the attacker had to ship, not by what it
/// decompresses to. `None` when the stream does not know.
pub(crate) trait StoredBytes {
    fn stored_bytes(&self) -> Option<u64>;
}

impl<R> StoredBytes for BufReader<Verify<R>> {
    fn stored_bytes(&self) -> Option<u64> {
        Some(self.get_ref().read_bytes)
    }
}

impl<R: BufRead + StoredBytes> StoredBytes for Decoder<R> {
    fn stored_bytes(&self) -> Option<u64> {
        match self {
            Decoder::Plain(r) => r.stored_bytes(),
            Decoder::Gzip(d) => d.get_ref().stored_bytes(),
            Decoder::Zstd(d) => d.get_ref().stored_bytes(),
        }
    }
}

impl<R: StoredBytes> StoredBytes for Verify<R> {
    fn stored_bytes(&self) -> Option<u64> {
        self.inner.stored_bytes()
    }
}

impl StoredBytes for &[u8] {
    fn stored_bytes(&self) -> Option<u64> {
        None
    }
}

impl<R: Read> Read for Verify<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Every layer read, hashing and decompression included, passes a
        // Verify (stored blob, then uncompressed tar); one read is at most
        // one buffer (≤ 1 MiB, well under a millisecond to hash or inflate),
        // so a stop is seen within 100 ms whatever the stream holds.
        if crate::stop::requested() {
            return Err(io::Error::other(StreamFault::Stopped));
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            if !buf.is_empty() && !self.checked {
                self.checked = true;
                if let Some(want) = self.expected_len {
                    if self.read_bytes < want {
                        return Err(io::Error::other(StreamFault::Short {
                            what: self.what,
                            got: self.read_bytes,
                            want,
                        }));
                    }
                }
                if let Some(expected) = self.expected {
                    let actual = Digest(std::mem::take(&mut self.hasher).finalize().into());
                    if actual != expected {
                        return Err(io::Error::other(StreamFault::Mismatch {
                            what: self.what,
                            expected,
                            actual,
                        }));
                    }
                }
            }
            return Ok(0);
        }
        self.read_bytes += n as u64;
        if let Some(want) = self.expected_len {
            if self.read_bytes > want {
                return Err(io::Error::other(StreamFault::Long {
                    what: self.what,
                    want,
                }));
            }
        }
        if self.expected.is_some() {
            self.hasher.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// From an OCI or Docker layer media type; `None` for a type that is not a
    /// tar layer at all.
    pub(crate) fn from_media_type(mt: &str) -> Option<Compression> {
        match mt {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Some(Compression::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Some(Compression::Zstd)
            }
            _ => None,
        }
    }

    /// From the first bytes of a stream. A tar starts with a file name, never
    /// with either magic.
    pub(crate) fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed tar",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// Peeks up to 4 bytes of `r` without consuming them.
pub(crate) fn peek_magic<R: BufRead>(r: &mut R) -> io::Result<Vec<u8>> {
    // A fresh BufReader over a file or socket fills with at least 4 bytes
    // unless the stream is shorter; one fill is enough.
    let buf = r.fill_buf()?;
    Ok(buf[..buf.len().min(4)].to_vec())
}

/// A decompressing reader whose inputs can be drained to their end, so that
/// every byte of the blob passes its hasher even past the tar's end marker.
pub(crate) enum Decoder<R: BufRead> {
    Plain(R),
    // Boxed: the inflate state is large, and one decoder lives per stream.
    Gzip(Box<flate2::bufread::MultiGzDecoder<R>>),
    Zstd(zstd::stream::read::Decoder<'static, R>),
}

impl<R: BufRead> Decoder<R> {
    pub(crate) fn new(c: Compression, r: R) -> io::Result<Self> {
        Ok(match c {
            Compression::None => Decoder::Plain(r),
            Compression::Gzip => Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(r))),
            Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(r)?),
        })
    }

    /// Reads the decompressed stream to its end (checking the gzip CRC or the
    /// zstd checksum), then the compressed input to its end.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        io::copy(&mut self, &mut io::sink())?;
        let mut inner = match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(d) => d.into_inner(),
            Decoder::Zstd(d) => d.finish(),
        };
        io::copy(&mut inner, &mut io::sink())?;
        Ok(())
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
        }
    }
}

/// Reads `len` bytes of a shared file from `start` with `pread`, so layers of
/// one archive can stream in parallel without sharing a file offset.
pub(crate) struct FileRange {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl FileRange {
    pub(crate) fn new(file: Arc<File>, start: u64, len: u64) -> FileRange {
        FileRange {
            file,
            pos: start,
            end: start.saturating_add(len),
        }
    }
}

impl Read for FileRange {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Wraps a raw blob stream in the digest check and a large buffer.
pub(crate) fn verified_buffered<R: Read>(
    raw: R,
    digest: Option<Digest>,
    len: Option<u64>,
) -> BufReader<Verify<R>> {
    BufReader::with_capacity(STREAM_BUFFER_BYTES, Verify::new(raw, "blob", digest, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_round_trips_and_refuses_bad_text() {
        let d = Digest::of(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(&d.to_string()), Ok(d));
        for bad in [
            "sha256:E3B0",
            "sha512:00",
            "e3b0",
            &format!("sha256:{}/..", "a".repeat(61)),
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn verify_catches_mismatch_short_and_long() {
        let data = b"hello world";
        let good = Digest::of(data);
        let mut out = Vec::new();
        Verify::new(&data[..], "blob", Some(good), Some(11))
            .read_to_end(&mut out)
            .unwrap();
        let e = Verify::new(&data[..], "blob", Some(Digest::of(b"x")), None)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(matches!(
            StreamFault::find(&e),
            Some(StreamFault::Mismatch { .. })
        ));
        let e = Verify::new(&data[..], "blob", Some(good), Some(12))
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(matches!(
            StreamFault::find(&e),
            Some(StreamFault::Short { .. })
        ));
        let e = Verify::new(&data[..], "blob", None, Some(5))
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(matches!(
            StreamFault::find(&e),
            Some(StreamFault::Long { .. })
        ));
    }

    #[test]
    fn fifo_and_dev_zero_are_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("p");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(matches!(
            open_regular(&fifo),
            Err(SourceError::NotRegular { kind: "FIFO", .. })
        ));
        assert!(matches!(
            read_capped(Path::new("/dev/zero"), "manifest", 10),
            Err(SourceError::NotRegular { .. })
        ));
    }
}
