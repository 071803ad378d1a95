//! `overlaybench run` arguments, lowered into a `RunRequest`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use overlaybench::app::{self, AppError};
use overlaybench::config::{MountApiChoice, RunConfig, RunRequest, Suite};
use overlaybench::isolate;
use overlaybench::report::RunStatus;
use overlaybench::workload::copy_up::{CacheState, Procedure, Variant};
use overlaybench::workload::{copy_up, inodes, lookup, page_cache, storm, WorkloadOptions};
use overlaybench::{layout, stop, workload};

use super::{choice, one_of, out, parse_size, ImageArgs};

/// `overlaybench run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Preset sizes for every workload; explicit options override it.
    #[arg(long, value_parser = choice::<Suite>(), default_value = "quick")]
    pub suite: Suite,
    /// Workloads to run (comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = one_of(workload::names()), default_values = workload::names())]
    pub workloads: Vec<String>,
    /// Layouts to compare (comma-separated); ratios need `plain` [default:
    /// overlay2,overlay,plain]. A layout named here that the host cannot run
    /// exits 3; one a backing cannot run (btrfs off a btrfs backing) is skipped
    /// with the reason.
    #[arg(long, value_delimiter = ',', value_parser = one_of(layout::names()))]
    pub layouts: Vec<String>,
    /// Backing filesystems (comma-separated): ext4, xfs, btrfs, tmpfs or dir:PATH.
    #[arg(long, value_delimiter = ',', default_value = "ext4")]
    pub backing: Vec<String>,
    /// Where scratch filesystems are made; must be empty or made by overlaybench.
    #[arg(long, default_value = "/var/tmp/overlaybench")]
    pub scratch: PathBuf,
    /// Size of each scratch filesystem (e.g. 2G); default: sized from the plan.
    #[arg(allow_negative_numbers = true, long, value_parser = parse_size)]
    pub fs_size: Option<u64>,
    /// Report folder [default: reports/<UTC timestamp>, made unique]; an existing
    /// folder must be empty unless --force.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the report (report.json, summary.md, charts) already in --out.
    #[arg(long)]
    pub force: bool,
    /// lookup, storm: lower depths to measure (1 to 500) [quick: lookup
    /// 1,2,4,8,16,32,64,128; storm 1,16; standard storm: 1,16,64].
    #[arg(allow_negative_numbers = true, long, value_delimiter = ',')]
    pub depths: Option<Vec<usize>>,
    /// lookup: distinct names per target, each looked up once per cold round [quick: 256].
    #[arg(allow_negative_numbers = true, long)]
    pub names: Option<usize>,
    /// lookup: lookups timed together as one sample (per-op = batch time / batch) [32].
    #[arg(allow_negative_numbers = true, long)]
    pub batch: Option<usize>,
    /// Rounds per case: lookup's cold rounds (each: evict, fresh mount, measure)
    /// [quick: 10]; storm's storms per point [quick: 5, standard: 10].
    #[arg(allow_negative_numbers = true, long)]
    pub rounds: Option<usize>,
    /// lookup: numbers of images sharing one store, swept (1 to 1000) [quick: 1,4,16].
    #[arg(long, value_delimiter = ',')]
    pub store_images: Option<Vec<usize>>,
    /// storm: containers started at once, swept; 1 is always measured
    /// (1 to 1024) [quick: 1,4,16; standard: 1,2,4,8,16,32,64].
    #[arg(long, value_delimiter = ',')]
    pub concurrency: Option<Vec<usize>>,
    /// storm: how lower layers are idmapped; asked for explicitly, a host that
    /// refuses exits 3 [all, skipped with a note where refused].
    #[arg(long, value_delimiter = ',', value_parser = choice::<storm::Idmap>())]
    pub idmap: Option<Vec<storm::Idmap>>,
    /// storm: mounts held while the mount table is read, swept (0 skips the
    /// phase) [quick: 0,100,1000; standard: 0,100,1000,5000].
    #[arg(long, value_delimiter = ',')]
    pub mounts_held: Option<Vec<usize>>,
    /// storm: layers of the image every held mount stacks (1 to 500) [16].
    #[arg(long)]
    pub held_depth: Option<usize>,
    /// copy-up: file sizes, binary units (e.g. 1M,16M,64M,256M) [quick: 1M,16M,64M].
    #[arg(allow_negative_numbers = true, long, value_delimiter = ',', value_parser = parse_size)]
    pub sizes: Option<Vec<u64>>,
    /// copy-up: layers in the image; the file sits in the bottom one (1 to 500) [3].
    #[arg(allow_negative_numbers = true, long)]
    pub depth: Option<usize>,
    /// copy-up: samples per case, each in a fresh container [quick: 9].
    #[arg(allow_negative_numbers = true, long)]
    pub samples: Option<usize>,
    /// copy-up: what each fresh container does first [quick: write,chmod; else all].
    #[arg(long, value_delimiter = ',', value_parser = choice::<Procedure>())]
    pub procedures: Option<Vec<Procedure>>,
    /// copy-up: overlay option sets compared [all].
    #[arg(long, value_delimiter = ',', value_parser = choice::<Variant>())]
    pub variants: Option<Vec<Variant>>,
    /// copy-up: lower file page cache before the timed op [quick: cold; else cold,warm].
    #[arg(long, value_delimiter = ',', value_parser = choice::<CacheState>())]
    pub caches: Option<Vec<CacheState>>,
    /// copy-up: how many of each --image's largest regular files are timed (1 to 100) [5].
    #[arg(allow_negative_numbers = true, long)]
    pub image_files: Option<usize>,
    /// inodes: layers per image, swept (comma-separated) [quick: 5,20].
    #[arg(allow_negative_numbers = true, long, value_delimiter = ',')]
    pub layers: Option<Vec<usize>>,
    /// inodes: images in the set (1 to 1000) [3].
    #[arg(allow_negative_numbers = true, long)]
    pub images: Option<usize>,
    /// inodes: percent of each image's layers shared by all images (the base) [60].
    #[arg(allow_negative_numbers = true, long)]
    pub shared_pct: Option<u32>,
    /// page-cache: numbers of containers reading the set [quick: 1,2,4]; inodes:
    /// containers per image (the largest value) [2].
    #[arg(allow_negative_numbers = true, long, value_delimiter = ',')]
    pub containers: Option<Vec<usize>>,
    /// page-cache: total size of the cache set, binary units [quick: 256M].
    #[arg(allow_negative_numbers = true, long, value_parser = parse_size)]
    pub cache_set: Option<u64>,
    /// page-cache: files the cache set is split into (1 to 100000) [4].
    #[arg(allow_negative_numbers = true, long)]
    pub cache_files: Option<usize>,
    /// page-cache: the most bytes of each --image the containers read, binary
    /// units; its regular files in path order up to it [quick: 256M].
    #[arg(allow_negative_numbers = true, long, value_parser = parse_size)]
    pub read_budget: Option<u64>,
    /// page-cache: glob patterns (paths in the image, e.g. 'usr/lib/**') choosing
    /// which files of each --image are read [every regular file].
    #[arg(long, num_args = 1.., value_name = "GLOB")]
    pub read_set: Option<Vec<String>>,
    /// page-cache: numbers of different images (the same files in other layers,
    /// no layer shared) read at once, one container each [quick: 1,3].
    #[arg(long, value_delimiter = ',')]
    pub cache_images: Option<Vec<usize>>,
    /// inodes: files added or modified per layer (0 to 1000000) [100].
    #[arg(allow_negative_numbers = true, long)]
    pub files_per_layer: Option<usize>,
    /// inodes: directories added per layer (0 to 100000) [20].
    #[arg(allow_negative_numbers = true, long)]
    pub dirs_per_layer: Option<usize>,
    /// inodes: files each container modifies (copy_up); it also creates and deletes
    /// as many (0 to 100000) [10].
    #[arg(allow_negative_numbers = true, long)]
    pub writes: Option<usize>,
    /// Overlay mount API.
    #[arg(long, value_parser = choice::<MountApiChoice>(), default_value = "auto")]
    pub mount_api: MountApiChoice,
    /// Evict with host-wide `drop_caches` where the backing cannot be remounted (dir:PATH).
    #[arg(long)]
    pub drop_caches: bool,
    /// Seed for generated images.
    #[arg(allow_negative_numbers = true, long, default_value_t = 1)]
    pub seed: u64,
    /// No progress bar (also off when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// The user's images.
    #[command(flatten)]
    pub image: ImageArgs,
    /// Measure only the --image images: skip the synthetic sweeps (depths,
    /// sizes, image sets, cache set), which vary what one image cannot.
    #[arg(long, requires = "image")]
    pub image_only: bool,
    /// Also check Docker's overlay storage notes on each backing after the
    /// workloads (`overlaybench claims`; under a minute with the quick suite).
    #[arg(long)]
    pub claims: bool,
}

impl RunArgs {
    /// The library's request.
    pub fn into_request(self) -> RunRequest {
        RunRequest {
            suite: self.suite,
            workloads: self.workloads,
            layouts: self.layouts,
            backings: self.backing,
            scratch: self.scratch,
            fs_size: self.fs_size,
            out: self.out,
            force: self.force,
            mount_api: self.mount_api,
            drop_caches: self.drop_caches,
            seed: self.seed,
            progress: !self.no_progress,
            image_options: self.image.open_options(),
            images: self.image.images,
            image_only: self.image_only,
            claims: self.claims,
            options: WorkloadOptions {
                lookup: lookup::Options {
                    depths: self.depths.clone(),
                    names: self.names,
                    batch: self.batch,
                    rounds: self.rounds,
                    store_images: self.store_images,
                },
                copy_up: copy_up::Options {
                    sizes: self.sizes,
                    depth: self.depth,
                    samples: self.samples,
                    procedures: self.procedures,
                    variants: self.variants,
                    caches: self.caches,
                    image_files: self.image_files,
                },
                inodes: inodes::Options {
                    layers: self.layers,
                    images: self.images,
                    shared_pct: self.shared_pct,
                    containers: self
                        .containers
                        .as_ref()
                        .and_then(|c| c.iter().copied().max()),
                    files_per_layer: self.files_per_layer,
                    dirs_per_layer: self.dirs_per_layer,
                    writes: self.writes,
                },
                page_cache: page_cache::Options {
                    set_bytes: self.cache_set,
                    files: self.cache_files,
                    containers: self.containers,
                    read_budget: self.read_budget,
                    read_set: self.read_set,
                    images: self.cache_images,
                },
                storm: storm::Options {
                    depths: self.depths,
                    concurrency: self.concurrency,
                    rounds: self.rounds,
                    idmap: self.idmap,
                    held: self.mounts_held,
                    held_depth: self.held_depth,
                },
            },
        }
    }
}

/// Runs the suite: validate, isolate before any thread, measure, print.
pub fn execute(args: RunArgs) -> anyhow::Result<i32> {
    let cfg = RunConfig::try_from(args.into_request()).map_err(AppError::from)?;
    // Must precede every thread (progress bar, rayon, signal handling).
    let privilege = isolate::enter_private_namespace()
        .map_err(AppError::from)
        .context("isolating the run")?;
    super::signals::install(super::signals::FirstSignal::FinishStep, app::run::abort)
        .context("installing the signal handling")?;
    let argv: Vec<String> = std::env::args().collect();
    let outcome = app::run::run(&cfg, privilege, &argv, stop::flag())?;
    let dir = outcome.out_dir.display().to_string();
    let printed = out::stdout(&app::run::terminal_summary(&outcome.report));
    out::err_line(&format!("report: {dir}"));
    for p in &outcome.written {
        out::err_line(&format!("  {}", p.display()));
    }
    let code = match (outcome.report.status, outcome.error) {
        (RunStatus::Complete, _) => 0,
        (RunStatus::Interrupted, _) => {
            out::err_line(&format!(
                "interrupted: the report in {dir} is marked 'interrupted' and holds the cases finished before it"
            ));
            stop::exit_code()
        }
        (_, Some(e)) => {
            return Err(anyhow::Error::new(AppError::from(e)).context(format!(
                "the run failed; the partial report in {dir} is marked 'failed'"
            )))
        }
        (_, None) => 1,
    };
    printed
        .with_context(|| format!("the report in {dir} is written and marked as its status says"))?;
    Ok(code)
}
