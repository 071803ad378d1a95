//! Docker's overlay2: one diff dir per layer holding only that layer's changes;
//! a container mounts all of them as lowers (topmost first) under its own upper.

use std::path::Path;

use rayon::prelude::*;

use super::{
    fsops, overlay_container_dirs, ContainerDirs, Layout, LayoutConfig, LayoutError, LayoutKind,
    Mounted, PreparedImage, MAX_LOWER_LAYERS,
};
use crate::image::{ImageSpec, Tree};
use crate::isolate::{mount_overlay, OverlayMount};

/// The overlay2 layout.
#[derive(Debug, Clone)]
pub struct Overlay2 {
    config: LayoutConfig,
}

impl Overlay2 {
    /// With these mount settings.
    pub fn new(config: LayoutConfig) -> Self {
        Overlay2 { config }
    }
}

impl Layout for Overlay2 {
    fn kind(&self) -> LayoutKind {
        LayoutKind::Overlay2
    }

    fn prepare_on(
        &self,
        base: Option<&PreparedImage>,
        image: &ImageSpec,
        root: &Path,
    ) -> Result<PreparedImage, LayoutError> {
        if image.depth() > MAX_LOWER_LAYERS {
            return Err(LayoutError::TooDeep {
                depth: image.depth(),
                limit: MAX_LOWER_LAYERS,
            });
        }
        let first = base.map_or(0, |b| b.depth);
        let layers_dir = root.join("L");
        std::fs::create_dir_all(&layers_dir).map_err(LayoutError::io("creating", &layers_dir))?;
        let mut dirs: Vec<_> = base.map(|b| b.layer_dirs.clone()).unwrap_or_default();
        dirs.extend((first..image.depth()).map(|i| layers_dir.join(i.to_string())));
        // Each diff needs the merged tree below it (for parent modes); layers are
        // then independent and are written in parallel.
        let mut jobs = Vec::new();
        let mut below = Tree::default();
        for (i, layer) in image.layers.iter().enumerate() {
            if i >= first {
                jobs.push((i, layer, below.clone()));
            }
            for c in &layer.changes {
                below.apply(c, i);
            }
        }
        let xattr = self.config.opaque_xattr();
        jobs.into_par_iter().try_for_each(|(i, layer, mut tree)| {
            fsops::write_diff(layer, i, &mut tree, &dirs[i], &xattr)
        })?;
        Ok(PreparedImage {
            kind: LayoutKind::Overlay2,
            root: root.to_path_buf(),
            layer_dirs: dirs,
            depth: image.depth(),
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
        let spec = OverlayMount {
            lowers: image.layer_dirs.iter().rev().cloned().collect(),
            upper_work: c.upper_work.clone(),
            options: self.config.mount_options(),
            target: c.merged.clone(),
        };
        let m = mount_overlay(&spec, self.config.mount_api)?;
        Ok(Mounted {
            merged: c.merged.clone(),
            guard: Some(m.guard),
            mount_time: Some(m.elapsed),
            options_in_force: Some(m.options_in_force),
        })
    }
}
