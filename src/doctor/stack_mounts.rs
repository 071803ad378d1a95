//! One probe per storage stack that builds a tiny image and mounts a
//! container the way that engine does, on doctor's private tmpfs, and uses the
//! mount. The probe *is* this build's layout for the stack (containerd,
//! overlay2, legacy overlay, rootless, fuse-overlayfs, btrfs, erofs,
//! composefs) — the same code `run` measures — so doctor never claims a stack
//! `run` cannot build here. btrfs gets a filesystem of its own first (a loop
//! device over a sparse image file in the tmpfs).
//!
//! Nothing here touches the host's files: every dir, image and mount point is
//! under the tmpfs, the mounts live in the private namespace, and the one
//! kernel object beyond it, a loop device, detaches itself when its filesystem
//! is unmounted (`LO_FLAGS_AUTOCLEAR`). Each probe reports the wall time of its
//! container mount, the figure the recommendation cites.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::mount::MsFlags;

use super::probe::FeatureProbe;
use crate::image::{generate, GeneratorParams, ImageShape, SizeRange};
use crate::isolate::{new_api_available, run_command, LoopDevice, MountApi, MountGuard, Privilege};
use crate::layout::{self, LayoutConfig};

/// containerd's overlayfs snapshotter mount.
pub const CONTAINERD: &str = "containerd snapshotter mount";
/// Docker's and containers-storage's overlay2 mount.
pub const OVERLAY2: &str = "overlay2 mount";
/// Docker's legacy overlay driver's mount.
pub const LEGACY: &str = "legacy overlay mount";
/// A btrfs driver store's container.
pub const BTRFS: &str = "btrfs driver mount (own filesystem)";
/// containerd's EROFS snapshotter mount.
pub const EROFS: &str = "erofs snapshotter mount";
/// A composefs mount.
pub const COMPOSEFS: &str = "composefs mount";

/// How long one tool (mkfs, btrfs) may take on a tiny image.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);
/// The btrfs probe's image: sparse, so it takes only what mkfs writes (~5 MiB)
/// of the tmpfs; `--mixed` makes a filesystem this small valid.
const BTRFS_IMAGE_BYTES: u64 = 64 << 20;
/// Layers of the probes' image: enough for a real stack of lowers.
const PROBE_LAYERS: usize = 3;

/// Every stack-mount probe, under `dir` (doctor's private tmpfs). All need
/// real root (trusted xattrs, loop devices) except the rootless one.
pub fn probe_all(dir: &Path) -> Vec<FeatureProbe> {
    let on_layout = |name: &str, layout: &str| {
        result(
            name,
            layout_probe(layout, &dir.join(layout), Privilege::Root),
        )
    };
    vec![
        on_layout(CONTAINERD, "containerd"),
        on_layout(OVERLAY2, "overlay2"),
        on_layout(LEGACY, "overlay"),
        btrfs(&dir.join("btrfs")),
        on_layout(EROFS, "erofs"),
        on_layout(COMPOSEFS, "composefs"),
    ]
}

/// A rootless engine's mount, by this build's `rootless` layout: as root, a
/// helper in a fresh user namespace builds it; in a user namespace, directly.
pub fn rootless(dir: &Path, privilege: Privilege) -> Outcome {
    layout_probe("rootless", dir, privilege)
}

/// fuse-overlayfs's mount, by this build's `fuse-overlayfs` layout (the daemon,
/// unmounted and reaped after).
pub fn fuse_overlayfs(dir: &Path, privilege: Privilege) -> Outcome {
    layout_probe("fuse-overlayfs", dir, privilege)
}

/// A probe's outcome: a detail and the mount time, or why it failed.
pub type Outcome = Result<(String, Duration), String>;

pub fn result(name: &str, r: Outcome) -> FeatureProbe {
    match r {
        Ok((detail, took)) => FeatureProbe {
            name: name.into(),
            supported: true,
            detail,
            version: None,
            mount_us: Some(u64::try_from(took.as_micros()).unwrap_or(u64::MAX)),
        },
        Err(detail) => FeatureProbe {
            name: name.into(),
            supported: false,
            detail,
            version: None,
            mount_us: None,
        },
    }
}

fn io(what: &str, p: &Path) -> impl Fn(std::io::Error) -> String {
    let p = p.display().to_string();
    let what = what.to_string();
    move |e| format!("{what} {p}: {e}")
}

fn mkdirs(dirs: &[&Path]) -> Result<(), String> {
    for d in dirs {
        fs::create_dir_all(d).map_err(io("creating", d))?;
    }
    Ok(())
}

fn write(p: &Path, body: &str) -> Result<(), String> {
    if let Some(parent) = p.parent() {
        mkdirs(&[parent])?;
    }
    fs::write(p, body).map_err(io("writing", p))
}

/// Runs a tool to completion within the time limit; its stderr on failure.
fn tool(cmd: &mut Command, hint: &str) -> Result<(), String> {
    let shown = format!("{:?}", cmd.get_program());
    let out = run_command(cmd, TOOL_TIMEOUT, hint).map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn unmount(g: MountGuard) -> Result<(), String> {
    g.unmount().map_err(|e| e.to_string())
}

/// A container of a tiny synthetic image, made and mounted by this build's
/// `layout` under `dir`: one listing and one write through the mount, checked
/// in the container's own layer where the layout has one.
fn layout_probe(layout: &str, dir: &Path, privilege: Privilege) -> Outcome {
    let config = LayoutConfig {
        mount_api: if new_api_available() {
            MountApi::New
        } else {
            MountApi::Classic
        },
        options: Vec::new(),
        privilege,
    };
    let l = layout::create(layout, &config)
        .ok_or_else(|| format!("this build has no {layout} layout"))?;
    let shape = ImageShape::try_from(GeneratorParams {
        seed: 13,
        layers: PROBE_LAYERS,
        files_per_layer: 8,
        dirs_per_layer: 2,
        sizes: SizeRange {
            min_bytes: 0,
            max_bytes: 4096,
        },
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    let spec = generate(&shape);
    let img = l
        .prepare_spec(&spec, &dir.join("store"))
        .map_err(|e| format!("building a {PROBE_LAYERS}-layer image: {e}"))?;
    let started = Instant::now();
    let c = l
        .create_container(&img, &dir.join("containers"))
        .map_err(|e| format!("making a container: {e}"))?;
    let created = started.elapsed();
    let m = l
        .mount(&img, &c)
        .map_err(|e| format!("mounting a container: {e}"))?;
    let rel = Path::new("doctor-probe");
    let used = (|| {
        let listed = fs::read_dir(&m.merged)
            .map_err(io("listing", &m.merged))?
            .count();
        if listed == 0 {
            return Err(format!("{} lists nothing", m.merged.display()));
        }
        write(&m.merged.join(rel), "p")?;
        match l.upper_file(&c, rel) {
            Some(own) if !own.is_file() => Err(format!(
                "a file written through the mount is not at {}",
                own.display()
            )),
            _ => Ok(listed),
        }
    })();
    let took = m.mount_time;
    m.unmount().map_err(|e| e.to_string())?;
    let listed = used?;
    // A layout that mounts nothing (btrfs: the container is a snapshot) pays
    // its start-up cost in making the container: that is its figure.
    let (what, took) = match took {
        Some(t) => ("mounted a container", t),
        None => ("made a container (nothing to mount)", created),
    };
    Ok((
        format!(
            "this build's {layout} layout built a {PROBE_LAYERS}-layer image, {what} in {} µs, \
             listed its {listed} top entries and wrote a file into the container's own layer",
            took.as_micros()
        ),
        took,
    ))
}

fn btrfs(d: &Path) -> FeatureProbe {
    let run = || -> Outcome {
        mkdirs(&[d])?;
        let img = d.join("btrfs.img");
        fs::File::create(&img)
            .and_then(|f| f.set_len(BTRFS_IMAGE_BYTES))
            .map_err(io("creating", &img))?;
        tool(
            Command::new("mkfs.btrfs")
                .args(["-q", "-f", "--mixed"])
                .arg(&img),
            "scripts/setup installs btrfs-progs",
        )?;
        let dev = LoopDevice::attach(&img).map_err(|e| e.to_string())?;
        let m = d.join("m");
        mkdirs(&[&m])?;
        let started = Instant::now();
        nix::mount::mount(
            Some(dev.path()),
            &m,
            Some("btrfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| format!("mounting btrfs from {}: {e}", dev.path().display()))?;
        let took = started.elapsed();
        let guard = MountGuard::new(m.clone());
        let used = layout_probe("btrfs", &m, Privilege::Root);
        unmount(guard)?;
        drop(dev);
        let (detail, container_took) = used?;
        Ok((
            format!(
                "mkfs.btrfs made a filesystem on a loop device, mounted in {} µs; {detail}",
                took.as_micros()
            ),
            container_took,
        ))
    };
    result(BTRFS, run())
}
