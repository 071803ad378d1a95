//! `overlaybench run`: one scratch filesystem per backing, each workload on it,
//! results recorded and the report folder rewritten (atomically) after each
//! workload so a crash never loses what was measured, and a partial report never
//! says complete.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::AppError;
use crate::config::RunConfig;
use crate::host::HostInfo;
use crate::image::source;
use crate::image::ImageSource;
use crate::isolate::{EvictionKind, Privilege, Scratch, ScratchRequest};
use crate::layout::{self, LayoutConfig};
use crate::report::{self, Report, RunError, RunStatus};
use crate::workload::{self, Footprint, Recorded, RunContext, WorkloadError};

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

fn progress_bar(show: bool, total: u64) -> ProgressBar {
    let target = if show {
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

fn eviction_note(backing: &str, eviction: EvictionKind) -> String {
    match eviction {
        EvictionKind::RemountBacking => format!(
            "{backing}: lookup's cold = the scratch filesystem unmounted and remounted (+ BLKFLSBUF on its loop \
             device) before a fresh overlay mount; copy-up's cold = the lower file evicted with posix_fadvise \
             DONTNEED; nothing else on the host is evicted"
        ),
        EvictionKind::DropCaches => format!(
            "{backing}: lookup's cold = sync + drop_caches (host-wide) before a fresh overlay mount; copy-up's cold \
             = the lower file evicted with posix_fadvise DONTNEED"
        ),
        EvictionKind::FreshMountOnly => format!(
            "{backing}: the lower filesystem's caches cannot be evicted here (tmpfs keeps its dentries and its \
             data is the page cache; for dir: pass --drop-caches as root) — lookup's 'cold' means a fresh overlay \
             mount only"
        ),
    }
}

/// Runs every workload of `cfg` on every backing and writes the report folder.
/// `argv` is recorded so the run can be repeated.
pub fn run(
    cfg: &RunConfig,
    privilege: Privilege,
    argv: &[String],
    interrupted: &AtomicBool,
) -> Result<RunOutcome, AppError> {
    let started = Instant::now();
    let api = cfg.mount_api.resolve();
    let mut host = HostInfo::collect(std::path::Path::new("/"));
    host.privilege = Some(privilege);
    host.mount_api = Some(api);
    let mut report = Report::new(host, json!({ "plan": cfg.to_json(), "argv": argv }));
    // The user's images, opened before anything is made: a bad or unreachable
    // image is refused here (manifests and configs only; layers stream later).
    let images: Vec<Arc<dyn ImageSource>> = cfg
        .images
        .iter()
        .map(|r| source::open(r, &cfg.image_options).map(Arc::from))
        .collect::<Result<_, _>>()?;
    report.images = images.iter().map(|i| i.info().clone()).collect();
    let image_bytes: u64 = images
        .iter()
        .map(|i| i.info().unpacked_bytes_hint().bytes)
        .sum();
    let sections = workload::sections();
    let config = LayoutConfig {
        mount_api: api,
        options: Vec::new(),
        privilege,
    };
    // Each layout is probed on this host: one the user named must run (exit 3
    // naming what is missing); one taken by default is skipped, with a note.
    let mut layouts = Vec::new();
    let mut skipped = Vec::new();
    for l in cfg
        .layouts
        .iter()
        .filter_map(|name| layout::create(name, &config))
    {
        match l.host_support() {
            Ok(()) => layouts.push(l),
            Err(e) if cfg.layouts_given => return Err(e.into()),
            Err(e) => skipped.push(format!("skipped: {e}")),
        }
    }
    report.notes.extend(skipped);
    let steps_per_backing: u64 = cfg.workloads.iter().map(|w| w.steps(&layouts)).sum();
    let bar = progress_bar(cfg.progress, steps_per_backing * cfg.backings.len() as u64);
    let mut out = Recorded::default();
    let mut error = None;
    report::write_report_dir(&cfg.out_dir, &report, &sections)?;

    'backings: for backing in &cfg.backings {
        let footprint = cfg.workloads.iter().fold(Footprint::default(), |acc, w| {
            let f = w.footprint(layouts.len(), image_bytes);
            Footprint {
                bytes: acc.bytes.max(f.bytes),
                inodes: acc.inodes.max(f.inodes),
            }
        });
        let fs_size = cfg
            .fs_size_bytes
            .unwrap_or_else(|| (footprint.bytes * 2).max(1 << 30));
        bar.set_message(format!("making {backing} scratch fs"));
        let made = Scratch::create(&ScratchRequest {
            root: cfg.scratch_root.clone(),
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
                report::write_report_dir(&cfg.out_dir, &report, &sections)?;
                return Err(e.into());
            }
        };
        report.host.backings.push(scratch.info().clone());
        let eviction = scratch.eviction(cfg.drop_caches);
        out.note(eviction_note(&backing.to_string(), eviction));
        for l in &layouts {
            for n in l.host_notes(scratch.path()) {
                out.note(format!("{backing}: {}: {n}", l.name()));
            }
        }
        if !scratch.info().accounting_exact {
            out.note(format!(
                "{backing}: an existing directory — statvfs figures include whatever else lives on that filesystem"
            ));
        }
        for w in &cfg.workloads {
            let mut ctx = RunContext {
                scratch: &mut scratch,
                layouts: &layouts,
                images: &images,
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
                        workload: Some(w.entry().name.into()),
                        message: format!("{backing}: {e}"),
                    });
                }
                error = Some(e);
                break 'backings;
            }
            report::write_report_dir(&cfg.out_dir, &report, &sections)?;
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
    let written = report::write_report_dir(&cfg.out_dir, &report, &sections)?;
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

/// The terminal summary of a finished run.
pub fn terminal_summary(report: &Report) -> String {
    report::summary::terminal(report, &workload::sections())
}
