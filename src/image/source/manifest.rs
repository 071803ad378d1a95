//! OCI and Docker v2 schema 2 manifests, indexes (manifest lists) and configs;
//! platform choice; ChainIDs; and the image every tar-layer transport builds
//! from them (`TarImage` over a `Blobs` store).

use std::collections::BTreeMap;
use std::io::{BufRead, Read};

use serde::Deserialize;

use super::blob::{self, Compression, Decoder, Digest, Verify};
use super::{check_layer_count, tar, SourceError};
use crate::image::{EntrySink, ImageError, ImageInfo, ImageSource, LayerInfo};

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Indexes nest (an OCI layout's index.json → an image index → a manifest);
/// deeper nesting is refused.
const MAX_INDEX_DEPTH: usize = 3;

/// A content descriptor.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<PlatformJson>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PlatformJson {
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// A manifest or an index: which one is told by the media type, or by which
/// fields are present when the media type is absent (OCI allows that).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Document {
    #[serde(default)]
    pub schema_version: Option<u32>,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Option<Vec<Descriptor>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Config {
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub variant: Option<String>,
    pub rootfs: RootFs,
    /// What to run (Entrypoint, Cmd, Env, WorkingDir, User); checked only
    /// where something is run from it.
    #[serde(default)]
    pub config: Option<oci_spec::image::Config>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

/// `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    pub(crate) fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err("not os/arch[/variant]".into());
        }
        Ok(Platform {
            os: parts[0].to_string(),
            arch: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }

    fn of(p: &PlatformJson) -> Platform {
        Platform {
            os: p.os.clone(),
            arch: p.architecture.clone(),
            variant: p.variant.clone().filter(|v| !v.is_empty()),
        }
    }

    /// Whether a manifest for `offered` runs here: os and arch equal, and the
    /// variant equal when one was asked for (arm64's only variant, v8, is
    /// also what an absent variant means).
    fn accepts(&self, offered: &Platform) -> bool {
        let norm = |p: &Platform| match (p.arch.as_str(), p.variant.as_deref()) {
            ("arm64", None) => Some("v8".to_string()),
            (_, v) => v.map(str::to_string),
        };
        self.os == offered.os
            && self.arch == offered.arch
            && (self.variant.is_none() || norm(self) == norm(offered))
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// This host's platform in OCI spelling (`linux/amd64`, `linux/arm64/v8`).
pub fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64/v8",
        "arm" => "arm/v7",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    };
    format!("{}/{arch}", std::env::consts::OS)
}

/// OCI ChainIDs of a layer stack, bottom first:
/// `ChainID(L0) = DiffID(L0)`, `ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => *d,
            Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// Where the blobs of a tar-layer image live.
pub(crate) trait Blobs: Send + Sync {
    /// Where the store is, for messages (a path or a URL).
    fn location(&self) -> String;
    /// A document blob (manifest, index, config), capped and digest-checked.
    fn document(&self, digest: &Digest, what: &'static str) -> Result<Vec<u8>, SourceError>;
    /// The stored bytes of a layer, unverified (the caller verifies).
    fn layer(&self, layer: &TarLayer) -> Result<Box<dyn Read + Send + '_>, SourceError>;
}

/// One tar layer and how to read and check it.
#[derive(Debug, Clone)]
pub(crate) struct TarLayer {
    /// What the store calls the blob (a digest, or a member path in an archive).
    pub key: String,
    /// The stored blob's digest, when content-addressed.
    pub digest: Option<Digest>,
    /// The uncompressed tar's digest (the config's diff_id).
    pub diff_id: Option<Digest>,
    /// Stored size, bytes.
    pub size: u64,
    /// Declared compression (`None`: sniffed from the stream).
    pub compression: Option<Compression>,
    /// Name for messages (the blob digest, else the diff_id, else the key).
    pub name: String,
}

/// An image whose layers are tar blobs in some store.
pub(crate) struct TarImage<B> {
    pub info: ImageInfo,
    pub layers: Vec<TarLayer>,
    pub blobs: B,
    /// The image config's run settings.
    pub run: Option<crate::image::RunConfig>,
}

impl<B: Blobs> ImageSource for TarImage<B> {
    fn info(&self) -> &ImageInfo {
        &self.info
    }

    fn run_config(&self) -> Option<&crate::image::RunConfig> {
        self.run.as_ref()
    }

    fn visit_layer(&self, index: usize, sink: &mut dyn EntrySink) -> Result<(), ImageError> {
        let layer = self.layers.get(index).ok_or(ImageError::NoLayer {
            index,
            count: self.layers.len(),
        })?;
        let name = layer.name.as_str();
        let raw = self.blobs.layer(layer)?;
        let mut buffered = blob::verified_buffered(raw, layer.digest, Some(layer.size));
        let head = blob::peek_magic(&mut buffered).map_err(|e| tar::stream_error(name, None, e))?;
        let found = Compression::sniff(&head);
        if let Some(declared) = layer.compression {
            if declared != found {
                return Err(SourceError::Corrupt {
                    layer: name.to_string(),
                    entry: None,
                    reason: format!(
                        "the media type says {}, the stream starts like {}",
                        declared.name(),
                        found.name()
                    ),
                }
                .into());
            }
        }
        let decoder =
            Decoder::new(found, buffered).map_err(|e| tar::stream_error(name, None, e))?;
        let mut tar_stream =
            Verify::new(decoder, "diff_id (uncompressed tar)", layer.diff_id, None);
        tar::visit(name, &mut tar_stream, sink)?;
        finish(name, tar_stream)
    }
}

/// Drains what follows the tar's end marker through every hasher, so the
/// digests cover the whole blob.
fn finish<R: BufRead>(name: &str, mut tar_stream: Verify<Decoder<R>>) -> Result<(), ImageError> {
    std::io::copy(&mut tar_stream, &mut std::io::sink())
        .map_err(|e| tar::stream_error(name, None, e))?;
    tar_stream
        .into_inner()
        .finish()
        .map_err(|e| tar::stream_error(name, None, e))?;
    Ok(())
}

pub(crate) fn parse_digest(
    location: &str,
    what: &'static str,
    s: &str,
) -> Result<Digest, SourceError> {
    Digest::parse(s).map_err(|reason| SourceError::malformed(what, location, reason))
}

fn parse_document(
    bytes: &[u8],
    location: &str,
    what: &'static str,
) -> Result<Document, SourceError> {
    let doc: Document =
        serde_json::from_slice(bytes).map_err(|e| SourceError::malformed(what, location, e))?;
    if let Some(v) = doc.schema_version {
        if v != 2 {
            return Err(SourceError::UnsupportedFormat {
                location: location.to_string(),
                what: format!(
                    "{what} schemaVersion {v}{} is not supported (only Docker schema 2 and OCI manifests are)",
                    if v == 1 { " (a Docker schema 1 manifest)" } else { "" }
                ),
            });
        }
    }
    Ok(doc)
}

fn is_index(doc: &Document) -> bool {
    match doc.media_type.as_deref() {
        Some(OCI_INDEX) | Some(DOCKER_LIST) => true,
        Some(_) => false,
        None => doc.manifests.is_some() && doc.layers.is_none(),
    }
}

/// Picks the manifest for `want` from an index; the error names the choices.
pub(crate) fn choose_platform<'a>(
    reference: &str,
    manifests: &'a [Descriptor],
    want: &Platform,
) -> Result<&'a Descriptor, SourceError> {
    let offered: Vec<(Platform, &Descriptor)> = manifests
        .iter()
        .filter_map(|d| d.platform.as_ref().map(|p| (Platform::of(p), d)))
        // Build attestations ride in indexes as unknown/unknown.
        .filter(|(p, _)| p.os != "unknown")
        .collect();
    if let Some((_, d)) = offered.iter().find(|(p, _)| want.accepts(p)) {
        return Ok(d);
    }
    if offered.is_empty() && manifests.len() == 1 {
        return Ok(&manifests[0]);
    }
    Err(SourceError::Platform {
        reference: reference.to_string(),
        wanted: want.to_string(),
        choices: offered.iter().map(|(p, _)| p.to_string()).collect(),
    })
}

/// Follows a manifest or index document down to an image manifest.
/// `fetch` reads a manifest/index by descriptor (capped, digest-checked).
pub(crate) fn resolve(
    reference: &str,
    mut bytes: Vec<u8>,
    mut digest: Digest,
    platform: &Platform,
    fetch: &dyn Fn(&Descriptor) -> Result<Vec<u8>, SourceError>,
) -> Result<(Document, Digest, Option<Platform>), SourceError> {
    let mut chosen = None;
    for _ in 0..=MAX_INDEX_DEPTH {
        let doc = parse_document(&bytes, reference, "manifest")?;
        if !is_index(&doc) {
            return Ok((doc, digest, chosen));
        }
        let manifests = doc.manifests.unwrap_or_default();
        let d = choose_platform(reference, &manifests, platform)?;
        chosen = d.platform.as_ref().map(Platform::of).or(chosen);
        digest = parse_digest(reference, "index", &d.digest)?;
        bytes = fetch(d)?;
    }
    Err(SourceError::malformed(
        "index",
        reference,
        format!("indexes nested deeper than {MAX_INDEX_DEPTH}"),
    ))
}

/// Builds the image from its manifest: reads the config, checks layer media
/// types, digests, counts and diff_ids, computes ChainIDs.
pub(crate) fn build<B: Blobs>(
    reference: &str,
    manifest: Document,
    manifest_digest: Digest,
    chosen: Option<Platform>,
    blobs: B,
) -> Result<TarImage<B>, SourceError> {
    let loc = format!("{reference} (manifest {manifest_digest})");
    let config_desc = manifest
        .config
        .ok_or_else(|| SourceError::malformed("manifest", &loc, "no config descriptor"))?;
    match config_desc.media_type.as_deref() {
        Some(OCI_CONFIG) | Some(DOCKER_CONFIG) | None => {}
        Some(other) => {
            return Err(SourceError::UnsupportedFormat {
                location: loc.clone(),
                what: format!(
                    "config media type {other:?} is not an image config (an artifact, not a container image); \
                     expected {OCI_CONFIG} or {DOCKER_CONFIG}"
                ),
            })
        }
    }
    let layers = manifest
        .layers
        .ok_or_else(|| SourceError::malformed("manifest", &loc, "no layers"))?;
    check_layer_count(reference, layers.len())?;
    let config_digest = parse_digest(&loc, "manifest", &config_desc.digest)?;
    let config_bytes = blobs.document(&config_digest, "config")?;
    let config: Config = serde_json::from_slice(&config_bytes).map_err(|e| {
        SourceError::malformed("config", format!("{reference} ({config_digest})"), e)
    })?;
    if config.rootfs.kind != "layers" {
        return Err(SourceError::malformed(
            "config",
            config_digest,
            format!("rootfs type {:?} (expected \"layers\")", config.rootfs.kind),
        ));
    }
    if config.rootfs.diff_ids.len() != layers.len() {
        return Err(SourceError::malformed(
            "config",
            config_digest,
            format!(
                "{} diff_ids for {} manifest layers",
                config.rootfs.diff_ids.len(),
                layers.len()
            ),
        ));
    }
    let diff_ids = config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| parse_digest(&config_digest.to_string(), "config", d))
        .collect::<Result<Vec<_>, _>>()?;
    let chains = chain_ids(&diff_ids);
    let mut tar_layers = Vec::with_capacity(layers.len());
    let mut infos = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        let digest = parse_digest(&loc, "manifest", &l.digest)?;
        let mt = l.media_type.clone().unwrap_or_default();
        let compression = Compression::from_media_type(&mt).ok_or_else(|| SourceError::UnsupportedFormat {
            location: loc.clone(),
            what: format!(
                "layer {digest} has media type {mt:?}; supported: tar layers, uncompressed, gzip or zstd (not foreign or encrypted layers)"
            ),
        })?;
        tar_layers.push(TarLayer {
            key: digest.to_string(),
            digest: Some(digest),
            diff_id: Some(diff_ids[i]),
            size: l.size,
            compression: Some(compression),
            name: digest.to_string(),
        });
        infos.push(LayerInfo {
            digest: digest.to_string(),
            diff_id: Some(diff_ids[i].to_string()),
            chain_id: chains[i].to_string(),
            media_type: mt,
            stored_bytes: l.size,
            uncompressed_bytes: uncompressed_annotation(l),
        });
    }
    let platform =
        chosen
            .map(|p| p.to_string())
            .or_else(|| match (&config.os, &config.architecture) {
                (Some(os), Some(arch)) => Some(match &config.variant {
                    Some(v) => format!("{os}/{arch}/{v}"),
                    None => format!("{os}/{arch}"),
                }),
                _ => None,
            });
    Ok(TarImage {
        info: ImageInfo {
            reference: reference.to_string(),
            manifest_digest: Some(manifest_digest.to_string()),
            config_digest: Some(config_digest.to_string()),
            platform,
            layers: infos,
        },
        layers: tar_layers,
        blobs,
        run: config
            .config
            .as_ref()
            .map(crate::image::RunConfig::from_oci),
    })
}

/// Some builders annotate layers with their uncompressed size.
fn uncompressed_annotation(d: &Descriptor) -> Option<u64> {
    [
        "io.containers.image.uncompressed-size",
        "containerd.io/uncompressed-size",
    ]
    .iter()
    .find_map(|k| d.annotations.get(*k)?.parse().ok())
    .or_else(|| {
        match d
            .media_type
            .as_deref()
            .and_then(Compression::from_media_type)
        {
            Some(Compression::None) => Some(d.size),
            _ => None,
        }
    })
}

/// The tags an OCI index names (`org.opencontainers.image.ref.name`).
pub(crate) fn ref_names(manifests: &[Descriptor]) -> Vec<String> {
    manifests
        .iter()
        .filter_map(|d| {
            d.annotations
                .get("org.opencontainers.image.ref.name")
                .cloned()
        })
        .collect()
}

/// Resolves an OCI layout's `index.json` (tag, then platform) to an image.
pub(crate) fn open_layout<B: Blobs>(
    reference: &str,
    index_json: &[u8],
    index_location: &str,
    tag: Option<&str>,
    platform: &Platform,
    blobs: B,
) -> Result<TarImage<B>, SourceError> {
    let index = parse_document(index_json, index_location, "index.json")?;
    let manifests = index
        .manifests
        .ok_or_else(|| SourceError::malformed("index.json", index_location, "no manifests"))?;
    let candidates: Vec<&Descriptor> = match tag {
        Some(t) => manifests
            .iter()
            .filter(|d| {
                d.annotations
                    .get("org.opencontainers.image.ref.name")
                    .map(String::as_str)
                    == Some(t)
            })
            .collect(),
        None => manifests.iter().collect(),
    };
    let top = match candidates.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(SourceError::NotFound {
                reference: reference.to_string(),
                what: match tag {
                    Some(t) => format!("tag {t:?}"),
                    None => "an image (the index is empty)".into(),
                },
                choices: ref_names(&manifests),
            })
        }
        many => {
            // Several untagged choices: a platform index spelled out in index.json.
            let owned: Vec<Descriptor> = many.iter().map(|d| (*d).clone()).collect();
            if owned.iter().all(|d| d.platform.is_some()) {
                choose_platform(reference, &owned, platform)?.clone()
            } else {
                return Err(SourceError::NotFound {
                    reference: reference.to_string(),
                    what: "a single image (the layout holds several; name a tag)".into(),
                    choices: ref_names(&manifests),
                });
            }
        }
    };
    let digest = parse_digest(index_location, "index.json", &top.digest)?;
    let bytes = blobs.document(&digest, "manifest")?;
    let chosen = top.platform.as_ref().map(Platform::of);
    let (manifest, mdigest, deeper) = resolve(reference, bytes, digest, platform, &|d| {
        let digest = parse_digest(reference, "index", &d.digest)?;
        blobs.document(&digest, "manifest")
    })?;
    build(reference, manifest, mdigest, deeper.or(chosen), blobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_id_follows_the_oci_rule() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let c = chain_ids(&[a, b]);
        assert_eq!(c[0], a);
        assert_eq!(c[1], Digest::of(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn platform_choice_names_the_offers() {
        let d = |os: &str, arch: &str, variant: Option<&str>| Descriptor {
            media_type: None,
            digest: format!("sha256:{}", "0".repeat(64)),
            size: 1,
            platform: Some(PlatformJson {
                architecture: arch.into(),
                os: os.into(),
                variant: variant.map(Into::into),
            }),
            annotations: BTreeMap::new(),
        };
        let list = [
            d("linux", "amd64", None),
            d("linux", "arm64", Some("v8")),
            d("unknown", "unknown", None),
        ];
        let arm = Platform::parse("linux/arm64").unwrap();
        assert_eq!(
            choose_platform("r", &list, &arm)
                .unwrap()
                .platform
                .as_ref()
                .unwrap()
                .architecture,
            "arm64"
        );
        let arm8 = Platform::parse("linux/arm64/v8").unwrap();
        assert!(choose_platform("r", &list, &arm8).is_ok());
        let e = choose_platform("r", &list, &Platform::parse("linux/s390x").unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("linux/amd64, linux/arm64/v8") && !e.contains("unknown"),
            "{e}"
        );
    }
}
