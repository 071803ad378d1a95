//! import: what converting an image into each layout costs — the time a pull
//! makes the user wait. Each image (the synthetic one and every `--image`) is
//! imported layer by layer into a store that holds the layers below, then
//! whole into a fresh store; the writeback is timed apart. Beside the layouts,
//! `mkfs.erofs` alone on each unpacked layer: the conversion an EROFS store
//! adds, measured without the unpack.

pub mod analyze;
pub mod findings;
pub mod keys;
pub mod measure;
pub mod params;
pub mod render;

pub use keys::NAME;
pub use params::{Options, Params};

use crate::compare::GateRules;
use crate::isolate::mkfs_erofs_takes_tar;
use crate::layout::Layout;
use crate::report::{Derived, Report};
use crate::workload::{
    BuildContext, Footprint, ParamError, RunContext, Workload, WorkloadEntry, WorkloadError,
};

/// Registry entry.
pub static ENTRY: WorkloadEntry = WorkloadEntry {
    name: NAME,
    needs_image: false,
    about: "Time to convert each image into each layout's store, layer by layer and whole.",
    config_key: "import",
    build,
    section: &render::ImportSection,
    plan_notes: None,
    findings: Some(&findings::Rules),
    gate: &Rules,
    costs: None,
};

fn build(b: &BuildContext<'_>) -> Result<Box<dyn Workload>, ParamError> {
    Ok(Box::new(Import {
        params: Params::resolve(b.suite, b.seed, &b.options.get::<Options>())?,
    }))
}

/// The import workload with its resolved parameters.
pub struct Import {
    params: Params,
}

impl Workload for Import {
    fn entry(&self) -> &'static WorkloadEntry {
        &ENTRY
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn footprint(&self, layouts: usize, images: &crate::workload::ImageFootprint) -> Footprint {
        // Each image stored by every layout at once, as its layers unpack.
        self.params.footprint(layouts, images.stored.bytes)
    }

    fn steps(&self, _layouts: &[Box<dyn Layout>]) -> u64 {
        self.params.layers as u64
    }

    fn run(&self, ctx: &mut RunContext<'_>) -> Result<(), WorkloadError> {
        let with_reference = match mkfs_erofs_takes_tar() {
            Ok(tar) => {
                if !tar {
                    ctx.out.note(format!(
                        "{}: import's mkfs.erofs reference converts each layer from a dir: this erofs-utils \
                         has no --tar, so the tar-to-EROFS conversion containerd's differ runs cannot be timed",
                        ctx.backing
                    ));
                }
                true
            }
            Err(e) => {
                ctx.out.note(format!(
                    "{}: import's mkfs.erofs reference skipped: {e}",
                    ctx.backing
                ));
                false
            }
        };
        let mut readings = Vec::new();
        let result = measure::measure(&self.params, ctx, with_reference, &mut readings);
        let names: Vec<&'static str> = ctx.layouts.iter().map(|l| l.name()).collect();
        let same_tree: Vec<Option<usize>> = ctx
            .layouts
            .iter()
            .map(|l| {
                l.capabilities()
                    .same_tree_as
                    .and_then(|n| names.iter().position(|m| *m == n))
            })
            .collect();
        let mut images = vec![("synthetic:import".to_string(), self.params.layers)];
        images.extend(
            ctx.images
                .iter()
                .map(|i| (i.info().reference.clone(), i.info().layers.len())),
        );
        // Every image converted before an interrupt is real: keep it.
        analyze::record(
            ctx.out,
            &analyze::Setting {
                backing: &ctx.backing,
                layouts: &names,
                same_tree: &same_tree,
                images: &images,
            },
            &readings,
        );
        result
    }
}

/// Nothing is gated: an import is one sample per point, dominated by the
/// disk's write-back behaviour; its figures inform, they do not gate.
struct Rules;

impl GateRules for Rules {
    fn threshold(&self) -> f64 {
        0.25
    }

    fn timed(&self) -> bool {
        false
    }

    fn calibration(&self) -> &'static str {
        "nothing is gated: import times are absolute (disk and CPU speed)"
    }

    fn gated(&self, _d: &Derived, _report: &Report) -> bool {
        false
    }

    fn higher_is_better(&self, d: &Derived) -> bool {
        d.kind == crate::report::kinds::THROUGHPUT
    }

    fn identity_keys(&self) -> &'static [&'static str] {
        &["/image", "/image_layers"]
    }
}
