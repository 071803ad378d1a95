//! Docker's legacy `overlay` driver: exactly one lower. Layer k's root is layer
//! k-1's root re-created (new directory inodes, hard-linked files) plus layer k's
//! own changes; a container mounts the top root as its single lowerdir. Its cost
//! is inodes (every directory again in every layer), its gain a flat lookup.

use std::fs;
use std::path::{Path, PathBuf};

use super::fsops::FileClone;
use super::host::{self, Cite, Note, StackProbe, StoreAdvice};
use super::{
    fsops, mount_overlay_spec, overlay_caps, overlay_container_dirs, spec, ContainerDirs, Feature,
    HostProfile, Layout, LayoutConfig, LayoutEntry, LayoutError, MountHost, MountSpec, Mounted,
    PreparedImage, Style,
};
use crate::image::apply::WhiteoutStyle;
use crate::image::ImageSource;
use crate::isolate::MountHow;

/// Registry entry.
pub static ENTRY: LayoutEntry = LayoutEntry {
    name: "overlay",
    about: "Docker's legacy overlay: one full hardlinked root per layer, one lower.",
    // Often equal to overlay2: dashed with triangles keeps both visible.
    style: Style {
        rgb: (31, 119, 180),
        dashed: true,
        triangle: true,
    },
    caps: overlay_caps(true, false),
    create: |config| Box::new(LegacyOverlay::new(config.clone())),
    host: HostProfile {
        requires: &[Feature::OverlayMount],
        probe: Some(StackProbe {
            name: "legacy overlay mount",
            root_only: true,
            run: |at| host::probe_as_root(&ENTRY, at),
        }),
        notes: &[
            Note {
                text: "Docker's legacy driver (removed in Docker 24): one lower, every directory re-created and every \
                       file hard-linked in each layer above",
                cite: Cite::Feature(Feature::OverlayMount),
            },
            Note {
                text: "legacy",
                cite: Cite::Stores,
            },
        ],
        stores: StoreAdvice::Replace(
            "this host's images are in Docker's legacy overlay store, removed in Docker 24: a new store on a current \
             Docker uses containerd's snapshotter",
        ),
        ..HostProfile::rootful()
    },
};

/// The legacy overlay layout.
#[derive(Debug, Clone)]
pub struct LegacyOverlay {
    config: LayoutConfig,
}

impl LegacyOverlay {
    /// With these mount settings.
    pub fn new(config: LayoutConfig) -> Self {
        LegacyOverlay { config }
    }
}

impl Layout for LegacyOverlay {
    fn entry(&self) -> &'static LayoutEntry {
        &ENTRY
    }

    fn overlay_xattr(&self, name: &str) -> Option<String> {
        Some(self.config.overlay_xattr(name))
    }

    fn with_options(&self, options: &[(String, Option<String>)]) -> Option<Box<dyn Layout>> {
        Some(Box::new(LegacyOverlay::new(
            self.config.with_options(options.to_vec()),
        )))
    }

    fn import(&self, store: &Path, image: &dyn ImageSource) -> Result<PreparedImage, LayoutError> {
        // Docker's legacy store: `<id>/root` per image layer, all in one store,
        // here named by chain id so an image on the same base finds its roots.
        fs::create_dir_all(store).map_err(LayoutError::io("creating", store))?;
        let info = image.info();
        let opts = fsops::apply_options(&self.config, WhiteoutStyle::InPlace);
        let owners = opts.owners;
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut written = Vec::new();
        for (k, layer) in info.layers.iter().enumerate() {
            let id = store.join(fsops::digest_hex(&layer.chain_id));
            let root = id.join("root");
            let done = id.join("done");
            if done.is_file() {
                dirs.push(root);
                written.push(None);
                continue;
            }
            if id.exists() {
                // An import that died half way: its root is not to be trusted.
                fs::remove_dir_all(&id).map_err(LayoutError::io("removing", &id))?;
            }
            fs::create_dir_all(&id).map_err(LayoutError::io("creating", &id))?;
            // Layer k's root = layer k-1's root re-created (new directories,
            // hard-linked files) + layer k's changes, replacing — never writing
            // through — the shared files.
            match dirs.last() {
                Some(prev) => fsops::clone_tree(prev, &root, FileClone::HardLink, owners)?,
                None => fs::create_dir(&root).map_err(LayoutError::io("creating", &root))?,
            }
            written.push(Some(fsops::apply(image, k, &root, &opts)?));
            fs::write(&done, "").map_err(LayoutError::io("writing", &done))?;
            dirs.push(root);
        }
        Ok(PreparedImage {
            layout: ENTRY.name,
            root: store.to_path_buf(),
            layer_dirs: dirs,
            depth: info.layers.len(),
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

    fn mount(&self, image: &PreparedImage, c: &ContainerDirs) -> Result<Mounted, LayoutError> {
        self.mount_as(image, c, &MountHow::default())
    }

    fn mount_spec(
        &self,
        image: &PreparedImage,
        c: &ContainerDirs,
        _host: &MountHost,
    ) -> Result<MountSpec, LayoutError> {
        // One lower: the top layer's full root.
        let top = image.layer_dirs.last().cloned().into_iter().collect();
        Ok(spec::overlay(&self.config, top, None, c))
    }

    fn mount_as(
        &self,
        image: &PreparedImage,
        c: &ContainerDirs,
        how: &MountHow<'_>,
    ) -> Result<Mounted, LayoutError> {
        let spec = self.mount_spec(image, c, &MountHost::read())?;
        mount_overlay_spec(ENTRY.name, &spec, c, how)
    }
}
