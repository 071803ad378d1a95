//! lookup's section: the headline table (slope per layer, cold/warm medians,
//! ratio to the baseline at the deepest point), mount times, and lookup.svg.

use std::collections::{BTreeMap, BTreeSet};

use super::keys::{Cache, ImageView, Op, Target, View, NAME};
use crate::report::chart::{
    layout_color, layout_series, line_panel, linear_panel, svg_page, Axis, Marker, Series, Unit,
};
use crate::report::summary::{backings_of, images_of};
use crate::report::{fmt_ns, Block, Case, Headline, Report, ReportError, Section, Table};
use crate::workload::CaseView;

/// Renders lookup's cases.
pub struct LookupSection;

/// The chart of the user's images.
const IMAGE_CHART: &str = "lookup-images.svg";

const IMAGE_INTRO: &str = "Every path of your image looked up through each layout: *cold* = a fresh mount of the \
container with the scratch filesystem's caches evicted, the paths in path order (each after its parents), each \
`lstat` timed alone and averaged over a batch of names of the same layer; *warm* = the same names again. A name \
\"from layer k of n\" lives in layer k (counted from the bottom): overlay searches the layers above it first. \
*walk* = reading every directory and `lstat`ing every entry of the tree (what `find` or a language runtime's \
start-up does), cold then warm. Ratios are to `plain` in the same run.";

/// The table of one image on one backing: a row per layer and the walk.
fn image_table(r: &Report, image: &str, backing: &str) -> Option<Table> {
    let cases: Vec<(&Case, ImageView)> = r
        .cases_of(NAME)
        .filter_map(|c| ImageView::of_case(c).map(|v| (c, v)))
        .filter(|(_, v)| v.image == image && v.backing == backing)
        .collect();
    if cases.is_empty() {
        return None;
    }
    let mut layouts: Vec<String> = Vec::new();
    for (c, _) in &cases {
        if !layouts.contains(&c.layout) {
            layouts.push(c.layout.clone());
        }
    }
    let median = |layout: &str, op: Op, layer: Option<usize>, cache: Cache| {
        cases
            .iter()
            .find(|(c, v)| c.layout == layout && (v.op, v.layer, v.cache) == (op, layer, cache))
            .map(|(c, _)| c.stats.median)
    };
    let ratio = |layout: &str, op: Op, layer: Option<usize>| {
        r.derived
            .iter()
            .filter(|d| d.kind == "ratio" && d.layout == layout)
            .find(|d| {
                ImageView::of_derived(d).is_some_and(|v| {
                    v.image == image
                        && v.backing == backing
                        && (v.op, v.layer, v.cache) == (op, layer, Cache::Cold)
                })
            })
            .map(|d| format!(" ({:.2}x)", d.value))
            .unwrap_or_default()
    };
    let baseline = r
        .derived
        .iter()
        .filter_map(ImageView::of_derived)
        .find_map(|v| v.baseline)
        .unwrap_or_else(|| "baseline".into());
    let mut head = vec!["names".to_string(), "count".into()];
    for l in &layouts {
        head.push(format!("{l}: cold (vs {baseline})"));
        head.push(format!("{l}: warm"));
    }
    let mut t = Table::new(head);
    let mut rows: Vec<(Op, Option<usize>, String, usize)> = Vec::new();
    for (_, v) in &cases {
        let label = match (v.op, v.layer) {
            (Op::Walk, _) => "whole tree (walk)".to_string(),
            (_, Some(k)) => format!("from layer {} of {}", k + 1, v.layers),
            _ => "-".into(),
        };
        let row = (v.op, v.layer, label, v.names);
        if !rows.iter().any(|x| (x.0, x.1) == (row.0, row.1)) {
            rows.push(row);
        }
    }
    rows.sort_by_key(|r| (r.0 == Op::Walk, r.1));
    for (op, layer, label, names) in rows {
        let mut row = vec![label, names.to_string()];
        for l in &layouts {
            let cold = median(l, op, layer, Cache::Cold)
                .map(|v| format!("{}{}", fmt_ns(v), ratio(l, op, layer)))
                .unwrap_or_else(|| "-".into());
            row.push(cold);
            row.push(
                median(l, op, layer, Cache::Warm)
                    .map(fmt_ns)
                    .unwrap_or_else(|| "-".into()),
            );
        }
        t.row(row);
    }
    Some(t)
}

fn image_blocks(r: &Report, terminal: bool) -> Vec<Block> {
    let mut out = Vec::new();
    for backing in backings_of(r, NAME) {
        for image in images_of(r, NAME) {
            let Some(t) = image_table(r, &image, &backing) else {
                continue;
            };
            out.push(Block {
                heading: if terminal {
                    format!("lookup of {image} on {backing} (median per stat; per walk)")
                } else {
                    format!("lookup — every path of {image} ({backing})")
                },
                intro: if terminal {
                    String::new()
                } else {
                    IMAGE_INTRO.into()
                },
                tables: vec![(None, t)],
            });
        }
    }
    out
}

const INTRO: &str = "Medians per operation. *cold* = fresh overlay mount with the scratch filesystem's caches \
evicted, each name looked up once; *warm* = the same names again. Slopes are least-squares fits of the median against \
depth (image layers; the legacy `overlay` mount always has one lower). Ratios are to `plain` in the same run.";

/// The rows of the headline table, in order.
const ROWS: [(Op, Target); 4] = [
    (Op::Stat, Target::Top),
    (Op::Stat, Target::Bottom),
    (Op::Stat, Target::Missing),
    (Op::Readdir, Target::Spread),
];

/// The tables of one backing.
struct Tables {
    headline: Table,
    mount: Table,
    /// Start-up per depth, when it was measured.
    startup: Option<Table>,
    /// Layouts whose entries the kernel caches for a daemon's timeout.
    timeouts: Vec<(String, f64)>,
}

/// The headline, mount and start-up tables for one backing.
fn tables(r: &Report, backing: &str) -> Option<Tables> {
    let cases: Vec<(&Case, View)> = r
        .cases_of(NAME)
        .filter_map(|c| View::of_case(c).map(|v| (c, v)))
        .filter(|(_, v)| v.backing == backing)
        .collect();
    if cases.is_empty() {
        return None;
    }
    let depths: BTreeSet<usize> = cases.iter().filter_map(|(_, v)| v.depth).collect();
    let (lo, hi) = (*depths.first()?, *depths.last()?);
    let median = |layout: &str, op: Op, target: Target, cache: Cache, depth: usize| {
        cases
            .iter()
            .find(|(c, v)| {
                c.layout == layout
                    && (v.op, v.target, v.cache, v.depth) == (op, target, cache, Some(depth))
            })
            .map(|(c, _)| c.stats.median)
    };
    let derived = |kind: &str, layout: &str, op: Op, target: Target, depth: Option<usize>| {
        r.derived.iter().find(|d| {
            d.kind == kind
                && d.layout == layout
                && View::of_derived(d).is_some_and(|v| {
                    v.backing == backing
                        && (v.op, v.target, v.cache) == (op, target, Cache::Cold)
                        && depth.is_none_or(|dp| v.depth == Some(dp))
                        && v.same_tree.is_none()
                })
        })
    };
    let mut layouts: Vec<String> = Vec::new();
    for (c, _) in &cases {
        if !layouts.contains(&c.layout) {
            layouts.push(c.layout.clone());
        }
    }
    // The baseline is named by the ratios themselves.
    let baseline = r
        .derived
        .iter()
        .filter_map(View::of_derived)
        .find_map(|v| v.baseline)
        .unwrap_or_else(|| "baseline".into());
    let mut headline = Table::new([
        "layout".to_string(),
        "op · target".into(),
        "cold slope per layer (r²)".into(),
        format!("cold @{lo}"),
        format!("cold @{hi}"),
        format!("warm @{hi}"),
        format!("cold vs {baseline} @{hi}"),
    ]);
    let cell = |v: Option<f64>| v.map(fmt_ns).unwrap_or_else(|| "-".into());
    for layout in &layouts {
        for (op, target) in ROWS {
            let slope = derived("slope", layout, op, target, None)
                .map(|d| d.slope_cell(fmt_ns))
                .unwrap_or_else(|| "-".into());
            let ratio = derived("ratio", layout, op, target, Some(hi))
                .map(|d| format!("{:.2}x", d.value))
                .unwrap_or_else(|| "-".into());
            headline.row(vec![
                layout.clone(),
                format!("{} · {}", op_name(op), target.name()),
                slope,
                cell(median(layout, op, target, Cache::Cold, lo)),
                cell(median(layout, op, target, Cache::Cold, hi)),
                cell(median(layout, op, target, Cache::Warm, hi)),
                ratio,
            ]);
        }
    }
    // Layouts that mount at all (the baseline has no mount to time).
    let mounting: Vec<&String> = layouts
        .iter()
        .filter(|l| {
            cases
                .iter()
                .any(|(c, v)| c.layout == **l && v.op == Op::Mount)
        })
        .collect();
    let mut mount = Table::new(
        std::iter::once("depth".to_string()).chain(mounting.iter().map(|l| l.to_string())),
    );
    for &d in &depths {
        let mut row = vec![d.to_string()];
        for l in &mounting {
            row.push(cell(median(l, Op::Mount, Target::Stack, Cache::Cold, d)));
        }
        mount.row(row);
    }
    let starting: Vec<&String> = layouts
        .iter()
        .filter(|l| {
            cases
                .iter()
                .any(|(c, v)| c.layout == **l && v.op == Op::Startup)
        })
        .collect();
    let startup = (!starting.is_empty()).then(|| {
        let mut t = Table::new(
            std::iter::once("depth".to_string()).chain(starting.iter().map(|l| l.to_string())),
        );
        for &d in &depths {
            let mut row = vec![d.to_string()];
            for l in &starting {
                row.push(cell(median(l, Op::Startup, Target::Stack, Cache::Cold, d)));
            }
            t.row(row);
        }
        t
    });
    let mut timeouts: Vec<(String, f64)> = Vec::new();
    for (c, v) in &cases {
        if let Some(t) = v.entry_timeout_s {
            if !timeouts.iter().any(|(l, _)| *l == c.layout) {
                timeouts.push((c.layout.clone(), t));
            }
        }
    }
    Some(Tables {
        headline,
        mount,
        startup,
        timeouts,
    })
}

/// The caption that says how long a daemon lets the kernel cache its entries.
fn timeout_caption(timeouts: &[(String, f64)]) -> Option<String> {
    (!timeouts.is_empty()).then(|| {
        let each: Vec<String> = timeouts
            .iter()
            .map(|(l, t)| format!("`{l}` {t:e} s"))
            .collect();
        format!(
            "Entry/attribute timeout the kernel caches for (warm figures hold only within it): {}.",
            each.join(", ")
        )
    })
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Stat => "stat",
        Op::Readdir => "readdir",
        Op::Mount => "mount",
        Op::Walk => "walk",
        Op::Startup => "start-up",
        Op::Open => "open",
    }
}

/// Each layout against the layout holding the same trees in another form
/// (erofs against overlay2): cold medians' ratio at the shallowest and
/// deepest depth, for every op.
fn same_tree_table(r: &Report, backing: &str) -> Option<Table> {
    let ratios: Vec<(&crate::report::Derived, View)> = r
        .derived
        .iter()
        .filter(|d| d.kind == "ratio")
        .filter_map(|d| View::of_derived(d).map(|v| (d, v)))
        .filter(|(_, v)| v.backing == backing && v.same_tree.is_some() && v.cache == Cache::Cold)
        .collect();
    let depths: BTreeSet<usize> = ratios.iter().filter_map(|(_, v)| v.depth).collect();
    let (lo, hi) = (*depths.first()?, *depths.last()?);
    let mut t = Table::new([
        "layout".to_string(),
        "against".into(),
        "op · target".into(),
        format!("cold @{lo}"),
        format!("cold @{hi}"),
    ]);
    let mut rows: Vec<(String, String, Op, Target)> = Vec::new();
    for (d, v) in &ratios {
        let k = (
            d.layout.clone(),
            v.same_tree.clone().unwrap_or_default(),
            v.op,
            v.target,
        );
        if !rows.contains(&k) {
            rows.push(k);
        }
    }
    for (layout, against, op, target) in rows {
        let at = |depth: usize| {
            ratios
                .iter()
                .find(|(d, v)| {
                    d.layout == layout && (v.op, v.target, v.depth) == (op, target, Some(depth))
                })
                .map(|(d, _)| format!("{:.2}x", d.value))
                .unwrap_or_else(|| "-".into())
        };
        t.row(vec![
            layout.clone(),
            against,
            format!("{} · {}", op_name(op), target.name()),
            at(lo),
            at(hi),
        ]);
    }
    Some(t)
}

/// The store sweep: per layout, cold stat and cold first open of one image's
/// files with N images in the store, and the slope per image.
fn store_table(r: &Report, backing: &str) -> Option<Table> {
    let cases: Vec<(&Case, View)> = r
        .cases_of(NAME)
        .filter_map(|c| View::of_case(c).map(|v| (c, v)))
        .filter(|(_, v)| v.backing == backing && v.target == Target::Store)
        .collect();
    let ns: BTreeSet<usize> = cases.iter().filter_map(|(_, v)| v.store_images).collect();
    let (lo, hi) = (*ns.first()?, *ns.last()?);
    let mut layouts: Vec<String> = Vec::new();
    for (c, _) in &cases {
        if !layouts.contains(&c.layout) {
            layouts.push(c.layout.clone());
        }
    }
    let mut t = Table::new([
        "layout".to_string(),
        "op (cold)".into(),
        format!("{lo} image(s)"),
        format!("{hi} images"),
        "slope per image (r²)".into(),
        format!("warm @{hi}"),
    ]);
    let median = |layout: &str, op: Op, cache: Cache, n: usize| {
        cases
            .iter()
            .find(|(c, v)| {
                c.layout == layout && (v.op, v.cache, v.store_images) == (op, cache, Some(n))
            })
            .map(|(c, _)| fmt_ns(c.stats.median))
            .unwrap_or_else(|| "-".into())
    };
    for l in &layouts {
        for op in [Op::Stat, Op::Open] {
            let slope = r
                .derived
                .iter()
                .find(|d| {
                    d.kind == "slope"
                        && d.layout == *l
                        && View::of_derived(d).is_some_and(|v| {
                            v.backing == backing
                                && (v.op, v.target, v.cache) == (op, Target::Store, Cache::Cold)
                        })
                })
                .map(|d| d.slope_cell(fmt_ns))
                .unwrap_or_else(|| "-".into());
            t.row(vec![
                l.clone(),
                op_name(op).into(),
                median(l, op, Cache::Cold, lo),
                median(l, op, Cache::Cold, hi),
                slope,
                median(l, op, Cache::Warm, hi),
            ]);
        }
    }
    Some(t)
}

const STORE_INTRO: &str = "*Images sharing a store*: N images (one layer each, the same names, each image's \
own content) in one store per layout; one image's files are looked up cold (fresh mount, backing evicted) with \
`stat`, then opened and one byte read — the first access to a file's data, when overlay looks a composefs file \
up in the object store (a data-only layer is searched lazily, so `stat` never touches it). A flat slope means \
other images cost a lookup nothing.";

impl Section for LookupSection {
    fn workload(&self) -> &'static str {
        NAME
    }

    fn headline_source(&self) -> crate::report::HeadlineSource {
        crate::report::HeadlineSource::Cases
    }

    /// At the deepest depth, cold: a stat of a name only the bottom layer has,
    /// and a container's start-up.
    fn headlines(&self, r: &Report) -> Vec<Headline> {
        let views: Vec<(&Case, View)> = r
            .cases_of(NAME)
            .filter_map(|c| View::of_case(c).map(|v| (c, v)))
            .collect();
        let Some(hi) = views.iter().filter_map(|(_, v)| v.depth).max() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (op, target, figure) in [
            (
                Op::Stat,
                Target::Bottom,
                format!("lookup: stat of a bottom-layer name, {hi} layers, cold"),
            ),
            (
                Op::Startup,
                Target::Stack,
                format!("start-up: make + mount + first reads, {hi} layers, cold"),
            ),
        ] {
            for (c, v) in &views {
                if (v.op, v.target, v.cache, v.depth) == (op, target, Cache::Cold, Some(hi)) {
                    out.push(Headline {
                        figure: figure.clone(),
                        layout: c.layout.clone(),
                        backing: v.backing.clone(),
                        value: c.stats.median,
                        unit: "ns",
                        shown: fmt_ns(c.stats.median),
                        lower_is_better: true,
                    });
                }
            }
        }
        out
    }

    fn blocks(&self, r: &Report) -> Vec<Block> {
        let mut out: Vec<Block> = backings_of(r, NAME)
            .into_iter()
            .filter_map(|backing| {
                let t = tables(r, &backing)?;
                let mut tables = vec![
                    (timeout_caption(&t.timeouts), t.headline),
                    (
                        Some("Mount time of a fresh container (median):".into()),
                        t.mount,
                    ),
                ];
                if let Some(s) = t.startup {
                    tables.push((
                        Some(
                            "Start-up of a fresh container, cold: made (a snapshot, a copy or dirs) + mounted + its first reads (each start-up file of the bottom layer opened and read once), median:"
                                .into(),
                        ),
                        s,
                    ));
                }
                if let Some(same) = same_tree_table(r, &backing) {
                    tables.push((
                        Some("The same trees in another form: cold median against that layout's (same image, same depth):".into()),
                        same,
                    ));
                }
                let mut intro = INTRO.to_string();
                if let Some(store) = store_table(r, &backing) {
                    tables.push((Some("Images sharing a store (median per op):".into()), store));
                    intro = format!("{INTRO}\n\n{STORE_INTRO}");
                }
                Some(Block {
                    heading: format!("lookup — cost by lower depth ({backing})"),
                    intro,
                    tables,
                })
            })
            .collect();
        out.extend(image_blocks(r, false));
        out
    }

    fn terminal_blocks(&self, r: &Report) -> Vec<Block> {
        let mut out: Vec<Block> = backings_of(r, NAME)
            .into_iter()
            .filter_map(|backing| {
                let t = tables(r, &backing)?;
                let mut tables = vec![(timeout_caption(&t.timeouts), t.headline)];
                if let Some(s) = t.startup {
                    tables.push((
                        Some("start-up of a fresh container (make + mount + first reads, cold):".into()),
                        s,
                    ));
                }
                if let Some(same) = same_tree_table(r, &backing) {
                    tables.push((Some("against the same trees in another form (cold):".into()), same));
                }
                if let Some(store) = store_table(r, &backing) {
                    tables.push((Some("images sharing a store:".into()), store));
                }
                Some(Block {
                    heading: format!(
                        "lookup on {backing} (median per op; slope = cost of each extra layer, cold)"
                    ),
                    intro: String::new(),
                    tables,
                })
            })
            .collect();
        out.extend(image_blocks(r, true));
        out
    }

    fn chart_name(&self) -> Option<String> {
        Some("lookup.svg".into())
    }

    fn has_chart(&self, r: &Report) -> bool {
        r.cases_of(NAME).any(|c| View::of_case(c).is_some())
    }

    fn extra_chart_names(&self, r: &Report) -> Vec<String> {
        if r.cases_of(NAME).any(|c| ImageView::of_case(c).is_some()) {
            vec![IMAGE_CHART.into()]
        } else {
            Vec::new()
        }
    }

    fn extra_chart(&self, report: &Report, name: &str) -> Result<Vec<u8>, ReportError> {
        let pairs: Vec<(String, String)> = backings_of(report, NAME)
            .into_iter()
            .flat_map(|b| {
                images_of(report, NAME)
                    .into_iter()
                    .map(move |i| (b.clone(), i))
            })
            .collect();
        let rows = pairs.len().max(1);
        svg_page(
            name,
            (1200, 60 + 440 * rows as u32),
            "overlaybench · lookup of every path of your images, by the layer a name lives in (median per stat)",
            |root| {
                let panels = root.split_evenly((rows, 2));
                for (i, (backing, image)) in pairs.iter().enumerate() {
                    for (pi, cache) in [Cache::Cold, Cache::Warm].iter().enumerate() {
                        let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
                        for (c, v) in report
                            .cases_of(NAME)
                            .filter_map(|c| ImageView::of_case(c).map(|v| (c, v)))
                        {
                            if v.image != *image || v.backing != *backing || v.cache != *cache {
                                continue;
                            }
                            if let (Op::Stat, Some(k)) = (v.op, v.layer) {
                                lines
                                    .entry(c.layout.clone())
                                    .or_default()
                                    .push(((k + 1) as f64, c.stats.median));
                            }
                        }
                        linear_panel(
                            &panels[i * 2 + pi],
                            &format!("stat, {} — {image} ({backing})", cache.name()),
                            Axis::new("layer the name lives in (1 = bottom)", Unit::Count),
                            Axis::new("time per stat", Unit::Ns),
                            &layout_series(lines),
                            None,
                        )?;
                    }
                }
                Ok(())
            },
        )
    }

    fn chart(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        // (op, cache) → (layout, target) → points.
        type Lines = BTreeMap<(String, Target), Vec<(f64, f64)>>;
        let mut groups: BTreeMap<(Op, Cache), Lines> = BTreeMap::new();
        for c in report.cases_of(NAME) {
            let Some(v) = View::of_case(c) else { continue };
            let Some(depth) = v.depth else { continue };
            groups
                .entry((v.op, v.cache))
                .or_default()
                .entry((c.layout.clone(), v.target))
                .or_default()
                .push((depth as f64, c.stats.median));
        }
        let to_series = |op: Op, caches: &[Cache]| -> Vec<Series> {
            let mut out = Vec::new();
            for cache in caches {
                let Some(g) = groups.get(&(op, *cache)) else {
                    continue;
                };
                for ((layout, target), pts) in g {
                    let mut pts = pts.clone();
                    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                    let marker = match target {
                        Target::Top => Marker::Circle,
                        Target::Bottom => Marker::Triangle,
                        _ => Marker::Cross,
                    };
                    let label = if caches.len() > 1 {
                        format!("{layout} · {}", cache.name())
                    } else if op == Op::Stat {
                        format!("{layout} · {}", target.name())
                    } else {
                        layout.clone()
                    };
                    out.push(Series {
                        label,
                        color: layout_color(layout),
                        marker,
                        dashed: *cache == Cache::Warm,
                        points: pts,
                    });
                }
            }
            out
        };
        // The store sweep: (layout, op) → (images, median), cold.
        let mut store: BTreeMap<(String, Op), Vec<(f64, f64)>> = BTreeMap::new();
        for c in report.cases_of(NAME) {
            let Some(v) = View::of_case(c) else { continue };
            if let (Target::Store, Cache::Cold, Some(n)) = (v.target, v.cache, v.store_images) {
                store
                    .entry((c.layout.clone(), v.op))
                    .or_default()
                    .push((n as f64, c.stats.median));
            }
        }
        let store_series: Vec<Series> = store
            .into_iter()
            .map(|((layout, op), mut pts)| {
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                Series {
                    label: format!("{layout} · {}", op_name(op)),
                    color: layout_color(&layout),
                    marker: if op == Op::Open {
                        Marker::Triangle
                    } else {
                        Marker::Circle
                    },
                    dashed: op == Op::Open,
                    points: pts,
                }
            })
            .collect();
        let rows = if store_series.is_empty() { 2 } else { 3 };
        svg_page(
            "lookup.svg",
            (1200, 450 * rows as u32),
            "overlaybench · lookup cost by lower depth (median per operation)",
            |root| {
                let panels = root.split_evenly((rows, 2));
                let x = Axis::new("lower depth (image layers)", Unit::Count);
                line_panel(
                    &panels[0],
                    "stat, cold (fresh mount, caches evicted)",
                    x,
                    Axis::new("time per stat", Unit::Ns),
                    &to_series(Op::Stat, &[Cache::Cold]),
                )?;
                line_panel(
                    &panels[1],
                    "stat, warm (dentries cached)",
                    x,
                    Axis::new("time per stat", Unit::Ns),
                    &to_series(Op::Stat, &[Cache::Warm]),
                )?;
                line_panel(
                    &panels[2],
                    "readdir of a dir spread over all layers (solid cold, dashed warm)",
                    x,
                    Axis::new("time per directory", Unit::Ns),
                    &to_series(Op::Readdir, &[Cache::Cold, Cache::Warm]),
                )?;
                let startup: Vec<Series> = to_series(Op::Startup, &[Cache::Cold])
                    .into_iter()
                    .map(|s| Series {
                        label: format!("{} · start-up", s.label),
                        dashed: true,
                        ..s
                    })
                    .collect();
                let (title, unit) = if startup.is_empty() {
                    ("mount of a fresh container", "time per mount")
                } else {
                    (
                        "fresh container: mount (solid), start-up = make + mount + first reads (dashed)",
                        "time per container",
                    )
                };
                let mut series = to_series(Op::Mount, &[Cache::Cold]);
                series.extend(startup);
                line_panel(&panels[3], title, x, Axis::new(unit, Unit::Ns), &series)?;
                if rows == 3 {
                    line_panel(
                        &panels[4],
                        "cold stat (solid) and first open (dashed) vs images sharing the store",
                        Axis::new("images in the store", Unit::Count),
                        Axis::new("time per op", Unit::Ns),
                        &store_series,
                    )?;
                }
                Ok(())
            },
        )
    }
}
