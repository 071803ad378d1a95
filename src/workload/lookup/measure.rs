//! lookup's timed loops: the same names through every layout at every depth,
//! interleaved (layout A B C, then the next depth, round after round) so drift
//! cancels. Nothing but the syscalls is inside the clock; every result is checked
//! against the image outside it.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Instant;

use nix::dir::Dir;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode};
use rayon::prelude::*;

use super::analyze::{Cache, Key, Op, StoreKey, Target};
use super::params::Params;
use super::NAME;
use crate::image::SyntheticImage;
use crate::layout::{ContainerDirs, Layout, PreparedImage};
use crate::workload::{RunContext, WorkloadError};

/// One layout's image and container at one depth.
pub struct Fixture {
    /// Image layers.
    pub depth: usize,
    /// Index of the layout in the run.
    pub layout: usize,
    /// The prepared image.
    pub image: PreparedImage,
    /// Its container (mounted afresh for every round).
    pub container: ContainerDirs,
}

/// Builds every (depth, layout) fixture in parallel on every core.
pub fn build_fixtures(p: &Params, ctx: &RunContext<'_>) -> Result<Vec<Fixture>, WorkloadError> {
    let root = ctx.scratch.path().join(NAME);
    let jobs: Vec<(usize, usize)> = p
        .depths
        .iter()
        .flat_map(|&d| (0..ctx.layouts.len()).map(move |l| (d, l)))
        .collect();
    ctx.progress.set_message("lookup: building layouts");
    let layouts = ctx.layouts;
    let progress = ctx.progress;
    jobs.par_iter()
        .map(|&(depth, li)| {
            let layout = &layouts[li];
            let dir = root.join(format!("d{depth}")).join(layout.name());
            let spec = SyntheticImage::new(&format!("lookup-d{depth}"), p.image(depth));
            let image = layout.prepare(&spec, &dir.join("img"))?;
            let container = layout.create_container(&image, &dir.join("c"))?;
            progress.inc(1);
            Ok(Fixture {
                depth,
                layout: li,
                image,
                container,
            })
        })
        .collect()
}

/// Times a container's start-up: `create_container` + `mount` + open and read
/// of each start-up file; returns (ns, bytes read). The container is then
/// unmounted and removed (outside the clock) and its removal settled.
fn time_startup(
    layout: &dyn Layout,
    f: &Fixture,
    dir: &Path,
    p: &Params,
    buf: &mut [u8],
) -> Result<(f64, u64), WorkloadError> {
    let names: Vec<std::path::PathBuf> = (0..p.startup_files)
        .map(|i| Path::new(&Params::startup_file(i)).to_path_buf())
        .collect();
    let mut read = 0u64;
    let start = Instant::now();
    let c = layout.create_container(&f.image, dir)?;
    let mounted = layout.mount(&f.image, &c)?;
    for n in &names {
        let mut file = File::open(mounted.merged.join(n))
            .map_err(|e| WorkloadError::io("opening", mounted.merged.join(n))(e))?;
        loop {
            let got = file
                .read(buf)
                .map_err(|e| WorkloadError::io("reading", mounted.merged.join(n))(e))?;
            if got == 0 {
                break;
            }
            read += got as u64;
        }
    }
    let ns = start.elapsed().as_nanos() as f64;
    mounted.unmount()?;
    layout.remove_container(&c)?;
    layout.settle_removals(dir.parent().unwrap_or(dir))?;
    Ok((ns, read))
}

/// Times `stat` of each name relative to `dir`; returns (ns, unexpected results).
fn time_stats(dir: &File, names: &[CString], expect_found: bool) -> (f64, usize) {
    let fd = dir.as_raw_fd();
    let mut unexpected = 0;
    let start = Instant::now();
    for n in names {
        let found = fstatat(Some(fd), n.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW).is_ok();
        unexpected += usize::from(found != expect_found);
    }
    (start.elapsed().as_nanos() as f64, unexpected)
}

/// Times open + full read + close of directory `name` under `parent`; returns (ns, entries).
fn time_readdir(parent: &File, name: &CString) -> Result<(f64, usize), nix::Error> {
    let start = Instant::now();
    let mut dir = Dir::openat(
        Some(parent.as_raw_fd()),
        name.as_c_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let entries = dir.iter().count();
    drop(dir);
    Ok((start.elapsed().as_nanos() as f64, entries))
}

fn open_dir(path: &Path) -> Result<File, WorkloadError> {
    File::open(path).map_err(WorkloadError::io("opening", path))
}

fn cstrings(names: impl Iterator<Item = String>) -> Vec<CString> {
    // Generated names are ASCII without NUL.
    names.filter_map(|n| CString::new(n).ok()).collect()
}

/// The samples gathered so far, and how many results contradicted the image.
#[derive(Debug, Default)]
pub struct Samples {
    /// Per series, in measurement order.
    pub series: BTreeMap<Key, Vec<f64>>,
    /// Lookups whose result the image does not describe.
    pub unexpected: usize,
}

/// Runs every round over the fixtures, filling `s` as it goes (so an interrupted
/// run keeps what it measured).
pub fn measure(
    p: &Params,
    ctx: &mut RunContext<'_>,
    fixtures: &[Fixture],
    s: &mut Samples,
) -> Result<(), WorkloadError> {
    let names: BTreeMap<Target, Vec<CString>> = Target::STAT
        .iter()
        .map(|&t| {
            let missing = t == Target::Missing;
            (
                t,
                cstrings((0..p.names).map(|i| Params::name_of(missing, i))),
            )
        })
        .collect();
    let readdir_names = cstrings((0..p.readdir_dirs).map(|j| format!("r{j}")));
    let mut buf = vec![0u8; 1 << 16];
    ctx.progress.set_message("lookup: measuring");
    for round in 0..p.rounds {
        for &depth in &p.depths {
            for f in fixtures.iter().filter(|f| f.depth == depth) {
                ctx.check_interrupted()?;
                let layout = &ctx.layouts[f.layout];
                let key = |op, target, cache| Key {
                    layout: f.layout,
                    op,
                    target,
                    cache,
                    depth,
                };
                ctx.evict()?;
                // Start-up first, while everything is cold: a fresh container made and
                // mounted, and its first reads (files nothing else here touches).
                let dir = f.container.root.with_file_name(format!("start-{round}"));
                let (ns, read) = time_startup(layout.as_ref(), f, &dir, p, &mut buf)?;
                s.unexpected += usize::from(read != p.startup_files as u64 * p.startup_file_bytes);
                s.series
                    .entry(key(Op::Startup, Target::Stack, Cache::Cold))
                    .or_default()
                    .push(ns);
                let mounted = layout.mount(&f.image, &f.container)?;
                if crate::fault::hit("lookup-mounted").is_some() {
                    return Err(WorkloadError::Verify(
                        "injected fault at lookup-mounted".into(),
                    ));
                }
                if let Some(t) = mounted.mount_time {
                    s.series
                        .entry(key(Op::Mount, Target::Stack, Cache::Cold))
                        .or_default()
                        .push(t.as_nanos() as f64);
                }
                if let Some(opts) = &mounted.options_in_force {
                    ctx.out
                        .options_in_force
                        .entry(layout.name().into())
                        .or_insert_with(|| opts.clone());
                }
                let dirs: BTreeMap<Target, File> = Target::STAT
                    .iter()
                    .map(|&t| Ok((t, open_dir(&mounted.merged.join(t.dir()))?)))
                    .collect::<Result<_, WorkloadError>>()?;
                let root = open_dir(&mounted.merged)?;
                // Cold: each name once, batches of the three targets interleaved.
                for chunk in 0..p.names / p.batch {
                    for t in Target::STAT {
                        let batch = &names[&t][chunk * p.batch..(chunk + 1) * p.batch];
                        let (ns, bad) = time_stats(&dirs[&t], batch, t.found());
                        s.unexpected += bad;
                        s.series
                            .entry(key(Op::Stat, t, Cache::Cold))
                            .or_default()
                            .push(ns / p.batch as f64);
                    }
                }
                let expected_entries = depth * p.entries_per_layer + 2;
                let readdir = |cache, s: &mut Samples| -> Result<(), WorkloadError> {
                    for n in &readdir_names {
                        let (ns, entries) = time_readdir(&root, n).map_err(|e| {
                            WorkloadError::io(
                                "reading dir",
                                mounted.merged.join(n.to_string_lossy().as_ref()),
                            )(e.into())
                        })?;
                        s.unexpected += usize::from(entries != expected_entries);
                        s.series
                            .entry(key(Op::Readdir, Target::Spread, cache))
                            .or_default()
                            .push(ns);
                    }
                    Ok(())
                };
                readdir(Cache::Cold, s)?;
                // Warm: the same names again, now in the dentry cache.
                for _ in 0..p.warm_repeats {
                    for t in Target::STAT {
                        let (ns, bad) = time_stats(&dirs[&t], &names[&t], t.found());
                        s.unexpected += bad;
                        s.series
                            .entry(key(Op::Stat, t, Cache::Warm))
                            .or_default()
                            .push(ns / p.names as f64);
                    }
                }
                readdir(Cache::Warm, s)?;
                drop((dirs, root));
                mounted.unmount()?;
                ctx.progress.inc(1);
                // Tests send a real signal here, once samples exist (no sleeping).
                crate::fault::hit("lookup-measured");
            }
        }
    }
    Ok(())
}

/// Times open + 1-byte read + close of each name relative to `dir` (the
/// file's data reached for the first time); returns ns and failures.
fn time_opens(dir: &File, names: &[CString]) -> (f64, usize) {
    let fd = dir.as_raw_fd();
    let mut failed = 0;
    let mut byte = [0u8; 1];
    let start = Instant::now();
    for n in names {
        match nix::fcntl::openat(
            Some(fd),
            n.as_c_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(f) => {
                failed += usize::from(!matches!(nix::unistd::read(f, &mut byte), Ok(1)));
                let _ = nix::unistd::close(f);
            }
            Err(_) => failed += 1,
        }
    }
    (start.elapsed().as_nanos() as f64, failed)
}

/// The store sweep: for each number N of images sharing one store, every
/// layout holds N images (one layer each, the same names, each image's own
/// content) and a container of image 0 is mounted afresh each round: cold
/// `stat` and cold first open of its names, then warm, in half as many rounds as
/// the depth sweep. A data-only lower is
/// looked up only when a file's data is first reached, so composefs' `stat`
/// never touches the object store; `open` does. Fills `s` as it goes.
pub fn measure_store(
    p: &Params,
    ctx: &mut RunContext<'_>,
    s: &mut BTreeMap<StoreKey, Vec<f64>>,
    unexpected: &mut usize,
) -> Result<(), WorkloadError> {
    let root = ctx.scratch.path().join(NAME).join("store");
    let names = cstrings((0..p.names).map(|i| Params::name_of(false, i)));
    let mut imported = 0usize;
    let mut fixtures: Vec<(PreparedImage, ContainerDirs)> = Vec::new();
    for &n in &p.store_images {
        ctx.progress
            .set_message(format!("lookup: {n} images sharing a store"));
        // Grow every layout's store to n images (image 0 is the one looked up).
        for (li, layout) in ctx.layouts.iter().enumerate() {
            let store = root.join(layout.name());
            for i in imported..n {
                let img = layout.import(
                    &store,
                    &SyntheticImage::new(&format!("lookup-store-{i}"), p.store_image(i)),
                )?;
                if i == 0 {
                    let c = layout.create_container(&img, &root.join(format!("c-{li}")))?;
                    fixtures.push((img, c));
                }
            }
        }
        imported = n;
        // Half the depth sweep's rounds: each cold round remounts the backing.
        for _round in 0..p.rounds.div_ceil(2) {
            for (li, layout) in ctx.layouts.iter().enumerate() {
                ctx.check_interrupted()?;
                let (img, c) = &fixtures[li];
                let key = |op, cache| StoreKey {
                    layout: li,
                    op,
                    cache,
                    images: n,
                };
                ctx.evict()?;
                let mounted = layout.mount(img, c)?;
                let dir = open_dir(&mounted.merged.join("b"))?;
                for chunk in 0..p.names / p.batch {
                    let batch = &names[chunk * p.batch..(chunk + 1) * p.batch];
                    let (ns, bad) = time_stats(&dir, batch, true);
                    *unexpected += bad;
                    s.entry(key(Op::Stat, Cache::Cold))
                        .or_default()
                        .push(ns / p.batch as f64);
                    let (ns, bad) = time_opens(&dir, batch);
                    *unexpected += bad;
                    s.entry(key(Op::Open, Cache::Cold))
                        .or_default()
                        .push(ns / p.batch as f64);
                }
                for _ in 0..p.warm_repeats {
                    let (ns, bad) = time_stats(&dir, &names, true);
                    *unexpected += bad;
                    s.entry(key(Op::Stat, Cache::Warm))
                        .or_default()
                        .push(ns / p.names as f64);
                    let (ns, bad) = time_opens(&dir, &names);
                    *unexpected += bad;
                    s.entry(key(Op::Open, Cache::Warm))
                        .or_default()
                        .push(ns / p.names as f64);
                }
                drop(dir);
                mounted.unmount()?;
            }
        }
        ctx.progress.inc(1);
    }
    Ok(())
}
