//! storm's pieces against the kernel: idmapped lowers (per layer and at the
//! common parent) show the mapped owner and add nothing to the mount table; a
//! mount without the read-back is still a real mount; a storm of real threads
//! leaves no mount and no dir behind.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use libtest_mimic::{Failed, Trial};

use overlaybench::image::SyntheticImage;
use overlaybench::isolate::{
    probe_idmapped_overlay, BackingKind, IdRange, Idmap, IdmapMode, MountApi, MountHow, MountInfo,
    UserNamespace,
};
use overlaybench::layout;
use overlaybench::workload::storm::measure::{storm, Fixture};
use overlaybench::workload::storm::{HostLimits, Options, Params};
use overlaybench::workload::Suite;

fn params() -> Params {
    Params::resolve(Suite::Quick, &Options::default(), &HostLimits::read()).expect("params")
}

fn image(depth: usize) -> SyntheticImage {
    SyntheticImage::new(&format!("storm-{depth}"), params().image(depth))
}

/// Mount-table lines at or below `dir` (other tests mount elsewhere meanwhile).
fn lines_under(dir: &Path) -> usize {
    MountInfo::current().expect("mountinfo").under(dir).count()
}

fn idmapped_lowers_show_the_mapped_owner(mode: IdmapMode) -> Result<(), Failed> {
    let (_tmp, scratch) = crate::scratch(BackingKind::Ext4);
    let ns = UserNamespace::with_map(IdRange::POD)?;
    probe_idmapped_overlay(&scratch.path().join("probe"), &ns)?;
    let l = layout::make("overlay2", &crate::config(MountApi::New));
    let depth = 6;
    let img = l.prepare(&image(depth), &scratch.path().join("img"))?;
    let c = l.create_container(&img, &scratch.path().join("c"))?;
    let before = lines_under(scratch.path());
    let how = MountHow {
        idmap: Some(Idmap { userns: &ns, mode }),
        read_back: true,
    };
    let m = l.mount_as(&img, &c, &how)?;
    // One line: the overlay; the clones are detached and passed by fd.
    let added = lines_under(scratch.path()) - before;
    let shown = std::fs::metadata(m.merged.join("etc/hostname"))?.uid();
    let on_disk = std::fs::metadata(img.layer_dirs[depth - 1].join("etc/hostname"))?.uid();
    let lowers = overlaybench::isolate::mountinfo::overlay_lowers(
        m.options_in_force.as_deref().unwrap_or(""),
    )
    .len();
    m.unmount()?;
    if added != 1 {
        return Err(
            format!("the idmapped mount added {added} mount-table lines, 1 expected").into(),
        );
    }
    if Some(shown) != IdRange::POD.shown_as(on_disk) {
        return Err(format!("uid {on_disk} on disk shows as {shown} through the idmap").into());
    }
    if lowers != depth {
        return Err(format!("{lowers} lowers in force, {depth} expected").into());
    }
    Ok(())
}

fn a_mount_without_read_back_is_real() -> Result<(), Failed> {
    let (_tmp, scratch) = crate::scratch(BackingKind::Tmpfs);
    let l = layout::make("overlay2", &crate::config(MountApi::New));
    let img = l.prepare(&image(3), &scratch.path().join("img"))?;
    let c = l.create_container(&img, &scratch.path().join("c"))?;
    let quiet = MountHow {
        idmap: None,
        read_back: false,
    };
    let m = l.mount_as(&img, &c, &quiet)?;
    let seen = MountInfo::current()?
        .at(&m.merged)
        .map(|e| e.fstype.clone());
    let unread = m.options_in_force.is_none();
    let visible = m.merged.join("usr/lib/lib2.so").exists();
    m.unmount()?;
    if seen.as_deref() != Some("overlay") || !unread || !visible {
        return Err(
            format!("fstype {seen:?}, options unread {unread}, file visible {visible}").into(),
        );
    }
    // A layout without lowers refuses an idmap rather than ignoring it.
    let plain = layout::make("plain", &crate::config(MountApi::New));
    let ns = UserNamespace::with_map(IdRange::POD)?;
    let pimg = plain.prepare(&image(2), &scratch.path().join("pimg"))?;
    let pc = plain.create_container(&pimg, &scratch.path().join("pc"))?;
    let how = MountHow {
        idmap: Some(Idmap {
            userns: &ns,
            mode: IdmapMode::PerLayer,
        }),
        read_back: true,
    };
    match plain.mount_as(&pimg, &pc, &how) {
        Err(e) if e.to_string().contains("cannot idmap") => Ok(()),
        other => Err(format!("plain with an idmap: {other:?}").into()),
    }
}

fn a_storm_leaves_nothing_behind() -> Result<(), Failed> {
    let (_tmp, scratch) = crate::scratch(BackingKind::Ext4);
    for name in ["overlay2", "plain"] {
        let l = layout::make(name, &crate::config(MountApi::New));
        let depth = 4;
        let dir = scratch.path().join(name);
        let image = l.prepare(&image(depth), &dir.join("img"))?;
        let containers = dir.join("c");
        std::fs::create_dir_all(&containers)?;
        let f = Fixture {
            layout: 0,
            depth,
            image,
            containers: containers.clone(),
            ops: Params::read_set(depth),
            owned: "etc/hostname".into(),
        };
        let how = MountHow {
            idmap: None,
            read_back: false,
        };
        let (round, unexpected) = storm(l.as_ref(), &f, 8, &how, &Params::read_set(depth))?;
        let left_mounts = MountInfo::current()?.under(&containers).count();
        let left_dirs = std::fs::read_dir(&containers)?.count();
        if round.ready_ns.len() != 8 || round.stop_ns.len() != 8 || unexpected != 0 {
            return Err(format!("{name}: {round:?}, {unexpected} unexpected lookups").into());
        }
        if round.wall_ns <= 0.0 || round.ready_ns.iter().any(|&t| t > round.wall_ns) {
            return Err(format!("{name}: wall {} vs {:?}", round.wall_ns, round.ready_ns).into());
        }
        if left_mounts + left_dirs > 0 {
            return Err(format!(
                "{name}: {left_mounts} mounts and {left_dirs} dirs left under {}",
                Path::new(&containers).display()
            )
            .into());
        }
    }
    Ok(())
}

/// This module's tests.
pub fn tests() -> Vec<Trial> {
    vec![
        Trial::test("storm::idmapped_lowers_per_layer", || {
            idmapped_lowers_show_the_mapped_owner(IdmapMode::PerLayer)
        }),
        Trial::test("storm::idmapped_lowers_at_the_common_parent", || {
            idmapped_lowers_show_the_mapped_owner(IdmapMode::CommonParent)
        }),
        trial!(a_mount_without_read_back_is_real),
        trial!(a_storm_leaves_nothing_behind),
    ]
}
