//! Isolation: the private mount namespace, the scratch filesystem every run works
//! in, and guards that undo each mount. Nothing outside the scratch dir is touched.

pub mod btrfs;
mod child;
mod command;
mod erofs;
mod fuse;
mod idmap;
mod loopdev;
pub mod mountinfo;
mod mounts;
mod namespace;
mod newmount;
mod private_tmpfs;
mod safe_dir;
mod scratch;
mod shared;
mod userns;

pub use child::UsernsOverlay;
pub use command::{run_cleanup_command, run_command};
pub use erofs::{
    erofs_available, fsck_erofs, mkfs_erofs, mkfs_erofs_takes_tar, mount_erofs,
    probe_erofs_backing, ErofsBacking, MountedErofs, MKFS_EROFS_ARGS,
};
pub use fuse::FuseMount;
pub use idmap::{
    mount_setattr_available, probe_idmapped_overlay, IdRange, IdmapMode, UserNamespace,
};
pub use loopdev::LoopDevice;
pub use mountinfo::{MountEntry, MountInfo};
pub use mounts::{
    attach_overlay, common_parent, data_only_lowers_available, detached_unmounts, mount_device,
    mount_overlay, mount_overlay_as, mount_overlay_with_data, new_api_available, Idmap, MountApi,
    MountGuard, MountHow, MountedOverlay, OverlayMount, OverlayParserFacts, Unmount,
    CLASSIC_OPTIONS_LIMIT, MAX_LOWER_LAYERS,
};

/// Builds an overlay inside a fresh user namespace (identity map) and returns
/// its detached mount fd and the time of its mount syscalls: how a root process
/// makes the mount a rootless engine would, without leaving its own namespace.
pub fn overlay_in_user_namespace(
    spec: &UsernsOverlay<'_>,
    target: &std::path::Path,
) -> Result<(std::os::fd::OwnedFd, std::time::Duration), IsolateError> {
    child::overlay_in_user_namespace(spec, target)
}
pub use namespace::{enter_private_namespace, in_user_namespace, Privilege};
pub use private_tmpfs::PrivateTmpfs;
pub use safe_dir::open_read_beneath;
pub use scratch::{
    abandon_live_scratches, host_available_bytes, min_fs_bytes, preflight, BackingInfo,
    BackingKind, EvictionKind, FsUsage, Scratch, ScratchRequest,
};
pub use shared::{SharedMount, SharedMounts};
pub use userns::{userns_fd, UsernsError};

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
         free some space, name another --scratch dir, or ask for less (a smaller --fs-size or workload)",
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
    /// A signal asked the run to stop while a child process or a wait was under way.
    #[error("interrupted")]
    Interrupted,
    /// A path given for the scratch filesystem cannot be used (exists as a file,
    /// is read-only, is missing for `dir:`).
    #[error("{0}")]
    BadPath(String),
    /// The run dir's name no longer leads to the dir we made: someone renamed or
    /// replaced it while the run worked in it.
    #[error(
        "the run dir {} was replaced while the run worked in it (its name now leads elsewhere); \
         stopped before writing through that name",
        path.display()
    )]
    Replaced { path: PathBuf },
}

impl IsolateError {
    /// Exit-code class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            IsolateError::Unsupported(_) => ErrorClass::Unsupported,
            // The classic API's one-page limit is the host's (its mount interface),
            // like an option the kernel refuses: the run started, its report says so.
            IsolateError::OptionsTooLong { .. } => ErrorClass::Unsupported,
            IsolateError::ScratchNotOurs { .. }
            | IsolateError::NoSpace { .. }
            | IsolateError::BadPath(_)
            | IsolateError::UnsafeLayerPath { .. } => ErrorClass::Usage,
            IsolateError::Interrupted => ErrorClass::Interrupted,
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
