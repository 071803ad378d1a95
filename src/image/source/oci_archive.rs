//! `oci-archive:FILE[:TAG]` — an OCI layout in an uncompressed tar, blobs
//! read in place from the archive.

use std::io::Read;
use std::path::Path;

use super::archive::Archive;
use super::blob::{self, Digest};
use super::manifest::{self, Blobs, Platform, TarImage, TarLayer};
use super::{oci, SourceError, MAX_DOCUMENT_BYTES};

pub(crate) struct ArchiveBlobs {
    reference: String,
    archive: Archive,
}

impl ArchiveBlobs {
    fn name(digest: &Digest) -> String {
        format!("blobs/sha256/{}", digest.hex())
    }

    fn missing(&self, digest: &Digest) -> SourceError {
        SourceError::MissingBlob {
            reference: self.reference.clone(),
            digest: digest.to_string(),
            location: self.archive.path.display().to_string(),
        }
    }
}

impl Blobs for ArchiveBlobs {
    fn location(&self) -> String {
        self.archive.path.display().to_string()
    }

    fn document(&self, digest: &Digest, what: &'static str) -> Result<Vec<u8>, SourceError> {
        let (r, size) = self
            .archive
            .member(&Self::name(digest))
            .ok_or_else(|| self.missing(digest))?;
        let location = format!("{}:{}", self.archive.path.display(), Self::name(digest));
        if size > MAX_DOCUMENT_BYTES {
            return Err(SourceError::TooLarge {
                what,
                location,
                bytes: size,
                cap: MAX_DOCUMENT_BYTES,
            });
        }
        blob::read_document(r, what, &location, Some(digest))
    }

    fn layer(&self, layer: &TarLayer) -> Result<Box<dyn Read + Send + '_>, SourceError> {
        let digest = layer.digest.as_ref().ok_or_else(|| {
            SourceError::malformed("manifest", &self.reference, "a layer without a digest")
        })?;
        let (r, size) = self
            .archive
            .member(&Self::name(digest))
            .ok_or_else(|| self.missing(digest))?;
        if size != layer.size {
            return Err(SourceError::Corrupt {
                layer: digest.to_string(),
                entry: None,
                reason: format!(
                    "the blob holds {size} bytes, the manifest says {}",
                    layer.size
                ),
            });
        }
        Ok(Box::new(r))
    }
}

pub(crate) fn open(
    reference: &str,
    file: &Path,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<TarImage<ArchiveBlobs>, SourceError> {
    let archive = Archive::open(file)?;
    let not_layout = || {
        SourceError::malformed(
            "oci-archive",
            file.display(),
            "no oci-layout/index.json member; not an OCI archive",
        )
    };
    let marker = archive
        .document("oci-layout", "oci-layout")?
        .ok_or_else(not_layout)?;
    oci::check_layout_marker(&marker, &format!("{}:oci-layout", file.display()))?;
    let index = archive
        .document("index.json", "index.json")?
        .ok_or_else(not_layout)?;
    let location = format!("{}:index.json", file.display());
    let blobs = ArchiveBlobs {
        reference: reference.to_string(),
        archive,
    };
    manifest::open_layout(reference, &index, &location, tag, platform, blobs)
}
