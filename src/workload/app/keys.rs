//! app's keys: the name, the metric, cold and warm, and the typed view that
//! writes and reads the report's params.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::probe::readset::ReadSet;

use crate::workload::{CaseView, Subject};

/// Name in reports.
pub const NAME: &str = "app";

/// From the runtime's spawn to ready (exit 0 or the ready line), ns.
pub const TIME_TO_READY: &str = "time_to_ready";

/// `baseline` of the ratios to Docker's driver (the registry's overlay2).
pub fn base_overlay2() -> &'static str {
    crate::layout::stores::OVERLAY2.name
}

/// Whether `layout` is the baseline (plain) the other ratios are taken to,
/// by its capabilities.
pub fn is_baseline(layout: &str) -> bool {
    crate::layout::caps_of(layout).baseline
}

/// Whether the image's data was evicted before the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cache {
    /// A fresh mount of the backing (and loop buffers dropped) before the start.
    Cold,
    /// Started again at once after a cold start.
    Warm,
}

impl Cache {
    /// Both, in measurement order.
    pub const ALL: [Cache; 2] = [Cache::Cold, Cache::Warm];

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Cache::Cold => "cold",
            Cache::Warm => "warm",
        }
    }
}

/// How readiness was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ready {
    /// The process exited 0.
    Exit,
    /// A line of its output matched `--app-ready-line`.
    Line,
}

/// The report's params of an app case or derived figure, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// The image, as the user named it.
    pub image: String,
    /// Backing filesystem.
    pub backing: String,
    /// Cold or warm.
    pub cache: Cache,
    /// How readiness was judged.
    pub ready: Ready,
    /// What a ratio is taken against (`overlay2`, `plain`).
    #[serde(default)]
    pub baseline: Option<String>,
}

impl CaseView for View {
    const WORKLOAD: &'static str = NAME;
    const SUBJECT: Subject = Subject::Images;
}

/// Files the recorded start opened or read (one sample: the recording start's).
pub const READSET_FILES: &str = "readset_files";
/// Their bytes (sizes at open).
pub const READSET_BYTES: &str = "readset_bytes";
/// Their share of the image's regular files.
pub const READSET_FILE_FRACTION: &str = "readset_file_fraction";
/// Their share of the image's bytes.
pub const READSET_BYTE_FRACTION: &str = "readset_byte_fraction";

/// Most files of a read set kept in the report (the counts cover them all).
pub const MAX_KEPT_FILES: usize = 20_000;

/// One file of a start-up read set, as the report keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadSetFile {
    /// Relative to the image's root.
    pub path: String,
    /// Its size at open.
    pub bytes: u64,
}

/// A start-up read set as the report keeps it (`extras.app`): the first
/// layout's recording on a backing, its files in first-open order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadSetRecord {
    /// The image, as the user named it.
    pub image: String,
    /// Backing filesystem.
    pub backing: String,
    /// The layout it was recorded on.
    pub layout: String,
    /// The files, in first-open order (at most [`MAX_KEPT_FILES`]).
    pub files: Vec<ReadSetFile>,
    /// Files of the set beyond [`MAX_KEPT_FILES`], counted but not listed.
    pub files_not_listed: u64,
    /// Regular files in the image.
    pub image_files: u64,
    /// Their bytes.
    pub image_bytes: u64,
    /// Whether a cap was hit or the kernel's queue overflowed.
    pub incomplete: bool,
}

impl ReadSetRecord {
    /// The records of `r` (those its typed view reads; others are ignored).
    pub fn of_report(r: &crate::report::Report) -> Vec<ReadSetRecord> {
        r.extras
            .get(NAME)
            .into_iter()
            .flatten()
            .filter_map(|v| serde_json::from_value(v.clone()).ok())
            .collect()
    }
}

/// What was measured, kept as it comes (an interrupted run keeps it).
#[derive(Debug, Default)]
pub struct Samples {
    /// Per (layout, cold/warm), times to ready, ns.
    pub series: BTreeMap<(usize, Cache), Vec<f64>>,
    /// Per layout whose start failed: what happened (it is measured no further).
    pub failed: BTreeMap<usize, String>,
    /// Per layout, the last lines the application printed on its first start.
    pub output: BTreeMap<usize, Vec<String>>,
    /// Per layout, the start-up read set of its recording start.
    pub read_sets: BTreeMap<usize, ReadSet>,
}
