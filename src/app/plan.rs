//! `overlaybench plan`: a capacity projection per layout, from per-unit costs
//! read from an inodes report or measured now on fresh scratch filesystems.

use std::path::{Path, PathBuf};

use super::AppError;
use crate::capacity::{self, Filesystem, Fleet, PlanReport};
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
    let mut notes = Vec::new();
    let (costs, costs_source) = match (&cfg.from, privilege) {
        (Some(from), _) => {
            let report = report::read_report(from)?;
            let costs = source.read_from_report(&report, &cfg.fleet, &backing)?;
            notes = workload::plan_notes(&report, &cfg.fleet, &backing);
            let shown = cfg
                .from_shown
                .clone()
                .unwrap_or_else(|| from.display().to_string());
            (costs, format!("inodes results in {shown}"))
        }
        (None, Some(privilege)) => {
            let config = LayoutConfig {
                mount_api: crate::config::MountApiChoice::Auto.resolve(),
                options: Vec::new(),
                privilege,
            };
            // A layout this host cannot run is left out, saying why (exit 3 when
            // none is left).
            let mut layouts = Vec::new();
            for l in cfg
                .layouts
                .iter()
                .filter_map(|n| layout::create(n, &config))
            {
                match l.host_support() {
                    Ok(()) => layouts.push(l),
                    Err(e) if cfg.layouts.len() == 1 => return Err(e.into()),
                    Err(e) => eprintln!("plan: skipped: {e}"),
                }
            }
            eprintln!(
                "measuring per-unit costs on a fresh {backing} per layout (2 images of {} layers)…",
                cfg.fleet.layers
            );
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
        layouts: capacity::project(&cfg.fleet, &cfg.filesystem, &costs),
        fleet: cfg.fleet.clone(),
        filesystem: cfg.filesystem.clone(),
        costs_source,
        costs_backing: backing,
        notes,
    };
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
/// table, and what the report's other results add.
pub fn text(p: &PlanReport) -> String {
    let mut s = format!(
        "{} images × {} layers ({}% shared), {} containers each, on {} ({} inodes, {} free)\ncosts: {}\n{}",
        p.fleet.images,
        p.fleet.layers,
        p.fleet.shared_pct,
        p.fleet.containers,
        p.filesystem.source,
        p.filesystem.available_inodes,
        fmt_bytes(p.filesystem.available_bytes as f64),
        p.costs_source,
        capacity::render::plan_table(p).to_text()
    );
    for n in &p.notes {
        s.push_str(n);
        s.push('\n');
    }
    s
}
