//! lookup: cost of name lookups (stat, readdir) and of mounting, by lower depth,
//! cold and warm.
//!
//! A warm lookup is flat in depth (overlay caches positive and negative
//! dentries); the depth cost shows on *cold* lookups: fresh mount + evicted lower
//! caches + many distinct names, each looked up once, timed per batch.
//!
//! With the user's images (`--image`), every path of each image is looked up
//! the same way through every layout, grouped by the layer it lives in, and the
//! whole tree is walked: where a real tree sits on the synthetic depth sweep.

pub mod analyze;
pub mod findings;
pub mod keys;
pub mod measure;
pub mod params;
pub mod render;

pub use keys::NAME;
pub use params::{Options, Params};

use crate::compare::GateRules;
use crate::layout::Layout;
use crate::report::{kinds, Derived, Report};
use crate::workload::CaseView;
use crate::workload::{
    BuildContext, Footprint, ImageFootprint, ParamError, RunContext, Workload, WorkloadEntry,
    WorkloadError,
};
use analyze::Setting;
use keys::{Cache, Op, Target, View};

/// Registry entry.
pub static ENTRY: WorkloadEntry = WorkloadEntry {
    name: NAME,
    needs_image: false,
    about: "Lookup cost (stat, readdir, mount) by lower depth, cold and warm.",
    config_key: "lookup",
    build,
    section: &render::LookupSection,
    gate: &Rules,
    costs: None,
    plan_notes: None,
    findings: Some(&findings::Rules),
};

fn build(b: &BuildContext<'_>) -> Result<Box<dyn Workload>, ParamError> {
    Ok(Box::new(Lookup {
        params: Params::resolve(b.suite, &b.options.get::<Options>())?,
        synthetic: b.synthetic,
        images: b.images,
    }))
}

/// The lookup workload with its resolved parameters.
pub struct Lookup {
    params: Params,
    /// Whether the synthetic depth sweep runs (not with `--image-only`).
    synthetic: bool,
    /// How many of the user's images the run measures.
    images: usize,
}

impl Workload for Lookup {
    fn entry(&self) -> &'static WorkloadEntry {
        &ENTRY
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn footprint(&self, layouts: usize, images: &ImageFootprint) -> Footprint {
        // Every image in every layout, plus the plain container's full copy.
        let real = images.room(layouts, 1);
        if self.synthetic {
            self.params.footprint(layouts).plus(real)
        } else {
            real
        }
    }

    fn steps(&self, layouts: &[Box<dyn Layout>]) -> u64 {
        let synthetic = if self.synthetic {
            self.params.depths.len() * (self.params.rounds + 1) + self.params.store_images.len()
        } else {
            0
        };
        (layouts.len() * (synthetic + self.images * self.params.image_rounds)) as u64
    }

    fn run(&self, ctx: &mut RunContext<'_>) -> Result<(), WorkloadError> {
        if self.synthetic {
            self.run_synthetic(ctx)?;
        }
        if !ctx.images.is_empty() {
            self.run_images(ctx)?;
        }
        Ok(())
    }
}

impl Lookup {
    fn run_images(&self, ctx: &mut RunContext<'_>) -> Result<(), WorkloadError> {
        let p = &self.params;
        let mut names = Vec::new();
        let mut images = Vec::new();
        for img in ctx.images {
            let index = img
                .index()
                .map_err(|e| WorkloadError::Verify(e.to_string()))?;
            names.push(measure::ImageNames::of(&index));
            images.push((img.reference().to_string(), img.info().layers.len()));
        }
        let fixtures = measure::build_image_fixtures(ctx)?;
        let mut samples = measure::ImageSamples::default();
        let result = measure::measure_images(p, ctx, &fixtures, &names, &mut samples);
        if samples.unexpected > 0 && result.is_ok() {
            return Err(WorkloadError::Verify(format!(
                "{} lookups of the images' paths gave a result the image does not describe (a path \
                 missing, or a walk that saw another number of entries): the layouts are not what was imported",
                samples.unexpected
            )));
        }
        if samples.unexpected == 0 {
            let layout_names: Vec<&'static str> = ctx.layouts.iter().map(|l| l.name()).collect();
            let setting = analyze::ImageSetting {
                layouts: &layout_names,
                baseline: ctx.layouts.iter().position(|l| l.capabilities().baseline),
                images: &images,
                backing: &ctx.backing,
                eviction: ctx.eviction_name(),
            };
            analyze::record_images(ctx.out, p, &setting, &samples.counts, samples.series);
        }
        // The next workloads need the room (a plain container is a full copy).
        if result.is_ok() {
            let root = ctx.scratch.path().join("lookup-images");
            crate::workload::harness::remove_workdir(ctx.layouts, &root)?;
        }
        result
    }

    fn run_synthetic(&self, ctx: &mut RunContext<'_>) -> Result<(), WorkloadError> {
        let p = &self.params;
        let fixtures = measure::build_fixtures(p, ctx)?;
        let mut samples = measure::Samples::default();
        let mut store = std::collections::BTreeMap::new();
        let result = measure::measure(p, ctx, &fixtures, &mut samples)
            .and_then(|()| measure::measure_store(p, ctx, &mut store, &mut samples.unexpected));
        if samples.unexpected > 0 && result.is_ok() {
            return Err(WorkloadError::Verify(format!(
                "{} lookups gave a result the image does not describe (a found name missing, \
                 a missing name found, or a wrong readdir count): the layouts are not what was built",
                samples.unexpected
            )));
        }
        // What was measured is real: an interrupted run keeps it (unless a
        // lookup contradicted the image).
        if samples.unexpected == 0 {
            let names: Vec<&'static str> = ctx.layouts.iter().map(|l| l.name()).collect();
            let timeouts: Vec<Option<f64>> = ctx
                .layouts
                .iter()
                .map(|l| l.kernel_cache_timeout_s())
                .collect();
            let same_tree: Vec<Option<usize>> = ctx
                .layouts
                .iter()
                .map(|l| {
                    l.capabilities()
                        .same_tree_as
                        .and_then(|n| names.iter().position(|m| *m == n))
                })
                .collect();
            let setting = Setting {
                layouts: &names,
                baseline: ctx.layouts.iter().position(|l| l.capabilities().baseline),
                same_tree: &same_tree,
                backing: &ctx.backing,
                eviction: ctx.eviction_name(),
                timeouts: &timeouts,
            };
            analyze::record_calibrated(ctx.out, p, &setting, &samples.series, samples.reference);
            analyze::record(ctx.out, p, &setting, samples.series);
            analyze::record_store(ctx.out, p, &setting, store);
        }
        result
    }
}

/// Calibrated cold lookups: each batch of a layout's cold `stat`s is divided by
/// the same names looked up cold in a plain directory of the backing right
/// after it, so what the machine's load does to both cancels. Gated: the slope
/// of those quotients over depth (× a backing lookup per layer, r² ≥ 0.8) and
/// the quotient at the deepest stack, for names in the bottom layer and for
/// missing names. Over 33 quick runs (quiet, a core busy, an fsync-heavy
/// neighbour) the quotients varied 0.5–1.5 % (CV) at every depth up to 128
/// layers, where the absolute slope had moved +33 % with a busy core. Left
/// out: absolute times, mount time, warm and readdir figures (docs/ci-gate.md).
struct Rules;

impl GateRules for Rules {
    fn threshold(&self) -> f64 {
        0.25
    }

    fn timed(&self) -> bool {
        true
    }

    fn calibration(&self) -> &'static str {
        "each batch of cold stats over the same names stat'ed cold in a plain directory of the backing right after it"
    }

    fn gated(&self, d: &Derived, report: &Report) -> bool {
        let Some((v, role)) = View::calibrated(d) else {
            return false;
        };
        let cold_search = role == keys::Calibration::Normalised
            && v.cache == Cache::Cold
            && v.op == Op::Stat
            && matches!(v.target, Target::Bottom | Target::Missing);
        if !cold_search {
            return false;
        }
        match d.kind.as_str() {
            kinds::SLOPE => d.r2.unwrap_or(0.0) >= 0.8 && d.value > 0.0,
            kinds::RATIO => v.depth.is_some() && v.depth == deepest(report),
            _ => false,
        }
    }

    fn higher_is_better(&self, _d: &Derived) -> bool {
        false
    }

    fn identity_keys(&self) -> &'static [&'static str] {
        &["/names", "/batch", "/readdir_dirs", "/entries_per_layer"]
    }
}

/// The deepest stack of the report's depth sweep.
fn deepest(report: &Report) -> Option<usize> {
    report
        .cases_of(NAME)
        .filter_map(|c| View::of_case(c).and_then(|v| v.depth))
        .max()
}
