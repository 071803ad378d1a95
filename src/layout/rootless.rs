//! Rootless native overlay, as rootless Podman and Docker use it on kernels
//! 5.11 and later: the overlay2-shaped store (containers-storage's), but every
//! marker in the `user.overlay.*` namespace and every mount with `userxattr`,
//! made inside a user namespace. The kernel refuses `metacopy` and
//! `redirect_dir` there: the capabilities say so, nothing is tried.
//!
//! Run as root, a forked helper unshares a user namespace with the identity map
//! `0 0 4294967295` (files keep the ids of root-made images; a shifted map
//! would mount silently read-only), builds the overlay — fsopen/fsconfig/
//! fsmount with one `lowerdir+` per layer on Linux 6.8 and later; before it
//! mount(2) with the classic option string in its own mount namespace, then
//! `open_tree(OPEN_TREE_CLONE)` — and hands the detached mount back over a
//! socket; we attach it (a mount made in another namespace can only travel as
//! a detached fd). Run rootless, the tool is already in such a namespace and
//! mounts directly.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use super::host::{self, ProbeOutcome, StackProbe};
use super::{
    fsops, mount_overlay_spec, mounted_overlay, overlay2, spec, Capabilities, ContainerDirs,
    CopyUp, Engine, HostProfile, Layout, LayoutConfig, LayoutEntry, LayoutError, MountHost,
    MountSpec, Mounted, PreparedImage, Style, TableMounts,
};
use crate::image::apply::{ApplyOptions, WhiteoutStyle};
use crate::image::ImageSource;
use crate::isolate::MountHow;
use crate::isolate::{
    new_api_available, BackingInfo, IsolateError, MountApi, Privilege, UsernsOverlay,
};

/// The namespace every marker of this layout lives in.
const PREFIX: &str = "user.overlay.";

/// Registry entry.
pub static ENTRY: LayoutEntry = LayoutEntry {
    name: "rootless",
    about:
        "Rootless native overlay: userxattr, user.overlay.* markers, mounted in a user namespace.",
    style: Style {
        rgb: (255, 127, 14),
        dashed: true,
        triangle: false,
    },
    caps: Capabilities {
        shares_layers: true,
        copy_up: CopyUp::OverlayXattr,
        baseline: false,
        overlay_options: true,
        lower_per_layer: true,
        hidden_inode_per_mount: true,
        metacopy: false,
        same_tree_as: None,
        table_mounts: TableMounts::One,
        idmap_lowers: false,
        needs_fstype: None,
    },
    create: |config| Box::new(Rootless::new(config.clone())),
    host: HostProfile {
        engine: Engine::Rootless,
        // Nothing beyond overlay itself: with `lowerdir+` (6.8+) each layer is
        // passed on its own, before it the classic option string is used.
        // Whether overlay mounts in a user namespace at all (5.11+) only a
        // mount tells: its probe.
        requires: &[],
        probe: Some(StackProbe {
            name: "rootless overlay (user namespace)",
            root_only: false,
            run: probe_mount,
        }),
        ..HostProfile::rootful()
    },
};

/// doctor's probe. As root: on an ext4 filesystem of its own (a loop device
/// over a sparse image in doctor's tmpfs), where a rootless store really lives
/// (a home directory's ext4 or xfs) — tmpfs keeps `user.*` xattrs only since
/// Linux 6.6, so a probe there would call rootless overlay unsupported on
/// kernels where it works. Rootless (no loop devices): on doctor's tmpfs, and
/// the detail says so.
fn probe_mount(at: &host::ProbeHost<'_>) -> ProbeOutcome {
    let dir = at.dir.join("rootless");
    ProbeOutcome::of(match at.privilege {
        Privilege::Root => host::on_own_filesystem(
            &dir,
            "ext4",
            PROBE_IMAGE_BYTES,
            std::process::Command::new("mkfs.ext4").args(["-q", "-F"]),
            "mkfs.ext4 is in e2fsprogs",
            |m| host::probe_stack(&ENTRY, m, at.privilege),
        ),
        Privilege::Rootless => host::probe_stack(&ENTRY, &dir, at.privilege).map(|(d, t)| {
            (
                format!("on doctor's tmpfs (no loop device without root): {d}"),
                t,
            )
        }),
    })
}

/// The rootless probe's ext4 image: sparse, so it takes only what mkfs.ext4
/// writes of doctor's tmpfs.
const PROBE_IMAGE_BYTES: u64 = 64 << 20;

/// The rootless layout.
#[derive(Debug, Clone)]
pub struct Rootless {
    config: LayoutConfig,
}

impl Rootless {
    /// With these mount settings (extra options; the privilege decides how the
    /// mount is made, never the markers).
    pub fn new(config: LayoutConfig) -> Self {
        Rootless { config }
    }

    /// A layer path as the helper passes it: absolute, at most 255 bytes (what
    /// one fsconfig string takes).
    fn layer_path(p: &Path) -> Result<CString, LayoutError> {
        let bytes = p.as_os_str().as_encoded_bytes();
        if bytes.len() > 255 || bytes.contains(&0) || !p.is_absolute() {
            return Err(LayoutError::io("passing a layer to the rootless helper", p)(
                std::io::Error::other(
                    "a layer path must be absolute and at most 255 bytes (fsconfig's limit); use a shorter --scratch",
                ),
            ));
        }
        CString::new(bytes).map_err(|_| {
            LayoutError::io("passing a layer to the rootless helper", p)(std::io::Error::other(
                "the path contains a NUL byte",
            ))
        })
    }
}

/// Whether this host lets a process make user namespaces.
fn user_namespaces_allowed() -> Result<(), String> {
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .map_err(|e| format!("reading /proc/sys/user/max_user_namespaces: {e}"))?;
    if max.trim() == "0" {
        return Err("user namespaces are disabled (user.max_user_namespaces = 0)".into());
    }
    Ok(())
}

impl Layout for Rootless {
    fn entry(&self) -> &'static LayoutEntry {
        &ENTRY
    }

    fn overlay_xattr(&self, name: &str) -> Option<String> {
        Some(format!("{PREFIX}{name}"))
    }

    fn with_options(&self, options: &[(String, Option<String>)]) -> Option<Box<dyn Layout>> {
        // The kernel refuses these with userxattr; the capabilities say so.
        if options
            .iter()
            .any(|(k, _)| k == "metacopy" || k == "redirect_dir")
        {
            return None;
        }
        Some(Box::new(Rootless::new(
            self.config.with_options(options.to_vec()),
        )))
    }

    fn unavailable(&self, _backing: &BackingInfo) -> Option<String> {
        user_namespaces_allowed()
            .err()
            .map(|why| format!("rootless needs user namespaces: {why}"))
    }

    fn import(&self, store: &Path, image: &dyn ImageSource) -> Result<PreparedImage, LayoutError> {
        // Root-made images (owners and device nodes kept) marked the rootless way.
        let base = fsops::apply_options(&self.config, WhiteoutStyle::InPlace);
        let opts = ApplyOptions {
            style: WhiteoutStyle::OverlayDiff {
                xattr_prefix: PREFIX,
            },
            ..base
        };
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
        // As root: the new mount API whatever the run asked where the kernel
        // takes lowerdir+ (the helper's mount travels as a detached fd either
        // way); classic mount(2) before it (Linux 6.8).
        let config = LayoutConfig {
            mount_api: if new_api_available() {
                MountApi::New
            } else {
                MountApi::Classic
            },
            ..self.config.clone()
        };
        let mut spec = spec::overlay(&config, lowers, None, c);
        if let (MountSpec::Overlay(o), Privilege::Root) = (&mut spec, self.config.privilege) {
            // As root, a helper in a fresh user namespace builds it: userxattr
            // first, then the run's options.
            o.in_user_namespace = true;
            o.mount.options = std::iter::once(("userxattr".to_string(), None))
                .chain(self.config.options.iter().cloned())
                .collect();
        }
        Ok(spec)
    }

    fn mount(&self, image: &PreparedImage, c: &ContainerDirs) -> Result<Mounted, LayoutError> {
        let spec = self.mount_spec(image, c, &MountHost::read())?;
        let o = spec
            .overlay()
            .ok_or_else(|| spec::not_an_overlay(ENTRY.name))?;
        if !o.in_user_namespace {
            // Already in a user namespace: mount here (the options carry userxattr).
            return mount_overlay_spec(ENTRY.name, &spec, c, &MountHow::default());
        }
        let c_string = |s: &str| {
            CString::new(s).map_err(|_| {
                LayoutError::Isolate(IsolateError::Unsupported(format!(
                    "overlay option {s:?} contains a NUL byte"
                )))
            })
        };
        let c_string_path = |p: &Path| {
            CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| {
                LayoutError::io("passing a mount point to the rootless helper", p)(
                    std::io::Error::other("the path contains a NUL byte"),
                )
            })
        };
        let lowers = &o.mount.lowers;
        let (mnt, elapsed) = if o.api == MountApi::New {
            let lower_paths = lowers
                .iter()
                .map(|p| Rootless::layer_path(p))
                .collect::<Result<Vec<_>, _>>()?;
            let uw = c
                .upper_work
                .as_ref()
                .map(|(u, w)| {
                    Ok::<_, LayoutError>((Rootless::layer_path(u)?, Rootless::layer_path(w)?))
                })
                .transpose()?;
            let mut flags = Vec::new();
            let mut strings = Vec::new();
            for (k, v) in &o.mount.options {
                match v {
                    Some(v) => strings.push((c_string(k)?, c_string(v)?)),
                    None => flags.push(c_string(k)?),
                }
            }
            crate::isolate::overlay_in_user_namespace(
                &UsernsOverlay::NewApi {
                    lowers: &lower_paths,
                    upper_work: uw.as_ref().map(|(u, w)| (u, w)),
                    flags: &flags,
                    strings: &strings,
                },
                &c.merged,
            )?
        } else {
            // Before Linux 6.8 (no lowerdir+): the classic option string,
            // mounted inside the helper's namespace and cloned out.
            o.mount.check_paths()?;
            let data = o.mount.classic_data_within_limit(&[])?;
            let at = std::path::absolute(&c.merged)
                .map_err(LayoutError::io("resolving the mount point", &c.merged))?;
            crate::isolate::overlay_in_user_namespace(
                &UsernsOverlay::Classic {
                    at: &c_string_path(&at)?,
                    data: &c_string(&data)?,
                },
                &c.merged,
            )?
        };
        let m = crate::isolate::attach_overlay(mnt, lowers.len(), &c.merged, elapsed)?;
        // A bad id map degrades to read-only without an error (only the super
        // options show it): refuse that here.
        if m.options_in_force.split(',').any(|o| o == "ro") {
            let target = c.merged.clone();
            let _ = m.guard.unmount();
            return Err(LayoutError::Isolate(IsolateError::Mount {
                fstype: "overlay (in a user namespace)".into(),
                target,
                source: std::io::Error::other(
                    "the rootless overlay came up read-only (the id map does not cover the upper dir's owner)",
                ),
            }));
        }
        Ok(mounted_overlay(c, m, true))
    }

    fn notes(&self) -> Vec<String> {
        let api = if new_api_available() {
            "the new mount API (one lowerdir+ per layer), whatever --mount-api says"
        } else {
            "classic mount(2) with one option string (this kernel has no lowerdir+), whatever --mount-api says"
        };
        let how = match self.config.privilege {
            Privilege::Root => format!(
                "a forked helper in a fresh user namespace (identity map 0 0 4294967295) builds each mount with \
                 {api} and userxattr and hands it over as a detached mount fd; the mount time is that of the \
                 mount syscalls, not of the helper"
            ),
            Privilege::Rootless => {
                format!("mounted directly in the tool's own user namespace with userxattr, by {api}")
            }
        };
        vec![format!(
            "rootless: layers marked with user.overlay.* xattrs; {how}; metacopy and redirect_dir are not \
             measured (the kernel refuses them with userxattr)"
        )]
    }
}
