//! storm's timed loops.
//!
//! A storm: C real threads wait at a gate; when it opens, each creates its
//! container's dirs, mounts its stack (idmapped when asked) and looks up its
//! start-up read set — its time to ready runs from the gate's opening, so
//! waiting for a core or for the kernel's mount lock counts, as it does for a
//! pod. When all are ready a second gate opens and all stop at once (unmount +
//! remove). Points are interleaved (layout A B C, then the next idmap mode,
//! concurrency and depth, round after round) so drift cancels.
//!
//! The mount table: N containers of one layout stay mounted (under one bind
//! mount of their parent dir, so that one lazy detach removes them all on every
//! exit path), then /proc/self/mountinfo is read and parsed, and one more
//! container is mounted and unmounted. Results are checked outside the clock.

use std::fs::{self, File};
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use rayon::prelude::*;

use super::keys::{Idmap, Key, Round, Samples, TablePoint, NAME};
use super::params::{Params, ReadOp, STACK_BYTES};
use crate::image::{IndexedImage, StartupReads, SyntheticImage};
use crate::isolate::{IdmapMode, MountGuard, MountHow, MountInfo, UserNamespace};
use crate::layout::{ContainerDirs, Layout, Mounted, PreparedImage};
use crate::workload::{RunContext, WorkloadError};

/// One layout's image at one depth.
pub struct Fixture {
    /// Index of the layout in the run.
    pub layout: usize,
    /// Image layers.
    pub depth: usize,
    /// The prepared image.
    pub image: PreparedImage,
    /// Where its containers go.
    pub containers: PathBuf,
    /// What each of its starting containers reads.
    pub ops: Vec<ReadOp>,
    /// A file of the image whose owner the idmapped mounts are checked by.
    pub owned: PathBuf,
}

/// Builds every (depth, layout) image in parallel on every core.
pub fn build_fixtures(
    p: &Params,
    ctx: &RunContext<'_>,
    depths: &[usize],
    tag: &str,
) -> Result<Vec<Fixture>, WorkloadError> {
    let root = ctx.scratch.path().join(NAME);
    let jobs: Vec<(usize, usize)> = depths
        .iter()
        .flat_map(|&d| (0..ctx.layouts.len()).map(move |l| (d, l)))
        .collect();
    let layouts = ctx.layouts;
    jobs.par_iter()
        .map(|&(depth, li)| {
            let layout = &layouts[li];
            let dir = root.join(layout.name()).join(format!("{tag}{depth}"));
            let spec = SyntheticImage::new(&format!("storm-{tag}{depth}"), p.image(depth));
            let image = layout.prepare(&spec, &dir.join("img"))?;
            let containers = dir.join("c");
            fs::create_dir_all(&containers).map_err(WorkloadError::io("creating", &containers))?;
            Ok(Fixture {
                layout: li,
                depth,
                image,
                containers,
                ops: Params::read_set(depth),
                owned: PathBuf::from("etc/hostname"),
            })
        })
        .collect()
}

/// Imports the user's image into each of `layouts` (indexes into the run's),
/// in parallel: containers of it read `reads`, what its own start read.
pub fn build_image_fixtures(
    ctx: &RunContext<'_>,
    image: &IndexedImage,
    reads: &StartupReads,
    layouts: &[usize],
) -> Result<Vec<Fixture>, WorkloadError> {
    let root = ctx.scratch.path().join(NAME);
    let depth = image.info().layers.len().max(1);
    let ops: Vec<ReadOp> = reads
        .paths
        .iter()
        .map(|p| ReadOp {
            path: p.clone(),
            exists: true,
            open: true,
        })
        .collect();
    let owned = ops.first().map(|o| o.path.clone()).ok_or_else(|| {
        WorkloadError::Verify(format!(
            "the start-up read set of {} holds no file",
            image.reference()
        ))
    })?;
    let all = ctx.layouts;
    layouts
        .par_iter()
        .map(|&li| {
            let layout = &all[li];
            let dir = root.join(layout.name()).join("image");
            let prepared = layout.prepare(image.source().as_ref(), &dir.join("img"))?;
            let containers = dir.join("c");
            fs::create_dir_all(&containers).map_err(WorkloadError::io("creating", &containers))?;
            Ok(Fixture {
                layout: li,
                depth,
                image: prepared,
                containers,
                ops: ops.clone(),
                owned: owned.clone(),
            })
        })
        .collect()
}

/// A gate threads wait at until it opens (or the storm is called off).
struct Gate {
    state: Mutex<GateState>,
    cv: Condvar,
}

#[derive(Default)]
struct GateState {
    start: bool,
    stop: bool,
    abort: bool,
    ready: usize,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            state: Mutex::new(GateState::default()),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // A poisoned lock only means a storm thread panicked; the state is plain flags.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `which` opens; false when the storm was called off.
    fn wait(&self, which: fn(&GateState) -> bool) -> bool {
        let mut s = self.lock();
        while !which(&s) && !s.abort {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        !s.abort || which(&s)
    }

    fn set(&self, f: impl FnOnce(&mut GateState)) {
        f(&mut self.lock());
        self.cv.notify_all();
    }

    fn wait_ready(&self, n: usize) {
        let mut s = self.lock();
        while s.ready < n {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// How one container of a storm went.
struct Container {
    ready: Instant,
    stopped: Instant,
    unexpected: usize,
    error: Option<WorkloadError>,
    panic: Option<Box<dyn std::any::Any + Send>>,
}

/// Looks up the read set under `root` as a starting process would; returns how
/// many results contradict the image.
pub fn read_set(root: &Path, ops: &[ReadOp]) -> usize {
    let mut unexpected = 0;
    let mut buf = [0u8; 4096];
    // The image's paths are resolved below the container's root only (no
    // symlink followed, no other mount reached): a user's image is not trusted.
    let Ok(dir) = File::open(root) else {
        return ops.len();
    };
    for op in ops {
        let found = if op.open {
            crate::isolate::open_read_beneath(dir.as_fd(), &op.path)
                .and_then(|mut f| f.read(&mut buf))
                .is_ok()
        } else {
            root.join(&op.path).symlink_metadata().is_ok()
        };
        unexpected += usize::from(found != op.exists);
    }
    unexpected
}

/// Starts one container: dirs, mount, read set.
fn start(
    layout: &dyn Layout,
    f: &Fixture,
    root: &Path,
    how: &MountHow<'_>,
    ops: &[ReadOp],
) -> Result<(ContainerDirs, Mounted, usize), WorkloadError> {
    let dirs = layout.create_container(&f.image, root)?;
    let m = layout.mount_as(&f.image, &dirs, how)?;
    let bad = read_set(&m.merged, ops);
    Ok((dirs, m, bad))
}

/// Stops one container: unmount, remove its dirs (whatever of them exists).
fn stop(root: &Path, started: Option<Mounted>) -> Result<(), WorkloadError> {
    if let Some(m) = started {
        m.unmount()?;
    }
    match fs::remove_dir_all(root) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(WorkloadError::io("removing", root)(e))
        }
        _ => Ok(()),
    }
}

/// One storm of `c` containers of `f`; the containers are gone when it returns.
pub fn storm(
    layout: &dyn Layout,
    f: &Fixture,
    c: usize,
    how: &MountHow<'_>,
    ops: &[ReadOp],
) -> Result<(Round, usize), WorkloadError> {
    let gate = Gate::new();
    let mut release = Instant::now();
    let mut stop_release = Instant::now();
    let results: Vec<Container> = std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(c);
        let mut spawn_error = None;
        for i in 0..c {
            let gate = &gate;
            let root = f.containers.join(format!("c{i}"));
            let spawned = std::thread::Builder::new()
                .name(format!("storm-{i}"))
                .stack_size(STACK_BYTES)
                .spawn_scoped(s, move || {
                    if !gate.wait(|g| g.start) {
                        let now = Instant::now();
                        return Container {
                            ready: now,
                            stopped: now,
                            unexpected: 0,
                            error: None,
                            panic: None,
                        };
                    }
                    // A panic must still reach the gates, or the others wait forever.
                    let started = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        start(layout, f, &root, how, ops)
                    }));
                    let ready = Instant::now();
                    gate.set(|g| g.ready += 1);
                    gate.wait(|g| g.stop);
                    let (mounted, unexpected, mut error, panic) = match started {
                        Ok(Ok((_, m, bad))) => (Some(m), bad, None, None),
                        Ok(Err(e)) => (None, 0, Some(e), None),
                        Err(p) => (None, 0, None, Some(p)),
                    };
                    if let Err(e) = stop(&root, mounted) {
                        error.get_or_insert(e);
                    }
                    Container {
                        ready,
                        stopped: Instant::now(),
                        unexpected,
                        error,
                        panic,
                    }
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    spawn_error = Some(e);
                    break;
                }
            }
        }
        if spawn_error.is_some() {
            gate.set(|g| g.abort = true);
        } else {
            release = Instant::now();
            gate.set(|g| g.start = true);
            gate.wait_ready(c);
            stop_release = Instant::now();
            gate.set(|g| g.stop = true);
        }
        // A thread that panicked outside its guarded start (in its stop) is
        // re-raised here, after every other thread has stopped.
        let mut joined = Vec::with_capacity(handles.len());
        for h in handles {
            match h.join() {
                Ok(c) => joined.push(c),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        match spawn_error {
            Some(e) => Err(WorkloadError::Unsupported(format!(
                "starting {c} threads for a storm: {e}; lower --concurrency"
            ))),
            None => Ok(joined),
        }
    })?;
    let mut round = Round::default();
    let mut unexpected = 0;
    let mut first_error = None;
    for r in results {
        if let Some(p) = r.panic {
            std::panic::resume_unwind(p);
        }
        if let Some(e) = r.error {
            first_error.get_or_insert(e);
        }
        unexpected += r.unexpected;
        round
            .ready_ns
            .push(r.ready.duration_since(release).as_nanos() as f64);
        round
            .stop_ns
            .push(r.stopped.duration_since(stop_release).as_nanos() as f64);
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    round.wall_ns = round.ready_ns.iter().copied().fold(0.0, f64::max);
    Ok((round, unexpected))
}

/// The idmap of `mode` with `userns` (None for plain lowers).
fn mount_how<'a>(mode: Idmap, userns: Option<&'a UserNamespace>, read_back: bool) -> MountHow<'a> {
    MountHow {
        idmap: match (mode.mode(), userns) {
            (Some(mode), Some(userns)) => Some(crate::isolate::Idmap { userns, mode }),
            _ => None,
        },
        read_back,
    }
}

/// Mounts one container of `f` as a storm would, with the stack read back, and
/// checks what it shows: the read set, and the owner of a file through the
/// idmap. Also warms the image's caches before the first timed storm.
pub fn verify(
    layout: &dyn Layout,
    f: &Fixture,
    mode: Idmap,
    userns: Option<&UserNamespace>,
    ops: &[ReadOp],
) -> Result<(), WorkloadError> {
    let root = f.containers.join("verify");
    let started = start(layout, f, &root, &mount_how(mode, userns, true), ops);
    let checked = started.and_then(|(_, m, bad)| {
        let rel = f.owned.as_path();
        let seen = m
            .merged
            .join(rel)
            .metadata()
            .map_err(WorkloadError::io("stat", m.merged.join(rel)))?
            .uid();
        let on_disk = layout
            .lower_file(&f.image, rel)
            .and_then(|p| p.metadata().ok())
            .map(|md| md.uid());
        let expected = match (userns, mode) {
            (Some(ns), m) if m != Idmap::None => on_disk.and_then(|u| ns.range().shown_as(u)),
            _ => on_disk,
        };
        let result = if bad > 0 {
            Err(format!(
                "{bad} lookups of the read set contradict the image"
            ))
        } else if expected.is_some_and(|e| e != seen) {
            Err(format!(
                "{} shows uid {seen}, {} expected",
                rel.display(),
                expected.unwrap_or_default()
            ))
        } else {
            Ok(())
        };
        stop(&root, Some(m))?;
        result.map_err(|why| {
            WorkloadError::Verify(format!(
                "{} at depth {} with idmap {}: {why}",
                layout.name(),
                f.depth,
                crate::choice::Choice::name(mode)
            ))
        })
    });
    if checked.is_err() {
        let _ = stop(&root, None);
    }
    checked
}

/// Every storm point of one round, in interleaving order.
pub struct Point<'a> {
    /// The fixture (layout and depth).
    pub fixture: &'a Fixture,
    /// Idmap mode.
    pub idmap: Idmap,
    /// Containers at once.
    pub concurrency: usize,
}

/// Runs every round of every point, filling `samples` as it goes.
pub fn measure_storms(
    p: &Params,
    ctx: &mut RunContext<'_>,
    points: &[Point<'_>],
    userns: Option<&UserNamespace>,
    samples: &mut Samples,
) -> Result<(), WorkloadError> {
    for round in 0..p.rounds {
        ctx.progress
            .set_message(format!("storm: round {}/{}", round + 1, p.rounds));
        for pt in points {
            ctx.check_interrupted()?;
            let f = pt.fixture;
            let layout = &ctx.layouts[f.layout];
            let ops = &f.ops;
            for _ in 0..Params::storms_per_round(pt.concurrency) {
                let (r, bad) = storm(
                    layout.as_ref(),
                    f,
                    pt.concurrency,
                    &mount_how(pt.idmap, userns, false),
                    ops,
                )?;
                samples.unexpected += bad;
                samples
                    .storms
                    .entry(Key {
                        layout: f.layout,
                        depth: f.depth,
                        idmap: pt.idmap,
                        concurrency: pt.concurrency,
                    })
                    .or_default()
                    .push(r);
            }
            ctx.progress.inc(1);
        }
    }
    Ok(())
}

/// Mounts held under one bind mount of their parent dir: dropping it detaches
/// the parent, which takes every held mount with it at once.
struct Held {
    parent: PathBuf,
    guard: Option<MountGuard>,
    mounts: Vec<Mounted>,
}

impl Held {
    fn new(parent: PathBuf) -> Result<Held, WorkloadError> {
        fs::create_dir_all(&parent).map_err(WorkloadError::io("creating", &parent))?;
        mount(
            Some(&parent),
            &parent,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| WorkloadError::io("bind-mounting", &parent)(e.into()))?;
        Ok(Held {
            guard: Some(MountGuard::new(parent.clone())),
            parent,
            mounts: Vec::new(),
        })
    }

    /// Detaches every held mount at once; returns how long that took.
    fn teardown(&mut self) -> Result<Duration, WorkloadError> {
        let Some(guard) = self.guard.take() else {
            return Ok(Duration::ZERO);
        };
        let t = Instant::now();
        let detached = umount2(&self.parent, MntFlags::MNT_DETACH);
        let elapsed = t.elapsed();
        // Its own detach now finds nothing mounted there: harmless.
        drop(guard);
        detached.map_err(|e| WorkloadError::io("detaching", &self.parent)(e.into()))?;
        // The held mounts' guards now name plain dirs: dropping them is harmless.
        self.mounts.clear();
        Ok(elapsed)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// This thread's CPU time: what the kernel spent on our system calls, without
/// the time spent waiting for a core.
fn thread_cpu() -> Duration {
    // The clock exists on every Linux; a zero reading would only shorten the
    // figure, never fail the run.
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .unwrap_or(nix::sys::time::TimeSpec::new(0, 0));
    Duration::new(
        ts.tv_sec().max(0) as u64,
        ts.tv_nsec().clamp(0, 999_999_999) as u32,
    )
}

/// Reads the whole mount table into `buf`; returns (wall, CPU) time of open +
/// read + close.
fn read_table(buf: &mut Vec<u8>) -> Result<(Duration, Duration), WorkloadError> {
    let path = "/proc/self/mountinfo";
    buf.clear();
    let cpu = thread_cpu();
    let t = Instant::now();
    let mut f = File::open(path).map_err(WorkloadError::io("opening", path))?;
    f.read_to_end(buf)
        .map_err(WorkloadError::io("reading", path))?;
    drop(f);
    let wall = t.elapsed();
    Ok((wall, thread_cpu().saturating_sub(cpu)))
}

/// Holds growing numbers of `f`'s containers mounted and measures the table at
/// each; removes them all before returning, on every path, and checks that
/// nothing of ours is left in the mount table.
pub fn measure_table(
    p: &Params,
    ctx: &mut RunContext<'_>,
    f: &Fixture,
    samples: &mut Samples,
) -> Result<(), WorkloadError> {
    let layout = ctx.layouts[f.layout].as_ref();
    // Unmounting an overlay syncs its upper filesystem (a journal commit and a
    // device flush each): thousands of them would take minutes and measure the
    // disk. Held mounts and the extra one are `volatile` where the layout takes
    // overlay options (their table lines carry ",volatile"); a storm's stops
    // still pay the sync.
    let volatile = layout
        .capabilities()
        .overlay_options
        .then(|| layout.with_options(&[("volatile".into(), None)]))
        .flatten();
    ctx.out.note(match &volatile {
        Some(_) => format!(
            "storm: {}'s held mounts and the extra mount of the mount-table phase are volatile (no sync of \
             the upper filesystem at unmount)",
            layout.name()
        ),
        None => format!(
            "storm: {}'s held mounts are made as its containers are (it takes no overlay options)",
            layout.name()
        ),
    });
    let mounting = volatile.as_deref().unwrap_or(layout);
    let hold_dir = f.containers.join("held");
    let mut held = Held::new(hold_dir.clone())?;
    let result = grow_and_measure(p, ctx, mounting, f, &mut held, samples);
    let count = held.mounts.len();
    let teardown = held.teardown();
    drop(held);
    if let Ok(t) = &teardown {
        if count > 0 {
            samples
                .teardown
                .insert((f.layout, f.depth, count), t.as_nanos() as f64);
        }
    }
    let removed = fs::remove_dir_all(&hold_dir).map_err(WorkloadError::io("removing", &hold_dir));
    let info =
        MountInfo::current().map_err(WorkloadError::io("reading", "/proc/self/mountinfo"))?;
    let left = info.under(&f.containers).count();
    if left > 0 {
        return Err(WorkloadError::Verify(format!(
            "{left} mounts of {} are still in the mount table under {} after the held mounts were removed",
            layout.name(),
            f.containers.display()
        )));
    }
    ctx.out.note(format!(
        "storm: every mount the mount-table phase held was removed by one lazy detach of their parent \
         (checked in mountinfo: nothing of ours left){}",
        if matches!(result, Err(WorkloadError::Interrupted)) {
            ", also after the interruption"
        } else {
            ""
        }
    ));
    result?;
    teardown?;
    removed
}

fn grow_and_measure(
    p: &Params,
    ctx: &mut RunContext<'_>,
    layout: &dyn Layout,
    f: &Fixture,
    held: &mut Held,
    samples: &mut Samples,
) -> Result<(), WorkloadError> {
    let name = layout.name();
    let quiet = MountHow {
        idmap: None,
        read_back: false,
    };
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    for &n in &p.held {
        ctx.progress
            .set_message(format!("storm: {name}, mounting {n} to hold"));
        while held.mounts.len() < n {
            if held.mounts.len().is_multiple_of(32) {
                ctx.check_interrupted()?;
            }
            let root = held.parent.join(format!("h{}", held.mounts.len()));
            let dirs = layout.create_container(&f.image, &root)?;
            held.mounts.push(layout.mount_as(&f.image, &dirs, &quiet)?);
        }
        ctx.check_interrupted()?;
        ctx.progress
            .set_message(format!("storm: {name}, reading the table with {n} held"));
        let mut point = TablePoint::default();
        let _ = read_table(&mut buf)?;
        for _ in 0..p.table_reads {
            let (wall, cpu) = read_table(&mut buf)?;
            point.read_ns.push(wall.as_nanos() as f64);
            point.read_cpu_ns.push(cpu.as_nanos() as f64);
            let text = String::from_utf8_lossy(&buf);
            let t = Instant::now();
            let info = MountInfo::parse(&text);
            point.parse_ns.push(t.elapsed().as_nanos() as f64);
            let ours = info.under(&held.parent).count();
            // The bind of the parent itself is one of the lines under it.
            if ours != n + 1 {
                return Err(WorkloadError::Verify(format!(
                    "{name}: the mount table shows {} of the {n} held mounts",
                    ours.saturating_sub(1)
                )));
            }
            point.bytes = buf.len() as f64;
            point.lines = info.entries.len() as f64;
        }
        for i in 0..p.table_mounts {
            ctx.check_interrupted()?;
            let root = f.containers.join(format!("extra{i}"));
            let dirs = layout.create_container(&f.image, &root)?;
            let t = Instant::now();
            let m = layout.mount_as(&f.image, &dirs, &quiet)?;
            let outer = t.elapsed();
            point
                .mount_ns
                .push(m.mount_time.unwrap_or(outer).as_nanos() as f64);
            let t = Instant::now();
            m.unmount()?;
            point.unmount_ns.push(t.elapsed().as_nanos() as f64);
            fs::remove_dir_all(&root).map_err(WorkloadError::io("removing", &root))?;
        }
        samples.table.insert((f.layout, f.depth, n), point);
        ctx.progress.inc(1);
    }
    Ok(())
}

/// Whether `mode` can apply to a layout with these capabilities, or why not.
pub fn idmap_applies(mode: Idmap, caps: &crate::layout::Capabilities) -> Result<(), &'static str> {
    match mode.mode() {
        None => Ok(()),
        Some(_) if !caps.idmap_lowers => Err("has no lower layers to idmap"),
        Some(IdmapMode::CommonParent) if !caps.lower_per_layer => {
            Err("mounts one lower: its common parent is the per-layer case")
        }
        Some(_) => Ok(()),
    }
}
