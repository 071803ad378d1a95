//! Mount mechanics against the kernel: the 500-layer limit, the classic option
//! length guard, backings, and that dropping a scratch fs leaves nothing behind.

use std::path::PathBuf;

use libtest_mimic::{Failed, Trial};

use overlaybench::image::SyntheticImage;
use overlaybench::image::{Change, ImageSpec, LayerSpec};
use overlaybench::isolate::{BackingKind, IsolateError, MountApi, MountInfo};
use overlaybench::layout::{self, LayoutError, MAX_LOWER_LAYERS};

/// An image of `depth` layers, each adding one file.
fn thin_image(depth: usize) -> ImageSpec {
    ImageSpec {
        layers: (0..depth)
            .map(|i| LayerSpec {
                changes: vec![Change::File {
                    path: PathBuf::from(format!(
                        "layer-{i:03}-with-a-long-name-to-fill-the-options"
                    )),
                    mode: 0o644,
                    size: 3,
                    seed: i as u64,
                }],
            })
            .collect(),
    }
}

fn deepest_stack_mounts_with_the_new_api() -> Result<(), Failed> {
    let (_tmp, scratch) = crate::scratch(BackingKind::Ext4);
    let l = layout::make("overlay2", &crate::config(MountApi::New));
    let img = l.prepare(
        &SyntheticImage::new("test", thin_image(MAX_LOWER_LAYERS).clone()),
        &scratch.path().join("deep"),
    )?;
    let c = l.create_container(&img, &scratch.path().join("c"))?;
    let m = l.mount(&img, &c)?;
    // Every layer's file is visible: the whole stack is in force, nothing was cut.
    let visible = std::fs::read_dir(&m.merged)?.count();
    m.unmount()?;
    if visible != MAX_LOWER_LAYERS {
        return Err(format!("{visible} of {MAX_LOWER_LAYERS} layers visible").into());
    }
    Ok(())
}

fn past_the_limit_is_refused() -> Result<(), Failed> {
    let (_tmp, scratch) = crate::scratch(BackingKind::Tmpfs);
    let l = layout::make("overlay2", &crate::config(MountApi::New));
    match l.prepare(
        &SyntheticImage::new("test", thin_image(MAX_LOWER_LAYERS + 1).clone()),
        &scratch.path().join("x"),
    ) {
        Err(LayoutError::TooDeep {
            depth: 501,
            limit: 500,
        }) => Ok(()),
        other => Err(format!("expected TooDeep, got {other:?}").into()),
    }
}

fn classic_api_refuses_rather_than_cuts() -> Result<(), Failed> {
    let (_tmp, scratch) = crate::scratch(BackingKind::Tmpfs);
    let l = layout::make("overlay2", &crate::config(MountApi::Classic));
    let shallow = l.prepare(
        &SyntheticImage::new("test", thin_image(3).clone()),
        &scratch.path().join("shallow"),
    )?;
    let c = l.create_container(&shallow, &scratch.path().join("c1"))?;
    let m = l.mount(&shallow, &c)?;
    let n = std::fs::read_dir(&m.merged)?.count();
    m.unmount()?;
    if n != 3 {
        return Err(format!("classic mount shows {n} of 3 layers").into());
    }
    let deep = l.prepare(
        &SyntheticImage::new("test", thin_image(200).clone()),
        &scratch.path().join("deep"),
    )?;
    let c = l.create_container(&deep, &scratch.path().join("c2"))?;
    match l.mount(&deep, &c) {
        Err(LayoutError::Isolate(IsolateError::OptionsTooLong { len, limit, .. }))
            if len > limit => {}
        other => return Err(format!("expected OptionsTooLong, got {other:?}").into()),
    }
    if !crate::common::mounts_under(&c.merged).is_empty() {
        return Err("a refused mount left something mounted".into());
    }
    Ok(())
}

fn classic_api_mounts_128_layers_from_relative_links() -> Result<(), Failed> {
    let (_tmp, scratch) = crate::scratch(BackingKind::Ext4);
    let l = layout::make("overlay2", &crate::config(MountApi::Classic));
    for depth in [64, 128] {
        let img = l.prepare(
            &SyntheticImage::new("thin", thin_image(depth)),
            &scratch.path().join(format!("d{depth}")),
        )?;
        let c = l.create_container(&img, &scratch.path().join(format!("c{depth}")))?;
        let m = l.mount(&img, &c)?;
        let opts = m.options_in_force.clone().unwrap_or_default();
        let visible = std::fs::read_dir(&m.merged)?.count();
        m.unmount()?;
        if visible != depth || !opts.contains("lowerdir=l/") {
            return Err(format!("classic depth {depth}: {visible} visible, options {opts}").into());
        }
    }
    // The working directory of the process never moved.
    if std::env::current_dir()? == scratch.path() {
        return Err("the process's cwd was changed".into());
    }
    Ok(())
}

fn a_busy_unmount_is_detached_and_counted() -> Result<(), Failed> {
    let (_tmp, scratch) = crate::scratch(BackingKind::Tmpfs);
    let l = layout::make("overlay2", &crate::config(MountApi::New));
    let img = l.prepare(
        &SyntheticImage::new("thin", thin_image(2)),
        &scratch.path().join("i"),
    )?;
    let c = l.create_container(&img, &scratch.path().join("c"))?;
    let m = l.mount(&img, &c)?;
    // An open file keeps the mount busy for as long as the retries last.
    let busy = std::fs::File::open(
        m.merged
            .join("layer-000-with-a-long-name-to-fill-the-options"),
    )?;
    let before = overlaybench::isolate::detached_unmounts();
    m.unmount()?;
    drop(busy);
    if overlaybench::isolate::detached_unmounts() != before + 1 {
        return Err("the busy unmount was not detached and counted".into());
    }
    if !crate::common::mounts_under(&c.merged).is_empty() {
        return Err("still mounted after a detach".into());
    }
    Ok(())
}

fn every_backing_mounts_and_is_removed() -> Result<(), Failed> {
    for kind in [
        BackingKind::Ext4,
        BackingKind::Xfs,
        BackingKind::Btrfs,
        BackingKind::Tmpfs,
    ] {
        let (tmp, scratch) = crate::scratch(kind.clone());
        let fstype = scratch.info().fstype.clone();
        if fstype != kind.to_string() {
            return Err(format!("{kind}: mounted as {fstype:?}").into());
        }
        if matches!(
            kind,
            BackingKind::Ext4 | BackingKind::Xfs | BackingKind::Btrfs
        ) && scratch.info().device.is_none()
        {
            return Err(format!("{kind}: no loop device recorded").into());
        }
        // Leave an overlay mounted on purpose: dropping the scratch must take it too.
        let l = layout::make("overlay2", &crate::config(MountApi::New));
        let img = l.prepare(
            &SyntheticImage::new("test", thin_image(2).clone()),
            &scratch.path().join("i"),
        )?;
        let c = l.create_container(&img, &scratch.path().join("c"))?;
        std::mem::forget(l.mount(&img, &c)?);
        let usage = scratch.usage()?;
        if kind == BackingKind::Btrfs {
            // btrfs has no inode count; its bytes come from SPACE_INFO.
            if usage.used_inodes != 0
                || usage.metadata_bytes.unwrap_or(0) == 0
                || usage.used_bytes == 0
            {
                return Err(format!("btrfs: unexpected usage {usage:?}").into());
            }
        } else if usage.used_inodes == 0 {
            return Err(format!("{kind}: statvfs shows no inodes in use").into());
        }
        drop(scratch);
        crate::common::assert_nothing_left(tmp.path(), 5);
        let left = crate::common::run_dirs(&tmp.path().join("scratch"));
        if !left.is_empty() {
            return Err(format!("{kind}: run dirs left: {left:?}").into());
        }
    }
    Ok(())
}

fn remount_evicts_and_keeps_data() -> Result<(), Failed> {
    let (_tmp, mut scratch) = crate::scratch(BackingKind::Ext4);
    std::fs::write(scratch.path().join("kept"), b"data")?;
    let before = MountInfo::current()?
        .at(scratch.path())
        .map(|e| e.source.clone());
    scratch.remount()?;
    let after = MountInfo::current()?
        .at(scratch.path())
        .map(|e| e.source.clone());
    if std::fs::read(scratch.path().join("kept"))? != b"data" || before != after || before.is_none()
    {
        return Err(format!("remount lost data or device: {before:?} → {after:?}").into());
    }
    Ok(())
}

/// containerd's classic mounts: absolute lowerdirs while the options stay
/// under 3584 bytes, relative to snapshots/ (mounted from a child whose cwd is
/// there) beyond — and deep stacks mount whole either way.
fn containerd_classic_goes_relative_when_long() -> Result<(), Failed> {
    let (_tmp, scratch) = crate::scratch(BackingKind::Ext4);
    let l = layout::make("containerd", &crate::config(MountApi::Classic));
    let cwd_before = std::env::current_dir()?;
    for depth in [3usize, 64, 200] {
        let img = l.prepare(
            &SyntheticImage::new("test", thin_image(depth).clone()),
            &scratch.path().join(format!("store-{depth}")),
        )?;
        let c = l.create_container(&img, &scratch.path().join(format!("c{depth}")))?;
        let m = l.mount(&img, &c)?;
        let visible = std::fs::read_dir(&m.merged)?.count();
        let opts = m.options_in_force.clone().unwrap_or_default();
        m.unmount()?;
        if visible != depth {
            return Err(format!("{visible} of {depth} layers visible").into());
        }
        let lowerdir = opts
            .split(',')
            .find_map(|o| o.strip_prefix("lowerdir="))
            .unwrap_or_default()
            .to_string();
        let relative = !lowerdir.starts_with('/');
        if relative != (depth > 3) {
            return Err(format!("depth {depth}: lowerdir in force {lowerdir:.80}…").into());
        }
        if relative && !lowerdir.starts_with(&format!("{}/fs:", img.layer_dirs.len())) {
            return Err(format!("depth {depth}: not containerd's form: {lowerdir:.80}").into());
        }
    }
    if std::env::current_dir()? != cwd_before {
        return Err("the process's cwd changed".into());
    }
    Ok(())
}

/// Rootless: made in a user namespace, attached here, marked user.overlay.*.
fn rootless_mounts_with_userxattr() -> Result<(), Failed> {
    let (_tmp, scratch) = crate::scratch(BackingKind::Ext4);
    let l = layout::make("rootless", &crate::config(MountApi::New));
    let img = l.prepare(
        &SyntheticImage::new("test", thin_image(4).clone()),
        &scratch.path().join("store"),
    )?;
    let c = l.create_container(&img, &scratch.path().join("c"))?;
    let m = l.mount(&img, &c)?;
    let opts = m.options_in_force.clone().unwrap_or_default();
    let visible = std::fs::read_dir(&m.merged)?.count();
    std::fs::write(m.merged.join("new"), b"x")?;
    std::fs::remove_file(
        m.merged
            .join("layer-000-with-a-long-name-to-fill-the-options"),
    )?;
    m.unmount()?;
    if !opts.split(',').any(|o| o == "userxattr") || visible != 4 {
        return Err(format!("{visible} layers visible, options {opts}").into());
    }
    // A deletion leaves a char 0/0 whiteout; the upper dir's markers are user.*.
    let (upper, _) = c.upper_work.clone().ok_or("no upper")?;
    let wh =
        std::fs::symlink_metadata(upper.join("layer-000-with-a-long-name-to-fill-the-options"))?;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if !(wh.file_type().is_char_device() && wh.rdev() == 0) {
        return Err("the deletion left no whiteout".into());
    }
    let names: Vec<String> = xattr::list(&upper)?
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    if names.iter().any(|n| n.starts_with("trusted.overlay.")) {
        return Err(format!("trusted.overlay.* markers in a rootless upper: {names:?}").into());
    }
    Ok(())
}

/// fuse-overlayfs: the daemon serves the mount, and both an unmount and a
/// plain drop leave no mount and no daemon.
fn fuse_daemon_goes_with_its_mount() -> Result<(), Failed> {
    let (tmp, scratch) = crate::scratch(BackingKind::Ext4);
    let l = layout::make("fuse-overlayfs", &crate::config(MountApi::New));
    let img = l.prepare(
        &SyntheticImage::new("test", thin_image(3).clone()),
        &scratch.path().join("store"),
    )?;
    for (i, drop_only) in [false, true].into_iter().enumerate() {
        let c = l.create_container(&img, &scratch.path().join(format!("c{i}")))?;
        let m = l.mount(&img, &c)?;
        let visible = std::fs::read_dir(&m.merged)?.count();
        if visible != 3 || crate::common::processes_mentioning(tmp.path()).is_empty() {
            return Err(format!("{visible} of 3 layers visible, or no daemon").into());
        }
        if drop_only {
            drop(m);
        } else {
            m.unmount()?;
        }
        crate::common::assert_no_process_mentions(tmp.path(), 10);
        if !crate::common::mounts_under(&c.merged).is_empty() {
            return Err("the FUSE mount outlived its guard".into());
        }
    }
    Ok(())
}

pub fn tests() -> Vec<Trial> {
    vec![
        trial!(containerd_classic_goes_relative_when_long),
        trial!(rootless_mounts_with_userxattr),
        trial!(fuse_daemon_goes_with_its_mount),
        trial!(deepest_stack_mounts_with_the_new_api),
        trial!(past_the_limit_is_refused),
        trial!(classic_api_refuses_rather_than_cuts),
        trial!(classic_api_mounts_128_layers_from_relative_links),
        trial!(a_busy_unmount_is_detached_and_counted),
        trial!(every_backing_mounts_and_is_removed),
        trial!(remount_evicts_and_keeps_data),
    ]
}
