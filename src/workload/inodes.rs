//! inodes: exact inode and byte consumption per layout, phase by phase.
//!
//! Each layout gets a *fresh* filesystem of the run's backing kind (so counts never
//! mix), measured with `statvfs` after every phase: empty · shared base layers ·
//! all image layers · containers created · mounted · written · removed · images
//! removed. The last must equal the first (anything left is a leak and fails the
//! run). A walk counts entries by kind and is checked against the `statvfs` delta;
//! a difference is reported and explained (tmpfs charges one inode per hard link).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde_json::{json, Value};

use super::{Footprint, RunContext, Workload, WorkloadError, WorkloadKind};
use crate::capacity::UnitCosts;
use crate::image::{extend, generate, GeneratorParams, ImageShape, ImageSpec, NodeKind, SizeRange};
use crate::isolate::{FsUsage, Scratch, ScratchRequest};
use crate::layout::{Layout, LayoutKind, Mounted, PreparedImage};
use crate::measure::census::{census, Census};
use crate::measure::{fit_line, Stats};
use crate::report::{Case, Derived};

const NAME: &str = "inodes";

/// Phases after which the filesystem is measured, in order.
pub const PHASES: [&str; 8] = [
    "empty",
    "base-layers",
    "layers",
    "containers-created",
    "containers-mounted",
    "containers-written",
    "containers-removed",
    "images-removed",
];

/// Parameters of the inodes workload (and of `plan`'s own measurement).
#[derive(Debug, Clone, serde::Serialize)]
pub struct InodesPlan {
    /// Layers per image, swept.
    pub layers: Vec<usize>,
    /// Images in the set.
    pub images: usize,
    /// Percent of each image's layers that are the shared base.
    pub shared_pct: u32,
    /// Containers per image.
    pub containers: usize,
    /// Files added or modified per layer.
    pub files_per_layer: usize,
    /// Directories added per layer.
    pub dirs_per_layer: usize,
    /// Largest file, bytes (sizes are log-uniform from 0).
    pub max_file_bytes: u64,
    /// Files each container modifies (copy_up).
    pub writes: usize,
    /// Files each container creates.
    pub new_files: usize,
    /// Files each container deletes (whiteouts in its upper).
    pub deletes: usize,
    /// Image seed.
    pub seed: u64,
}

impl InodesPlan {
    /// Layers of each image that belong to the shared base.
    pub fn base_layers(&self, layers: usize) -> usize {
        layers * self.shared_pct as usize / 100
    }

    fn shape(&self, layers: usize, seed: u64) -> Option<ImageShape> {
        (layers > 0).then(|| {
            ImageShape::try_from(GeneratorParams {
                seed,
                layers,
                files_per_layer: self.files_per_layer,
                dirs_per_layer: self.dirs_per_layer,
                sizes: SizeRange {
                    min_bytes: 0,
                    max_bytes: self.max_file_bytes,
                },
                modify_pct: 10,
                delete_pct: 5,
                opaque_pct: 5,
                symlink_pct: 5,
            })
            .ok()
        })?
    }

    /// The shared base and the images built on it, for images of `layers` layers.
    pub fn image_set(&self, layers: usize) -> (ImageSpec, Vec<ImageSpec>) {
        let base_layers = self.base_layers(layers);
        let base = self
            .shape(base_layers, self.seed)
            .map(|s| generate(&s))
            .unwrap_or_default();
        let images = (0..self.images)
            .map(
                |i| match self.shape(layers - base_layers, self.seed + 1 + i as u64) {
                    Some(s) => extend(&base, &s),
                    None => base.clone(),
                },
            )
            .collect();
        (base, images)
    }

    /// A generous estimate of inodes a layout may need (sizes the fresh fs).
    pub fn estimate_inodes(&self, layers: usize) -> u64 {
        let per_layer = (self.files_per_layer + self.dirs_per_layer) as u64;
        let l = layers as u64;
        let flat = l * per_layer * self.images as u64 * (1 + self.containers as u64);
        // The legacy driver re-creates every directory in every layer.
        let legacy = self.images as u64 * l * l * self.dirs_per_layer as u64;
        2 * (flat + legacy) + 10_000
    }

    /// A generous estimate of bytes a layout may need.
    pub fn estimate_bytes(&self, layers: usize) -> u64 {
        let files = (layers * self.files_per_layer * self.images * (self.containers + 2)) as u64;
        files * (self.max_file_bytes / 4 + 4096)
            + (self.estimate_inodes(layers) * 4096) / 4
            + (128 << 20)
    }
}

/// Per phase: its name, the statvfs figures and the walk census.
pub type PhaseTable = Vec<(&'static str, FsUsage, Census)>;

/// One phase's figures.
#[derive(Debug, Clone)]
struct PhaseResult {
    phase: &'static str,
    usage: FsUsage,
    census: Census,
}

/// Per-unit costs from one image set's phases: the shared base (stored once),
/// each image's own layers, each container (created + mounted + written).
pub fn unit_costs(p: &InodesPlan, phases: &PhaseTable) -> Option<UnitCosts> {
    let at = |name: &str| {
        phases
            .iter()
            .find(|(ph, _, _)| *ph == name)
            .map(|(_, u, _)| *u)
    };
    let (e, b, a, w) = (
        at("empty")?,
        at("base-layers")?,
        at("layers")?,
        at("containers-written")?,
    );
    let d = |x: u64, y: u64| x as f64 - y as f64;
    let images = p.images.max(1) as f64;
    let containers = (p.images * p.containers).max(1) as f64;
    Some(UnitCosts {
        shared_base_inodes: d(b.used_inodes, e.used_inodes),
        per_image_inodes: d(a.used_inodes, b.used_inodes) / images,
        per_container_inodes: d(w.used_inodes, a.used_inodes) / containers,
        shared_base_bytes: d(b.used_bytes, e.used_bytes),
        per_image_bytes: d(a.used_bytes, b.used_bytes) / images,
        per_container_bytes: d(w.used_bytes, a.used_bytes) / containers,
    })
}

/// Measures `plan`'s per-unit costs for each layout, each on a fresh scratch
/// filesystem made from `request` (what `overlaybench plan` does without --from).
pub fn measure_costs(
    plan: &InodesPlan,
    layouts: &[Box<dyn Layout>],
    request: &ScratchRequest,
) -> Result<BTreeMap<String, UnitCosts>, WorkloadError> {
    let layers = plan.layers.first().copied().unwrap_or(1);
    let mut out = BTreeMap::new();
    for layout in layouts {
        let fresh = Scratch::create(&ScratchRequest {
            fs_size_bytes: plan.estimate_bytes(layers).max(512 << 20),
            inodes: Some(plan.estimate_inodes(layers)),
            planned_bytes: plan.estimate_bytes(layers),
            ..request.clone()
        })?;
        let phases = measure_phases(layout.as_ref(), &fresh, plan, layers)?;
        if let Some(c) = unit_costs(plan, &phases) {
            out.insert(layout.kind().name().to_string(), c);
        }
    }
    Ok(out)
}

/// The inodes workload.
pub struct Inodes {
    plan: InodesPlan,
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> WorkloadError {
    let msg = format!("{what} {}", path.display());
    move |e| WorkloadError::Failed(format!("{msg}: {e}"))
}

/// Runs every phase of one image set on `scratch` with `layout`.
pub fn measure_phases(
    layout: &dyn Layout,
    scratch: &Scratch,
    plan: &InodesPlan,
    layers: usize,
) -> Result<PhaseTable, WorkloadError> {
    let root = scratch.path();
    let measure = |phase: &'static str| -> Result<PhaseResult, WorkloadError> {
        let f = File::open(root).map_err(io_err("opening", root))?;
        nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f))
            .map_err(|e| io_err("syncfs", root)(e.into()))?;
        Ok(PhaseResult {
            phase,
            usage: scratch.usage()?,
            census: census(root).map_err(io_err("walking", root))?,
        })
    };
    let mut out = vec![measure("empty")?];
    let (base, images) = plan.image_set(layers);
    let work = root.join(NAME);
    let shares = layout.kind() != LayoutKind::Plain && base.depth() > 0;
    let base_img = if shares {
        Some(layout.prepare(&base, &work.join("base"))?)
    } else {
        None
    };
    out.push(measure("base-layers")?);
    let mut prepared: Vec<PreparedImage> = Vec::new();
    for (i, img) in images.iter().enumerate() {
        prepared.push(layout.prepare_on(
            base_img.as_ref(),
            img,
            &work.join(format!("image-{i}")),
        )?);
    }
    out.push(measure("layers")?);
    let mut containers = Vec::new();
    for (i, img) in prepared.iter().enumerate() {
        for j in 0..plan.containers {
            containers.push((
                i,
                layout.create_container(img, &work.join(format!("ctr-{i}-{j}")))?,
            ));
        }
    }
    out.push(measure("containers-created")?);
    let mut mounted: Vec<Mounted> = Vec::new();
    for (i, c) in &containers {
        mounted.push(layout.mount(&prepared[*i], c)?);
    }
    out.push(measure("containers-mounted")?);
    for ((i, _), m) in containers.iter().zip(&mounted) {
        write_container(&m.merged, &images[*i], plan)?;
    }
    out.push(measure("containers-written")?);
    for m in mounted {
        m.unmount()?;
    }
    for (_, c) in &containers {
        fs::remove_dir_all(&c.root).map_err(io_err("removing", &c.root))?;
    }
    out.push(measure("containers-removed")?);
    fs::remove_dir_all(&work).map_err(io_err("removing", &work))?;
    out.push(measure("images-removed")?);
    Ok(out
        .into_iter()
        .map(|p| (p.phase, p.usage, p.census))
        .collect())
}

/// A container's writes: modify (copy_up), create, delete — spread over the image.
pub fn write_container(
    merged: &Path,
    image: &ImageSpec,
    plan: &InodesPlan,
) -> Result<(), WorkloadError> {
    let tree = image.flatten();
    let files: Vec<&Path> = tree
        .nodes
        .iter()
        .filter(|(_, n)| matches!(n.kind, NodeKind::File { .. }))
        .map(|(p, _)| p.as_path())
        .collect();
    let step = |n: usize| (files.len() / n.max(1)).max(1);
    for p in files.iter().step_by(step(plan.writes)).take(plan.writes) {
        let path = merged.join(p);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.write_at(b"w", 0).map(drop))
            .map_err(io_err("writing", &path))?;
    }
    for p in files
        .iter()
        .skip(1)
        .step_by(step(plan.deletes))
        .take(plan.deletes)
    {
        let path = merged.join(p);
        match fs::remove_file(&path) {
            // Already modified-then-deleted or gone with a parent: fine.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            r => r.map_err(io_err("deleting", &path))?,
        }
    }
    for j in 0..plan.new_files {
        let path = merged.join(format!("container-new-{j}"));
        fs::write(&path, vec![b'n'; 4096]).map_err(io_err("creating", &path))?;
    }
    Ok(())
}

impl Inodes {
    /// With these parameters.
    pub fn new(plan: InodesPlan) -> Self {
        Inodes { plan }
    }
}

impl Workload for Inodes {
    fn kind(&self) -> WorkloadKind {
        WorkloadKind::Inodes
    }

    fn footprint(&self, _layouts: usize) -> Footprint {
        let l = self.plan.layers.iter().copied().max().unwrap_or(1);
        Footprint {
            bytes: self.plan.estimate_bytes(l),
            inodes: self.plan.estimate_inodes(l),
        }
    }

    fn steps(&self, layouts: &[LayoutKind]) -> u64 {
        (layouts.len() * self.plan.layers.len()) as u64
    }

    fn run(&self, ctx: &mut RunContext<'_>) -> Result<(), WorkloadError> {
        let p = &self.plan;
        ctx.progress.set_message("inodes: materialising image sets");
        let mut results: BTreeMap<(LayoutKind, usize), PhaseTable> = BTreeMap::new();
        for &layers in &p.layers {
            for layout in ctx.layouts {
                ctx.check_interrupted()?;
                let fresh = Scratch::create(&ScratchRequest {
                    fs_size_bytes: p.estimate_bytes(layers).max(512 << 20),
                    inodes: Some(p.estimate_inodes(layers)),
                    planned_bytes: p.estimate_bytes(layers),
                    ..ctx.scratch.request().clone()
                })?;
                let phases = measure_phases(layout.as_ref(), &fresh, p, layers)?;
                drop(fresh);
                let (empty, last) = (phases[0].1, phases[phases.len() - 1].1);
                if last.used_inodes != empty.used_inodes {
                    return Err(WorkloadError::Failed(format!(
                        "{} on {}: {} inodes still used after removing everything (empty fs: {}) — a leak",
                        layout.kind(),
                        ctx.backing,
                        last.used_inodes,
                        empty.used_inodes
                    )));
                }
                results.insert((layout.kind(), layers), phases);
                ctx.progress.inc(1);
            }
        }
        record(ctx, p, &results);
        Ok(())
    }
}

fn params(
    ctx: &RunContext<'_>,
    p: &InodesPlan,
    layers: usize,
    extra: &[(&str, Value)],
) -> BTreeMap<String, Value> {
    let mut m: BTreeMap<String, Value> = [
        ("backing", json!(ctx.backing)),
        ("layers", json!(layers)),
        ("base_layers", json!(p.base_layers(layers))),
        ("images", json!(p.images)),
        ("containers", json!(p.containers)),
        ("files_per_layer", json!(p.files_per_layer)),
        ("dirs_per_layer", json!(p.dirs_per_layer)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in extra {
        m.insert(k.to_string(), v.clone());
    }
    m
}

fn single(v: f64) -> (Vec<f64>, Stats) {
    let s = vec![v];
    let stats = Stats::compute(&s).unwrap_or(Stats {
        n: 1,
        min: v,
        max: v,
        median: v,
        mean: v,
        p95: v,
        p99: v,
        stddev: 0.0,
        mad: 0.0,
        cv: 0.0,
        outliers: 0,
    });
    (s, stats)
}

fn record(
    ctx: &mut RunContext<'_>,
    p: &InodesPlan,
    results: &BTreeMap<(LayoutKind, usize), PhaseTable>,
) {
    let mut growth: BTreeMap<LayoutKind, Vec<(f64, f64)>> = BTreeMap::new();
    let mut gaps = Vec::new();
    let mut hidden_whiteouts_seen = false;
    for ((layout, layers), phases) in results {
        let (layout, layers) = (*layout, *layers);
        let at = |name: &str| {
            phases
                .iter()
                .find(|(ph, _, _)| *ph == name)
                .map(|(_, u, c)| (*u, *c))
        };
        let Some((empty, empty_census)) = at("empty") else {
            continue;
        };
        for (phase, usage, c) in phases {
            for (metric, unit, v) in [
                ("used_inodes", "inodes", usage.used_inodes as f64),
                ("used_bytes", "bytes", usage.used_bytes as f64),
                ("walk_inodes", "inodes", c.distinct_inodes as f64),
                ("walk_dirs", "entries", c.dirs as f64),
                ("walk_files", "entries", c.files as f64),
                ("walk_whiteouts", "entries", c.whiteouts as f64),
                ("walk_symlinks", "entries", c.symlinks as f64),
                ("walk_hardlink_paths", "entries", c.hardlink_paths as f64),
            ] {
                let (samples, stats) = single(v);
                ctx.out.cases.push(Case {
                    id: String::new(),
                    workload: NAME.into(),
                    layout: layout.name().into(),
                    params: params(ctx, p, layers, &[("phase", json!(phase))]),
                    metric: metric.into(),
                    unit: unit.into(),
                    samples,
                    stats,
                });
            }
            let statvfs_delta = usage.used_inodes as i64 - empty.used_inodes as i64;
            let walk_delta = c.distinct_inodes as i64 - empty_census.distinct_inodes as i64;
            let mounted_now = matches!(*phase, "containers-mounted" | "containers-written");
            let n_mounted = (p.images * p.containers) as i64;
            if mounted_now && layout != LayoutKind::Plain && statvfs_delta - walk_delta == n_mounted
            {
                // Each mounted overlay holds exactly one inode a walk cannot find
                // (kept in its workdir while mounted, freed at unmount): measured,
                // explained in a note, not reported as a gap.
                hidden_whiteouts_seen = true;
                continue;
            }
            if statvfs_delta != walk_delta && *phase != "images-removed" {
                gaps.push(format!(
                    "{layout} ({layers} layers) after {phase}: statvfs counts {statvfs_delta} inodes, the walk {walk_delta} \
                     distinct inodes in {} paths ({} hard-link paths)",
                    c.files + c.dirs + c.symlinks + c.whiteouts + c.other,
                    c.hardlink_paths
                ));
            }
        }
        let (Some(costs), Some((all, _))) = (unit_costs(p, phases), at("layers")) else {
            continue;
        };
        let stored_layers = if layout == LayoutKind::Plain {
            p.images * layers
        } else {
            p.base_layers(layers) + p.images * (layers - p.base_layers(layers))
        }
        .max(1);
        for (resource, per_layer, base, image, container) in [
            (
                "inodes",
                (all.used_inodes as f64 - empty.used_inodes as f64) / stored_layers as f64,
                costs.shared_base_inodes,
                costs.per_image_inodes,
                costs.per_container_inodes,
            ),
            (
                "bytes",
                (all.used_bytes as f64 - empty.used_bytes as f64) / stored_layers as f64,
                costs.shared_base_bytes,
                costs.per_image_bytes,
                costs.per_container_bytes,
            ),
        ] {
            for (quantity, value) in [
                ("shared-base", base),
                ("image", image),
                ("layer", per_layer),
                ("container", container),
            ] {
                ctx.out.derived.push(Derived {
                    workload: NAME.into(),
                    layout: layout.name().into(),
                    kind: "per-unit".into(),
                    params: params(
                        ctx,
                        p,
                        layers,
                        &[("quantity", json!(quantity)), ("resource", json!(resource))],
                    ),
                    value,
                    unit: format!("{resource}/{quantity}"),
                    r2: None,
                    intercept: None,
                    n: 1,
                    ..Default::default()
                });
            }
        }
        growth.entry(layout).or_default().push((
            layers as f64,
            all.used_inodes as f64 - empty.used_inodes as f64,
        ));
    }
    for (layout, pts) in growth {
        if let Some(fit) = fit_line(&pts) {
            let mut params = params(
                ctx,
                p,
                0,
                &[("resource", json!("inodes")), ("phase", json!("layers"))],
            );
            params.remove("layers");
            params.remove("base_layers");
            ctx.out.derived.push(Derived {
                workload: NAME.into(),
                layout: layout.name().into(),
                kind: "slope".into(),
                params,
                value: fit.slope,
                unit: "inodes/layer-per-image".into(),
                r2: Some(fit.r2),
                intercept: Some(fit.intercept),
                n: fit.n,
                ..Default::default()
            });
        }
    }
    if hidden_whiteouts_seen {
        ctx.out.notes.push(format!(
            "{}: while mounted, each overlay container uses exactly one inode more than a walk finds (one the kernel \
             keeps in the container's workdir, unreachable by path; it is gone after unmount); it is counted in the \
             per-container cost",
            ctx.backing
        ));
    }
    if !gaps.is_empty() {
        let why = if ctx.backing == "tmpfs" {
            "tmpfs charges one inode per hard link (and per whiteout/dir entry it pins), so the legacy layout's \
             hard-link farm counts far higher there than on ext4"
        } else {
            "filesystem metadata the walk cannot see (e.g. overlay's index/work entries, xfs inode chunks) or \
             entries on other mounts"
        };
        ctx.out.notes.push(format!(
            "{}: statvfs and the walk disagree — {why}: {}",
            ctx.backing,
            gaps.join("; ")
        ));
    }
}
