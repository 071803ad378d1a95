//! Workloads: each turns its parameters into measured cases on the layouts of a
//! run. A workload is a folder — `params` (options, suite defaults, validation),
//! `measure` (the timed loops), `analyze` (pure: samples → cases and derived
//! figures, through one typed view of its keys), `render` (its `Section`:
//! tables and charts) and its gate rules — plus one line in `WORKLOADS`.
//!
//! Nothing outside a workload's folder names it or parses its keys: renderers,
//! the gate and the planner reach it through this registry.

pub mod app;
pub mod copy_up;
pub mod harness;
pub mod import;
pub mod inodes;
pub mod lookup;
pub mod page_cache;
pub mod storm;
pub mod view;

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::capacity::images::{ImageDemand, LayoutImageCosts};
use crate::capacity::{Fleet, UnitCosts};
use crate::compare::GateRules;
use crate::error::ErrorClass;
use crate::image::IndexedImage;
use crate::isolate::ScratchRequest;
use crate::layout::Layout;
use crate::report::{Report, Section};

pub use harness::{Footprint, ImageFootprint, Recorded, RunContext, WorkloadError};
pub use view::{CaseView, Subject};

/// The registry: one line per workload, in report and run order (a run
/// runs its workloads in this order whatever order `--workloads` named them:
/// app records what the user's image reads at start, and storm's containers
/// of that image read it).
pub static WORKLOADS: &[&WorkloadEntry] = &[
    &lookup::ENTRY,
    &copy_up::ENTRY,
    &inodes::ENTRY,
    &page_cache::ENTRY,
    &import::ENTRY,
    &app::ENTRY,
    &storm::ENTRY,
];

/// What the rest of the tool knows about a workload, without naming it.
pub struct WorkloadEntry {
    /// Name in reports, file names and `--workloads`.
    pub name: &'static str,
    /// Whether it runs the user's image's own process (`--image`): only when
    /// named in `--workloads`, never in a run that names none (an image from a
    /// registry the user does not control is not run as root unasked), and
    /// refused when named without an image.
    pub needs_image: bool,
    /// One line for `--help`.
    pub about: &'static str,
    /// Key of its resolved parameters in the report's config (`copy_up`).
    pub config_key: &'static str,
    /// Resolves the run's options into this workload, validated (exit 2 naming the value).
    pub build: fn(&BuildContext<'_>) -> Result<Box<dyn Workload>, ParamError>,
    /// Renders its cases: summary tables, terminal tables, charts.
    pub section: &'static (dyn Section + Sync),
    /// Which of its figures the gate uses, with what threshold and direction.
    pub gate: &'static (dyn GateRules + Sync),
    /// The per-unit costs a capacity plan projects from, if this workload measures them.
    pub costs: Option<&'static (dyn CostSource + Sync)>,
    /// Lines a capacity plan prints from this workload's results, if it has any to say.
    pub plan_notes: Option<&'static (dyn PlanNotes + Sync)>,
    /// The questions its cases answer for the findings, if it states any.
    pub findings: Option<&'static (dyn crate::findings::FindingRules + Sync)>,
}

/// Every registered workload's findings rules, in report order.
pub fn finding_rules() -> Vec<&'static (dyn crate::findings::FindingRules + Sync)> {
    WORKLOADS.iter().filter_map(|w| w.findings).collect()
}

/// `report`'s findings, from every registered workload's rules.
pub fn findings_of(report: &Report) -> crate::report::findings::Findings {
    crate::findings::compute(report, &finding_rules())
}

/// A workload whose results say something a capacity plan should print beside
/// its projection (e.g. how long the fleet's containers take to start at once).
pub trait PlanNotes {
    /// Lines for a plan of `fleet` on `backing`, read from `report`; none when
    /// the report holds no results of this workload.
    fn plan_notes(&self, report: &Report, fleet: &Fleet, backing: &str) -> Vec<String>;
}

/// Every registered workload's lines for a plan of `fleet`, from `report`.
pub fn plan_notes(report: &Report, fleet: &Fleet, backing: &str) -> Vec<String> {
    WORKLOADS
        .iter()
        .filter_map(|w| w.plan_notes)
        .flat_map(|n| n.plan_notes(report, fleet, backing))
        .collect()
}

/// A workload that measures what a capacity plan projects from: per-unit inode
/// and byte costs per layout.
pub trait CostSource {
    /// The costs for `fleet` on `backing` as a report recorded them (refused,
    /// naming the difference, when the report measured another shape).
    fn read_from_report(
        &self,
        report: &Report,
        fleet: &Fleet,
        backing: &str,
    ) -> Result<BTreeMap<String, UnitCosts>, CostsError>;
    /// Measures the costs for `fleet` now, each layout on a fresh scratch
    /// filesystem made like `like`.
    fn measure(
        &self,
        fleet: &Fleet,
        seed: u64,
        layouts: &[Box<dyn Layout>],
        like: &ScratchRequest,
    ) -> Result<BTreeMap<String, UnitCosts>, WorkloadError>;
    /// Measures what each layer of each of the user's `images` (and a
    /// container of each, writing `writes` files) adds, per layout, each
    /// layout on a fresh scratch filesystem made like `like`. `demand` is in
    /// the order of `images`.
    fn measure_images(
        &self,
        images: &[Arc<IndexedImage>],
        demand: &[ImageDemand],
        writes: usize,
        layouts: &[Box<dyn Layout>],
        like: &ScratchRequest,
    ) -> Result<Vec<LayoutImageCosts>, WorkloadError>;
    /// The same costs as a report's real-image results recorded them (every
    /// layer found by chain id, on `backing`), or a refusal naming what is missing.
    fn images_from_report(
        &self,
        report: &Report,
        images: &[Arc<IndexedImage>],
        backing: &str,
    ) -> Result<Vec<LayoutImageCosts>, CostsError>;
}

/// Why per-unit costs could not be taken from a report.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CostsError(pub String);

/// The workload that measures capacity costs, if one is registered.
pub fn cost_source() -> Option<&'static (dyn CostSource + Sync)> {
    WORKLOADS.iter().find_map(|w| w.costs)
}

/// The entry named `name`, if any.
pub fn entry(name: &str) -> Option<&'static WorkloadEntry> {
    WORKLOADS.iter().copied().find(|w| w.name == name)
}

/// Every workload name, in report order.
pub fn names() -> Vec<&'static str> {
    WORKLOADS.iter().map(|w| w.name).collect()
}

/// The workloads a run that names none runs: every one but those that run
/// the user's image's own process (they run only when named).
pub fn default_names() -> Vec<&'static str> {
    WORKLOADS
        .iter()
        .filter(|w| !w.needs_image)
        .map(|w| w.name)
        .collect()
}

/// Every workload's section, in report order (what `report` renders from).
pub fn sections() -> Vec<&'static (dyn Section + Sync)> {
    WORKLOADS.iter().map(|w| w.section).collect()
}

/// Suite presets: how much to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Suite {
    /// About a minute: fits a CI gate.
    Quick,
    /// Several minutes: deeper stacks, more samples.
    Standard,
    /// Up to the kernel's limits.
    Full,
}

impl Suite {
    /// Every suite, for the command line.
    pub const ALL: [Suite; 3] = [Suite::Quick, Suite::Standard, Suite::Full];

    /// Name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Quick => "quick",
            Suite::Standard => "standard",
            Suite::Full => "full",
        }
    }

    /// One line for `--help`.
    pub fn about(self) -> &'static str {
        match self {
            Suite::Quick => "About a minute: fits a CI gate.",
            Suite::Standard => "Several minutes: deeper stacks, more samples.",
            Suite::Full => "Up to the kernel's limits.",
        }
    }
}

/// What a workload's `build` sees: the suite, every workload's options, and the
/// run-wide choices a validation may depend on.
#[derive(Debug, Clone, Copy)]
pub struct BuildContext<'a> {
    /// The preset defaults come from.
    pub suite: Suite,
    /// The user's overrides.
    pub options: &'a WorkloadOptions,
    /// Names of the backings of the run (`ext4`, `tmpfs`, `dir:/x`).
    pub backings: &'a [String],
    /// Names of the workloads selected for the run.
    pub selected: &'a [&'static str],
    /// Image seed.
    pub seed: u64,
    /// How many of the user's images (`--image`) the run measures.
    pub images: usize,
    /// Whether the synthetic cases run too (false with `--image-only`).
    pub synthetic: bool,
}

/// Every workload's options as the user gave them (all optional: the suite fills
/// the rest), one value per workload's own options type (its `params::Options`).
/// A workload's `build` reads its own with [`WorkloadOptions::get`]; nothing
/// here names a workload, so adding one adds no line.
#[derive(Clone, Default)]
pub struct WorkloadOptions(BTreeMap<TypeId, Arc<dyn AnyOptions>>);

/// What `WorkloadOptions` holds: any workload's options type.
pub trait AnyOptions: Any + std::fmt::Debug + Send + Sync {
    /// Itself, to downcast to the concrete options type.
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any + std::fmt::Debug + Send + Sync> AnyOptions for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl WorkloadOptions {
    /// Sets one workload's options (replacing any set before).
    pub fn set<T: AnyOptions>(&mut self, options: T) {
        self.0.insert(TypeId::of::<T>(), Arc::new(options));
    }

    /// These options with `options` set.
    pub fn with<T: AnyOptions>(mut self, options: T) -> Self {
        self.set(options);
        self
    }

    /// One workload's options: as set, else all unset (the suite's defaults).
    pub fn get<T: AnyOptions + Clone + Default>(&self) -> Cow<'_, T> {
        // `&**o`: the `dyn` inside the `Arc` (the `Arc` is itself `AnyOptions`).
        match self
            .0
            .get(&TypeId::of::<T>())
            .and_then(|o| (**o).as_any().downcast_ref::<T>())
        {
            Some(o) => Cow::Borrowed(o),
            None => Cow::Owned(T::default()),
        }
    }
}

impl std::fmt::Debug for WorkloadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.values()).finish()
    }
}

/// A workload resolved for one run.
pub trait Workload: Send + Sync {
    /// Its registry entry.
    fn entry(&self) -> &'static WorkloadEntry;
    /// Its resolved parameters, as written to the report's config.
    fn params_json(&self) -> serde_json::Value;
    /// Scratch space it needs with `layouts` layouts and the user's images
    /// (what they take stored and flattened, estimated from their indexes),
    /// checked before anything is made.
    fn footprint(&self, layouts: usize, images: &ImageFootprint) -> Footprint;
    /// Progress steps it will report with these layouts.
    fn steps(&self, layouts: &[Box<dyn Layout>]) -> u64;
    /// Builds its fixtures, measures, and records cases and derived figures.
    fn run(&self, ctx: &mut RunContext<'_>) -> Result<(), WorkloadError>;
    /// Refuses what it cannot use of the user's images (opened, not yet
    /// read), before anything is made; nothing by default.
    fn check_images(&self, _images: &[Arc<IndexedImage>]) -> Result<(), WorkloadError> {
        Ok(())
    }
}

/// A parameter the user gave (or a suite default combined with one) is out of range.
#[derive(Debug, thiserror::Error)]
pub enum ParamError {
    #[error("{name} {value} is out of range: {accepted}")]
    OutOfRange {
        name: &'static str,
        value: String,
        accepted: String,
    },
    #[error("{0}")]
    Invalid(String),
}

impl ParamError {
    /// Always bad input.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Usage
    }

    /// `name value` is out of range; `accepted` says what is.
    pub fn range(name: &'static str, value: impl ToString, accepted: impl Into<String>) -> Self {
        ParamError::OutOfRange {
            name,
            value: value.to_string(),
            accepted: accepted.into(),
        }
    }
}

/// `value` if it is at least `min`, else an error naming the option.
pub fn at_least(name: &'static str, value: usize, min: usize) -> Result<usize, ParamError> {
    if value < min {
        return Err(ParamError::range(
            name,
            value,
            format!("use {name} >= {min}"),
        ));
    }
    Ok(value)
}

/// `value` if it lies in `lo..=hi`, else an error naming the option and the range.
pub fn within(
    name: &'static str,
    value: usize,
    lo: usize,
    hi: usize,
    why: &str,
) -> Result<usize, ParamError> {
    if value < lo || value > hi {
        return Err(ParamError::range(
            name,
            value,
            format!("use {name} from {lo} to {hi}{why}"),
        ));
    }
    Ok(value)
}

/// Sorted, deduplicated.
pub fn sorted_unique<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

/// In first-seen order, duplicates dropped.
pub fn dedup_keep_order<T: PartialEq + Clone>(v: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for x in v {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_kept_per_workload_and_default_when_unset() {
        let o = WorkloadOptions::default().with(lookup::Options {
            depths: Some(vec![4]),
            ..Default::default()
        });
        assert_eq!(o.get::<lookup::Options>().depths, Some(vec![4]));
        // Another workload's options are untouched by lookup's.
        assert_eq!(o.get::<storm::Options>().depths, None);
        let o = o.with(storm::Options {
            rounds: Some(2),
            ..Default::default()
        });
        assert_eq!(o.get::<storm::Options>().rounds, Some(2));
        assert_eq!(o.get::<lookup::Options>().depths, Some(vec![4]));
        assert_eq!(o.get::<lookup::Options>().rounds, None);
    }
}
