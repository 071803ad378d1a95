//! btrfs driver stores (Docker's `btrfs/subvolumes/`, containers-storage's the
//! same): the base layer is a subvolume, every further layer a writable
//! snapshot of its parent with the layer's changes applied for real (no
//! whiteouts: deletions are deletions), every container a snapshot of its
//! image's top (Docker: of the `-init` snapshot). Nothing is mounted.
//!
//! A snapshot is a whole tree sharing its parent's blocks, so a layer's own
//! figures come from comparing it with its parent: a snapshot keeps each inode's
//! number and ctime until it changes, so an entry whose path, inode and ctime
//! match the parent's is shared; anything else is the layer's own. Parents come
//! from btrfs itself (each snapshot's `parent_uuid`), so no engine record is
//! needed for chains.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::hash::{Hash, Hasher};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::engines;
use super::walk::walk_with;
use super::{is_dir_no_follow, Found, LayerUsage, Mounts};
use crate::layout::stores::BTRFS;

/// A subvolume's root directory has this inode number (BTRFS_FIRST_FREE_OBJECTID).
const SUBVOLUME_ROOT_INO: u64 = 256;
/// `BTRFS_IOC_GET_SUBVOL_INFO`: `_IOR(0x94, 60, struct btrfs_ioctl_get_subvol_info_args)`
/// (504 bytes; unprivileged since Linux 4.18).
const IOC_GET_SUBVOL_INFO: u64 = 0x81f8_943c;
const SUBVOL_INFO_BYTES: usize = 504;
const UUID_AT: usize = 296;
const PARENT_UUID_AT: usize = 312;

/// Whether `dir` is a btrfs driver's `subvolumes/` dir: its entries are subvolumes.
pub(crate) fn is_store(dir: &Path) -> bool {
    if !dir.ends_with("subvolumes") || !is_dir_no_follow(dir) {
        return false;
    }
    let Ok(rd) = fs::read_dir(dir) else {
        return false;
    };
    let mut entries = rd.flatten().peekable();
    // An empty one is a store with no layer yet.
    entries.peek().is_none()
        || entries.any(|e| {
            fs::symlink_metadata(e.path())
                .is_ok_and(|m| m.is_dir() && m.ino() == SUBVOLUME_ROOT_INO)
        })
}

/// `(uuid, parent_uuid)` of the subvolume at `dir`; an all-zero parent is none.
fn subvolume_uuids(dir: &Path) -> std::io::Result<([u8; 16], Option<[u8; 16]>)> {
    let f = fs::File::open(dir)?;
    let mut buf = [0u8; SUBVOL_INFO_BYTES];
    // SAFETY: the kernel writes at most SUBVOL_INFO_BYTES (the size the request
    // number encodes) into the buffer, which lives across the call.
    // Only -1 is a failure (`ioctl_ptr` says so): the kernel can return 1 on
    // success (a search result it does not reset; libbtrfsutil checks `== -1` too).
    unsafe {
        crate::sys::ioctl_ptr(
            f.as_fd(),
            IOC_GET_SUBVOL_INFO as std::ffi::c_ulong,
            buf.as_mut_ptr(),
        )
    }?;
    let take = |at: usize| {
        let mut u = [0u8; 16];
        u.copy_from_slice(&buf[at..at + 16]);
        u
    };
    let parent = take(PARENT_UUID_AT);
    Ok((take(UUID_AT), (parent != [0; 16]).then_some(parent)))
}

/// What is compared between a snapshot and its parent, per path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sig {
    ino: u64,
    ctime_ns: i128,
    blocks: u64,
    /// Hash of the containing directory's path.
    dir: u64,
}

fn path_hash(p: &Path) -> u64 {
    let mut h = DefaultHasher::new();
    p.as_os_str().as_encoded_bytes().hash(&mut h);
    h.finish()
}

/// A walked snapshot: its figures and its per-path signatures.
struct Tree {
    inodes: u64,
    bytes: u64,
    whiteouts: u64,
    sigs: HashMap<u64, Sig>,
}

fn tree(root: &Path, linked: &mut HashSet<(u64, u64)>, f: &mut Found) -> std::io::Result<Tree> {
    let mut sigs = HashMap::new();
    let w = walk_with(root, linked, |rel, m| {
        let dir = rel.parent().map_or(0, path_hash);
        sigs.insert(
            path_hash(rel),
            Sig {
                ino: m.ino(),
                ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
                blocks: m.blocks(),
                dir,
            },
        );
    })?;
    f.add_walk(&w);
    Ok(Tree {
        inodes: w.inodes,
        bytes: w.bytes,
        whiteouts: w.whiteouts,
        sigs,
    })
}

/// The layer's own inodes and bytes (its root included) and its deletions.
fn own(child: &Tree, parent: &Tree, root_blocks: u64) -> (u64, u64, u64) {
    let root = path_hash(Path::new(""));
    let mut seen = HashSet::new();
    let (mut inodes, mut bytes) = (1, root_blocks * 512);
    for (path, s) in &child.sigs {
        let shared = parent
            .sigs
            .get(path)
            .is_some_and(|p| p.ino == s.ino && p.ctime_ns == s.ctime_ns);
        if !shared && seen.insert(s.ino) {
            inodes += 1;
            bytes += s.blocks * 512;
        }
    }
    // A deletion is a parent path gone from the child whose directory is still
    // there: the topmost of each removed tree.
    let deletions = parent
        .sigs
        .iter()
        .filter(|(path, s)| {
            !child.sigs.contains_key(path) && (s.dir == root || child.sigs.contains_key(&s.dir))
        })
        .count() as u64;
    (inodes, bytes, deletions)
}

pub(crate) fn read(subvolumes: &Path) -> std::io::Result<Found> {
    let driver_dir = subvolumes.parent().unwrap_or(subvolumes);
    let records = engines::read(driver_dir);
    let mut f = Found::new(subvolumes, BTRFS.name, Mounts::Nothing);
    let mut vols: Vec<(String, PathBuf)> = Vec::new();
    for e in fs::read_dir(subvolumes)?.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        match fs::symlink_metadata(e.path()) {
            Ok(m) if m.is_dir() && m.ino() == SUBVOLUME_ROOT_INO => vols.push((id, e.path())),
            _ => f
                .notes
                .push(format!("subvolumes/{id} is not a subvolume; not counted")),
        }
    }
    vols.sort();
    // Parents from btrfs: the subvolume whose uuid is this one's parent_uuid.
    let mut uuids: HashMap<[u8; 16], String> = HashMap::new();
    let mut parent_uuid: HashMap<String, [u8; 16]> = HashMap::new();
    let mut from_btrfs = true;
    for (id, p) in &vols {
        match subvolume_uuids(p) {
            Ok((u, parent)) => {
                uuids.insert(u, id.clone());
                if let Some(pu) = parent {
                    parent_uuid.insert(id.clone(), pu);
                }
            }
            Err(e) => {
                from_btrfs = false;
                f.notes
                    .push(format!("subvolumes/{id}: BTRFS_IOC_GET_SUBVOL_INFO: {e}"));
            }
        }
    }
    let parent_of = |id: &str| -> Option<String> {
        parent_uuid
            .get(id)
            .and_then(|u| uuids.get(u).cloned())
            .or_else(|| records.parents.get(id).cloned())
    };
    // Parents before children, so each parent's tree is there to compare with;
    // a tree is dropped once its last child is done.
    let parents: HashMap<String, Option<String>> = vols
        .iter()
        .map(|(id, _)| (id.clone(), parent_of(id)))
        .collect();
    let mut children: HashMap<String, usize> = HashMap::new();
    for p in parents.values().flatten() {
        *children.entry(p.clone()).or_default() += 1;
    }
    let depth = |id: &str| {
        let (mut n, mut at, mut seen) = (0, id.to_string(), HashSet::new());
        while let Some(Some(p)) = parents.get(&at) {
            if !seen.insert(p.clone()) {
                break;
            }
            n += 1;
            at = p.clone();
        }
        n
    };
    let mut order: Vec<&(String, PathBuf)> = vols.iter().collect();
    order.sort_by_key(|(id, _)| depth(id));
    let mut trees: HashMap<String, Tree> = HashMap::new();
    let mut linked = HashSet::new();
    for (id, p) in order {
        let t = match tree(p, &mut linked, &mut f) {
            Ok(t) => t,
            Err(e) => {
                f.notes.push(format!("subvolumes/{id}: not counted: {e}"));
                continue;
            }
        };
        let root_blocks = fs::symlink_metadata(p).map_or(0, |m| m.blocks());
        let mut l = LayerUsage::new(id.clone());
        l.parent = parents.get(id).cloned().flatten();
        l.referenced_inodes = Some(t.inodes);
        l.referenced_bytes = Some(t.bytes);
        l.whiteouts = t.whiteouts;
        match l.parent.as_ref().and_then(|pid| trees.get(pid)) {
            Some(pt) => {
                let (i, b, d) = own(&t, pt, root_blocks);
                (l.inodes, l.bytes, l.deletions) = (i, b, Some(d));
            }
            None => (l.inodes, l.bytes, l.deletions) = (t.inodes, t.bytes, Some(0)),
        }
        l.container = records.containers.contains(id);
        l.init = records.inits.contains(id) || id.ends_with("-init");
        l.depth = depth(id);
        if let Some(pid) = &l.parent {
            if let Some(c) = children.get_mut(pid) {
                *c -= 1;
                if *c == 0 {
                    trees.remove(pid);
                }
            }
        }
        if children.get(id).copied().unwrap_or(0) > 0 {
            trees.insert(id.clone(), t);
        }
        f.layers.push(l);
    }
    f.hardlink_inodes = linked.len() as u64;
    f.chains_known = from_btrfs;
    match crate::isolate::btrfs::usage(subvolumes) {
        Ok(u) => f.filesystem_used_bytes = Some(u.used_bytes()),
        Err(e) => f.notes.push(e.to_string()),
    }
    f.engine = records.engine.into();
    f.named_images = records.images;
    f.notes.extend(records.notes);
    f.metadata = if from_btrfs {
        "parents from btrfs (each snapshot's parent_uuid)".to_string()
    } else {
        "parents from the engine's records (btrfs did not answer)".to_string()
    };
    if !records.sources.is_empty() {
        f.metadata
            .push_str(&format!("; engine records: {}", records.sources.join(", ")));
    }
    Ok(f)
}
