//! Docker's overlay2: one diff dir per layer holding only that layer's changes;
//! a container mounts all of them as lowers (topmost first) under its own upper.
//! The store has Docker's (and containers-storage's) shape: `<id>/diff`,
//! `<id>/link` (a short name), `<id>/lower` (parents as `l/<short>`, topmost
//! first), `<id>/work`, and `l/<short> -> ../<id>/diff`.

use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::host::{self, Cite, Note, OptionForm, StackProbe, StoreAdvice};
use super::{
    fsops, mount_overlay_spec, overlay_caps, overlay_container_dirs, spec, ContainerDirs, Feature,
    HostProfile, Layout, LayoutConfig, LayoutEntry, LayoutError, MountHost, MountSpec, Mounted,
    PreparedImage, Style, MAX_LOWER_LAYERS,
};
use crate::image::apply::{inherit_implicit_dirs, ApplyOptions, ApplyStats, WhiteoutStyle};
use crate::image::ImageSource;
use crate::isolate::{MountApi, MountHow};

/// One layer's place in the store: `<store>/<chain id hex>/{diff,link,lower,work}`.
struct Layer {
    id: String,
    dir: PathBuf,
    diff: PathBuf,
}

impl Layer {
    fn at(store: &Path, chain_id: &str) -> Layer {
        let id = fsops::digest_hex(chain_id).to_string();
        let dir = store.join(&id);
        Layer {
            diff: dir.join("diff"),
            dir,
            id,
        }
    }

    /// Written whole by an earlier import (`link` is written last).
    fn complete(&self) -> bool {
        self.dir.join("link").is_file()
    }

    /// Docker's 26-character short name (`l/<short>`), from the layer id: short
    /// and fixed in length, so a classic mount's option string stays small.
    fn short_name(&self) -> String {
        let mut s: String = self
            .id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_uppercase())
            .take(25)
            .collect();
        while s.len() < 25 {
            s.push('0');
        }
        format!("L{s}")
    }
}

/// The short link name of a layer's diff dir (`<store>/<id>/diff`): what
/// import wrote to `<id>/link` and linked as `l/<short>`, from the layer's id.
fn short_name_of(diff: &Path) -> Result<String, LayoutError> {
    let id = diff
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .ok_or_else(|| LayoutError::Store {
            path: diff.to_path_buf(),
            detail: "a layer's diff dir must be <store>/<layer id>/diff".into(),
        })?;
    Ok(Layer {
        id: id.to_string(),
        dir: PathBuf::new(),
        diff: PathBuf::new(),
    }
    .short_name())
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
    host: HostProfile {
        requires: &[Feature::MultipleLowers],
        probe: Some(StackProbe {
            name: "overlay2 mount",
            root_only: true,
            run: |at| host::probe_as_root(&ENTRY, at),
        }),
        notes: &[
            Note {
                text: "Docker's and containers-storage's overlay2 mounts the kernel's overlay with many lowers",
                cite: Cite::Unprobed(Feature::MultipleLowers),
            },
            Note {
                text: "its l/ short names fit {fit} layers in one {page}-byte page; Docker stops at 125 layers per \
                       image and its overlay2 at 128",
                cite: Cite::OptionPage(OptionForm::ShortLinks),
            },
        ],
        stores: StoreAdvice::Keep(
            "this host's images are in an overlay2 store ({layers} layers, {engine} engine): keep it; moving to \
             containerd's store means pulling every image again",
        ),
        ..HostProfile::rootful()
    },
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

    fn import(&self, store: &Path, image: &dyn ImageSource) -> Result<PreparedImage, LayoutError> {
        let opts = fsops::apply_options(
            &self.config,
            WhiteoutStyle::OverlayDiff {
                xattr_prefix: self.config.overlay_prefix(),
            },
        );
        import_store(ENTRY.name, store, image, &opts)
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
        // The classic option string is one page: short links relative to the store
        // root keep it small (Docker's trick: `l/<26 chars>`, ~29 bytes a layer, so
        // ~128 layers fit); the new API takes full paths, one fsconfig call per layer.
        Ok(match self.config.mount_api {
            MountApi::Classic => {
                let lowers = image
                    .layer_dirs
                    .iter()
                    .rev()
                    .map(|d| short_name_of(d).map(|s| Path::new("l").join(s)))
                    .collect::<Result<Vec<_>, _>>()?;
                spec::overlay(&self.config, lowers, Some(image.root.clone()), c)
            }
            MountApi::New => {
                let lowers = image.layer_dirs.iter().rev().cloned().collect();
                spec::overlay(&self.config, lowers, None, c)
            }
        })
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

/// Imports `image` into an overlay2-shaped store (Docker's and
/// containers-storage's: `<id>/diff`, `<id>/link`, `<id>/lower`, `<id>/work`,
/// `l/<short>`), applying each new layer with `opts` (whose whiteout style
/// names the overlay xattr namespace). Shared by every layout that stores
/// layers this way and differs only in how it mounts them.
pub(super) fn import_store(
    layout: &'static str,
    store: &Path,
    image: &dyn ImageSource,
    opts: &ApplyOptions,
) -> Result<PreparedImage, LayoutError> {
    let info = image.info();
    let depth = info.layers.len();
    if depth > MAX_LOWER_LAYERS {
        return Err(LayoutError::TooDeep {
            depth,
            limit: MAX_LOWER_LAYERS,
        });
    }
    // Like Docker, every layer of every image lives in one store, one dir per
    // layer named by its chain id; an image on the same base finds it there.
    let links = store.join("l");
    fs::create_dir_all(&links).map_err(LayoutError::io("creating", &links))?;
    let layers: Vec<Layer> = info
        .layers
        .iter()
        .map(|l| Layer::at(store, &l.chain_id))
        .collect();
    let new: Vec<usize> = (0..depth).filter(|&i| !layers[i].complete()).collect();
    for &i in &new {
        let l = &layers[i];
        if l.dir.exists() {
            // An import that died half way: its layer is not to be trusted.
            fs::remove_dir_all(&l.dir).map_err(LayoutError::io("removing", &l.dir))?;
        }
        for d in [&l.dir, &l.diff, &l.dir.join("work")] {
            fs::create_dir_all(d).map_err(LayoutError::io("creating", d))?;
        }
    }
    // Each layer is its own stream: write the new ones on every core.
    let stats: Vec<(usize, ApplyStats)> = new
        .par_iter()
        .map(|&i| Ok((i, fsops::apply(image, i, &layers[i].diff, opts)?)))
        .collect::<Result<_, LayoutError>>()?;
    // Directories a layer needed but did not list take the metadata of the
    // same directory below (as containerd does), once every diff exists.
    let diffs: Vec<PathBuf> = layers.iter().map(|l| l.diff.clone()).collect();
    let mut implicit: Vec<Vec<PathBuf>> = vec![Vec::new(); depth];
    for (i, st) in &stats {
        implicit[*i] = st.implicit_dirs.clone();
    }
    inherit_implicit_dirs(&diffs, &implicit)?;
    // The short links and parent lists last: `link` marks a layer complete.
    for &i in &new {
        let l = &layers[i];
        let short = l.short_name();
        let link = links.join(&short);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(Path::new("..").join(&l.id).join("diff"), &link)
                .map_err(LayoutError::io("linking", &link))?;
        }
        if i > 0 {
            // Parents, topmost first, as short links: Docker's `lower` file.
            let lower: Vec<String> = layers[..i]
                .iter()
                .rev()
                .map(|p| format!("l/{}", p.short_name()))
                .collect();
            let path = l.dir.join("lower");
            fs::write(&path, lower.join(":")).map_err(LayoutError::io("writing", &path))?;
        }
        let path = l.dir.join("link");
        fs::write(&path, &short).map_err(LayoutError::io("writing", &path))?;
    }
    let mut written: Vec<Option<ApplyStats>> = vec![None; depth];
    for (i, st) in stats {
        written[i] = Some(st);
    }
    Ok(PreparedImage {
        layout,
        root: store.to_path_buf(),
        layer_dirs: diffs,
        depth,
        chain_ids: info.layers.iter().map(|l| l.chain_id.clone()).collect(),
        written,
    })
}
