//! import's measurement: each image converted into every layout's store, layer
//! by layer (the store already holding the layers below, as a pull that adds
//! one layer to an image the host has), then whole into a fresh store; the
//! writeback after each is timed apart. Beside the layouts, the reference:
//! `mkfs.erofs` alone on each layer already unpacked in overlay form.

use std::fs;
use std::path::Path;
use std::time::Instant;

use super::keys::{Metric, Reading, Scope, NAME};
use super::params::Params;
use crate::image::apply::{apply_layer, ApplyOptions, DevicePolicy, WhiteoutStyle};
use crate::image::{ImageInfo, ImageSource, SyntheticImage};
use crate::isolate::mkfs_erofs;
use crate::workload::harness::settle;
use crate::workload::{RunContext, WorkloadError};

/// The first layers of an image, as an image of their own (same chain ids, so
/// a store that holds them finds them).
struct Prefix<'a> {
    src: &'a dyn ImageSource,
    info: ImageInfo,
}

impl<'a> Prefix<'a> {
    fn new(src: &'a dyn ImageSource, layers: usize) -> Prefix<'a> {
        let mut info = src.info().clone();
        info.layers.truncate(layers);
        Prefix { src, info }
    }
}

impl ImageSource for Prefix<'_> {
    fn info(&self) -> &ImageInfo {
        &self.info
    }

    fn visit_layer(
        &self,
        index: usize,
        sink: &mut dyn crate::image::EntrySink,
    ) -> Result<(), crate::image::ImageError> {
        self.src.visit_layer(index, sink)
    }
}

fn remove(dir: &Path) -> Result<(), WorkloadError> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(WorkloadError::io("removing", dir)(e))
        }
        _ => Ok(()),
    }
}

/// Converts the synthetic image and every `--image` into every layout,
/// appending readings as they come (an interrupt keeps them).
pub fn measure(
    p: &Params,
    ctx: &mut RunContext<'_>,
    with_reference: bool,
    readings: &mut Vec<Reading>,
) -> Result<(), WorkloadError> {
    let root = ctx.scratch.path().join(NAME);
    let synthetic = SyntheticImage::new(
        "import",
        p.image()
            .map_err(|e| WorkloadError::Verify(e.to_string()))?,
    );
    let mut images: Vec<&dyn ImageSource> = vec![&synthetic];
    images.extend(ctx.images.iter().map(|i| i.source().as_ref()));
    for (ii, src) in images.into_iter().enumerate() {
        let n = src.info().layers.len();
        let dir = root.join(format!("image-{ii}"));
        // Layer by layer, the layouts interleaved at each layer.
        for k in 0..n {
            for (li, layout) in ctx.layouts.iter().enumerate() {
                ctx.check_interrupted()?;
                ctx.progress.set_message(format!(
                    "import: {} layer {}/{n} of {}",
                    layout.name(),
                    k + 1,
                    src.info().reference
                ));
                let store = dir.join(layout.name()).join("layered");
                let prefix = Prefix::new(src, k + 1);
                let start = Instant::now();
                let img = layout.import(&store, &prefix)?;
                let import_ns = start.elapsed().as_nanos() as f64;
                let start = Instant::now();
                settle(&root)?;
                let writeback_ns = start.elapsed().as_nanos() as f64;
                let bytes = img
                    .written
                    .get(k)
                    .and_then(|w| w.as_ref())
                    .map_or(0, |w| w.bytes);
                for (metric, value) in [
                    (Metric::Import, import_ns),
                    (Metric::Writeback, writeback_ns),
                ] {
                    readings.push(Reading {
                        layout: Some(li),
                        image: ii,
                        scope: Scope::Layer(k),
                        metric,
                        value,
                        layer_bytes: Some(bytes),
                    });
                }
            }
            if ii == 0 {
                ctx.progress.inc(1);
            }
        }
        // The whole image into a fresh store: what a first pull costs, with the
        // layout's own parallelism across layers.
        for (li, layout) in ctx.layouts.iter().enumerate() {
            ctx.check_interrupted()?;
            let store = dir.join(layout.name()).join("whole");
            let start = Instant::now();
            layout.import(&store, src)?;
            let import_ns = start.elapsed().as_nanos() as f64;
            let start = Instant::now();
            settle(&root)?;
            let writeback_ns = start.elapsed().as_nanos() as f64;
            for (metric, value) in [
                (Metric::Import, import_ns),
                (Metric::Writeback, writeback_ns),
            ] {
                readings.push(Reading {
                    layout: Some(li),
                    image: ii,
                    scope: Scope::Image,
                    metric,
                    value,
                    layer_bytes: None,
                });
            }
            remove(&dir.join(layout.name()))?;
        }
        if with_reference {
            match reference_refuses(ctx, ii, &root)? {
                Some(why) => ctx.out.note(format!(
                    "{}: import's mkfs.erofs reference skipped for {}: {why}; the layouts' rows are unaffected",
                    ctx.backing,
                    src.info().reference
                )),
                None => reference(src, &dir.join(REFERENCE_DIR), ii, ctx, readings)?,
            }
        }
        remove(&dir)?;
    }
    Ok(())
}

const REFERENCE_DIR: &str = "reference";

/// Why `mkfs.erofs` cannot convert image `image` (0 = the synthetic one), if
/// it cannot: erofs-utils 1.5 fails on a name of 255 bytes (Linux's
/// NAME_MAX, which a valid image may use) with "No such file or directory".
/// Probed on a dir of one such name, only for images that hold one.
fn reference_refuses(
    ctx: &RunContext<'_>,
    image: usize,
    root: &Path,
) -> Result<Option<String>, WorkloadError> {
    let Some(indexed) = image.checked_sub(1).and_then(|i| ctx.images.get(i)) else {
        return Ok(None);
    };
    let index = indexed
        .index()
        .map_err(|e| WorkloadError::Verify(e.to_string()))?;
    let longest = index
        .paths()
        .filter_map(|(p, _)| p.file_name())
        .map(|n| n.len())
        .max()
        .unwrap_or(0);
    if longest < 255 {
        return Ok(None);
    }
    let probe = root.join("name-max-probe");
    let names = probe.join("d");
    fs::create_dir_all(&names).map_err(WorkloadError::io("creating", &names))?;
    let name = names.join("n".repeat(255));
    fs::write(&name, b"").map_err(WorkloadError::io("writing", &name))?;
    let made = mkfs_erofs(&probe.join("probe.erofs"), &names, &[]);
    remove(&probe)?;
    Ok(made.err().map(|e| {
        format!("this mkfs.erofs cannot store a 255-byte name, which the image holds ({e})")
    }))
}

/// `mkfs.erofs` alone on each layer, unpacked beforehand in overlay form (not
/// timed): the conversion containerd's snapshotter runs for a layer applied
/// into a dir (this mkfs.erofs has no `--tar` to read the layer tar itself).
fn reference(
    src: &dyn ImageSource,
    dir: &Path,
    image: usize,
    ctx: &RunContext<'_>,
    readings: &mut Vec<Reading>,
) -> Result<(), WorkloadError> {
    let root = !crate::isolate::in_user_namespace() && nix::unistd::geteuid().is_root();
    let opts = ApplyOptions {
        style: WhiteoutStyle::OverlayDiff {
            xattr_prefix: if root {
                "trusted.overlay."
            } else {
                "user.overlay."
            },
        },
        devices: if root {
            DevicePolicy::Create
        } else {
            DevicePolicy::SkipAndCount
        },
        owners: root,
    };
    for k in 0..src.info().layers.len() {
        ctx.check_interrupted()?;
        let diff = dir.join(format!("d{k}"));
        fs::create_dir_all(&diff).map_err(WorkloadError::io("creating", &diff))?;
        let stats = apply_layer(src, k, &diff, &opts).map_err(crate::layout::LayoutError::from)?;
        settle(dir)?;
        let out = dir.join(format!("l{k}.erofs"));
        let elapsed = mkfs_erofs(&out, &diff, &[])?;
        readings.push(Reading {
            layout: None,
            image,
            scope: Scope::Layer(k),
            metric: Metric::Import,
            value: elapsed.as_nanos() as f64,
            layer_bytes: Some(stats.bytes),
        });
        remove(&diff)?;
        fs::remove_file(&out).map_err(WorkloadError::io("removing", &out))?;
    }
    Ok(())
}
