//! Workloads: each turns its parameters into measured cases on the layouts of a
//! run. Adding a workload = one file + one line in `create` and `WorkloadKind`.

pub mod copy_up;
pub mod inodes;
pub mod lookup;
pub mod page_cache;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::ProgressBar;

use crate::error::ErrorClass;
use crate::isolate::{EvictionKind, IsolateError, Scratch};
use crate::layout::{Layout, LayoutConfig, LayoutError, LayoutKind};
use crate::plan::RunPlan;
use crate::report::{Case, Derived, RunError};

/// Which workload.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// Lookup cost (stat, readdir, mount) by lower depth, cold and warm.
    Lookup,
    /// Cost of the first write to a large lower file (copy_up), by size and options.
    CopyUp,
    /// Inodes and bytes per layer, image and container, phase by phase.
    Inodes,
    /// Page-cache memory of K containers reading one image (sharing factor).
    PageCache,
}

impl WorkloadKind {
    /// Name in reports and file names.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Lookup => "lookup",
            WorkloadKind::CopyUp => "copy-up",
            WorkloadKind::Inodes => "inodes",
            WorkloadKind::PageCache => "page-cache",
        }
    }
}

/// What a workload needs of the scratch filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct Footprint {
    /// Bytes written at the peak.
    pub bytes: u64,
    /// Inodes used at the peak (ext4 counting: hard links are free).
    pub inodes: u64,
}

/// Everything measured so far in a run.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Measured cases.
    pub cases: Vec<Case>,
    /// Derived figures.
    pub derived: Vec<Derived>,
    /// What could not be measured.
    pub errors: Vec<RunError>,
    /// Run-wide caveats.
    pub notes: Vec<String>,
    /// Per layout, the overlay options in force (read back from mountinfo).
    pub options_in_force: BTreeMap<String, String>,
}

/// What a workload gets to work with.
pub struct RunContext<'a> {
    /// The resolved plan.
    pub plan: &'a RunPlan,
    /// The scratch filesystem (this backing's).
    pub scratch: &'a mut Scratch,
    /// Layouts in interleaving order.
    pub layouts: &'a [Box<dyn Layout>],
    /// The mount settings the layouts were made with (workloads derive variants).
    pub layout_config: &'a LayoutConfig,
    /// Name of this backing (`ext4`, `xfs`, …), put in every case's params.
    pub backing: String,
    /// How cold samples are made cold on this backing.
    pub eviction: EvictionKind,
    /// Progress display (hidden when not a terminal).
    pub progress: &'a ProgressBar,
    /// Set by Ctrl-C / SIGTERM.
    pub interrupted: &'a AtomicBool,
    /// Where results go.
    pub out: &'a mut Recorded,
}

impl RunContext<'_> {
    /// Fails with `Interrupted` once Ctrl-C was pressed.
    pub fn check_interrupted(&self) -> Result<(), WorkloadError> {
        if self.interrupted.load(Ordering::Relaxed) {
            return Err(WorkloadError::Interrupted);
        }
        Ok(())
    }

    /// Makes the scratch fs cold by the backing's eviction method.
    pub fn evict(&mut self) -> Result<(), WorkloadError> {
        match self.eviction {
            EvictionKind::RemountBacking => self.scratch.remount()?,
            EvictionKind::DropCaches => crate::measure::cache::drop_caches().map_err(|e| {
                WorkloadError::Failed(format!("writing /proc/sys/vm/drop_caches: {e}"))
            })?,
            EvictionKind::FreshMountOnly => {}
        }
        Ok(())
    }
}

/// One workload.
pub trait Workload {
    /// Which one.
    fn kind(&self) -> WorkloadKind;
    /// Scratch space it needs (checked before anything is made).
    fn footprint(&self, layouts: usize) -> Footprint;
    /// Progress steps it will report, for `layouts` layouts.
    fn steps(&self, layouts: &[LayoutKind]) -> u64;
    /// Builds its fixtures, measures, and records cases and derived figures.
    fn run(&self, ctx: &mut RunContext<'_>) -> Result<(), WorkloadError>;
}

/// The factory: the one line each new workload adds.
pub fn create(kind: WorkloadKind, plan: &RunPlan) -> Box<dyn Workload> {
    match kind {
        WorkloadKind::Lookup => Box::new(lookup::Lookup::new(plan.lookup.clone())),
        WorkloadKind::CopyUp => Box::new(copy_up::CopyUp::new(plan.copy_up.clone())),
        WorkloadKind::Inodes => Box::new(inodes::Inodes::new(plan.inodes.clone())),
        WorkloadKind::PageCache => Box::new(page_cache::PageCache::new(plan.page_cache.clone())),
    }
}

/// Why a workload stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Isolate(#[from] IsolateError),
    #[error("interrupted")]
    Interrupted,
    #[error("{0}")]
    Failed(String),
}

impl WorkloadError {
    /// Exit-code class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            WorkloadError::Layout(e) => e.class(),
            WorkloadError::Isolate(e) => e.class(),
            _ => ErrorClass::Runtime,
        }
    }
}
