//! The new mount API for overlay (`fsopen`/`fsconfig`/`fsmount`/`move_mount`),
//! through rustix: nix lacks it. Layers are passed one `lowerdir+` each (no
//! total length limit), by path or, idmapped, by the fd of a detached clone;
//! the kernel's own reason for a refusal is read from the context fd.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::mount::{
    fsconfig_create, fsconfig_set_fd, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen,
    move_mount, FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags,
};

use super::idmap::IdmapMode;
use super::mounts::{common_parent, Idmap, OverlayMount};
use super::IsolateError;

/// Whether `fsopen(fstype)` works (it loads the module if there is one).
/// Nothing is mounted. `Err` says why not.
pub(super) fn fs_type_opens(fstype: &str) -> Result<(), String> {
    match fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("fsopen(\"{fstype}\") failed: {e}")),
    }
}

/// Attaches the detached mount `mnt` at `target`.
pub(super) fn move_detached(mnt: &OwnedFd, target: &Path) -> std::io::Result<()> {
    move_mount(
        mnt.as_fd(),
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(std::io::Error::from)
}

/// What this kernel's overlay option parser answers, asked through `fsconfig`
/// without mounting anything: the facts `run`, `plan`, `claims` and `doctor`
/// judge the parser-level features from (`append_lowers`, `data_only_lowers`).
///
/// Before Linux 6.5 overlay had no parser of its own for the new mount API: the
/// VFS's legacy one only appends each `key=value` to a one-page string that
/// `mount` parses later, so every `fsconfig` is accepted — an accepted
/// `lowerdir=/::/` says nothing there (Debian 12's 6.1 accepts it, then its
/// mount of a data-only stack fails with EINVAL). An unknown key tells the
/// two parsers apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverlayParserFacts {
    /// `fsconfig(fsopen("overlay"), "overlaybench-unknown-key", "x")`: overlay's
    /// own parser refuses it (EINVAL); the legacy one accepts it.
    pub unknown_key: Result<(), i32>,
    /// `fsconfig(…, "lowerdir+", "/nonexistent-…")`: ENOENT when the key is
    /// known and the path was looked up.
    pub lowerdir_append: Result<(), i32>,
    /// `fsconfig(…, "lowerdir", "/::/")`: one lower and one data-only layer.
    pub data_only: Result<(), i32>,
}

impl OverlayParserFacts {
    /// Asks this kernel (a fresh `fsopen` per question: the legacy parser keeps
    /// what it was given). Err: `fsopen("overlay")` itself failed.
    pub fn look() -> Result<OverlayParserFacts, String> {
        let ask = |key: &str, value: &str| -> Result<Result<(), i32>, String> {
            let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
                .map_err(|e| format!("fsopen(\"overlay\") failed: {e}"))?;
            Ok(fsconfig_set_string(fs.as_fd(), key, value).map_err(|e| e.raw_os_error()))
        };
        Ok(OverlayParserFacts {
            unknown_key: ask("overlaybench-unknown-key", "x")?,
            lowerdir_append: ask("lowerdir+", "/nonexistent-overlaybench-probe")?,
            data_only: ask("lowerdir", "/::/")?,
        })
    }

    /// Whether overlay parses its options when `fsconfig` gives them (Linux
    /// 6.5 and later), not only at mount time.
    pub fn parses_at_fsconfig(&self) -> bool {
        self.unknown_key.is_err()
    }

    /// `lowerdir+`/`datadir+` (Linux 6.8 and later): each layer passed on its
    /// own, no one-page limit. Err says why not.
    pub fn append_lowers(&self) -> Result<(), String> {
        if !self.parses_at_fsconfig() {
            return Err(LEGACY_PARSER.to_string() + ", without lowerdir+ (Linux 6.8)");
        }
        match self.lowerdir_append {
            Err(e) if e == rustix::io::Errno::NOENT.raw_os_error() => Ok(()),
            Err(e) => Err(format!(
                "fsconfig refuses lowerdir+ ({}): Linux 6.8 and later take it",
                std::io::Error::from_raw_os_error(e)
            )),
            Ok(()) => Err("fsconfig took lowerdir+ with a path that does not exist".into()),
        }
    }

    /// Data-only lower layers (`lowerdir=A::DATA`, Linux 6.5 and later). Err
    /// says why not.
    pub fn data_only_lowers(&self) -> Result<(), String> {
        if !self.parses_at_fsconfig() {
            return Err(LEGACY_PARSER.to_string() + ", without data-only lower layers (Linux 6.5)");
        }
        self.data_only.map_err(|e| {
            format!(
                "the overlay option parser refuses a data-only lower (lowerdir=/::/): {}",
                std::io::Error::from_raw_os_error(e)
            )
        })
    }
}

const LEGACY_PARSER: &str =
    "this kernel's overlay parses its options only at mount time (fsconfig accepts an unknown key): \
     a kernel before 6.5";

/// Whether this kernel's overlay takes data-only lower layers
/// (`OverlayParserFacts::data_only_lowers`). Nothing is mounted.
pub fn data_only_lowers_available() -> Result<(), String> {
    OverlayParserFacts::look()?.data_only_lowers()
}

/// Builds the overlay `spec` (with data-only lowers `data`) and attaches it;
/// the time of the syscalls.
pub(super) fn mount_new_api(
    spec: &OverlayMount,
    data: &[PathBuf],
    idmap: Option<Idmap<'_>>,
) -> Result<Duration, IsolateError> {
    let start = Instant::now();
    let fs =
        fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| mount_err(spec, None, e))?;
    let with_log = |e: rustix::io::Errno| mount_err(spec, Some(&fs), e);
    let clone_err = |path: &Path, e: std::io::Error| IsolateError::Mount {
        fstype: "idmapped clone".into(),
        target: path.to_path_buf(),
        source: e,
    };
    // A detached clone is dissolved when its last descriptor closes, and overlay
    // clones each lower only at create: every clone stays open until then.
    let mut clones: Vec<OwnedFd> = Vec::new();
    match idmap {
        None => {
            for lower in &spec.lowers {
                let full = match &spec.lowers_base {
                    Some(base) => base.join(lower),
                    None => lower.clone(),
                };
                fsconfig_set_string(fs.as_fd(), "lowerdir+", full.as_path()).map_err(with_log)?;
            }
        }
        Some(Idmap {
            userns,
            mode: IdmapMode::PerLayer,
        }) => {
            for lower in &spec.lowers {
                let tree = userns
                    .idmapped_clone(lower)
                    .map_err(|e| clone_err(lower, e))?;
                fsconfig_set_fd(fs.as_fd(), "lowerdir+", tree.as_fd()).map_err(with_log)?;
                clones.push(tree);
            }
        }
        Some(Idmap {
            userns,
            mode: IdmapMode::CommonParent,
        }) => {
            let parent = common_parent(&spec.lowers).ok_or_else(|| {
                IsolateError::Unsupported(format!(
                    "the lower layers of {} have no common parent to idmap",
                    spec.target.display()
                ))
            })?;
            let tree = userns
                .idmapped_clone(&parent)
                .map_err(|e| clone_err(&parent, e))?;
            for lower in &spec.lowers {
                let rel = lower.strip_prefix(&parent).unwrap_or(lower);
                let rel = if rel.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    rel
                };
                let layer = rustix::fs::openat(
                    tree.as_fd(),
                    rel,
                    rustix::fs::OFlags::PATH
                        | rustix::fs::OFlags::DIRECTORY
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .map_err(|e| clone_err(lower, e.into()))?;
                fsconfig_set_fd(fs.as_fd(), "lowerdir+", layer.as_fd()).map_err(with_log)?;
            }
            clones.push(tree);
        }
    }
    for d in data {
        fsconfig_set_string(fs.as_fd(), "datadir+", d.as_path()).map_err(with_log)?;
    }
    if let Some((upper, work)) = &spec.upper_work {
        fsconfig_set_string(fs.as_fd(), "upperdir", upper.as_path()).map_err(with_log)?;
        fsconfig_set_string(fs.as_fd(), "workdir", work.as_path()).map_err(with_log)?;
    }
    for (k, v) in &spec.options {
        match v {
            Some(v) => fsconfig_set_string(fs.as_fd(), k.as_str(), v.as_str()),
            None => fsconfig_set_flag(fs.as_fd(), k.as_str()),
        }
        .map_err(with_log)?;
    }
    fsconfig_create(fs.as_fd()).map_err(with_log)?;
    drop(clones);
    // An image's setuid files and device nodes stay inert through the
    // container's mount (the scratch below is nosuid,nodev too).
    let mnt = fsmount(
        fs.as_fd(),
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV,
    )
    .map_err(with_log)?;
    move_mount(
        mnt.as_fd(),
        "",
        rustix::fs::CWD,
        spec.target.as_path(),
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(with_log)?;
    Ok(start.elapsed())
}

/// The new API keeps the kernel's reason (what dmesg would say) in the context fd.
fn mount_err(spec: &OverlayMount, fs: Option<&OwnedFd>, errno: rustix::io::Errno) -> IsolateError {
    let mut source = std::io::Error::from_raw_os_error(errno.raw_os_error());
    if let Some(fd) = fs.and_then(|fd| fd.try_clone().ok()) {
        let mut file = std::fs::File::from(fd);
        let mut kernel_says = Vec::new();
        let mut buf = [0u8; 512];
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 {
                break;
            }
            kernel_says.push(String::from_utf8_lossy(&buf[..n]).trim().to_string());
        }
        if !kernel_says.is_empty() {
            source = std::io::Error::new(
                source.kind(),
                format!("{source} (kernel: {})", kernel_says.join("; ")),
            );
        }
    }
    IsolateError::Mount {
        fstype: "overlay".into(),
        target: spec.target.clone(),
        source,
    }
}

/// Whether the kernel accepts `lowerdir+` (new mount API for overlay). Asked
/// once per process: the kernel's parser does not change under us, and the
/// rootless layout asks before every mount.
pub fn new_api_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| OverlayParserFacts::look().is_ok_and(|f| f.append_lowers().is_ok()))
}
