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
use crate::claims;
use crate::config::RunConfig;
use crate::host::HostInfo;
use crate::image::source;
use crate::image::IndexedImage;
use crate::isolate::{
    self, BackingKind, EvictionKind, IsolateError, Privilege, Scratch, ScratchRequest,
};
use crate::layout::{self, LayoutConfig};
use crate::report::{self, Report, RunError, RunStatus, Skipped};
use crate::stop;
use crate::workload::{self, Footprint, ImageFootprint, Recorded, RunContext, WorkloadError};

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// The report folder (claimed when the run started).
    pub out_dir: PathBuf,
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

/// The size of each scratch filesystem: `--fs-size`, else twice the planned
/// writes (at least 1 GiB) but never more than the host has free.
fn scratch_size(cfg: &RunConfig, backing: &BackingKind, planned: u64) -> Result<u64, AppError> {
    if let Some(s) = cfg.fs_size_bytes {
        return Ok(s);
    }
    let want = (planned * 2)
        .max(1 << 30)
        .max(isolate::min_fs_bytes(backing));
    let root = match backing {
        BackingKind::Dir(p) => p.clone(),
        _ => cfg.scratch_root.clone(),
    };
    let avail = isolate::host_available_bytes(&root, backing)?;
    // Leave the host a tenth of its free space; what was planned must still fit.
    Ok(want.min(avail / 10 * 9).max(planned))
}

/// Everything a run checks before it writes anything: each backing's scratch
/// dir (empty or ours, writable), the host's room for the planned filesystem
/// and writes. A refusal here (exit 2 or 3) leaves no report and no folder.
fn preflight(cfg: &RunConfig, planned: &Footprint) -> Result<(), AppError> {
    for backing in &cfg.backings {
        let fs_size = scratch_size(cfg, backing, planned.bytes)?;
        isolate::preflight(&ScratchRequest {
            root: cfg.scratch_root.clone(),
            kind: backing.clone(),
            planned_bytes: planned.bytes,
            fs_size_bytes: fs_size,
            inodes: None,
        })?;
    }
    Ok(())
}

/// Runs every workload of `cfg` on every backing and writes the report folder.
/// `argv` is recorded so the run can be repeated. Returns `Err` (and writes
/// nothing) when the run is refused before it starts; once started, the
/// outcome carries the report and the error that stopped it, if any.
pub fn run(
    cfg: &RunConfig,
    privilege: Privilege,
    argv: &[String],
    interrupted: &AtomicBool,
) -> Result<RunOutcome, AppError> {
    let started = Instant::now();
    let api = cfg.mount_api.resolve();
    let layout_count = cfg.layouts.len();
    // The user's images, opened before anything is made: a bad or unreachable
    // image is refused here (manifests and configs only; layers stream later).
    // A file larger than a scratch filesystem of --fs-size could never be
    // written: refused from its tar header, before its content is inflated
    // and hashed (a `dir:` backing has no such size).
    let max_file_bytes = cfg.fs_size_bytes.filter(|_| {
        cfg.backings
            .iter()
            .any(|b| !matches!(b, BackingKind::Dir(_)))
    });
    let images: Vec<Arc<IndexedImage>> = cfg
        .images
        .iter()
        .map(|r| {
            source::open(r, &cfg.image_options).map(|s| {
                Arc::new(IndexedImage::new(Arc::from(s)).with_max_file_bytes(max_file_bytes))
            })
        })
        .collect::<Result<_, _>>()?;
    // Each image streamed once, now: a hostile or corrupt layer is refused
    // before any scratch filesystem exists, and the scratch is sized from
    // what the layers really hold (a manifest gives compressed sizes only).
    if cfg.progress && !images.is_empty() {
        eprintln!("reading every layer of the images (verified)…");
    }
    for w in &cfg.workloads {
        w.check_images(&images)?;
    }
    let image_room = ImageFootprint::of(&images)?;
    let planned = crate::config::footprint(&cfg.workloads, layout_count, &image_room);
    preflight(cfg, &planned)?;
    if interrupted.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(AppError::Interrupted);
    }
    let config = LayoutConfig {
        mount_api: api,
        options: Vec::new(),
        privilege,
    };
    // Each layout is probed on this host, before anything is written: one the
    // user named must run (exit 3 naming what is missing, no report folder);
    // one taken by default is skipped, with a note.
    let mut layouts = Vec::new();
    let mut skipped = Vec::new();
    for l in cfg
        .layouts
        .iter()
        .filter_map(|name| layout::create(name, &config))
    {
        match l.entry().host_support(config.privilege) {
            Ok(()) => layouts.push(l),
            Err(e) if cfg.layouts_given => return Err(e.into()),
            Err(e) => skipped.push(format!("skipped: {e}")),
        }
    }
    let mut host = HostInfo::collect(std::path::Path::new("/"));
    host.privilege = Some(privilege);
    host.mount_api = Some(api);
    let out_dir = cfg
        .out
        .claim(&crate::config::utc_stamp(std::time::SystemTime::now()))?;
    let mut plan = cfg.to_json();
    plan["out_dir"] = json!(out_dir);
    let mut report = Report::new(host, json!({ "plan": plan, "argv": argv }));
    report.images = images.iter().map(|i| i.info().clone()).collect();
    let sections = workload::sections();
    report.notes.extend(skipped);
    let claim_steps = if cfg.claims {
        claims::CLAIMS.len() as u64
    } else {
        0
    };
    let steps_per_backing: u64 =
        cfg.workloads.iter().map(|w| w.steps(&layouts)).sum::<u64>() + claim_steps;
    let bar = progress_bar(cfg.progress, steps_per_backing * cfg.backings.len() as u64);
    let mut out = Recorded::default();
    let mut error = None;
    let detached_before = isolate::detached_unmounts();
    report::write_report_dir(&out_dir, &report, &sections)?;

    'backings: for backing in &cfg.backings {
        let footprint = planned;
        let fs_size = scratch_size(cfg, backing, footprint.bytes)?;
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
                if !matches!(e, IsolateError::Interrupted) && !stop::requested() {
                    report.errors.push(RunError {
                        workload: None,
                        message: format!("{backing}: {e}"),
                    });
                }
                error = Some(WorkloadError::from(e));
                break 'backings;
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
        // Rows this backing (or host) cannot run are skipped, each with its reason.
        let mut here: Vec<Box<dyn layout::Layout>> = Vec::new();
        for l in &layouts {
            match l.unavailable(scratch.info()) {
                Some(reason) => out.skipped.push(Skipped {
                    layout: l.name().into(),
                    backing: backing.to_string(),
                    reason,
                }),
                None => {
                    for n in l.notes() {
                        out.note(n);
                    }
                    if let Some(again) = l.with_options(&[]) {
                        here.push(again);
                    }
                }
            }
        }
        if here.is_empty() {
            drop(scratch);
            merge(&mut report, &mut out, started);
            report::write_report_dir(&out_dir, &report, &sections)?;
            continue;
        }
        for w in &cfg.workloads {
            let mut ctx = RunContext {
                scratch: &mut scratch,
                layouts: &here,
                images: &images,
                backing: backing.to_string(),
                eviction,
                progress: &bar,
                interrupted,
                out: &mut out,
            };
            let before = crate::host::conditions::Snapshot::take(std::path::Path::new("/"));
            let result = w.run(&mut ctx);
            let after = crate::host::conditions::Snapshot::take(std::path::Path::new("/"));
            report
                .conditions
                .push(crate::host::conditions::Conditions::between(
                    w.entry().name,
                    &backing.to_string(),
                    &before,
                    &after,
                ));
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
            report::write_report_dir(&out_dir, &report, &sections)?;
        }
        if cfg.claims {
            // On the same scratch filesystem, in a dir of their own; every
            // registered layout, whatever --layouts chose (claims name drivers).
            let settings = claims::Settings::for_suite(cfg.suite);
            let (run, stopped) = claims::run_on(
                &scratch,
                &backing.to_string(),
                &[],
                &config,
                &settings,
                interrupted,
                &mut |c| {
                    bar.set_message(format!("claim {}: {}", c.id, c.slug));
                    bar.inc(1);
                },
            );
            for c in run.claims.iter().filter(|c| c.error.is_some()) {
                report.errors.push(RunError {
                    workload: None,
                    message: format!(
                        "{backing}: claim {} ({}): {}",
                        c.id,
                        c.slug,
                        c.error.as_deref().unwrap_or("")
                    ),
                });
            }
            report.claims.push(run);
            report.duration_s = started.elapsed().as_secs_f64();
            report::write_report_dir(&out_dir, &report, &sections)?;
            if stopped {
                error = Some(WorkloadError::Interrupted);
                break 'backings;
            }
        }
        drop(scratch);
        if stop::requested() {
            error = Some(WorkloadError::Interrupted);
            break;
        }
    }
    bar.finish_and_clear();
    let detached = isolate::detached_unmounts() - detached_before;
    if detached > 0 {
        report.notes.push(format!(
            "{detached} unmount(s) stayed busy (EBUSY) after retrying for 3 s and were detached lazily \
             (MNT_DETACH); the measurements are unaffected"
        ));
    }
    // A signal may surface as any error of the step it interrupted.
    if error.is_some() && stop::requested() {
        error = Some(WorkloadError::Interrupted);
    }
    report.status = match &error {
        None => RunStatus::Complete,
        Some(WorkloadError::Interrupted) => RunStatus::Interrupted,
        Some(_) => RunStatus::Failed,
    };
    if report.status == RunStatus::Interrupted {
        report.notes.push(format!(
            "interrupted by {}: the cases present were measured before it",
            stop::signal_name(stop::signal())
        ));
    }
    report.duration_s = started.elapsed().as_secs_f64();
    // What the figures mean, computed once from them and kept in report.json,
    // so every rendering (and `doctor --from`) reads the same answer.
    report.findings = Some(workload::findings_of(&report));
    // A comparative claim the run's own figures answer too says what they say.
    claims::add_run_figures(&mut report);
    let written = report::write_report_dir(&out_dir, &report, &sections)?;
    Ok(RunOutcome {
        out_dir,
        report,
        written,
        error,
    })
}

/// For a second signal: marks the report on disk `interrupted` and removes what
/// of the scratch filesystems can go at once; the caller exits right after.
pub fn abort() {
    report::mark_active_interrupted(&format!(
        "aborted by a second {}: cases measured since the last completed workload are not in this report",
        stop::signal_name(stop::signal())
    ));
    isolate::abandon_live_scratches();
}

fn merge(report: &mut Report, out: &mut Recorded, started: Instant) {
    for c in &mut out.cases {
        c.id = c.key();
    }
    report.cases.append(&mut out.cases);
    report.derived.append(&mut out.derived);
    report.errors.append(&mut out.errors);
    report.skipped.append(&mut out.skipped);
    for (workload, record) in out.extras.drain(..) {
        report.extras.entry(workload).or_default().push(record);
    }
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
