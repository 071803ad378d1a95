//! import's keys: the name, what is timed and what one reading covers (shared
//! by measure and analyze), and the typed view that writes and reads the
//! report's params.

use serde::{Deserialize, Serialize};

use crate::workload::{CaseView, Subject};

/// Name in reports.
pub const NAME: &str = "import";

/// The row name of the reference conversion (`mkfs.erofs` on an unpacked layer).
pub const REFERENCE: &str = "mkfs.erofs";

/// How the reference was run.
pub const REFERENCE_TOOL: &str = "mkfs.erofs --quiet -Enoinline_data IMAGE DIR (layer unpacked beforehand in overlay form, not timed; no --tar in this erofs-utils)";

/// What is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// The layout's import call (unpack, convert, store).
    Import,
    /// `syncfs` right after it: the writeback the import left.
    Writeback,
}

impl Metric {
    /// Metric name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Import => "import_time",
            Metric::Writeback => "writeback_time",
        }
    }
}

/// What one reading covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Layer `k` (0 = bottom) added to a store holding the layers below.
    Layer(usize),
    /// The whole image into a fresh store.
    Image,
}

/// One timed conversion: the layout by its index in the run (`None`: the reference).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Index of the layout in the run, or `None` for the reference.
    pub layout: Option<usize>,
    /// Index of the image (0: synthetic, then each `--image`).
    pub image: usize,
    /// Layer or whole image.
    pub scope: Scope,
    /// What is timed.
    pub metric: Metric,
    /// Nanoseconds.
    pub value: f64,
    /// File content the layer holds, bytes (layer scope).
    pub layer_bytes: Option<u64>,
}

/// The report's params of an import case or derived figure, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// Backing filesystem.
    pub backing: String,
    /// The image (`synthetic:import`, `oci:/x:tag`).
    pub image: String,
    /// Its layers.
    pub image_layers: usize,
    /// The layer (0 = bottom); absent for the whole image.
    #[serde(default)]
    pub layer: Option<usize>,
    /// File content of that layer, bytes.
    #[serde(default)]
    pub layer_bytes: Option<u64>,
    /// How the reference row was made (reference only).
    #[serde(default)]
    pub tool: Option<String>,
    /// The layout a same-tree ratio is taken against.
    #[serde(default)]
    pub same_tree: Option<String>,
}

impl CaseView for View {
    const WORKLOAD: &'static str = NAME;
    const SUBJECT: Subject = Subject::All;
}
