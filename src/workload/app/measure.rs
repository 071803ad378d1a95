//! app's timed starts: per round, each layout in turn (interleaved) gets its
//! backing evicted, its container mounted afresh and the image started with
//! the OCI runtime (cold), then started again at once (warm). Inside the clock:
//! from the runtime's spawn to ready, nothing else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::keys::{Cache, NAME};
use super::params::Params;
use crate::image::runconfig::{resolve_user, Ids};
use crate::layout::{ContainerDirs, PreparedImage};
use crate::runtime::{Outcome, ProcessSpec, Readiness, Runtime, Started};
use crate::workload::{RunContext, WorkloadError};

/// One layout's copy of the image and its container.
pub struct Fixture {
    /// Index of the layout in the run.
    pub layout: usize,
    /// The prepared image.
    pub image: PreparedImage,
    /// Its container (mounted afresh for every round).
    pub container: ContainerDirs,
}

/// Imports the image into every layout (in parallel) and makes a container of each.
pub fn build_fixtures(ctx: &RunContext<'_>, root: &Path) -> Result<Vec<Fixture>, WorkloadError> {
    ctx.progress.set_message("app: importing the image");
    let (layouts, image) = (ctx.layouts, &ctx.images[0]);
    (0..layouts.len())
        .into_par_iter()
        .map(|li| {
            let layout = &layouts[li];
            let dir = root.join(layout.name());
            let prepared = layout.prepare(image.source().as_ref(), &dir.join("img"))?;
            let container = layout.create_container(&prepared, &dir.join("c"))?;
            Ok(Fixture {
                layout: li,
                image: prepared,
                container,
            })
        })
        .collect()
}

/// What was measured, kept as it comes (an interrupted run keeps it).
#[derive(Debug, Default)]
pub struct Samples {
    /// Per (layout, cold/warm), times to ready, ns.
    pub series: BTreeMap<(usize, Cache), Vec<f64>>,
    /// Per layout whose start failed: what happened (it is measured no further).
    pub failed: BTreeMap<usize, String>,
    /// Per layout, the last lines the application printed on its first start.
    pub output: BTreeMap<usize, Vec<String>>,
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

use std::time::Duration;

/// Runs every round, filling `s` as it goes.
pub fn measure(
    p: &Params,
    plan: &Plan<'_>,
    ctx: &mut RunContext<'_>,
    fixtures: &[Fixture],
    s: &mut Samples,
) -> Result<(), WorkloadError> {
    let state = plan.root.join("runtime-state");
    let mut users: BTreeMap<usize, Ids> = BTreeMap::new();
    let grace = Duration::from_secs_f64(p.grace_s);
    ctx.progress.set_message("app: starting the image");
    for _round in 0..p.rounds {
        for f in fixtures {
            if s.failed.contains_key(&f.layout) {
                ctx.progress.inc(1);
                continue;
            }
            ctx.check_interrupted()?;
            let layout = &ctx.layouts[f.layout];
            ctx.evict()?;
            let mounted = layout.mount(&f.image, &f.container)?;
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
            for cache in Cache::ALL {
                let bundle = plan.root.join(format!("bundle-{}", layout.name()));
                let mut c = Started::start(plan.runtime, &state, &bundle, &spec)?;
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
            ctx.progress.inc(1);
        }
    }
    Ok(())
}
