//! lookup's timed loops: the same names through every layout at every depth,
//! interleaved (layout A B C, then the next depth, round after round) so drift
//! cancels. Nothing but the syscalls is inside the clock; every result is checked
//! against the image outside it.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::time::Instant;

use nix::dir::Dir;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};
use rayon::prelude::*;

use super::keys::{Cache, ImageKey, Key, Op, StoreKey, Target, NAME};
use super::params::Params;
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

/// The calibration directories: for each stat target, a plain directory on
/// the backing filesystem itself holding the found names (none of the missing
/// ones). Each batch of a layout's cold lookups is followed by the same names
/// looked up here, cold too, so a lookup's cost can be divided by the backing's
/// cost of the same lookup taken a few milliseconds later: what the machine's
/// load does to both cancels (docs/ci-gate.md has the measurements).
pub fn calibration_dir(scratch: &Path, t: Target) -> std::path::PathBuf {
    scratch.join(NAME).join("calibration").join(t.dir())
}

fn build_calibration(p: &Params, scratch: &Path) -> Result<(), WorkloadError> {
    for t in Target::STAT {
        let dir = calibration_dir(scratch, t);
        std::fs::create_dir_all(&dir).map_err(WorkloadError::io("creating", &dir))?;
        if t.found() {
            for i in 0..p.names {
                let f = dir.join(Params::name_of(false, i));
                File::create(&f).map_err(WorkloadError::io("creating", &f))?;
            }
        }
    }
    Ok(())
}

/// Builds every (depth, layout) fixture in parallel on every core, and the
/// calibration directories.
pub fn build_fixtures(p: &Params, ctx: &RunContext<'_>) -> Result<Vec<Fixture>, WorkloadError> {
    let root = ctx.scratch.path().join(NAME);
    build_calibration(p, ctx.scratch.path())?;
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
    /// Per cold stat series, the same names looked up in the calibration
    /// directory right after each batch: index `i` pairs with `series[k][i]`.
    pub reference: BTreeMap<Key, Vec<f64>>,
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
                let calibration: BTreeMap<Target, File> = Target::STAT
                    .iter()
                    .map(|&t| Ok((t, open_dir(&calibration_dir(ctx.scratch.path(), t))?)))
                    .collect::<Result<_, WorkloadError>>()?;
                // Cold: each name once, batches of the three targets interleaved,
                // each batch followed by its calibration (cold as well: the
                // backing was remounted before this mount).
                for chunk in 0..p.names / p.batch {
                    for t in Target::STAT {
                        let batch = &names[&t][chunk * p.batch..(chunk + 1) * p.batch];
                        let (ns, bad) = time_stats(&dirs[&t], batch, t.found());
                        let (cal, cal_bad) = time_stats(&calibration[&t], batch, t.found());
                        s.unexpected += bad + cal_bad;
                        let k = key(Op::Stat, t, Cache::Cold);
                        s.series.entry(k).or_default().push(ns / p.batch as f64);
                        s.reference.entry(k).or_default().push(cal / p.batch as f64);
                    }
                }
                drop(calibration);
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

// ---------------------------------------------------------------------------
// The user's images (`--image`): every path of each image, stat'ed cold and
// warm through each layout, grouped by the layer it lives in; and a whole-tree
// walk (readdir + lstat of every entry, what `find` does).

/// One layout's copy of one of the user's images, and a container of it.
pub struct ImageFixture {
    /// Index of the image in the run.
    pub image: usize,
    /// Index of the layout in the run.
    pub layout: usize,
    /// The prepared image.
    pub prepared: PreparedImage,
    /// Its container (mounted afresh for every round).
    pub container: ContainerDirs,
}

/// Imports every image into every layout (in parallel on every core) and
/// makes a container of each.
pub fn build_image_fixtures(ctx: &RunContext<'_>) -> Result<Vec<ImageFixture>, WorkloadError> {
    let root = ctx.scratch.path().join("lookup-images");
    let jobs: Vec<(usize, usize)> = (0..ctx.images.len())
        .flat_map(|i| (0..ctx.layouts.len()).map(move |l| (i, l)))
        .collect();
    ctx.progress.set_message("lookup: importing the images");
    let (layouts, images) = (ctx.layouts, ctx.images);
    jobs.par_iter()
        .map(|&(ii, li)| {
            let layout = &layouts[li];
            let dir = root.join(format!("i{ii}")).join(layout.name());
            let prepared = layout.prepare(images[ii].source().as_ref(), &dir.join("img"))?;
            let container = layout.create_container(&prepared, &dir.join("c"))?;
            Ok(ImageFixture {
                image: ii,
                layout: li,
                prepared,
                container,
            })
        })
        .collect()
}

/// The names of one image to stat: every path but device nodes (a rootless
/// layout skips them), in path order (parents first), with their layer.
pub struct ImageNames {
    /// (path, layer) in path order.
    pub paths: Vec<(CString, usize)>,
    /// Per layer, its paths in path order.
    pub by_layer: BTreeMap<usize, Vec<CString>>,
    /// Image layers.
    pub layers: usize,
}

impl ImageNames {
    /// From an image's index.
    pub fn of(index: &crate::image::ImageIndex) -> ImageNames {
        use std::os::unix::ffi::OsStrExt;
        let mut paths = Vec::new();
        let mut by_layer: BTreeMap<usize, Vec<CString>> = BTreeMap::new();
        for (p, n) in index.paths() {
            if n.kind == crate::image::index::PathKind::Device {
                continue;
            }
            // Paths from a tar never hold NUL (the sources refuse them).
            let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
                continue;
            };
            by_layer.entry(n.layer).or_default().push(c.clone());
            paths.push((c, n.layer));
        }
        ImageNames {
            paths,
            by_layer,
            layers: index.info().layers.len(),
        }
    }
}

/// What the image rounds gathered so far.
#[derive(Debug, Default)]
pub struct ImageSamples {
    /// Per series, in measurement order.
    pub series: BTreeMap<ImageKey, Vec<f64>>,
    /// Names (per image and layer) and walk entries (per image) measured.
    pub counts: BTreeMap<(usize, Option<usize>), usize>,
    /// Results the image does not describe (a name missing, a walk's count off).
    pub unexpected: usize,
}

/// Walks the tree under `dir` (an open directory): reads every directory
/// and lstat's every entry; returns the entries seen, device nodes excluded.
///
/// Iterative, in the order a recursion would take (a directory's entries,
/// then its subdirectories one by one, depth first): an image may nest
/// directories as deep as a path allows. A level's fd stays open only while
/// it has subdirectories left to visit, so a deep chain holds one or two fds.
fn walk(dir: RawFd) -> Result<usize, nix::Error> {
    let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut count = 0;
    // Levels with subdirectories left: the open level and those names, in
    // reverse so the next is at the end.
    let mut stack: Vec<(Dir, Vec<CString>)> = Vec::new();
    let mut current = Dir::openat(Some(dir), ".", flags, Mode::empty())?;
    loop {
        let mut subdirs = Vec::new();
        let fd = current.as_raw_fd();
        for e in current.iter() {
            let e = e?;
            let name = e.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let st = fstatat(Some(fd), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
            match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
                SFlag::S_IFDIR => subdirs.push(name.to_owned()),
                SFlag::S_IFCHR | SFlag::S_IFBLK => continue,
                _ => {}
            }
            count += 1;
        }
        if !subdirs.is_empty() {
            subdirs.reverse();
            stack.push((current, subdirs));
        }
        // The next subdirectory to visit, from the deepest level with one left.
        current = loop {
            let Some((parent, names)) = stack.last_mut() else {
                return Ok(count);
            };
            match names.pop() {
                Some(name) => {
                    let sub = Dir::openat(
                        Some(parent.as_raw_fd()),
                        name.as_c_str(),
                        flags,
                        Mode::empty(),
                    )?;
                    if names.is_empty() {
                        stack.pop();
                    }
                    break sub;
                }
                None => {
                    stack.pop();
                }
            }
        };
    }
}

/// Runs every round over the image fixtures, filling `s` as it goes.
pub fn measure_images(
    p: &Params,
    ctx: &mut RunContext<'_>,
    fixtures: &[ImageFixture],
    names: &[ImageNames],
    s: &mut ImageSamples,
) -> Result<(), WorkloadError> {
    ctx.progress.set_message("lookup: measuring the images");
    let rounds = p.image_rounds;
    for (ii, n) in names.iter().enumerate() {
        for (layer, v) in &n.by_layer {
            s.counts.insert((ii, Some(*layer)), v.len());
        }
        s.counts.insert((ii, None), n.paths.len());
    }
    let open_root = |merged: &Path| -> Result<File, WorkloadError> {
        File::open(merged).map_err(WorkloadError::io("opening", merged))
    };
    for _round in 0..rounds {
        for f in fixtures {
            ctx.check_interrupted()?;
            let layout = &ctx.layouts[f.layout];
            let n = &names[f.image];
            let key = |op, layer, cache| ImageKey {
                layout: f.layout,
                image: f.image,
                op,
                layer,
                cache,
            };
            // Cold: each name once, in path order (its parents resolved just
            // before it), each stat timed alone and summed per layer in batches.
            ctx.evict()?;
            let mounted = layout.mount(&f.prepared, &f.container)?;
            let root = open_root(&mounted.merged)?;
            let mut open: BTreeMap<usize, (f64, usize)> = BTreeMap::new();
            for (name, layer) in &n.paths {
                let start = Instant::now();
                let r = fstatat(
                    Some(root.as_raw_fd()),
                    name.as_c_str(),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                );
                let ns = start.elapsed().as_nanos() as f64;
                s.unexpected += usize::from(r.is_err());
                let acc = open.entry(*layer).or_insert((0.0, 0));
                acc.0 += ns;
                acc.1 += 1;
                if acc.1 == p.batch {
                    let (sum, count) = std::mem::take(acc);
                    s.series
                        .entry(key(Op::Stat, Some(*layer), Cache::Cold))
                        .or_default()
                        .push(sum / count as f64);
                }
            }
            for (layer, (sum, count)) in open {
                if count > 0 {
                    s.series
                        .entry(key(Op::Stat, Some(layer), Cache::Cold))
                        .or_default()
                        .push(sum / count as f64);
                }
            }
            // Warm: the same names again, cached, timed per batch of a layer's names.
            for (layer, v) in &n.by_layer {
                for chunk in v.chunks(p.batch) {
                    let start = Instant::now();
                    let mut bad = 0;
                    for name in chunk {
                        bad += usize::from(
                            fstatat(
                                Some(root.as_raw_fd()),
                                name.as_c_str(),
                                AtFlags::AT_SYMLINK_NOFOLLOW,
                            )
                            .is_err(),
                        );
                    }
                    let ns = start.elapsed().as_nanos() as f64;
                    s.unexpected += bad;
                    s.series
                        .entry(key(Op::Stat, Some(*layer), Cache::Warm))
                        .or_default()
                        .push(ns / chunk.len() as f64);
                }
            }
            drop(root);
            mounted.unmount()?;
            // The whole tree, cold then warm.
            ctx.evict()?;
            let mounted = layout.mount(&f.prepared, &f.container)?;
            let root = open_root(&mounted.merged)?;
            for cache in [Cache::Cold, Cache::Warm] {
                let start = Instant::now();
                let seen = walk(root.as_raw_fd())
                    .map_err(|e| WorkloadError::io("walking", &mounted.merged)(e.into()))?;
                let ns = start.elapsed().as_nanos() as f64;
                s.unexpected += usize::from(seen != n.paths.len());
                s.series
                    .entry(key(Op::Walk, None, cache))
                    .or_default()
                    .push(ns);
            }
            drop(root);
            mounted.unmount()?;
            ctx.progress.inc(1);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::fsops::{deep_chain, on_small_stack, remove_deep};

    /// 2,100 levels on a 256 KiB stack: the recursive walk overflowed it.
    #[test]
    fn walks_a_tree_deeper_than_the_stack() {
        let d = tempfile::tempdir().expect("tempdir");
        deep_chain(d.path(), 2100).expect("deep chain");
        let root = d.path().to_path_buf();
        let seen = on_small_stack(move || {
            let fd = File::open(&root).map_err(|e| e.to_string())?;
            walk(fd.as_raw_fd()).map_err(|e| e.to_string())
        })
        .expect("walk");
        // 2,100 directories, the file and the symlink.
        assert_eq!(seen, 2102);
        remove_deep(d.path());
    }
}
