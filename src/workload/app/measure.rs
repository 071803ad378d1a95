//! app's timed starts: per round, each layout in turn (interleaved) gets a
//! new container, its backing evicted, the container mounted and the image
//! started with the OCI runtime (cold), then started again at once (warm). Inside the clock:
//! from the runtime's spawn to ready, nothing else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::Spec;
use rayon::prelude::*;

use super::keys::{Cache, Samples, NAME};
use super::params::Params;
use crate::image::runconfig::{resolve_user, Ids};
use crate::layout::{ContainerDirs, Mounted, PreparedImage};
use crate::probe::readset::{own_pid_namespace, Filter, Options, Recorder};
use crate::runtime::{Outcome, ProcessSpec, Readiness, Runtime, Started};
use crate::workload::{RunContext, WorkloadError};

/// One layout's copy of the image.
pub struct Fixture {
    /// Index of the layout in the run.
    pub layout: usize,
    /// The prepared image.
    pub image: PreparedImage,
    /// Where its containers are made: a fresh one for every cold start, so
    /// that nothing an earlier start wrote (a bytecode cache, a dump file) is
    /// read by the next.
    pub containers: PathBuf,
}

impl Fixture {
    /// A new container of the image.
    fn container(
        &self,
        layout: &dyn crate::layout::Layout,
    ) -> Result<ContainerDirs, WorkloadError> {
        Ok(layout.create_container(&self.image, &self.containers)?)
    }
}

/// Imports the image into every layout (in parallel).
pub fn build_fixtures(ctx: &RunContext<'_>, root: &Path) -> Result<Vec<Fixture>, WorkloadError> {
    ctx.progress.set_message("app: importing the image");
    let (layouts, image) = (ctx.layouts, &ctx.images[0]);
    (0..layouts.len())
        .into_par_iter()
        .map(|li| {
            let layout = &layouts[li];
            let dir = root.join(layout.name());
            let prepared = layout.prepare(image.source().as_ref(), &dir.join("img"))?;
            Ok(Fixture {
                layout: li,
                image: prepared,
                containers: dir.join("c"),
            })
        })
        .collect()
}

/// What every start shares.
pub struct Plan<'a> {
    /// The runtime.
    pub runtime: &'a Runtime,
    /// argv, environment and working dir (user resolved per layout's mount).
    pub process: ProcessSpec,
    /// The image's `User`, resolved in each rootfs.
    pub user: Option<String>,
    /// The image as the user named it.
    pub image: String,
    /// Readiness.
    pub ready: Readiness,
    /// The workload's dir on the scratch.
    pub root: PathBuf,
    /// The runtime's state dir (`--root`).
    pub state: PathBuf,
}

fn describe(o: &Outcome, p: &Params) -> String {
    let tail = |t: &[String]| {
        if t.is_empty() {
            "no output".to_string()
        } else {
            format!("last output:\n  {}", t.join("\n  "))
        }
    };
    match o {
        Outcome::Ready(_) => String::new(),
        Outcome::Exited { status, tail: t } => format!(
            "exited ({status}) before it was ready{}; {}",
            if p.ready_line.is_some() {
                " (no line matched --app-ready-line)"
            } else {
                ""
            },
            tail(t)
        ),
        Outcome::TimedOut { after, tail: t } => format!(
            "not ready after {} (--app-timeout); {}",
            humantime::format_duration(Duration::from_millis(after.as_millis() as u64)),
            tail(t)
        ),
    }
}

/// A new container of `f`, the backing evicted, mounted: ready for a cold
/// start, with its `config.json` (the image's user resolved in this rootfs
/// once per layout). Made before the eviction, so plain's copy of the image
/// is evicted with the rest.
fn cold_container(
    plan: &Plan<'_>,
    ctx: &mut RunContext<'_>,
    f: &Fixture,
    users: &mut BTreeMap<usize, Ids>,
) -> Result<(ContainerDirs, Mounted, Spec), WorkloadError> {
    let layout = &ctx.layouts[f.layout];
    let container = f.container(layout.as_ref())?;
    ctx.evict()?;
    let mounted = layout.mount(&f.image, &container)?;
    let ids = match users.get(&f.layout) {
        Some(ids) => *ids,
        None => {
            let ids = resolve_user(&plan.image, plan.user.as_deref(), &mounted.merged)?;
            users.insert(f.layout, ids);
            ids
        }
    };
    let process = ProcessSpec {
        uid: ids.uid,
        gid: ids.gid,
        ..plan.process.clone()
    };
    let spec = crate::runtime::spec(&mounted.merged, &process, NAME)?;
    Ok((container, mounted, spec))
}

/// The recording start of `f`'s layout: a new container, cold, started with
/// the read-set recorder on its rootfs and watched until ready, stopped,
/// unmounted and removed; its read set and output tail go to `s`.
fn start_once(
    p: &Params,
    plan: &Plan<'_>,
    ctx: &mut RunContext<'_>,
    f: &Fixture,
    users: &mut BTreeMap<usize, Ids>,
    s: &mut Samples,
) -> Result<(), WorkloadError> {
    let grace = Duration::from_secs_f64(p.grace_s);
    let (container, mounted, spec) = cold_container(plan, ctx, f, users)?;
    let layout = &ctx.layouts[f.layout];
    // The runtime and this tool run in the tool's pid namespace, the
    // container in a new one made before its first process runs: counting
    // only processes outside ours counts exactly the container's, from its
    // first instruction (a filter on the container's own namespace could only
    // be set once the runtime had made it, after the start began).
    let recorder = Recorder::start(
        &mounted.merged,
        Options::new(Filter::OutsidePidNamespace(own_pid_namespace()?)),
    )?;
    let bundle = plan.root.join(format!("bundle-{}", layout.name()));
    let mut c = Started::start(plan.runtime, &plan.state, &bundle, &spec)?;
    let outcome = c.wait_ready(&plan.ready, p.timeout(), ctx.interrupted);
    // From exec to ready, no further: what a server opens once ready, and on
    // its way out, is not its start-up.
    let set = recorder.stop();
    let tail = c.tail();
    let stopped = c.stop(grace);
    ctx.check_interrupted()?;
    let outcome = outcome?;
    stopped?;
    let set = set?;
    mounted.unmount()?;
    layout.remove_container(&container)?;
    match outcome {
        Outcome::Ready(_) => {
            s.output.insert(f.layout, tail);
            s.read_sets.insert(f.layout, set);
        }
        other => {
            s.failed.insert(
                f.layout,
                format!(
                    "{}: first (recorded) start of {}: {}",
                    layout.name(),
                    plan.image,
                    describe(&other, p)
                ),
            );
        }
    }
    Ok(())
}

/// Per layout, a start of its own before the timed ones, cold, with the
/// read-set recorder on: what the image's start opens and reads. Not timed —
/// the recorder indexes the rootfs before the start (which warms its
/// metadata) and handles the events, so its time would be neither cold nor
/// the application's.
pub fn record_read_sets(
    p: &Params,
    plan: &Plan<'_>,
    ctx: &mut RunContext<'_>,
    fixtures: &[Fixture],
    users: &mut BTreeMap<usize, Ids>,
    s: &mut Samples,
) -> Result<(), WorkloadError> {
    ctx.progress
        .set_message("app: recording what the start reads");
    for f in fixtures {
        ctx.check_interrupted()?;
        start_once(p, plan, ctx, f, users, s)?;
        ctx.progress.inc(1);
    }
    Ok(())
}

/// Runs every round, filling `s` as it goes.
pub fn measure(
    p: &Params,
    plan: &Plan<'_>,
    ctx: &mut RunContext<'_>,
    fixtures: &[Fixture],
    users: &mut BTreeMap<usize, Ids>,
    s: &mut Samples,
) -> Result<(), WorkloadError> {
    let state = &plan.state;
    let grace = Duration::from_secs_f64(p.grace_s);
    ctx.progress.set_message("app: starting the image");
    for _round in 0..p.rounds {
        for f in fixtures {
            if s.failed.contains_key(&f.layout) {
                ctx.progress.inc(1);
                continue;
            }
            ctx.check_interrupted()?;
            let (container, mounted, spec) = cold_container(plan, ctx, f, users)?;
            let layout = &ctx.layouts[f.layout];
            for cache in Cache::ALL {
                let bundle = plan.root.join(format!("bundle-{}", layout.name()));
                let mut c = Started::start(plan.runtime, state, &bundle, &spec)?;
                let outcome = c.wait_ready(&plan.ready, p.timeout(), ctx.interrupted);
                let tail = c.tail();
                let stopped = c.stop(grace);
                ctx.check_interrupted()?;
                let outcome = outcome?;
                stopped?;
                match outcome {
                    Outcome::Ready(d) => {
                        s.output.entry(f.layout).or_insert(tail);
                        s.series
                            .entry((f.layout, cache))
                            .or_default()
                            .push(d.as_nanos() as f64);
                    }
                    other => {
                        s.failed.insert(
                            f.layout,
                            format!(
                                "{}: {} start of {}: {}",
                                layout.name(),
                                cache.name(),
                                plan.image,
                                describe(&other, p)
                            ),
                        );
                        break;
                    }
                }
            }
            mounted.unmount()?;
            layout.remove_container(&container)?;
            ctx.progress.inc(1);
        }
    }
    Ok(())
}
