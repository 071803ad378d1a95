//! storm's keys: the name, idmap modes, phases and metric names, the series
//! keys and samples measure fills and analyze reads, and the typed view that
//! writes and reads the report's params.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::choice::Choice;
use crate::isolate::IdmapMode;
use crate::workload::{CaseView, Subject};

/// Name in reports.
pub const NAME: &str = "storm";

/// How a container's lower layers are idmapped.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "kebab-case")]
pub enum Idmap {
    /// Plain lowers.
    #[default]
    None,
    /// One idmapped clone per lower layer.
    PerLayer,
    /// One idmapped clone of the layers' common parent.
    CommonParent,
}

impl Idmap {
    /// The idmapped modes (what the suites measure besides `none`).
    pub const ALL_MODES: [Idmap; 2] = [Idmap::PerLayer, Idmap::CommonParent];

    /// The kernel-side mode (None for plain lowers).
    pub fn mode(self) -> Option<IdmapMode> {
        match self {
            Idmap::None => None,
            Idmap::PerLayer => Some(IdmapMode::PerLayer),
            Idmap::CommonParent => Some(IdmapMode::CommonParent),
        }
    }
}

impl Choice for Idmap {
    const ALL: &'static [Self] = &[Idmap::None, Idmap::PerLayer, Idmap::CommonParent];
    fn name(self) -> &'static str {
        match self {
            Idmap::None => "none",
            Idmap::PerLayer => "per-layer",
            Idmap::CommonParent => "common-parent",
        }
    }
    fn about(self) -> &'static str {
        match self {
            Idmap::None => "Plain lower layers",
            Idmap::PerLayer => {
                "One idmapped clone per lower layer (open_tree + mount_setattr each; containerd 2.1)"
            }
            Idmap::CommonParent => {
                "One idmapped clone of the layers' common parent (containerd's fix for #12048)"
            }
        }
    }
}

/// Which part of the workload a figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// C containers start at once.
    Start,
    /// The same C containers stop at once (unmount + remove).
    Stop,
    /// Mounts held while the mount table is read and one more mount is made.
    MountTable,
}

/// Every container's time from the storm's release to its read set done, ns.
pub const TIME_TO_READY: &str = "time_to_ready";

/// p99 of one storm's times to ready (one sample per round), ns.
pub const TIME_TO_READY_P99: &str = "time_to_ready_p99";

/// C over the time from release to the last container ready (one per round).
pub const STARTS_PER_SECOND: &str = "starts_per_second";

/// Every container's time from the stop release to unmounted and removed, ns.
pub const TIME_TO_STOP: &str = "time_to_stop";

/// open + read of the whole /proc/self/mountinfo + close, ns.
pub const MOUNTINFO_READ: &str = "mountinfo_read_time";

/// The same read in CPU time of the reading thread (the kernel's work, not the
/// wait for a core), ns.
pub const MOUNTINFO_READ_CPU: &str = "mountinfo_read_cpu_time";

/// Parsing what was read into mount entries, ns.
pub const MOUNTINFO_PARSE: &str = "mountinfo_parse_time";

/// Size of the mount table as read, bytes.
pub const MOUNTINFO_BYTES: &str = "mountinfo_bytes";

/// Lines of the mount table (every mount of the namespace).
pub const MOUNTINFO_LINES: &str = "mountinfo_lines";

/// One more container mount with N held, ns.
pub const MOUNT_TIME: &str = "mount_time";

/// Its unmount, ns.
pub const UNMOUNT_TIME: &str = "unmount_time";

/// Removing every held mount at once (one detach of their parent), ns.
pub const TEARDOWN_TIME: &str = "teardown_time";

/// Kind of the concurrency at which p99 reaches twice its C = 1 value.
pub const DOUBLING: &str = "p99-doubling-concurrency";

/// `baseline` of the ratios to C = 1.
pub const BASE_C1: &str = "concurrency=1";

/// `baseline` of the ratios to plain lowers.
pub const BASE_NO_IDMAP: &str = "idmap=none";

/// Slopes are per this many held mounts.
pub const MOUNTS_PER_UNIT: f64 = 1000.0;

/// One storm series: the layout by its index in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// Index of the layout in the run's interleaving order.
    pub layout: usize,
    /// Image layers.
    pub depth: usize,
    /// Idmap mode.
    pub idmap: Idmap,
    /// Containers started at once.
    pub concurrency: usize,
}

/// What one storm measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Round {
    /// Per container, from release to ready, ns.
    pub ready_ns: Vec<f64>,
    /// Per container, from the stop release to removed, ns.
    pub stop_ns: Vec<f64>,
    /// From release to the last container ready, ns.
    pub wall_ns: f64,
}

/// What was measured with N mounts held (one layout).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TablePoint {
    /// Reads of the whole table, wall time, ns.
    pub read_ns: Vec<f64>,
    /// The same reads, CPU time of the reading thread, ns.
    pub read_cpu_ns: Vec<f64>,
    /// Parses of it, ns.
    pub parse_ns: Vec<f64>,
    /// Its size, bytes.
    pub bytes: f64,
    /// Its lines.
    pub lines: f64,
    /// One more mount, ns.
    pub mount_ns: Vec<f64>,
    /// Its unmount, ns.
    pub unmount_ns: Vec<f64>,
}

/// Everything measured, kept as it comes so an interrupted run keeps it.
#[derive(Debug, Default)]
pub struct Samples {
    /// Storms, in measurement order per series.
    pub storms: BTreeMap<Key, Vec<Round>>,
    /// Per (layout, depth of the held mounts, mounts held).
    pub table: BTreeMap<(usize, usize, usize), TablePoint>,
    /// Per (layout, depth, mounts held): removing them all at once, ns.
    pub teardown: BTreeMap<(usize, usize, usize), f64>,
    /// Lookups of a read set that contradicted the image.
    pub unexpected: usize,
}

/// The report's params of a storm case or derived figure, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// Backing filesystem.
    pub backing: String,
    /// Which part.
    pub phase: Phase,
    /// Image layers.
    pub depth: usize,
    /// Idmap mode (start and stop).
    #[serde(default)]
    pub idmap: Option<Idmap>,
    /// Containers started at once (start and stop; absent on doubling figures).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Lookups of the start-up read set (start).
    #[serde(default)]
    pub read_set: Option<usize>,
    /// The user's image the containers were made of, reading what its own
    /// start read (absent: the synthetic image and its 8 names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Mounts held (mount-table; absent on slopes).
    #[serde(default)]
    pub held: Option<usize>,
    /// The metric a derived figure is computed from.
    #[serde(default)]
    pub of: Option<String>,
    /// What a ratio is taken against (`concurrency=1`, `idmap=none`).
    #[serde(default)]
    pub baseline: Option<String>,
}

impl CaseView for View {
    const WORKLOAD: &'static str = NAME;
    const SUBJECT: Subject = Subject::All;
}
