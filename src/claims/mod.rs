//! Docker's storage-driver notes, each statement checked on this host by a real
//! experiment: real overlay mounts in the caller's private namespace, on a
//! scratch filesystem from `isolate`, with images built by the layouts of the
//! registry. A claim is one small module (`CLAIM`: its statement and a `check`)
//! and one line in `CLAIMS`.
//!
//! Claims pick layouts by what they can do (`capabilities()`), except where the
//! statement is *about* a named driver (the legacy `overlay`, `btrfs`). A check
//! returns a `Finding` — confirmed, refuted, changed (true once, different on
//! this kernel), depends (its figures disagree; each side's are named) or not
//! testable here with the reason — with the figure behind
//! it and its unit. A refuted claim is a finding, never an error; an error means
//! the experiment itself failed, and is recorded as such.

mod backing;
mod copy_latency;
mod layer_limit;
mod legacy_hardlinks;
mod legacy_inodes;
mod other_drivers;
mod page_cache;
mod read_union;
mod rename;
pub mod rig;
mod volumes;
pub mod weigh;
mod whiteouts;
mod whole_file;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::error::ErrorClass;
use crate::host::HostInfo;
use crate::isolate::{IsolateError, Scratch};
use crate::layout::{self, Layout, LayoutConfig, LayoutError};
use crate::report::{ClaimRecord, ClaimVerdict, ClaimsRun, ToolInfo};
use crate::workload::{Suite, WorkloadError};

/// The registry: one line per claim, in the order Docker's notes make them.
pub static CLAIMS: &[&ClaimEntry] = &[
    &layer_limit::CLAIM,
    &legacy_hardlinks::CLAIM,
    &read_union::CLAIM,
    &whole_file::CLAIM,
    &copy_latency::CLAIM,
    &whiteouts::CLAIM,
    &rename::CLAIM,
    &page_cache::CLAIM,
    &legacy_inodes::CLAIM,
    &other_drivers::CLAIM,
    &volumes::CLAIM,
    &backing::CLAIM,
];

/// One statement and the experiment that checks it.
pub struct ClaimEntry {
    /// Its number (1-based, the order of `CLAIMS`; stable across releases).
    pub id: u32,
    /// Stable short name, for reports and `--only`.
    pub slug: &'static str,
    /// The statement as Docker's notes make it.
    pub statement: &'static str,
    /// Runs the experiment in `ctx.dir` (fresh, on the scratch filesystem).
    pub check: fn(&ClaimContext<'_>) -> Result<Finding, ClaimError>,
    /// For a statement that one layout performs better than another: the two
    /// (claimed better, other), so a run that measured both weighs it with its
    /// own figures too (`add_run_figures`).
    pub compares: Option<(&'static str, &'static str)>,
}

impl std::fmt::Debug for ClaimEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "claim {} ({})", self.id, self.slug)
    }
}

/// The entry numbered `id`, or named `slug`.
pub fn entry(key: &str) -> Option<&'static ClaimEntry> {
    CLAIMS
        .iter()
        .copied()
        .find(|c| c.slug == key || c.id.to_string() == key)
}

/// How much each experiment measures.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Settings {
    /// The preset these come from.
    pub suite: Suite,
    /// Claim 5: file sizes whose copy_up is timed, MiB.
    pub copy_sizes_mib: Vec<u64>,
    /// Claims 4 and 5: fresh containers per size.
    pub copy_samples: usize,
    /// Claim 4: size of the file written one byte to, MiB.
    pub whole_file_mib: u64,
    /// Claim 8: size of the file every container reads, MiB.
    pub shared_file_mib: u64,
    /// Claim 8: containers reading it.
    pub sharing_containers: usize,
    /// Claim 9: images in the set (sharing a base), layers per image, containers per image.
    pub inode_images: usize,
    /// Claim 9: layers per image.
    pub inode_layers: usize,
    /// Claim 9: containers per image.
    pub inode_containers: usize,
    /// Claims 11 and 12: bytes per sequential write or read, MiB.
    pub io_mib: u64,
    /// Claim 11: 4 KiB random writes per sample.
    pub random_writes: usize,
    /// Claim 11: 4 KiB write + fsync pairs per sample.
    pub fsyncs: usize,
    /// Claims 11 and 12: samples of each figure (interleaved between the targets).
    pub io_rounds: usize,
}

impl Settings {
    /// The preset for `suite`: quick fits in well under a minute on a plain disk.
    pub fn for_suite(suite: Suite) -> Settings {
        match suite {
            Suite::Quick => Settings {
                suite,
                copy_sizes_mib: vec![4, 16, 64],
                copy_samples: 3,
                whole_file_mib: 32,
                shared_file_mib: 16,
                sharing_containers: 4,
                inode_images: 3,
                inode_layers: 10,
                inode_containers: 2,
                io_mib: 64,
                random_writes: 1024,
                fsyncs: 32,
                io_rounds: 5,
            },
            Suite::Standard | Suite::Full => Settings {
                suite,
                copy_sizes_mib: if suite == Suite::Full {
                    vec![4, 16, 64, 256, 1024]
                } else {
                    vec![4, 16, 64, 256]
                },
                copy_samples: 5,
                whole_file_mib: 64,
                shared_file_mib: 64,
                sharing_containers: 8,
                inode_images: 5,
                inode_layers: 20,
                inode_containers: 3,
                io_mib: 256,
                random_writes: 4096,
                fsyncs: 100,
                io_rounds: 9,
            },
        }
    }

    /// Bytes the largest experiment keeps on the scratch filesystem at once
    /// (each claim's dir is removed before the next starts).
    pub fn footprint_bytes(&self) -> u64 {
        let mib = 1u64 << 20;
        let copy: u64 = self.copy_sizes_mib.iter().sum::<u64>()
            + self.copy_sizes_mib.iter().max().unwrap_or(&0);
        let share = self.shared_file_mib * (self.sharing_containers as u64 + 2);
        let io = self.io_mib * 4;
        copy.max(share).max(io).max(self.whole_file_mib * 2) * mib + (64 << 20)
    }
}

/// What a claim's experiment works with.
pub struct ClaimContext<'a> {
    /// The scratch filesystem (statvfs figures are of it alone).
    pub scratch: &'a Scratch,
    /// This claim's own fresh directory on it.
    pub dir: PathBuf,
    /// Every registered layout, made with the run's mount settings.
    pub layouts: &'a [Box<dyn Layout>],
    /// Those settings (mount API, privilege).
    pub config: &'a LayoutConfig,
    /// How much to measure.
    pub settings: &'a Settings,
}

/// What a check found: the verdict, the figure behind it, what was observed.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The verdict.
    pub verdict: ClaimVerdict,
    /// Why it is not testable here (required for `NotTestable`).
    pub reason: Option<String>,
    /// The headline figure or observation, in words, with its unit.
    pub figure: String,
    /// The headline figure as a number, if it is one.
    pub value: Option<f64>,
    /// Its unit.
    pub unit: String,
    /// Facts observed, one per line.
    pub observations: Vec<String>,
}

impl Finding {
    /// A verdict with its figure in words.
    pub fn new(verdict: ClaimVerdict, figure: impl Into<String>) -> Finding {
        Finding {
            verdict,
            reason: None,
            figure: figure.into(),
            value: None,
            unit: String::new(),
            observations: Vec::new(),
        }
    }

    /// Not testable here, because `reason`.
    pub fn not_testable(reason: impl Into<String>) -> Finding {
        let reason = reason.into();
        Finding {
            figure: reason.clone(),
            reason: Some(reason),
            ..Finding::new(ClaimVerdict::NotTestable, "")
        }
    }

    /// The headline figure as a number in `unit`.
    pub fn with_value(mut self, value: f64, unit: &str) -> Finding {
        self.value = Some(value);
        self.unit = unit.into();
        self
    }

    /// Adds observations.
    pub fn with_observations(mut self, obs: Vec<String>) -> Finding {
        self.observations.extend(obs);
        self
    }
}

/// Why a claim's experiment could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Isolate(#[from] IsolateError),
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The kernel did something the experiment cannot interpret.
    #[error("{0}")]
    Unexpected(String),
    /// The host cannot run the claims at all (no overlay, not permitted).
    #[error("{0}")]
    Unsupported(String),
}

impl ClaimError {
    /// Exit-code class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            ClaimError::Layout(e) => e.class(),
            ClaimError::Isolate(e) => e.class(),
            ClaimError::Workload(e) => e.class(),
            ClaimError::Unsupported(_) => ErrorClass::Unsupported,
            _ => ErrorClass::Runtime,
        }
    }

    /// Maps an I/O error on `path` during `what`.
    pub fn io(what: &'static str, path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.as_ref().to_path_buf();
        move |source| ClaimError::Io { what, path, source }
    }
}

/// Runs one claim in a fresh directory under `root` and records what it found;
/// the directory (and every mount below it) is gone afterwards.
pub fn check_one(
    claim: &ClaimEntry,
    scratch: &Scratch,
    layouts: &[Box<dyn Layout>],
    config: &LayoutConfig,
    settings: &Settings,
) -> ClaimRecord {
    let started = Instant::now();
    let dir = scratch.path().join("claims").join(claim.slug);
    let result = fresh_dir(&dir).and_then(|()| {
        let ctx = ClaimContext {
            scratch,
            dir: dir.clone(),
            layouts,
            config,
            settings,
        };
        (claim.check)(&ctx)
    });
    // Mounts of the experiment are guarded and gone by now; remove its files so the
    // next claim's statvfs figures start clean.
    let cleanup = fs::remove_dir_all(&dir).map_err(ClaimError::io("removing", &dir));
    let result = result.and_then(|f| cleanup.map(|()| f));
    let mut record = ClaimRecord {
        id: claim.id,
        slug: claim.slug.into(),
        statement: claim.statement.into(),
        verdict: ClaimVerdict::NotTestable,
        reason: None,
        figure: String::new(),
        value: None,
        unit: String::new(),
        observations: Vec::new(),
        error: None,
        duration_s: 0.0,
    };
    match result {
        Ok(f) => {
            record.verdict = f.verdict;
            record.reason = f.reason;
            record.figure = f.figure;
            record.value = f.value;
            record.unit = f.unit;
            record.observations = f.observations;
        }
        Err(e) => {
            record.reason = Some(format!("the experiment failed: {e}"));
            record.figure = "experiment failed (see reason)".into();
            record.error = Some(e.to_string());
        }
    }
    record.duration_s = started.elapsed().as_secs_f64();
    record
}

/// Runs `selected` claims (all when empty) one after the other, calling
/// `progress` before each; stops between claims once `interrupted` is set.
/// Returns the records and whether it was interrupted.
pub fn check_all(
    selected: &[&'static ClaimEntry],
    scratch: &Scratch,
    layouts: &[Box<dyn Layout>],
    config: &LayoutConfig,
    settings: &Settings,
    interrupted: &AtomicBool,
    progress: &mut dyn FnMut(&ClaimEntry),
) -> (Vec<ClaimRecord>, bool) {
    let claims: Vec<&ClaimEntry> = if selected.is_empty() {
        CLAIMS.to_vec()
    } else {
        selected.to_vec()
    };
    let mut out = Vec::new();
    for c in claims {
        if interrupted.load(Ordering::Relaxed) {
            return (out, true);
        }
        progress(c);
        out.push(check_one(c, scratch, layouts, config, settings));
    }
    (out, interrupted.load(Ordering::Relaxed))
}

/// Runs `selected` claims (all when empty) on `scratch`, with every registered
/// layout made with `config`; `backing` names the scratch's backing as cases do.
/// Returns the run and whether it was interrupted.
pub fn run_on(
    scratch: &Scratch,
    backing: &str,
    selected: &[&'static ClaimEntry],
    config: &LayoutConfig,
    settings: &Settings,
    interrupted: &AtomicBool,
    progress: &mut dyn FnMut(&ClaimEntry),
) -> (ClaimsRun, bool) {
    let started = Instant::now();
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    // The layouts this host runs, judged as `run` judges them (a claim whose
    // layout is missing then says it is not testable, rather than failing on
    // a mount the kernel cannot make).
    let layouts: Vec<Box<dyn Layout>> = layout::LAYOUTS
        .iter()
        .filter(|e| e.host_support(config.privilege).is_ok())
        .map(|e| (e.create)(config))
        .collect();
    let (claims, stopped) = check_all(
        selected,
        scratch,
        &layouts,
        config,
        settings,
        interrupted,
        progress,
    );
    let run = ClaimsRun {
        backing: backing.into(),
        started_at,
        duration_s: started.elapsed().as_secs_f64(),
        suite: settings.suite.name().into(),
        claims,
    };
    (run, stopped)
}

/// What `overlaybench claims --json` prints: the claims of one backing with the
/// host they were checked on.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimsReport {
    /// Version of this format (that of report.json).
    pub schema_version: u32,
    /// Always `claims`.
    pub kind: String,
    /// Which tool wrote it.
    pub tool: ToolInfo,
    /// The host and the backing made for the claims.
    pub host: HostInfo,
    /// The claims and what each found.
    pub claims: ClaimsRun,
}

/// Whether the kernel has overlayfs: listed in `/proc/filesystems` (loaded),
/// or loadable on first use (fsopen loads the module).
pub fn overlay_available(proc_filesystems: &str) -> bool {
    proc_filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
        || rustix::mount::fsopen("overlay", rustix::mount::FsOpenFlags::FSOPEN_CLOEXEC).is_ok()
}

/// Adds to each comparative claim of `report.claims` what the run's own
/// figures say (`weigh::from_report`), when the run measured both layouts on
/// one backing: the verdict of those figures and each one weighed, as
/// observations beside the experiment's own.
pub fn add_run_figures(report: &mut crate::report::Report) {
    let mut adds: Vec<(usize, usize, Vec<String>)> = Vec::new();
    for (i, run) in report.claims.iter().enumerate() {
        for (j, rec) in run.claims.iter().enumerate() {
            let Some((a, b)) = entry(&rec.slug).and_then(|e| e.compares) else {
                continue;
            };
            let w = weigh::from_report(report, a, b);
            if w.weights.is_empty() {
                continue;
            }
            let f = w.finding();
            let mut obs = vec![format!(
                "this run's own figures ({} weighed): {} — {}",
                w.weights.len(),
                f.verdict.word(),
                f.figure
            )];
            obs.extend(f.observations.iter().map(|o| format!("run: {o}")));
            adds.push((i, j, obs));
        }
    }
    for (i, j, obs) in adds {
        report.claims[i].claims[j].observations.extend(obs);
    }
}

fn fresh_dir(dir: &Path) -> Result<(), ClaimError> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(ClaimError::io("removing", dir))?;
    }
    fs::create_dir_all(dir).map_err(ClaimError::io("creating", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_numbers_claims_in_order_with_unique_slugs() {
        for (i, c) in CLAIMS.iter().enumerate() {
            assert_eq!(c.id as usize, i + 1, "{}", c.slug);
            assert_eq!(entry(c.slug).map(|e| e.id), Some(c.id));
            assert_eq!(entry(&c.id.to_string()).map(|e| e.slug), Some(c.slug));
        }
        assert_eq!(CLAIMS.len(), 12);
        assert!(entry("nope").is_none());
    }

    #[test]
    fn quick_settings_fit_a_small_scratch_fs() {
        let q = Settings::for_suite(Suite::Quick);
        assert!(q.footprint_bytes() < 1 << 30, "{}", q.footprint_bytes());
        let s = Settings::for_suite(Suite::Standard);
        assert!(s.footprint_bytes() > q.footprint_bytes());
    }

    #[test]
    fn not_testable_carries_its_reason_in_the_figure() {
        let f = Finding::not_testable("no btrfs layout in this build");
        assert_eq!(f.verdict, ClaimVerdict::NotTestable);
        assert_eq!(f.reason.as_deref(), Some("no btrfs layout in this build"));
        assert!(f.figure.contains("no btrfs layout"));
    }
}
