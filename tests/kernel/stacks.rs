//! The EROFS-backed layouts against the kernel and their tools: what they build
//! passes `fsck.erofs`, an EROFS layer keeps overlay's markers and costs a
//! handful of host inodes, composefs stores a shared file once, a real image
//! imports and mounts to umoci's rootfs, and the data-only overlay mounts both
//! ways.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use libtest_mimic::{Failed, Trial};

use overlaybench::image::{
    generate, Change, GeneratorParams, ImageShape, ImageSpec, LayerSpec, SizeRange, SyntheticImage,
};
use overlaybench::isolate::{
    data_only_lowers_available, fsck_erofs, mount_erofs, mount_overlay_with_data, BackingKind,
    ErofsBacking, MountApi, OverlayMount,
};
use overlaybench::layout;
use overlaybench::probe::census::census;

fn image(seed: u64) -> ImageSpec {
    generate(
        &ImageShape::try_from(GeneratorParams {
            seed,
            layers: 4,
            files_per_layer: 60,
            dirs_per_layer: 10,
            sizes: SizeRange {
                min_bytes: 0,
                max_bytes: 100_000,
            },
            modify_pct: 15,
            delete_pct: 10,
            opaque_pct: 25,
            symlink_pct: 5,
        })
        .expect("valid shape"),
    )
}

/// Every layer image passes fsck.erofs; a layer costs its dir, the image and
/// the mountpoint on the host, however many files it holds.
fn erofs_layers_pass_fsck_and_cost_three_inodes() -> Result<(), Failed> {
    let img = image(21);
    let (_tmp, scratch) = crate::scratch(BackingKind::Ext4);
    let l = layout::make("erofs", &crate::config(MountApi::New));
    l.entry()
        .host_support(crate::config(MountApi::New).privilege)?;
    let p = l.prepare(&SyntheticImage::new("t", img), &scratch.path().join("s"))?;
    for fs_dir in &p.layer_dirs {
        let dir = fs_dir.parent().ok_or("layer dir")?;
        fsck_erofs(&dir.join("layer.erofs"))?;
        let c = census(dir)?;
        // dir + fs/ (dirs), layer.erofs (file): nothing of the layer's own files.
        if (c.dirs, c.files, c.distinct_inodes) != (2, 1, 3) {
            return Err(format!("{}: {c:?}", dir.display()).into());
        }
    }
    Ok(())
}

/// Inside a mounted layer image, deleted paths are char 0/0 whiteouts and
/// opaque dirs carry trusted.overlay.opaque, as in the overlay2 diff.
fn erofs_layers_keep_overlay_markers() -> Result<(), Failed> {
    let img = image(11);
    let (_tmp, scratch) = crate::scratch(BackingKind::Ext4);
    let l = layout::make("erofs", &crate::config(MountApi::New));
    let p = l.prepare(
        &SyntheticImage::new("t", img.clone()),
        &scratch.path().join("s"),
    )?;
    // EROFS mounts an image file directly since Linux 6.12; before, through a
    // loop device. The probe says which this kernel does on the same ext4.
    let file_backed = overlaybench::isolate::probe_erofs_backing(&scratch.path().join("probe"))?
        == ErofsBacking::File;
    let (mut whiteouts, mut opaques) = (0, 0);
    for (i, layer) in img.layers.iter().enumerate() {
        let fs_dir = &p.layer_dirs[i];
        let m = mount_erofs(&fs_dir.parent().ok_or("dir")?.join("layer.erofs"), fs_dir)?;
        if file_backed && m.backing != ErofsBacking::File {
            return Err(
                format!("ext4 should serve a file-backed mount, got {:?}", m.backing).into(),
            );
        }
        for c in &layer.changes {
            let superseded = |path: &Path| {
                layer.changes.iter().any(|o| {
                    matches!(o, Change::Delete { path: a } | Change::Opaque { path: a } if a != path && path.starts_with(a))
                })
            };
            match c {
                Change::Delete { path } | Change::Opaque { path } if superseded(path) => {}
                Change::Delete { path } => {
                    let md = fs::symlink_metadata(fs_dir.join(path))?;
                    if !(md.file_type().is_char_device() && md.rdev() == 0) {
                        return Err(format!("{path:?} in layer {i} is not a 0/0 whiteout").into());
                    }
                    whiteouts += 1;
                }
                Change::Opaque { path } => {
                    let v = xattr::get(fs_dir.join(path), "trusted.overlay.opaque")?;
                    if v.as_deref() != Some(b"y".as_slice()) {
                        return Err(format!("{path:?} in layer {i} is not opaque").into());
                    }
                    opaques += 1;
                }
                _ => {}
            }
        }
        m.guard.unmount()?;
    }
    if whiteouts == 0 || opaques == 0 {
        return Err("no whiteouts or opaque dirs were checked".into());
    }
    Ok(())
}

/// Two images holding the same large files in different layers: composefs'
/// store holds each content once; its metadata images pass fsck.erofs.
fn composefs_stores_each_file_once() -> Result<(), Failed> {
    let file = |path: &str, seed| Change::File {
        path: path.into(),
        mode: 0o644,
        size: 100_000,
        seed,
    };
    let a = ImageSpec {
        layers: vec![
            LayerSpec {
                changes: vec![file("x", 1), file("only-a", 7)],
            },
            LayerSpec {
                changes: vec![file("y", 2)],
            },
        ],
    };
    let b = ImageSpec {
        layers: vec![
            LayerSpec {
                changes: vec![file("y", 2), file("z", 2)],
            },
            LayerSpec {
                changes: vec![file("x", 1)],
            },
        ],
    };
    let (_tmp, scratch) = crate::scratch(BackingKind::Ext4);
    let l = layout::make("composefs", &crate::config(MountApi::New));
    l.entry()
        .host_support(crate::config(MountApi::New).privilege)?;
    let store = scratch.path().join("store");
    let pa = l.import(&store, &SyntheticImage::new("a", a))?;
    let pb = l.import(&store, &SyntheticImage::new("b", b))?;
    // x, y (= z) and only-a: three contents.
    let objects = census(&store.join("objects"))?;
    if objects.files != 3 {
        return Err(format!("object store holds {} files, want 3", objects.files).into());
    }
    for (p, names) in [(&pa, ["x", "y"]), (&pb, ["x", "z"])] {
        fsck_erofs(
            &p.layer_dirs[0]
                .parent()
                .ok_or("image dir")?
                .join("image.cfs"),
        )?;
        for n in names {
            let f = l.lower_file(p, Path::new(n)).ok_or("lower file")?;
            if !f.starts_with(store.join("objects")) {
                return Err(
                    format!("{n}'s data is not in the object store: {}", f.display()).into(),
                );
            }
        }
    }
    let same = |n: &str| l.lower_file(&pa, Path::new(n)) == l.lower_file(&pb, Path::new(n));
    if !same("x") || l.lower_file(&pb, Path::new("y")) != l.lower_file(&pb, Path::new("z")) {
        return Err("the same content has two objects".into());
    }
    // A container of each sees its files through the metadata image.
    for (i, p) in [&pa, &pb].into_iter().enumerate() {
        let c = l.create_container(p, &scratch.path().join(format!("c{i}")))?;
        let m = l.mount(p, &c)?;
        let got = fs::read(m.merged.join("x"))?;
        m.unmount()?;
        if got != overlaybench::image::content::bytes(1, 100_000) {
            return Err("x read through composefs differs".into());
        }
    }
    Ok(())
}

/// The real image (umoci-built, whiteouts, opaque dir, hard links, devices,
/// xattrs) imports into each EROFS-backed layout and mounts to umoci's rootfs.
fn real_image_matches_umoci_in_erofs_layouts() -> Result<(), Failed> {
    let f = crate::images::fixture()?;
    let reference = &f.oci_mixed;
    let want = crate::images::no_nlink(crate::images::store_oracle(f, reference));
    for name in ["erofs", "composefs"] {
        let src = crate::images::open(reference)?;
        let (_tmp, scratch) = crate::scratch(BackingKind::Ext4);
        let l = layout::make(name, &crate::config(MountApi::New));
        let p = l.import(&scratch.path().join("store"), &*src)?;
        let c = l.create_container(&p, &scratch.path().join("c"))?;
        let m = l.mount(&p, &c)?;
        let got = crate::images::snapshot(&m.merged);
        m.unmount()?;
        crate::images::diff_trees(
            &format!("{reference} in {name}"),
            &want,
            &crate::images::no_nlink(got?),
        )?;
    }
    Ok(())
}

/// The kernel parses a data-only lower, and an overlay with one mounts by both
/// APIs: a metacopy file's data comes from the data layer via its redirect.
fn data_only_overlay_mounts_both_ways() -> Result<(), Failed> {
    data_only_lowers_available()?;
    let (_tmp, scratch) = crate::scratch(BackingKind::Ext4);
    let d = scratch.path();
    let (lower, data) = (d.join("lower"), d.join("data"));
    fs::create_dir_all(lower.join("d"))?;
    fs::create_dir_all(data.join("ab"))?;
    fs::write(data.join("ab/cdef"), b"object content")?;
    let f = lower.join("d/file");
    fs::File::create(&f)?.set_len(14)?;
    xattr::set(&f, "trusted.overlay.metacopy", b"")?;
    xattr::set(&f, "trusted.overlay.redirect", b"/ab/cdef")?;
    for api in [MountApi::New, MountApi::Classic] {
        let target = d.join(format!("m-{api:?}"));
        let (u, w) = (d.join(format!("u-{api:?}")), d.join(format!("w-{api:?}")));
        for x in [&target, &u, &w] {
            fs::create_dir_all(x)?;
        }
        let m = mount_overlay_with_data(
            &OverlayMount {
                lowers: vec![lower.clone()],
                lowers_base: None,
                upper_work: Some((u, w)),
                options: vec![
                    ("metacopy".into(), Some("on".into())),
                    ("redirect_dir".into(), Some("on".into())),
                ],
                target: target.clone(),
            },
            std::slice::from_ref(&data),
            api,
        )?;
        let got = fs::read(target.join("d/file"));
        m.guard.unmount()?;
        if got? != b"object content" {
            return Err(format!("{api:?}: the data did not come from the data layer").into());
        }
    }
    Ok(())
}

/// composefs' chmod copies metadata only (metacopy=on is always in force);
/// the first write then copies the data from the object.
fn composefs_chmod_defers_the_data_copy() -> Result<(), Failed> {
    use overlaybench::workload::copy_up::keys::Op;
    use overlaybench::workload::copy_up::measure::{check_of, metacopy_in_force, timed};
    const SIZE: u64 = 1 << 20;
    let img = ImageSpec {
        layers: vec![LayerSpec {
            changes: vec![Change::File {
                path: "big".into(),
                mode: 0o644,
                size: SIZE,
                seed: 3,
            }],
        }],
    };
    let (_tmp, scratch) = crate::scratch(BackingKind::Ext4);
    for name in ["composefs", "erofs"] {
        let l = layout::make(name, &crate::config(MountApi::New));
        let p = l.prepare(
            &SyntheticImage::new("t", img.clone()),
            &scratch.path().join(name),
        )?;
        let c = l.create_container(&p, &scratch.path().join(format!("{name}-c")))?;
        let m = l.mount(&p, &c)?;
        let metacopy = metacopy_in_force(m.options_in_force.as_deref());
        if metacopy != (name == "composefs") {
            return Err(format!("{name}: metacopy in force = {metacopy}").into());
        }
        let rel = Path::new("big");
        let file: PathBuf = m.merged.join(rel);
        timed(Op::Chmod, &file, SIZE)?;
        l.verify_copy_up(&p, &c, rel, &check_of(Op::Chmod, SIZE, metacopy))?;
        // The other expectation must fail: the check tells the two apart.
        if l.verify_copy_up(&p, &c, rel, &check_of(Op::Chmod, SIZE, !metacopy))
            .is_ok()
        {
            return Err(format!("{name}: the chmod passed as both kinds of copy").into());
        }
        timed(Op::WriteAfterChmod, &file, SIZE)?;
        l.verify_copy_up(&p, &c, rel, &check_of(Op::WriteAfterChmod, SIZE, metacopy))?;
        let got = fs::read(&file)?;
        m.unmount()?;
        let mut want = overlaybench::image::content::bytes(3, SIZE);
        want[0] = b'x';
        if got != want {
            return Err(format!("{name}: the copied-up file has the wrong content").into());
        }
    }
    Ok(())
}

/// The import workload converts the real image (and its synthetic one) into
/// every layout, layer by layer and whole, beside the mkfs.erofs reference.
fn import_workload_converts_the_real_image() -> Result<(), Failed> {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use overlaybench::image::ImageSource;
    use overlaybench::workload::{
        import, BuildContext, Recorded, RunContext, Suite, WorkloadOptions,
    };

    let f = crate::images::fixture()?;
    let real: Arc<dyn ImageSource> = Arc::from(crate::images::open(&f.oci)?);
    let real_layers = real.info().layers.len();
    let (_tmp, mut scratch) = crate::scratch(BackingKind::Ext4);
    let names = ["overlay2", "erofs", "composefs", "plain"];
    let layouts: Vec<_> = names
        .iter()
        .map(|n| layout::make(n, &crate::config(MountApi::New)))
        .collect();
    let options = WorkloadOptions::default();
    let w = (import::ENTRY.build)(&BuildContext {
        suite: Suite::Quick,
        options: &options,
        backings: &[],
        selected: &[import::NAME],
        seed: 1,
        images: 1,
        synthetic: true,
    })?;
    let mut out = Recorded::default();
    let progress = indicatif::ProgressBar::hidden();
    let interrupted = AtomicBool::new(false);
    let eviction = scratch.eviction(false);
    let mut ctx = RunContext {
        scratch: &mut scratch,
        layouts: &layouts,
        images: &[std::sync::Arc::new(overlaybench::image::IndexedImage::new(
            real.clone(),
        ))],
        backing: "ext4".into(),
        eviction,
        progress: &progress,
        interrupted: &interrupted,
        out: &mut out,
    };
    w.run(&mut ctx)?;
    for name in names.iter().chain([&"mkfs.erofs"]) {
        let layers = out
            .cases
            .iter()
            .filter(|c| {
                c.workload == "import"
                    && c.layout == *name
                    && c.metric == "import_time"
                    && c.param_str("image") == f.oci
                    && c.params.contains_key("layer")
            })
            .count();
        if layers != real_layers {
            return Err(format!("{name}: {layers} layer imports of {real_layers}").into());
        }
    }
    if !out
        .derived
        .iter()
        .any(|d| d.layout == "erofs" && d.kind == "ratio" && d.params.contains_key("same_tree"))
    {
        return Err("no erofs / overlay2 import ratio".into());
    }
    // Nothing left on the scratch filesystem of the stores it made.
    let left = census(&scratch.path().join("import"));
    if left.is_ok_and(|c| c.files > 0) {
        return Err("import left files behind".into());
    }
    Ok(())
}

pub fn tests() -> Vec<Trial> {
    vec![
        trial!(erofs_layers_pass_fsck_and_cost_three_inodes),
        trial!(erofs_layers_keep_overlay_markers),
        trial!(composefs_stores_each_file_once),
        trial!(real_image_matches_umoci_in_erofs_layouts),
        trial!(data_only_overlay_mounts_both_ways),
        trial!(composefs_chmod_defers_the_data_copy),
        trial!(import_workload_converts_the_real_image),
    ]
}
