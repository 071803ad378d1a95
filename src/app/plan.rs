//! `overlaybench plan`: a capacity projection per layout, from per-unit costs
//! read from an inodes report or measured now on fresh scratch filesystems —
//! of a synthetic fleet, or of copies of the user's own images (`--image`),
//! from what each of their layers really costs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::AppError;
use crate::capacity::images::{self as cap_images, ImageDemand};
use crate::capacity::{self, Filesystem, Fleet, PlanReport};
use crate::image::source::{self, ImageRef, OpenOptions};
use crate::image::IndexedImage;
use crate::input::{canonical_existing, canonical_for_creation};
use crate::isolate::{BackingKind, Privilege, ScratchRequest};
use crate::layout::{self, LayoutConfig, MAX_LOWER_LAYERS};
use crate::report::{self, fmt_bytes, OutDir};
use crate::workload::{self, ParamError};

/// The filesystem a plan fills.
#[derive(Debug, Clone)]
pub enum Target {
    /// An existing path: its free space and inodes (statvfs).
    Path(PathBuf),
    /// A size, with ext4's inode ratio unless an inode count is given.
    Size {
        /// Bytes.
        bytes: u64,
        /// Inodes, when given.
        inodes: Option<u64>,
    },
}

/// What the user asked `plan` for, before validation.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    /// The fleet's shape (validated here).
    pub fleet: Fleet,
    /// The filesystem to fill.
    pub target: Target,
    /// Costs from this report instead of measuring.
    pub from: Option<PathBuf>,
    /// Backing the costs are measured on (and must match in `from`).
    pub backing: String,
    /// Layout names.
    pub layouts: Vec<String>,
    /// Where measurement scratch filesystems are made.
    pub scratch: PathBuf,
    /// Output folder.
    pub out: Option<PathBuf>,
    /// Replace a plan already in `out`.
    pub force: bool,
    /// Image seed.
    pub seed: u64,
    /// The user's images (`--image`): plan for copies of them instead of a synthetic fleet.
    pub images: Vec<String>,
    /// How to open them.
    pub image_options: OpenOptions,
    /// Images of each one's shape (`--count`): one value for all, or one per image.
    pub counts: Vec<u64>,
    /// Bottom layers the copies of each share (`--shared-layers`): one value
    /// for all, or one per image; default: the layers it shares with the
    /// other images given (by chain id), else none.
    pub shared_layers: Vec<usize>,
}

/// One of the user's images in a plan: its reference, and how many copies.
#[derive(Debug, Clone)]
pub struct PlannedImage {
    /// The reference, parsed.
    pub reference: ImageRef,
    /// Images of its shape.
    pub copies: u64,
    /// Bottom layers the copies share; `None` = decided from the images once opened.
    pub shared_layers: Option<usize>,
}

/// A validated plan request.
#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// The fleet.
    pub fleet: Fleet,
    /// The filesystem to fill, resolved.
    pub filesystem: Filesystem,
    /// Costs from this report instead of measuring (canonical).
    pub from: Option<PathBuf>,
    /// `from` as the user spelled it, for what the plan says it used.
    pub from_shown: Option<String>,
    /// Backing of the costs.
    pub backing: BackingKind,
    /// Layouts.
    pub layouts: Vec<&'static str>,
    /// Where measurement scratch filesystems are made.
    pub scratch: PathBuf,
    /// Output folder (claimed when the plan is written).
    pub out: OutDir,
    /// Image seed.
    pub seed: u64,
    /// The user's images, when the plan is for them.
    pub images: Vec<PlannedImage>,
    /// How to open them.
    pub image_options: OpenOptions,
}

/// `values` spread over `n` images: none (all `default`), one for all, or one each.
fn per_image<T: Clone>(values: &[T], n: usize, flag: &str) -> Result<Vec<Option<T>>, AppError> {
    match values.len() {
        0 => Ok(vec![None; n]),
        1 => Ok(vec![Some(values[0].clone()); n]),
        k if k == n => Ok(values.iter().cloned().map(Some).collect()),
        k => Err(AppError::Usage(format!(
            "{k} {flag} values for {n} --image: give one {flag} for all images, or one per --image, in order"
        ))),
    }
}

impl TryFrom<PlanRequest> for PlanConfig {
    type Error = AppError;

    fn try_from(r: PlanRequest) -> Result<Self, AppError> {
        let f = &r.fleet;
        if f.layers == 0 || f.layers > MAX_LOWER_LAYERS {
            return Err(ParamError::range(
                "--layers",
                f.layers,
                "use layers between 1 and 500 (the kernel's lower-layer limit)",
            )
            .into());
        }
        if f.images == 0 {
            return Err(ParamError::range("--images", 0, "at least 1").into());
        }
        if f.shared_pct > 100 {
            return Err(
                ParamError::range("--shared-pct", f.shared_pct, "a percent from 0 to 100").into(),
            );
        }
        let backing = r.backing.parse::<BackingKind>().map_err(AppError::Usage)?;
        if r.images.is_empty() && !(r.counts.is_empty() && r.shared_layers.is_empty()) {
            return Err(AppError::Usage(
                "--count and --shared-layers describe copies of an --image SRC; give the image"
                    .into(),
            ));
        }
        let refs = crate::workload::dedup_keep_order(&r.images);
        let counts = per_image(&r.counts, refs.len(), "--count")?;
        let shared = per_image(&r.shared_layers, refs.len(), "--shared-layers")?;
        let images = refs
            .iter()
            .zip(counts.into_iter().zip(shared))
            .map(|(given, (count, shared))| {
                let copies = count.unwrap_or(1);
                if copies == 0 {
                    return Err(AppError::Usage(format!(
                        "--count 0 for {given}: give at least 1"
                    )));
                }
                Ok(PlannedImage {
                    reference: ImageRef::parse(given)?,
                    copies,
                    shared_layers: shared,
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        let layouts = r
            .layouts
            .iter()
            .map(|n| {
                layout::entry(n).map(|e| e.name).ok_or_else(|| {
                    AppError::Usage(format!(
                        "unknown layout '{n}'; choose from {}",
                        layout::names().join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let filesystem = match &r.target {
            Target::Path(p) => {
                let p = canonical_existing("--path", p)?;
                capacity::filesystem_at(&p).map_err(AppError::io("reading free space of", &p))?
            }
            Target::Size { bytes, .. } if *bytes == 0 => {
                return Err(ParamError::range(
                    "--fs-size",
                    0,
                    "the filesystem to fill must have a size; use e.g. --fs-size 100G",
                )
                .into())
            }
            Target::Size {
                inodes: Some(0), ..
            } => return Err(ParamError::range("--fs-inodes", 0, "at least 1").into()),
            Target::Size { bytes, inodes } => {
                let mut fs = capacity::ext4_defaults(*bytes);
                if let Some(n) = inodes {
                    fs.available_inodes = *n;
                    fs.source = format!("{bytes} bytes, {n} inodes (given)");
                }
                fs
            }
        };
        let sized = matches!(r.target, Target::Size { .. });
        if filesystem.available_bytes == 0 || (sized && filesystem.available_inodes == 0) {
            return Err(AppError::Usage(format!(
                "{} has no room (bytes {}, inodes {}): nothing fits; name a larger filesystem",
                filesystem.source, filesystem.available_bytes, filesystem.available_inodes
            )));
        }
        let from = match &r.from {
            Some(f) => Some(canonical_existing("--from", f)?),
            None => None,
        };
        let backing = match backing {
            BackingKind::Dir(p) => BackingKind::Dir(canonical_existing("--backing dir:", &p)?),
            b => b,
        };
        let out = match &r.out {
            Some(p) => OutDir::Given {
                path: canonical_for_creation("--out", p)?,
                force: r.force,
            },
            None => OutDir::Fresh {
                parent: canonical_for_creation("--out", Path::new("reports"))?,
                prefix: "plan-",
            },
        };
        out.check("--out").map_err(AppError::Usage)?;
        Ok(PlanConfig {
            fleet: r.fleet,
            filesystem,
            from,
            from_shown: r.from.as_ref().map(|f| f.display().to_string()),
            backing,
            layouts,
            scratch: canonical_for_creation("--scratch", &r.scratch)?,
            out,
            seed: r.seed,
            images,
            image_options: r.image_options,
        })
    }
}

/// What `plan` made.
#[derive(Debug)]
pub struct PlanOutcome {
    /// plan.json's content.
    pub report: PlanReport,
    /// Where plan.json and plan.svg were written.
    pub out: PathBuf,
}

/// Projects the fleet. Measuring needs `privilege` (the caller entered the
/// private namespace); with `from` it reads costs only.
pub fn plan(cfg: &PlanConfig, privilege: Option<Privilege>) -> Result<PlanOutcome, AppError> {
    let backing = cfg.backing.to_string();
    let source = workload::cost_source()
        .ok_or_else(|| AppError::Usage("no registered workload measures per-unit costs".into()))?;
    if !cfg.images.is_empty() {
        let report = plan_images(cfg, privilege, source)?;
        return write_plan(cfg, report);
    }
    let mut notes = Vec::new();
    let (costs, costs_source) = match (&cfg.from, privilege) {
        (Some(from), _) => {
            let report = report::read_report(from)?;
            let costs = source.read_from_report(&report, &cfg.fleet, &backing)?;
            for (layout, c) in &costs {
                c.check(layout)
                    .map_err(|e| AppError::Usage(format!("{}: {e}", from.display())))?;
            }
            notes = workload::plan_notes(&report, &cfg.fleet, &backing);
            let shown = cfg
                .from_shown
                .clone()
                .unwrap_or_else(|| from.display().to_string());
            (costs, format!("inodes results in {shown}"))
        }
        (None, Some(privilege)) => {
            let layouts = plan_layouts(cfg, privilege)?;
            let like = ScratchRequest {
                root: cfg.scratch.clone(),
                kind: cfg.backing.clone(),
                planned_bytes: 0,
                fs_size_bytes: 0,
                inodes: None,
            };
            let costs = source.measure(&cfg.fleet, cfg.seed, &layouts, &like)?;
            (
                costs,
                format!("measured now: 2 images of this shape on a fresh {backing} per layout"),
            )
        }
        (None, None) => {
            return Err(AppError::Usage(
                "measuring costs needs the private mount namespace; the caller must enter it"
                    .into(),
            ))
        }
    };
    let report = PlanReport {
        schema_version: 1,
        kind: "plan".into(),
        layouts: capacity::project(&cfg.fleet, &cfg.filesystem, &costs)
            .map_err(|e| AppError::Usage(e.to_string()))?,
        fleet: Some(cfg.fleet.clone()),
        images: Vec::new(),
        filesystem: cfg.filesystem.clone(),
        costs_source,
        costs_backing: backing,
        image_costs: Vec::new(),
        notes,
    };
    write_plan(cfg, report)
}

/// The layouts of the plan, made with this host's mount API; a layout this
/// host cannot run is left out, saying why (exit 3 when it was the only one).
fn plan_layouts(
    cfg: &PlanConfig,
    privilege: Privilege,
) -> Result<Vec<Box<dyn crate::layout::Layout>>, AppError> {
    let config = LayoutConfig {
        mount_api: crate::config::MountApiChoice::Auto.resolve(),
        options: Vec::new(),
        privilege,
    };
    let mut layouts = Vec::new();
    for l in cfg
        .layouts
        .iter()
        .filter_map(|n| layout::create(n, &config))
    {
        match l.entry().host_support(config.privilege) {
            Ok(()) => layouts.push(l),
            Err(e) if cfg.layouts.len() == 1 => return Err(e.into()),
            Err(e) => eprintln!("plan: skipped: {e}"),
        }
    }
    Ok(layouts)
}

/// The plan for copies of the user's images: opened (and read once, every
/// layer verified), each layer's cost measured on a fresh filesystem per
/// layout (or read from a report), then projected.
fn plan_images(
    cfg: &PlanConfig,
    privilege: Option<Privilege>,
    source: &dyn workload::CostSource,
) -> Result<PlanReport, AppError> {
    let backing = cfg.backing.to_string();
    let images: Vec<Arc<IndexedImage>> = cfg
        .images
        .iter()
        .map(|p| {
            source::open(&p.reference, &cfg.image_options)
                .map(|s| Arc::new(IndexedImage::new(Arc::from(s))))
        })
        .collect::<Result<_, _>>()?;
    let demand: Vec<ImageDemand> = cfg
        .images
        .iter()
        .zip(&images)
        .enumerate()
        .map(|(i, (p, img))| {
            let d = ImageDemand {
                reference: img.reference().to_string(),
                layers: img.info().layers.len(),
                copies: p.copies,
                shared_layers: p
                    .shared_layers
                    .unwrap_or_else(|| shared_with_others(&images, i)),
                containers: cfg.fleet.containers,
            };
            d.validate().map_err(|e| AppError::Usage(e.to_string()))?;
            Ok(d)
        })
        .collect::<Result<_, AppError>>()?;
    let (costs, costs_source) = match (&cfg.from, privilege) {
        (Some(from), _) => {
            let report = report::read_report(from)?;
            let costs = source.images_from_report(&report, &images, &backing)?;
            for c in &costs {
                c.check()
                    .map_err(|e| AppError::Usage(format!("{}: {e}", from.display())))?;
            }
            (
                costs,
                format!(
                    "real-image inodes results in {}",
                    cfg.from_shown
                        .clone()
                        .unwrap_or_else(|| from.display().to_string())
                ),
            )
        }
        (None, Some(privilege)) => {
            let layouts = plan_layouts(cfg, privilege)?;
            let like = ScratchRequest {
                root: cfg.scratch.clone(),
                kind: cfg.backing.clone(),
                planned_bytes: 0,
                fs_size_bytes: 0,
                inodes: None,
            };
            (
                source.measure_images(&images, &demand, cfg.fleet.writes, &layouts, &like)?,
                format!(
                    "measured now: every layer of every image stored layer by layer, and a container of each \
                     writing {} files, on a fresh {backing} per layout",
                    cfg.fleet.writes
                ),
            )
        }
        (None, None) => {
            return Err(AppError::Usage(
                "measuring costs needs the private mount namespace; the caller must enter it"
                    .into(),
            ))
        }
    };
    let layouts = cap_images::project_images(&demand, &cfg.filesystem, &costs)
        .map_err(|e| AppError::Usage(e.to_string()))?;
    Ok(PlanReport {
        schema_version: 1,
        kind: "plan".into(),
        fleet: None,
        images: demand,
        filesystem: cfg.filesystem.clone(),
        costs_source,
        costs_backing: backing,
        layouts,
        image_costs: costs,
        notes: Vec::new(),
    })
}

/// Bottom layers image `i` shares, by chain id, with another of `images`.
fn shared_with_others(images: &[Arc<IndexedImage>], i: usize) -> usize {
    let mine = &images[i].info().layers;
    images
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, other)| {
            mine.iter()
                .zip(&other.info().layers)
                .take_while(|(a, b)| a.chain_id == b.chain_id)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Writes plan.json and plan.svg.
fn write_plan(cfg: &PlanConfig, report: PlanReport) -> Result<PlanOutcome, AppError> {
    let out = cfg
        .out
        .claim(&crate::config::utc_stamp(std::time::SystemTime::now()))?;
    let json = serde_json::to_vec_pretty(&report).map_err(|e| {
        AppError::Report(report::ReportError::Render {
            what: "plan.json".into(),
            detail: e.to_string(),
        })
    })?;
    report::write_atomic(&out.join("plan.json"), &json)?;
    report::write_atomic(&out.join("plan.svg"), &capacity::render::plan_svg(&report)?)?;
    Ok(PlanOutcome { report, out })
}

/// What `plan` prints: the fleet and filesystem, where costs came from, the
/// table — and for real images, what runs out first and when, and the
/// per-layer costs the projection used.
pub fn text(p: &PlanReport) -> String {
    let fs = format!(
        "{} ({} inodes, {} free)",
        p.filesystem.source,
        p.filesystem.available_inodes,
        fmt_bytes(p.filesystem.available_bytes as f64)
    );
    let Some(f) = &p.fleet else {
        let mut s = String::new();
        for d in &p.images {
            s.push_str(&format!(
                "{} × {} ({} layers; copies share the bottom {}), {} containers each\n",
                d.copies, d.reference, d.layers, d.shared_layers, d.containers
            ));
        }
        s.push_str(&format!(
            "on {fs}\ncosts: {}\n{}",
            p.costs_source,
            capacity::render::plan_table(p).to_text()
        ));
        for l in &p.layouts {
            s.push_str(&format!("{}\n", capacity::render::verdict(p, l)));
        }
        s.push_str(&format!(
            "\nwhat each layer costs (inodes · bytes; stored once when shared):\n{}",
            capacity::render::image_costs_table(p).to_text()
        ));
        return s;
    };
    let mut s = format!(
        "{} images × {} layers ({}% shared), {} containers each, on {fs}\ncosts: {}\n{}",
        f.images,
        f.layers,
        f.shared_pct,
        f.containers,
        p.costs_source,
        capacity::render::plan_table(p).to_text()
    );
    for n in &p.notes {
        s.push_str(n);
        s.push('\n');
    }
    s
}
