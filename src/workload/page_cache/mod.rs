//! page-cache: how much memory K containers reading the same image really use.
//! Through overlay the K readers share one cached copy of each lower file; plain
//! copies are cached K times; after a copy-up a container caches its own copy.
//! With the user's images (`--image`), the containers read each image's own
//! files (all regular files up to `--read-budget`, or those `--read-set` globs pick).

pub mod analyze;
pub mod findings;
pub mod keys;
pub mod measure;
pub mod params;
pub mod render;

pub use keys::NAME;
pub use params::{Options, Params};

use std::fs;
use std::path::Path;

use crate::compare::GateRules;
use crate::layout::Layout;
use crate::probe::memory::Memory;
use crate::probe::residency::MemoryCgroup;
use crate::report::{Derived, Report};
use crate::workload::{
    BuildContext, Footprint, ImageFootprint, ParamError, RunContext, Workload, WorkloadEntry,
    WorkloadError,
};

/// Registry entry.
pub static ENTRY: WorkloadEntry = WorkloadEntry {
    name: NAME,
    needs_image: false,
    about: "Page-cache memory of K containers reading one image (sharing factor).",
    config_key: "page_cache",
    build,
    section: &render::PageCacheSection,
    gate: &Rules,
    costs: None,
    plan_notes: None,
    findings: Some(&findings::Rules),
};

fn build(b: &BuildContext<'_>) -> Result<Box<dyn Workload>, ParamError> {
    let available = Memory::current().and_then(|m| m.available_bytes);
    Ok(Box::new(PageCache {
        params: Params::resolve(b, &b.options.get::<Options>(), available, NAME)?,
        synthetic: b.synthetic,
        images: b.images,
    }))
}

/// The page-cache workload with its resolved parameters.
pub struct PageCache {
    params: Params,
    /// Whether the synthetic set runs (not with `--image-only`).
    synthetic: bool,
    /// How many of the user's images the run measures.
    images: usize,
}

impl Workload for PageCache {
    fn entry(&self) -> &'static WorkloadEntry {
        &ENTRY
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn footprint(&self, layouts: usize, images: &ImageFootprint) -> Footprint {
        // One image at a time in every layout, K plain containers (full
        // copies) and half of them copying the set up.
        let k = self.params.containers.iter().copied().max().unwrap_or(1) as u64;
        let real = images.room(layouts, k + k.div_ceil(2));
        if self.synthetic {
            self.params.footprint(layouts).max(real)
        } else {
            real
        }
    }

    fn steps(&self, layouts: &[Box<dyn Layout>]) -> u64 {
        let synthetic = if self.synthetic {
            self.params.containers.len() + self.params.images.len()
        } else {
            0
        };
        (layouts.len() * (synthetic + self.params.containers.len() * self.images)) as u64
    }

    fn run(&self, ctx: &mut RunContext<'_>) -> Result<(), WorkloadError> {
        if ctx.scratch.kind().data_is_page_cache() {
            ctx.out.note(format!(
                "{}: page-cache skipped — on tmpfs the data *is* the page cache (shmem), so sharing cannot be \
                 measured there; use a disk filesystem (ext4, xfs)",
                ctx.backing
            ));
            return Ok(());
        }
        let cgroup = fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|t| MemoryCgroup::find(&t, Path::new("/sys/fs/cgroup")));
        match &cgroup {
            Some(c) => ctx.out.note(format!(
                "{}: page-cache charges go to memory cgroup {} (read from {}, key {})",
                ctx.backing,
                c.path,
                c.stat.display(),
                c.key
            )),
            None => ctx.out.note(format!(
                "{}: no memory cgroup found; cgroup figures omitted",
                ctx.backing
            )),
        }
        let names: Vec<&str> = ctx.layouts.iter().map(|l| l.name()).collect();
        if self.synthetic {
            let mut readings = Vec::new();
            let result = measure::measure(&self.params, ctx, cgroup.as_ref(), &mut readings)
                .and_then(|()| {
                    measure::measure_images(&self.params, ctx, cgroup.as_ref(), &mut readings)
                });
            // Every K finished before an interrupt is real: keep it.
            analyze::record(ctx.out, &self.params, &ctx.backing, &names, readings);
            result?;
        }
        if ctx.images.is_empty() {
            return Ok(());
        }
        let mut sets = Vec::new();
        let mut images = Vec::new();
        for img in ctx.images {
            let index = img
                .index()
                .map_err(|e| WorkloadError::Verify(e.to_string()))?;
            let set = self.params.read_set(&index);
            if set.names.is_empty() {
                ctx.out.note(format!(
                    "page-cache: no regular file of {} matches --read-set {} within --read-budget {} bytes; \
                     the image is not measured",
                    img.reference(),
                    self.params.read_set.join(" "),
                    self.params.read_budget
                ));
            } else if set.left_out > 0 {
                ctx.out.note(format!(
                    "page-cache: {} files ({} bytes) of {} are read; {} more matching files are left out by \
                     --read-budget {} bytes",
                    set.names.len(),
                    set.bytes,
                    img.reference(),
                    set.left_out,
                    self.params.read_budget
                ));
            }
            images.push(img.reference().to_string());
            sets.push(set);
        }
        let mut readings = Vec::new();
        let result =
            measure::measure_user_images(&self.params, ctx, cgroup.as_ref(), &sets, &mut readings);
        analyze::record_images(
            ctx.out,
            &self.params,
            &ctx.backing,
            &names,
            &images,
            &sets,
            readings,
        );
        result
    }
}

/// Sharing factors are exact ratios of resident pages: gated, higher is better.
struct Rules;

impl GateRules for Rules {
    fn threshold(&self) -> f64 {
        0.05
    }

    fn timed(&self) -> bool {
        false
    }

    fn calibration(&self) -> &'static str {
        "none needed: sharing factors are exact page counts (mincore)"
    }

    fn gated(&self, d: &Derived, _report: &Report) -> bool {
        d.kind == keys::SHARING
    }

    fn higher_is_better(&self, d: &Derived) -> bool {
        d.kind == keys::SHARING
    }

    fn identity_keys(&self) -> &'static [&'static str] {
        &["/set_bytes", "/files"]
    }
}
