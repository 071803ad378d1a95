//! Lookup cost by lower depth.
//!
//! The same names are looked up through every layout at every depth, interleaved
//! (layout A B C, then the next depth, round after round) so drift cancels. A warm
//! lookup is flat in depth (overlay caches positive and negative dentries); the
//! depth cost shows on *cold* lookups: fresh mount + evicted lower caches + many
//! distinct names, each looked up once, timed per batch.
//!
//! Image shape: every layer has the dirs `b/ t/ m/ r*/` (like `/usr/lib` in every
//! layer of a real image); the bottom layer holds the `b/` names, the top the `t/`
//! names, `m/` stays empty (negative lookups), and every layer adds entries to
//! each `r*/` (readdir merges them all).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Instant;

use nix::dir::Dir;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode};
use rayon::prelude::*;
use serde_json::{json, Value};

use super::{Footprint, RunContext, Workload, WorkloadError, WorkloadKind};
use crate::image::{Change, ImageSpec, LayerSpec};
use crate::layout::{ContainerDirs, LayoutKind, PreparedImage};
use crate::measure::{fit_line, Stats};
use crate::plan::LookupPlan;
use crate::report::{case_key, Case, Derived};

const NAME: &str = "lookup";

/// Which names a stat batch looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    /// Names only in the top layer: found at once.
    Top,
    /// Names only in the bottom layer: every layer is searched.
    Bottom,
    /// Names in no layer: every layer is searched, then ENOENT.
    Missing,
}

impl Target {
    const ALL: [Target; 3] = [Target::Top, Target::Bottom, Target::Missing];
    fn name(self) -> &'static str {
        match self {
            Target::Top => "top",
            Target::Bottom => "bottom",
            Target::Missing => "missing",
        }
    }
    fn dir(self) -> &'static str {
        match self {
            Target::Top => "t",
            Target::Bottom => "b",
            Target::Missing => "m",
        }
    }
    fn found(self) -> bool {
        self != Target::Missing
    }
}

/// Key of one accumulated case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    layout: LayoutKind,
    op: &'static str,
    target: &'static str,
    cache: &'static str,
    depth: usize,
}

/// The lookup workload.
pub struct Lookup {
    plan: LookupPlan,
}

struct Fixture {
    depth: usize,
    layout_index: usize,
    image: PreparedImage,
    container: ContainerDirs,
}

impl Lookup {
    /// With these parameters.
    pub fn new(plan: LookupPlan) -> Self {
        Lookup { plan }
    }

    fn name_of(&self, target: Target, i: usize) -> String {
        let prefix = if target == Target::Missing { 'x' } else { 'n' };
        format!("{prefix}{i:06}")
    }

    /// The lookup image for one depth.
    pub fn image(&self, depth: usize) -> ImageSpec {
        let p = &self.plan;
        let dirs: Vec<String> = ["b", "t", "m"]
            .iter()
            .map(|s| s.to_string())
            .chain((0..p.readdir_dirs).map(|j| format!("r{j}")))
            .collect();
        let file = |path: String| Change::File {
            path: path.into(),
            mode: 0o644,
            size: 0,
            seed: 0,
        };
        let layers = (0..depth)
            .map(|l| {
                let mut changes: Vec<Change> = dirs
                    .iter()
                    .map(|d| Change::Dir {
                        path: d.into(),
                        mode: 0o755,
                    })
                    .collect();
                for j in 0..p.readdir_dirs {
                    changes
                        .extend((0..p.entries_per_layer).map(|e| file(format!("r{j}/e{l}_{e}"))));
                }
                if l == 0 {
                    changes.extend(
                        (0..p.names)
                            .map(|i| file(format!("b/{}", self.name_of(Target::Bottom, i)))),
                    );
                }
                if l == depth - 1 {
                    changes.extend(
                        (0..p.names).map(|i| file(format!("t/{}", self.name_of(Target::Top, i)))),
                    );
                }
                LayerSpec { changes }
            })
            .collect();
        ImageSpec { layers }
    }

    fn build_fixtures(&self, ctx: &mut RunContext<'_>) -> Result<Vec<Fixture>, WorkloadError> {
        let root = ctx.scratch.path().join(NAME);
        let jobs: Vec<(usize, usize)> = self
            .plan
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
                let dir = root.join(format!("d{depth}")).join(layout.kind().name());
                let image = layout.prepare(&self.image(depth), &dir.join("img"))?;
                let container = layout.create_container(&image, &dir.join("c"))?;
                progress.inc(1);
                Ok(Fixture {
                    depth,
                    layout_index: li,
                    image,
                    container,
                })
            })
            .collect()
    }

    fn names(&self, target: Target) -> Vec<CString> {
        (0..self.plan.names)
            .map(|i| CString::new(self.name_of(target, i)).expect("generated names have no NUL"))
            .collect()
    }
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
    File::open(path).map_err(|e| WorkloadError::Failed(format!("opening {}: {e}", path.display())))
}

impl Workload for Lookup {
    fn kind(&self) -> WorkloadKind {
        WorkloadKind::Lookup
    }

    fn footprint(&self, layouts: usize) -> Footprint {
        let p = &self.plan;
        let per_layer = 8 + p.readdir_dirs * p.entries_per_layer;
        let layers: usize = p.depths.iter().sum();
        // overlay2 diffs + plain image and copy; legacy roots re-create dirs only.
        let inodes =
            (layers * per_layer + p.depths.len() * 4 * (2 * p.names + 64)) * layouts.max(1);
        Footprint {
            bytes: inodes as u64 * 4096 + (64 << 20),
            inodes: inodes as u64,
        }
    }

    fn steps(&self, layouts: &[LayoutKind]) -> u64 {
        (self.plan.depths.len() * layouts.len() * (self.plan.rounds + 1)) as u64
    }

    fn run(&self, ctx: &mut RunContext<'_>) -> Result<(), WorkloadError> {
        let p = self.plan.clone();
        let fixtures = self.build_fixtures(ctx)?;
        let names: BTreeMap<Target, Vec<CString>> =
            Target::ALL.iter().map(|&t| (t, self.names(t))).collect();
        let readdir_names: Vec<CString> = (0..p.readdir_dirs)
            .map(|j| CString::new(format!("r{j}")).expect("no NUL"))
            .collect();
        let mut samples: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
        let mut unexpected = 0usize;
        ctx.progress.set_message("lookup: measuring");
        for _round in 0..p.rounds {
            for &depth in &p.depths {
                for f in fixtures.iter().filter(|f| f.depth == depth) {
                    if ctx.check_interrupted().is_err() {
                        // What was measured is real: an interrupted report keeps it.
                        if unexpected == 0 {
                            record(ctx, &p, samples);
                        }
                        return Err(WorkloadError::Interrupted);
                    }
                    let layout = &ctx.layouts[f.layout_index];
                    let kind = layout.kind();
                    let key = |op, target, cache| Key {
                        layout: kind,
                        op,
                        target,
                        cache,
                        depth,
                    };
                    ctx.evict()?;
                    let mounted = layout.mount(&f.image, &f.container)?;
                    if crate::fault::hit("lookup-mounted").is_some() {
                        return Err(WorkloadError::Failed(
                            "injected fault at lookup-mounted".into(),
                        ));
                    }
                    if let Some(t) = mounted.mount_time {
                        samples
                            .entry(key("mount", "stack", "cold"))
                            .or_default()
                            .push(t.as_nanos() as f64);
                    }
                    if let Some(opts) = &mounted.options_in_force {
                        ctx.out
                            .options_in_force
                            .entry(kind.name().into())
                            .or_insert_with(|| opts.clone());
                    }
                    let dirs: BTreeMap<Target, File> = Target::ALL
                        .iter()
                        .map(|&t| Ok((t, open_dir(&mounted.merged.join(t.dir()))?)))
                        .collect::<Result<_, WorkloadError>>()?;
                    let root = open_dir(&mounted.merged)?;
                    // Cold: each name once, batches of the three targets interleaved.
                    for chunk in 0..p.names / p.batch {
                        for t in Target::ALL {
                            let batch = &names[&t][chunk * p.batch..(chunk + 1) * p.batch];
                            let (ns, bad) = time_stats(&dirs[&t], batch, t.found());
                            unexpected += bad;
                            samples
                                .entry(key("stat", t.name(), "cold"))
                                .or_default()
                                .push(ns / p.batch as f64);
                        }
                    }
                    let expected_entries = depth * p.entries_per_layer + 2;
                    let readdir =
                        |cache, samples: &mut BTreeMap<Key, Vec<f64>>, unexpected: &mut usize| {
                            for n in &readdir_names {
                                let (ns, entries) = time_readdir(&root, n).map_err(|e| {
                                    WorkloadError::Failed(format!("reading dir {n:?}: {e}"))
                                })?;
                                *unexpected += usize::from(entries != expected_entries);
                                samples
                                    .entry(key("readdir", "spread", cache))
                                    .or_default()
                                    .push(ns);
                            }
                            Ok::<(), WorkloadError>(())
                        };
                    readdir("cold", &mut samples, &mut unexpected)?;
                    // Warm: the same names again, now in the dentry cache.
                    for _ in 0..p.warm_repeats {
                        for t in Target::ALL {
                            let (ns, bad) = time_stats(&dirs[&t], &names[&t], t.found());
                            unexpected += bad;
                            samples
                                .entry(key("stat", t.name(), "warm"))
                                .or_default()
                                .push(ns / p.names as f64);
                        }
                    }
                    readdir("warm", &mut samples, &mut unexpected)?;
                    drop((dirs, root));
                    mounted.unmount()?;
                    ctx.progress.inc(1);
                }
            }
        }
        if unexpected > 0 {
            return Err(WorkloadError::Failed(format!(
                "{unexpected} lookups gave a result the image does not describe (a found name missing, \
                 a missing name found, or a wrong readdir count): the layouts are not what was built"
            )));
        }
        record(ctx, &p, samples);
        Ok(())
    }
}

fn params(key: &Key, p: &LookupPlan, eviction: &str, backing: &str) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    m.insert("backing".into(), json!(backing));
    m.insert("depth".into(), json!(key.depth));
    m.insert("op".into(), json!(key.op));
    m.insert("target".into(), json!(key.target));
    m.insert("cache".into(), json!(key.cache));
    if key.cache == "cold" {
        m.insert("eviction".into(), json!(eviction));
    }
    match key.op {
        "stat" => {
            let per_sample = if key.cache == "cold" {
                p.batch
            } else {
                p.names
            };
            m.insert("ops_per_sample".into(), json!(per_sample));
        }
        "readdir" => {
            m.insert("entries".into(), json!(key.depth * p.entries_per_layer));
        }
        _ => {}
    }
    m
}

fn metric_of(op: &str) -> (&'static str, &'static str) {
    match op {
        "stat" => ("latency_per_op", "ns"),
        "readdir" => ("latency_per_dir", "ns"),
        _ => ("mount_time", "ns"),
    }
}

fn record(ctx: &mut RunContext<'_>, p: &LookupPlan, samples: BTreeMap<Key, Vec<f64>>) {
    let id = |k: &Key, eviction: &str, backing: &str| {
        case_key(
            NAME,
            k.layout.name(),
            metric_of(k.op).0,
            &params(k, p, eviction, backing),
        )
    };
    let eviction = serde_json::to_value(ctx.eviction)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut medians: BTreeMap<Key, f64> = BTreeMap::new();
    for (key, s) in samples {
        let Some(stats) = Stats::compute(&s) else {
            continue;
        };
        medians.insert(key.clone(), stats.median);
        let (metric, unit) = metric_of(key.op);
        ctx.out.cases.push(Case {
            id: String::new(),
            workload: NAME.into(),
            layout: key.layout.name().into(),
            params: params(&key, p, &eviction, &ctx.backing),
            metric: metric.into(),
            unit: unit.into(),
            samples: s,
            stats,
        });
    }
    // Slope of the median vs depth, per layout × op × target × cache.
    let mut series: BTreeMap<Key, Vec<(f64, f64, String)>> = BTreeMap::new();
    for (k, &m) in &medians {
        series
            .entry(Key {
                depth: 0,
                ..k.clone()
            })
            .or_default()
            .push((k.depth as f64, m, id(k, &eviction, &ctx.backing)));
    }
    for (k, pts) in &series {
        let xy: Vec<(f64, f64)> = pts.iter().map(|(x, y, _)| (*x, *y)).collect();
        let Some(fit) = fit_line(&xy) else { continue };
        let mut params = params(k, p, &eviction, &ctx.backing);
        params.remove("depth");
        params.remove("entries");
        let points = pts.iter().map(|(x, _, id)| (*x, id.clone())).collect();
        ctx.out.derived.push(Derived::slope(
            NAME,
            k.layout.name(),
            params,
            &fit,
            "ns/layer",
            points,
        ));
    }
    // Ratio to plain at each depth, taken inside this run.
    for (k, &m) in &medians {
        if k.layout == LayoutKind::Plain {
            continue;
        }
        let plain = Key {
            layout: LayoutKind::Plain,
            ..k.clone()
        };
        let Some(&base) = medians.get(&plain) else {
            continue;
        };
        if base <= 0.0 {
            continue;
        }
        let mut params = params(k, p, &eviction, &ctx.backing);
        params.insert("baseline".into(), json!("plain"));
        let (num, den) = (
            id(k, &eviction, &ctx.backing),
            id(&plain, &eviction, &ctx.backing),
        );
        ctx.out.derived.push(Derived::ratio(
            NAME,
            k.layout.name(),
            params,
            m / base,
            num,
            den,
        ));
    }
}
