//! `overlaybench run` arguments, lowered into a `RunRequest`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use overlaybench::app::{self, AppError};
use overlaybench::config::{MountApiChoice, RunConfig, RunRequest, Suite};
use overlaybench::isolate;
use overlaybench::report::RunStatus;
use overlaybench::{layout, stop, workload};

use super::workloads::WorkloadArgs;
use super::{choice, one_of, out, parse_size, ImageArgs};

/// `overlaybench run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Preset sizes for every workload; explicit options override it.
    #[arg(long, value_parser = choice::<Suite>(), default_value = "quick")]
    pub suite: Suite,
    /// Workloads to run (comma-separated) [default: all but `app`, which runs
    /// the image's own code: only when named, with --image].
    #[arg(long, value_delimiter = ',', value_parser = one_of(workload::names()))]
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
    /// Each workload's own options, under its heading (`workloads::GROUPS`).
    #[command(flatten)]
    pub workload: WorkloadArgs,
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
            options: self.workload.0,
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
