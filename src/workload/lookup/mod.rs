//! lookup: cost of name lookups (stat, readdir) and of mounting, by lower depth,
//! cold and warm.
//!
//! A warm lookup is flat in depth (overlay caches positive and negative
//! dentries); the depth cost shows on *cold* lookups: fresh mount + evicted lower
//! caches + many distinct names, each looked up once, timed per batch.

pub mod analyze;
pub mod measure;
pub mod params;
pub mod render;

pub use params::{Options, Params};

use crate::compare::GateRules;
use crate::layout::Layout;
use crate::report::{kinds, Derived, Report};
use crate::workload::{
    BuildContext, Footprint, ParamError, RunContext, Workload, WorkloadEntry, WorkloadError,
};
use analyze::{Cache, Op, Setting, Target, View};

/// Name in reports.
pub const NAME: &str = "lookup";

/// Registry entry.
pub static ENTRY: WorkloadEntry = WorkloadEntry {
    name: NAME,
    about: "Lookup cost (stat, readdir, mount) by lower depth, cold and warm.",
    config_key: "lookup",
    build,
    section: &render::LookupSection,
    gate: &Rules,
    costs: None,
    plan_notes: None,
};

fn build(b: &BuildContext<'_>) -> Result<Box<dyn Workload>, ParamError> {
    Ok(Box::new(Lookup {
        params: Params::resolve(b.suite, &b.options.lookup)?,
    }))
}

/// The lookup workload with its resolved parameters.
pub struct Lookup {
    params: Params,
}

impl Workload for Lookup {
    fn entry(&self) -> &'static WorkloadEntry {
        &ENTRY
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn footprint(&self, layouts: usize, _image_bytes: u64) -> Footprint {
        self.params.footprint(layouts)
    }

    fn steps(&self, layouts: &[Box<dyn Layout>]) -> u64 {
        (self.params.depths.len() * layouts.len() * (self.params.rounds + 1)
            + self.params.store_images.len()) as u64
    }

    fn run(&self, ctx: &mut RunContext<'_>) -> Result<(), WorkloadError> {
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
            analyze::record(ctx.out, p, &setting, samples.series);
            analyze::record_store(ctx.out, p, &setting, store);
        }
        result
    }
}

/// The cold slopes of stat (bottom, missing names) and of mount: fits over all
/// depths average out the per-depth disk noise of a cold lookup, which makes
/// single-depth ratios swing 10–14 % between runs on a 2-core VM (5 quick suites
/// back to back); warm and readdir figures swing more and are left out.
struct Rules;

impl GateRules for Rules {
    fn threshold(&self) -> f64 {
        0.25
    }

    fn gated(&self, d: &Derived, _report: &Report) -> bool {
        let Some(v) = View::of_derived(d) else {
            return false;
        };
        d.kind == kinds::SLOPE
            && v.cache == Cache::Cold
            && (v.op == Op::Mount
                || (v.op == Op::Stat && matches!(v.target, Target::Bottom | Target::Missing)))
            && d.r2.unwrap_or(0.0) >= 0.8
            && d.value > 0.0
    }

    fn higher_is_better(&self, _d: &Derived) -> bool {
        false
    }

    fn identity_keys(&self) -> &'static [&'static str] {
        &["/names", "/batch", "/readdir_dirs", "/entries_per_layer"]
    }
}
