//! No union fs: the image flattened once, and a full copy of it per container —
//! what Docker's `vfs` driver does. The baseline every ratio is taken against.

use std::path::Path;

use std::path::PathBuf;

use super::{
    fsops, Capabilities, ContainerDirs, CopyUp, Layout, LayoutEntry, LayoutError, Mounted,
    PreparedImage, Style,
};
use crate::image::ImageSpec;

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
    },
    create: |_| Box::new(Plain),
};

/// The plain-directory layout.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Layout for Plain {
    fn entry(&self) -> &'static LayoutEntry {
        &ENTRY
    }

    fn with_options(&self, options: &[(String, Option<String>)]) -> Option<Box<dyn Layout>> {
        options
            .is_empty()
            .then(|| Box::new(Plain) as Box<dyn Layout>)
    }

    /// A container's files are its own copies: their pages are its own too.
    fn data_file(&self, _image: &PreparedImage, c: &ContainerDirs, rel: &Path) -> Option<PathBuf> {
        Some(c.merged.join(rel))
    }

    fn prepare_on(
        &self,
        _base: Option<&PreparedImage>,
        image: &ImageSpec,
        root: &Path,
    ) -> Result<PreparedImage, LayoutError> {
        let flat = root.join("flat");
        std::fs::create_dir_all(root).map_err(LayoutError::io("creating", root))?;
        fsops::write_tree(&image.flatten(), &flat, None)?;
        Ok(PreparedImage {
            layout: ENTRY.name,
            root: root.to_path_buf(),
            layer_dirs: vec![flat],
            depth: image.depth(),
        })
    }

    fn create_container(
        &self,
        image: &PreparedImage,
        root: &Path,
    ) -> Result<ContainerDirs, LayoutError> {
        let merged = root.join("m");
        std::fs::create_dir_all(root).map_err(LayoutError::io("creating", root))?;
        fsops::copy_tree(&image.layer_dirs[0], &merged)?;
        Ok(ContainerDirs {
            root: root.to_path_buf(),
            upper_work: None,
            merged,
        })
    }

    fn mount(&self, _image: &PreparedImage, c: &ContainerDirs) -> Result<Mounted, LayoutError> {
        Ok(Mounted {
            merged: c.merged.clone(),
            guard: None,
            mount_time: None,
            options_in_force: None,
        })
    }
}
