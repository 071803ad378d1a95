//! containerd's EROFS snapshotter (containerd >= 2.1): every layer kept as one
//! read-only EROFS image, mounted, and the mounts stacked by overlay under the
//! container's upper/work.
//!
//! Store: `<store>/<chain id hex>/layer.erofs` (the image: one host inode
//! whatever the layer holds) and `fs/` (where the layer is mounted while a
//! container needs it, as containerd mounts it at `snapshots/<id>/fs`). A layer
//! is applied in overlay form (char 0/0 whiteouts, `trusted.overlay.opaque`) into
//! a temporary dir — the overlay2 diff of the same layer — converted with
//! `mkfs.erofs -Enoinline_data` (containerd's flags), and the dir removed.
//! containerd's differ feeds the layer tar to `mkfs.erofs --tar` instead where
//! erofs-utils has it (>= 1.6); the image holds the same tree either way.
//!
//! Mounts: one EROFS mount per layer, shared by every container that stacks it
//! (first container mounts, last unmounts), file-backed where the backing
//! filesystem can serve it, else on a read-only loop device (tmpfs).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rayon::prelude::*;

use super::host::{self, Cite, Note, StackProbe};
use super::{
    fsops, overlay_caps, overlay_container_dirs, Capabilities, ContainerDirs, Feature, HostProfile,
    Layout, LayoutConfig, LayoutEntry, LayoutError, MountHost, MountSpec, Mounted, OverlaySpec,
    PreparedImage, Style, TableMounts, MAX_LOWER_LAYERS,
};
use crate::image::apply::{inherit_implicit_dirs, ApplyStats, WhiteoutStyle};
use crate::image::ImageSource;
use crate::isolate::{
    mkfs_erofs, mkfs_erofs_takes_tar, mount_erofs, mount_overlay, probe_erofs_backing,
    ErofsBacking, OverlayMount, SharedMount, SharedMounts,
};

/// Registry entry.
pub static ENTRY: LayoutEntry = LayoutEntry {
    name: "erofs",
    about:
        "containerd's EROFS snapshotter: one EROFS image per layer, mounted, stacked by overlay.",
    style: Style {
        rgb: (148, 103, 189),
        dashed: true,
        triangle: false,
    },
    caps: Capabilities {
        same_tree_as: Some("overlay2"),
        // One EROFS mount per layer (shared by the image's containers), then the overlay.
        table_mounts: TableMounts::PerLayerPlusOne,
        idmap_lowers: false,
        ..overlay_caps(true, true)
    },
    create: |config| Box::new(Erofs::new(config.clone())),
    host: HostProfile {
        requires: &[
            Feature::RealRoot {
                why: "EROFS cannot be mounted in a user namespace",
            },
            Feature::Erofs,
            Feature::MkfsErofs,
            Feature::MultipleLowers,
        ],
        probe: Some(StackProbe {
            name: "erofs snapshotter mount",
            root_only: true,
            run: |at| host::probe_as_root(&ENTRY, at),
        }),
        notes: &[Note {
            text: "containerd ≥ 2.1's erofs snapshotter stores each layer as one file",
            cite: Cite::FeatureDetail(Feature::Erofs),
        }],
        ..HostProfile::rootful()
    },
};

/// One layer's place in the store.
struct Layer {
    dir: PathBuf,
    /// The EROFS image.
    image: PathBuf,
    /// Where it is mounted while a container stacks it.
    fs: PathBuf,
    /// The overlay-form dir it is built from (only during import).
    diff: PathBuf,
}

impl Layer {
    fn at(store: &Path, chain_id: &str) -> Layer {
        let dir = store.join(fsops::digest_hex(chain_id));
        Layer {
            image: dir.join("layer.erofs"),
            fs: dir.join("fs"),
            diff: dir.join("diff.tmp"),
            dir,
        }
    }

    /// The image is renamed into place once built: its presence means complete.
    fn complete(&self) -> bool {
        self.image.is_file()
    }
}

/// The layer image mounted at `fs` (its parent dir holds `layer.erofs`).
fn image_of(fs: &Path) -> PathBuf {
    fs.parent().unwrap_or(fs).join("layer.erofs")
}

/// The erofs layout.
#[derive(Debug, Clone)]
pub struct Erofs {
    config: LayoutConfig,
    /// Layer mounts in use, shared by the containers of every image.
    mounts: SharedMounts,
}

impl Erofs {
    /// With these mount settings.
    pub fn new(config: LayoutConfig) -> Self {
        Erofs {
            config,
            mounts: SharedMounts::new(),
        }
    }

    /// A hold on the layer whose mountpoint is `fs`, mounting it if no container
    /// holds it; returns the hold, the time spent mounting and how it is backed.
    fn hold(
        &self,
        fs: &Path,
    ) -> Result<(SharedMount, Duration, Option<ErofsBacking>), LayoutError> {
        let mut made = None;
        let (hold, _) = self.mounts.acquire(fs, || {
            let m = mount_erofs(&image_of(fs), fs)?;
            made = Some((m.elapsed, m.backing));
            Ok(m.guard)
        })?;
        Ok(match made {
            Some((t, b)) => (hold, t, Some(b)),
            None => (hold, Duration::ZERO, None),
        })
    }
}

impl Layout for Erofs {
    fn entry(&self) -> &'static LayoutEntry {
        &ENTRY
    }

    fn overlay_xattr(&self, name: &str) -> Option<String> {
        Some(self.config.overlay_xattr(name))
    }

    fn with_options(&self, options: &[(String, Option<String>)]) -> Option<Box<dyn Layout>> {
        Some(Box::new(Erofs {
            config: self.config.with_options(options.to_vec()),
            mounts: self.mounts.clone(),
        }))
    }

    fn host_notes(&self, scratch: &Path) -> Vec<String> {
        let mut notes = Vec::new();
        match mkfs_erofs_takes_tar() {
            Ok(false) => notes.push(
                "this mkfs.erofs has no --tar (erofs-utils < 1.6), so a layer cannot be converted \
                 from its tar as containerd's EROFS differ does: each layer is unpacked in overlay \
                 form into a temporary dir and converted with mkfs.erofs -Enoinline_data (containerd's \
                 path for a layer another differ applied); import figures include the unpack"
                    .to_string(),
            ),
            Ok(true) => notes.push(
                "layers are unpacked into a dir and converted with mkfs.erofs -Enoinline_data (this \
                 mkfs.erofs also takes --tar, which containerd's differ would use instead)"
                    .to_string(),
            ),
            Err(_) => {}
        }
        match probe_erofs_backing(&scratch.join(".erofs-probe")) {
            Ok(b) => notes.push(format!(
                "each layer image is mounted {} (one mount per layer, shared by the containers \
                 stacking it, as containerd mounts it at snapshots/<id>/fs)",
                match b {
                    ErofsBacking::File => "file-backed, no loop device",
                    ErofsBacking::Loop { .. } => {
                        "on a read-only loop device (this filesystem cannot serve a file-backed EROFS mount)"
                    }
                }
            )),
            Err(e) => notes.push(format!("probing how EROFS images mount here failed: {e}")),
        }
        notes
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
        fs::create_dir_all(store).map_err(LayoutError::io("creating", store))?;
        let layers: Vec<Layer> = info
            .layers
            .iter()
            .map(|l| Layer::at(store, &l.chain_id))
            .collect();
        let new: Vec<usize> = (0..depth).filter(|&i| !layers[i].complete()).collect();
        for &i in &new {
            let l = &layers[i];
            if l.dir.exists() {
                // An import that died half way: nothing of it is to be trusted.
                fs::remove_dir_all(&l.dir).map_err(LayoutError::io("removing", &l.dir))?;
            }
            for d in [&l.dir, &l.fs, &l.diff] {
                fs::create_dir_all(d).map_err(LayoutError::io("creating", d))?;
            }
        }
        // Each new layer in overlay form, every core at once (as overlay2 does).
        let opts = fsops::apply_options(
            &self.config,
            WhiteoutStyle::OverlayDiff {
                xattr_prefix: self.config.overlay_prefix(),
            },
        );
        let stats: Vec<(usize, ApplyStats)> = new
            .par_iter()
            .map(|&i| Ok((i, fsops::apply(image, i, &layers[i].diff, &opts)?)))
            .collect::<Result<_, LayoutError>>()?;
        // Implicit dirs take their metadata from the layers below: new layers'
        // diffs are still dirs; layers reused from the store are read mounted.
        let mut implicit: Vec<Vec<PathBuf>> = vec![Vec::new(); depth];
        for (i, st) in &stats {
            implicit[*i] = st.implicit_dirs.clone();
        }
        if implicit.iter().any(|v| !v.is_empty()) {
            let mut holds = Vec::new();
            let mut trees = Vec::with_capacity(depth);
            for (i, l) in layers.iter().enumerate() {
                if new.contains(&i) {
                    trees.push(l.diff.clone());
                } else {
                    holds.push(self.hold(&l.fs)?.0);
                    trees.push(l.fs.clone());
                }
            }
            let r = inherit_implicit_dirs(&trees, &implicit);
            for h in holds {
                h.release()?;
            }
            r?;
        }
        // Convert: one mkfs.erofs per new layer (single-threaded each), in
        // parallel; the image is renamed into place when whole.
        new.par_iter()
            .map(|&i| {
                let l = &layers[i];
                let tmp = l.dir.join("layer.erofs.tmp");
                mkfs_erofs(&tmp, &l.diff, &[])?;
                fs::rename(&tmp, &l.image).map_err(LayoutError::io("renaming", &tmp))?;
                fs::remove_dir_all(&l.diff).map_err(LayoutError::io("removing", &l.diff))?;
                Ok(())
            })
            .collect::<Result<Vec<()>, LayoutError>>()?;
        let mut written: Vec<Option<ApplyStats>> = vec![None; depth];
        for (i, st) in stats {
            written[i] = Some(st);
        }
        Ok(PreparedImage {
            layout: ENTRY.name,
            root: store.to_path_buf(),
            layer_dirs: layers.iter().map(|l| l.fs.clone()).collect(),
            depth,
            chain_ids: info.layers.iter().map(|l| l.chain_id.clone()).collect(),
            written,
        })
    }

    fn create_container(
        &self,
        _image: &PreparedImage,
        root: &Path,
    ) -> Result<ContainerDirs, LayoutError> {
        overlay_container_dirs(root)
    }

    fn mount_spec(
        &self,
        image: &PreparedImage,
        c: &ContainerDirs,
        _host: &MountHost,
    ) -> Result<MountSpec, LayoutError> {
        Ok(MountSpec::Overlay(OverlaySpec {
            // Every layer image at its `fs` dir, bottom first.
            images: image
                .layer_dirs
                .iter()
                .map(|fs| (image_of(fs), fs.clone()))
                .collect(),
            mount: OverlayMount {
                lowers: image.layer_dirs.iter().rev().cloned().collect(),
                lowers_base: None,
                upper_work: c.upper_work.clone(),
                options: self.config.mount_options(),
                target: c.merged.clone(),
            },
            data: Vec::new(),
            api: self.config.mount_api,
            in_user_namespace: false,
        }))
    }

    fn mount(&self, image: &PreparedImage, c: &ContainerDirs) -> Result<Mounted, LayoutError> {
        let spec = self.mount_spec(image, c, &MountHost::read())?;
        let o = spec
            .overlay()
            .ok_or_else(|| super::spec::not_an_overlay(ENTRY.name))?;
        let mut held = Vec::with_capacity(o.images.len());
        let mut layers_time = Duration::ZERO;
        let mut backing = None;
        for (_, fs) in &o.images {
            let (h, t, b) = self.hold(fs)?;
            held.push(h);
            layers_time += t;
            backing = backing.or(b);
        }
        // On failure `held` drops: layers no other container holds are let go.
        let m = mount_overlay(&o.mount, o.api)?;
        let layers_note = match backing {
            Some(b) => format!(" (EROFS layers: {})", b.name()),
            None => String::new(),
        };
        // The overlay is undone first, then the layers it stood on.
        let mut guards: Vec<Box<dyn crate::isolate::Unmount>> = vec![Box::new(m.guard)];
        guards.extend(
            held.into_iter()
                .rev()
                .map(|h| Box::new(h) as Box<dyn crate::isolate::Unmount>),
        );
        Ok(Mounted {
            merged: c.merged.clone(),
            guards,
            // The layer mounts this container had to make, then the overlay.
            mount_time: Some(layers_time + m.elapsed),
            options_in_force: Some(format!("{}{layers_note}", m.options_in_force)),
        })
    }

    fn backing_files(&self, image: &PreparedImage, rel: &Path) -> Vec<PathBuf> {
        // The topmost mounted layer that has `rel` holds its data; when none is
        // mounted, every layer image of the image may.
        image
            .layer_dirs
            .iter()
            .rev()
            .find(|fs| fs.join(rel).symlink_metadata().is_ok())
            .map(|fs| vec![image_of(fs)])
            .unwrap_or_else(|| image.layer_dirs.iter().map(|fs| image_of(fs)).collect())
    }
}
