//! How a layout mounts a container, worked out before any syscall: which
//! lowers in which order (absolute, or relative to a base dir for a classic
//! mount), which options, which images go first, which data-only lowers, which
//! API. Pure — no file is read, nothing is mounted — so every layout's spec is
//! unit-tested without root; each layout's `mount` carries out exactly its spec.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::{ContainerDirs, LayoutConfig, LayoutError};
use crate::isolate::{IsolateError, MountApi, OverlayMount};

/// Host facts a mount spec depends on, read once by whoever mounts (so the
/// spec itself stays pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MountHost {
    /// The overlay module has an `index` parameter (containerd then mounts
    /// with `index=off`).
    pub overlay_index_param: bool,
}

impl MountHost {
    /// This host's facts. Every mount asks and a mount's time is measured,
    /// so a parameter once seen is remembered; one not seen yet is looked for
    /// again (the overlay module may load with the first mount).
    pub fn read() -> MountHost {
        static INDEX_SEEN: AtomicBool = AtomicBool::new(false);
        let seen = INDEX_SEEN.load(Ordering::Relaxed)
            || Path::new("/sys/module/overlay/parameters/index").exists();
        INDEX_SEEN.store(seen, Ordering::Relaxed);
        MountHost {
            overlay_index_param: seen,
        }
    }
}

/// How a container of a layout is mounted.
#[derive(Debug, Clone)]
pub enum MountSpec {
    /// Nothing is mounted: the container's own dir is its view (a copy, a snapshot).
    Nothing,
    /// An overlay, after the images it stacks.
    Overlay(OverlaySpec),
    /// A FUSE daemon mounts it, in the foreground, with these arguments.
    Daemon {
        /// The program.
        program: &'static str,
        /// Its arguments (the mount point follows them).
        args: Vec<String>,
    },
}

/// An overlay mount of a container.
#[derive(Debug, Clone)]
pub struct OverlaySpec {
    /// Images mounted first, each at its dir (EROFS layer images, a composefs
    /// metadata image), in order: `(image file, mount point)`.
    pub images: Vec<(PathBuf, PathBuf)>,
    /// The overlay: lowers topmost first (relative to `lowers_base` when set),
    /// upper and work, options, target.
    pub mount: OverlayMount,
    /// Data-only lowers (`datadir+`; `::` after the lowers in a classic mount).
    pub data: Vec<PathBuf>,
    /// Which mount syscalls.
    pub api: MountApi,
    /// Built by a helper in a fresh user namespace and handed back as a
    /// detached mount (rootless overlay as root).
    pub in_user_namespace: bool,
}

impl MountSpec {
    /// The overlay, if this spec mounts one.
    pub fn overlay(&self) -> Option<&OverlaySpec> {
        match self {
            MountSpec::Overlay(o) => Some(o),
            _ => None,
        }
    }

    /// The lowers as the kernel is given them (topmost first), data-only
    /// lowers after `::` — what a test of the spec reads.
    pub fn lowerdir(&self) -> Option<String> {
        let o = self.overlay()?;
        let mut s: Vec<String> = o
            .mount
            .lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        s.extend(o.data.iter().map(|d| format!(":{}", d.display())));
        Some(s.join(":"))
    }

    /// The overlay's options other than its dirs, `k=v` or `k`, in order.
    pub fn options(&self) -> Vec<String> {
        self.overlay().map_or_else(Vec::new, |o| {
            o.mount
                .options
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => k.clone(),
                })
                .collect()
        })
    }
}

/// An overlay over `lowers` (topmost first; relative to `lowers_base` when
/// given) with the layout's options and API, on container `c`.
pub(super) fn overlay(
    config: &LayoutConfig,
    lowers: Vec<PathBuf>,
    lowers_base: Option<PathBuf>,
    c: &ContainerDirs,
) -> MountSpec {
    MountSpec::Overlay(OverlaySpec {
        images: Vec::new(),
        mount: OverlayMount {
            lowers,
            lowers_base,
            upper_work: c.upper_work.clone(),
            options: config.mount_options(),
            target: c.merged.clone(),
        },
        data: Vec::new(),
        api: config.mount_api,
        in_user_namespace: false,
    })
}

/// A spec of another kind than the layout's mount carries out (a bug in the
/// layout, not in the input).
pub(super) fn not_an_overlay(layout: &str) -> LayoutError {
    LayoutError::Isolate(IsolateError::Unsupported(format!(
        "layout {layout}: its mount spec is not of the kind its mount carries out"
    )))
}

#[cfg(test)]
mod tests {
    //! Every layout's spec for a 3-layer image, without root: the order of
    //! the lowers, relative paths where the engine uses them, the options.

    use std::path::{Path, PathBuf};

    use super::*;
    use crate::isolate::Privilege;
    use crate::layout::{PreparedImage, LAYOUTS};

    fn config(api: MountApi, privilege: Privilege) -> LayoutConfig {
        LayoutConfig {
            mount_api: api,
            options: vec![("volatile".into(), None)],
            privilege,
        }
    }

    fn container(root: &str, upper: &str, work: &str) -> ContainerDirs {
        let r = PathBuf::from(root);
        ContainerDirs {
            upper_work: Some((r.join(upper), r.join(work))),
            merged: r.join("m"),
            root: r,
        }
    }

    fn image(layout: &'static str, root: &str, dirs: &[&str]) -> PreparedImage {
        PreparedImage {
            layout,
            root: PathBuf::from(root),
            layer_dirs: dirs.iter().map(PathBuf::from).collect(),
            depth: 3,
            chain_ids: vec!["sha256:a".into(), "sha256:b".into(), "sha256:c".into()],
            written: vec![None; 3],
        }
    }

    fn spec(
        name: &str,
        cfg: &LayoutConfig,
        img: &PreparedImage,
        c: &ContainerDirs,
        host: MountHost,
    ) -> MountSpec {
        crate::layout::make(name, cfg)
            .mount_spec(img, c, &host)
            .expect("a spec")
    }

    /// The spec of `name` with `api` and `privilege`, on a host whose overlay
    /// has no optional parameters.
    fn default_spec(
        name: &str,
        api: MountApi,
        privilege: Privilege,
        img: &PreparedImage,
        c: &ContainerDirs,
    ) -> MountSpec {
        spec(name, &config(api, privilege), img, c, MountHost::default())
    }

    fn o2_dirs() -> Vec<String> {
        ["aaaa", "bbbb", "cccc"]
            .iter()
            .map(|id| format!("/s/{id}/diff"))
            .collect()
    }

    #[test]
    fn overlay2_classic_uses_short_links_relative_to_the_store() {
        let dirs = o2_dirs();
        let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
        let img = image("overlay2", "/s", &dirs);
        let c = container("/c/1", "u", "w");
        let s = default_spec("overlay2", MountApi::Classic, Privilege::Root, &img, &c);
        let o = s.overlay().expect("overlay");
        assert_eq!(
            s.lowerdir().as_deref(),
            Some(
                "l/LCCCC000000000000000000000:l/LBBBB000000000000000000000:l/LAAAA000000000000000000000"
            )
        );
        assert_eq!(o.mount.lowers_base.as_deref(), Some(Path::new("/s")));
        assert_eq!(
            o.mount.upper_work,
            Some((PathBuf::from("/c/1/u"), PathBuf::from("/c/1/w")))
        );
        assert_eq!(s.options(), ["volatile"]);
        assert_eq!(o.api, MountApi::Classic);
        assert_eq!(
            o.mount.classic_data(),
            "lowerdir=l/LCCCC000000000000000000000:l/LBBBB000000000000000000000:\
             l/LAAAA000000000000000000000,upperdir=/c/1/u,workdir=/c/1/w,volatile"
        );
        // The new API takes the diff dirs themselves, topmost first.
        let s = default_spec("overlay2", MountApi::New, Privilege::Root, &img, &c);
        assert_eq!(
            s.lowerdir().as_deref(),
            Some("/s/cccc/diff:/s/bbbb/diff:/s/aaaa/diff")
        );
        assert_eq!(s.overlay().expect("overlay").mount.lowers_base, None);
    }

    #[test]
    fn rootless_mounts_overlay2_dirs_with_userxattr() {
        let dirs = o2_dirs();
        let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
        let img = image("rootless", "/s", &dirs);
        let c = container("/c/1", "u", "w");
        // As root: a helper in a user namespace, userxattr first, new API always.
        let s = default_spec("rootless", MountApi::Classic, Privilege::Root, &img, &c);
        let o = s.overlay().expect("overlay");
        assert!(o.in_user_namespace);
        assert_eq!(o.api, MountApi::New);
        assert_eq!(s.options(), ["userxattr", "volatile"]);
        assert_eq!(
            s.lowerdir().as_deref(),
            Some("/s/cccc/diff:/s/bbbb/diff:/s/aaaa/diff")
        );
        // Already rootless: mounted here, the run's options then userxattr.
        let s = default_spec("rootless", MountApi::Classic, Privilege::Rootless, &img, &c);
        let o = s.overlay().expect("overlay");
        assert!(!o.in_user_namespace);
        assert_eq!(o.api, MountApi::New);
        assert_eq!(s.options(), ["volatile", "userxattr"]);
    }

    #[test]
    fn legacy_overlay_stacks_only_the_top_root() {
        let img = image("overlay", "/s", &["/s/a/root", "/s/b/root", "/s/c/root"]);
        let c = container("/c/1", "u", "w");
        let s = default_spec("overlay", MountApi::New, Privilege::Root, &img, &c);
        assert_eq!(s.lowerdir().as_deref(), Some("/s/c/root"));
        assert_eq!(s.options(), ["volatile"]);
    }

    #[test]
    fn containerd_goes_relative_to_snapshots_only_past_3584_bytes() {
        let snap = |i: u32| format!("/var/lib/c/snapshots/{i}/fs");
        let dirs: Vec<String> = [1, 2, 12].iter().map(|i| snap(*i)).collect();
        let d: Vec<&str> = dirs.iter().map(String::as_str).collect();
        let img = image("containerd", "/var/lib/c", &d);
        let c = container("/c/1", "fs", "work");
        let cfg = config(MountApi::Classic, Privilege::Root);
        let host = MountHost {
            overlay_index_param: true,
        };
        // Short: absolute lowers, containerd's index=off first.
        let s = spec("containerd", &cfg, &img, &c, host);
        assert_eq!(
            s.lowerdir().as_deref(),
            Some("/var/lib/c/snapshots/12/fs:/var/lib/c/snapshots/2/fs:/var/lib/c/snapshots/1/fs")
        );
        assert_eq!(s.options(), ["index=off", "volatile"]);
        assert_eq!(s.overlay().expect("overlay").mount.lowers_base, None);
        let s = spec("containerd", &cfg, &img, &c, MountHost::default());
        assert_eq!(s.options(), ["volatile"]);
        // Deep: the snapshot numbers relative to snapshots/.
        let dirs: Vec<String> = (1..=200).map(snap).collect();
        let d: Vec<&str> = dirs.iter().map(String::as_str).collect();
        let mut img = image("containerd", "/var/lib/c", &d);
        img.depth = 200;
        let s = spec("containerd", &cfg, &img, &c, host);
        let o = s.overlay().expect("overlay");
        assert_eq!(
            o.mount.lowers_base.as_deref(),
            Some(Path::new("/var/lib/c/snapshots"))
        );
        assert_eq!(o.mount.lowers[0], PathBuf::from("200/fs"));
        assert_eq!(o.mount.lowers[199], PathBuf::from("1/fs"));
        // The new API: one lowerdir+ per layer, never relative.
        let s = spec(
            "containerd",
            &config(MountApi::New, Privilege::Root),
            &img,
            &c,
            host,
        );
        let o = s.overlay().expect("overlay");
        assert_eq!(o.mount.lowers_base, None);
        assert_eq!(o.mount.lowers[0], PathBuf::from(snap(200)));
    }

    #[test]
    fn erofs_mounts_each_layer_image_then_the_overlay() {
        let img = image("erofs", "/s", &["/s/a/fs", "/s/b/fs", "/s/c/fs"]);
        let c = container("/c/1", "u", "w");
        let s = default_spec("erofs", MountApi::New, Privilege::Root, &img, &c);
        let o = s.overlay().expect("overlay");
        assert_eq!(
            o.images,
            [
                (PathBuf::from("/s/a/layer.erofs"), PathBuf::from("/s/a/fs")),
                (PathBuf::from("/s/b/layer.erofs"), PathBuf::from("/s/b/fs")),
                (PathBuf::from("/s/c/layer.erofs"), PathBuf::from("/s/c/fs")),
            ]
        );
        assert_eq!(s.lowerdir().as_deref(), Some("/s/c/fs:/s/b/fs:/s/a/fs"));
        assert_eq!(s.options(), ["volatile"]);
    }

    #[test]
    fn composefs_mounts_its_metadata_image_over_the_object_store() {
        let img = image("composefs", "/s", &["/s/images/k/mnt"]);
        let c = container("/c/1", "u", "w");
        let s = default_spec("composefs", MountApi::Classic, Privilege::Root, &img, &c);
        let o = s.overlay().expect("overlay");
        assert_eq!(
            o.images,
            [(
                PathBuf::from("/s/images/k/image.cfs"),
                PathBuf::from("/s/images/k/mnt")
            )]
        );
        assert_eq!(s.lowerdir().as_deref(), Some("/s/images/k/mnt::/s/objects"));
        assert_eq!(s.options(), ["metacopy=on", "redirect_dir=on", "volatile"]);
    }

    #[test]
    fn fuse_overlayfs_passes_the_dirs_to_its_daemon() {
        let dirs = o2_dirs();
        let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
        let img = image("fuse-overlayfs", "/s", &dirs);
        let c = container("/c/1", "u", "w");
        let cfg = LayoutConfig {
            options: Vec::new(),
            ..config(MountApi::New, Privilege::Root)
        };
        match spec("fuse-overlayfs", &cfg, &img, &c, MountHost::default()) {
            MountSpec::Daemon { program, args } => {
                assert_eq!(program, crate::layout::FUSE_OVERLAYFS_PROGRAM);
                assert_eq!(
                    args,
                    [
                        "-f",
                        "-o",
                        "nosuid,nodev,lowerdir=/s/cccc/diff:/s/bbbb/diff:/s/aaaa/diff,upperdir=/c/1/u,workdir=/c/1/w"
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        // A ':' in a path would split the daemon's lower list: refused.
        let bad = image("fuse-overlayfs", "/s", &["/s/a:b/diff"]);
        assert!(crate::layout::make("fuse-overlayfs", &cfg)
            .mount_spec(&bad, &c, &MountHost::default())
            .is_err());
    }

    #[test]
    fn plain_and_btrfs_mount_nothing() {
        let img = image("plain", "/s", &["/s/k/flat"]);
        let c = ContainerDirs {
            root: "/c/1".into(),
            upper_work: None,
            merged: "/c/1/m".into(),
        };
        for name in ["plain", "btrfs"] {
            let s = spec(
                name,
                &config(MountApi::New, Privilege::Root),
                &img,
                &c,
                MountHost::default(),
            );
            assert!(matches!(s, MountSpec::Nothing), "{name}: {s:?}");
        }
    }

    #[test]
    fn every_layout_mounts_what_its_capabilities_say() {
        // Whatever the layout: a spec for a 3-layer image, stacking one lower
        // per layer exactly when its capabilities say so, nothing mounted
        // exactly when a container adds no line to the mount table.
        let c = container("/c/1", "u", "w");
        for e in LAYOUTS {
            let img = image(e.name, "/s", &["/s/a/d", "/s/b/d", "/s/c/d"]);
            for api in [MountApi::New, MountApi::Classic] {
                let s = spec(
                    e.name,
                    &config(api, Privilege::Root),
                    &img,
                    &c,
                    MountHost::default(),
                );
                let nothing = matches!(s, MountSpec::Nothing);
                assert_eq!(
                    nothing,
                    e.caps.table_mounts == crate::layout::TableMounts::None,
                    "{}",
                    e.name
                );
                if let Some(o) = s.overlay() {
                    let want = if e.caps.lower_per_layer { 3 } else { 1 };
                    assert_eq!(o.mount.lowers.len(), want, "{}: {s:?}", e.name);
                    assert_eq!(o.mount.target, c.merged, "{}", e.name);
                }
            }
        }
    }
}
