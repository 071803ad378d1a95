//! `overlaybench plan` arguments, lowered into a `PlanRequest`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use overlaybench::app::plan::{self, PlanConfig, PlanRequest, Target};
use overlaybench::app::AppError;
use overlaybench::capacity::Fleet;
use overlaybench::isolate;
use overlaybench::layout;

use super::{one_of, parse_size};

/// `overlaybench plan`.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Take per-unit costs from an inodes report (report.json or its folder) instead
    /// of measuring them now; its layers/files/dirs per layer and backing must match.
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Images in the fleet.
    #[arg(allow_negative_numbers = true, long, default_value_t = 100)]
    pub images: u64,
    /// Layers per image (1 to 500).
    #[arg(allow_negative_numbers = true, long, default_value_t = 10)]
    pub layers: usize,
    /// Percent of each image's layers shared by all images (the base).
    #[arg(allow_negative_numbers = true, long, default_value_t = 60)]
    pub shared_pct: u32,
    /// Files added or modified per layer.
    #[arg(allow_negative_numbers = true, long, default_value_t = 100)]
    pub files_per_layer: usize,
    /// Directories added per layer.
    #[arg(allow_negative_numbers = true, long, default_value_t = 20)]
    pub dirs_per_layer: usize,
    /// Containers per image.
    #[arg(allow_negative_numbers = true, long, default_value_t = 2)]
    pub containers: u64,
    /// Files each container modifies (it also creates as many and deletes half).
    #[arg(allow_negative_numbers = true, long, default_value_t = 10)]
    pub writes: usize,
    /// The filesystem to fill: an existing path (its free space and inodes, read with statvfs).
    #[arg(long, conflicts_with_all = ["fs_size", "fs_inodes"])]
    pub path: Option<PathBuf>,
    /// The filesystem to fill: its size (e.g. 100G); inodes default to ext4's 1 per 16 KiB.
    #[arg(allow_negative_numbers = true, long, value_parser = parse_size, required_unless_present = "path")]
    pub fs_size: Option<u64>,
    /// The filesystem's inode count (with --fs-size).
    #[arg(allow_negative_numbers = true, long, requires = "fs_size")]
    pub fs_inodes: Option<u64>,
    /// Backing the costs are measured on (and must match in --from).
    #[arg(long, default_value = "ext4")]
    pub backing: String,
    /// Layouts to plan for.
    #[arg(long, value_delimiter = ',', value_parser = one_of(layout::names()), default_values = layout::DEFAULT_LAYOUTS)]
    pub layouts: Vec<String>,
    /// Where measurement scratch filesystems are made.
    #[arg(long, default_value = "/var/tmp/overlaybench")]
    pub scratch: PathBuf,
    /// Output folder for plan.json and plan.svg [default: reports/plan-<UTC
    /// timestamp>, made unique]; an existing folder must be empty unless --force.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the plan already in --out.
    #[arg(long)]
    pub force: bool,
    /// Seed for the generated images.
    #[arg(allow_negative_numbers = true, long, default_value_t = 1)]
    pub seed: u64,
}

impl PlanArgs {
    /// The library's request.
    pub fn into_request(self) -> PlanRequest {
        let target = match (self.path, self.fs_size) {
            (Some(p), _) => Target::Path(p),
            // clap requires one of the two.
            (None, size) => Target::Size {
                bytes: size.unwrap_or(0),
                inodes: self.fs_inodes,
            },
        };
        PlanRequest {
            fleet: Fleet {
                images: self.images,
                layers: self.layers,
                shared_pct: self.shared_pct,
                files_per_layer: self.files_per_layer,
                dirs_per_layer: self.dirs_per_layer,
                containers: self.containers,
                writes: self.writes,
            },
            target,
            from: self.from,
            backing: self.backing,
            layouts: self.layouts,
            scratch: self.scratch,
            out: self.out,
            force: self.force,
            seed: self.seed,
        }
    }
}

/// Projects the fleet; measuring costs isolates first (no thread exists yet).
pub fn execute(args: PlanArgs) -> anyhow::Result<i32> {
    let cfg = PlanConfig::try_from(args.into_request())?;
    let privilege = match cfg.from {
        Some(_) => None,
        None => {
            let p = isolate::enter_private_namespace().map_err(AppError::from)?;
            // plan writes only at its end: a signal removes the scratch and exits.
            super::signals::install(
                super::signals::FirstSignal::Exit,
                isolate::abandon_live_scratches,
            )
            .context("installing the signal handling")?;
            super::out::err_line(&format!(
                "measuring per-unit costs on a fresh {} per layout (2 images of {} layers)…",
                cfg.backing, cfg.fleet.layers
            ));
            Some(p)
        }
    };
    let outcome = plan::plan(&cfg, privilege)?;
    super::out::err_line(&format!("plan: {}", outcome.out.display()));
    super::out::stdout(&plan::text(&outcome.report))?;
    Ok(0)
}
