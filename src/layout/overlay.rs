//! Docker's legacy `overlay` driver: exactly one lower. Layer k's root is layer
//! k-1's root re-created (new directory inodes, hard-linked files) plus layer k's
//! own changes; a container mounts the top root as its single lowerdir. Its cost
//! is inodes (every directory again in every layer), its gain a flat lookup.

use std::path::Path;

use super::{
    fsops, mount_container, overlay_caps, overlay_container_dirs, ContainerDirs, Layout,
    LayoutConfig, LayoutEntry, LayoutError, Mounted, PreparedImage, Style,
};
use crate::image::ImageSpec;

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

    fn prepare_on(
        &self,
        base: Option<&PreparedImage>,
        image: &ImageSpec,
        root: &Path,
    ) -> Result<PreparedImage, LayoutError> {
        let first = base.map_or(0, |b| b.depth);
        // Docker's legacy store: `<id>/root` per image layer, all in one store.
        let store = base.map_or_else(|| root.to_path_buf(), |b| b.root.clone());
        std::fs::create_dir_all(&store).map_err(LayoutError::io("creating", &store))?;
        let taken = std::fs::read_dir(&store)
            .map_err(LayoutError::io("reading", &store))?
            .count();
        let mut dirs: Vec<std::path::PathBuf> =
            base.map(|b| b.layer_dirs.clone()).unwrap_or_default();
        let mut tree = crate::image::Tree::default();
        for (k, layer) in image.layers.iter().enumerate() {
            for c in &layer.changes {
                tree.apply(c, k);
            }
            if k < first {
                continue;
            }
            let id = store.join(format!("{:064x}", taken + k - first));
            std::fs::create_dir_all(&id).map_err(LayoutError::io("creating", &id))?;
            let dir = id.join("root");
            let prev = dirs.last().map(|p| (p.as_path(), k));
            fsops::write_tree(&tree, &dir, prev)?;
            dirs.push(dir);
        }
        Ok(PreparedImage {
            layout: ENTRY.name,
            root: store,
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
        mount_container(
            &self.config,
            image.layer_dirs.last().cloned().into_iter().collect(),
            None,
            c,
        )
    }
}
