//! `docker:ROOT:NAME` — an image in a Docker data root with the overlay2
//! driver, read in place: `repositories.json` → the image config in `imagedb`
//! → its diff_ids → ChainIDs → `layerdb/sha256/<chain>/cache-id` →
//! `overlay2/<cache-id>/diff`. Docker 29's containerd image store keeps
//! images elsewhere and is not read here.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::blob::Digest;
use super::diffdir::{read_store_file, DirImage};
use super::manifest::{chain_ids, parse_digest, Config};
use super::{check_layer_count, SourceError};
use crate::image::{ImageInfo, LayerInfo};

#[derive(Deserialize)]
struct Repositories {
    #[serde(rename = "Repositories", default)]
    repositories: BTreeMap<String, BTreeMap<String, String>>,
}

fn familiar(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    let s = if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    };
    let s = s.strip_prefix("docker.io/").unwrap_or(&s).to_string();
    s.strip_prefix("library/").unwrap_or(&s).to_string()
}

fn small_text(path: &Path, what: &'static str) -> Result<String, SourceError> {
    let b = read_store_file(path, what)?;
    String::from_utf8(b)
        .map(|s| s.trim().to_string())
        .map_err(|e| SourceError::malformed(what, path.display(), e))
}

/// The tagged images of the Docker data root `root` (overlay2 image store),
/// as `docker:ROOT:NAME` references; `None` when it has no such store.
pub(crate) fn list(root: &Path) -> Result<Option<Vec<String>>, SourceError> {
    let repos_path = root.join("image/overlay2/repositories.json");
    if !repos_path.is_file() {
        return Ok(None);
    }
    let repos: Repositories =
        serde_json::from_slice(&read_store_file(&repos_path, "repositories.json")?)
            .map_err(|e| SourceError::malformed("repositories.json", repos_path.display(), e))?;
    let mut out: Vec<String> = Vec::new();
    let mut ids: Vec<&String> = Vec::new();
    for (name, id) in repos.repositories.values().flat_map(|m| m.iter()) {
        // One reference per image: its first tag (a digest reference names the same image).
        if name.contains('@') || ids.contains(&id) {
            continue;
        }
        ids.push(id);
        out.push(format!("docker:{}:{}", root.display(), familiar(name)));
    }
    Ok(Some(out))
}

pub(crate) fn open(reference: &str, root: &Path, name: &str) -> Result<DirImage, SourceError> {
    let image_root = root.join("image/overlay2");
    let repos_path = image_root.join("repositories.json");
    if !repos_path.exists() {
        return Err(SourceError::NotFound {
            reference: reference.to_string(),
            what: format!(
                "a Docker overlay2 image store at {} (no image/overlay2/repositories.json; the containerd image store is not read)",
                root.display()
            ),
            choices: Vec::new(),
        });
    }
    let repos: Repositories =
        serde_json::from_slice(&read_store_file(&repos_path, "repositories.json")?)
            .map_err(|e| SourceError::malformed("repositories.json", repos_path.display(), e))?;
    let want = familiar(name);
    let all: Vec<(&String, &String)> = repos.repositories.values().flat_map(|m| m.iter()).collect();
    let id = all
        .iter()
        .find(|(k, _)| familiar(k) == want)
        .map(|(_, v)| v.to_string())
        .or_else(|| {
            // An image id (sha256:… or bare hex, or a prefix of at least 3).
            let bare = name.strip_prefix("sha256:").unwrap_or(name);
            let hits: std::collections::BTreeSet<&String> = all
                .iter()
                .map(|(_, v)| *v)
                .filter(|v| {
                    bare.len() >= 3
                        && v.strip_prefix("sha256:")
                            .is_some_and(|h| h.starts_with(bare))
                })
                .collect();
            (hits.len() == 1)
                .then(|| hits.into_iter().next().cloned())
                .flatten()
        })
        .ok_or_else(|| SourceError::NotFound {
            reference: reference.to_string(),
            what: format!("image {name:?} in {}", repos_path.display()),
            choices: all
                .iter()
                .map(|(k, _)| k.to_string())
                .filter(|k| !k.contains('@'))
                .collect(),
        })?;
    let image_id = parse_digest(&repos_path.display().to_string(), "repositories.json", &id)?;
    let config_path = image_root
        .join("imagedb/content/sha256")
        .join(image_id.hex());
    let config_bytes = read_store_file(&config_path, "image config")?;
    if Digest::of(&config_bytes) != image_id {
        return Err(SourceError::DigestMismatch {
            layer: config_path.display().to_string(),
            what: "image config",
            expected: image_id.to_string(),
            actual: Digest::of(&config_bytes).to_string(),
        });
    }
    let config: Config = serde_json::from_slice(&config_bytes)
        .map_err(|e| SourceError::malformed("image config", config_path.display(), e))?;
    check_layer_count(reference, config.rootfs.diff_ids.len())?;
    let diff_ids = config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| parse_digest(&config_path.display().to_string(), "image config", d))
        .collect::<Result<Vec<_>, _>>()?;
    let chains = chain_ids(&diff_ids);
    let mut dirs = Vec::new();
    let mut infos = Vec::new();
    for (diff_id, chain) in diff_ids.iter().zip(&chains) {
        let layer_dir = image_root.join("layerdb/sha256").join(chain.hex());
        let cache_id = small_text(&layer_dir.join("cache-id"), "cache-id")?;
        if cache_id.is_empty()
            || !cache_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(SourceError::malformed(
                "cache-id",
                layer_dir.display(),
                format!("{cache_id:?} is not a layer id"),
            ));
        }
        let dir = root.join("overlay2").join(&cache_id).join("diff");
        if !dir.is_dir() {
            return Err(SourceError::MissingBlob {
                reference: reference.to_string(),
                digest: diff_id.to_string(),
                location: dir.display().to_string(),
            });
        }
        let size = small_text(&layer_dir.join("size"), "size")
            .ok()
            .and_then(|s| s.parse().ok());
        dirs.push(dir);
        infos.push(LayerInfo {
            // A Docker store keeps layers unpacked: their identity as a tar is the diff_id.
            digest: diff_id.to_string(),
            diff_id: Some(diff_id.to_string()),
            chain_id: chain.to_string(),
            media_type: "application/vnd.docker.image.rootfs.diff.tar".into(),
            stored_bytes: size.unwrap_or(0),
            uncompressed_bytes: size,
        });
    }
    let platform = match (&config.os, &config.architecture) {
        (Some(os), Some(arch)) => Some(match &config.variant {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        }),
        _ => None,
    };
    Ok(DirImage {
        info: ImageInfo {
            reference: reference.to_string(),
            manifest_digest: None,
            config_digest: Some(image_id.to_string()),
            platform,
            layers: infos,
        },
        dirs,
    })
}
