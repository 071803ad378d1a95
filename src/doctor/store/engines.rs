//! What the engines record next to their driver dirs: which layers are
//! containers' (and Docker's `-init` layers), each layer's parent, and which
//! layer tops each named image. Docker keeps it under `image/<driver>/`
//! (`layerdb/` chain ids → cache ids, `repositories.json`, `imagedb/`);
//! containers-storage in `<driver>-layers/layers.json`, `<driver>-images/`
//! and `<driver>-containers/`. Every file is read through the bounded reader; a
//! missing or malformed one leaves its part unknown (said in `notes`), never
//! fails the inventory, and no value read from them becomes a path unless it
//! parses as a digest.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;

use crate::image::source::{chain_ids, Digest};
use crate::input::{read_text, Follow, STORE_INDEX_MAX_BYTES, STORE_META_MAX_BYTES};

/// An engine's records about one driver dir.
#[derive(Debug, Default)]
pub(crate) struct EngineMeta {
    /// `docker`, `containers-storage` or `unknown`.
    pub engine: &'static str,
    /// Layer ids containers write to.
    pub containers: HashSet<String>,
    /// Docker's `-init` layer ids.
    pub inits: HashSet<String>,
    /// Layer id → its parent's layer id.
    pub parents: HashMap<String, String>,
    /// `(name, top layer id)` of named images.
    pub images: Vec<(String, String)>,
    /// The files the records came from, for the report.
    pub sources: Vec<String>,
    /// What could not be read.
    pub notes: Vec<String>,
}

/// A one-line metadata file of a store (`link`, `lower`, `cache-id`), or None.
pub(crate) fn meta(path: &Path) -> Option<String> {
    read_text(
        path,
        STORE_META_MAX_BYTES,
        "a store metadata file",
        Follow::NoSymlinks,
    )
    .ok()
    .map(|s| s.trim().to_string())
}

fn json(path: &Path, notes: &mut Vec<String>) -> Option<serde_json::Value> {
    let text = match read_text(
        path,
        STORE_INDEX_MAX_BYTES,
        "a store index",
        Follow::NoSymlinks,
    ) {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return None,
        Err(e) => {
            notes.push(format!("not read: {e}"));
            return None;
        }
    };
    match serde_json::from_str(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            notes.push(format!("{}: not JSON: {e}", path.display()));
            None
        }
    }
}

fn str_field<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(|x| x.as_str())
}

/// Reads what the engine that owns `driver_dir` recorded (`driver`: `overlay2`,
/// `overlay` or `btrfs`, the directory's name).
pub(crate) fn read(driver_dir: &Path) -> EngineMeta {
    let mut m = EngineMeta {
        engine: "unknown",
        ..Default::default()
    };
    let Some(root) = driver_dir.parent() else {
        return m;
    };
    let driver = driver_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let docker = root.join("image").join(&driver);
    if docker.join("layerdb").is_dir() {
        m.engine = "docker";
        docker_records(&docker, &mut m);
    }
    let cs_layers = root.join(format!("{driver}-layers/layers.json"));
    if cs_layers.exists() || root.join(format!("{driver}-containers")).is_dir() {
        m.engine = "containers-storage";
        containers_storage_records(root, &driver, &mut m);
    }
    m
}

fn docker_records(dir: &Path, m: &mut EngineMeta) {
    m.sources.push(format!("{}/layerdb", dir.display()));
    // layerdb/sha256/<chain>/{cache-id,parent}: chain id → cache id, parent chain.
    let mut cache_of: HashMap<String, String> = HashMap::new();
    let mut parent_chain: HashMap<String, String> = HashMap::new();
    if let Ok(rd) = fs::read_dir(dir.join("layerdb/sha256")) {
        for e in rd.flatten() {
            let chain = format!("sha256:{}", e.file_name().to_string_lossy());
            if let Some(c) = meta(&e.path().join("cache-id")) {
                cache_of.insert(chain.clone(), c);
            }
            if let Some(p) = meta(&e.path().join("parent")) {
                parent_chain.insert(chain, p);
            }
        }
    }
    for (chain, parent) in &parent_chain {
        if let (Some(c), Some(p)) = (cache_of.get(chain), cache_of.get(parent)) {
            m.parents.insert(c.clone(), p.clone());
        }
    }
    // layerdb/mounts/<container>/{mount-id,init-id,parent}.
    if let Ok(mounts) = fs::read_dir(dir.join("layerdb/mounts")) {
        for e in mounts.flatten() {
            let (mount, init) = (
                meta(&e.path().join("mount-id")),
                meta(&e.path().join("init-id")),
            );
            let image_top = meta(&e.path().join("parent")).and_then(|p| cache_of.get(&p).cloned());
            if let (Some(i), Some(top)) = (&init, &image_top) {
                m.parents.insert(i.clone(), top.clone());
            }
            if let Some(mt) = &mount {
                match (&init, &image_top) {
                    (Some(i), _) => m.parents.insert(mt.clone(), i.clone()),
                    (None, Some(top)) => m.parents.insert(mt.clone(), top.clone()),
                    _ => None,
                };
            }
            m.containers.extend(mount);
            m.inits.extend(init);
        }
    }
    // repositories.json → image id → imagedb config → diff_ids → top chain → cache id.
    let Some(repos) = json(&dir.join("repositories.json"), &mut m.notes) else {
        return;
    };
    let Some(repos) = repos.get("Repositories").and_then(|r| r.as_object()) else {
        return;
    };
    let mut named: Vec<(String, String)> = Vec::new();
    for tags in repos.values().filter_map(|t| t.as_object()) {
        for (name, id) in tags {
            let Some(id) = id.as_str().and_then(|s| Digest::parse(s).ok()) else {
                continue;
            };
            let config = dir.join("imagedb/content/sha256").join(id.hex());
            let Some(top) = json(&config, &mut m.notes).and_then(|c| top_chain(&c)) else {
                continue;
            };
            if let Some(cache) = cache_of.get(&top.to_string()) {
                named.push((name.clone(), cache.clone()));
            }
        }
    }
    // One name per image top: the tag, else the digest reference.
    named.sort_by(|a, b| {
        a.1.cmp(&b.1)
            .then(a.0.contains('@').cmp(&b.0.contains('@')))
            .then(a.0.cmp(&b.0))
    });
    named.dedup_by(|a, b| a.1 == b.1);
    m.images = named;
}

/// The chain id of the top layer of an image config's `rootfs.diff_ids`.
pub(crate) fn top_chain(config: &serde_json::Value) -> Option<Digest> {
    let diff_ids: Vec<Digest> = config
        .get("rootfs")?
        .get("diff_ids")?
        .as_array()?
        .iter()
        .map(|d| d.as_str().and_then(|s| Digest::parse(s).ok()))
        .collect::<Option<_>>()?;
    chain_ids(&diff_ids).last().copied()
}

fn containers_storage_records(root: &Path, driver: &str, m: &mut EngineMeta) {
    let layers = root.join(format!("{driver}-layers/layers.json"));
    m.sources.push(layers.display().to_string());
    if let Some(serde_json::Value::Array(a)) = json(&layers, &mut m.notes) {
        for l in &a {
            if let (Some(id), Some(p)) = (str_field(l, "id"), str_field(l, "parent")) {
                m.parents.insert(id.to_string(), p.to_string());
            }
        }
    }
    let containers = root.join(format!("{driver}-containers/containers.json"));
    if let Some(serde_json::Value::Array(a)) = json(&containers, &mut m.notes) {
        m.containers.extend(
            a.iter()
                .filter_map(|c| str_field(c, "layer").map(str::to_string)),
        );
    }
    let images = root.join(format!("{driver}-images/images.json"));
    if let Some(serde_json::Value::Array(a)) = json(&images, &mut m.notes) {
        for i in &a {
            let Some(top) = str_field(i, "layer") else {
                continue;
            };
            let name = i
                .get("names")
                .and_then(|n| n.as_array())
                .and_then(|n| n.first())
                .and_then(|n| n.as_str())
                .or_else(|| str_field(i, "id"))
                .unwrap_or_default();
            m.images.push((name.to_string(), top.to_string()));
        }
    }
}
