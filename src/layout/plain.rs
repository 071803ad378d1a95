//! No union fs: the image flattened once, and a full copy of it per container —
//! what Docker's `vfs` driver does. The baseline every ratio is taken against.

use std::path::Path;

use super::{fsops, ContainerDirs, Layout, LayoutError, LayoutKind, Mounted, PreparedImage};
use crate::image::ImageSpec;

/// The plain-directory layout.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Layout for Plain {
    fn kind(&self) -> LayoutKind {
        LayoutKind::Plain
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
            kind: LayoutKind::Plain,
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
