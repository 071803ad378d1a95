//! storm's section: p99 time to ready against concurrency per layout and depth,
//! the idmapped modes against plain lowers, the mount table against mounts
//! held, storm.svg, and its line in a capacity plan.

use std::collections::{BTreeMap, BTreeSet};

use super::analyze::{burst, BurstBasis};
use super::keys::{
    Idmap, Phase, View, BASE_C1, BASE_NO_IDMAP, DOUBLING, MOUNTINFO_BYTES, MOUNTINFO_PARSE,
    MOUNTINFO_READ, MOUNTINFO_READ_CPU, MOUNT_TIME, NAME, STARTS_PER_SECOND, TEARDOWN_TIME,
    TIME_TO_READY, TIME_TO_READY_P99, TIME_TO_STOP, UNMOUNT_TIME,
};
use crate::capacity::Fleet;
use crate::choice::Choice;
use crate::report::chart::{
    layout_color, layout_marker, line_panel, linear_panel, svg_page, Axis, Marker, Series, Unit,
};
use crate::report::summary::backings_of;
use crate::report::{fmt_bytes, fmt_ns, kinds, Block, Case, Report, ReportError, Section, Table};
use crate::workload::CaseView;
use crate::workload::PlanNotes;

/// Renders storm's cases.
pub struct StormSection;

const INTRO: &str = "C containers start at once on real threads: each creates its upper/work dirs, mounts its \
stack and looks up an 8-name start-up read set (top, middle and bottom of the stack, two missing names); its *time to \
ready* runs from the moment the storm is released, so waiting for a core or for the kernel's mount lock counts. \
p99 is taken per storm and its median over the storms is quoted (storms smaller than 8 containers repeat within a \
round, so C = 1 is a median of many); *×C=1* is that p99 over the p99 of one container \
alone, in the same run. *doubles at* is the concurrency where p99 reaches twice its C = 1 value (interpolated on \
log₂ C). Then all C stop at once (unmount + remove). A layout that mounts nothing starts by making its dirs (a copy).";

const IDMAP_INTRO: &str = "The same storms with every lower layer idmapped (a user namespace mapping 0 → 100000, \
65536 ids, as a user-namespaced pod gets): *per-layer* clones and idmaps each layer (open_tree + mount_setattr, as \
containerd 2.1 does), *common-parent* idmaps one clone of the layers' parent dir and opens each layer below it (the \
fix of containerd#12048). Clones reach overlay by file descriptor and add nothing to the mount table. Ratios are \
median time to ready over plain lowers at the same point.";

const TABLE_INTRO: &str = "N containers of one layout stay mounted in the run's private namespace; then the whole \
/proc/self/mountinfo is read (open + read + close: what kubelet, cAdvisor and systemd pay) and parsed, and one more \
container is mounted and unmounted. The kernel's cost is per byte of the table, so a layout's line length \
decides the slope. All N go at the end with one lazy detach of their parent.";

fn views(r: &Report) -> Vec<(&Case, View)> {
    r.cases_of(NAME)
        .filter_map(|c| View::of_case(c).map(|v| (c, v)))
        .collect()
}

fn layouts_in(cases: &[&(&Case, View)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (c, _) in cases {
        if !out.contains(&c.layout) {
            out.push(c.layout.clone());
        }
    }
    out
}

/// Cases of one backing, by metric.
struct Of<'a> {
    all: Vec<&'a (&'a Case, View)>,
}

impl<'a> Of<'a> {
    fn new(all: &'a [(&'a Case, View)], backing: &str) -> Of<'a> {
        Of {
            all: all.iter().filter(|(_, v)| v.backing == backing).collect(),
        }
    }

    fn storm(
        &self,
        metric: &str,
        layout: &str,
        depth: usize,
        idmap: Idmap,
        c: usize,
    ) -> Option<&'a Case> {
        self.all
            .iter()
            .find(|(k, v)| {
                k.metric == metric
                    && k.layout == layout
                    && v.depth == depth
                    && v.idmap == Some(idmap)
                    && v.concurrency == Some(c)
            })
            .map(|(k, _)| *k)
    }

    fn median(
        &self,
        metric: &str,
        layout: &str,
        depth: usize,
        idmap: Idmap,
        c: usize,
    ) -> Option<f64> {
        self.storm(metric, layout, depth, idmap, c)
            .map(|k| k.stats.median)
    }

    fn of_phase(&self, phase: Phase) -> Vec<&'a (&'a Case, View)> {
        self.all
            .iter()
            .copied()
            .filter(|(_, v)| v.phase == phase)
            .collect()
    }
}

fn derived<'a>(
    r: &'a Report,
    backing: &str,
    kind: &str,
    layout: &str,
    pick: impl Fn(&View) -> bool,
) -> Option<&'a crate::report::Derived> {
    r.derived.iter().find(|d| {
        d.kind == kind
            && d.layout == layout
            && View::of_derived(d).is_some_and(|v| v.backing == backing && pick(&v))
    })
}

fn ns(v: Option<f64>) -> String {
    v.map(fmt_ns).unwrap_or_else(|| "-".into())
}

/// A slope's value without its r², or `flat` (see `Derived::is_flat`).
fn flat_or_ns(d: Option<&crate::report::Derived>) -> String {
    match d {
        Some(d) if d.is_flat() => "flat".into(),
        Some(d) => fmt_ns(d.value),
        None => "-".into(),
    }
}

/// p99 by concurrency, and the largest storm in detail, per layout × depth,
/// plain lowers.
fn startup_tables(r: &Report, of: &Of<'_>, backing: &str) -> Option<(Table, Table)> {
    let start = of.of_phase(Phase::Start);
    if start.is_empty() {
        return None;
    }
    let cs: BTreeSet<usize> = start.iter().filter_map(|(_, v)| v.concurrency).collect();
    let depths: BTreeSet<usize> = start.iter().map(|(_, v)| v.depth).collect();
    let cmax = *cs.last()?;
    let mut by_c = Table::new(
        ["layout".to_string(), "depth".into()]
            .into_iter()
            .chain(cs.iter().map(|c| format!("p99 @{c}")))
            .chain([format!("×C=1 @{cmax}"), "doubles at C".into()]),
    );
    let mut at_max = Table::new([
        "layout".to_string(),
        "depth".into(),
        "p50".into(),
        "p99".into(),
        "max".into(),
        "starts/s".into(),
        "stop p50".into(),
        "stop max".into(),
    ]);
    let stat = |k: Option<&Case>, f: fn(&crate::stats::Stats) -> f64| ns(k.map(|k| f(&k.stats)));
    for layout in layouts_in(&start) {
        for &d in &depths {
            if of
                .storm(TIME_TO_READY_P99, &layout, d, Idmap::None, 1)
                .is_none()
            {
                continue;
            }
            let mut row = vec![layout.clone(), d.to_string()];
            for &c in &cs {
                row.push(ns(of.median(TIME_TO_READY_P99, &layout, d, Idmap::None, c)));
            }
            let ratio = derived(r, backing, kinds::RATIO, &layout, |v| {
                v.depth == d
                    && v.idmap == Some(Idmap::None)
                    && v.concurrency == Some(cmax)
                    && v.baseline.as_deref() == Some(BASE_C1)
            })
            .map(|x| format!("{:.2}x", x.value))
            .unwrap_or_else(|| "-".into());
            let doubles = derived(r, backing, DOUBLING, &layout, |v| {
                v.depth == d && v.idmap == Some(Idmap::None)
            })
            .map(|x| format!("{:.1}", x.value))
            .unwrap_or_else(|| format!("> {cmax}"));
            row.push(ratio);
            row.push(doubles);
            by_c.row(row);
            let ready = of.storm(TIME_TO_READY, &layout, d, Idmap::None, cmax);
            let stop = of.storm(TIME_TO_STOP, &layout, d, Idmap::None, cmax);
            at_max.row(vec![
                layout.clone(),
                d.to_string(),
                stat(ready, |s| s.median),
                ns(of.median(TIME_TO_READY_P99, &layout, d, Idmap::None, cmax)),
                stat(ready, |s| s.max),
                of.median(STARTS_PER_SECOND, &layout, d, Idmap::None, cmax)
                    .map(|v| format!("{v:.0}"))
                    .unwrap_or_else(|| "-".into()),
                stat(stop, |s| s.median),
                stat(stop, |s| s.max),
            ]);
        }
    }
    Some((by_c, at_max))
}

/// Idmapped modes against plain lowers, per layout × depth.
fn idmap_table(r: &Report, of: &Of<'_>, backing: &str) -> Option<Table> {
    let start = of.of_phase(Phase::Start);
    let mapped: Vec<&&(&Case, View)> = start
        .iter()
        .filter(|(_, v)| v.idmap.is_some_and(|m| m != Idmap::None))
        .collect();
    if mapped.is_empty() {
        return None;
    }
    let cs: BTreeSet<usize> = start.iter().filter_map(|(_, v)| v.concurrency).collect();
    let cmax = *cs.last()?;
    let mut t = Table::new([
        "layout".to_string(),
        "depth".into(),
        "idmap".into(),
        "median @1".into(),
        "vs none @1".into(),
        format!("p99 @{cmax}"),
        format!("vs none @{cmax}"),
    ]);
    let mut keys: Vec<(String, usize)> = Vec::new();
    for (c, v) in &mapped {
        let k = (c.layout.clone(), v.depth);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.sort();
    for (layout, d) in keys {
        for mode in Idmap::ALL {
            if of.storm(TIME_TO_READY, &layout, d, *mode, 1).is_none() {
                continue;
            }
            let vs = |c: usize| {
                derived(r, backing, kinds::RATIO, &layout, |v| {
                    v.depth == d
                        && v.idmap == Some(*mode)
                        && v.concurrency == Some(c)
                        && v.baseline.as_deref() == Some(BASE_NO_IDMAP)
                })
                .map(|x| format!("{:.2}x", x.value))
                .unwrap_or_else(|| "-".into())
            };
            t.row(vec![
                layout.clone(),
                d.to_string(),
                mode.name().into(),
                ns(of.median(TIME_TO_READY, &layout, d, *mode, 1)),
                vs(1),
                ns(of.median(TIME_TO_READY_P99, &layout, d, *mode, cmax)),
                vs(cmax),
            ]);
        }
    }
    Some(t)
}

/// The mount table against mounts held, and its slopes.
fn mount_tables(r: &Report, of: &Of<'_>, backing: &str) -> Option<(Table, Table)> {
    let table = of.of_phase(Phase::MountTable);
    if table.is_empty() {
        return None;
    }
    let get = |metric: &str, layout: &str, held: usize| {
        table
            .iter()
            .find(|(c, v)| c.metric == metric && c.layout == layout && v.held == Some(held))
            .map(|(c, _)| c.stats.median)
    };
    let mut t = Table::new([
        "layout",
        "mounts held",
        "mountinfo size",
        "read",
        "read (CPU)",
        "parse",
        "one more mount",
        "its unmount",
    ]);
    let layouts = layouts_in(&table);
    for layout in &layouts {
        let helds: BTreeSet<usize> = table
            .iter()
            .filter(|(c, _)| c.layout == *layout)
            .filter_map(|(_, v)| v.held)
            .collect();
        for &n in &helds {
            if get(MOUNTINFO_READ, layout, n).is_none() {
                continue;
            }
            t.row(vec![
                layout.clone(),
                n.to_string(),
                get(MOUNTINFO_BYTES, layout, n)
                    .map(fmt_bytes)
                    .unwrap_or_else(|| "-".into()),
                ns(get(MOUNTINFO_READ, layout, n)),
                ns(get(MOUNTINFO_READ_CPU, layout, n)),
                ns(get(MOUNTINFO_PARSE, layout, n)),
                ns(get(MOUNT_TIME, layout, n)),
                ns(get(UNMOUNT_TIME, layout, n)),
            ]);
        }
    }
    let mut s = Table::new([
        "layout",
        "depth",
        "bytes per mount",
        "read per 1,000 mounts (r²)",
        "read CPU per 1,000 mounts",
        "parse per 1,000 mounts",
        "mount per 1,000 mounts",
        "removing all held",
    ]);
    for layout in &layouts {
        let slope = |metric: &str| {
            derived(r, backing, kinds::SLOPE, layout, |v| {
                v.of.as_deref() == Some(metric)
            })
        };
        let depth = table
            .iter()
            .find(|(c, _)| c.layout == *layout)
            .map(|(_, v)| v.depth)
            .unwrap_or(0);
        let helds: Vec<usize> = table
            .iter()
            .filter(|(c, v)| c.layout == *layout && c.metric == MOUNTINFO_BYTES && v.held.is_some())
            .filter_map(|(_, v)| v.held)
            .collect();
        let (lo, hi) = (
            helds.iter().copied().min().unwrap_or(0),
            helds.iter().copied().max().unwrap_or(0),
        );
        let per_mount = match (
            get(MOUNTINFO_BYTES, layout, lo),
            get(MOUNTINFO_BYTES, layout, hi),
        ) {
            (Some(a), Some(b)) if hi > lo => format!("{:.0} B", (b - a) / (hi - lo) as f64),
            _ => "-".into(),
        };
        let teardown = table
            .iter()
            .find(|(c, _)| c.layout == *layout && c.metric == TEARDOWN_TIME)
            .map(|(c, v)| format!("{} ({})", fmt_ns(c.stats.median), v.held.unwrap_or(0)))
            .unwrap_or_else(|| "-".into());
        s.row(vec![
            layout.clone(),
            depth.to_string(),
            per_mount,
            slope(MOUNTINFO_READ)
                .map(|d| d.slope_cell(fmt_ns))
                .unwrap_or_else(|| "-".into()),
            flat_or_ns(slope(MOUNTINFO_READ_CPU)),
            flat_or_ns(slope(MOUNTINFO_PARSE)),
            flat_or_ns(slope(MOUNT_TIME)),
            teardown,
        ]);
    }
    Some((t, s))
}

/// What the storms' containers on `backing` were, when the user's image:
/// said in the headings (the synthetic image goes unsaid, as before).
fn made_of(all: &[(&Case, View)], backing: &str) -> String {
    all.iter()
        .filter(|(_, v)| v.backing == backing && v.phase == Phase::Start)
        .find_map(|(_, v)| {
            let image = v.image.as_deref()?;
            Some(format!(
                " — containers of {image}, each reading the {} files its start read",
                v.read_set.unwrap_or(0)
            ))
        })
        .unwrap_or_default()
}

impl Section for StormSection {
    fn workload(&self) -> &'static str {
        NAME
    }

    fn blocks(&self, r: &Report) -> Vec<Block> {
        let all = views(r);
        backings_of(r, NAME)
            .into_iter()
            .flat_map(|backing| {
                let of = Of::new(&all, &backing);
                let mut blocks = Vec::new();
                if let Some((by_c, at_max)) = startup_tables(r, &of, &backing) {
                    blocks.push(Block {
                        heading: format!(
                            "storm — containers started at once ({backing}){}",
                            made_of(&all, &backing)
                        ),
                        intro: INTRO.into(),
                        tables: vec![
                            (
                                Some(
                                    "p99 time to ready by containers started at once (plain lowers):"
                                        .into(),
                                ),
                                by_c,
                            ),
                            (
                                Some(
                                    "The largest storm: time to ready and to stop over every container \
                                     of every round (p99: median of the per-storm p99s):"
                                        .into(),
                                ),
                                at_max,
                            ),
                        ],
                    });
                }
                if let Some(t) = idmap_table(r, &of, &backing) {
                    blocks.push(Block {
                        heading: format!("storm — idmapped lower layers ({backing})"),
                        intro: IDMAP_INTRO.into(),
                        tables: vec![(None, t)],
                    });
                }
                if let Some((t, s)) = mount_tables(r, &of, &backing) {
                    blocks.push(Block {
                        heading: format!("storm — mount table against mounts held ({backing})"),
                        intro: TABLE_INTRO.into(),
                        tables: vec![
                            (None, t),
                            (Some("Slopes (least squares of the medians):".into()), s),
                        ],
                    });
                }
                blocks
            })
            .collect()
    }

    fn terminal_blocks(&self, r: &Report) -> Vec<Block> {
        let all = views(r);
        backings_of(r, NAME)
            .into_iter()
            .filter_map(|backing| {
                let of = Of::new(&all, &backing);
                let mut tables = Vec::new();
                if let Some((by_c, _)) = startup_tables(r, &of, &backing) {
                    tables.push((None, by_c));
                }
                if let Some((_, s)) = mount_tables(r, &of, &backing) {
                    tables.push((Some("mount table (cost per 1,000 mounts held):".into()), s));
                }
                (!tables.is_empty()).then(|| Block {
                    heading: format!(
                        "storm on {backing} (p99 time to ready by containers started at once; ×C=1 = p99 over one alone){}",
                        made_of(&all, &backing)
                    ),
                    intro: String::new(),
                    tables,
                })
            })
            .collect()
    }

    fn chart_name(&self) -> Option<String> {
        Some("storm.svg".into())
    }

    fn chart(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        let all = views(report);
        let backings = backings_of(report, NAME);
        let rows = backings.len().max(1);
        svg_page(
            "storm.svg",
            (1200, 60 + 470 * rows as u32 * 2),
            "overlaybench · storm: containers started at once, and the mount table",
            |root| {
                let panels = root.split_evenly((rows * 2, 2));
                for (bi, backing) in backings.iter().enumerate() {
                    let of = Of::new(&all, backing);
                    let panel = |i: usize| &panels[bi * 4 + i];
                    let deepest = of
                        .of_phase(Phase::Start)
                        .iter()
                        .map(|(_, v)| v.depth)
                        .max()
                        .unwrap_or(0);
                    let start = of.of_phase(Phase::Start);
                    let layouts = layouts_in(&start);
                    let curve = |metric: &str, layout: &str, idmap: Idmap| -> Vec<(f64, f64)> {
                        let mut pts: Vec<(f64, f64)> = start
                            .iter()
                            .filter(|(c, v)| {
                                c.metric == metric
                                    && c.layout == layout
                                    && v.depth == deepest
                                    && v.idmap == Some(idmap)
                            })
                            .filter_map(|(c, v)| v.concurrency.map(|k| (k as f64, c.stats.median)))
                            .collect();
                        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                        pts
                    };
                    // Marker by layout, so lines read without colour too.
                    let by_layout = |metric: &str| -> Vec<Series> {
                        layouts
                            .iter()
                            .map(|l| Series {
                                label: l.clone(),
                                color: layout_color(l),
                                marker: layout_marker(l),
                                dashed: crate::layout::style_of(l).dashed,
                                points: curve(metric, l, Idmap::None),
                            })
                            .filter(|s| !s.points.is_empty())
                            .collect()
                    };
                    line_panel(
                        panel(0),
                        &format!("p99 time to ready, depth {deepest}, plain lowers · {backing}"),
                        Axis::new("containers started at once (C)", Unit::Count),
                        Axis::new("p99 time to ready", Unit::Ns),
                        &by_layout(TIME_TO_READY_P99),
                    )?;
                    // Idmap modes: marker and dash by mode, colour by layout.
                    let mut modes = Vec::new();
                    for l in &layouts {
                        let mapped = start.iter().any(|(c, v)| {
                            c.layout == *l && v.idmap.is_some_and(|m| m != Idmap::None)
                        });
                        if !mapped {
                            continue;
                        }
                        for (mode, marker, dashed) in [
                            (Idmap::None, Marker::Circle, false),
                            (Idmap::PerLayer, Marker::Triangle, true),
                            (Idmap::CommonParent, Marker::Cross, false),
                        ] {
                            let points = curve(TIME_TO_READY_P99, l, mode);
                            if !points.is_empty() {
                                modes.push(Series {
                                    label: format!("{l} · {}", mode.name()),
                                    color: layout_color(l),
                                    marker,
                                    dashed,
                                    points,
                                });
                            }
                        }
                    }
                    line_panel(
                        panel(1),
                        &format!("p99 time to ready, idmapped lowers, depth {deepest} · {backing}"),
                        Axis::new("containers started at once (C)", Unit::Count),
                        Axis::new("p99 time to ready", Unit::Ns),
                        &modes,
                    )?;
                    linear_panel(
                        panel(2),
                        &format!("starts per second, depth {deepest}, plain lowers · {backing}"),
                        Axis::new("containers started at once (C)", Unit::Count),
                        Axis::new("starts per second", Unit::Count),
                        &by_layout(STARTS_PER_SECOND),
                        None,
                    )?;
                    let table = of.of_phase(Phase::MountTable);
                    let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
                    for (c, v) in table.iter().filter(|(c, _)| c.metric == MOUNTINFO_READ) {
                        if let Some(n) = v.held {
                            lines
                                .entry(c.layout.clone())
                                .or_default()
                                .push((n as f64, c.stats.median));
                        }
                    }
                    let table_layouts = layouts_in(&table);
                    let series: Vec<Series> = table_layouts
                        .iter()
                        .filter_map(|l| {
                            let mut points = lines.remove(l)?;
                            points.sort_by(|a, b| a.0.total_cmp(&b.0));
                            Some(Series {
                                label: l.clone(),
                                color: layout_color(l),
                                marker: layout_marker(l),
                                dashed: crate::layout::style_of(l).dashed,
                                points,
                            })
                        })
                        .collect();
                    linear_panel(
                        panel(3),
                        &format!("reading /proc/self/mountinfo (open + read + close) · {backing}"),
                        Axis::new("mounts held", Unit::Count),
                        Axis::new("time per read", Unit::Ns),
                        &series,
                        None,
                    )?;
                }
                Ok(())
            },
        )
    }
}

/// storm's line in a capacity plan: how long a burst of every container of the
/// fleet starting at once (a node restart) takes to get its storage ready.
pub struct StormPlan;

impl PlanNotes for StormPlan {
    fn plan_notes(&self, report: &Report, fleet: &Fleet, backing: &str) -> Vec<String> {
        let all = views(report);
        let starts: Vec<&(&Case, View)> = all
            .iter()
            .filter(|(c, v)| {
                c.metric == STARTS_PER_SECOND
                    && v.phase == Phase::Start
                    && v.idmap == Some(Idmap::None)
            })
            .collect();
        let Some(on) = starts
            .iter()
            .find(|(_, v)| v.backing == backing)
            .or_else(|| starts.first())
            .map(|(_, v)| v.backing.clone())
        else {
            return Vec::new();
        };
        let starts: Vec<&&(&Case, View)> = starts.iter().filter(|(_, v)| v.backing == on).collect();
        // The measured depth nearest the fleet's layers (the deeper on a tie).
        let Some(depth) = starts
            .iter()
            .map(|(_, v)| v.depth)
            .min_by_key(|d| (d.abs_diff(fleet.layers), std::cmp::Reverse(*d)))
        else {
            return Vec::new();
        };
        let n = fleet.images.saturating_mul(fleet.containers) as usize;
        let mut out = Vec::new();
        for layout in layouts_in(&starts.iter().map(|x| **x).collect::<Vec<_>>()) {
            let pts: Vec<(usize, f64)> = starts
                .iter()
                .filter(|(c, v)| c.layout == layout && v.depth == depth)
                .filter_map(|(c, v)| v.concurrency.map(|k| (k, c.stats.median)))
                .collect();
            let Some(b) = burst(&pts, n) else { continue };
            let basis = match b.basis {
                BurstBasis::Measured { concurrency } => format!("measured with {concurrency} at once"),
                BurstBasis::Interpolated { below, above } => {
                    format!("between the storms of {below} and {above} at once")
                }
                BurstBasis::Extrapolated {
                    concurrency,
                    starts_per_second,
                } => format!(
                    "at {starts_per_second:.0} starts/s, the rate measured with {concurrency} at once"
                ),
            };
            out.push(format!(
                "start-up burst: {n} containers starting at once ({} images × {}, as after a node restart) have \
                 their storage ready (dirs, mount, first lookups) in ≈ {} with {layout} ({basis}; storm depth {depth}, nearest the fleet's \
                 {} layers; on {on})",
                fleet.images,
                fleet.containers,
                fmt_ns(b.seconds * 1e9),
                fleet.layers
            ));
        }
        out
    }
}
