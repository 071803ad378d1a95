//! `oci:DIR[:TAG]` — an OCI image layout directory, blobs read in place.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::blob::{self, Digest};
use super::manifest::{self, Blobs, Platform, TarImage, TarLayer};
use super::{SourceError, MAX_DOCUMENT_BYTES};

/// The blobs of an OCI layout on disk (`blobs/sha256/<hex>`).
pub(crate) struct LayoutDir {
    reference: String,
    dir: PathBuf,
}

impl LayoutDir {
    fn path(&self, digest: &Digest) -> PathBuf {
        // The hex is validated, so this stays inside blobs/sha256.
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    fn open_blob(&self, digest: &Digest) -> Result<(File, u64), SourceError> {
        let path = self.path(digest);
        let file = match blob::open_regular(&path) {
            Ok(f) => f,
            Err(SourceError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(SourceError::MissingBlob {
                    reference: self.reference.clone(),
                    digest: digest.to_string(),
                    location: self.dir.display().to_string(),
                })
            }
            Err(e) => return Err(e),
        };
        let len = file
            .metadata()
            .map_err(SourceError::io("reading", &path))?
            .len();
        Ok((file, len))
    }
}

impl Blobs for LayoutDir {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn document(&self, digest: &Digest, what: &'static str) -> Result<Vec<u8>, SourceError> {
        let (file, len) = self.open_blob(digest)?;
        let location = self.path(digest).display().to_string();
        if len > MAX_DOCUMENT_BYTES {
            return Err(SourceError::TooLarge {
                what,
                location,
                bytes: len,
                cap: MAX_DOCUMENT_BYTES,
            });
        }
        blob::read_document(file, what, &location, Some(digest))
    }

    fn layer(&self, layer: &TarLayer) -> Result<Box<dyn Read + Send + '_>, SourceError> {
        let digest = layer.digest.as_ref().ok_or_else(|| {
            SourceError::malformed("manifest", &self.reference, "a layer without a digest")
        })?;
        let (file, len) = self.open_blob(digest)?;
        if len != layer.size {
            return Err(SourceError::Corrupt {
                layer: digest.to_string(),
                entry: None,
                reason: format!(
                    "the blob holds {len} bytes, the manifest says {}",
                    layer.size
                ),
            });
        }
        Ok(Box::new(file))
    }
}

/// Checks the `oci-layout` marker and reads `index.json`.
pub(crate) fn read_layout_index(dir: &Path) -> Result<Vec<u8>, SourceError> {
    let marker = blob::read_capped(&dir.join("oci-layout"), "oci-layout", MAX_DOCUMENT_BYTES)?;
    check_layout_marker(&marker, &dir.join("oci-layout").display().to_string())?;
    blob::read_capped(&dir.join("index.json"), "index.json", MAX_DOCUMENT_BYTES)
}

pub(crate) fn check_layout_marker(bytes: &[u8], location: &str) -> Result<(), SourceError> {
    #[derive(serde::Deserialize)]
    struct Marker {
        #[serde(rename = "imageLayoutVersion")]
        version: String,
    }
    let m: Marker = serde_json::from_slice(bytes)
        .map_err(|e| SourceError::malformed("oci-layout", location, e))?;
    if m.version != "1.0.0" {
        return Err(SourceError::UnsupportedFormat {
            location: location.to_string(),
            what: format!(
                "imageLayoutVersion {:?} is not supported (1.0.0 is)",
                m.version
            ),
        });
    }
    Ok(())
}

pub(crate) fn open(
    reference: &str,
    dir: &Path,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<TarImage<LayoutDir>, SourceError> {
    let meta = std::fs::metadata(dir).map_err(SourceError::io("opening the OCI layout", dir))?;
    if !meta.is_dir() {
        return Err(SourceError::Io {
            op: "opening the OCI layout (not a directory)",
            path: dir.to_path_buf(),
            source: std::io::ErrorKind::NotADirectory.into(),
        });
    }
    let index = read_layout_index(dir)?;
    let blobs = LayoutDir {
        reference: reference.to_string(),
        dir: dir.to_path_buf(),
    };
    let index_location = dir.join("index.json").display().to_string();
    manifest::open_layout(reference, &index, &index_location, tag, platform, blobs)
}
