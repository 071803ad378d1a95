//! The storage layouts ("drivers") an image is built with: one `Layout` per way a
//! container engine stores layers. Adding a layout = one file + one line in `create`.

mod fsops;
mod overlay;
mod overlay2;
mod plain;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ErrorClass;
use crate::image::ImageSpec;
use crate::isolate::{IsolateError, MountApi, MountGuard, Privilege};

pub use overlay::LegacyOverlay;
pub use overlay2::Overlay2;
pub use plain::Plain;

/// The kernel's limit on overlay lower layers (`OVL_MAX_STACK`).
pub const MAX_LOWER_LAYERS: usize = 500;

/// Which layout.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum LayoutKind {
    /// Docker's overlay2: one diff dir per layer, mounted as many lowers.
    Overlay2,
    /// Docker's legacy overlay: one full hardlinked root per layer, one lower.
    Overlay,
    /// No union fs: a flattened full copy per container (Docker's vfs).
    Plain,
}

impl LayoutKind {
    /// Every layout, in report order.
    pub const ALL: [LayoutKind; 3] = [LayoutKind::Overlay2, LayoutKind::Overlay, LayoutKind::Plain];

    /// The name used in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            LayoutKind::Overlay2 => "overlay2",
            LayoutKind::Overlay => "overlay",
            LayoutKind::Plain => "plain",
        }
    }
}

impl std::fmt::Display for LayoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
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
        match self.privilege {
            Privilege::Root => format!("trusted.overlay.{name}"),
            Privilege::Rootless => format!("user.overlay.{name}"),
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
    /// Which layout made it.
    pub kind: LayoutKind,
    /// Where it lives.
    pub root: PathBuf,
    /// overlay2: diff dirs; overlay: full roots; plain: the one flat tree. Bottom first.
    pub layer_dirs: Vec<PathBuf>,
    /// Number of image layers it was built from.
    pub depth: usize,
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
    /// Which one.
    fn kind(&self) -> LayoutKind;
    /// Materialises `image` under `root` (an empty dir).
    fn prepare(&self, image: &ImageSpec, root: &Path) -> Result<PreparedImage, LayoutError> {
        self.prepare_on(None, image, root)
    }
    /// Materialises `image` whose first layers are `base` (already prepared by this
    /// layout), sharing them as the layout does (overlay2 and the legacy driver keep
    /// one copy of a shared layer; plain flattens every image anew).
    fn prepare_on(
        &self,
        base: Option<&PreparedImage>,
        image: &ImageSpec,
        root: &Path,
    ) -> Result<PreparedImage, LayoutError>;
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
}

/// The factory: the one line each new layout adds.
pub fn create(kind: LayoutKind, config: &LayoutConfig) -> Box<dyn Layout> {
    match kind {
        LayoutKind::Overlay2 => Box::new(Overlay2::new(config.clone())),
        LayoutKind::Overlay => Box::new(LegacyOverlay::new(config.clone())),
        LayoutKind::Plain => Box::new(Plain),
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
}

impl LayoutError {
    /// Exit-code class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            LayoutError::Isolate(e) => e.class(),
            LayoutError::TooDeep { .. } => ErrorClass::Usage,
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

/// Mounts a container's overlay over `lowers` (topmost first) with the layout's settings.
fn mount_container(
    config: &LayoutConfig,
    lowers: Vec<PathBuf>,
    c: &ContainerDirs,
) -> Result<Mounted, LayoutError> {
    let spec = crate::isolate::OverlayMount {
        lowers,
        upper_work: c.upper_work.clone(),
        options: config.mount_options(),
        target: c.merged.clone(),
    };
    let m = crate::isolate::mount_overlay(&spec, config.mount_api)?;
    Ok(Mounted {
        merged: c.merged.clone(),
        guard: Some(m.guard),
        mount_time: Some(m.elapsed),
        options_in_force: Some(m.options_in_force),
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
