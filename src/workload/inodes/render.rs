//! inodes' section: per-unit costs per layout and layers, and inodes.svg (used
//! inodes and bytes by phase, growth of stored inodes with layers).

use std::collections::BTreeMap;

use super::keys::{ImageView, Phase, Quantity, Resource, View, NAME, STREAM};
use crate::report::chart::{layout_series, linear_panel, svg_page, Axis, Series, Unit};
use crate::report::summary::{backings_of, images_of};
use crate::report::{fmt_bytes, Block, Case, Derived, Report, ReportError, Section, Table};
use crate::workload::CaseView;

/// Renders inodes' cases.
pub struct InodesSection;

/// The chart of the user's images.
const IMAGE_CHART: &str = "inodes-images.svg";

const INTRO: &str = "Exact `statvfs` deltas of a fresh filesystem per layout (so counts never mix). \
*shared base*: the layers every image shares, stored once by overlay2 and the legacy driver (plain flattens \
every image); *per image*: each image's own layers; *per layer*: all stored layers / their count; *per \
container*: created + mounted + written (copy_ups, new files, deletions). Every figure is for this backing \
filesystem: tmpfs charges one inode per hard link. An EROFS layer is one image file (its files live inside it); \
composefs keeps one metadata image per image and each distinct file once in its object store, whatever image \
holds it, so its *per layer* is its images' cost over their layers.";

/// Short phase names that fit under the axis, in phase order.
const SHORT: [&str; 8] = [
    "empty", "base", "layers", "created", "mounted", "written", "ctrs rm", "imgs rm",
];

fn table(r: &Report, backing: &str) -> Option<Table> {
    let per_unit: Vec<(&Derived, View)> = r
        .derived
        .iter()
        .filter(|d| d.kind == "per-unit")
        .filter_map(|d| View::of_derived(d).map(|v| (d, v)))
        .filter(|(_, v)| v.backing == backing)
        .collect();
    if per_unit.is_empty() {
        return None;
    }
    let get = |layout: &str, layers: Option<usize>, quantity: Quantity, resource: Resource| {
        per_unit
            .iter()
            .find(|(d, v)| {
                d.layout == layout
                    && v.layers == layers
                    && v.quantity == Some(quantity)
                    && v.resource == Some(resource)
            })
            .map(|(d, _)| d.value)
    };
    let mut keys: Vec<(String, Option<usize>, Option<usize>)> = Vec::new();
    for (d, v) in &per_unit {
        let k = (d.layout.clone(), v.layers, v.base_layers);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut t = Table::new([
        "layout",
        "layers/image (shared)",
        "inodes: shared base",
        "per image",
        "per layer",
        "per container",
        "bytes: per image",
        "per container",
    ]);
    let n = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into());
    let b = |v: Option<f64>| v.map(fmt_bytes).unwrap_or_else(|| "-".into());
    for (layout, layers, base) in keys {
        t.row(vec![
            layout.clone(),
            format!("{} ({})", layers.unwrap_or(0), base.unwrap_or(0)),
            n(get(&layout, layers, Quantity::SharedBase, Resource::Inodes)),
            n(get(&layout, layers, Quantity::Image, Resource::Inodes)),
            n(get(&layout, layers, Quantity::Layer, Resource::Inodes)),
            n(get(&layout, layers, Quantity::Container, Resource::Inodes)),
            b(get(&layout, layers, Quantity::Image, Resource::Bytes)),
            b(get(&layout, layers, Quantity::Container, Resource::Bytes)),
        ]);
    }
    Some(t)
}

const IMAGE_INTRO: &str = "Your image, stored by each layout in one store on a fresh filesystem, one layer at a \
time: each cell is the `statvfs` delta of storing that layer (*shared* = an earlier image stored it already; \
plain stores every image flattened, as one unit). *per container*: created, mounted and written (copy_up of \
some of the image's files, new files, deletions). The first columns come from the layer streams alone (no \
layout): entries, hard links, whiteouts, file bytes, and the bytes later layers hide.";

/// Figures about `image` on `backing` (and from its streams), typed.
fn image_figures<'a>(r: &'a Report, image: &str) -> Vec<(&'a Case, ImageView)> {
    r.cases_of(NAME)
        .filter_map(|c| ImageView::of_case(c).map(|v| (c, v)))
        .filter(|(_, v)| v.image == image)
        .collect()
}

fn image_layouts(figures: &[(&Case, ImageView)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (c, _) in figures {
        if c.layout != STREAM && !out.contains(&c.layout) {
            out.push(c.layout.clone());
        }
    }
    out
}

/// The per-layer table of one image on one backing.
fn image_table(r: &Report, image: &str, backing: &str) -> Option<(Table, Option<Table>)> {
    let figures = image_figures(r, image);
    let on: Vec<&(&Case, ImageView)> = figures
        .iter()
        .filter(|(c, v)| c.layout == STREAM || v.backing.as_deref() == Some(backing))
        .collect();
    if !on.iter().any(|(c, _)| c.layout != STREAM) {
        return None;
    }
    let layouts = image_layouts(&figures);
    let get = |layout: &str, metric: &str, pred: &dyn Fn(&ImageView) -> bool| {
        on.iter()
            .find(|(c, v)| c.layout == layout && c.metric == metric && pred(v))
            .map(|(c, v)| (c.stats.median, v.clone()))
    };
    let layers = on.iter().map(|(_, v)| v.layers).max().unwrap_or(0);
    let mut head = vec![
        "layer".to_string(),
        "digest".into(),
        "entries".into(),
        "hard links".into(),
        "whiteouts".into(),
        "file bytes".into(),
        "hidden by later layers".into(),
    ];
    head.extend(layouts.iter().map(|l| format!("{l}: inodes · bytes")));
    let mut t = Table::new(head);
    let n = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into());
    let b = |v: Option<f64>| v.map(fmt_bytes).unwrap_or_else(|| "-".into());
    let cell = |layout: &str, pred: &dyn Fn(&ImageView) -> bool| -> String {
        match (
            get(layout, "stored_inodes", pred),
            get(layout, "stored_bytes", pred),
        ) {
            (Some((_, v)), _) if v.stored_before == Some(true) => "shared".into(),
            (Some((i, _)), Some((by, _))) => format!("{i:.0} · {}", fmt_bytes(by)),
            _ => "-".into(),
        }
    };
    for k in 0..layers {
        let at = |v: &ImageView| v.layer == Some(k) && v.quantity == Quantity::Layer;
        let stream = |m: &str| get(STREAM, m, &at).map(|(x, _)| x);
        let digest = get(STREAM, "stream_entries", &at)
            .and_then(|(_, v)| v.digest)
            .map(|d| {
                d.trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect::<String>()
            })
            .unwrap_or_else(|| "-".into());
        let mut row = vec![
            format!("{} of {layers}", k + 1),
            digest,
            n(stream("stream_entries")),
            n(stream("stream_hardlinks")),
            n(stream("stream_whiteouts")),
            b(stream("stream_file_bytes")),
            b(stream("stream_hidden_file_bytes")),
        ];
        row.extend(layouts.iter().map(|l| cell(l, &at)));
        t.row(row);
    }
    let whole =
        |v: &ImageView| v.quantity == Quantity::Image && v.layer.is_none() && v.dir.is_none();
    let mut row = vec![
        "image".to_string(),
        String::new(),
        n(get(STREAM, "stream_paths", &whole).map(|x| x.0)),
        n(get(STREAM, "stream_hardlink_paths", &whole).map(|x| x.0)),
        String::new(),
        b(get(STREAM, "stream_file_bytes", &whole).map(|x| x.0)),
        String::new(),
    ];
    row.extend(layouts.iter().map(|l| cell(l, &whole)));
    t.row(row);
    let ctr = |v: &ImageView| v.quantity == Quantity::Container;
    let mut row = vec![
        "per container".to_string(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    ];
    row.extend(layouts.iter().map(|l| {
        match (
            get(l, "container_inodes", &ctr),
            get(l, "container_bytes", &ctr),
        ) {
            (Some((i, _)), Some((by, _))) => format!("{i:.0} · {}", fmt_bytes(by)),
            _ => "-".into(),
        }
    }));
    t.row(row);
    let dirs: Vec<(String, f64)> = on
        .iter()
        .filter(|(c, _)| c.metric == "dir_entries")
        .filter_map(|(c, v)| v.dir.clone().map(|d| (d, c.stats.median)))
        .collect();
    let dirs = (!dirs.is_empty()).then(|| {
        let mut d = Table::new(["directory", "entries"]);
        for (p, e) in dirs {
            d.row(vec![p, format!("{e:.0}")]);
        }
        d
    });
    Some((t, dirs))
}

fn image_blocks(r: &Report, terminal: bool) -> Vec<Block> {
    let mut out = Vec::new();
    for backing in backings_of(r, NAME) {
        for image in images_of(r, NAME) {
            let Some((t, dirs)) = image_table(r, &image, &backing) else {
                continue;
            };
            let mut tables = vec![(None, t)];
            if let (Some(d), false) = (dirs, terminal) {
                tables.push((Some("Largest directories of the image:".into()), d));
            }
            out.push(Block {
                heading: if terminal {
                    format!("inodes of {image} on {backing} (per layer, statvfs deltas)")
                } else {
                    format!("inodes — {image}, per layer ({backing})")
                },
                intro: if terminal {
                    String::new()
                } else {
                    IMAGE_INTRO.into()
                },
                tables,
            });
        }
    }
    out
}

/// Host inodes and bytes per stored layer of each layout that holds the same
/// trees as another (an EROFS layer against the overlay2 diff dir it was made
/// from), side by side.
fn same_tree_table(r: &Report, backing: &str) -> Option<Table> {
    let per_layer = |layout: &str, layers: Option<usize>, resource: Resource| {
        r.derived
            .iter()
            .filter(|d| d.kind == "per-unit" && d.layout == layout)
            .find(|d| {
                View::of_derived(d).is_some_and(|v| {
                    v.backing == backing
                        && v.layers == layers
                        && v.quantity == Some(Quantity::Layer)
                        && v.resource == Some(resource)
                })
            })
            .map(|d| d.value)
    };
    let mut t = Table::new([
        "layout",
        "layers/image",
        "host inodes per layer",
        "against",
        "its inodes per layer",
        "bytes per layer",
        "its bytes per layer",
    ]);
    let mut seen: Vec<(String, Option<usize>)> = Vec::new();
    for d in r.derived.iter().filter(|d| d.kind == "per-unit") {
        let Some(v) = View::of_derived(d).filter(|v| v.backing == backing) else {
            continue;
        };
        let Some(other) = crate::layout::caps_of(&d.layout).same_tree_as else {
            continue;
        };
        let key = (d.layout.clone(), v.layers);
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let n = |x: Option<f64>| x.map(|x| format!("{x:.0}")).unwrap_or_else(|| "-".into());
        let b = |x: Option<f64>| x.map(fmt_bytes).unwrap_or_else(|| "-".into());
        t.row(vec![
            d.layout.clone(),
            v.layers.map(|l| l.to_string()).unwrap_or_default(),
            n(per_layer(&d.layout, v.layers, Resource::Inodes)),
            other.to_string(),
            n(per_layer(other, v.layers, Resource::Inodes)),
            b(per_layer(&d.layout, v.layers, Resource::Bytes)),
            b(per_layer(other, v.layers, Resource::Bytes)),
        ]);
    }
    (!seen.is_empty()).then_some(t)
}

impl Section for InodesSection {
    fn workload(&self) -> &'static str {
        NAME
    }

    fn blocks(&self, r: &Report) -> Vec<Block> {
        let mut out: Vec<Block> = backings_of(r, NAME)
            .into_iter()
            .filter_map(|backing| {
                let t = table(r, &backing)?;
                let mut tables = vec![(None, t)];
                if let Some(st) = same_tree_table(r, &backing) {
                    tables.push((
                        Some("The same layers in another form: host cost per stored layer".into()),
                        st,
                    ));
                }
                Some(Block {
                    heading: format!(
                        "inodes — consumption per layer, image and container ({backing})"
                    ),
                    intro: INTRO.into(),
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
                let t = table(r, &backing)?;
                let mut tables = vec![(None, t)];
                if let Some(st) = same_tree_table(r, &backing) {
                    tables.push((
                        Some("the same layers in another form, per stored layer:".into()),
                        st,
                    ));
                }
                Some(Block {
                    heading: format!("inodes on {backing} (statvfs deltas, fresh fs per layout)"),
                    intro: String::new(),
                    tables,
                })
            })
            .collect();
        out.extend(image_blocks(r, true));
        out
    }

    fn chart_name(&self) -> Option<String> {
        Some("inodes.svg".into())
    }

    fn has_chart(&self, r: &Report) -> bool {
        r.cases_of(NAME).any(|c| View::of_case(c).is_some())
    }

    fn extra_chart_names(&self, r: &Report) -> Vec<String> {
        if r.cases_of(NAME)
            .any(|c| c.layout != STREAM && ImageView::of_case(c).is_some())
        {
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
            "overlaybench · your images: what storing them layer by layer costs, per layout (statvfs)",
            |root| {
                let panels = root.split_evenly((rows, 2));
                for (i, (backing, image)) in pairs.iter().enumerate() {
                    let figures = image_figures(report, image);
                    for (pi, (metric, what)) in
                        [("stored_inodes", "inodes"), ("stored_bytes", "bytes")]
                            .iter()
                            .enumerate()
                    {
                        let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
                        let mut units: Vec<(String, usize, f64)> = figures
                            .iter()
                            .filter(|(c, v)| {
                                c.metric == *metric
                                    && v.backing.as_deref() == Some(backing.as_str())
                                    && v.layer.is_some()
                            })
                            .map(|(c, v)| (c.layout.clone(), v.layer.unwrap_or(0), c.stats.median))
                            .collect();
                        units.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
                        for (layout, layer, value) in units {
                            let line = lines.entry(layout).or_default();
                            let before = line.last().map_or(0.0, |p| p.1);
                            if line.is_empty() {
                                line.push((0.0, 0.0));
                            }
                            line.push(((layer + 1) as f64, before + value));
                        }
                        let unit = if *what == "bytes" {
                            Unit::Bytes
                        } else {
                            Unit::Count
                        };
                        linear_panel(
                            &panels[i * 2 + pi],
                            &format!("{what} stored, {image} ({backing})"),
                            Axis::new("layers stored (bottom up)", Unit::Count),
                            Axis::new(what, unit),
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
        let backings = backings_of(report, NAME);
        let rows = backings.len().max(1);
        svg_page(
            "inodes.svg",
            (1400, 60 + 480 * rows as u32),
            "overlaybench · inodes and bytes used, per layout (statvfs of a fresh filesystem each)",
            |root| {
                let panels = root.split_evenly((rows, 3));
                for (bi, backing) in backings.iter().enumerate() {
                    let cases: Vec<(&Case, View)> = report
                        .cases_of(NAME)
                        .filter_map(|c| View::of_case(c).map(|v| (c, v)))
                        .filter(|(_, v)| v.backing == *backing)
                        .collect();
                    let deepest = cases
                        .iter()
                        .filter_map(|(_, v)| v.layers)
                        .max()
                        .unwrap_or(0);
                    let by_phase = |metric: &str| -> Vec<Series> {
                        let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
                        for (c, v) in cases
                            .iter()
                            .filter(|(c, v)| c.metric == metric && v.layers == Some(deepest))
                        {
                            if let Some(i) = v
                                .phase
                                .and_then(|ph| Phase::ALL.iter().position(|p| *p == ph))
                            {
                                lines
                                    .entry(c.layout.clone())
                                    .or_default()
                                    .push((i as f64, c.stats.median));
                            }
                        }
                        layout_series(lines)
                    };
                    let growth = || -> Vec<Series> {
                        let used = |c: &&(&Case, View), phase| {
                            c.0.metric == "used_inodes" && c.1.phase == Some(phase)
                        };
                        let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
                        for (c, v) in cases.iter().filter(|c| used(c, Phase::Layers)) {
                            let empty = cases
                                .iter()
                                .filter(|e| used(e, Phase::Empty))
                                .find(|(e, ev)| e.layout == c.layout && ev.layers == v.layers)
                                .map_or(0.0, |(e, _)| e.stats.median);
                            if let Some(l) = v.layers {
                                lines
                                    .entry(c.layout.clone())
                                    .or_default()
                                    .push((l as f64, c.stats.median - empty));
                            }
                        }
                        layout_series(lines)
                    };
                    linear_panel(
                        &panels[bi * 3],
                        &format!("used inodes by phase, {deepest}-layer images ({backing})"),
                        Axis::new("phase", Unit::Count),
                        Axis::new("inodes in use", Unit::Count),
                        &by_phase("used_inodes"),
                        Some(&SHORT),
                    )?;
                    linear_panel(
                        &panels[bi * 3 + 1],
                        &format!("used bytes by phase, {deepest}-layer images ({backing})"),
                        Axis::new("phase", Unit::Count),
                        Axis::new("bytes in use", Unit::Bytes),
                        &by_phase("used_bytes"),
                        Some(&SHORT),
                    )?;
                    linear_panel(
                        &panels[bi * 3 + 2],
                        &format!("inodes of all image layers vs layers per image ({backing})"),
                        Axis::new("layers per image", Unit::Count),
                        Axis::new("inodes (layers phase − empty)", Unit::Count),
                        &growth(),
                        None,
                    )?;
                }
                Ok(())
            },
        )
    }
}
