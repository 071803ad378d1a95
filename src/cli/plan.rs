//! `overlaybench plan` arguments, lowered into a `PlanRequest`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use overlaybench::app::plan::{self, PlanConfig, PlanRequest, Target};
use overlaybench::app::AppError;
use overlaybench::capacity::Fleet;
use overlaybench::isolate;
use overlaybench::layout;

use super::{one_of, parse_size, ImageArgs};

/// `overlaybench plan`.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Take per-unit costs from an inodes report (report.json or its folder) instead
    /// of measuring them now; its layers/files/dirs per layer and backing must match.
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Images in the fleet (synthetic; with --image use --count).
    #[arg(
        allow_negative_numbers = true,
        long,
        default_value_t = 100,
        conflicts_with = "image"
    )]
    pub images: u64,
    /// Layers per image (1 to 500; synthetic).
    #[arg(
        allow_negative_numbers = true,
        long,
        default_value_t = 10,
        conflicts_with = "image"
    )]
    pub layers: usize,
    /// Percent of each image's layers shared by all images (the base; synthetic).
    #[arg(
        allow_negative_numbers = true,
        long,
        default_value_t = 60,
        conflicts_with = "image"
    )]
    pub shared_pct: u32,
    /// Files added or modified per layer (synthetic).
    #[arg(
        allow_negative_numbers = true,
        long,
        default_value_t = 100,
        conflicts_with = "image"
    )]
    pub files_per_layer: usize,
    /// Directories added per layer (synthetic).
    #[arg(
        allow_negative_numbers = true,
        long,
        default_value_t = 20,
        conflicts_with = "image"
    )]
    pub dirs_per_layer: usize,
    /// Plan for copies of your own images: each --image's layers are measured
    /// (stored layer by layer, and a container of it) instead of a synthetic shape.
    #[command(flatten)]
    pub image: ImageArgs,
    /// With --image: how many images of that image's shape the fleet holds —
    /// once for every image, or once per --image, in order [1].
    #[arg(
        allow_negative_numbers = true,
        long,
        value_name = "N",
        requires = "image"
    )]
    pub count: Vec<u64>,
    /// With --image: how many bottom layers the copies of an image share (stored
    /// once); the layers above are each copy's own — once for every image, or once
    /// per --image, in order [the layers it shares with the other --image, else 0].
    #[arg(
        allow_negative_numbers = true,
        long,
        value_name = "K",
        requires = "image"
    )]
    pub shared_layers: Vec<usize>,
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
            image_options: self.image.open_options(),
            images: self.image.images,
            counts: self.count,
            shared_layers: self.shared_layers,
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
            super::out::err_line(&if cfg.images.is_empty() {
                format!(
                    "measuring per-unit costs on a fresh {} per layout (2 images of {} layers)…",
                    cfg.backing, cfg.fleet.layers
                )
            } else {
                format!(
                    "measuring what each layer of the {} image(s) costs, on a fresh {} per layout…",
                    cfg.images.len(),
                    cfg.backing
                )
            });
            Some(p)
        }
    };
    let outcome = plan::plan(&cfg, privilege)?;
    super::out::err_line(&format!("plan: {}", outcome.out.display()));
    super::out::stdout(&plan::text(&outcome.report))?;
    Ok(0)
}
