//! Runs a plan: one scratch filesystem per backing, each workload on it, results
//! recorded and the report folder rewritten (atomically) after each workload so a
//! crash never loses what was measured, and a partial report never says complete.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Instant, SystemTime};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::MountApiChoice;
use crate::host::HostInfo;
use crate::isolate::{self, MountApi, Privilege, Scratch, ScratchRequest};
use crate::layout::{self, LayoutConfig};
use crate::plan::RunPlan;
use crate::report::{self, Report, RunError, RunStatus, ToolInfo, SCHEMA_VERSION};
use crate::workload::{self, Recorded, RunContext, WorkloadError};

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// The final report.
    pub report: Report,
    /// Files written.
    pub written: Vec<PathBuf>,
    /// The error that stopped it, if any.
    pub error: Option<WorkloadError>,
}

fn resolve_api(choice: MountApiChoice) -> MountApi {
    match choice {
        MountApiChoice::New => MountApi::New,
        MountApiChoice::Classic => MountApi::Classic,
        MountApiChoice::Auto if isolate::new_api_available() => MountApi::New,
        MountApiChoice::Auto => MountApi::Classic,
    }
}

fn progress_bar(plan: &RunPlan, total: u64) -> ProgressBar {
    let target = if plan.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// Runs every workload of `plan` on every backing and writes the report folder.
/// `argv` is recorded so the run can be repeated.
pub fn run(
    plan: &RunPlan,
    privilege: Privilege,
    argv: &[String],
    interrupted: &AtomicBool,
) -> Result<RunOutcome, anyhow::Error> {
    let started = Instant::now();
    let api = resolve_api(plan.mount_api);
    let mut host = HostInfo::collect(std::path::Path::new("/"));
    host.privilege = Some(privilege);
    host.mount_api = Some(api);
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        tool: ToolInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        status: RunStatus::Running,
        started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        duration_s: 0.0,
        host,
        config: serde_json::json!({ "plan": plan, "argv": argv }),
        cases: Vec::new(),
        derived: Vec::new(),
        errors: Vec::new(),
        notes: Vec::new(),
    };
    let config = LayoutConfig {
        mount_api: api,
        options: Vec::new(),
        privilege,
    };
    let layouts: Vec<_> = plan
        .layouts
        .iter()
        .map(|&k| layout::create(k, &config))
        .collect();
    let workloads: Vec<_> = plan
        .workloads
        .iter()
        .map(|&k| workload::create(k, plan))
        .collect();
    let steps_per_backing: u64 = workloads.iter().map(|w| w.steps(&plan.layouts)).sum();
    let bar = progress_bar(plan, steps_per_backing * plan.backings.len() as u64);
    let mut out = Recorded::default();
    let mut error = None;
    report::write_report_dir(&plan.out_dir, &report)?;

    'backings: for backing in &plan.backings {
        let footprint = workloads
            .iter()
            .fold(workload::Footprint::default(), |acc, w| {
                let f = w.footprint(layouts.len());
                workload::Footprint {
                    bytes: acc.bytes.max(f.bytes),
                    inodes: acc.inodes.max(f.inodes),
                }
            });
        let fs_size = plan
            .fs_size_bytes
            .unwrap_or_else(|| (footprint.bytes * 2).max(1 << 30));
        bar.set_message(format!("making {backing} scratch fs"));
        let made = Scratch::create(&ScratchRequest {
            root: plan.scratch_root.clone(),
            kind: backing.clone(),
            planned_bytes: footprint.bytes,
            fs_size_bytes: fs_size,
            inodes: Some((footprint.inodes * 4).max(65_536)),
        });
        let mut scratch = match made {
            Ok(s) => s,
            Err(e) => {
                // Never leave a report that looks like it is still running.
                report.status = RunStatus::Failed;
                report.errors.push(RunError {
                    workload: None,
                    message: format!("{backing}: {e}"),
                });
                report.duration_s = started.elapsed().as_secs_f64();
                bar.finish_and_clear();
                report::write_report_dir(&plan.out_dir, &report)?;
                return Err(e.into());
            }
        };
        report.host.backings.push(scratch.info().clone());
        let eviction = scratch.eviction(plan.drop_caches);
        match eviction {
            isolate::EvictionKind::RemountBacking => out.notes.push(format!(
                "{backing}: lookup's cold = the scratch filesystem unmounted and remounted (+ BLKFLSBUF on its loop \
                 device) before a fresh overlay mount; copy-up's cold = the lower file evicted with posix_fadvise \
                 DONTNEED; nothing else on the host is evicted"
            )),
            isolate::EvictionKind::DropCaches => out.notes.push(format!(
                "{backing}: lookup's cold = sync + drop_caches (host-wide) before a fresh overlay mount; copy-up's cold \
                 = the lower file evicted with posix_fadvise DONTNEED"
            )),
            isolate::EvictionKind::FreshMountOnly => out.notes.push(format!(
                "{backing}: the lower filesystem's caches cannot be evicted here (tmpfs keeps its dentries and its \
                 data is the page cache; for dir: pass --drop-caches as root) — lookup's 'cold' means a fresh overlay \
                 mount only"
            )),
        }
        if !scratch.info().accounting_exact {
            out.notes.push(format!(
                "{backing}: an existing directory — statvfs figures include whatever else lives on that filesystem"
            ));
        }
        for w in &workloads {
            let mut ctx = RunContext {
                plan,
                scratch: &mut scratch,
                layouts: &layouts,
                layout_config: &config,
                backing: backing.to_string(),
                eviction,
                progress: &bar,
                interrupted,
                out: &mut out,
            };
            let result = w.run(&mut ctx);
            merge(&mut report, &mut out, started);
            if let Err(e) = result {
                if !matches!(e, WorkloadError::Interrupted) {
                    report.errors.push(RunError {
                        workload: Some(w.kind().name().into()),
                        message: format!("{backing}: {e}"),
                    });
                }
                error = Some(e);
                break 'backings;
            }
            report::write_report_dir(&plan.out_dir, &report)?;
        }
        drop(scratch);
    }
    bar.finish_and_clear();
    report.status = match &error {
        None => RunStatus::Complete,
        Some(WorkloadError::Interrupted) => RunStatus::Interrupted,
        Some(_) => RunStatus::Failed,
    };
    report.duration_s = started.elapsed().as_secs_f64();
    let written = report::write_report_dir(&plan.out_dir, &report)?;
    Ok(RunOutcome {
        report,
        written,
        error,
    })
}

fn merge(report: &mut Report, out: &mut Recorded, started: Instant) {
    for c in &mut out.cases {
        c.id = c.key();
    }
    report.cases.append(&mut out.cases);
    report.derived.append(&mut out.derived);
    report.errors.append(&mut out.errors);
    for n in out.notes.drain(..) {
        if !report.notes.contains(&n) {
            report.notes.push(n);
        }
    }
    for (k, v) in &out.options_in_force {
        report
            .host
            .overlay_options_in_force
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    report.duration_s = started.elapsed().as_secs_f64();
}
