//! containerd's overlayfs snapshotter store: `snapshots/<N>/fs` (+ `work`), and
//! `metadata.db`, a bbolt file with each snapshot's key, numeric id, kind,
//! parent and (committed ones) recorded usage. A running containerd holds an
//! exclusive lock on it, so it is read without one (see `bolt`), reread when a
//! commit under way left it inconsistent; when it cannot be read at all the
//! inventory comes from the snapshots dir alone and says so.
//!
//! Image names come from containerd's global `meta.db` (read the same way):
//! `v1/<ns>/images/<name>/target/digest` → manifest (or index) → config →
//! `rootfs.diff_ids` → ChainID of the top layer, which names the committed
//! snapshot `<ns>/<n>/sha256:<chain>` in the snapshotter's db.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::bolt::{uvarint, varint, BoltError, Db};
use super::engines::top_chain;
use super::walk::walk;
use super::{is_dir_no_follow, Found, LayerUsage, Mounts};
use crate::image::source::{host_platform, Digest};
use crate::input::{read_bytes, Follow, STORE_INDEX_MAX_BYTES};
use crate::layout::stores::CONTAINERD;

/// Largest bbolt database read (a snapshotter's is tens of KiB to a few MiB).
pub const BOLT_MAX_BYTES: u64 = 256 << 20;
/// Reads of a database that fails to parse (a commit under way) before giving up.
const ATTEMPTS: usize = 3;

/// Whether `dir` is a snapshotter dir: `snapshots/` beside `metadata.db`.
pub(crate) fn is_store(dir: &Path) -> bool {
    is_dir_no_follow(&dir.join("snapshots"))
        && fs::symlink_metadata(dir.join("metadata.db")).is_ok_and(|m| m.is_file())
}

/// One snapshot record of `metadata.db`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `<namespace>/<n>/<name>`.
    pub key: String,
    /// The directory number: `snapshots/<id>`.
    pub id: u64,
    /// `view`, `active`, `committed` (or `unknown`).
    pub kind: &'static str,
    /// The parent's key.
    pub parent: Option<String>,
    /// Recorded usage (committed snapshots).
    pub inodes: Option<i64>,
    /// Recorded usage, bytes.
    pub size: Option<i64>,
}

/// Reads a bbolt file without a lock, rereading while it does not parse.
fn read_db<T>(
    path: &Path,
    parse: impl Fn(&Db<'_>) -> Result<T, BoltError>,
) -> Result<(T, u64), String> {
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let bytes = read_bytes(path, BOLT_MAX_BYTES, "a bbolt database", Follow::NoSymlinks)
            .map_err(|e| e.to_string())?;
        match Db::parse(&bytes).and_then(|db| parse(&db).map(|t| (t, db.txid()))) {
            Ok(r) => return Ok(r),
            Err(e) => last = format!("{}: {e}", path.display()),
        }
    }
    Err(format!("{last} (read {ATTEMPTS} times)"))
}

/// The snapshot records of a snapshotter's `metadata.db`.
pub fn snapshots(db: &Db<'_>) -> Result<Vec<Snapshot>, BoltError> {
    let missing = |what: &str| BoltError::Corrupt {
        at: "metadata.db".into(),
        what: format!("no {what} bucket"),
    };
    let v1 = db.root().bucket(b"v1")?.ok_or_else(|| missing("v1"))?;
    let all = v1
        .bucket(b"snapshots")?
        .ok_or_else(|| missing("v1/snapshots"))?;
    let mut out = Vec::new();
    for e in all.entries()?.iter().filter(|e| e.is_bucket) {
        let b = all.nested(e)?;
        let fields = b.entries()?;
        let get = |k: &[u8]| {
            fields
                .iter()
                .find(|f| f.key == k && !f.is_bucket)
                .map(|f| f.value)
        };
        let Some((id, _)) = get(b"id").and_then(uvarint) else {
            continue;
        };
        let kind = match get(b"kind").and_then(|k| k.first()) {
            Some(1) => "view",
            Some(2) => "active",
            Some(3) => "committed",
            _ => "unknown",
        };
        out.push(Snapshot {
            key: String::from_utf8_lossy(e.key).into_owned(),
            id,
            kind,
            parent: get(b"parent").map(|p| String::from_utf8_lossy(p).into_owned()),
            inodes: get(b"inodes").and_then(varint).map(|v| v.0),
            size: get(b"size").and_then(varint).map(|v| v.0),
        });
    }
    Ok(out)
}

/// `(namespace, image name, target digest)` of every image in a global `meta.db`.
fn images(db: &Db<'_>) -> Result<Vec<(String, String, String)>, BoltError> {
    let mut out = Vec::new();
    let Some(v1) = db.root().bucket(b"v1")? else {
        return Ok(out);
    };
    for ns in v1.entries()?.iter().filter(|e| e.is_bucket) {
        let ns_name = String::from_utf8_lossy(ns.key).into_owned();
        let Some(imgs) = v1.nested(ns)?.bucket(b"images")? else {
            continue;
        };
        for img in imgs.entries()?.iter().filter(|e| e.is_bucket) {
            let digest = imgs
                .nested(img)?
                .bucket(b"target")?
                .map(|t| t.get(b"digest"))
                .transpose()?
                .flatten();
            if let Some(d) = digest {
                out.push((
                    ns_name.clone(),
                    String::from_utf8_lossy(img.key).into_owned(),
                    String::from_utf8_lossy(d).into_owned(),
                ));
            }
        }
    }
    Ok(out)
}

/// A content blob as JSON (bounded; the digest is validated before it becomes a path).
fn blob(content: &Path, digest: &str) -> Option<serde_json::Value> {
    let d = Digest::parse(digest).ok()?;
    let bytes = read_bytes(
        &content.join("blobs/sha256").join(d.hex()),
        STORE_INDEX_MAX_BYTES,
        "a content blob",
        Follow::NoSymlinks,
    )
    .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The top-layer ChainIDs an image's target resolves to: one per manifest (an
/// index lists one per platform; this host's comes first).
fn image_tops(content: &Path, target: &str) -> Vec<Digest> {
    let Some(doc) = blob(content, target) else {
        return Vec::new();
    };
    let manifests: Vec<String> = match doc.get("manifests").and_then(|m| m.as_array()) {
        Some(list) => {
            let here = host_platform();
            let mut ds: Vec<(bool, String)> = list
                .iter()
                .filter_map(|m| {
                    let d = m.get("digest")?.as_str()?.to_string();
                    let p = m.get("platform");
                    let plat = format!(
                        "{}/{}",
                        p.and_then(|p| p.get("os"))
                            .and_then(|v| v.as_str())
                            .unwrap_or(""),
                        p.and_then(|p| p.get("architecture"))
                            .and_then(|v| v.as_str())
                            .unwrap_or("")
                    );
                    Some((!here.starts_with(&plat), d))
                })
                .collect();
            ds.sort();
            ds.into_iter().map(|(_, d)| d).collect()
        }
        None => vec![target.to_string()],
    };
    manifests
        .iter()
        .filter_map(|m| {
            let doc = if m == target {
                doc.clone()
            } else {
                blob(content, m)?
            };
            let config = doc.get("config")?.get("digest")?.as_str()?.to_string();
            top_chain(&blob(content, &config)?)
        })
        .collect()
}

pub(crate) fn read(dir: &Path) -> std::io::Result<Found> {
    let snapdir = dir.join("snapshots");
    let mut ids: Vec<(u64, PathBuf)> = Vec::new();
    let mut f_notes = Vec::new();
    for e in fs::read_dir(&snapdir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        match name.parse::<u64>() {
            Ok(n) if is_dir_no_follow(&e.path()) => ids.push((n, e.path())),
            // `new-XXXX`: a snapshot being prepared right now.
            _ => f_notes.push(format!(
                "snapshots/{name}: not a snapshot dir (one being prepared?); not counted"
            )),
        }
    }
    ids.sort();
    let max_id = ids.last().map_or(0, |(n, _)| *n);
    let mut f = Found::new(
        dir,
        CONTAINERD.name,
        Mounts::Containerd {
            snapshots: snapdir.display().to_string(),
            container_id_len: (max_id + 1).to_string().len(),
        },
    );
    f.notes = f_notes;
    // The engine is named as its snapshotter's layout.
    f.engine = CONTAINERD.name.into();
    let records = read_db(&dir.join("metadata.db"), snapshots);
    let by_id: HashMap<u64, Snapshot> = match &records {
        Ok((snaps, txid)) => {
            f.metadata = format!(
                "metadata.db read without its lock (bbolt txid {txid}, {} snapshot records)",
                snaps.len()
            );
            f.chains_known = true;
            snaps.iter().map(|s| (s.id, s.clone())).collect()
        }
        Err(e) => {
            f.metadata = format!("snapshots/ only: {e}; parents, kinds and image names unknown");
            HashMap::new()
        }
    };
    let id_of_key: HashMap<&str, u64> = by_id.values().map(|s| (s.key.as_str(), s.id)).collect();
    let mut linked = HashSet::new();
    for (n, p) in &ids {
        let w = match walk(&p.join("fs"), &mut linked) {
            Ok(w) => w,
            Err(e) => {
                f.notes.push(format!("snapshot {n}: not counted: {e}"));
                continue;
            }
        };
        f.add_walk(&w);
        let mut l = LayerUsage::new(n.to_string());
        l.inodes = w.inodes;
        l.bytes = w.bytes;
        l.whiteouts = w.whiteouts;
        if let Some(s) = by_id.get(n) {
            l.name = Some(s.key.clone());
            l.kind = Some(s.kind.into());
            l.container = matches!(s.kind, "active" | "view");
            l.parent = s.parent.as_deref().map(|p| {
                id_of_key
                    .get(p)
                    .map_or_else(|| format!("(missing: {p})"), |i| i.to_string())
            });
            l.recorded_inodes = s.inodes.and_then(|v| u64::try_from(v).ok());
            l.recorded_bytes = s.size.and_then(|v| u64::try_from(v).ok());
        } else if records.is_ok() {
            f.notes.push(format!(
                "snapshots/{n} has no record in metadata.db (left behind by a removal?)"
            ));
        }
        f.layers.push(l);
    }
    let on_disk: HashSet<u64> = ids.iter().map(|(n, _)| *n).collect();
    for s in by_id.values().filter(|s| !on_disk.contains(&s.id)) {
        f.notes.push(format!(
            "{} (id {}) is recorded but snapshots/{} is missing",
            s.key, s.id, s.id
        ));
    }
    f.hardlink_inodes = linked.len() as u64;
    // Image names from the global metadata next to the snapshotter.
    if let (Some(root), Ok(_)) = (dir.parent(), &records) {
        let meta = root.join("io.containerd.metadata.v1.bolt/meta.db");
        let content = root.join("io.containerd.content.v1.content");
        match read_db(&meta, images) {
            Ok((list, _)) => {
                for (ns, name, target) in list {
                    for top in image_tops(&content, &target) {
                        let suffix = format!("/{top}");
                        let found = by_id.values().find(|s| {
                            s.kind == "committed"
                                && s.key.starts_with(&format!("{ns}/"))
                                && s.key.ends_with(&suffix)
                        });
                        if let Some(s) = found {
                            let shown = if ns == "default" {
                                name.clone()
                            } else {
                                format!("{ns}/{name}")
                            };
                            f.named_images.push((shown, s.id.to_string()));
                            break;
                        }
                    }
                }
                f.metadata
                    .push_str("; image names from io.containerd.metadata.v1.bolt/meta.db");
            }
            Err(e) if meta.exists() => f.notes.push(format!("image names unknown: {e}")),
            Err(_) => {}
        }
    }
    Ok(f)
}
