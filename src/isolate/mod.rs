//! Isolation: the private mount namespace, the scratch filesystem every run works
//! in, and guards that undo each mount. Nothing outside the scratch dir is touched.

mod idmap;
mod loopdev;
pub mod mountinfo;
mod mounts;
mod namespace;
mod scratch;

pub use idmap::{
    mount_setattr_available, probe_idmapped_overlay, IdRange, IdmapMode, UserNamespace,
};
pub use loopdev::LoopDevice;
pub use mountinfo::{MountEntry, MountInfo};
pub use mounts::{
    common_parent, mount_overlay, mount_overlay_as, new_api_available, Idmap, MountApi, MountGuard,
    MountHow, MountedOverlay, OverlayMount, CLASSIC_OPTIONS_LIMIT, MAX_LOWER_LAYERS,
};
pub use namespace::{enter_private_namespace, in_user_namespace, Privilege};
pub use scratch::{BackingInfo, BackingKind, EvictionKind, FsUsage, Scratch, ScratchRequest};

use std::path::PathBuf;

use crate::error::ErrorClass;

/// What went wrong while isolating or mounting.
#[derive(Debug, thiserror::Error)]
pub enum IsolateError {
    /// The host cannot do it (not permitted, tool missing, kernel too old).
    #[error("{0}")]
    Unsupported(String),
    #[error("the process has {threads} threads; the mount namespace must be entered before any thread starts")]
    NotSingleThreaded { threads: usize },
    #[error("entering {what}: {source}")]
    Unshare {
        what: &'static str,
        source: nix::Error,
    },
    #[error("mounting {fstype} at {}: {source}", target.display())]
    Mount {
        fstype: String,
        target: PathBuf,
        source: std::io::Error,
    },
    #[error("unmounting {}: {source}", target.display())]
    Unmount { target: PathBuf, source: nix::Error },
    #[error(
        "overlay mount options for {} are {len} bytes, beyond the classic mount(2) limit of {limit} \
         bytes (the kernel would cut them silently); use --mount-api new (kernel >= 6.8) or fewer layers",
        target.display()
    )]
    OptionsTooLong {
        target: PathBuf,
        len: usize,
        limit: usize,
    },
    #[error("path {} cannot be an overlay layer: it contains ':' or ','; choose a scratch dir without them", path.display())]
    UnsafeLayerPath { path: PathBuf },
    #[error("the overlay at {} has {found} lower layers in force, {expected} were asked for", target.display())]
    WrongStack {
        target: PathBuf,
        expected: usize,
        found: usize,
    },
    #[error("loop device for {}: {what}: {source}", image.display())]
    Loop {
        image: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("running {command}: {detail}")]
    Command { command: String, detail: String },
    #[error(
        "scratch dir {} is not empty and was not made by overlaybench; name an empty dir with --scratch",
        path.display()
    )]
    ScratchNotOurs { path: PathBuf },
    #[error(
        "the scratch filesystem needs {needed_bytes} bytes but {} has only {available_bytes} free; \
         free some space or name another --scratch dir",
        path.display()
    )]
    NoSpace {
        path: PathBuf,
        needed_bytes: u64,
        available_bytes: u64,
    },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl IsolateError {
    /// Exit-code class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            IsolateError::Unsupported(_) => ErrorClass::Unsupported,
            IsolateError::ScratchNotOurs { .. }
            | IsolateError::NoSpace { .. }
            | IsolateError::OptionsTooLong { .. }
            | IsolateError::UnsafeLayerPath { .. } => ErrorClass::Usage,
            _ => ErrorClass::Runtime,
        }
    }

    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| IsolateError::Io { what, path, source }
    }
}
