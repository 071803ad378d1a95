//! `docker-archive:FILE[:NAME[:TAG]|:@N]` — what `docker save` and
//! `podman save` write: `manifest.json` naming a config and layer tars,
//! read in place from the uncompressed archive.
//!
//! The layer tars of a docker-archive are not content-addressed by their
//! member names in older writers (`<id>/layer.tar`), so each layer is checked
//! against its `diff_id` from the (digest-checked) config; members named
//! `blobs/sha256/<hex>` (Docker 25+) are checked against that digest too.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use super::archive::Archive;
use super::blob::{Compression, Digest};
use super::manifest::{chain_ids, parse_digest, Blobs, Config, TarImage, TarLayer};
use super::{check_layer_count, SourceError};
use crate::image::{ImageInfo, LayerInfo};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Item {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

pub(crate) struct ArchiveLayers {
    archive: Archive,
}

impl Blobs for ArchiveLayers {
    fn location(&self) -> String {
        self.archive.path.display().to_string()
    }

    fn document(&self, _digest: &Digest, what: &'static str) -> Result<Vec<u8>, SourceError> {
        Err(SourceError::malformed(
            what,
            self.location(),
            "docker-archive documents are read by member name",
        ))
    }

    fn layer(&self, layer: &TarLayer) -> Result<Box<dyn Read + Send + '_>, SourceError> {
        let (r, _) = self
            .archive
            .member(&layer.key)
            .ok_or_else(|| SourceError::MissingBlob {
                reference: self.location(),
                digest: layer.name.clone(),
                location: format!("member {}", layer.key),
            })?;
        Ok(Box::new(r))
    }
}

/// `name:tag` in the familiar and the fully qualified spelling, for matching.
fn spellings(name: &str) -> Vec<String> {
    let with_tag = {
        let last = name.rsplit('/').next().unwrap_or(name);
        if last.contains(':') {
            name.to_string()
        } else {
            format!("{name}:latest")
        }
    };
    let short = with_tag
        .strip_prefix("docker.io/")
        .map(|s| s.strip_prefix("library/").unwrap_or(s).to_string())
        .unwrap_or_else(|| with_tag.clone());
    vec![
        with_tag.clone(),
        short.clone(),
        format!("docker.io/library/{short}"),
        format!("docker.io/{short}"),
    ]
}

fn digest_of_member(name: &str) -> Option<Digest> {
    let hex = name.strip_prefix("blobs/sha256/")?;
    Digest::from_hex(hex)
}

pub(crate) fn open(
    reference: &str,
    file: &Path,
    wanted: Option<&str>,
) -> Result<TarImage<ArchiveLayers>, SourceError> {
    let archive = Archive::open(file)?;
    let loc = format!("{}:manifest.json", file.display());
    let bytes = archive
        .document("manifest.json", "manifest.json")?
        .ok_or_else(|| {
            SourceError::malformed(
                "docker-archive",
                file.display(),
                "no manifest.json member; not a docker-archive",
            )
        })?;
    let items: Vec<Item> = serde_json::from_slice(&bytes)
        .map_err(|e| SourceError::malformed("manifest.json", &loc, e))?;
    let all_tags = || {
        items
            .iter()
            .flat_map(|i| i.repo_tags.clone().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    let item = match wanted {
        None if items.len() == 1 => &items[0],
        None => {
            return Err(SourceError::NotFound {
                reference: reference.to_string(),
                what: format!(
                    "a single image (the archive holds {}; name one, or @N)",
                    items.len()
                ),
                choices: all_tags(),
            })
        }
        Some(w) => {
            if let Some(n) = w.strip_prefix('@') {
                let i: usize = n.parse().map_err(|_| SourceError::BadReference {
                    value: reference.to_string(),
                    reason: format!("@{n} is not an image index"),
                })?;
                items.get(i).ok_or_else(|| SourceError::NotFound {
                    reference: reference.to_string(),
                    what: format!("image @{i} (the archive holds {})", items.len()),
                    choices: all_tags(),
                })?
            } else {
                let want = spellings(w);
                items
                    .iter()
                    .find(|i| {
                        i.repo_tags
                            .iter()
                            .flatten()
                            .any(|t| spellings(t).iter().any(|s| want.contains(s)))
                    })
                    .ok_or_else(|| SourceError::NotFound {
                        reference: reference.to_string(),
                        what: format!("image {w:?}"),
                        choices: all_tags(),
                    })?
            }
        }
    };
    check_layer_count(reference, item.layers.len())?;
    let config_bytes =
        archive
            .document(&item.config, "config")?
            .ok_or_else(|| SourceError::MissingBlob {
                reference: reference.to_string(),
                digest: item.config.clone(),
                location: file.display().to_string(),
            })?;
    let config_digest = Digest::of(&config_bytes);
    // Writers name the config by its digest (`<hex>.json`, `blobs/sha256/<hex>`): check it.
    let named = item
        .config
        .trim_end_matches(".json")
        .rsplit('/')
        .next()
        .and_then(Digest::from_hex);
    if let Some(named) = named {
        if named != config_digest {
            return Err(SourceError::DigestMismatch {
                layer: format!("{}:{}", file.display(), item.config),
                what: "config",
                expected: named.to_string(),
                actual: config_digest.to_string(),
            });
        }
    }
    let config: Config = serde_json::from_slice(&config_bytes).map_err(|e| {
        SourceError::malformed("config", format!("{}:{}", file.display(), item.config), e)
    })?;
    if config.rootfs.diff_ids.len() != item.layers.len() {
        return Err(SourceError::malformed(
            "config",
            &item.config,
            format!(
                "{} diff_ids for {} layers in manifest.json",
                config.rootfs.diff_ids.len(),
                item.layers.len()
            ),
        ));
    }
    let diff_ids = config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| parse_digest(&item.config, "config", d))
        .collect::<Result<Vec<_>, _>>()?;
    let chains = chain_ids(&diff_ids);
    let mut layers = Vec::new();
    let mut infos = Vec::new();
    for (i, member) in item.layers.iter().enumerate() {
        let (_, size) = archive
            .locate(member)
            .ok_or_else(|| SourceError::MissingBlob {
                reference: reference.to_string(),
                digest: diff_ids[i].to_string(),
                location: format!("{} (member {member})", file.display()),
            })?;
        let compression = Compression::sniff(&archive.head(member).unwrap_or_default());
        let blob_digest = digest_of_member(member);
        let media_type = match compression {
            Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
            Compression::Gzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        };
        let digest = blob_digest
            .or((compression == Compression::None).then_some(diff_ids[i]))
            .unwrap_or(diff_ids[i]);
        layers.push(TarLayer {
            key: member.clone(),
            digest: blob_digest,
            diff_id: Some(diff_ids[i]),
            size,
            compression: None,
            name: digest.to_string(),
        });
        infos.push(LayerInfo {
            digest: digest.to_string(),
            diff_id: Some(diff_ids[i].to_string()),
            chain_id: chains[i].to_string(),
            media_type: media_type.to_string(),
            stored_bytes: size,
            uncompressed_bytes: (compression == Compression::None).then_some(size),
        });
    }
    let platform = match (&config.os, &config.architecture) {
        (Some(os), Some(arch)) => Some(match &config.variant {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        }),
        _ => None,
    };
    Ok(TarImage {
        info: ImageInfo {
            reference: reference.to_string(),
            manifest_digest: None,
            config_digest: Some(config_digest.to_string()),
            platform,
            layers: infos,
        },
        layers,
        blobs: ArchiveLayers { archive },
        run: config
            .config
            .as_ref()
            .map(crate::image::RunConfig::from_oci),
    })
}
