//! lookup's keys: the name, what is timed on which names in which cache
//! state, the series keys measure fills, and the typed views that write and
//! read the report's params.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::report::{parse_params, Derived};
use crate::workload::{CaseView, Subject};

/// Name in reports.
pub const NAME: &str = "lookup";

/// What is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// Mounting a fresh container's stack.
    Mount,
    /// Open + full read + close of a directory.
    Readdir,
    /// `fstatat` of one name.
    Stat,
    /// A whole-tree walk: every directory read, every entry lstat'ed (real images).
    Walk,
    /// A fresh container made and mounted, then its first reads (the files a
    /// start-up reads, each opened and read once), cold.
    Startup,
    /// Open + 1-byte read + close of one file: its data's first access (a
    /// composefs file's object is looked up in the data-only layer only now).
    Open,
}

/// Which names (or what) an op touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// Names only in the bottom layer: every layer is searched.
    Bottom,
    /// Names in no layer: every layer is searched, then ENOENT.
    Missing,
    /// A directory with entries in every layer.
    Spread,
    /// The whole stack (mount).
    Stack,
    /// Names only in the top layer: found at once.
    Top,
    /// Files of one image in a store that other images share (the store sweep).
    Store,
}

impl Target {
    /// The stat targets, in the order batches interleave them.
    pub const STAT: [Target; 3] = [Target::Top, Target::Bottom, Target::Missing];

    /// Spelling in reports.
    pub fn name(self) -> &'static str {
        match self {
            Target::Bottom => "bottom",
            Target::Missing => "missing",
            Target::Spread => "spread",
            Target::Stack => "stack",
            Target::Top => "top",
            Target::Store => "store",
        }
    }

    /// The directory of the image its names live in.
    pub fn dir(self) -> &'static str {
        match self {
            Target::Top => "t",
            Target::Bottom => "b",
            _ => "m",
        }
    }

    /// Whether its names exist.
    pub fn found(self) -> bool {
        self != Target::Missing
    }
}

/// Cache state of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cache {
    /// Fresh mount, lower caches evicted, each name once.
    Cold,
    /// The same names again.
    Warm,
}

impl Cache {
    /// Spelling in reports.
    pub fn name(self) -> &'static str {
        match self {
            Cache::Cold => "cold",
            Cache::Warm => "warm",
        }
    }
}

/// One accumulated series of samples: the layout by its index in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// Index of the layout in the run's interleaving order.
    pub layout: usize,
    /// What is timed.
    pub op: Op,
    /// On what.
    pub target: Target,
    /// Cold or warm.
    pub cache: Cache,
    /// Image layers.
    pub depth: usize,
}

/// The report's params of a lookup case or derived figure, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// Backing filesystem.
    pub backing: String,
    /// Image layers (absent on slopes).
    #[serde(default)]
    pub depth: Option<usize>,
    /// What is timed.
    pub op: Op,
    /// On what.
    pub target: Target,
    /// Cold or warm.
    pub cache: Cache,
    /// How cold was made (cold only).
    #[serde(default)]
    pub eviction: Option<String>,
    /// Lookups timed per sample (stat only).
    #[serde(default)]
    pub ops_per_sample: Option<usize>,
    /// Entries of the directory read (readdir only, absent on slopes).
    #[serde(default)]
    pub entries: Option<usize>,
    /// The layout a ratio is taken against.
    #[serde(default)]
    pub baseline: Option<String>,
    /// How long the kernel caches the layout's entries and attributes (a FUSE
    /// daemon's timeout, seconds); absent when the kernel's own caches apply.
    #[serde(default)]
    pub entry_timeout_s: Option<f64>,
    /// The layout holding the same trees in another form that a ratio is
    /// taken against (instead of the baseline).
    #[serde(default)]
    pub same_tree: Option<String>,
    /// Images in the store the names' image shares (store sweep only).
    #[serde(default)]
    pub store_images: Option<usize>,
}

impl CaseView for View {
    const WORKLOAD: &'static str = NAME;
    const SUBJECT: Subject = Subject::Synthetic;

    /// Calibration entries have their own reading (`View::calibrated`).
    fn selects(params: &BTreeMap<String, Value>) -> bool {
        !is_calibration(params)
    }
}

impl View {
    /// The view and calibration role of a calibrated derived figure.
    pub fn calibrated(d: &Derived) -> Option<(View, Calibration)> {
        if d.workload != NAME {
            return None;
        }
        let role: Calibration = serde_json::from_value(d.params.get(CALIBRATION)?.clone()).ok()?;
        Some((parse_params(&d.params)?, role))
    }

    /// This view's params marked as a calibration entry of `role` (what
    /// `calibrated` reads back).
    pub fn calibration_params(&self, role: Calibration) -> BTreeMap<String, Value> {
        let mut params = self.params();
        params.insert(
            CALIBRATION.into(),
            serde_json::to_value(role).unwrap_or_default(),
        );
        params
    }
}

/// Params key naming a calibration entry's role.
const CALIBRATION: &str = "calibration";

/// What a calibration entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Calibration {
    /// The same names looked up cold in a plain directory of the backing
    /// filesystem, right after each batch of the layout's (raw samples, ns).
    Reference,
    /// Each batch divided by its reference (×), and the figures made of them.
    Normalised,
}

fn is_calibration(params: &BTreeMap<String, Value>) -> bool {
    params.contains_key(CALIBRATION)
}

/// The metric name and unit of an op.
pub fn metric_of(op: Op) -> (&'static str, &'static str) {
    match op {
        Op::Stat => ("latency_per_op", "ns"),
        Op::Readdir => ("latency_per_dir", "ns"),
        Op::Mount => ("mount_time", "ns"),
        Op::Walk => ("walk_time", "ns"),
        Op::Startup => ("startup_time", "ns"),
        Op::Open => ("latency_per_open", "ns"),
    }
}

/// The report's params of a lookup case or derived figure about one of the
/// user's images, typed (its `image` key is what synthetic views lack).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageView {
    /// Backing filesystem.
    pub backing: String,
    /// The image's reference.
    pub image: String,
    /// Its layers.
    pub layers: usize,
    /// `stat` (per name) or `walk` (the whole tree).
    pub op: Op,
    /// The layer the names live in (0 = bottom; stat only).
    #[serde(default)]
    pub layer: Option<usize>,
    /// Cold or warm.
    pub cache: Cache,
    /// How cold was made (cold only).
    #[serde(default)]
    pub eviction: Option<String>,
    /// Names of that layer (stat) or entries of the tree (walk).
    pub names: usize,
    /// Stats timed per sample (warm: together; cold: each alone, summed).
    #[serde(default)]
    pub ops_per_sample: Option<usize>,
    /// The layout a ratio is taken against.
    #[serde(default)]
    pub baseline: Option<String>,
}

impl CaseView for ImageView {
    const WORKLOAD: &'static str = NAME;
    const SUBJECT: Subject = Subject::Images;
}

/// One series of the store sweep: the layout by its index in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoreKey {
    /// Index of the layout in the run.
    pub layout: usize,
    /// `Stat` or `Open`.
    pub op: Op,
    /// Cold or warm.
    pub cache: Cache,
    /// Images in the store.
    pub images: usize,
}

/// Key of one series of image samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageKey {
    /// Index of the layout in the run.
    pub layout: usize,
    /// Index of the image in the run.
    pub image: usize,
    /// `Stat` (per name) or `Walk` (the whole tree).
    pub op: Op,
    /// The layer the names live in (stat only).
    pub layer: Option<usize>,
    /// Cold or warm.
    pub cache: Cache,
}
