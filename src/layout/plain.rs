//! No union fs: the image flattened once, and a full copy of it per container —
//! what Docker's `vfs` driver does. The baseline every ratio is taken against.

use std::path::Path;

use std::path::PathBuf;

use super::fsops::FileClone;
use super::host::{Cite, Note};
use super::{
    fsops, Capabilities, ContainerDirs, CopyUp, Layout, LayoutEntry, LayoutError, Mounted,
    PreparedImage, Style, TableMounts,
};
use super::{HostProfile, LayoutConfig, MountHost, MountSpec};
use crate::image::apply::WhiteoutStyle;
use crate::image::ImageSource;

/// Registry entry.
pub static ENTRY: LayoutEntry = LayoutEntry {
    name: "plain",
    about: "No union fs: a flattened full copy per container (Docker's vfs).",
    style: Style {
        rgb: (44, 160, 44),
        dashed: false,
        triangle: false,
    },
    caps: Capabilities {
        shares_layers: false,
        copy_up: CopyUp::None,
        baseline: true,
        overlay_options: false,
        lower_per_layer: false,
        hidden_inode_per_mount: false,
        metacopy: false,
        needs_fstype: None,
        same_tree_as: None,
        table_mounts: TableMounts::None,
        idmap_lowers: false,
    },
    create: |config| Box::new(Plain::new(config.clone())),
    host: HostProfile {
        notes: &[Note {
            text: "the baseline (Docker's vfs): a full copy of the image per container, nothing shared",
            cite: Cite::Always,
        }],
        ..HostProfile::rootful()
    },
};

/// The plain-directory layout.
#[derive(Debug, Clone)]
pub struct Plain {
    config: LayoutConfig,
}

impl Plain {
    /// With these settings (privilege decides owners and device nodes).
    pub fn new(config: LayoutConfig) -> Self {
        Plain { config }
    }

    fn owners(&self) -> bool {
        self.config.privilege == crate::isolate::Privilege::Root
    }
}

impl Layout for Plain {
    fn entry(&self) -> &'static LayoutEntry {
        &ENTRY
    }

    fn with_options(&self, options: &[(String, Option<String>)]) -> Option<Box<dyn Layout>> {
        options
            .is_empty()
            .then(|| Box::new(self.clone()) as Box<dyn Layout>)
    }

    /// A container's files are its own copies: their pages are its own too.
    fn data_file(&self, _image: &PreparedImage, c: &ContainerDirs, rel: &Path) -> Option<PathBuf> {
        Some(c.merged.join(rel))
    }

    fn import(&self, store: &Path, image: &dyn ImageSource) -> Result<PreparedImage, LayoutError> {
        // Every image flattened anew: one full tree per image, named by its top
        // layer's chain id (the same image imported twice is found again).
        let info = image.info();
        let key = info
            .layers
            .last()
            .map_or("empty", |l| fsops::digest_hex(&l.chain_id));
        let dir = store.join(key);
        let flat = dir.join("flat");
        let done = dir.join("done");
        let mut written = vec![None; info.layers.len()];
        if !done.is_file() {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(LayoutError::io("removing", &dir))?;
            }
            std::fs::create_dir_all(&flat).map_err(LayoutError::io("creating", &flat))?;
            let opts = fsops::apply_options(&self.config, WhiteoutStyle::InPlace);
            for (k, w) in written.iter_mut().enumerate() {
                *w = Some(fsops::apply(image, k, &flat, &opts)?);
            }
            std::fs::write(&done, "").map_err(LayoutError::io("writing", &done))?;
        }
        Ok(PreparedImage {
            layout: ENTRY.name,
            root: store.to_path_buf(),
            layer_dirs: vec![flat],
            depth: info.layers.len(),
            chain_ids: info.layers.iter().map(|l| l.chain_id.clone()).collect(),
            written,
        })
    }

    fn create_container(
        &self,
        image: &PreparedImage,
        root: &Path,
    ) -> Result<ContainerDirs, LayoutError> {
        let merged = root.join("m");
        std::fs::create_dir_all(root).map_err(LayoutError::io("creating", root))?;
        fsops::clone_tree(
            &image.layer_dirs[0],
            &merged,
            FileClone::Copy,
            self.owners(),
        )?;
        Ok(ContainerDirs {
            root: root.to_path_buf(),
            upper_work: None,
            merged,
        })
    }

    fn mount_spec(
        &self,
        _image: &PreparedImage,
        _c: &ContainerDirs,
        _host: &MountHost,
    ) -> Result<MountSpec, LayoutError> {
        Ok(MountSpec::Nothing)
    }

    fn mount(&self, _image: &PreparedImage, c: &ContainerDirs) -> Result<Mounted, LayoutError> {
        Ok(Mounted::unmounted(c.merged.clone()))
    }
}
