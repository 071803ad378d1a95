//! copy-up's timed loop. Every sample gets a fresh container (fresh upper/work,
//! fresh mount), so every timed first touch is a real copy-up; afterwards the
//! layout's own markers are checked to hold what the operation must have produced
//! (a full copy, or a metacopy file with its xattr). A layout without copy-up (the
//! baseline) times the same operation on a fresh private copy of the file, and a
//! reference copy (`copy_file_range` + `fsync`, the kernel's fastest path) of the
//! same file on the same filesystem is timed in the same run.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::keys::{Cache, ImageKey, Key, Op, NAME, REFERENCE, REFERENCE_METHOD};
use super::params::{CacheState, Params, Procedure, Variant};
use crate::choice::Choice;
use crate::image::{Change, ImageSpec, LayerSpec, SyntheticImage};
use crate::layout::{ContainerDirs, CopyUp, CopyUpCheck, Layout, PreparedImage, Touch};
use crate::probe::cache;
use crate::workload::harness::{remove_workdir, settle};
use crate::workload::{RunContext, WorkloadError};

/// Times one operation on `path`; nothing but the syscalls is inside the clock.
/// Returns nanoseconds.
pub fn timed(op: Op, path: &Path, size: u64) -> Result<f64, WorkloadError> {
    let start = Instant::now();
    let result = match op {
        Op::FirstWrite | Op::SecondWrite | Op::WriteAfterChmod => OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.write_at(b"x", 0).map(drop)),
        Op::Chmod => fs::set_permissions(path, fs::Permissions::from_mode(0o600)),
        Op::Append => OpenOptions::new()
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(b"x")),
        Op::Truncate => {
            nix::unistd::truncate(path, (size / 2) as i64).map_err(std::io::Error::from)
        }
        Op::Copy => Ok(()),
    };
    let ns = start.elapsed().as_nanos() as f64;
    result.map_err(WorkloadError::io(op.name(), path))?;
    Ok(ns)
}

/// The operations a procedure times, in order.
pub fn ops(p: Procedure) -> &'static [Op] {
    match p {
        Procedure::Write => &[Op::FirstWrite, Op::SecondWrite],
        Procedure::Chmod => &[Op::Chmod, Op::WriteAfterChmod],
        Procedure::Append => &[Op::Append],
        Procedure::Truncate => &[Op::Truncate],
    }
}

/// What an op does to the file, for the layout's own copy-up check.
pub fn touch_of(op: Op) -> Touch {
    match op {
        Op::Chmod => Touch::Chmod,
        Op::Append => Touch::Append,
        Op::Truncate => Touch::Truncate,
        Op::FirstWrite | Op::SecondWrite | Op::WriteAfterChmod | Op::Copy => Touch::Write,
    }
}

/// The check after `op` on a file of `size` bytes: only a chmod under a mount
/// with `metacopy=on` in force asks for a metadata-only copy. The mount says,
/// not the option set asked for: a layout may always mount with metacopy
/// (composefs does).
pub fn check_of(op: Op, size: u64, metacopy_in_force: bool) -> CopyUpCheck {
    CopyUpCheck {
        touch: touch_of(op),
        size_bytes: size,
        metadata_only: metacopy_in_force && op == Op::Chmod,
    }
}

/// Whether a mount's options in force (as mountinfo shows them) defer data
/// copies: `metacopy=on`.
pub fn metacopy_in_force(options_in_force: Option<&str>) -> bool {
    options_in_force.is_some_and(|o| o.split(',').any(|x| x.starts_with("metacopy=on")))
}

fn set_cache(path: &Path, state: CacheState) -> Result<(), WorkloadError> {
    match state {
        CacheState::Cold => cache::evict_file(path).map_err(WorkloadError::io("evicting", path)),
        CacheState::Warm => {
            let mut f = File::open(path).map_err(WorkloadError::io("opening", path))?;
            let mut buf = vec![0u8; 1 << 20];
            while f
                .read(&mut buf)
                .map_err(WorkloadError::io("reading", path))?
                > 0
            {}
            Ok(())
        }
    }
}

fn cache_of(s: CacheState) -> Cache {
    match s {
        CacheState::Cold => Cache::Cold,
        CacheState::Warm => Cache::Warm,
    }
}

/// Whether `layout` is measured with option set `v` (a layout that takes no
/// overlay options runs its defaults only; one that refuses metacopy, without it).
pub fn runs_variant(layout: &dyn Layout, v: Variant) -> bool {
    let c = layout.capabilities();
    if !c.overlay_options {
        return v == Variant::Default;
    }
    c.metacopy || v != Variant::Metacopy
}

/// Fails with exit 3 when the kernel refuses an option set (e.g. metacopy
/// rootless), probing with the first layout that is to run it.
pub fn probe_variants(p: &Params, ctx: &RunContext<'_>, root: &Path) -> Result<(), WorkloadError> {
    let tiny = ImageSpec {
        layers: vec![LayerSpec {
            changes: vec![Change::Dir {
                path: "d".into(),
                mode: 0o755,
            }],
        }],
    };
    for &v in &p.variants {
        let Some(layout) = ctx
            .layouts
            .iter()
            .find(|l| l.capabilities().overlay_options && runs_variant(l.as_ref(), v))
        else {
            continue;
        };
        let Some(l) = layout.with_options(&v.options()) else {
            continue;
        };
        let dir = root.join(format!("probe-{}", v.name()));
        let img = l.prepare(
            &SyntheticImage::new("copy-up-probe", tiny.clone()),
            &dir.join("img"),
        )?;
        let c = l.create_container(&img, &dir.join("c"))?;
        match l.mount(&img, &c) {
            Ok(m) => {
                m.unmount()?;
                l.remove_container(&c)?;
            }
            Err(e) => {
                return Err(WorkloadError::Unsupported(format!(
                    "the kernel refuses the overlay option set '{}': {e}; leave it out of --variants (dmesg may say why)",
                    v.name()
                )))
            }
        }
        fs::remove_dir_all(&dir).map_err(WorkloadError::io("removing", &dir))?;
    }
    Ok(())
}

/// One layout (with an option set) and its prepared image.
struct Subject<'a> {
    layout: Box<dyn Layout>,
    variant: Variant,
    image: &'a PreparedImage,
    /// For a layout without copy-up: its one container, refilled every sample.
    own_container: Option<ContainerDirs>,
}

/// Runs every sample, filling `samples` as it goes (an interrupted run keeps them).
pub fn measure(
    p: &Params,
    ctx: &mut RunContext<'_>,
    samples: &mut BTreeMap<Key, Vec<f64>>,
) -> Result<(), WorkloadError> {
    let root = ctx.scratch.path().join(NAME);
    fs::create_dir_all(&root).map_err(WorkloadError::io("creating", &root))?;
    probe_variants(p, ctx, &root)?;
    ctx.progress.set_message("copy-up: building images");
    let image = SyntheticImage::new("copy-up", p.image());
    let mut prepared = Vec::new();
    for l in ctx.layouts {
        prepared.push(l.prepare(&image, &root.join(l.name()).join("img"))?);
    }
    let mut subjects: Vec<Subject<'_>> = Vec::new();
    for (l, img) in ctx.layouts.iter().zip(&prepared) {
        let caps = l.capabilities();
        if caps.copy_up == CopyUp::None {
            let c = l.create_container(img, &root.join(format!("{}-c", l.name())))?;
            subjects.push(Subject {
                layout: l.with_options(&[]).ok_or_else(|| {
                    WorkloadError::Verify(format!("layout {} cannot be made again", l.name()))
                })?,
                variant: Variant::Default,
                image: img,
                own_container: Some(c),
            });
            continue;
        }
        for &v in &p.variants {
            if !runs_variant(l.as_ref(), v) {
                if caps.overlay_options && p.variants.len() > 1 {
                    ctx.out.note(format!(
                        "{}: copy-up's {} option set is not measured — the layout refuses it (the kernel does)",
                        l.name(),
                        v.name()
                    ));
                }
                continue;
            }
            let Some(layout) = l.with_options(&v.options()) else {
                continue;
            };
            subjects.push(Subject {
                layout,
                variant: v,
                image: img,
                own_container: None,
            });
        }
    }
    // The reference copies the lower file of the same size of the first layout
    // that has it as a host file while no container is mounted.
    let reference_src = |rel: &Path| {
        ctx.layouts
            .iter()
            .zip(&prepared)
            .find(|(l, img)| l.lower_file(img, rel).is_some())
    };
    ctx.progress.set_message("copy-up: measuring");
    let mut n = 0usize;
    for _ in 0..p.samples {
        for &size in &p.sizes {
            let rel = PathBuf::from(Params::file_name(size));
            for &cache_state in &p.caches {
                for s in &subjects {
                    for &proc_ in &p.procedures {
                        ctx.check_interrupted()?;
                        n += 1;
                        let key = |op| Key {
                            layout: s.layout.name().into(),
                            options: s.variant.name(),
                            op,
                            cache: cache_of(cache_state),
                            size,
                        };
                        if let Some(c) = &s.own_container {
                            let file = c.merged.join(&rel);
                            let src = lower_of(s.layout.as_ref(), s.image, &rel)?;
                            // A fresh private file each sample (the last op changed it).
                            fs::remove_file(&file).map_err(WorkloadError::io("removing", &file))?;
                            fs::copy(&src, &file)
                                .map_err(WorkloadError::io("copying to", &file))?;
                            File::open(&file)
                                .and_then(|f| f.sync_all())
                                .map_err(WorkloadError::io("syncing", &file))?;
                            settle(&root)?;
                            set_cache(&file, cache_state)?;
                            for &op in ops(proc_) {
                                let ns = timed(op, &file, size)?;
                                samples.entry(key(op)).or_default().push(ns);
                            }
                            continue;
                        }
                        let dir = root.join(format!("c{n}"));
                        let c = s.layout.create_container(s.image, &dir)?;
                        let mounted = s.layout.mount(s.image, &c)?;
                        lower_of(s.layout.as_ref(), s.image, &rel)?;
                        // Nothing copied yet (checked by the layout's own markers).
                        s.layout.verify_not_copied(s.image, &c, &rel)?;
                        settle(&root)?;
                        // The files whose pages the first touch reads: the lower file
                        // through overlay, the container's own inode on a snapshot.
                        for f in s.layout.data_files(s.image, &c, &rel) {
                            set_cache(&f, cache_state)?;
                        }
                        // Host files that cache the same data (an EROFS image file).
                        for f in s.layout.backing_files(s.image, &rel) {
                            set_cache(&f, cache_state)?;
                        }
                        let file = mounted.merged.join(&rel);
                        let metacopy = metacopy_in_force(mounted.options_in_force.as_deref());
                        for &op in ops(proc_) {
                            let ns = timed(op, &file, size)?;
                            s.layout.verify_copy_up(
                                s.image,
                                &c,
                                &rel,
                                &check_of(op, size, metacopy),
                            )?;
                            samples.entry(key(op)).or_default().push(ns);
                        }
                        mounted.unmount()?;
                        s.layout.remove_container(&c)?;
                    }
                    ctx.progress.inc(1);
                }
                // The reference: copy_file_range + fsync of the same file, same fs.
                if let Some((l, img)) = reference_src(&rel) {
                    let src = lower_of(l.as_ref(), img, &rel)?;
                    settle(&root)?;
                    set_cache(&src, cache_state)?;
                    let dst = root.join("reference-copy");
                    let start = Instant::now();
                    fs::copy(&src, &dst)
                        .and_then(|_| File::open(&dst)?.sync_all())
                        .map_err(WorkloadError::io("reference copy to", &dst))?;
                    let ns = start.elapsed().as_nanos() as f64;
                    fs::remove_file(&dst).map_err(WorkloadError::io("removing", &dst))?;
                    samples
                        .entry(Key {
                            layout: REFERENCE.into(),
                            options: REFERENCE_METHOD,
                            op: Op::Copy,
                            cache: cache_of(cache_state),
                            size,
                        })
                        .or_default()
                        .push(ns);
                }
            }
        }
    }
    Ok(())
}

/// The lower file of `rel` in `img`, or an error naming it (the image was built with it).
fn lower_of(l: &dyn Layout, img: &PreparedImage, rel: &Path) -> Result<PathBuf, WorkloadError> {
    l.lower_file(img, rel).ok_or_else(|| {
        WorkloadError::Verify(format!(
            "{} has no lower file {} in its image at {}",
            l.name(),
            rel.display(),
            img.root.display()
        ))
    })
}

// ---------------------------------------------------------------------------
// The user's images (`--image`): the N largest regular files of each image,
// first-touched in a fresh container per sample, per layout and option set,
// against a reference copy of the same file in the same run.

/// The files timed, per image: the `n` largest regular files, largest first.
pub fn image_files(
    ctx: &RunContext<'_>,
    n: usize,
) -> Result<Vec<Vec<(PathBuf, u64)>>, WorkloadError> {
    ctx.images
        .iter()
        .map(|img| {
            img.index()
                .map(|i| {
                    // Largest first among the files a path can name.
                    let mut files: Vec<(PathBuf, u64)> = i
                        .regular_files()
                        .into_iter()
                        .filter(|(p, s)| *s > 0 && crate::image::index::nameable(p))
                        .map(|(p, s)| (p.to_path_buf(), s))
                        .collect();
                    files.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                    files.truncate(n);
                    files
                })
                .map_err(|e| WorkloadError::Verify(e.to_string()))
        })
        .collect()
}

/// Runs every image sample, filling `samples` as it goes.
pub fn measure_images(
    p: &Params,
    ctx: &mut RunContext<'_>,
    files: &[Vec<(PathBuf, u64)>],
    samples: &mut BTreeMap<ImageKey, Vec<f64>>,
) -> Result<(), WorkloadError> {
    let root = ctx.scratch.path().join("copy-up-images");
    fs::create_dir_all(&root).map_err(WorkloadError::io("creating", &root))?;
    for (ii, img) in ctx.images.iter().enumerate() {
        let files = &files[ii];
        if files.is_empty() {
            continue;
        }
        ctx.progress
            .set_message(format!("copy-up: importing {}", img.reference()));
        let mut prepared = Vec::new();
        for l in ctx.layouts {
            prepared.push(l.prepare(
                img.source().as_ref(),
                &root.join(format!("i{ii}")).join(l.name()).join("img"),
            )?);
        }
        let mut subjects: Vec<Subject<'_>> = Vec::new();
        for (l, prep) in ctx.layouts.iter().zip(&prepared) {
            if l.capabilities().copy_up == CopyUp::None {
                let c = l.create_container(prep, &root.join(format!("i{ii}-{}-c", l.name())))?;
                subjects.push(Subject {
                    layout: l.with_options(&[]).ok_or_else(|| {
                        WorkloadError::Verify(format!("layout {} cannot be made again", l.name()))
                    })?,
                    variant: Variant::Default,
                    image: prep,
                    own_container: Some(c),
                });
                continue;
            }
            // The option sets the synthetic sweep runs (its notes name the others).
            for &v in p.variants.iter().filter(|v| runs_variant(l.as_ref(), **v)) {
                if let Some(layout) = l.with_options(&v.options()) {
                    subjects.push(Subject {
                        layout,
                        variant: v,
                        image: prep,
                        own_container: None,
                    });
                }
            }
        }
        let reference_src = ctx.layouts.first().zip(prepared.first());
        ctx.progress
            .set_message(format!("copy-up: measuring {}", img.reference()));
        let mut n = 0usize;
        for _ in 0..p.image_samples {
            for &cache_state in &p.caches {
                for s in &subjects {
                    for &proc_ in &p.procedures {
                        ctx.check_interrupted()?;
                        n += 1;
                        let key = |op, file| ImageKey {
                            layout: s.layout.name().into(),
                            options: s.variant.name(),
                            op,
                            cache: cache_of(cache_state),
                            image: ii,
                            file,
                        };
                        if let Some(c) = &s.own_container {
                            for (fi, (rel, size)) in files.iter().enumerate() {
                                let file = c.merged.join(rel);
                                let src = lower_of(s.layout.as_ref(), s.image, rel)?;
                                // A fresh private file each sample (the last op changed it).
                                fs::remove_file(&file)
                                    .map_err(WorkloadError::io("removing", &file))?;
                                fs::copy(&src, &file)
                                    .map_err(WorkloadError::io("copying to", &file))?;
                                File::open(&file)
                                    .and_then(|f| f.sync_all())
                                    .map_err(WorkloadError::io("syncing", &file))?;
                                settle(&root)?;
                                set_cache(&file, cache_state)?;
                                for &op in ops(proc_) {
                                    let ns = timed(op, &file, *size)?;
                                    samples.entry(key(op, fi)).or_default().push(ns);
                                }
                            }
                            continue;
                        }
                        // One fresh container per sample: each file's first touch is its copy-up.
                        let dir = root.join(format!("c{n}"));
                        let c = s.layout.create_container(s.image, &dir)?;
                        let mounted = s.layout.mount(s.image, &c)?;
                        for (fi, (rel, size)) in files.iter().enumerate() {
                            lower_of(s.layout.as_ref(), s.image, rel)?;
                            // Nothing copied yet (checked by the layout's own markers).
                            s.layout.verify_not_copied(s.image, &c, rel)?;
                            settle(&root)?;
                            // The files whose pages the first touch reads.
                            for f in s.layout.data_files(s.image, &c, rel) {
                                set_cache(&f, cache_state)?;
                            }
                            for f in s.layout.backing_files(s.image, rel) {
                                set_cache(&f, cache_state)?;
                            }
                            let file = mounted.merged.join(rel);
                            let metacopy = metacopy_in_force(mounted.options_in_force.as_deref());
                            for &op in ops(proc_) {
                                let ns = timed(op, &file, *size)?;
                                s.layout.verify_copy_up(
                                    s.image,
                                    &c,
                                    rel,
                                    &check_of(op, *size, metacopy),
                                )?;
                                samples.entry(key(op, fi)).or_default().push(ns);
                            }
                        }
                        mounted.unmount()?;
                        s.layout.remove_container(&c)?;
                    }
                    ctx.progress.inc(1);
                }
                // The reference: copy_file_range + fsync of each file, same fs.
                if let Some((l, prep)) = reference_src {
                    for (fi, (rel, _)) in files.iter().enumerate() {
                        let src = lower_of(l.as_ref(), prep, rel)?;
                        settle(&root)?;
                        set_cache(&src, cache_state)?;
                        let dst = root.join("reference-copy");
                        let start = Instant::now();
                        fs::copy(&src, &dst)
                            .and_then(|_| File::open(&dst)?.sync_all())
                            .map_err(WorkloadError::io("reference copy to", &dst))?;
                        let ns = start.elapsed().as_nanos() as f64;
                        fs::remove_file(&dst).map_err(WorkloadError::io("removing", &dst))?;
                        samples
                            .entry(ImageKey {
                                layout: REFERENCE.into(),
                                options: REFERENCE_METHOD,
                                op: Op::Copy,
                                cache: cache_of(cache_state),
                                image: ii,
                                file: fi,
                            })
                            .or_default()
                            .push(ns);
                    }
                }
            }
        }
        for s in &subjects {
            if let Some(c) = &s.own_container {
                s.layout.remove_container(c)?;
            }
        }
        drop(subjects);
        // The next image and workload need the room.
        remove_workdir(ctx.layouts, &root.join(format!("i{ii}")))?;
    }
    remove_workdir(ctx.layouts, &root)?;
    Ok(())
}
