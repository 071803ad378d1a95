//! Docker's overlay2: one diff dir per layer holding only that layer's changes;
//! a container mounts all of them as lowers (topmost first) under its own upper.
//! The store has Docker's (and containers-storage's) shape: `<id>/diff`,
//! `<id>/link` (a short name), `<id>/lower` (parents as `l/<short>`, topmost
//! first), `<id>/work`, and `l/<short> -> ../<id>/diff`.

use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{
    fsops, mount_container, overlay_caps, overlay_container_dirs, ContainerDirs, Layout,
    LayoutConfig, LayoutEntry, LayoutError, Mounted, PreparedImage, Style, MAX_LOWER_LAYERS,
};
use crate::image::{ImageSpec, Tree};
use crate::isolate::MountApi;

/// The short link name Docker keeps in `<layer>/link`, for a layer's diff dir.
fn short_name_of(diff: &Path) -> Result<String, LayoutError> {
    let link = diff.parent().unwrap_or(diff).join("link");
    crate::input::read_text(
        &link,
        crate::input::STORE_META_MAX_BYTES,
        "a store metadata file",
        crate::input::Follow::NoSymlinks,
    )
    .map(|s| s.trim().to_string())
    .map_err(|e| LayoutError::io("reading", &link)(std::io::Error::other(e.to_string())))
}

/// Registry entry.
pub static ENTRY: LayoutEntry = LayoutEntry {
    name: "overlay2",
    about: "Docker's overlay2: one diff dir per layer, mounted as many lowers.",
    style: Style {
        rgb: (214, 39, 40),
        dashed: false,
        triangle: false,
    },
    caps: overlay_caps(true, true),
    create: |config| Box::new(Overlay2::new(config.clone())),
};

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
    fn entry(&self) -> &'static LayoutEntry {
        &ENTRY
    }

    fn overlay_xattr(&self, name: &str) -> Option<String> {
        Some(self.config.overlay_xattr(name))
    }

    fn with_options(&self, options: &[(String, Option<String>)]) -> Option<Box<dyn Layout>> {
        Some(Box::new(Overlay2::new(
            self.config.with_options(options.to_vec()),
        )))
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
        // Like Docker, every layer of every image lives in one store; a child image
        // adds its layers next to its base's.
        let store = base.map_or_else(|| root.to_path_buf(), |b| b.root.clone());
        let links = store.join("l");
        fs::create_dir_all(&links).map_err(LayoutError::io("creating", &links))?;
        let taken = fs::read_dir(&store)
            .map_err(LayoutError::io("reading", &store))?
            .count()
            - 1;
        let mut dirs: Vec<PathBuf> = base.map(|b| b.layer_dirs.clone()).unwrap_or_default();
        let mut shorts: Vec<String> = dirs
            .iter()
            .map(|d| short_name_of(d))
            .collect::<Result<_, _>>()?;
        for i in first..image.depth() {
            let n = taken + (i - first);
            let layer = store.join(format!("{n:064x}"));
            let short = format!("L{n:025}");
            let diff = layer.join("diff");
            for d in [&layer, &diff, &layer.join("work")] {
                fs::create_dir_all(d).map_err(LayoutError::io("creating", d))?;
            }
            fs::write(layer.join("link"), &short)
                .map_err(LayoutError::io("writing", &layer.join("link")))?;
            if !shorts.is_empty() {
                // Parents, topmost first, as short links: Docker's `lower` file.
                let lower: Vec<String> = shorts.iter().rev().map(|s| format!("l/{s}")).collect();
                fs::write(layer.join("lower"), lower.join(":"))
                    .map_err(LayoutError::io("writing", &layer.join("lower")))?;
            }
            let link = links.join(&short);
            std::os::unix::fs::symlink(
                Path::new("..").join(format!("{n:064x}")).join("diff"),
                &link,
            )
            .map_err(LayoutError::io("linking", &link))?;
            dirs.push(diff);
            shorts.push(short);
        }
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
        // The classic option string is one page: short links relative to the store
        // root keep it small (Docker's trick: `l/<26 chars>`, ~29 bytes a layer, so
        // ~128 layers fit); the new API takes full paths, one fsconfig call per layer.
        match self.config.mount_api {
            MountApi::Classic => {
                let lowers = image
                    .layer_dirs
                    .iter()
                    .rev()
                    .map(|d| short_name_of(d).map(|s| Path::new("l").join(s)))
                    .collect::<Result<Vec<_>, _>>()?;
                mount_container(&self.config, lowers, Some(image.root.clone()), c)
            }
            MountApi::New => {
                let lowers = image.layer_dirs.iter().rev().cloned().collect();
                mount_container(&self.config, lowers, None, c)
            }
        }
    }
}
