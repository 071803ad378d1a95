//! What every workload shares: the context a run hands it (scratch fs, layouts,
//! eviction, progress, the interrupt flag, where results go), typed I/O errors
//! that name their path, writeback between samples, and turning raw samples into
//! cases and derived figures.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use indicatif::ProgressBar;
use serde_json::Value;

use crate::error::ErrorClass;
use crate::image::IndexedImage;
use crate::isolate::{EvictionKind, IsolateError, Scratch};
use crate::layout::{Layout, LayoutError};
use crate::report::{Case, Derived, RunError, Skipped};
use crate::stats::Stats;

/// What a workload needs of the scratch filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct Footprint {
    /// Bytes written at the peak.
    pub bytes: u64,
    /// Inodes used at the peak (ext4 counting: hard links are free).
    pub inodes: u64,
}

impl Footprint {
    /// The larger of each figure.
    pub fn max(self, other: Footprint) -> Footprint {
        Footprint {
            bytes: self.bytes.max(other.bytes),
            inodes: self.inodes.max(other.inodes),
        }
    }

    /// Both figures times `n`.
    pub fn times(self, n: u64) -> Footprint {
        Footprint {
            bytes: self.bytes.saturating_mul(n),
            inodes: self.inodes.saturating_mul(n),
        }
    }

    /// Both figures added.
    pub fn plus(self, other: Footprint) -> Footprint {
        Footprint {
            bytes: self.bytes.saturating_add(other.bytes),
            inodes: self.inodes.saturating_add(other.inodes),
        }
    }
}

/// What the user's images take, estimated from their indexes (4 KiB blocks):
/// every layer of every image stored once, as a store holds them, and one
/// flattened copy of each (what a plain container is).
#[derive(Debug, Clone, Copy, Default)]
pub struct ImageFootprint {
    /// Number of images.
    pub count: usize,
    /// All their layers, stored once.
    pub stored: Footprint,
    /// One flattened copy of each.
    pub flat: Footprint,
}

impl ImageFootprint {
    /// The estimate for `images`, from their indexes (built here if not yet).
    pub fn of(images: &[Arc<IndexedImage>]) -> Result<ImageFootprint, crate::image::ImageError> {
        let mut room = ImageFootprint {
            count: images.len(),
            ..Default::default()
        };
        for img in images {
            let index = img.index()?;
            let (s, f) = (index.stored_estimate(), index.flat_estimate());
            room.stored = room.stored.plus(Footprint {
                bytes: s.bytes,
                inodes: s.inodes,
            });
            room.flat = room.flat.plus(Footprint {
                bytes: f.bytes,
                inodes: f.inodes,
            });
        }
        Ok(room)
    }

    /// Room for one copy of the images in each of `layouts` layouts plus
    /// `extra_flat` flattened copies, with a quarter to spare (directory
    /// growth, journal, estimates of compressed layers).
    pub fn room(&self, layouts: usize, extra_flat: u64) -> Footprint {
        if self.count == 0 {
            return Footprint::default();
        }
        let one = self.stored.max(self.flat);
        let f = one.times(layouts as u64).plus(self.flat.times(extra_flat));
        Footprint {
            bytes: f.bytes + f.bytes / 4 + (64 << 20),
            inodes: f.inodes + f.inodes / 4 + 10_000,
        }
    }
}

/// Everything measured so far in a run.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Measured cases.
    pub cases: Vec<Case>,
    /// Derived figures.
    pub derived: Vec<Derived>,
    /// What could not be measured.
    pub errors: Vec<RunError>,
    /// Run-wide caveats.
    pub notes: Vec<String>,
    /// Per layout, the overlay options in force (read back from mountinfo).
    pub options_in_force: BTreeMap<String, String>,
    /// Layouts a backing could not run.
    pub skipped: Vec<Skipped>,
    /// Records kept beside the cases, per workload name (see `Report::extras`).
    pub extras: Vec<(String, serde_json::Value)>,
}

impl Recorded {
    /// Adds a case of `samples` (skipped when empty); returns its median.
    pub fn case(
        &mut self,
        workload: &str,
        layout: &str,
        params: BTreeMap<String, Value>,
        metric: &str,
        unit: &str,
        samples: Vec<f64>,
    ) -> Option<f64> {
        let stats = Stats::compute(&samples)?;
        let median = stats.median;
        self.cases.push(Case {
            id: String::new(),
            workload: workload.into(),
            layout: layout.into(),
            params,
            metric: metric.into(),
            unit: unit.into(),
            samples,
            stats,
        });
        Some(median)
    }

    /// Adds a case of `samples` with `view`'s params, under its workload
    /// (skipped when empty); returns its median.
    pub fn case_of<V: super::CaseView>(
        &mut self,
        view: &V,
        layout: &str,
        metric: &str,
        unit: &str,
        samples: Vec<f64>,
    ) -> Option<f64> {
        self.case(V::WORKLOAD, layout, view.params(), metric, unit, samples)
    }

    /// Adds a note once.
    pub fn note(&mut self, note: String) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }
}

/// What a workload gets to work with.
pub struct RunContext<'a> {
    /// The scratch filesystem (this backing's).
    pub scratch: &'a mut Scratch,
    /// Layouts in interleaving order.
    pub layouts: &'a [Box<dyn Layout>],
    /// The user's images (`--image`), opened (indexed on first use); empty
    /// when the run is synthetic only.
    pub images: &'a [Arc<IndexedImage>],
    /// Name of this backing (`ext4`, `xfs`, …), put in every case's params.
    pub backing: String,
    /// How cold samples are made cold on this backing.
    pub eviction: EvictionKind,
    /// Progress display (hidden when not a terminal).
    pub progress: &'a ProgressBar,
    /// Set by Ctrl-C / SIGTERM / SIGHUP.
    pub interrupted: &'a AtomicBool,
    /// Where results go.
    pub out: &'a mut Recorded,
}

impl RunContext<'_> {
    /// Fails with `Interrupted` once a signal asked the run to stop.
    pub fn check_interrupted(&self) -> Result<(), WorkloadError> {
        if self.interrupted.load(Ordering::Relaxed) {
            return Err(WorkloadError::Interrupted);
        }
        Ok(())
    }

    /// Makes the scratch fs cold by the backing's eviction method.
    pub fn evict(&mut self) -> Result<(), WorkloadError> {
        match self.eviction {
            EvictionKind::RemountBacking => self.scratch.remount()?,
            EvictionKind::DropCaches => crate::probe::cache::drop_caches()
                .map_err(WorkloadError::io("writing", "/proc/sys/vm/drop_caches"))?,
            EvictionKind::FreshMountOnly => {}
        }
        Ok(())
    }

    /// The eviction method's name as reports spell it.
    pub fn eviction_name(&self) -> &'static str {
        self.eviction.name()
    }
}

/// Why a workload stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Isolate(#[from] IsolateError),
    #[error("interrupted")]
    Interrupted,
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A timed operation did not do what it was meant to (checked outside the clock).
    #[error("{0}")]
    Verify(String),
    /// The host cannot run this workload as asked.
    #[error("{0}")]
    Unsupported(String),
    /// The OCI runtime failed (or is missing).
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    /// What an image says to run cannot be run (bad input: exit 2).
    #[error(transparent)]
    RunConfig(#[from] crate::image::RunConfigError),
    /// The start-up read set could not be recorded.
    #[error(transparent)]
    ReadSet(#[from] crate::probe::readset::ReadsetError),
}

impl WorkloadError {
    /// Exit-code class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            WorkloadError::Layout(e) => e.class(),
            WorkloadError::Isolate(e) => e.class(),
            WorkloadError::Runtime(e) => e.class(),
            WorkloadError::RunConfig(e) => e.class(),
            WorkloadError::ReadSet(e) => e.class(),
            WorkloadError::Unsupported(_) => ErrorClass::Unsupported,
            WorkloadError::Interrupted => ErrorClass::Interrupted,
            _ => ErrorClass::Runtime,
        }
    }

    /// Maps an I/O error on `path` during `what`.
    pub fn io(what: &'static str, path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.as_ref().to_path_buf();
        move |source| WorkloadError::Io { what, path, source }
    }
}

/// Writes back everything earlier work left dirty on the filesystem holding
/// `dir` (a `volatile` copy is never fsynced; a removed container frees blocks),
/// so that no sample pays for another's writeback.
pub fn settle(dir: &Path) -> Result<(), WorkloadError> {
    let f = File::open(dir).map_err(WorkloadError::io("opening", dir))?;
    nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f))
        .map_err(|e| WorkloadError::io("syncfs", dir)(e.into()))
}

/// Removes `dir`, a workload's working dir where each of `layouts` keeps its
/// stores and containers under a dir named after it (`dir/<layout>` or
/// `dir/*/<layout>`): each layout removes those its own way first (a btrfs
/// subvolume is deleted, not emptied file by file), then the rest goes, and
/// every layout's removals are settled (btrfs frees space in the background)
/// so what runs next sizes itself on really free space.
pub fn remove_workdir(layouts: &[Box<dyn Layout>], dir: &Path) -> Result<(), WorkloadError> {
    if !dir.exists() {
        return Ok(());
    }
    let mut parents = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).map_err(WorkloadError::io("reading dir", dir))? {
        let e = e.map_err(WorkloadError::io("reading dir", dir))?;
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            parents.push(e.path());
        }
    }
    for l in layouts {
        for p in &parents {
            let own = p.join(l.name());
            if own.exists() {
                l.remove_store(&own)?;
            }
        }
    }
    std::fs::remove_dir_all(dir).map_err(WorkloadError::io("removing", dir))?;
    let settle_at = dir.parent().unwrap_or(dir);
    for l in layouts {
        l.settle_removals(settle_at)?;
    }
    Ok(())
}
