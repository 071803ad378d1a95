//! The storage layouts ("drivers") an image is built with: one `Layout` per way a
//! container engine stores layers, one file each, and one line in `LAYOUTS`.
//!
//! Workloads never ask a layout its name: they ask its `capabilities()` (does it
//! share layers? how does a copy-up show? is it the baseline?) and where a file's
//! data lives (`lower_file`, `upper_file`, `data_file`).

mod btrfs;
mod claims;
mod composefs;
mod containerd;
mod erofs;
pub(crate) mod fsops;
mod fuse_overlayfs;
pub mod host;
mod overlay;
mod overlay2;
mod plain;
mod rootless;
pub mod spec;
mod verify;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ErrorClass;
use crate::image::apply::{ApplyError, ApplyStats};
use crate::image::{ImageSource, ImageSpec, SyntheticImage};
use crate::isolate::{BackingInfo, IsolateError, MountApi, MountHow, Privilege, Unmount};

pub use crate::isolate::MAX_LOWER_LAYERS;
pub use claims::{Claim, CLAIMS};
pub use host::{Engine, Feature, HostFacts, HostProfile, Support};
pub use spec::{MountHost, MountSpec, OverlaySpec};
pub use verify::{CopyUpCheck, Touch};

/// The registry: one line per layout, in report order.
pub static LAYOUTS: &[&LayoutEntry] = &[
    &overlay2::ENTRY,
    &overlay::ENTRY,
    &plain::ENTRY,
    &containerd::ENTRY,
    &rootless::ENTRY,
    &fuse_overlayfs::ENTRY,
    &btrfs::ENTRY,
    &erofs::ENTRY,
    &composefs::ENTRY,
];

/// The kernel filesystem every overlay layout mounts (as /proc/filesystems,
/// mountinfo and containers-storage's driver table name it).
pub const OVERLAY_FSTYPE: &str = "overlay";

/// The program the fuse-overlayfs layout runs (engines' configs name it as
/// their `mount_program`).
pub const FUSE_OVERLAYFS_PROGRAM: &str = fuse_overlayfs::PROGRAM;

/// The entries whose on-disk stores doctor reads from engines (Docker's
/// overlay2 and legacy overlay dirs, containerd's snapshotter, Docker's btrfs
/// driver): a store's `format` is its layout's name.
pub mod stores {
    pub use super::btrfs::ENTRY as BTRFS;
    pub use super::containerd::ENTRY as CONTAINERD;
    pub use super::overlay::ENTRY as LEGACY_OVERLAY;
    pub use super::overlay2::ENTRY as OVERLAY2;
}

/// The layouts a run measures when none are named: Docker's two overlay
/// drivers and the baseline (the quick suite stays about a minute; the other
/// rows are asked for with `--layouts`).
pub static DEFAULT_LAYOUTS: &[&str] = &["overlay2", "overlay", "plain"];

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
    /// What it needs from the host and how doctor probes and describes it.
    pub host: HostProfile,
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
    metacopy: false,
    needs_fstype: None,
    same_tree_as: None,
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
    /// A user-space daemon copies the whole file into the upper dir and marks
    /// it its own way (fuse-overlayfs: `user.fuseoverlayfs.origin`).
    Daemon,
    /// No file copy: the container's snapshot shares the image's extents and
    /// the first write copies only the blocks it touches (btrfs).
    BlockCow,
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
    /// Two (a composefs metadata image, then the overlay on it).
    Two,
    /// One per image layer plus one (each layer mounted at a dir, then an overlay).
    PerLayerPlusOne,
}

impl TableMounts {
    /// Lines a container of an image of `depth` layers adds.
    pub fn count(self, depth: usize) -> usize {
        match self {
            TableMounts::None => 0,
            TableMounts::One => 1,
            TableMounts::Two => 2,
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
    /// Takes `metacopy=on` (the kernel refuses it with `userxattr`).
    pub metacopy: bool,
    /// The backing filesystem it needs, as the kernel names it (`btrfs`); on
    /// any other backing the row is skipped with the reason.
    pub needs_fstype: Option<&'static str>,
    /// The layout whose stack holds the same trees in another form (erofs: the
    /// overlay2 diff dirs, each made an EROFS image): workloads show this one's
    /// cost against it, asking the name here instead of naming it.
    pub same_tree_as: Option<&'static str>,
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
        metacopy: true,
        needs_fstype: None,
        same_tree_as: None,
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

    pub(crate) fn mount_options(&self) -> Vec<(String, Option<String>)> {
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

/// A mounted (or, for plain and btrfs, simply present) container view.
#[derive(Debug)]
pub struct Mounted {
    /// The container's root file system.
    pub merged: PathBuf,
    /// What undoes the mount, in order (a mount, a FUSE mount and its daemon);
    /// each is undone lazily on drop; empty when nothing is mounted.
    pub guards: Vec<Box<dyn Unmount>>,
    /// Time of the mount syscalls (or of the daemon's start to a serving
    /// mount); None when nothing is mounted.
    pub mount_time: Option<Duration>,
    /// Options read back from mountinfo (or the daemon's options).
    pub options_in_force: Option<String>,
}

impl Mounted {
    /// A view with nothing mounted (the container's files are its own dir).
    pub fn unmounted(merged: PathBuf) -> Mounted {
        Mounted {
            merged,
            guards: Vec::new(),
            mount_time: None,
            options_in_force: None,
        }
    }

    /// Unmounts now, every guard in order, reporting the first failure.
    pub fn unmount(self) -> Result<(), LayoutError> {
        let mut first = Ok(());
        for g in self.guards {
            if let Err(e) = g.unmount() {
                if first.is_ok() {
                    first = Err(e.into());
                }
            }
        }
        first
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
    /// Materialises a synthetic spec in a fresh store under `root`.
    fn prepare_spec(&self, spec: &ImageSpec, root: &Path) -> Result<PreparedImage, LayoutError> {
        self.import(root, &SyntheticImage::new("spec", spec.clone()))
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
    /// How a container of `image` at `c` is mounted — lowers, options, images,
    /// API — worked out without a syscall or a file read (`host` holds the
    /// host facts it may depend on); `mount` carries out exactly this.
    fn mount_spec(
        &self,
        image: &PreparedImage,
        c: &ContainerDirs,
        host: &MountHost,
    ) -> Result<MountSpec, LayoutError>;
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
    /// Every file whose pages hold `rel` as container `c` reads it (a FUSE
    /// mount caches pages of its own files *and* the daemon's reads cache the
    /// backing file): what residency is read from and eviction applies to.
    fn data_files(&self, image: &PreparedImage, c: &ContainerDirs, rel: &Path) -> Vec<PathBuf> {
        self.data_file(image, c, rel).into_iter().collect()
    }
    /// Why this layout cannot run on `backing` (or on this host), if it cannot.
    fn unavailable(&self, backing: &BackingInfo) -> Option<String> {
        let needs = self.capabilities().needs_fstype?;
        (backing.fstype != needs).then(|| {
            format!(
                "{} needs a {needs} backing (--backing {needs}); {} is {}",
                self.name(),
                backing.kind,
                backing.fstype
            )
        })
    }
    /// Checks, before the first write, that container `c` does not have its own
    /// copy of `rel` yet (so what is timed next really copies or un-shares).
    fn verify_not_copied(
        &self,
        image: &PreparedImage,
        c: &ContainerDirs,
        rel: &Path,
    ) -> Result<(), LayoutError> {
        verify::no_upper(self, image, c, rel)
    }
    /// Checks, after `check.touch`, that container `c` holds what this layout's
    /// copy-up must have produced for `rel`, by the layout's own markers.
    fn verify_copy_up(
        &self,
        image: &PreparedImage,
        c: &ContainerDirs,
        rel: &Path,
        check: &CopyUpCheck,
    ) -> Result<(), LayoutError> {
        verify::overlay_upper(self, image, c, rel, check)
    }
    /// Removes a container made by `create_container` (unmounted), as the engine
    /// does (a btrfs snapshot is destroyed, not emptied file by file).
    fn remove_container(&self, c: &ContainerDirs) -> Result<(), LayoutError> {
        std::fs::remove_dir_all(&c.root).map_err(LayoutError::io("removing", &c.root))
    }
    /// Removes a whole store made by `import` (no container left in it).
    fn remove_store(&self, store: &Path) -> Result<(), LayoutError> {
        std::fs::remove_dir_all(store).map_err(LayoutError::io("removing", store))
    }
    /// Waits until space freed by removals under `dir` is really free (btrfs
    /// cleans deleted subvolumes in the background).
    fn settle_removals(&self, _dir: &Path) -> Result<(), LayoutError> {
        Ok(())
    }
    /// How long the kernel caches this layout's entries and attributes before
    /// asking again (a FUSE daemon's entry/attr timeout), in seconds; None when
    /// the kernel's own caches apply.
    fn kernel_cache_timeout_s(&self) -> Option<f64> {
        None
    }
    /// How this layout is built or mounted here, where it differs from what its
    /// name suggests (for the report's notes).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
    /// Host files that cache `rel`'s pages besides `lower_file` when a container
    /// of `image` reads it (an EROFS layer's image file: EROFS reads it through
    /// the page cache, and caches the file's data again in its own inode). A cold
    /// read evicts these too; residency counts them.
    fn backing_files(&self, _image: &PreparedImage, _rel: &Path) -> Vec<PathBuf> {
        Vec::new()
    }
    /// What a reader of this layout's figures should know about it on this host
    /// and the scratch filesystem at `scratch` (a variant the kernel cannot run,
    /// a tool's missing mode, a fallback taken), found by probing there.
    fn host_notes(&self, _scratch: &Path) -> Vec<String> {
        Vec::new()
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
    /// A first write did not leave what the layout's copy-up must produce.
    #[error("{layout}: {}: {detail}", path.display())]
    CopyUp {
        layout: &'static str,
        path: PathBuf,
        detail: String,
    },
    /// The store's own records are unreadable or contradict its dirs.
    #[error("store record {}: {detail}", path.display())]
    Store { path: PathBuf, detail: String },
    /// The host lacks a kernel feature or tool the layout needs.
    #[error("layout {layout} cannot run on this host: {feature} is missing ({detail})")]
    Unsupported {
        layout: &'static str,
        feature: &'static str,
        detail: String,
    },
    /// A layout's image could not be built.
    #[error("building {what} {}: {detail}", path.display())]
    Build {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
}

impl LayoutError {
    /// Exit-code class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            LayoutError::Isolate(e) => e.class(),
            LayoutError::TooDeep { .. } => ErrorClass::Usage,
            LayoutError::Apply(e) => e.class(),
            LayoutError::Unsupported { .. } => ErrorClass::Unsupported,
            LayoutError::Io { .. }
            | LayoutError::CopyUp { .. }
            | LayoutError::Store { .. }
            | LayoutError::Build { .. } => ErrorClass::Runtime,
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

/// Mounts the overlay of `spec` (a layout's own) for container `c`, as `how` asks.
fn mount_overlay_spec(
    layout: &str,
    spec: &MountSpec,
    c: &ContainerDirs,
    how: &MountHow<'_>,
) -> Result<Mounted, LayoutError> {
    let o = spec.overlay().ok_or_else(|| spec::not_an_overlay(layout))?;
    let m = crate::isolate::mount_overlay_as(&o.mount, o.api, how)?;
    Ok(mounted_overlay(c, m, how.read_back))
}

/// A container view over an overlay mount (`read_back`: its options in force
/// were read from mountinfo; without, they are unknown).
fn mounted_overlay(
    c: &ContainerDirs,
    m: crate::isolate::MountedOverlay,
    read_back: bool,
) -> Mounted {
    Mounted {
        merged: c.merged.clone(),
        guards: vec![Box::new(m.guard)],
        mount_time: Some(m.elapsed),
        options_in_force: read_back.then_some(m.options_in_force),
    }
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
