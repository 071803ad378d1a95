//! page-cache's keys: the name, the phases and readings measure and analyze
//! share, and the typed views that write and read the report's params.

use serde::{Deserialize, Serialize};

use crate::workload::{CaseView, Subject};

/// Name in reports.
pub const NAME: &str = "page-cache";

/// When residency is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// After every container read the set, one after the other.
    Read,
    /// After every container read the set, all at once.
    ReadConcurrent,
    /// After half the containers copied the set up and all read again.
    AfterCopyUp,
    /// M different images (same files, no shared layer), one container each,
    /// after each read the set; `containers` is M.
    MultiImage,
}

/// One reading: a layout (by its index in the run), K, phase, metric, value, unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Index of the layout in the run.
    pub layout: usize,
    /// Index of the user's image read (None: the synthetic set).
    pub image: Option<usize>,
    /// Containers reading.
    pub containers: usize,
    /// When.
    pub phase: Phase,
    /// What (`resident_bytes`, `backing_files`, …).
    pub metric: &'static str,
    /// The figure.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
}

/// The report's params of a page-cache case or derived figure, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// Backing filesystem.
    pub backing: String,
    /// Containers reading.
    pub containers: usize,
    /// When.
    pub phase: Phase,
    /// Bytes of the set.
    pub set_bytes: u64,
    /// Files of the set.
    pub files: usize,
    /// How caches were emptied between phases.
    pub eviction: String,
    /// Containers that had copied the set up (sharing factors).
    #[serde(default)]
    pub copied_up_containers: Option<usize>,
    /// Different images read, one container each (multi-image case only).
    #[serde(default)]
    pub images: Option<usize>,
}

impl CaseView for View {
    const WORKLOAD: &'static str = NAME;
    const SUBJECT: Subject = Subject::Synthetic;
}

/// Metric of the bytes resident over the distinct backing files.
pub const RESIDENT: &str = "resident_bytes";

/// Metric of the disk the containers add.
pub const DISK_ADDED: &str = "disk_bytes_added";

/// Kind of the sharing factor figure.
pub const SHARING: &str = "sharing-factor";

/// How many containers copy the set up in the last phase (half, at least one).
pub fn copied_up(k: usize) -> usize {
    k.div_ceil(2)
}

/// The report's params of a page-cache case or derived figure about one of
/// the user's images, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageView {
    /// Backing filesystem.
    pub backing: String,
    /// The image's reference.
    pub image: String,
    /// Containers reading.
    pub containers: usize,
    /// When.
    pub phase: Phase,
    /// Bytes of the image's files read.
    pub set_bytes: u64,
    /// The same in whole 4 KiB pages per file: what one cached copy takes
    /// (sharing = K × this / resident).
    pub set_page_bytes: u64,
    /// Files read.
    pub files: usize,
    /// The glob patterns that chose them (absent: every regular file, up to the budget).
    #[serde(default)]
    pub read_set: Option<String>,
    /// How caches were emptied between phases.
    pub eviction: String,
    /// Containers that had copied the set up (sharing factors).
    #[serde(default)]
    pub copied_up_containers: Option<usize>,
}

impl CaseView for ImageView {
    const WORKLOAD: &'static str = NAME;
    const SUBJECT: Subject = Subject::Images;
}
