//! Command-line arguments (clap derive). Parsed cheaply here, validated once into
//! a `RunPlan` (see `plan`); the core never sees these types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::layout::LayoutKind;
use crate::workload::copy_up::{CacheState, Procedure, Variant};
use crate::workload::WorkloadKind;

/// Storage benchmarks for Linux OverlayFS as container engines use it.
#[derive(Debug, Parser)]
#[command(name = "overlaybench", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the layouts on a scratch filesystem, run workloads, write a report folder.
    Run(Box<RunArgs>),
    /// Re-render the SVG charts and summary.md of a report from its report.json.
    Report(ReportArgs),
    /// Capacity projection: how many images and containers fit before inodes or
    /// bytes run out, per layout, from costs measured on the real kernel.
    Plan(Box<PlanArgs>),
    /// Diagnose this host's overlay storage (kernel features, backing filesystem,
    /// engine config, store inventory) and recommend overlay2 vs overlay. Reads only.
    Doctor(DoctorArgs),
    /// Compare two reports: a CI gate. Exit 0 when nothing regressed, 1 when
    /// something did, 2 on bad input.
    Compare(CompareArgs),
}

/// `overlaybench compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The baseline report (report.json or its folder).
    pub baseline: PathBuf,
    /// The current report.
    pub current: PathBuf,
    /// Relative change tolerated, for every figure (e.g. 10%) [built in: lookup 25%,
    /// copy-up 25%, inodes 5%, page-cache 5% — from measured run-to-run noise].
    #[arg(long, value_parser = crate::compare::gate::parse_threshold)]
    pub threshold: Option<f64>,
    /// Per-workload threshold, WORKLOAD=PCT (repeatable), e.g. lookup=15%.
    #[arg(long = "workload-threshold", value_parser = parse_workload_threshold)]
    pub workload_thresholds: Vec<(String, f64)>,
    /// A gate file (TOML: threshold, missing, [workloads]); options given here win.
    #[arg(long)]
    pub gate_file: Option<PathBuf>,
    /// Which figures are gated.
    #[arg(long, value_enum, default_value_t = crate::compare::FigureSet::Derived)]
    pub figures: crate::compare::FigureSet,
    /// What a figure present in one report only does [fail].
    #[arg(long, value_enum)]
    pub missing: Option<crate::compare::MissingPolicy>,
    /// Leave a parameter out when matching figures (e.g. backing, to compare ext4 with xfs).
    #[arg(long = "ignore-param")]
    pub ignore_params: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = crate::compare::format::CompareFormat::Text)]
    pub format: crate::compare::format::CompareFormat,
    /// Write the output to this file instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Bootstrap resamples per figure.
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
}

fn parse_workload_threshold(s: &str) -> Result<(String, f64), String> {
    let (w, t) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}': use WORKLOAD=PCT, e.g. lookup=15%"))?;
    Ok((w.to_string(), crate::compare::gate::parse_threshold(t)?))
}

/// `overlaybench doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Machine-readable JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// The backing path to inspect [default: /var/lib/docker if present, else .].
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// A store to inventory: a Docker data root, its overlay2/ or overlay/ dir, or a
    /// containers-storage root [default: /var/lib/docker or /var/lib/containers/storage if present].
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Root under which etc/docker/daemon.json and etc/containers/storage.conf are read.
    #[arg(long, default_value = "/")]
    pub config_root: PathBuf,
    /// Skip the feature probes (they mount tiny overlays in a private namespace).
    #[arg(long)]
    pub no_probe: bool,
    /// Where the probes' scratch tmpfs is made.
    #[arg(long, default_value = "/var/tmp/overlaybench")]
    pub scratch: PathBuf,
}

/// Suite presets: how much to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Suite {
    /// About a minute: fits a CI gate.
    Quick,
    /// Several minutes: deeper stacks, more samples.
    Standard,
    /// Up to the kernel's limits.
    Full,
}

/// Which mount syscalls make overlay mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MountApiChoice {
    /// The new API (`lowerdir+`) where the kernel has it, else classic mount(2).
    Auto,
    /// fsopen/fsconfig/fsmount (kernel >= 6.8).
    New,
    /// mount(2): one option string, at most 4095 bytes (refused beyond, never cut).
    Classic,
}

/// `overlaybench run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Preset sizes for every workload; explicit options override it.
    #[arg(long, value_enum, default_value_t = Suite::Quick)]
    pub suite: Suite,
    /// Workloads to run (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [WorkloadKind::Lookup, WorkloadKind::CopyUp, WorkloadKind::Inodes, WorkloadKind::PageCache])]
    pub workloads: Vec<WorkloadKind>,
    /// Layouts to compare (comma-separated); ratios need `plain`.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = LayoutKind::ALL)]
    pub layouts: Vec<LayoutKind>,
    /// Backing filesystems (comma-separated): ext4, xfs, tmpfs or dir:PATH.
    #[arg(long, value_delimiter = ',', default_value = "ext4")]
    pub backing: Vec<String>,
    /// Where scratch filesystems are made; must be empty or made by overlaybench.
    #[arg(long, default_value = "/var/tmp/overlaybench")]
    pub scratch: PathBuf,
    /// Size of each scratch filesystem (e.g. 2G); default: sized from the plan.
    #[arg(long, value_parser = parse_size)]
    pub fs_size: Option<u64>,
    /// Report folder [default: reports/<UTC timestamp>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// lookup: lower depths to measure (1 to 500) [quick: 1,2,4,8,16,32,64,128].
    #[arg(long, value_delimiter = ',')]
    pub depths: Option<Vec<usize>>,
    /// lookup: distinct names per target, each looked up once per cold round [quick: 256].
    #[arg(long)]
    pub names: Option<usize>,
    /// lookup: lookups timed together as one sample (per-op = batch time / batch) [32].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Cold rounds per case (each: evict, fresh mount, measure) [quick: 10].
    #[arg(long)]
    pub rounds: Option<usize>,
    /// copy-up: file sizes, binary units (e.g. 1M,16M,64M,256M) [quick: 1M,16M,64M].
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    pub sizes: Option<Vec<u64>>,
    /// copy-up: layers in the image; the file sits in the bottom one (1 to 500) [3].
    #[arg(long)]
    pub depth: Option<usize>,
    /// copy-up: samples per case, each in a fresh container [quick: 9].
    #[arg(long)]
    pub samples: Option<usize>,
    /// copy-up: what each fresh container does first [quick: write,chmod; else all].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub procedures: Option<Vec<Procedure>>,
    /// copy-up: overlay option sets compared [all].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub variants: Option<Vec<Variant>>,
    /// copy-up: lower file page cache before the timed op [quick: cold; else cold,warm].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub caches: Option<Vec<CacheState>>,
    /// inodes: layers per image, swept (comma-separated) [quick: 5,20].
    #[arg(long, value_delimiter = ',')]
    pub layers: Option<Vec<usize>>,
    /// inodes: images in the set [3].
    #[arg(long)]
    pub images: Option<usize>,
    /// inodes: percent of each image's layers shared by all images (the base) [60].
    #[arg(long)]
    pub shared_pct: Option<u32>,
    /// page-cache: numbers of containers reading the set [quick: 1,2,4]; inodes:
    /// containers per image (the largest value) [2].
    #[arg(long, value_delimiter = ',')]
    pub containers: Option<Vec<usize>>,
    /// page-cache: total size of the cache set, binary units [quick: 256M].
    #[arg(long, value_parser = parse_size)]
    pub cache_set: Option<u64>,
    /// page-cache: files the cache set is split into [4].
    #[arg(long)]
    pub cache_files: Option<usize>,
    /// inodes: files added or modified per layer [100].
    #[arg(long)]
    pub files_per_layer: Option<usize>,
    /// inodes: directories added per layer [20].
    #[arg(long)]
    pub dirs_per_layer: Option<usize>,
    /// inodes: files each container modifies (copy_up); it also creates and deletes as many [10].
    #[arg(long)]
    pub writes: Option<usize>,
    /// Overlay mount API.
    #[arg(long, value_enum, default_value_t = MountApiChoice::Auto)]
    pub mount_api: MountApiChoice,
    /// Evict with host-wide `drop_caches` where the backing cannot be remounted (dir:PATH).
    #[arg(long)]
    pub drop_caches: bool,
    /// Seed for generated images.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// No progress bar (also off when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// `overlaybench plan`.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Take per-unit costs from an inodes report (report.json or its folder) instead
    /// of measuring them now; its layers/files/dirs per layer and backing must match.
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Images in the fleet.
    #[arg(long, default_value_t = 100)]
    pub images: u64,
    /// Layers per image (1 to 500).
    #[arg(long, default_value_t = 10)]
    pub layers: usize,
    /// Percent of each image's layers shared by all images (the base).
    #[arg(long, default_value_t = 60)]
    pub shared_pct: u32,
    /// Files added or modified per layer.
    #[arg(long, default_value_t = 100)]
    pub files_per_layer: usize,
    /// Directories added per layer.
    #[arg(long, default_value_t = 20)]
    pub dirs_per_layer: usize,
    /// Containers per image.
    #[arg(long, default_value_t = 2)]
    pub containers: u64,
    /// Files each container modifies (it also creates as many and deletes half).
    #[arg(long, default_value_t = 10)]
    pub writes: usize,
    /// The filesystem to fill: an existing path (its free space and inodes, read with statvfs).
    #[arg(long, conflicts_with_all = ["fs_size", "fs_inodes"])]
    pub path: Option<PathBuf>,
    /// The filesystem to fill: its size (e.g. 100G); inodes default to ext4's 1 per 16 KiB.
    #[arg(long, value_parser = parse_size, required_unless_present = "path")]
    pub fs_size: Option<u64>,
    /// The filesystem's inode count (with --fs-size).
    #[arg(long, requires = "fs_size")]
    pub fs_inodes: Option<u64>,
    /// Backing the costs are measured on (and must match in --from).
    #[arg(long, default_value = "ext4")]
    pub backing: String,
    /// Layouts to plan for.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = LayoutKind::ALL)]
    pub layouts: Vec<LayoutKind>,
    /// Where measurement scratch filesystems are made.
    #[arg(long, default_value = "/var/tmp/overlaybench")]
    pub scratch: PathBuf,
    /// Output folder for plan.json and plan.svg [default: reports/plan-<UTC timestamp>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed for the generated images.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `overlaybench report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// A report folder or its report.json.
    pub path: PathBuf,
    /// Where to write the rendered files [default: next to report.json].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// What to produce.
    #[arg(long, value_enum, default_value_t = crate::report::export::ExportFormat::Files)]
    pub format: crate::report::export::ExportFormat,
}

/// Parses `64M`, `1G`, `4096` (binary multiples: 1K = 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(s)
        .map_err(|e| format!("invalid size '{s}': {e} (examples: 4096, 64M, 2G)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("lots").unwrap_err().contains("lots"));
    }
}
