//! The one currency every image source pays in: a layer is an ordered stream of
//! entries with OCI/tar meaning (whiteouts already decoded), each with its
//! content as a reader. Synthetic specs and real images (OCI layouts, archives,
//! stores, registries) produce it; every layout consumes it. Sources stream: a
//! layer is never held in memory, and a sink reads a file's content before it
//! returns (the reader is gone after the call).
//!
//! Invariants a producer guarantees (hostile input is refused before it gets
//! here, naming the layer digest and the entry):
//! - `path` is relative and made of normal components only (no `..`, no `/`
//!   prefix, not empty); the layer root itself is never an entry;
//! - a `HardLink` target names an earlier non-directory entry of the same layer
//!   (tar allows links to symlinks, devices and FIFOs too; real images link files);
//! - `Whiteout` and `Opaque` never name `.`/`..` and come from `.wh.NAME` and
//!   `.wh..wh..opq` (their marker files are not entries of their own).

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;

/// One entry of a layer, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path inside the image root (see the module invariants).
    pub path: PathBuf,
    /// What the entry is.
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (`0o7777` mask).
    pub mode: u32,
    /// Owner uid as stored in the layer.
    pub uid: u32,
    /// Owner gid as stored in the layer.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Extended attributes (`security.capability`, `user.*`, …) in stream order.
    pub xattrs: Vec<(OsString, Vec<u8>)>,
}

/// What an entry is. Whiteouts and opaque markers are decoded from OCI's
/// `.wh.` names; each layout writes them in its own native form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory (created, or its metadata replaced when it exists below).
    Dir,
    /// A regular file whose `size` bytes follow as the entry's content.
    File {
        /// Content length, bytes.
        size: u64,
    },
    /// A symbolic link (its target is not resolved, and may be absolute).
    Symlink {
        /// The link's target as stored.
        target: PathBuf,
    },
    /// A hard link to an earlier non-directory entry of the same layer.
    HardLink {
        /// Relative path of that earlier entry.
        target: PathBuf,
    },
    /// A character device node.
    CharDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// A block device node.
    BlockDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// Deletes `path` (and everything below it) of the lower layers.
    Whiteout,
    /// `path` is a directory that hides everything lower layers put below it.
    Opaque,
}

/// Returned by a sink to stop a layer's stream; the sink keeps the reason
/// (typed, with the path) for its caller, and the source answers
/// `Stopped` instead of reading on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop;

/// Receives a layer's entries in order.
pub trait EntrySink {
    /// Takes one entry; for `File` the content is read from `content` before
    /// returning (what is left unread is skipped by the source).
    fn entry(&mut self, entry: &Entry, content: &mut dyn Read) -> Result<(), Stop>;
}

impl<F> EntrySink for F
where
    F: FnMut(&Entry, &mut dyn Read) -> Result<(), Stop>,
{
    fn entry(&mut self, entry: &Entry, content: &mut dyn Read) -> Result<(), Stop> {
        self(entry, content)
    }
}

/// Identity and shape of an image, known before any layer is read (from the
/// manifest and config, or from a synthetic spec).
#[derive(
    Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct ImageInfo {
    /// The reference as the user gave it (`oci:/x:tag`, `synthetic:lookup-d8`).
    pub reference: String,
    /// Manifest digest (`sha256:…`), when the image has a manifest.
    pub manifest_digest: Option<String>,
    /// Config digest, when the image has a config.
    pub config_digest: Option<String>,
    /// `os/arch[/variant]` of the chosen manifest, when known.
    pub platform: Option<String>,
    /// Layers, bottom first.
    pub layers: Vec<LayerInfo>,
}

/// One layer as the manifest and config describe it.
#[derive(
    Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct LayerInfo {
    /// Digest of the stored blob (compressed as stored), verified while it streams.
    pub digest: String,
    /// Digest of the uncompressed tar (the config's `diff_ids`), when known.
    pub diff_id: Option<String>,
    /// Identity of the layer *with all its parents* (OCI's ChainID, or a hash
    /// of the synthetic specs below and including it): layouts share a stored
    /// layer between images exactly when this matches.
    pub chain_id: String,
    /// Media type (`application/vnd.oci.image.layer.v1.tar+gzip`, …).
    pub media_type: String,
    /// Size of the stored blob, bytes (compressed as stored).
    pub stored_bytes: u64,
    /// Size of the uncompressed layer tar (or of the unpacked diff of a store),
    /// bytes, when known without reading the layer: from a store's metadata, a
    /// size annotation, or an uncompressed blob. Lets a caller check scratch
    /// space before unpacking (`ImageInfo::unpacked_bytes_hint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncompressed_bytes: Option<u64>,
}

/// A cheap estimate of what unpacking an image writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeHint {
    /// Sum over layers of the uncompressed size where known, else the stored size.
    pub bytes: u64,
    /// Whether every layer's uncompressed size was known (else `bytes` is a
    /// lower bound: compressed sizes stand in for the unknown ones).
    pub exact: bool,
}

impl ImageInfo {
    /// What the layers add up to unpacked, from the manifest/store metadata
    /// alone (no layer is read).
    pub fn unpacked_bytes_hint(&self) -> SizeHint {
        let mut hint = SizeHint {
            bytes: 0,
            exact: true,
        };
        for l in &self.layers {
            match l.uncompressed_bytes {
                Some(b) => hint.bytes += b,
                None => {
                    hint.bytes += l.stored_bytes;
                    hint.exact = false;
                }
            }
        }
        hint
    }
}

/// An image whatever it came from: layers streamed on demand, as often as a
/// layout needs them (each call reads the layer afresh, verifying it again).
pub trait ImageSource: Send + Sync {
    /// What the image is.
    fn info(&self) -> &ImageInfo;
    /// Streams layer `index` (0 = bottom) into `sink`.
    fn visit_layer(&self, index: usize, sink: &mut dyn EntrySink) -> Result<(), super::ImageError>;
    /// What its image config says to run (Entrypoint, Cmd, Env, …), unchecked;
    /// `None` when the source has no image config (synthetic images, stores
    /// read without one).
    fn run_config(&self) -> Option<&super::RunConfig> {
        None
    }
}
