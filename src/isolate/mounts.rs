//! Overlay mounts and the guards that undo them.
//!
//! Two ways in: the new mount API (`fsopen`/`fsconfig` with one `lowerdir+` per
//! layer, kernel >= 6.8) has no total length limit; classic `mount(2)` cuts its
//! data at one page *silently*, so its option string is measured here and refused
//! past the limit rather than risk mounting the wrong stack. Either way the stack
//! in force is read back from mountinfo and checked.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::mount::{umount2, MntFlags, MsFlags};

use super::idmap::{IdmapMode, UserNamespace};
use super::mountinfo::{overlay_data_lowers, overlay_lowers, MountInfo};
use super::newmount::mount_new_api;
pub use super::newmount::{data_only_lowers_available, new_api_available, OverlayParserFacts};
use super::IsolateError;

/// The kernel's limit on overlay lower layers (`OVL_MAX_STACK`).
pub const MAX_LOWER_LAYERS: usize = 500;

/// Classic `mount(2)` copies at most one page of option data, NUL included.
pub const CLASSIC_OPTIONS_LIMIT: usize = 4095;

/// Which syscall interface mounts overlays.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum MountApi {
    /// `fsopen`/`fsconfig`/`fsmount` with `lowerdir+` per layer.
    New,
    /// `mount(2)` with one option string (limited to one page).
    Classic,
}

/// Everything needed to mount one overlay.
#[derive(Debug, Clone)]
pub struct OverlayMount {
    /// Lower layers, topmost first.
    pub lowers: Vec<PathBuf>,
    /// The directory relative lower paths are resolved from (Docker's `l/<short>`
    /// links are relative to the store root): classic mount(2) then runs with
    /// that directory as its working directory, so each layer costs ~29 bytes of
    /// the one-page option string instead of its absolute path.
    pub lowers_base: Option<PathBuf>,
    /// Upper and work dirs; `None` mounts a read-only stack.
    pub upper_work: Option<(PathBuf, PathBuf)>,
    /// Extra options: `("metacopy", Some("on"))`, `("volatile", None)`, …
    pub options: Vec<(String, Option<String>)>,
    /// Mount point.
    pub target: PathBuf,
}

impl OverlayMount {
    /// The classic `mount(2)` data string for this mount.
    pub fn classic_data(&self) -> String {
        let lowers: Vec<String> = self
            .lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let mut data = format!("lowerdir={}", lowers.join(":"));
        if let Some((upper, work)) = &self.upper_work {
            data.push_str(&format!(
                ",upperdir={},workdir={}",
                upper.display(),
                work.display()
            ));
        }
        for (k, v) in &self.options {
            match v {
                Some(v) => data.push_str(&format!(",{k}={v}")),
                None => data.push_str(&format!(",{k}")),
            }
        }
        data
    }

    /// The classic `mount(2)` data string with `data_dirs` as data-only
    /// layers after the lowers, refused when longer than the one page the
    /// kernel takes.
    pub fn classic_data_within_limit(&self, data_dirs: &[PathBuf]) -> Result<String, IsolateError> {
        let mut data = self.classic_data();
        if !data_dirs.is_empty() {
            // Data-only layers follow the regular lowers, each after `::`.
            let lowers_end = data.find(',').unwrap_or(data.len());
            let extra: String = data_dirs
                .iter()
                .map(|d| format!("::{}", d.display()))
                .collect();
            data.insert_str(lowers_end, &extra);
        }
        if data.len() > CLASSIC_OPTIONS_LIMIT {
            return Err(IsolateError::OptionsTooLong {
                target: self.target.clone(),
                len: data.len(),
                limit: CLASSIC_OPTIONS_LIMIT,
            });
        }
        Ok(data)
    }

    /// Refuses a layer path the classic option string cannot carry (`:` and
    /// `,` separate its layers and options).
    pub fn check_paths(&self) -> Result<(), IsolateError> {
        let all = self
            .lowers
            .iter()
            .chain(self.upper_work.iter().flat_map(|(u, w)| [u, w]));
        for p in all {
            let s = p.as_os_str().as_encoded_bytes();
            if s.contains(&b':') || s.contains(&b',') {
                return Err(IsolateError::UnsafeLayerPath { path: p.clone() });
            }
        }
        Ok(())
    }
}

/// Something mounted that must be undone: unmounted now with `unmount`
/// (reporting failure), or lazily when dropped on any other path.
pub trait Unmount: std::fmt::Debug + Send + Sync {
    /// Where it is mounted.
    fn target(&self) -> &Path;
    /// Undoes it now and reports failure (the drop path cannot).
    fn unmount(self: Box<Self>) -> Result<(), IsolateError>;
}

impl Unmount for MountGuard {
    fn target(&self) -> &Path {
        &self.target
    }

    fn unmount(self: Box<Self>) -> Result<(), IsolateError> {
        MountGuard::unmount(*self)
    }
}

/// Idmapped lower layers: the namespace whose mapping applies, and how.
#[derive(Debug, Clone, Copy)]
pub struct Idmap<'a> {
    /// The user namespace carrying the mapping.
    pub userns: &'a UserNamespace,
    /// One clone per layer, or one of their common parent.
    pub mode: IdmapMode,
}

/// How a mount is made beyond its spec.
#[derive(Debug, Clone, Copy)]
pub struct MountHow<'a> {
    /// Idmap the lower layers (needs the new mount API: they go in by fd).
    pub idmap: Option<Idmap<'a>>,
    /// Read the stack in force back from mountinfo and check it. A caller that
    /// times many mounts at once checks one of the same shape instead: reading
    /// the whole table per mount costs more than the mount and takes the lock
    /// the other mounts wait for.
    pub read_back: bool,
}

impl Default for MountHow<'_> {
    fn default() -> Self {
        MountHow {
            idmap: None,
            read_back: true,
        }
    }
}

/// Unmounts its target when dropped (lazily, so a panic path never blocks).
#[derive(Debug)]
pub struct MountGuard {
    target: PathBuf,
    active: bool,
}

impl MountGuard {
    /// Takes ownership of an existing mount at `target`.
    pub fn new(target: PathBuf) -> MountGuard {
        MountGuard {
            target,
            active: true,
        }
    }

    /// Where the guarded mount is.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Unmounts now and reports failure (the drop path cannot). A busy mount is
    /// retried with a bounded backoff (a child forked by another thread can hold
    /// a just-closed fd until it execs); still busy after that, it is detached
    /// lazily and counted (`detached_unmounts`) so the report can say so.
    pub fn unmount(mut self) -> Result<(), IsolateError> {
        self.active = false;
        let mut wait = Duration::from_millis(5);
        let deadline = Instant::now() + UNMOUNT_RETRY;
        loop {
            match umount2(&self.target, MntFlags::empty()) {
                Ok(()) => return Ok(()),
                Err(nix::errno::Errno::EBUSY) if Instant::now() < deadline => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_millis(200));
                }
                Err(nix::errno::Errno::EBUSY) => {
                    umount2(&self.target, MntFlags::MNT_DETACH).map_err(|source| {
                        IsolateError::Unmount {
                            target: self.target.clone(),
                            source,
                        }
                    })?;
                    DETACHED.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(source) => {
                    return Err(IsolateError::Unmount {
                        target: self.target.clone(),
                        source,
                    })
                }
            }
        }
    }
}

/// How long a busy unmount is retried before it is detached.
const UNMOUNT_RETRY: Duration = Duration::from_secs(3);

static DETACHED: AtomicUsize = AtomicUsize::new(0);

/// Unmounts that stayed busy past the retries and were detached lazily
/// (MNT_DETACH) in this process so far.
pub fn detached_unmounts() -> usize {
    DETACHED.load(Ordering::Relaxed)
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if self.active {
            let _ = umount2(&self.target, MntFlags::MNT_DETACH);
        }
    }
}

/// Mounts the filesystem `fstype` of the device (or image file) `source` at
/// `target`, read-only when asked, and guards it.
pub fn mount_device(
    source: &Path,
    target: &Path,
    fstype: &str,
    read_only: bool,
) -> Result<MountGuard, IsolateError> {
    // A layer image's setuid files and device nodes stay inert.
    let flags = if read_only {
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV
    } else {
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV
    };
    nix::mount::mount(Some(source), target, Some(fstype), flags, None::<&str>).map_err(|e| {
        IsolateError::Mount {
            fstype: format!("{fstype} from {}", source.display()),
            target: target.to_path_buf(),
            source: e.into(),
        }
    })?;
    Ok(MountGuard::new(target.to_path_buf()))
}

/// A mounted overlay, how long the mount took and what the kernel shows in force.
#[derive(Debug)]
pub struct MountedOverlay {
    /// Unmounts on drop.
    pub guard: MountGuard,
    /// Wall time of the mount syscalls alone.
    pub elapsed: Duration,
    /// Superblock options read back from mountinfo.
    pub options_in_force: String,
}

/// Mounts an overlay with the chosen API and checks the stack in force.
pub fn mount_overlay(spec: &OverlayMount, api: MountApi) -> Result<MountedOverlay, IsolateError> {
    mount_overlay_as(spec, api, &MountHow::default())
}

/// Mounts an overlay as `how` asks: idmapped lowers (new API only), and with or
/// without reading the stack back (`options_in_force` is empty without).
pub fn mount_overlay_as(
    spec: &OverlayMount,
    api: MountApi,
    how: &MountHow<'_>,
) -> Result<MountedOverlay, IsolateError> {
    mount_overlay_full(spec, &[], api, how)
}

/// Mounts an overlay whose regular lowers are followed by the data-only lower
/// layers `data` (`lowerdir=…::D` classic, `datadir+=D` new API): files there are
/// reached only through a metacopy file's redirect (composefs' object store).
/// Checks that both stacks are in force.
pub fn mount_overlay_with_data(
    spec: &OverlayMount,
    data: &[PathBuf],
    api: MountApi,
) -> Result<MountedOverlay, IsolateError> {
    mount_overlay_full(spec, data, api, &MountHow::default())
}

fn mount_overlay_full(
    spec: &OverlayMount,
    data: &[PathBuf],
    api: MountApi,
    how: &MountHow<'_>,
) -> Result<MountedOverlay, IsolateError> {
    spec.check_paths()?;
    for p in data {
        let s = p.as_os_str().as_encoded_bytes();
        if s.contains(&b':') || s.contains(&b',') {
            return Err(IsolateError::UnsafeLayerPath { path: p.clone() });
        }
    }
    let elapsed = match (api, how.idmap) {
        (MountApi::New, idmap) => mount_new_api(spec, data, idmap)?,
        (MountApi::Classic, None) => mount_classic(spec, data)?,
        (MountApi::Classic, Some(_)) => {
            return Err(IsolateError::Unsupported(format!(
                "idmapped lower layers for {} need the new mount API (they are passed by file \
                 descriptor); use --mount-api new or auto",
                spec.target.display()
            )))
        }
    };
    checked(spec, data.len(), how.read_back, elapsed)
}

/// Guards the overlay now at `spec.target` and checks, from mountinfo, that the
/// stack in force has the layers asked for (`data_lowers` data-only ones too).
fn checked(
    spec: &OverlayMount,
    data_lowers: usize,
    read_back: bool,
    elapsed: Duration,
) -> Result<MountedOverlay, IsolateError> {
    let guard = MountGuard::new(spec.target.clone());
    if !read_back {
        return Ok(MountedOverlay {
            guard,
            elapsed,
            options_in_force: String::new(),
        });
    }
    let info = MountInfo::current().map_err(IsolateError::io("reading", "/proc/self/mountinfo"))?;
    let options_in_force = info
        .at(&spec.target)
        .filter(|e| e.fstype == "overlay")
        .map(|e| e.super_options.clone())
        .unwrap_or_default();
    for (found, expected) in [
        (overlay_lowers(&options_in_force).len(), spec.lowers.len()),
        (overlay_data_lowers(&options_in_force).len(), data_lowers),
    ] {
        if found != expected {
            return Err(IsolateError::WrongStack {
                target: spec.target.clone(),
                expected,
                found,
            });
        }
    }
    Ok(MountedOverlay {
        guard,
        elapsed,
        options_in_force,
    })
}

/// Attaches a detached mount (`fsmount`, or one handed over by a helper) at
/// `target`, checks it is an overlay of `lowers` layers, and guards it.
/// `elapsed` is the time already spent making it; the attach is added.
pub fn attach_overlay(
    mnt: OwnedFd,
    lowers: usize,
    target: &Path,
    elapsed: Duration,
) -> Result<MountedOverlay, IsolateError> {
    let start = Instant::now();
    super::newmount::move_detached(&mnt, target).map_err(|source| IsolateError::Mount {
        fstype: "overlay".into(),
        target: target.to_path_buf(),
        source,
    })?;
    let elapsed = elapsed + start.elapsed();
    drop(mnt);
    let spec = OverlayMount {
        lowers: vec![PathBuf::new(); lowers],
        lowers_base: None,
        upper_work: None,
        options: Vec::new(),
        target: target.to_path_buf(),
    };
    checked(&spec, 0, true, elapsed)
}

fn mount_classic(spec: &OverlayMount, data_dirs: &[PathBuf]) -> Result<Duration, IsolateError> {
    let data = spec.classic_data_within_limit(data_dirs)?;
    let target = absolute(&spec.target)?;
    let mount = move || {
        let start = Instant::now();
        let rc = nix::mount::mount(
            Some("overlay"),
            &target,
            Some("overlay"),
            // An image's setuid files and device nodes stay inert through the
            // container's mount (the scratch below is nosuid,nodev too).
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(data.as_str()),
        );
        (start.elapsed(), rc)
    };
    let (elapsed, rc) = match &spec.lowers_base {
        None => mount(),
        // The working directory is per process: a thread of our own takes a
        // private copy (unshare(CLONE_FS), as containerd does) and changes only
        // its own, so no other thread ever sees it move.
        Some(base) => {
            let base = base.clone();
            std::thread::scope(|s| {
                s.spawn(move || {
                    nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS)
                        .and_then(|()| nix::unistd::chdir(&base))
                        .map(|()| mount())
                })
                .join()
            })
            .map_err(|_| IsolateError::Command {
                command: "mount(2) thread".into(),
                detail: "panicked".into(),
            })?
            .map_err(|e| IsolateError::Mount {
                fstype: "overlay".into(),
                target: spec.target.clone(),
                source: std::io::Error::new(
                    std::io::Error::from(e).kind(),
                    format!("entering the store root for relative lowers: {e}"),
                ),
            })?
        }
    };
    rc.map_err(|e| IsolateError::Mount {
        fstype: "overlay".into(),
        target: spec.target.clone(),
        source: std::io::Error::from(e),
    })?;
    Ok(elapsed)
}

/// The mount target as an absolute path (a thread that changed its working
/// directory must not resolve a relative target elsewhere).
fn absolute(p: &Path) -> Result<PathBuf, IsolateError> {
    std::path::absolute(p).map_err(IsolateError::io("resolving", p))
}

/// The deepest directory holding every path of `paths` (absolute paths).
pub fn common_parent(paths: &[PathBuf]) -> Option<PathBuf> {
    let first = paths.first()?;
    let mut common: Vec<_> = first.components().collect();
    for p in &paths[1..] {
        let n = common
            .iter()
            .zip(p.components())
            .take_while(|(a, b)| **a == *b)
            .count();
        common.truncate(n);
    }
    (!common.is_empty()).then(|| common.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Debian 12's 6.1 answered (the VFS's legacy parser takes every key)
    /// and what 6.12 answers.
    const FACTS_6_1: OverlayParserFacts = OverlayParserFacts {
        unknown_key: Ok(()),
        lowerdir_append: Ok(()),
        data_only: Ok(()),
    };
    const FACTS_6_12: OverlayParserFacts = OverlayParserFacts {
        unknown_key: Err(nix::errno::Errno::EINVAL as i32),
        lowerdir_append: Err(nix::errno::Errno::ENOENT as i32),
        data_only: Ok(()),
    };

    #[test]
    fn a_legacy_overlay_parser_has_neither_data_only_lowers_nor_lowerdir_append() {
        let e = FACTS_6_1
            .data_only_lowers()
            .expect_err("6.1 has no data-only lowers");
        assert!(e.contains("only at mount time") && e.contains("6.5"), "{e}");
        let e = FACTS_6_1.append_lowers().expect_err("6.1 has no lowerdir+");
        assert!(e.contains("6.8"), "{e}");
        assert_eq!(FACTS_6_12.data_only_lowers(), Ok(()));
        assert_eq!(FACTS_6_12.append_lowers(), Ok(()));
        // 6.5/6.6: overlay's own parser, data-only lowers, no lowerdir+ yet.
        let f = OverlayParserFacts {
            lowerdir_append: Err(nix::errno::Errno::EINVAL as i32),
            ..FACTS_6_12
        };
        assert!(f.data_only_lowers().is_ok());
        assert!(f
            .append_lowers()
            .expect_err("6.5")
            .contains("Invalid argument"));
    }

    fn spec(layers: usize, name_len: usize) -> OverlayMount {
        OverlayMount {
            lowers: (0..layers)
                .map(|i| PathBuf::from(format!("/{}{i}", "x".repeat(name_len))))
                .collect(),
            lowers_base: None,
            upper_work: Some(("/u".into(), "/w".into())),
            options: vec![
                ("metacopy".into(), Some("on".into())),
                ("volatile".into(), None),
            ],
            target: "/m".into(),
        }
    }

    #[test]
    fn classic_data_lists_top_first_with_options() {
        let s = spec(2, 1);
        assert_eq!(
            s.classic_data(),
            "lowerdir=/x0:/x1,upperdir=/u,workdir=/w,metacopy=on,volatile"
        );
    }

    #[test]
    fn classic_mount_refuses_options_past_one_page() {
        // 200 layers of 30-byte paths is ~6 KiB: must be refused, never cut.
        let mut s = spec(200, 28);
        s.target = "/nonexistent-mountpoint".into();
        match mount_classic(&s, &[]) {
            Err(IsolateError::OptionsTooLong { len, limit, .. }) => {
                assert!(len > limit);
                assert_eq!(limit, CLASSIC_OPTIONS_LIMIT);
            }
            other => panic!("expected OptionsTooLong, got {other:?}"),
        }
    }

    #[test]
    fn classic_data_only_layers_follow_the_lowers() {
        let mut s = spec(200, 28);
        s.lowers.truncate(1);
        s.target = "/nonexistent-mountpoint".into();
        // The mount fails (no such target); the string it would pass is checked by
        // the probe test in tests/kernel. Here: the separator check covers data dirs.
        assert!(matches!(
            mount_overlay_with_data(&s, &[PathBuf::from("/a,b")], MountApi::Classic),
            Err(IsolateError::UnsafeLayerPath { .. })
        ));
    }

    #[test]
    fn common_parent_of_layer_dirs() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            common_parent(&[p("/s/img/a/diff"), p("/s/img/b/diff")]),
            Some(p("/s/img"))
        );
        assert_eq!(common_parent(&[p("/s/img/a")]), Some(p("/s/img/a")));
        assert_eq!(common_parent(&[]), None);
    }

    #[test]
    fn refuses_separator_characters_in_layer_paths() {
        let mut s = spec(1, 1);
        s.lowers[0] = "/a:b".into();
        assert!(matches!(
            s.check_paths(),
            Err(IsolateError::UnsafeLayerPath { .. })
        ));
    }
}
