//! inodes: exact inode and byte consumption per layout, phase by phase.
//!
//! Each layout gets a *fresh* filesystem of the run's backing kind (so counts
//! never mix), measured with `statvfs` after every phase: empty · shared base
//! layers · all image layers · containers created · mounted · written · removed ·
//! images removed. The last must equal the first (anything left is a leak and
//! fails the run). A walk counts entries by kind and is checked against the
//! `statvfs` delta; a difference is reported and explained.

pub mod analyze;
pub mod costs;
pub mod findings;
pub mod images;
pub mod keys;
pub mod measure;
pub mod params;
pub mod render;

pub use costs::costs_from_report;
pub use keys::NAME;
pub use params::{Options, Params};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::capacity::images::{ImageDemand, LayoutImageCosts};
use crate::capacity::{Fleet, UnitCosts};
use crate::compare::GateRules;
use crate::isolate::ScratchRequest;
use crate::layout::Layout;
use crate::report::{kinds, Derived, Report};
use crate::workload::CaseView;
use crate::workload::{
    BuildContext, CostSource, CostsError, Footprint, ImageFootprint, ParamError, RunContext,
    Workload, WorkloadEntry, WorkloadError,
};
use analyze::Measured;
use keys::{Phase, PhaseTable};

/// Registry entry.
pub static ENTRY: WorkloadEntry = WorkloadEntry {
    name: NAME,
    needs_image: false,
    about: "Inodes and bytes per layer, image and container, phase by phase.",
    config_key: "inodes",
    build,
    section: &render::InodesSection,
    gate: &Rules,
    costs: Some(&Costs),
    plan_notes: None,
    findings: Some(&findings::Rules),
};

fn build(b: &BuildContext<'_>) -> Result<Box<dyn Workload>, ParamError> {
    Ok(Box::new(Inodes {
        params: Params::resolve(b.suite, &b.options.get::<Options>(), b.seed)?,
        synthetic: b.synthetic,
        images: b.images,
        streams_recorded: AtomicBool::new(false),
    }))
}

/// The inodes workload with its resolved parameters.
pub struct Inodes {
    params: Params,
    /// Whether the synthetic image sets run (not with `--image-only`).
    synthetic: bool,
    /// How many of the user's images the run measures.
    images: usize,
    /// Whether the images' stream figures are in the report already: they
    /// describe the images, not a backing (layout `stream`, no backing
    /// param), so a run over several backings records them once.
    streams_recorded: AtomicBool,
}

impl Workload for Inodes {
    fn entry(&self) -> &'static WorkloadEntry {
        &ENTRY
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn footprint(&self, _layouts: usize, _images: &ImageFootprint) -> Footprint {
        // Each layout, synthetic or real, gets a fresh filesystem of its own.
        if self.synthetic {
            self.params.footprint()
        } else {
            Footprint::default()
        }
    }

    fn steps(&self, layouts: &[Box<dyn Layout>]) -> u64 {
        let synthetic = if self.synthetic {
            self.params.layers.len()
        } else {
            0
        };
        let images = usize::from(self.images > 0);
        (layouts.len() * (synthetic + images)) as u64
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

impl Inodes {
    /// Every layout stores the user's images in one store on a fresh
    /// filesystem, layer by layer, then runs containers of them.
    fn run_images(&self, ctx: &mut RunContext<'_>) -> Result<(), WorkloadError> {
        let p = &self.params;
        if !self.streams_recorded.swap(true, Ordering::Relaxed) {
            let mut profiles = Vec::new();
            for img in ctx.images {
                profiles.push(
                    img.index()
                        .map_err(|e| WorkloadError::Verify(e.to_string()))?
                        .profile(),
                );
            }
            images::record_profiles(ctx.out, &profiles);
        }
        let room =
            ImageFootprint::of(ctx.images).map_err(|e| WorkloadError::Verify(e.to_string()))?;
        let containers = p.containers.min(MAX_IMAGE_CONTAINERS);
        for layout in ctx.layouts {
            ctx.check_interrupted()?;
            ctx.progress
                .set_message(format!("inodes: the images in {}", layout.name()));
            let fresh = measure::fresh_image_scratch(&room, containers, ctx.scratch.request())?;
            let measured =
                measure::measure_images(layout.as_ref(), &fresh, ctx.images, containers, p.writes)?;
            drop(fresh);
            images::record_images(ctx.out, &ctx.backing, layout.name(), p.writes, &measured);
            ctx.progress.inc(1);
        }
        Ok(())
    }

    fn run_synthetic(&self, ctx: &mut RunContext<'_>) -> Result<(), WorkloadError> {
        let p = &self.params;
        ctx.progress.set_message("inodes: materialising image sets");
        let mut results: BTreeMap<(usize, usize), PhaseTable> = BTreeMap::new();
        let result = (|| {
            for &layers in &p.layers {
                for (li, layout) in ctx.layouts.iter().enumerate() {
                    ctx.check_interrupted()?;
                    let fresh = measure::fresh_scratch(p, layers, ctx.scratch.request())?;
                    let phases = measure::measure_phases(layout.as_ref(), &fresh, p, layers)?;
                    drop(fresh);
                    let first = phases.first().map(|(_, u, _)| u.used_inodes);
                    let last = phases.last().map(|(_, u, _)| u.used_inodes);
                    if first != last {
                        return Err(WorkloadError::Verify(format!(
                            "{} on {}: {} inodes still used after removing everything (empty fs: {}) — a leak",
                            layout.name(),
                            ctx.backing,
                            last.unwrap_or(0),
                            first.unwrap_or(0)
                        )));
                    }
                    results.insert((li, layers), phases);
                    ctx.progress.inc(1);
                }
            }
            Ok(())
        })();
        // Every image set finished before an interrupt is real: keep it.
        let measured: Vec<Measured<'_>> = ctx
            .layouts
            .iter()
            .map(|l| Measured {
                name: l.name(),
                caps: l.capabilities(),
            })
            .collect();
        analyze::record(ctx.out, p, &ctx.backing, &measured, &results);
        result
    }
}

/// Containers per image measured on real images (each plain container is a
/// full copy of the image).
pub const MAX_IMAGE_CONTAINERS: usize = 2;

/// Counts are exact (statvfs of a fresh filesystem): every per-unit cost and the
/// growth slope are gated, with a threshold that only a real change crosses.
struct Rules;

impl GateRules for Rules {
    fn threshold(&self) -> f64 {
        0.05
    }

    fn timed(&self) -> bool {
        false
    }

    fn calibration(&self) -> &'static str {
        "none needed: inode and byte counts are exact (statvfs of the run's own scratch filesystem)"
    }

    fn gated(&self, d: &Derived, _report: &Report) -> bool {
        let Some(v) = keys::View::of_derived(d) else {
            return false;
        };
        d.kind == "per-unit" || (d.kind == kinds::SLOPE && v.phase == Some(Phase::Layers))
    }

    fn higher_is_better(&self, _d: &Derived) -> bool {
        false
    }

    fn identity_keys(&self) -> &'static [&'static str] {
        &[
            "/images",
            "/shared_pct",
            "/containers",
            "/files_per_layer",
            "/dirs_per_layer",
            "/writes",
            "/seed",
        ]
    }
}

/// The parameters that measure a fleet's per-unit costs: a small instance (2
/// images, 1 container each) of the same image shape.
pub fn measurement_params(f: &Fleet, seed: u64) -> Params {
    Params {
        layers: vec![f.layers],
        images: 2,
        shared_pct: f.shared_pct,
        containers: usize::from(f.containers > 0),
        files_per_layer: f.files_per_layer,
        dirs_per_layer: f.dirs_per_layer,
        max_file_bytes: 16 * 1024,
        writes: f.writes,
        new_files: f.writes,
        deletes: f.writes / 2,
        seed,
    }
}

/// Measures `p`'s per-unit costs for each layout, each on a fresh scratch
/// filesystem made like `like` (what `overlaybench plan` does without
/// --from). Here, not in `measure`, because it turns the phases into costs
/// with `analyze`, and `measure` must not reach into `analyze`'s kin.
pub fn measure_costs(
    p: &Params,
    layouts: &[Box<dyn Layout>],
    like: &ScratchRequest,
) -> Result<BTreeMap<String, UnitCosts>, WorkloadError> {
    let layers = p.layers.first().copied().unwrap_or(1);
    let mut out = BTreeMap::new();
    for layout in layouts {
        let fresh = measure::fresh_scratch(p, layers, like)?;
        let phases = measure::measure_phases(layout.as_ref(), &fresh, p, layers)?;
        if let Some(c) = analyze::unit_costs(p, &phases) {
            out.insert(layout.name().to_string(), c);
        }
    }
    Ok(out)
}

/// Per-unit costs for capacity plans.
struct Costs;

impl CostSource for Costs {
    fn read_from_report(
        &self,
        report: &Report,
        fleet: &Fleet,
        backing: &str,
    ) -> Result<BTreeMap<String, UnitCosts>, CostsError> {
        costs_from_report(report, fleet, backing)
    }

    fn measure(
        &self,
        fleet: &Fleet,
        seed: u64,
        layouts: &[Box<dyn Layout>],
        like: &ScratchRequest,
    ) -> Result<BTreeMap<String, UnitCosts>, WorkloadError> {
        measure_costs(&measurement_params(fleet, seed), layouts, like)
    }

    fn measure_images(
        &self,
        images: &[std::sync::Arc<crate::image::IndexedImage>],
        demand: &[ImageDemand],
        writes: usize,
        layouts: &[Box<dyn Layout>],
        like: &ScratchRequest,
    ) -> Result<Vec<LayoutImageCosts>, WorkloadError> {
        let room = ImageFootprint::of(images).map_err(|e| WorkloadError::Verify(e.to_string()))?;
        let containers = usize::from(demand.iter().any(|d| d.containers > 0));
        let mut out = Vec::new();
        for layout in layouts {
            let fresh = measure::fresh_image_scratch(&room, containers, like)?;
            let measured =
                measure::measure_images(layout.as_ref(), &fresh, images, containers, writes)?;
            out.push(costs::image_costs(layout.name(), &measured));
        }
        Ok(out)
    }

    fn images_from_report(
        &self,
        report: &Report,
        images: &[std::sync::Arc<crate::image::IndexedImage>],
        backing: &str,
    ) -> Result<Vec<LayoutImageCosts>, CostsError> {
        let wanted: Vec<(String, Vec<(String, usize)>)> = images
            .iter()
            .map(|i| {
                (
                    i.reference().to_string(),
                    i.info()
                        .layers
                        .iter()
                        .enumerate()
                        .map(|(k, l)| (l.chain_id.clone(), k))
                        .collect(),
                )
            })
            .collect();
        costs::image_costs_from_report(report, &wanted, backing)
    }
}
