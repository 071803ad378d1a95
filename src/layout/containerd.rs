//! containerd's overlayfs snapshotter (`io.containerd.snapshotter.v1.overlayfs`,
//! the default image store of Docker Engine 29): one snapshot per layer at
//! `snapshots/<N>/{fs,work}` with sequential numeric ids, and a record of each
//! snapshot's parent. A committed layer keeps its (empty) `work/`: one inode
//! more per layer than an overlay2 diff dir.
//!
//! Mounts, as containerd makes them: `index=off` (when the kernel has the
//! parameter), `workdir`, `upperdir`, and the lowers — absolute, until the
//! options reach `pagesize - 512` = 3584 bytes (containerd's `optionsSize`, the
//! sum of the option lengths); from there containerd rewrites the lowerdirs
//! relative to their common parent (`76/fs:75/fs:…`) and mounts from a child
//! whose cwd is that dir. With the new mount API each layer goes in by
//! `lowerdir+`, so no string grows with depth.
//!
//! The record of parents is `metadata.json`, not containerd's bbolt
//! `metadata.db`: the benchmark needs only ids and parents, no Rust crate writes
//! bbolt without a heavy dependency tree, and a reader of real containerd stores
//! (doctor) reads their bbolt files on its own.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::host::{self, Cite, Note, OptionForm, StackProbe, StoreAdvice};
use super::{
    fsops, mount_overlay_spec, overlay_caps, Capabilities, ContainerDirs, Feature, HostProfile,
    Layout, LayoutConfig, LayoutEntry, LayoutError, MountHost, MountSpec, Mounted, OverlaySpec,
    PreparedImage, Style, MAX_LOWER_LAYERS,
};
use crate::image::apply::{inherit_implicit_dirs, ApplyStats, WhiteoutStyle};
use crate::image::ImageSource;
use crate::isolate::{MountApi, MountHow, OverlayMount};

/// containerd switches to relative lowerdirs from this many option bytes.
pub const COMPACT_FROM_BYTES: usize = 4096 - 512;

/// Registry entry.
pub static ENTRY: LayoutEntry = LayoutEntry {
    name: "containerd",
    about: "containerd's overlayfs snapshotter: snapshots/<N>/{fs,work}, lowerdirs made relative past 3584 bytes.",
    style: Style {
        rgb: (148, 103, 189),
        dashed: false,
        triangle: false,
    },
    // Layers go in as paths (containerd's own option list), never idmapped here.
    caps: Capabilities {
        idmap_lowers: false,
        ..overlay_caps(true, true)
    },
    create: |config| Box::new(Containerd::new(config.clone())),
    host: HostProfile {
        requires: &[Feature::MultipleLowers],
        probe: Some(StackProbe {
            name: "containerd snapshotter mount",
            root_only: true,
            run: |at| host::probe_as_root(&ENTRY, at),
        }),
        notes: &[
            Note {
                text: "containerd's overlayfs snapshotter mounts the kernel's overlay with many lowers",
                cite: Cite::Unprobed(Feature::MultipleLowers),
            },
            Note {
                text: "with lowers relative to its snapshots dir an image of {fit} layers fits one {page}-byte page, \
                       so the kernel's limit of {max} lowers is what binds",
                cite: Cite::OptionPage(OptionForm::RelativeToSnapshots),
            },
            Note {
                text: "idmapped lowers work on the store's filesystem (containerd 2.x user-namespaced pods)",
                cite: Cite::IdmapWorks,
            },
        ],
        stores: StoreAdvice::Keep(
            "this host's images are in containerd's overlayfs snapshotter ({layers} layers): keep it",
        ),
        default_for_new_hosts: Some(
            "no image store with layers here: containerd's overlayfs snapshotter is Docker 29's default for new installs",
        ),
        ..HostProfile::rootful()
    },
};

/// The containerd layout.
#[derive(Debug, Clone)]
pub struct Containerd {
    config: LayoutConfig,
}

impl Containerd {
    /// With these mount settings.
    pub fn new(config: LayoutConfig) -> Self {
        Containerd { config }
    }
}

/// One snapshot's record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Snapshot {
    /// The numeric id: `snapshots/<id>`.
    id: u64,
    /// The parent's key (chain id), absent for a base layer.
    parent: Option<String>,
    /// `committed` (image layers are all committed).
    kind: String,
}

/// The store's record: next id and every snapshot by key (the chain id, as
/// containerd's unpacker names committed layers).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    next_id: u64,
    snapshots: BTreeMap<String, Snapshot>,
}

const METADATA: &str = "metadata.json";

fn read_metadata(store: &Path) -> Result<Metadata, LayoutError> {
    let path = store.join(METADATA);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| LayoutError::Store {
            path,
            detail: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Metadata {
            next_id: 1,
            ..Default::default()
        }),
        Err(e) => Err(LayoutError::io("reading", &path)(e)),
    }
}

/// Writes the record atomically (temp file + rename), as bbolt commits.
fn write_metadata(store: &Path, m: &Metadata) -> Result<(), LayoutError> {
    let path = store.join(METADATA);
    let tmp = store.join(format!("{METADATA}.tmp"));
    let text = serde_json::to_vec_pretty(m).map_err(|e| LayoutError::Store {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    fs::write(&tmp, text).map_err(LayoutError::io("writing", &tmp))?;
    fs::rename(&tmp, &path).map_err(LayoutError::io("renaming", &path))
}

/// Holds the store's lock (flock on `metadata.lock`) while ids are handed out.
struct StoreLock {
    _lock: nix::fcntl::Flock<fs::File>,
}

impl StoreLock {
    fn take(store: &Path) -> Result<StoreLock, LayoutError> {
        let path = store.join("metadata.lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(LayoutError::io("opening", &path))?;
        let lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| LayoutError::io("locking", &path)(e.into()))?;
        Ok(StoreLock { _lock: lock })
    }
}

/// containerd's option size: the sum of the option lengths (no separators).
pub fn options_size(options: &[String]) -> usize {
    options.iter().map(String::len).sum()
}

/// containerd's `compactLowerdirOption`: the lowerdirs (absolute, topmost
/// first) relative to the parent of their longest common prefix (the snapshots
/// dir), or None when they share no such dir.
pub fn compact_lowerdirs(lowers: &[PathBuf]) -> Option<(PathBuf, Vec<PathBuf>)> {
    if lowers.len() < 2 {
        return None;
    }
    let strs: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let (min, max) = (strs.iter().min()?, strs.iter().max()?);
    let common: String = min
        .chars()
        .zip(max.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    // The ids are digits: "…/snapshots/1" would be a common prefix of 1 and 12,
    // so everything up to the prefix's last '/' is taken, as Go's path.Dir does
    // (a prefix ending in '/' keeps that dir).
    let cut = common.rfind('/')?;
    let dir = PathBuf::from(&common[..cut]);
    if cut == 0 {
        return None;
    }
    let rel = lowers
        .iter()
        .map(|p| p.strip_prefix(&dir).map(Path::to_path_buf))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    Some((dir, rel))
}

impl Layout for Containerd {
    fn entry(&self) -> &'static LayoutEntry {
        &ENTRY
    }

    fn overlay_xattr(&self, name: &str) -> Option<String> {
        Some(self.config.overlay_xattr(name))
    }

    fn with_options(&self, options: &[(String, Option<String>)]) -> Option<Box<dyn Layout>> {
        Some(Box::new(Containerd::new(
            self.config.with_options(options.to_vec()),
        )))
    }

    fn import(&self, store: &Path, image: &dyn ImageSource) -> Result<PreparedImage, LayoutError> {
        let info = image.info();
        let depth = info.layers.len();
        if depth > MAX_LOWER_LAYERS {
            return Err(LayoutError::TooDeep {
                depth,
                limit: MAX_LOWER_LAYERS,
            });
        }
        let snapshots = store.join("snapshots");
        fs::create_dir_all(&snapshots).map_err(LayoutError::io("creating", &snapshots))?;
        let lock = StoreLock::take(store)?;
        let mut meta = read_metadata(store)?;
        // Ids are handed out bottom first, one per new layer (containerd's
        // NextSequence); each new snapshot is written in `new-<id>` and renamed
        // to `<id>` once its layer is applied.
        let mut ids = Vec::with_capacity(depth);
        let mut new: Vec<(usize, u64)> = Vec::new();
        for (i, l) in info.layers.iter().enumerate() {
            let known = meta
                .snapshots
                .get(&l.chain_id)
                .map(|s| s.id)
                .filter(|id| snapshots.join(id.to_string()).join("fs").is_dir());
            let id = match known {
                Some(id) => id,
                None => {
                    let id = meta.next_id;
                    meta.next_id += 1;
                    new.push((i, id));
                    id
                }
            };
            ids.push(id);
        }
        for &(_, id) in &new {
            let tmp = snapshots.join(format!("new-{id}"));
            if tmp.exists() {
                fs::remove_dir_all(&tmp).map_err(LayoutError::io("removing", &tmp))?;
            }
            for d in [tmp.join("fs"), tmp.join("work")] {
                fs::create_dir_all(&d).map_err(LayoutError::io("creating", &d))?;
            }
        }
        // containerd applies a layer straight into the snapshot's fs dir in overlay
        // form (char 0/0 whiteouts, the opaque xattr); layers are independent streams.
        let opts = fsops::apply_options(
            &self.config,
            WhiteoutStyle::OverlayDiff {
                xattr_prefix: self.config.overlay_prefix(),
            },
        );
        let stats: Vec<(usize, ApplyStats)> = new
            .par_iter()
            .map(|&(i, id)| {
                let fs_dir = snapshots.join(format!("new-{id}")).join("fs");
                Ok((i, fsops::apply(image, i, &fs_dir, &opts)?))
            })
            .collect::<Result<_, LayoutError>>()?;
        let fs_of = |i: usize| {
            let id = ids[i];
            if new.iter().any(|&(_, n)| n == id) {
                snapshots.join(format!("new-{id}")).join("fs")
            } else {
                snapshots.join(id.to_string()).join("fs")
            }
        };
        let dirs: Vec<PathBuf> = (0..depth).map(fs_of).collect();
        let mut implicit: Vec<Vec<PathBuf>> = vec![Vec::new(); depth];
        for (i, st) in &stats {
            implicit[*i] = st.implicit_dirs.clone();
        }
        inherit_implicit_dirs(&dirs, &implicit)?;
        for &(i, id) in &new {
            let from = snapshots.join(format!("new-{id}"));
            let to = snapshots.join(id.to_string());
            fs::rename(&from, &to).map_err(LayoutError::io("renaming", &to))?;
            meta.snapshots.insert(
                info.layers[i].chain_id.clone(),
                Snapshot {
                    id,
                    parent: i.checked_sub(1).map(|p| info.layers[p].chain_id.clone()),
                    kind: "committed".into(),
                },
            );
        }
        write_metadata(store, &meta)?;
        drop(lock);
        let mut written: Vec<Option<ApplyStats>> = vec![None; depth];
        for (i, st) in stats {
            written[i] = Some(st);
        }
        Ok(PreparedImage {
            layout: ENTRY.name,
            root: store.to_path_buf(),
            layer_dirs: ids
                .iter()
                .map(|id| snapshots.join(id.to_string()).join("fs"))
                .collect(),
            depth,
            chain_ids: info.layers.iter().map(|l| l.chain_id.clone()).collect(),
            written,
        })
    }

    /// An active snapshot's shape (`fs` the upper, `work`), made where the run
    /// keeps its containers rather than under `snapshots/` (so a container is
    /// removed with its dir, as containerd's Remove does).
    fn create_container(
        &self,
        _image: &PreparedImage,
        root: &Path,
    ) -> Result<ContainerDirs, LayoutError> {
        let (upper, work, merged) = (root.join("fs"), root.join("work"), root.join("m"));
        for d in [root, &upper, &work, &merged] {
            fs::create_dir_all(d).map_err(LayoutError::io("creating", d))?;
        }
        Ok(ContainerDirs {
            root: root.to_path_buf(),
            upper_work: Some((upper, work)),
            merged,
        })
    }

    fn mount_spec(
        &self,
        image: &PreparedImage,
        c: &ContainerDirs,
        host: &MountHost,
    ) -> Result<MountSpec, LayoutError> {
        let lowers: Vec<PathBuf> = image.layer_dirs.iter().rev().cloned().collect();
        // containerd's own option first, then the run's (metacopy, volatile).
        let mut options = Vec::new();
        if host.overlay_index_param {
            options.push(("index".to_string(), Some("off".to_string())));
        }
        options.extend(self.config.mount_options());
        let mut mount = OverlayMount {
            lowers,
            lowers_base: None,
            upper_work: c.upper_work.clone(),
            options,
            target: c.merged.clone(),
        };
        if self.config.mount_api == MountApi::Classic {
            // containerd's option list, measured its way.
            let mut list: Vec<String> = mount
                .options
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => k.clone(),
                })
                .collect();
            if let Some((u, w)) = &mount.upper_work {
                list.push(format!("workdir={}", w.display()));
                list.push(format!("upperdir={}", u.display()));
            }
            let lowerdir: Vec<String> = mount
                .lowers
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            list.push(format!("lowerdir={}", lowerdir.join(":")));
            if options_size(&list) >= COMPACT_FROM_BYTES {
                if let Some((dir, rel)) = compact_lowerdirs(&mount.lowers) {
                    mount.lowers = rel;
                    mount.lowers_base = Some(dir);
                }
            }
        }
        Ok(MountSpec::Overlay(OverlaySpec {
            images: Vec::new(),
            mount,
            data: Vec::new(),
            api: self.config.mount_api,
            in_user_namespace: false,
        }))
    }

    fn mount(&self, image: &PreparedImage, c: &ContainerDirs) -> Result<Mounted, LayoutError> {
        let spec = self.mount_spec(image, c, &MountHost::read())?;
        mount_overlay_spec(ENTRY.name, &spec, c, &MountHow::default())
    }

    fn notes(&self) -> Vec<String> {
        vec![format!(
            "containerd: the parent records are a JSON file (metadata.json), not containerd's bbolt metadata.db; \
             a container's active snapshot (fs, work) lives in the run's container dir, not under snapshots/; \
             {}",
            match self.config.mount_api {
                MountApi::New => "mounted with the new mount API (one lowerdir+ per layer), as containerd 2.x can with fds",
                MountApi::Classic => "mounted like containerd: classic mount(2), lowerdirs relative to snapshots/ (resolved from a mount thread whose working directory is snapshots/) once the options reach 3584 bytes",
            }
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacts_like_containerd() {
        let lowers: Vec<PathBuf> = [76, 75, 9, 1]
            .iter()
            .map(|i| PathBuf::from(format!("/var/lib/c/snapshots/{i}/fs")))
            .collect();
        let (dir, rel) = compact_lowerdirs(&lowers).expect("compacted");
        assert_eq!(dir, PathBuf::from("/var/lib/c/snapshots"));
        assert_eq!(
            rel,
            ["76/fs", "75/fs", "9/fs", "1/fs"]
                .iter()
                .map(PathBuf::from)
                .collect::<Vec<_>>()
        );
        // 1 and 12 share "…/snapshots/1": the parent is still snapshots/.
        let two = [
            PathBuf::from("/s/snapshots/12/fs"),
            PathBuf::from("/s/snapshots/1/fs"),
        ];
        let (dir, rel) = compact_lowerdirs(&two).expect("compacted");
        assert_eq!(dir, PathBuf::from("/s/snapshots"));
        assert_eq!(rel[0], PathBuf::from("12/fs"));
        assert!(compact_lowerdirs(&lowers[..1]).is_none());
        assert_eq!(options_size(&["ab".into(), "cde".into()]), 5);
    }
}
