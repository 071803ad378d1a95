//! fuse-overlayfs (Debian's package): the overlay2-shaped store, mounted by the
//! FUSE daemon instead of the kernel's overlay — what rootless Podman used
//! before native rootless overlay. The daemon copies a whole file up on the
//! first write (`sendfile` or a reflink, no fsync) and marks the copy with
//! `user.fuseoverlayfs.origin`; its uppers carry its own opaque markers
//! (`.wh..wh..opq` files next to the xattr), so they are never shared with a
//! kernel-overlay row.
//!
//! The daemon runs in the foreground as our child (see `isolate::FuseMount`):
//! it dies with us, and the mount is unmounted with `umount2` — as root in our
//! private namespace `fusermount3 -u` (the unprivileged path) is not needed —
//! before the daemon is reaped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::host::{self, ProbeHost, ProbeOutcome, StackProbe};
use super::{
    fsops, overlay2, verify, Capabilities, ContainerDirs, CopyUp, CopyUpCheck, Engine, HostProfile,
    Layout, LayoutConfig, LayoutEntry, LayoutError, MountHost, MountSpec, Mounted, PreparedImage,
    Style, TableMounts,
};
use crate::image::apply::WhiteoutStyle;
use crate::image::ImageSource;
use crate::isolate::{BackingInfo, FuseMount, IsolateError};

/// The daemon's program name.
pub(super) const PROGRAM: &str = "fuse-overlayfs";
/// The xattr it sets on every file it copies up.
const ORIGIN_XATTR: &str = "user.fuseoverlayfs.origin";
/// fuse-overlayfs's default `timeout` (seconds): used for both the entry and
/// the attribute timeout, negative entries included.
const DEFAULT_TIMEOUT_S: f64 = 1e9;

/// Registry entry.
pub static ENTRY: LayoutEntry = LayoutEntry {
    name: "fuse-overlayfs",
    about: "The overlay2 store mounted by the fuse-overlayfs daemon (FUSE, user space).",
    style: Style {
        rgb: (140, 86, 75),
        dashed: true,
        triangle: false,
    },
    caps: Capabilities {
        shares_layers: true,
        copy_up: CopyUp::Daemon,
        baseline: false,
        overlay_options: false,
        lower_per_layer: true,
        hidden_inode_per_mount: false,
        metacopy: false,
        same_tree_as: None,
        table_mounts: TableMounts::One,
        idmap_lowers: false,
        needs_fstype: None,
    },
    create: |config| Box::new(FuseOverlayfs::new(config.clone())),
    host: HostProfile {
        engine: Engine::Rootless,
        probe: Some(StackProbe {
            name: "fuse-overlayfs",
            root_only: false,
            run: probe,
        }),
        ..HostProfile::rootful()
    },
};

/// doctor's probe: the daemon's version, FUSE in the kernel, then a container
/// mounted by this layout (the daemon, unmounted and reaped after).
fn probe(at: &ProbeHost<'_>) -> ProbeOutcome {
    let version = match host::tool_output(PROGRAM, &["--version"]) {
        Ok(out) => {
            let v = host::version_line(&out, PROGRAM);
            let lib = host::version_line(&out, "FUSE library");
            match (v, lib) {
                (Some(v), Some(l)) => format!("{v}, {l}"),
                (Some(v), None) => v,
                _ => "version not reported".to_string(),
            }
        }
        Err(e) => return ProbeOutcome::failed(e),
    };
    let mut p = if !host::kernel_has(at.filesystems, "fuse") || !Path::new("/dev/fuse").exists() {
        ProbeOutcome::failed(
            "installed, but the kernel has no FUSE (no fuse in /proc/filesystems or no /dev/fuse)"
                .into(),
        )
    } else {
        match host::probe_stack(&ENTRY, &at.dir.join("fuse"), at.privilege) {
            Ok(done) => ProbeOutcome::of(Ok(done)),
            Err(e) => ProbeOutcome::failed(format!("installed, but a mount failed: {e}")),
        }
    };
    p.version = Some(version);
    p
}

/// The fuse-overlayfs layout.
#[derive(Debug, Clone)]
pub struct FuseOverlayfs {
    config: LayoutConfig,
}

impl FuseOverlayfs {
    /// With these settings (the privilege decides the markers' namespace).
    pub fn new(config: LayoutConfig) -> Self {
        FuseOverlayfs { config }
    }
}

/// `fuse-overlayfs --version`'s first line, or why it cannot run.
fn version() -> &'static Result<String, String> {
    static VERSION: OnceLock<Result<String, String>> = OnceLock::new();
    VERSION.get_or_init(|| {
        let out = Command::new(PROGRAM)
            .arg("--version")
            .output()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    format!("{PROGRAM} is not installed (apt-get install {PROGRAM})")
                } else {
                    format!("running {PROGRAM} --version: {e}")
                }
            })?;
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        text.lines()
            .find(|l| l.contains("version"))
            .map(|l| l.trim().to_string())
            .ok_or_else(|| format!("{PROGRAM} --version printed no version: {}", text.trim()))
    })
}

impl Layout for FuseOverlayfs {
    fn entry(&self) -> &'static LayoutEntry {
        &ENTRY
    }

    fn with_options(&self, options: &[(String, Option<String>)]) -> Option<Box<dyn Layout>> {
        options
            .is_empty()
            .then(|| Box::new(self.clone()) as Box<dyn Layout>)
    }

    fn unavailable(&self, _backing: &BackingInfo) -> Option<String> {
        if let Err(why) = version() {
            return Some(why.clone());
        }
        (!Path::new("/dev/fuse").exists())
            .then(|| "fuse-overlayfs needs /dev/fuse (modprobe fuse)".to_string())
    }

    fn import(&self, store: &Path, image: &dyn ImageSource) -> Result<PreparedImage, LayoutError> {
        // fuse-overlayfs reads the kernel's markers (char 0/0, overlay.opaque).
        let opts = fsops::apply_options(
            &self.config,
            WhiteoutStyle::OverlayDiff {
                xattr_prefix: self.config.overlay_prefix(),
            },
        );
        overlay2::import_store(ENTRY.name, store, image, &opts)
    }

    fn create_container(
        &self,
        _image: &PreparedImage,
        root: &Path,
    ) -> Result<ContainerDirs, LayoutError> {
        super::overlay_container_dirs(root)
    }

    fn mount_spec(
        &self,
        image: &PreparedImage,
        c: &ContainerDirs,
        _host: &MountHost,
    ) -> Result<MountSpec, LayoutError> {
        let lowers: Vec<PathBuf> = image.layer_dirs.iter().rev().cloned().collect();
        let (upper, work) = c.upper_work.clone().ok_or_else(|| LayoutError::Io {
            what: "mounting without an upper dir",
            path: c.root.clone(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })?;
        // The daemon splits its option string on ',' and the lowers on ':'.
        for p in lowers.iter().chain([&upper, &work]) {
            let b = p.as_os_str().as_encoded_bytes();
            if b.contains(&b':') || b.contains(&b',') {
                return Err(IsolateError::UnsafeLayerPath { path: p.clone() }.into());
            }
        }
        let lowerdir: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        // nosuid,nodev: an image's setuid files and device nodes stay inert.
        let options = format!(
            "nosuid,nodev,lowerdir={},upperdir={},workdir={}",
            lowerdir.join(":"),
            upper.display(),
            work.display()
        );
        Ok(MountSpec::Daemon {
            program: PROGRAM,
            args: vec!["-f".to_string(), "-o".into(), options],
        })
    }

    fn mount(&self, image: &PreparedImage, c: &ContainerDirs) -> Result<Mounted, LayoutError> {
        let MountSpec::Daemon { program, args } = self.mount_spec(image, c, &MountHost::read())?
        else {
            return Err(super::spec::not_an_overlay(ENTRY.name));
        };
        let (m, elapsed) = FuseMount::start(program, &args, &c.merged, Duration::from_secs(20))?;
        let options = args.last().cloned().unwrap_or_default();
        Ok(Mounted {
            merged: c.merged.clone(),
            guards: vec![Box::new(m)],
            mount_time: Some(elapsed),
            options_in_force: Some(format!(
                "{options},timeout=default ({DEFAULT_TIMEOUT_S:e} s)"
            )),
        })
    }

    /// The FUSE file caches pages of its own, and the daemon's reads cache the
    /// file it serves them from.
    fn data_files(&self, image: &PreparedImage, c: &ContainerDirs, rel: &Path) -> Vec<PathBuf> {
        let mut out = vec![c.merged.join(rel)];
        out.extend(self.data_file(image, c, rel));
        out
    }

    fn verify_copy_up(
        &self,
        _image: &PreparedImage,
        c: &ContainerDirs,
        rel: &Path,
        check: &CopyUpCheck,
    ) -> Result<(), LayoutError> {
        verify::daemon_upper(self, c, rel, check, ORIGIN_XATTR)
    }

    fn kernel_cache_timeout_s(&self) -> Option<f64> {
        Some(DEFAULT_TIMEOUT_S)
    }

    fn notes(&self) -> Vec<String> {
        let v = match version() {
            Ok(v) => v.clone(),
            Err(e) => e.clone(),
        };
        vec![format!(
            "fuse-overlayfs ({v}): each container is mounted by its own daemon (foreground, dies with the run); \
             the kernel caches its entries and attributes for {DEFAULT_TIMEOUT_S:e} s (the daemon's default \
             timeout), so warm lookups never reach the daemon; copy-ups are not fsynced; its mounts are \
             nodev,noatime; the mount time is from starting the daemon to a serving mount"
        )]
    }
}
