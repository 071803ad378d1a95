//! app: the user's own image started on every layout with a real OCI runtime
//! (crun) — time to ready, cold and warm.
//!
//! Per layout the image is imported, a container made, and in every round
//! (layouts interleaved, so drift cancels) the backing is evicted the way
//! lookup evicts it, the container mounted afresh and the image's command run
//! until ready (exit 0, or a line matching `--app-ready-line`): cold; then run
//! again at once: warm. A start that is never ready fails that layout with the
//! last lines of its output; nothing of it keeps running or stays mounted.

pub mod analyze;
pub mod findings;
pub mod keys;
pub mod measure;
pub mod params;
pub mod render;

pub use keys::NAME;
pub use params::{Options, Params};

use std::sync::Arc;

use crate::compare::GateRules;
use crate::image::{IndexedImage, RunConfig, RunConfigError, StartupReads};
use crate::layout::Layout;
use crate::report::{kinds, Derived, Report};
use crate::runtime::{CgroupView, ProcessSpec, Readiness, Runtime};
use crate::workload::{
    BuildContext, CaseView, Footprint, ImageFootprint, ParamError, RunContext, Workload,
    WorkloadEntry, WorkloadError,
};
use keys::{Cache, Ready, View};

/// Registry entry.
pub static ENTRY: WorkloadEntry = WorkloadEntry {
    name: NAME,
    needs_image: true,
    about: "The user's own image started with an OCI runtime (crun) on every layout: time to ready, cold and warm.",
    config_key: "app",
    build,
    section: &render::AppSection,
    gate: &Rules,
    costs: None,
    plan_notes: Some(&render::AppPlan),
    findings: Some(&findings::Rules),
};

fn build(b: &BuildContext<'_>) -> Result<Box<dyn Workload>, ParamError> {
    Ok(Box::new(App {
        params: Params::resolve(b.suite, &b.options.get::<Options>(), b.images)?,
    }))
}

/// The app workload with its resolved parameters.
pub struct App {
    params: Params,
}

impl Workload for App {
    fn entry(&self) -> &'static WorkloadEntry {
        &ENTRY
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.params).unwrap_or_default()
    }

    fn footprint(&self, layouts: usize, images: &ImageFootprint) -> Footprint {
        // One image in every layout, plus the plain container's full copy.
        images.room(layouts, 1)
    }

    fn steps(&self, layouts: &[Box<dyn Layout>]) -> u64 {
        // The recording start, then the timed rounds.
        (layouts.len() * (self.params.rounds + 1)) as u64
    }

    fn check_images(&self, images: &[Arc<IndexedImage>]) -> Result<(), WorkloadError> {
        if let Some(image) = images.first() {
            let config = run_config(image)?;
            config.checked_argv(image.reference(), self.params.command.as_deref())?;
        }
        Ok(())
    }

    fn run(&self, ctx: &mut RunContext<'_>) -> Result<(), WorkloadError> {
        let p = &self.params;
        let Some(image) = ctx.images.first().cloned() else {
            return Ok(());
        };
        let reference = image.reference().to_string();
        if ctx.images.len() > 1 {
            ctx.out.note(format!(
                "app: started {reference}, the first --image only; the others are not started"
            ));
        }
        // Checked before anything is imported: a bad config or no command is bad input.
        let config = run_config(&image)?;
        let args = config.checked_argv(&reference, p.command.as_deref())?;
        let runtime = Runtime::detect()?;
        let cgroups = CgroupView::for_runtime()?;
        ctx.out.note(format!(
            "app: started with the OCI runtime {} ({}){}",
            runtime.program,
            runtime.version,
            if cgroups.hybrid() {
                "; this host mixes cgroup v1 and v2 (hybrid), which crun refuses, so the v2 \
                 hierarchy was hidden from it in the tool's own mount namespace"
            } else {
                ""
            }
        ));
        let ready = match &p.ready_line {
            Some(r) => Readiness::Line(Params::compile(r).map_err(|e| {
                WorkloadError::Verify(format!("--app-ready-line checked earlier: {e}"))
            })?),
            None => Readiness::Exit,
        };
        let root = ctx.scratch.path().join(NAME);
        let plan = measure::Plan {
            runtime: &runtime,
            process: ProcessSpec {
                args,
                env: config.env.clone(),
                cwd: config.working_dir.clone().unwrap_or_else(|| "/".into()),
                uid: 0,
                gid: 0,
            },
            user: config.user.clone(),
            image: reference.clone(),
            ready,
            root: root.clone(),
            state: root.join("runtime-state"),
        };
        let fixtures = measure::build_fixtures(ctx, &root)?;
        let mut samples = keys::Samples::default();
        let mut users = std::collections::BTreeMap::new();
        let result = measure::record_read_sets(p, &plan, ctx, &fixtures, &mut users, &mut samples)
            .and_then(|()| {
                // What the start read, kept on the image: storm's containers
                // of it read the same files instead of its synthetic names.
                if let Some((li, rs)) = samples.read_sets.iter().next() {
                    image.set_startup_reads(StartupReads {
                        paths: rs.files.iter().map(|f| f.path.clone()).collect(),
                        recorded_by: format!("{NAME} on {}", ctx.layouts[*li].name()),
                    });
                }
                measure::measure(p, &plan, ctx, &fixtures, &mut users, &mut samples)
            });
        drop(cgroups);
        let names: Vec<&'static str> = ctx.layouts.iter().map(|l| l.name()).collect();
        for (li, lines) in &samples.output {
            let shown: Vec<&String> = lines.iter().rev().take(5).rev().collect();
            if !shown.is_empty() {
                ctx.out.note(format!(
                    "app: {}: the application's last output on its first start: {}",
                    names[*li],
                    shown
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" | ")
                ));
            }
        }
        let setting = analyze::Setting {
            layouts: &names,
            image: &reference,
            backing: &ctx.backing,
            ready: if p.ready_line.is_some() {
                Ready::Line
            } else {
                Ready::Exit
            },
        };
        analyze::record(ctx.out, &setting, &samples);
        result?;
        crate::workload::harness::remove_workdir(ctx.layouts, &root)?;
        if !samples.failed.is_empty() {
            return Err(WorkloadError::Verify(
                samples
                    .failed
                    .values()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n"),
            ));
        }
        Ok(())
    }
}

/// The image's config, refused when its source has none (nothing would say
/// how the image starts: its Env, User, WorkingDir).
fn run_config(image: &IndexedImage) -> Result<RunConfig, WorkloadError> {
    image.source().run_config().cloned().ok_or_else(|| {
        RunConfigError::NoConfig {
            image: image.reference().to_string(),
        }
        .into()
    })
}

/// Gated: each layout's median cold time to ready over plain's in the same
/// run (layouts interleaved round by round, so what the machine's load does
/// to both largely cancels), the figure a storage choice rests on. Left out:
/// absolute times and warm starts (a warm start is mostly the runtime's and
/// the application's own CPU time, which the layout does not change). On the
/// python fixture (5 rounds) the ratios moved 1-4 % between idle runs and
/// beside a neighbour writing with fsync and spinning a core; beside a
/// release build on both cores one moved -56 %, its interval spanning the
/// threshold (no verdict): 0 false verdicts in 4 comparisons. Few runs, so
/// the threshold stays lookup's (docs/ci-gate.md).
struct Rules;

impl GateRules for Rules {
    fn threshold(&self) -> f64 {
        0.25
    }

    fn timed(&self) -> bool {
        true
    }

    fn calibration(&self) -> &'static str {
        "each layout's median cold time to ready over plain's, measured interleaved in the same run; ratios moved 1-4 % idle and beside an fsync and CPU neighbour, 0 false verdicts in 4 comparisons"
    }

    fn gated(&self, d: &Derived, _report: &Report) -> bool {
        d.kind == kinds::RATIO
            && View::of_derived(d).is_some_and(|v| {
                v.cache == Cache::Cold && v.baseline.as_deref().is_some_and(keys::is_baseline)
            })
    }

    fn higher_is_better(&self, _d: &Derived) -> bool {
        false
    }

    fn identity_keys(&self) -> &'static [&'static str] {
        &["/command", "/ready_line"]
    }
}
