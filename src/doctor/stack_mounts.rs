//! One probe per storage stack that mounts the way that engine mounts, on
//! doctor's private tmpfs, and uses the mount: containerd's snapshotter
//! (lowers relative to its snapshots dir), overlay2 (`l/` short links relative
//! to the driver dir), Docker's legacy overlay (one lower of hard links, a
//! copy-up through it), btrfs (a filesystem made on a loop device over an image
//! file in the tmpfs, a subvolume and a snapshot of it), EROFS (an image made by
//! `mkfs.erofs`, mounted from the file, stacked under overlay as containerd's
//! EROFS snapshotter does) and composefs (an EROFS metadata image whose stub
//! files redirect into a content store given as a data-only lower).
//!
//! Nothing here touches the host's files: every dir, image and mount point is
//! under the tmpfs, the mounts live in the private namespace, and the one
//! kernel object beyond it, btrfs's loop device, detaches itself when its
//! filesystem is unmounted (`LO_FLAGS_AUTOCLEAR`). Each probe reports the wall
//! time of its mount system call(s), the figure the recommendation cites.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::mount::MsFlags;

use super::probe::FeatureProbe;
use crate::isolate::{mount_overlay, run_command, LoopDevice, MountApi, MountGuard, OverlayMount};

/// containerd's overlayfs snapshotter mount.
pub const CONTAINERD: &str = "containerd snapshot mount (lowers relative to snapshots/)";
/// Docker's and containers-storage's overlay2 mount.
pub const OVERLAY2: &str = "overlay2 mount (l/ short links)";
/// Docker's legacy overlay driver's mount.
pub const LEGACY: &str = "legacy overlay mount (one hard-linked lower)";
/// A btrfs driver store's operations.
pub const BTRFS: &str = "btrfs driver (subvolume + snapshot)";
/// containerd's EROFS snapshotter mount.
pub const EROFS: &str = "erofs layer under overlay";
/// A composefs mount.
pub const COMPOSEFS: &str = "composefs (erofs metadata + data-only lower)";

/// How long one tool (mkfs, btrfs) may take on a tiny image.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);
/// The btrfs probe's image: sparse, so it takes only what mkfs writes (~5 MiB)
/// of the tmpfs; `--mixed` makes a filesystem this small valid.
const BTRFS_IMAGE_BYTES: u64 = 64 << 20;

/// Every stack-mount probe, under `dir` (doctor's private tmpfs).
pub fn probe_all(dir: &Path) -> Vec<FeatureProbe> {
    vec![
        containerd(&dir.join("containerd")),
        overlay2(&dir.join("overlay2")),
        legacy(&dir.join("legacy")),
        btrfs(&dir.join("btrfs")),
        erofs(&dir.join("erofs")),
        composefs(&dir.join("composefs")),
    ]
}

/// A probe's outcome: a detail and the mount time, or why it failed.
type Outcome = Result<(String, Duration), String>;

fn result(name: &str, r: Outcome) -> FeatureProbe {
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

fn read(p: &Path) -> Result<String, String> {
    fs::read_to_string(p).map_err(io("reading", p))
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

/// A read through `merged` and a write through it that lands in `upper`.
fn use_overlay(merged: &Path, upper: &Path, lower_file: &str, want: &str) -> Result<(), String> {
    let got = read(&merged.join(lower_file))?;
    if got != want {
        return Err(format!(
            "{lower_file} reads {got:?} through the mount, expected {want:?}"
        ));
    }
    write(&merged.join("new"), "n")?;
    if !upper.join("new").is_file() {
        return Err("a file written through the mount is not in the upper dir".into());
    }
    Ok(())
}

/// `snapshots/1/fs`, `snapshots/2/fs` as lowers named `2/fs:1/fs` from the
/// snapshots dir (containerd's spelling once options grow long), upper and work
/// absolute.
fn containerd(d: &Path) -> FeatureProbe {
    let run = || -> Outcome {
        let snaps = d.join("snapshots");
        write(&snaps.join("1/fs/etc/a"), "1")?;
        write(&snaps.join("2/fs/etc/b"), "2")?;
        let (upper, work, target) = (snaps.join("3/fs"), snaps.join("3/work"), d.join("m"));
        mkdirs(&[&upper, &work, &target])?;
        let spec = OverlayMount {
            lowers: vec!["2/fs".into(), "1/fs".into()],
            lowers_base: Some(snaps.clone()),
            upper_work: Some((upper.clone(), work)),
            options: Vec::new(),
            target: target.clone(),
        };
        let data = spec.classic_data().len();
        let m = mount_overlay(&spec, MountApi::Classic).map_err(|e| e.to_string())?;
        let used = use_overlay(&target, &upper, "etc/a", "1");
        let took = m.elapsed;
        unmount(m.guard)?;
        used?;
        Ok((
            format!(
                "mount(2) from the snapshots dir with lowerdir=2/fs:1/fs ({data} bytes of options) in {} µs; read a bottom file and wrote into snapshots/3/fs",
                took.as_micros()
            ),
            took,
        ))
    };
    result(CONTAINERD, run())
}

/// Layers `<id>/diff` named by `l/<short>` links, mounted from the driver dir
/// with the links as lowers (Docker's `mountFrom`), as Docker does for long stacks.
fn overlay2(d: &Path) -> FeatureProbe {
    let run = || -> Outcome {
        let ids = ["aaaa", "bbbb", "cccc"];
        write(&d.join("aaaa/diff/etc/a"), "a")?;
        write(&d.join("bbbb/diff/etc/b"), "b")?;
        mkdirs(&[&d.join("l"), &d.join("cccc/work"), &d.join("cccc/merged")])?;
        mkdirs(&[&d.join("cccc/diff")])?;
        for (id, short) in ids.iter().zip(["SHORTA", "SHORTB", "SHORTC"]) {
            let link = d.join("l").join(short);
            std::os::unix::fs::symlink(format!("../{id}/diff"), &link)
                .map_err(io("linking", &link))?;
        }
        let spec = OverlayMount {
            lowers: vec!["l/SHORTB".into(), "l/SHORTA".into()],
            lowers_base: Some(d.to_path_buf()),
            upper_work: Some((d.join("cccc/diff"), d.join("cccc/work"))),
            options: Vec::new(),
            target: d.join("cccc/merged"),
        };
        let m = mount_overlay(&spec, MountApi::Classic).map_err(|e| e.to_string())?;
        let used = use_overlay(&d.join("cccc/merged"), &d.join("cccc/diff"), "etc/a", "a");
        let took = m.elapsed;
        unmount(m.guard)?;
        used?;
        Ok((
            format!(
                "mount(2) from the driver dir with lowerdir=l/SHORTB:l/SHORTA in {} µs; read a bottom file and wrote into the container's diff",
                took.as_micros()
            ),
            took,
        ))
    };
    result(OVERLAY2, run())
}

/// Layer 2's root re-creates layer 1's dirs and hard-links its files; the
/// container mounts that one lower, and its first write copies the file up
/// without touching the shared inode.
fn legacy(d: &Path) -> FeatureProbe {
    let run = || -> Outcome {
        let (r1, r2) = (d.join("1/root"), d.join("2/root"));
        write(&r1.join("etc/a"), "a")?;
        mkdirs(&[&r2.join("etc")])?;
        fs::hard_link(r1.join("etc/a"), r2.join("etc/a")).map_err(io("linking", &r2))?;
        let (upper, work, target) = (d.join("c/upper"), d.join("c/work"), d.join("c/merged"));
        mkdirs(&[&upper, &work, &target])?;
        let spec = OverlayMount {
            lowers: vec![r2.clone()],
            lowers_base: None,
            upper_work: Some((upper.clone(), work)),
            options: Vec::new(),
            target: target.clone(),
        };
        let m = mount_overlay(&spec, MountApi::Classic).map_err(|e| e.to_string())?;
        let took = m.elapsed;
        let used = (|| {
            use std::io::Write;
            let mut f = fs::OpenOptions::new()
                .append(true)
                .open(target.join("etc/a"))
                .map_err(io("opening for write", &target.join("etc/a")))?;
            f.write_all(b"+")
                .map_err(io("writing", &target.join("etc/a")))?;
            Ok::<(), String>(())
        })();
        unmount(m.guard)?;
        used?;
        let links = fs::metadata(r1.join("etc/a"))
            .map_err(io("stat", &r1))?
            .nlink();
        let lower = read(&r1.join("etc/a"))?;
        let copied = read(&upper.join("etc/a"))?;
        if lower != "a" || copied != "a+" || links != 2 {
            return Err(format!(
                "after a write through the mount the shared file reads {lower:?} with {links} links and the copy {copied:?}"
            ));
        }
        Ok((
            format!(
                "mounted one lower whose file is a hard link to the layer below ({links} links) in {} µs; the first write copied it up and left the shared inode alone",
                took.as_micros()
            ),
            took,
        ))
    };
    result(LEGACY, run())
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
        let used = (|| {
            let (base, snap) = (m.join("base"), m.join("layer"));
            tool(
                Command::new("btrfs")
                    .args(["subvolume", "create"])
                    .arg(&base),
                "scripts/setup installs btrfs-progs",
            )?;
            write(&base.join("f"), "base")?;
            let started = Instant::now();
            tool(
                Command::new("btrfs")
                    .args(["subvolume", "snapshot"])
                    .arg(&base)
                    .arg(&snap),
                "scripts/setup installs btrfs-progs",
            )?;
            let snap_took = started.elapsed();
            write(&snap.join("f"), "layer")?;
            let (b, s) = (read(&base.join("f"))?, read(&snap.join("f"))?);
            if (b.as_str(), s.as_str()) != ("base", "layer") {
                return Err(format!(
                    "after writing the snapshot's copy the base reads {b:?} and the snapshot {s:?}"
                ));
            }
            Ok(snap_took)
        })();
        unmount(guard)?;
        drop(dev);
        let snap_took = used?;
        Ok((
            format!(
                "made a btrfs filesystem on a loop device, mounted it in {} µs, snapshotted a subvolume in {} ms (btrfs subvolume snapshot) and wrote the snapshot's copy without changing the base",
                took.as_micros(),
                snap_took.as_millis()
            ),
            took,
        ))
    };
    result(BTRFS, run())
}

/// `mkfs.erofs IMG SRC`, then mounts the image read-only at `m` from the file
/// itself (Linux ≥ 6.12), else through a loop device. The loop device, if any,
/// must outlive the mount.
fn erofs_image(
    src: &Path,
    img: &Path,
    m: &Path,
) -> Result<(MountGuard, Option<LoopDevice>, Duration), String> {
    tool(
        Command::new("mkfs.erofs").arg(img).arg(src),
        "scripts/setup installs erofs-utils",
    )?;
    mkdirs(&[m])?;
    let mount = |source: &Path| {
        let started = Instant::now();
        nix::mount::mount(
            Some(source),
            m,
            Some("erofs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map(|()| started.elapsed())
    };
    match mount(img) {
        Ok(took) => Ok((MountGuard::new(m.to_path_buf()), None, took)),
        Err(file_err) => {
            let dev = LoopDevice::attach(img).map_err(|e| {
                format!(
                    "mounting {} from the file: {file_err}; and a loop device: {e}",
                    img.display()
                )
            })?;
            let took = mount(dev.path()).map_err(|e| {
                format!(
                    "mounting {} from the file: {file_err}; from {}: {e}",
                    img.display(),
                    dev.path().display()
                )
            })?;
            Ok((MountGuard::new(m.to_path_buf()), Some(dev), took))
        }
    }
}

/// One layer as an EROFS image under an overlay with an upper, as containerd's
/// EROFS snapshotter mounts a container.
fn erofs(d: &Path) -> FeatureProbe {
    let run = || -> Outcome {
        write(&d.join("src/etc/a"), "erofs")?;
        let (layer, dev, erofs_took) =
            erofs_image(&d.join("src"), &d.join("layer.erofs"), &d.join("layer"))?;
        let (upper, work, target) = (d.join("u"), d.join("w"), d.join("m"));
        mkdirs(&[&upper, &work, &target])?;
        let spec = OverlayMount {
            lowers: vec![d.join("layer")],
            lowers_base: None,
            upper_work: Some((upper.clone(), work)),
            options: Vec::new(),
            target: target.clone(),
        };
        let m = mount_overlay(&spec, MountApi::Classic);
        let outcome = m.map_err(|e| e.to_string()).and_then(|m| {
            let used = use_overlay(&target, &upper, "etc/a", "erofs");
            let took = m.elapsed;
            unmount(m.guard)?;
            used.map(|()| took)
        });
        unmount(layer)?;
        let via = if dev.is_some() {
            "through a loop device"
        } else {
            "from the file"
        };
        drop(dev);
        let took = erofs_took + outcome?;
        Ok((
            format!(
                "mkfs.erofs made a layer image, mounted {} and stacked under overlay in {} µs in all; read the layer's file and wrote into the upper",
                via,
                took.as_micros()
            ),
            took,
        ))
    };
    result(EROFS, run())
}

/// An EROFS metadata image whose file is a metacopy stub redirecting into a
/// content store, mounted as composefs does: the image as the lower, the store
/// as a data-only lower (`::`), `metacopy=on,redirect_dir=on`, read-only.
fn composefs(d: &Path) -> FeatureProbe {
    let run = || -> Outcome {
        let content = "composefs object";
        write(&d.join("objects/ab/cdef"), content)?;
        let stub = d.join("meta/etc/a");
        write(&stub, "")?;
        fs::OpenOptions::new()
            .write(true)
            .open(&stub)
            .and_then(|f| f.set_len(content.len() as u64))
            .map_err(io("sizing", &stub))?;
        xattr::set(&stub, "trusted.overlay.metacopy", b"")
            .map_err(io("setting trusted.overlay.metacopy on", &stub))?;
        xattr::set(&stub, "trusted.overlay.redirect", b"/ab/cdef")
            .map_err(io("setting trusted.overlay.redirect on", &stub))?;
        let (image, dev, erofs_took) =
            erofs_image(&d.join("meta"), &d.join("image.cfs"), &d.join("image"))?;
        let target = d.join("m");
        mkdirs(&[&target])?;
        let data = format!(
            "ro,lowerdir={}::{},metacopy=on,redirect_dir=on",
            d.join("image").display(),
            d.join("objects").display()
        );
        let started = Instant::now();
        let mounted = nix::mount::mount(
            Some("composefs"),
            &target,
            Some("overlay"),
            MsFlags::MS_RDONLY,
            Some(data.as_str()),
        )
        .map(|()| started.elapsed())
        .map_err(|e| format!("overlay with a data-only lower ({data}): {e}"));
        let outcome = mounted.and_then(|took| {
            let guard = MountGuard::new(target.clone());
            let got = read(&target.join("etc/a"));
            unmount(guard)?;
            let got = got?;
            if got == content {
                Ok(took)
            } else {
                Err(format!(
                    "the stub reads {got:?} through the mount, expected the object's {content:?}"
                ))
            }
        });
        unmount(image)?;
        drop(dev);
        let took = erofs_took + outcome?;
        Ok((
            format!(
                "mkfs.erofs made a metadata image of a metacopy stub; mounted it over a content store as a data-only lower in {} µs in all and read the object's data through the stub",
                took.as_micros()
            ),
            took,
        ))
    };
    result(COMPOSEFS, run())
}
