//! The storage layouts ("drivers") an image is built with: one `Layout` per way a
//! container engine stores layers, one file each, and one line in `LAYOUTS`.
//!
//! Workloads never ask a layout its name: they ask its `capabilities()` (does it
//! share layers? how does a copy-up show? is it the baseline?) and where a file's
//! data lives (`lower_file`, `upper_file`, `data_file`).

mod fsops;
mod overlay;
mod overlay2;
mod plain;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ErrorClass;
use crate::image::apply::{ApplyError, ApplyStats};
use crate::image::ImageSource;
use crate::isolate::{IsolateError, MountApi, MountGuard, MountHow, Privilege};

pub use crate::isolate::MAX_LOWER_LAYERS;

/// The registry: one line per layout, in report order (the default `--layouts`).
pub static LAYOUTS: &[&LayoutEntry] = &[&overlay2::ENTRY, &overlay::ENTRY, &plain::ENTRY];

/// What the rest of the tool knows about a layout before making one.
pub struct LayoutEntry {
    /// Name in reports and on the command line.
    pub name: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    /// How its lines are drawn in every chart.
    pub style: Style,
    /// What it can do (static: renderers ask it of a name read from a report).
    pub caps: Capabilities,
    /// Makes it with the run's mount settings.
    pub create: fn(&LayoutConfig) -> Box<dyn Layout>,
}

/// A layout's look in charts: stable across every chart of every report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Line colour, RGB.
    pub rgb: (u8, u8, u8),
    /// Dashed line (keeps a layout visible where it overlaps another).
    pub dashed: bool,
    /// Triangle markers instead of circles, where a chart marks layouts.
    pub triangle: bool,
}

/// The look of a layout name not in the registry (e.g. read from another build's report).
pub const UNKNOWN_STYLE: Style = Style {
    rgb: (110, 110, 110),
    dashed: false,
    triangle: false,
};

/// The entry named `name`.
pub fn entry(name: &str) -> Option<&'static LayoutEntry> {
    LAYOUTS.iter().copied().find(|l| l.name == name)
}

/// Every layout name, in report order.
pub fn names() -> Vec<&'static str> {
    LAYOUTS.iter().map(|l| l.name).collect()
}

/// The chart style of `name` (grey for a layout this build does not know).
pub fn style_of(name: &str) -> Style {
    entry(name).map_or(UNKNOWN_STYLE, |e| e.style)
}

/// Makes the layout named `name`.
pub fn create(name: &str, config: &LayoutConfig) -> Option<Box<dyn Layout>> {
    entry(name).map(|e| (e.create)(config))
}

/// Makes a layout of this build by its registry name; panics on an unknown name
/// (for tests and benches, whose names are literals).
pub fn make(name: &str, config: &LayoutConfig) -> Box<dyn Layout> {
    match create(name, config) {
        Some(l) => l,
        None => panic!("no layout named {name}; known: {}", names().join(", ")),
    }
}

/// The capabilities of a layout this build does not know (from another build's report).
pub const UNKNOWN_CAPS: Capabilities = Capabilities {
    shares_layers: false,
    copy_up: CopyUp::None,
    baseline: false,
    overlay_options: false,
    lower_per_layer: false,
    hidden_inode_per_mount: false,
    table_mounts: TableMounts::None,
    idmap_lowers: false,
};

/// The capabilities of `name` (`UNKNOWN_CAPS` for a layout this build does not know).
pub fn caps_of(name: &str) -> Capabilities {
    entry(name).map_or(UNKNOWN_CAPS, |e| e.caps)
}

/// How a container's first write to a lower file shows on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyUp {
    /// An overlay copy-up into the container's upper dir, marked by overlay's
    /// xattrs (`Layout::overlay_xattr`).
    OverlayXattr,
    /// No copy at all: every container has its own private files already.
    None,
}

/// How many lines one mounted container adds to the mount table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableMounts {
    /// None: the container's dirs are its view (a copy, a snapshot).
    None,
    /// One (an overlay; layers passed by fd add nothing).
    One,
    /// One per image layer plus one (each layer mounted at a dir, then an overlay).
    PerLayerPlusOne,
}

impl TableMounts {
    /// Lines a container of an image of `depth` layers adds.
    pub fn count(self, depth: usize) -> usize {
        match self {
            TableMounts::None => 0,
            TableMounts::One => 1,
            TableMounts::PerLayerPlusOne => depth + 1,
        }
    }
}

/// What a layout can do, asked by workloads instead of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Layers are stored once and shared by every image built on them.
    pub shares_layers: bool,
    /// How a copy-up shows.
    pub copy_up: CopyUp,
    /// The layout every ratio is taken against (no union fs).
    pub baseline: bool,
    /// Takes overlay mount options (`metacopy=on`, `volatile`).
    pub overlay_options: bool,
    /// A container mount stacks one lower per image layer (else one, or none).
    pub lower_per_layer: bool,
    /// Each mounted container holds one inode on the backing that no walk finds
    /// (overlay keeps it in the workdir until unmount).
    pub hidden_inode_per_mount: bool,
    /// What a mounted container adds to the mount table.
    pub table_mounts: TableMounts,
    /// Can mount its lower layers idmapped (`Layout::mount_as` with an `Idmap`).
    pub idmap_lowers: bool,
}

/// The capabilities every overlay layout shares.
const fn overlay_caps(shares_layers: bool, lower_per_layer: bool) -> Capabilities {
    Capabilities {
        shares_layers,
        copy_up: CopyUp::OverlayXattr,
        baseline: false,
        overlay_options: true,
        lower_per_layer,
        hidden_inode_per_mount: true,
        table_mounts: TableMounts::One,
        idmap_lowers: true,
    }
}

/// How overlay mounts are made (shared by every overlay layout).
#[derive(Debug, Clone)]
pub struct LayoutConfig {
    /// Which mount syscalls.
    pub mount_api: MountApi,
    /// Extra overlay options (`metacopy=on`, `volatile`, …).
    pub options: Vec<(String, Option<String>)>,
    /// Root, or rootless in a user namespace (`userxattr`, `user.` xattrs).
    pub privilege: Privilege,
}

impl LayoutConfig {
    /// The xattr overlay reads opaque markers from.
    pub fn opaque_xattr(&self) -> String {
        self.overlay_xattr("opaque")
    }

    /// Full name of overlay's xattr `name` (`trusted.overlay.*` as root,
    /// `user.overlay.*` with `userxattr`).
    pub fn overlay_xattr(&self, name: &str) -> String {
        format!("{}{name}", self.overlay_prefix())
    }

    /// The namespace overlay reads its markers from for this privilege.
    pub fn overlay_prefix(&self) -> &'static str {
        match self.privilege {
            Privilege::Root => "trusted.overlay.",
            Privilege::Rootless => "user.overlay.",
        }
    }

    /// The same settings with other overlay options.
    pub fn with_options(&self, options: Vec<(String, Option<String>)>) -> LayoutConfig {
        LayoutConfig {
            options,
            ..self.clone()
        }
    }

    fn mount_options(&self) -> Vec<(String, Option<String>)> {
        let mut opts = self.options.clone();
        if self.privilege == Privilege::Rootless {
            opts.push(("userxattr".into(), None));
        }
        opts
    }
}

/// An image materialised by one layout.
#[derive(Debug, Clone)]
pub struct PreparedImage {
    /// Name of the layout that made it.
    pub layout: &'static str,
    /// Where it lives.
    pub root: PathBuf,
    /// overlay2: diff dirs; overlay: full roots; plain: the one flat tree. Bottom first.
    pub layer_dirs: Vec<PathBuf>,
    /// Number of image layers it was built from.
    pub depth: usize,
    /// The chain id of each image layer, bottom first (what stores share by).
    pub chain_ids: Vec<String>,
    /// What writing each layer this import made cost (layers reused from the
    /// store have none), bottom first.
    pub written: Vec<Option<ApplyStats>>,
}

/// A container's directories (not yet mounted).
#[derive(Debug, Clone)]
pub struct ContainerDirs {
    /// The container's own dir.
    pub root: PathBuf,
    /// Upper and work dirs (overlay layouts).
    pub upper_work: Option<(PathBuf, PathBuf)>,
    /// Where the container's file system appears.
    pub merged: PathBuf,
}

/// A mounted (or, for plain, simply present) container view.
#[derive(Debug)]
pub struct Mounted {
    /// The container's root file system.
    pub merged: PathBuf,
    /// Unmounts on drop; `None` for plain.
    pub guard: Option<MountGuard>,
    /// Time of the mount syscalls (None for plain).
    pub mount_time: Option<Duration>,
    /// Superblock options read back from mountinfo.
    pub options_in_force: Option<String>,
}

impl Mounted {
    /// Unmounts now, reporting failure.
    pub fn unmount(self) -> Result<(), LayoutError> {
        if let Some(g) = self.guard {
            g.unmount()?;
        }
        Ok(())
    }
}

/// One storage layout.
pub trait Layout: Send + Sync {
    /// Its registry entry.
    fn entry(&self) -> &'static LayoutEntry;
    /// Its registry name.
    fn name(&self) -> &'static str {
        self.entry().name
    }
    /// What it can do (asked by workloads instead of its name).
    fn capabilities(&self) -> Capabilities {
        self.entry().caps
    }
    /// Full name of overlay's xattr `name` as this layout's mounts read and write
    /// it (`trusted.overlay.metacopy`, or `user.` with `userxattr`); None when the
    /// layout does not mark its files with overlay xattrs.
    fn overlay_xattr(&self, _name: &str) -> Option<String> {
        None
    }
    /// The same layout mounting with extra overlay `options`, if it takes them
    /// (with no options: always a fresh handle on the same layout).
    fn with_options(&self, options: &[(String, Option<String>)]) -> Option<Box<dyn Layout>>;
    /// Materialises `image` in a fresh store under `root` (an empty dir).
    fn prepare(&self, image: &dyn ImageSource, root: &Path) -> Result<PreparedImage, LayoutError> {
        self.import(root, image)
    }
    /// Imports `image` into this layout's store at `store` (made if missing). A
    /// layer the store already holds — the same chain id, from an earlier import
    /// — is reused as the engine would (overlay2 and the legacy driver keep one
    /// copy of a shared layer; plain flattens every image anew).
    fn import(&self, store: &Path, image: &dyn ImageSource) -> Result<PreparedImage, LayoutError>;
    /// Makes a container's dirs under `root`.
    fn create_container(
        &self,
        image: &PreparedImage,
        root: &Path,
    ) -> Result<ContainerDirs, LayoutError>;
    /// Mounts a container's view (fresh mount: empty overlay dcache).
    fn mount(
        &self,
        image: &PreparedImage,
        container: &ContainerDirs,
    ) -> Result<Mounted, LayoutError>;
    /// Mounts a container's view as `how` asks: idmapped lowers (where
    /// `Capabilities::idmap_lowers`), and whether to read the stack back from
    /// mountinfo (a layout that always does may ignore `read_back: false`).
    fn mount_as(
        &self,
        image: &PreparedImage,
        container: &ContainerDirs,
        how: &MountHow<'_>,
    ) -> Result<Mounted, LayoutError> {
        if how.idmap.is_some() {
            return Err(IsolateError::Unsupported(format!(
                "layout {} cannot idmap its lower layers",
                self.name()
            ))
            .into());
        }
        self.mount(image, container)
    }
    /// The host file that holds `rel`'s data for containers of `image` that have
    /// not copied it up (the topmost layer that has it).
    fn lower_file(&self, image: &PreparedImage, rel: &Path) -> Option<PathBuf> {
        image
            .layer_dirs
            .iter()
            .rev()
            .map(|d| d.join(rel))
            .find(|p| p.symlink_metadata().is_ok())
    }
    /// Where container `c`'s own copy of `rel` lands once it copies it up (None
    /// when containers have no upper layer).
    fn upper_file(&self, c: &ContainerDirs, rel: &Path) -> Option<PathBuf> {
        c.upper_work.as_ref().map(|(u, _)| u.join(rel))
    }
    /// The host file whose pages back `rel` as container `c` of `image` sees it now.
    fn data_file(&self, image: &PreparedImage, c: &ContainerDirs, rel: &Path) -> Option<PathBuf> {
        match self.upper_file(c, rel) {
            Some(u) if u.symlink_metadata().is_ok() => Some(u),
            _ => self.lower_file(image, rel),
        }
    }
}

/// What went wrong building or mounting a layout.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(transparent)]
    Isolate(#[from] IsolateError),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("depth {depth} exceeds the kernel's limit of {limit} lower layers; use a depth from 1 to {limit}")]
    TooDeep { depth: usize, limit: usize },
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

impl LayoutError {
    /// Exit-code class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            LayoutError::Isolate(e) => e.class(),
            LayoutError::TooDeep { .. } => ErrorClass::Usage,
            LayoutError::Apply(e) => e.class(),
            LayoutError::Io { .. } => ErrorClass::Runtime,
        }
    }

    pub(crate) fn io(
        what: &'static str,
        path: &Path,
    ) -> impl FnOnce(std::io::Error) -> LayoutError {
        let path = path.to_path_buf();
        move |source| LayoutError::Io { what, path, source }
    }
}

/// Mounts a container's overlay over `lowers` (topmost first) with the layout's
/// settings, as `how` asks.
fn mount_container(
    config: &LayoutConfig,
    lowers: Vec<PathBuf>,
    c: &ContainerDirs,
    how: &MountHow<'_>,
) -> Result<Mounted, LayoutError> {
    let spec = crate::isolate::OverlayMount {
        lowers,
        upper_work: c.upper_work.clone(),
        options: config.mount_options(),
        target: c.merged.clone(),
    };
    let m = crate::isolate::mount_overlay_as(&spec, config.mount_api, how)?;
    Ok(Mounted {
        merged: c.merged.clone(),
        guard: Some(m.guard),
        mount_time: Some(m.elapsed),
        options_in_force: how.read_back.then_some(m.options_in_force),
    })
}

/// Dirs of a container with an upper layer.
fn overlay_container_dirs(root: &Path) -> Result<ContainerDirs, LayoutError> {
    let (upper, work, merged) = (root.join("u"), root.join("w"), root.join("m"));
    for d in [root, &upper, &work, &merged] {
        std::fs::create_dir_all(d).map_err(LayoutError::io("creating", d))?;
    }
    Ok(ContainerDirs {
        root: root.to_path_buf(),
        upper_work: Some((upper, work)),
        merged,
    })
}
