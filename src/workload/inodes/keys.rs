//! inodes' keys: the name, phases and what a per-unit cost is per and counts,
//! the shapes measure hands to analyze, and the typed views that write and
//! read the report's params.

use serde::{Deserialize, Serialize};

use crate::isolate::FsUsage;
use crate::probe::census::Census;
use crate::workload::{CaseView, Subject};

/// Name in reports.
pub const NAME: &str = "inodes";

/// When the filesystem is measured, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The fresh filesystem.
    Empty,
    /// The layers every image shares, stored.
    BaseLayers,
    /// Every image's layers stored.
    Layers,
    /// Containers' dirs made.
    ContainersCreated,
    /// Containers mounted.
    ContainersMounted,
    /// Containers wrote (copy-ups, new files, deletions).
    ContainersWritten,
    /// Containers unmounted and removed.
    ContainersRemoved,
    /// Images removed: must equal `Empty`.
    ImagesRemoved,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 8] = [
        Phase::Empty,
        Phase::BaseLayers,
        Phase::Layers,
        Phase::ContainersCreated,
        Phase::ContainersMounted,
        Phase::ContainersWritten,
        Phase::ContainersRemoved,
        Phase::ImagesRemoved,
    ];

    /// Spelling in reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Empty => "empty",
            Phase::BaseLayers => "base-layers",
            Phase::Layers => "layers",
            Phase::ContainersCreated => "containers-created",
            Phase::ContainersMounted => "containers-mounted",
            Phase::ContainersWritten => "containers-written",
            Phase::ContainersRemoved => "containers-removed",
            Phase::ImagesRemoved => "images-removed",
        }
    }
}

/// What a per-unit cost is per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quantity {
    /// The shared base layers (stored once).
    SharedBase,
    /// One image's own layers.
    Image,
    /// One stored layer, on average.
    Layer,
    /// One container (created, mounted, written).
    Container,
}

/// What a per-unit cost counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resource {
    /// Inodes.
    Inodes,
    /// Bytes.
    Bytes,
}

/// Per phase: the statvfs figures and the walk census.
pub type PhaseTable = Vec<(Phase, FsUsage, Census)>;

/// The report's params of an inodes case or derived figure, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// Backing filesystem.
    pub backing: String,
    /// Layers per image (absent on the growth slope).
    #[serde(default)]
    pub layers: Option<usize>,
    /// Of which shared (absent on the growth slope).
    #[serde(default)]
    pub base_layers: Option<usize>,
    /// Images in the set.
    pub images: usize,
    /// Containers per image.
    pub containers: usize,
    /// Files per layer.
    pub files_per_layer: usize,
    /// Directories per layer.
    pub dirs_per_layer: usize,
    /// When measured (cases, and the growth slope).
    #[serde(default)]
    pub phase: Option<Phase>,
    /// What a per-unit cost is per.
    #[serde(default)]
    pub quantity: Option<Quantity>,
    /// What a per-unit cost counts.
    #[serde(default)]
    pub resource: Option<Resource>,
}

impl CaseView for View {
    const WORKLOAD: &'static str = NAME;
    const SUBJECT: Subject = Subject::Synthetic;
}

/// Metric of the inodes all image layers hold (layers phase − empty): the growth
/// slope's inputs.
pub const LAYER_INODES: &str = "image_layer_inodes";

/// The pseudo-layout of the figures read from an image's layer streams
/// (before any layout stores it): entries by kind, file bytes, largest dirs.
pub const STREAM: &str = "stream";

/// The report's params of an inodes case or derived figure about one of the
/// user's images, typed (its `image` key is what synthetic views lack).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageView {
    /// Backing filesystem (absent on stream figures: no filesystem involved).
    #[serde(default)]
    pub backing: Option<String>,
    /// The image's reference.
    pub image: String,
    /// Its layers.
    pub layers: usize,
    /// What the figure is per.
    pub quantity: Quantity,
    /// The layer (0 = bottom), on per-layer figures.
    #[serde(default)]
    pub layer: Option<usize>,
    /// That layer's blob digest.
    #[serde(default)]
    pub digest: Option<String>,
    /// That layer's chain id (what stores share by; `plan --from` finds layers by it).
    #[serde(default)]
    pub chain_id: Option<String>,
    /// The unit held every layer of the image, flattened (layouts that do not share layers).
    #[serde(default)]
    pub flattened: Option<bool>,
    /// The store held the unit already (an earlier image shares it): it added nothing.
    #[serde(default)]
    pub stored_before: Option<bool>,
    /// Containers measured (per-container figures).
    #[serde(default)]
    pub containers: Option<usize>,
    /// Files each container modified (it created as many, deleted half).
    #[serde(default)]
    pub writes: Option<usize>,
    /// A directory (largest-directory figures).
    #[serde(default)]
    pub dir: Option<String>,
    /// What a per-unit figure counts.
    #[serde(default)]
    pub resource: Option<Resource>,
}

impl CaseView for ImageView {
    const WORKLOAD: &'static str = NAME;
    const SUBJECT: Subject = Subject::Images;
}

impl ImageView {
    /// The view of a figure about `image` (of `layers` layers) per `quantity`,
    /// every optional key left out.
    pub fn new(image: &str, layers: usize, quantity: Quantity) -> ImageView {
        ImageView {
            backing: None,
            image: image.into(),
            layers,
            quantity,
            layer: None,
            digest: None,
            chain_id: None,
            flattened: None,
            stored_before: None,
            containers: None,
            writes: None,
            dir: None,
            resource: None,
        }
    }
}

/// What storing one unit (a layer, or a flattened image) added.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDelta {
    /// The image layer it completes (0 = bottom; a flattened image: its top layer).
    pub layer: usize,
    /// Chain id of that layer (a store shares it by this).
    pub chain_id: String,
    /// Digest of that layer's blob.
    pub digest: String,
    /// Image layers it holds (1, or all of them when flattened).
    pub layers: usize,
    /// The unit is the whole image flattened (a layout that does not share layers).
    pub flattened: bool,
    /// The store held it already (from an earlier image): it added nothing.
    pub stored_before: bool,
    /// Inodes it added.
    pub inodes: i64,
    /// Bytes it added.
    pub bytes: i64,
}

/// One image measured on one layout.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageMeasure {
    /// The image's reference.
    pub reference: String,
    /// Its layers.
    pub layers: usize,
    /// What storing it added, unit by unit, bottom first.
    pub stored: Vec<StoredDelta>,
    /// The store walk after this image minus before it.
    pub census: CensusDelta,
    /// Containers made of it.
    pub containers: usize,
    /// Inodes all of them added (created, mounted, written).
    pub containers_inodes: i64,
    /// Bytes all of them added.
    pub containers_bytes: i64,
}

/// What a walk of the store gained.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CensusDelta {
    /// Directories.
    pub dirs: i64,
    /// Regular-file paths.
    pub files: i64,
    /// Overlay whiteouts (char 0/0).
    pub whiteouts: i64,
    /// Symlinks.
    pub symlinks: i64,
    /// Regular-file paths whose inode has other links.
    pub hardlink_paths: i64,
    /// Distinct inodes.
    pub inodes: i64,
}
