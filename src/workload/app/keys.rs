//! app's keys: the name, the metric, cold and warm, and the typed view that
//! writes and reads the report's params.

use serde::{Deserialize, Serialize};

use crate::workload::{CaseView, Subject};

/// Name in reports.
pub const NAME: &str = "app";

/// From the runtime's spawn to ready (exit 0 or the ready line), ns.
pub const TIME_TO_READY: &str = "time_to_ready";

/// `baseline` of ratios to overlay2.
pub const BASE_OVERLAY2: &str = "overlay2";

/// `baseline` of ratios to plain.
pub const BASE_PLAIN: &str = "plain";

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
