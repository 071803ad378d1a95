//! `containers-storage:[ROOT]NAME` — an image in a containers-storage store
//! (podman, buildah, skopeo, CRI-O) with the overlay driver, read in place:
//! `overlay-images/images.json` → the top layer → parents in
//! `overlay-layers/layers.json` → `overlay/<id>/diff`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::blob::Digest;
use super::diffdir::{is_store_id, read_store_file, DirImage};
use super::manifest::chain_ids;
use super::{check_layer_count, SourceError};
use crate::image::{ImageInfo, LayerInfo};

/// Where containers-storage looks for its config, in order (the first that
/// exists wins, as in containers-storage itself).
const CONFIGS: [&str; 2] = [
    "/etc/containers/storage.conf",
    "/usr/share/containers/storage.conf",
];
const DEFAULT_ROOT: &str = "/var/lib/containers/storage";

#[derive(Debug, Deserialize)]
struct StoreImage {
    id: String,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    layer: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StoreLayer {
    id: String,
    #[serde(default)]
    parent: Option<String>,
    #[serde(default, rename = "diff-digest")]
    diff_digest: Option<String>,
    #[serde(default, rename = "compressed-diff-digest")]
    compressed_digest: Option<String>,
    #[serde(default, rename = "diff-size")]
    diff_size: Option<u64>,
    #[serde(default, rename = "compressed-size")]
    compressed_size: Option<u64>,
}

/// The graphroot and driver storage.conf configures (`CONTAINERS_STORAGE_CONF`
/// first, then the system files), or the defaults.
pub(crate) fn configured_store() -> Result<(PathBuf, Option<String>), SourceError> {
    let env = std::env::var_os("CONTAINERS_STORAGE_CONF").map(PathBuf::from);
    let candidates = env.into_iter().chain(CONFIGS.iter().map(PathBuf::from));
    for path in candidates {
        if !path.exists() {
            continue;
        }
        let text = read_store_file(&path, "storage.conf")?;
        let text = String::from_utf8(text)
            .map_err(|e| SourceError::malformed("storage.conf", path.display(), e))?;
        let v: toml::Value = toml::from_str(&text)
            .map_err(|e| SourceError::malformed("storage.conf", path.display(), e))?;
        let storage = v.get("storage");
        let root = storage
            .and_then(|s| s.get("graphroot"))
            .and_then(|g| g.as_str())
            .filter(|g| !g.is_empty());
        let driver = storage
            .and_then(|s| s.get("driver"))
            .and_then(|d| d.as_str())
            .filter(|d| !d.is_empty());
        return Ok((
            PathBuf::from(root.unwrap_or(DEFAULT_ROOT)),
            driver.map(str::to_string),
        ));
    }
    Ok((PathBuf::from(DEFAULT_ROOT), None))
}

fn name_matches(wanted: &str, name: &str) -> bool {
    let norm = |s: &str| -> String {
        let last = s.rsplit('/').next().unwrap_or(s);
        let s = if last.contains(':') || s.contains('@') {
            s.to_string()
        } else {
            format!("{s}:latest")
        };
        let s = s.strip_prefix("docker.io/").unwrap_or(&s).to_string();
        let s = s.strip_prefix("library/").unwrap_or(&s).to_string();
        s.strip_prefix("localhost/").unwrap_or(&s).to_string()
    };
    norm(wanted) == norm(name)
}

/// The images of the overlay store at `root`, as `containers-storage:[ROOT]NAME`
/// references (the first name of each, or its id when it has none); `None`
/// when `root` holds no containers-storage overlay store.
pub(crate) fn list(root: &Path) -> Result<Option<Vec<String>>, SourceError> {
    let images_path = root.join("overlay-images/images.json");
    if !images_path.is_file() {
        return Ok(None);
    }
    let images: Vec<StoreImage> =
        serde_json::from_slice(&read_store_file(&images_path, "images.json")?)
            .map_err(|e| SourceError::malformed("images.json", images_path.display(), e))?;
    Ok(Some(
        images
            .iter()
            .map(|i| {
                let name = i.names.first().cloned().unwrap_or_else(|| i.id.clone());
                format!("containers-storage:[{}]{name}", root.display())
            })
            .collect(),
    ))
}

pub(crate) fn open(
    reference: &str,
    root: Option<&Path>,
    name: &str,
) -> Result<DirImage, SourceError> {
    let (root, driver) = match root {
        Some(r) => (r.to_path_buf(), None),
        None => configured_store()?,
    };
    if let Some(d) = driver.filter(|d| d != "overlay") {
        return Err(SourceError::Unsupported {
            reference: reference.to_string(),
            what: format!(
                "the store at {} uses the {d:?} driver; only overlay stores are read in place",
                root.display()
            ),
        });
    }
    let images_path = root.join("overlay-images/images.json");
    if !images_path.exists() {
        let what = if root.join("vfs-images").exists() {
            format!(
                "{} is a vfs store; only overlay stores are read in place",
                root.display()
            )
        } else {
            format!(
                "{} is not a containers-storage overlay store (no overlay-images/images.json)",
                root.display()
            )
        };
        return Err(SourceError::NotFound {
            reference: reference.to_string(),
            what,
            choices: Vec::new(),
        });
    }
    let images: Vec<StoreImage> =
        serde_json::from_slice(&read_store_file(&images_path, "images.json")?)
            .map_err(|e| SourceError::malformed("images.json", images_path.display(), e))?;
    let image = images
        .iter()
        .find(|i| i.names.iter().any(|n| name_matches(name, n)))
        .or_else(|| {
            // An image id, or an unambiguous prefix of at least 3 hex digits.
            let hits: Vec<_> = images
                .iter()
                .filter(|i| name.len() >= 3 && i.id.starts_with(name))
                .collect();
            (hits.len() == 1).then(|| hits[0])
        })
        .ok_or_else(|| SourceError::NotFound {
            reference: reference.to_string(),
            what: format!("image {name:?} in {}", root.display()),
            choices: images.iter().flat_map(|i| i.names.clone()).collect(),
        })?;
    let layers_path = root.join("overlay-layers/layers.json");
    let layers: Vec<StoreLayer> =
        serde_json::from_slice(&read_store_file(&layers_path, "layers.json")?)
            .map_err(|e| SourceError::malformed("layers.json", layers_path.display(), e))?;
    let by_id: std::collections::HashMap<&str, &StoreLayer> =
        layers.iter().map(|l| (l.id.as_str(), l)).collect();
    let mut chain = Vec::new();
    let mut next = image.layer.as_deref();
    while let Some(id) = next {
        let l = by_id.get(id).ok_or_else(|| {
            SourceError::malformed(
                "layers.json",
                layers_path.display(),
                format!("layer {id} of image {} is missing", image.id),
            )
        })?;
        if !is_store_id(&l.id) {
            return Err(SourceError::malformed(
                "layers.json",
                layers_path.display(),
                format!("layer id {:?} is not 64 hex digits", l.id),
            ));
        }
        chain.push(*l);
        check_layer_count(reference, chain.len())?;
        next = l.parent.as_deref();
    }
    chain.reverse();
    let diff_ids: Option<Vec<Digest>> = chain
        .iter()
        .map(|l| l.diff_digest.as_deref().and_then(|d| Digest::parse(d).ok()))
        .collect();
    let chains = diff_ids.as_deref().map(chain_ids);
    let mut infos = Vec::new();
    let mut dirs = Vec::new();
    for (i, l) in chain.iter().enumerate() {
        let dir = root.join("overlay").join(&l.id).join("diff");
        if !dir.is_dir() {
            return Err(SourceError::MissingBlob {
                reference: reference.to_string(),
                digest: l.id.clone(),
                location: dir.display().to_string(),
            });
        }
        dirs.push(dir);
        infos.push(LayerInfo {
            digest: l
                .compressed_digest
                .clone()
                .or_else(|| l.diff_digest.clone())
                .unwrap_or_else(|| l.id.clone()),
            diff_id: l.diff_digest.clone(),
            // Without diff digests (layers made in place), the store's own id
            // is the identity it shares layers by.
            chain_id: chains
                .as_ref()
                .map(|c| c[i].to_string())
                .unwrap_or_else(|| format!("containers-storage:{}", l.id)),
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            stored_bytes: l.compressed_size.or(l.diff_size).unwrap_or(0),
            uncompressed_bytes: l.diff_size,
        });
    }
    let config_digest = read_manifest_config(&root, &image.id);
    Ok(DirImage {
        info: ImageInfo {
            reference: reference.to_string(),
            manifest_digest: image.digest.clone(),
            config_digest,
            platform: None,
            layers: infos,
        },
        dirs,
    })
}

/// The config digest from the image's stored manifest, when it has one.
fn read_manifest_config(root: &Path, id: &str) -> Option<String> {
    if !is_store_id(id) {
        return None;
    }
    let bytes = read_store_file(
        &root.join("overlay-images").join(id).join("manifest"),
        "manifest",
    )
    .ok()?;
    let doc: super::manifest::Document = serde_json::from_slice(&bytes).ok()?;
    Some(doc.config?.digest)
}
