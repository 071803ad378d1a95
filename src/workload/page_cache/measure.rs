//! page-cache's measurement: K containers of one image read every file of the
//! set (one after the other, then all at once on every core); residency is then
//! read from the kernel (`mincore` on every distinct file that backs what they
//! read, /proc/meminfo, the memory cgroup). Then half of them copy the set up
//! (one byte each) and all read again. Eviction between phases is targeted:
//! `posix_fadvise` DONTNEED on exactly these files.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::keys::{copied_up, Phase, Reading, DISK_ADDED, NAME, RESIDENT};
use super::params::Params;
use crate::image::SyntheticImage;
use crate::layout::LayoutError;
use crate::layout::{ContainerDirs, Layout, Mounted, PreparedImage};
use crate::probe::cache;
use crate::probe::memory::Memory;
use crate::probe::residency::{resident_distinct, MemoryCgroup};
use crate::workload::harness::settle;
use crate::workload::{RunContext, WorkloadError};

fn read_all(path: &Path) -> Result<u64, WorkloadError> {
    let mut f = File::open(path).map_err(WorkloadError::io("opening", path))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let r = f
            .read(&mut buf)
            .map_err(WorkloadError::io("reading", path))?;
        if r == 0 {
            return Ok(n);
        }
        n += r as u64;
    }
}

/// One container of the set.
struct Reader {
    dirs: ContainerDirs,
    mount: Mounted,
}

/// Every distinct file whose pages hold what `readers` see of `names` now.
fn data_files(
    layout: &dyn Layout,
    img: &PreparedImage,
    readers: &[Reader],
    names: &[String],
) -> Vec<PathBuf> {
    // A set, not `Vec::contains`: a real image's set has thousands of files and
    // --cache-files 100000 × K readers would be quadratic (10^10 comparisons, hours).
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<PathBuf> = Vec::new();
    for r in readers {
        add_cache_files(layout, img, &r.dirs, names, &mut seen, &mut out);
    }
    out
}

/// Adds to `out` (once each, `seen` holding what is in it) the files whose
/// pages hold `names` as container `c` of `img` sees them: the data files, and
/// the host files that cache the same data again (an EROFS layer's image file).
fn add_cache_files(
    layout: &dyn Layout,
    img: &PreparedImage,
    c: &ContainerDirs,
    names: &[String],
    seen: &mut std::collections::HashSet<PathBuf>,
    out: &mut Vec<PathBuf>,
) {
    for n in names {
        let rel = Path::new(n);
        let files = layout
            .data_files(img, c, rel)
            .into_iter()
            .chain(layout.backing_files(img, rel));
        for f in files {
            if seen.insert(f.clone()) {
                out.push(f);
            }
        }
    }
}

/// Bytes in use on the scratch filesystem, after writing back what is dirty.
fn used_bytes(ctx: &RunContext<'_>, root: &Path) -> Result<f64, WorkloadError> {
    settle(root)?;
    Ok(ctx.scratch.usage()?.used_bytes as f64)
}

/// Measures every layout at every K, appending to `readings` as it goes (an
/// interrupted run keeps what it measured).
pub fn measure(
    p: &Params,
    ctx: &mut RunContext<'_>,
    cgroup: Option<&MemoryCgroup>,
    readings: &mut Vec<Reading>,
) -> Result<(), WorkloadError> {
    let spec = SyntheticImage::new("page-cache", p.image());
    let set = ReadSet {
        source: &spec,
        names: p.file_names(),
        image: None,
    };
    let root = ctx.scratch.path().join(NAME);
    measure_set(&p.containers, ctx, cgroup, &set, &root, readings)
}

/// Measures each of the user's images: K containers reading its read set
/// (`sets[i]`, chosen by `Params::read_set`), in every layout.
pub fn measure_user_images(
    p: &Params,
    ctx: &mut RunContext<'_>,
    cgroup: Option<&MemoryCgroup>,
    sets: &[super::params::ImageReadSet],
    readings: &mut Vec<Reading>,
) -> Result<(), WorkloadError> {
    let images = ctx.images;
    for (ii, (img, chosen)) in images.iter().zip(sets).enumerate() {
        if chosen.names.is_empty() {
            continue;
        }
        let set = ReadSet {
            source: img.source().as_ref(),
            names: chosen.names.clone(),
            image: Some(ii),
        };
        let root = ctx
            .scratch
            .path()
            .join("page-cache-images")
            .join(format!("i{ii}"));
        measure_set(&p.containers, ctx, cgroup, &set, &root, readings)?;
        // The next image and workload need the room.
        crate::workload::harness::remove_workdir(ctx.layouts, &root)?;
    }
    Ok(())
}

/// What the containers read: files of an image.
pub struct ReadSet<'a> {
    /// The image.
    pub source: &'a dyn crate::image::ImageSource,
    /// Paths of the files read, in the image.
    pub names: Vec<String>,
    /// Index of the user's image in the run (None: the synthetic set).
    pub image: Option<usize>,
}

/// Measures `set` in every layout at every K of `ks`, under `root`,
/// appending to `readings` as it goes.
pub fn measure_set(
    ks: &[usize],
    ctx: &mut RunContext<'_>,
    cgroup: Option<&MemoryCgroup>,
    set: &ReadSet<'_>,
    root: &Path,
    readings: &mut Vec<Reading>,
) -> Result<(), WorkloadError> {
    let root = root.to_path_buf();
    let names = &set.names;
    ctx.progress.set_message("page-cache: building images");
    for (li, layout) in ctx.layouts.iter().enumerate() {
        let name = layout.name();
        let img = layout.prepare(set.source, &root.join(name).join("img"))?;
        // Every lower file, evicted between phases even when no reader uses it now.
        let lower: Vec<PathBuf> = names
            .iter()
            .filter_map(|n| layout.lower_file(&img, Path::new(n)))
            .collect();
        for &k in ks {
            ctx.check_interrupted()?;
            ctx.progress
                .set_message(format!("page-cache: {name}, {k} containers"));
            // Disk blocks the containers add (statvfs): plain copies cost the set
            // K times on ext4 but share blocks on xfs (reflink), unlike their pages.
            let used_before = used_bytes(ctx, &root)?;
            let mut readers = Vec::new();
            for i in 0..k {
                let dirs =
                    layout.create_container(&img, &root.join(name).join(format!("k{k}-c{i}")))?;
                let mount = layout.mount(&img, &dirs)?;
                readers.push(Reader { dirs, mount });
            }
            let evict = |readers: &[Reader]| -> Result<(), WorkloadError> {
                settle(&root)?;
                for f in lower
                    .iter()
                    .chain(&data_files(layout.as_ref(), &img, readers, names))
                {
                    cache::evict_file(f).map_err(WorkloadError::io("evicting", f))?;
                }
                Ok(())
            };
            let measure = |phase: Phase,
                           readers: &[Reader],
                           out: &mut Vec<Reading>|
             -> Result<(), WorkloadError> {
                let files = data_files(layout.as_ref(), &img, readers, names);
                let before_cached = Memory::current().map(|m| m.cached_bytes);
                let before_cg = cgroup.and_then(|c| c.file_bytes());
                let read_one = |r: &Reader| {
                    names
                        .iter()
                        .try_for_each(|n| read_all(&r.mount.merged.join(n)).map(drop))
                };
                if phase == Phase::ReadConcurrent {
                    readers.par_iter().try_for_each(read_one)?;
                } else {
                    readers.iter().try_for_each(read_one)?;
                }
                let (resident, inodes) = resident_distinct(&files).map_err(WorkloadError::io(
                    "reading residency (mincore) under",
                    &root,
                ))?;
                let mut push = |metric, value, unit| {
                    out.push(Reading {
                        layout: li,
                        image: set.image,
                        containers: k,
                        phase,
                        metric,
                        value,
                        unit,
                    })
                };
                push(RESIDENT, resident as f64, "bytes");
                push("backing_files", inodes as f64, "files");
                if let (Some(b), Some(a)) =
                    (before_cached, Memory::current().map(|m| m.cached_bytes))
                {
                    push("meminfo_cached_delta_bytes", a as f64 - b as f64, "bytes");
                }
                if let (Some(b), Some(a)) = (before_cg, cgroup.and_then(|c| c.file_bytes())) {
                    push("cgroup_file_delta_bytes", a as f64 - b as f64, "bytes");
                }
                Ok(())
            };
            evict(&readers)?;
            measure(Phase::Read, &readers, readings)?;
            evict(&readers)?;
            measure(Phase::ReadConcurrent, &readers, readings)?;
            // Break sharing: half the containers (at least one) copy the set up.
            for r in readers.iter().take(copied_up(k)) {
                for n in names {
                    // Each copy-up fsyncs: 100000 files take minutes, so a stop
                    // request is honoured between files, not only between steps.
                    ctx.check_interrupted()?;
                    let path = r.mount.merged.join(n);
                    OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.write_at(b"w", 0).map(drop))
                        .map_err(WorkloadError::io("writing", &path))?;
                }
            }
            evict(&readers)?;
            measure(Phase::AfterCopyUp, &readers, readings)?;
            let used_after = used_bytes(ctx, &root)?;
            readings.push(Reading {
                layout: li,
                image: set.image,
                containers: k,
                phase: Phase::AfterCopyUp,
                metric: DISK_ADDED,
                value: used_after - used_before,
                unit: "bytes",
            });
            for r in readers {
                r.mount.unmount()?;
                layout.remove_container(&r.dirs)?;
            }
            layout.settle_removals(&root)?;
            ctx.progress.inc(1);
        }
    }
    Ok(())
}

/// The multi-image case: for each layout and each M, M images holding the same
/// files in different layers (no layer shared) are imported into one store,
/// one container of each mounted, and every container reads the set; residency
/// is read over every distinct file that backs what they read. Layouts that
/// store a file once by content share it across images; layer stores cannot.
pub fn measure_images(
    p: &Params,
    ctx: &mut RunContext<'_>,
    cgroup: Option<&MemoryCgroup>,
    readings: &mut Vec<Reading>,
) -> Result<(), WorkloadError> {
    let root = ctx.scratch.path().join(NAME).join("images");
    let names = p.file_names();
    for (li, layout) in ctx.layouts.iter().enumerate() {
        for &m in &p.images {
            ctx.check_interrupted()?;
            ctx.progress.set_message(format!(
                "page-cache: {}, {m} images sharing files",
                layout.name()
            ));
            let dir = root.join(layout.name()).join(format!("m{m}"));
            let store = dir.join("store");
            let images = (0..m)
                .map(|i| {
                    layout.import(
                        &store,
                        &SyntheticImage::new(&format!("page-cache-image-{i}"), p.image_variant(i)),
                    )
                })
                .collect::<Result<Vec<PreparedImage>, LayoutError>>()?;
            let mut readers: Vec<(usize, Reader)> = Vec::new();
            for (i, img) in images.iter().enumerate() {
                let dirs = layout.create_container(img, &dir.join(format!("c{i}")))?;
                let mount = layout.mount(img, &dirs)?;
                readers.push((i, Reader { dirs, mount }));
            }
            let mut files = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for (i, r) in &readers {
                add_cache_files(
                    layout.as_ref(),
                    &images[*i],
                    &r.dirs,
                    &names,
                    &mut seen,
                    &mut files,
                );
                for n in &names {
                    if let Some(f) = layout.lower_file(&images[*i], Path::new(n)) {
                        if seen.insert(f.clone()) {
                            files.push(f);
                        }
                    }
                }
            }
            settle(&root)?;
            for f in &files {
                cache::evict_file(f).map_err(WorkloadError::io("evicting", f))?;
            }
            let before_cached = Memory::current().map(|m| m.cached_bytes);
            let before_cg = cgroup.and_then(|c| c.file_bytes());
            for (_, r) in &readers {
                for n in &names {
                    read_all(&r.mount.merged.join(n))?;
                }
            }
            let (resident, inodes) = resident_distinct(&files).map_err(WorkloadError::io(
                "reading residency (mincore) under",
                &root,
            ))?;
            let mut push = |metric, value, unit| {
                readings.push(Reading {
                    layout: li,
                    image: None,
                    containers: m,
                    phase: Phase::MultiImage,
                    metric,
                    value,
                    unit,
                })
            };
            push(RESIDENT, resident as f64, "bytes");
            push("backing_files", inodes as f64, "files");
            if let (Some(b), Some(a)) = (before_cached, Memory::current().map(|m| m.cached_bytes)) {
                push("meminfo_cached_delta_bytes", a as f64 - b as f64, "bytes");
            }
            if let (Some(b), Some(a)) = (before_cg, cgroup.and_then(|c| c.file_bytes())) {
                push("cgroup_file_delta_bytes", a as f64 - b as f64, "bytes");
            }
            for (_, r) in readers {
                r.mount.unmount()?;
            }
            std::fs::remove_dir_all(&dir).map_err(WorkloadError::io("removing", &dir))?;
            ctx.progress.inc(1);
        }
    }
    Ok(())
}
