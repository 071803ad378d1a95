//! Real images in: one `ImageSource` per transport, spelled as skopeo spells
//! them (`oci:`, `oci-archive:`, `docker-archive:`, `containers-storage:`,
//! `docker:`, `registry:`).
//!
//! Invariants every transport keeps:
//! - every file read is opened as a regular file only (`O_NONBLOCK` + `fstat`),
//!   and manifests, indexes and configs are size-capped (`MAX_DOCUMENT_BYTES`),
//!   so a FIFO or `/dev/zero` given as input neither hangs nor fills memory;
//! - tar layers stream (never held in memory) through sha256 checks of the
//!   stored blob and, where the config names it, of the uncompressed tar
//!   (`diff_id`). A check completes at the end of the stream: a consumer must
//!   discard what it wrote from a layer whose visit returned an error;
//! - hostile entries (`..`, absolute names, NUL bytes, whiteouts of `.`/`..`,
//!   hard links outside the layer or to targets not seen earlier, absurd sizes)
//!   and entries the layouts could not reproduce alike (names over NAME_MAX,
//!   paths over PATH_MAX, xattrs Linux would refuse, sockets and other tar
//!   types, GNU sparse files, an opaque marker at the root, a char 0/0 device:
//!   overlay's whiteout in disguise) are refused with an error naming the
//!   layer digest and the entry (bad input, exit 2), before a sink sees them;
//! - a layer costs bounded work and memory: what follows the tar's end marker
//!   is read only up to `tar::MAX_TRAILING_BYTES`, the paths it makes the
//!   consumers keep are budgeted by the bytes it stores, and every read of a
//!   layer checks the stop flag (a signal ends it within one buffer);
//! - store layers (containers-storage, Docker's overlay2) are read in place
//!   from their diff dirs; the store is not modified.

mod archive;
mod blob;
mod containers_storage;
mod diffdir;
mod docker;
mod docker_archive;
mod http;
mod manifest;
mod oci;
mod oci_archive;
mod reference;
mod registry;
mod tar;

use std::path::{Path, PathBuf};

use crate::error::ErrorClass;

pub use blob::Digest;
pub use http::{
    RegistryLimits, DEFAULT_MIN_RATE, DEFAULT_RATE_WINDOW, DEFAULT_TIMEOUT_BASE,
    DEFAULT_TIMEOUT_PER_MIB,
};
pub use manifest::{chain_ids, host_platform};
pub use reference::{ImageRef, RegistryRef, Target, ACCEPTED_FORMS};

/// Manifests, indexes, configs and store metadata larger than this are
/// refused (real ones are a few KiB; a Docker `repositories.json` of a busy
/// host is well under 1 MiB).
pub const MAX_DOCUMENT_BYTES: u64 = 4 << 20;

/// The kernel's limit on overlay lower layers: an image with more cannot be
/// mounted by any overlay layout, so it is refused when opened.
pub const MAX_LAYERS: usize = crate::isolate::MAX_LOWER_LAYERS;

/// A tar entry larger than this is refused as absurd (1 TiB).
pub const MAX_ENTRY_BYTES: u64 = 1 << 40;

/// How to open an image.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// `os/arch[/variant]` to pick from a multi-platform index; `None` picks
    /// the host's (`host_platform()`).
    pub platform: Option<String>,
    /// Talk plain HTTP to a registry on a loopback address (a test registry).
    pub registry_insecure: bool,
    /// The registry's per-request deadline and minimum transfer rate.
    pub registry_limits: RegistryLimits,
}

/// Opens the image `reference` names. Only manifests, configs and store
/// metadata are read here; layers stream later, on each `visit_layer`.
pub fn open(
    reference: &ImageRef,
    opts: &OpenOptions,
) -> Result<Box<dyn super::ImageSource>, SourceError> {
    let platform = match &opts.platform {
        Some(p) => manifest::Platform::parse(p).map_err(|reason| SourceError::BadPlatform {
            value: p.clone(),
            reason,
        })?,
        None => manifest::Platform::parse(&host_platform()).map_err(|reason| {
            SourceError::BadPlatform {
                value: host_platform(),
                reason,
            }
        })?,
    };
    let given = reference.given.clone();
    match &reference.target {
        Target::Oci { dir, tag } => {
            Ok(Box::new(oci::open(&given, dir, tag.as_deref(), &platform)?))
        }
        Target::OciArchive { file, tag } => Ok(Box::new(oci_archive::open(
            &given,
            file,
            tag.as_deref(),
            &platform,
        )?)),
        Target::DockerArchive { file, reference } => Ok(Box::new(docker_archive::open(
            &given,
            file,
            reference.as_deref(),
        )?)),
        Target::ContainersStorage { root, name } => Ok(Box::new(containers_storage::open(
            &given,
            root.as_deref(),
            name,
        )?)),
        Target::Docker { root, name } => Ok(Box::new(docker::open(&given, root, name)?)),
        Target::Registry(r) => Ok(Box::new(registry::open(
            &given,
            r,
            &platform,
            opts.registry_insecure,
            opts.registry_limits,
        )?)),
    }
}

/// The images a store holds, as references `open` takes: a Docker data root
/// (`docker:ROOT:NAME`) or a containers-storage root
/// (`containers-storage:[ROOT]NAME`). `store` may also be the driver
/// directory inside one (`…/overlay2`, `…/overlay`). Empty when it is neither.
pub fn store_images(store: &Path) -> Result<Vec<String>, SourceError> {
    let mut roots = vec![store.to_path_buf()];
    if let Some(parent) = store.parent() {
        roots.push(parent.to_path_buf());
    }
    for root in roots {
        if let Some(refs) = docker::list(&root)? {
            return Ok(refs);
        }
        if let Some(refs) = containers_storage::list(&root)? {
            return Ok(refs);
        }
    }
    Ok(Vec::new())
}

/// Why an image could not be opened or one of its layers read. Every variant
/// names the reference, file, digest or entry concerned.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The reference does not parse.
    #[error("bad image reference {value:?}: {reason}; accepted forms: {ACCEPTED_FORMS}")]
    BadReference { value: String, reason: String },
    /// `--platform` does not parse.
    #[error("bad platform {value:?}: {reason}; expected os/arch[/variant], e.g. linux/amd64")]
    BadPlatform { value: String, reason: String },
    /// A file or directory could not be opened or read.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A path that must be a regular file is something else.
    #[error("{} is a {kind}, not a regular file; give the image file itself", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    /// A document exceeds its cap.
    #[error("{what} {location} is larger than the {cap}-byte limit ({bytes} bytes); refusing to read it")]
    TooLarge {
        what: &'static str,
        location: String,
        bytes: u64,
        cap: u64,
    },
    /// A manifest, index, config or store file is not what it should be.
    #[error("{what} {location} is malformed: {reason}")]
    Malformed {
        what: &'static str,
        location: String,
        reason: String,
    },
    /// The reference names nothing in the source (a tag, name or blob).
    #[error("{reference}: {what} not found{}", choices_text(choices))]
    NotFound {
        reference: String,
        what: String,
        choices: Vec<String>,
    },
    /// A blob the manifest names is absent.
    #[error("{reference}: blob {digest} named by the manifest is missing from {location}")]
    MissingBlob {
        reference: String,
        digest: String,
        location: String,
    },
    /// No manifest for the requested platform.
    #[error("{reference}: no image for platform {wanted}; the index offers: {}; choose one with --platform", choices.join(", "))]
    Platform {
        reference: String,
        wanted: String,
        choices: Vec<String>,
    },
    /// More layers than overlay can stack.
    #[error("{reference} has {count} layers; the kernel's overlay limit is {max} lower layers")]
    TooManyLayers {
        reference: String,
        count: usize,
        max: usize,
    },
    /// A blob's sha256 differs from its digest.
    #[error(
        "layer {layer}: {what} digest mismatch: expected {expected}, the stream hashes to {actual}"
    )]
    DigestMismatch {
        layer: String,
        what: &'static str,
        expected: String,
        actual: String,
    },
    /// A stream is truncated, corrupt, or its compression is not what its
    /// media type says.
    #[error("layer {layer}{}: {reason}", entry_text(entry))]
    Corrupt {
        layer: String,
        entry: Option<String>,
        reason: String,
    },
    /// An entry that would escape or confuse the tree.
    #[error("layer {layer}: refusing entry {entry:?}: {reason}")]
    Hostile {
        layer: String,
        entry: String,
        reason: String,
    },
    /// A well-formed image this tool cannot read (foreign or encrypted layers,
    /// a store driver other than overlay, …).
    #[error("{reference}: {what}")]
    Unsupported { reference: String, what: String },
    /// An image format this tool does not read (a Docker schema 1 manifest, an
    /// artifact instead of an image, an unknown layer media type, a newer OCI
    /// layout): bad input, named with the value found.
    #[error("{location}: {what}")]
    UnsupportedFormat { location: String, what: String },
    /// The registry answered with an error or could not be reached.
    #[error("registry {url}: {reason}")]
    Registry {
        url: String,
        reason: String,
        class: ErrorClass,
    },
    /// A signal asked the process to stop while it waited on the network.
    #[error("interrupted while waiting on {url}")]
    Interrupted { url: String },
}

fn choices_text(choices: &[String]) -> String {
    if choices.is_empty() {
        String::new()
    } else {
        format!("; available: {}", choices.join(", "))
    }
}

fn entry_text(entry: &Option<String>) -> String {
    match entry {
        Some(e) => format!(" (entry {e:?})"),
        None => String::new(),
    }
}

impl SourceError {
    /// Exit-code class: bad or hostile input is `Usage`; a permission or an
    /// unsupported image feature is `Unsupported`; I/O trouble is `Runtime`.
    pub fn class(&self) -> ErrorClass {
        match self {
            SourceError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound
                | std::io::ErrorKind::NotADirectory
                | std::io::ErrorKind::IsADirectory
                | std::io::ErrorKind::InvalidInput => ErrorClass::Usage,
                std::io::ErrorKind::PermissionDenied => ErrorClass::Unsupported,
                _ => ErrorClass::Runtime,
            },
            SourceError::Unsupported { .. } => ErrorClass::Unsupported,
            SourceError::Registry { class, .. } => *class,
            SourceError::Interrupted { .. } => ErrorClass::Interrupted,
            _ => ErrorClass::Usage,
        }
    }

    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SourceError {
        let path = path.to_path_buf();
        move |source| SourceError::Io { op, path, source }
    }

    pub(crate) fn malformed(
        what: &'static str,
        location: impl std::fmt::Display,
        reason: impl std::fmt::Display,
    ) -> SourceError {
        SourceError::Malformed {
            what,
            location: location.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Refuses an image with more layers than overlay can stack.
pub(crate) fn check_layer_count(reference: &str, count: usize) -> Result<(), SourceError> {
    if count > MAX_LAYERS {
        return Err(SourceError::TooManyLayers {
            reference: reference.to_string(),
            count,
            max: MAX_LAYERS,
        });
    }
    Ok(())
}
