//! copy-up: the cost of the first write to a large lower file, by size, layout,
//! overlay option set and lower cache state, against an in-run reference copy.
//! With the user's images (`--image`), the same for each image's largest files.

pub mod analyze;
pub mod findings;
pub mod keys;
pub mod measure;
pub mod params;
pub mod render;

pub use keys::NAME;
pub use params::{CacheState, Options, Params, Procedure, Variant};

use std::collections::BTreeMap;

use crate::compare::GateRules;
use crate::layout::{CopyUp, Layout};
use crate::report::{kinds, Derived, Report};
use crate::workload::CaseView;
use crate::workload::{
    BuildContext, Footprint, ImageFootprint, ParamError, RunContext, Workload, WorkloadEntry,
    WorkloadError,
};
use keys::{Cache, View};

/// Registry entry.
pub static ENTRY: WorkloadEntry = WorkloadEntry {
    name: NAME,
    needs_image: false,
    about: "Cost of the first write to a large lower file (copy_up), by size and options.",
    config_key: "copy_up",
    build,
    section: &render::CopyUpSection,
    gate: &Rules,
    costs: None,
    plan_notes: None,
    findings: Some(&findings::Rules),
};

fn build(b: &BuildContext<'_>) -> Result<Box<dyn Workload>, ParamError> {
    Ok(Box::new(CopyUpWorkload {
        params: Params::resolve(b.suite, &b.options.get::<Options>())?,
        synthetic: b.synthetic,
        images: b.images,
    }))
}

/// The copy-up workload with its resolved parameters.
pub struct CopyUpWorkload {
    params: Params,
    /// Whether the synthetic sizes run (not with `--image-only`).
    synthetic: bool,
    /// How many of the user's images the run measures.
    images: usize,
}

impl CopyUpWorkload {
    /// With these parameters (synthetic sizes only).
    pub fn new(params: Params) -> Self {
        CopyUpWorkload {
            params,
            synthetic: true,
            images: 0,
        }
    }
}

impl Workload for CopyUpWorkload {
    fn entry(&self) -> &'static WorkloadEntry {
        &ENTRY
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn footprint(&self, layouts: usize, images: &ImageFootprint) -> Footprint {
        // Images one at a time in every layout, the plain container's copy,
        // and an upper and a reference copy of the largest files.
        let real = images.room(layouts, 2);
        if self.synthetic {
            self.params.footprint(layouts).max(real)
        } else {
            real
        }
    }

    fn steps(&self, layouts: &[Box<dyn Layout>]) -> u64 {
        // A layout with copy-up runs once per option set it takes.
        let subjects: usize = layouts
            .iter()
            .map(|l| match l.capabilities() {
                c if c.copy_up == CopyUp::None => 1,
                _ => self
                    .params
                    .variants
                    .iter()
                    .filter(|v| measure::runs_variant(l.as_ref(), **v))
                    .count(),
            })
            .sum();
        let p = &self.params;
        let sizes = if self.synthetic { p.sizes.len() } else { 0 };
        ((p.samples * sizes + p.image_samples * self.images) * p.caches.len() * subjects) as u64
    }

    fn run(&self, ctx: &mut RunContext<'_>) -> Result<(), WorkloadError> {
        if self.synthetic {
            let mut samples = BTreeMap::new();
            let result = measure::measure(&self.params, ctx, &mut samples);
            // What was measured is real: an interrupted report keeps it.
            analyze::record(ctx.out, &ctx.backing, samples);
            result?;
        }
        if ctx.images.is_empty() {
            return Ok(());
        }
        if !self.synthetic {
            // The synthetic run probes the option sets; an image-only run must too.
            let root = ctx.scratch.path().join(NAME);
            std::fs::create_dir_all(&root).map_err(WorkloadError::io("creating", &root))?;
            measure::probe_variants(&self.params, ctx, &root)?;
        }
        let files = measure::image_files(ctx, self.params.image_files)?;
        let mut samples = BTreeMap::new();
        let result = measure::measure_images(&self.params, ctx, &files, &mut samples);
        let images: Vec<String> = ctx
            .images
            .iter()
            .map(|i| i.reference().to_string())
            .collect();
        analyze::record_images(ctx.out, &ctx.backing, &images, &files, samples);
        result
    }
}

/// The cold ratio to the reference copy at the largest size, for ops that copy
/// (ratio ≥ 0.05): the reference runs interleaved on the same disk, so drift
/// cancels; slopes are absolute disk speed and are left out. 15 %: over 33
/// quick runs (quiet, one core busy, an fsync-heavy neighbour) these ratios
/// varied at most 10.6 % (CV) and gave no false verdict at 15 % in 60
/// comparisons, while `volatile` against the default options (+27–40 %) needs
/// it to be caught (docs/ci-gate.md).
struct Rules;

impl GateRules for Rules {
    fn threshold(&self) -> f64 {
        0.15
    }

    fn timed(&self) -> bool {
        true
    }

    fn calibration(&self) -> &'static str {
        "each copy-up over a copy_file_range + fsync of the same file on the same filesystem, interleaved with it"
    }

    fn gated(&self, d: &Derived, report: &Report) -> bool {
        let Some(v) = View::of_derived(d) else {
            return false;
        };
        let largest = report
            .cases_of(NAME)
            .filter_map(|c| View::of_case(c).and_then(|v| v.size_bytes))
            .max();
        d.kind == kinds::RATIO
            && v.cache == Cache::Cold
            && d.value >= analyze::COPY_FRACTION
            && v.size_bytes.is_some()
            && v.size_bytes == largest
    }

    fn higher_is_better(&self, d: &Derived) -> bool {
        d.kind == kinds::THROUGHPUT
    }

    fn identity_keys(&self) -> &'static [&'static str] {
        &["/depth"]
    }
}
