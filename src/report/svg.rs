//! SVG charts (plotters). Every panel has a title, labelled axes with units and a
//! legend; colour = layout, marker = target, dashed = warm.

use std::collections::BTreeMap;

use plotters::prelude::*;

use super::{Exporter, Report, ReportError};

/// The chart for a workload, if it has one.
pub fn chart_for(workload: &str) -> Option<Box<dyn Exporter>> {
    match workload {
        "lookup" => Some(Box::new(LookupChart)),
        "copy-up" => Some(Box::new(CopyUpChart)),
        "inodes" => Some(Box::new(InodesChart)),
        "page-cache" => Some(Box::new(PageCacheChart)),
        _ => None,
    }
}

/// Marker drawn at each point.
#[derive(Debug, Clone, Copy)]
pub enum Marker {
    /// Filled circle.
    Circle,
    /// Triangle.
    Triangle,
    /// Cross.
    Cross,
}

/// One line of a panel.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Line colour.
    pub color: RGBColor,
    /// Point marker.
    pub marker: Marker,
    /// Dashed line (used for warm).
    pub dashed: bool,
    /// (x, y) points, x ascending.
    pub points: Vec<(f64, f64)>,
}

/// A colour per layout, stable across charts.
pub fn layout_color(layout: &str) -> RGBColor {
    match layout {
        "overlay2" => RGBColor(214, 39, 40),
        "overlay" => RGBColor(31, 119, 180),
        "plain" => RGBColor(44, 160, 44),
        _ => RGBColor(110, 110, 110),
    }
}

/// An SVG page: white background, a title, then `draw` on the area under it.
pub fn svg_page(
    what: &str,
    size: (u32, u32),
    title: &str,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<Vec<u8>, ReportError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let page = (|| {
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let area = root
                .titled(title, ("sans-serif", 20))
                .map_err(|e| e.to_string())?;
            draw(&area)?;
            root.present().map_err(|e| e.to_string())
        })();
        page.map_err(|detail| ReportError::Render {
            what: what.into(),
            detail,
        })?;
    }
    Ok(svg.into_bytes())
}

/// Draws one log-log line panel.
pub fn line_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), String> {
    line_panel_at(
        area,
        title,
        x_label,
        y_label,
        series,
        SeriesLabelPosition::UpperLeft,
    )
}

/// Like `line_panel`, with the legend where the data leaves room.
pub fn line_panel_at<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    legend: SeriesLabelPosition,
) -> Result<(), String> {
    let pts = || series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts() {
        if x > 0.0 && y > 0.0 {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 {
        area.titled(&format!("{title} (no data)"), ("sans-serif", 16))
            .map_err(|e| e.to_string())?;
        return Ok(());
    }
    if x1 <= x0 {
        x1 = x0 * 2.0;
    }
    // At least one decade, so a log axis always carries labels.
    let widen = ((10.0 * y0 / y1).max(1.0)).sqrt();
    let (y0, y1) = (y0 / 1.5 / widen, y1 * 1.5 * widen);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| super::table::fmt_ns(*y))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(|e| e.to_string())?;
    for s in series {
        let style = ShapeStyle::from(&s.color).stroke_width(2);
        let points = s
            .points
            .iter()
            .copied()
            .filter(|&(x, y)| x > 0.0 && y > 0.0);
        let anno = if s.dashed {
            chart.draw_series(DashedLineSeries::new(points.clone(), 6, 4, style))
        } else {
            chart.draw_series(LineSeries::new(points.clone(), style))
        }
        .map_err(|e| e.to_string())?;
        let color = s.color;
        anno.label(&s.label).legend(move |(x, y)| {
            PathElement::new(
                vec![(x, y), (x + 20, y)],
                ShapeStyle::from(&color).stroke_width(2),
            )
        });
        draw_markers(&mut chart, s, points)?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 11))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

type LogChart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<
        plotters::coord::combinators::LogCoord<f64>,
        plotters::coord::combinators::LogCoord<f64>,
    >,
>;

fn draw_markers<DB: DrawingBackend>(
    chart: &mut LogChart<'_, DB>,
    s: &Series,
    points: impl Iterator<Item = (f64, f64)>,
) -> Result<(), String> {
    let st = ShapeStyle::from(&s.color).filled();
    let hollow = ShapeStyle::from(&s.color).stroke_width(2);
    let r = match s.marker {
        Marker::Circle => chart.draw_series(points.map(|p| Circle::new(p, 4, st).into_dyn())),
        Marker::Triangle => {
            chart.draw_series(points.map(|p| TriangleMarker::new(p, 5, st).into_dyn()))
        }
        Marker::Cross => chart.draw_series(points.map(|p| Cross::new(p, 4, hollow).into_dyn())),
    };
    r.map(|_| ()).map_err(|e| e.to_string())
}

/// Points per (layout, target) series.
type SeriesPoints = BTreeMap<(String, String), Vec<(f64, f64)>>;

/// lookup.svg: cold stat, warm stat, readdir, mount time vs depth.
pub struct LookupChart;

impl Exporter for LookupChart {
    fn file_name(&self) -> String {
        "lookup.svg".into()
    }

    fn render(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        let cases: Vec<_> = report.cases_of("lookup").collect();
        // (op, cache) → series key (layout, target) → points.
        let mut groups: BTreeMap<(&str, &str), SeriesPoints> = BTreeMap::new();
        for c in &cases {
            let Some(depth) = c.param_f64("depth") else {
                continue;
            };
            groups
                .entry((c.param_str("op"), c.param_str("cache")))
                .or_default()
                .entry((c.layout.clone(), c.param_str("target").to_string()))
                .or_default()
                .push((depth, c.stats.median));
        }
        let to_series = |op: &str, caches: &[&str]| -> Vec<Series> {
            let mut out = Vec::new();
            for cache in caches {
                let Some(g) = groups.get(&(op, *cache)) else {
                    continue;
                };
                for ((layout, target), pts) in g {
                    let mut pts = pts.clone();
                    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                    let marker = match target.as_str() {
                        "top" => Marker::Circle,
                        "bottom" => Marker::Triangle,
                        _ => Marker::Cross,
                    };
                    let label = if caches.len() > 1 {
                        format!("{layout} · {cache}")
                    } else if op == "stat" {
                        format!("{layout} · {target}")
                    } else {
                        layout.clone()
                    };
                    out.push(Series {
                        label,
                        color: layout_color(layout),
                        marker,
                        dashed: *cache == "warm",
                        points: pts,
                    });
                }
            }
            out
        };
        svg_page(
            "lookup.svg",
            (1200, 900),
            "overlaybench · lookup cost by lower depth (median per operation)",
            |root| {
                let panels = root.split_evenly((2, 2));
                let x = "lower depth (image layers)";
                line_panel(
                    &panels[0],
                    "stat, cold (fresh mount, caches evicted)",
                    x,
                    "time per stat",
                    &to_series("stat", &["cold"]),
                )?;
                line_panel(
                    &panels[1],
                    "stat, warm (dentries cached)",
                    x,
                    "time per stat",
                    &to_series("stat", &["warm"]),
                )?;
                line_panel(
                    &panels[2],
                    "readdir of a dir spread over all layers (solid cold, dashed warm)",
                    x,
                    "time per directory",
                    &to_series("readdir", &["cold", "warm"]),
                )?;
                line_panel(
                    &panels[3],
                    "mount of a fresh container",
                    x,
                    "time per mount",
                    &to_series("mount", &["cold"]),
                )?;
                Ok(())
            },
        )
    }
}

/// A colour per overlay option set.
fn variant_color(options: &str) -> RGBColor {
    match options {
        "metacopy" => RGBColor(148, 103, 189),
        "volatile" => RGBColor(255, 127, 14),
        _ => RGBColor(214, 39, 40),
    }
}

/// copy-up.svg: cold latency vs file size, a panel per backing × op.
pub struct CopyUpChart;

impl Exporter for CopyUpChart {
    fn file_name(&self) -> String {
        "copy-up.svg".into()
    }

    fn render(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        let backings = super::summary::backings_of(report, "copy-up");
        let ops: Vec<&str> = super::summary::COPY_UP_OPS
            .iter()
            .copied()
            .filter(|op| {
                *op != "second-write"
                    && report.cases_of("copy-up").any(|c| c.param_str("op") == *op)
            })
            .collect();
        let cols = ops.len().clamp(1, 3);
        let rows_per_backing = ops.len().div_ceil(cols).max(1);
        let rows = rows_per_backing * backings.len().max(1);
        svg_page("copy-up.svg", (520 * cols as u32, 60 + 420 * rows as u32), "overlaybench · copy-up: first touch of a lower file, cold (median; fresh container per sample)", |root| {
            let panels = root.split_evenly((rows, cols));
            for (bi, backing) in backings.iter().enumerate() {
                for (oi, op) in ops.iter().enumerate() {
                    let mut lines: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
                    for c in report.cases_of("copy-up").filter(|c| {
                        c.param_str("backing") == backing
                            && c.param_str("cache") == "cold"
                            && (c.param_str("op") == *op || c.layout == "reference")
                    }) {
                        let Some(size) = c.param_f64("size_bytes") else {
                            continue;
                        };
                        lines
                            .entry((c.layout.clone(), c.param_str("options").to_string()))
                            .or_default()
                            .push((size / (1u64 << 20) as f64, c.stats.median));
                    }
                    let series: Vec<Series> = lines
                        .into_iter()
                        .map(|((layout, options), mut points)| {
                            points.sort_by(|a, b| a.0.total_cmp(&b.0));
                            let (color, dashed) = match layout.as_str() {
                                "reference" => (RGBColor(0, 0, 0), true),
                                "plain" => (layout_color("plain"), false),
                                _ => (variant_color(&options), false),
                            };
                            Series {
                                label: if layout == "plain" {
                                    "plain (no copy_up)".into()
                                } else {
                                    format!("{layout} · {options}")
                                },
                                color,
                                marker: if layout == "overlay" {
                                    Marker::Triangle
                                } else {
                                    Marker::Circle
                                },
                                dashed: dashed || layout == "overlay",
                                points,
                            }
                        })
                        .collect();
                    let panel = &panels[bi * rows_per_backing * cols + oi];
                    line_panel_at(
                        panel,
                        &format!("{op} on {backing}"),
                        "file size (MiB)",
                        "latency",
                        &series,
                        SeriesLabelPosition::LowerRight,
                    )
                    ?;
                }
            }
            Ok(())
        })
    }
}

/// Draws one panel with linear axes; `x_names` labels integer x positions (phases).
pub fn linear_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    x_names: Option<&[&str]>,
    y_fmt: &dyn Fn(&f64) -> String,
) -> Result<(), String> {
    let pts = || series.iter().flat_map(|s| s.points.iter());
    let x0 = pts().map(|p| p.0).fold(f64::MAX, f64::min);
    let x1 = pts().map(|p| p.0).fold(f64::MIN, f64::max);
    let y1 = pts().map(|p| p.1).fold(0.0, f64::max);
    if x0 > x1 {
        area.titled(&format!("{title} (no data)"), ("sans-serif", 16))
            .map_err(|e| e.to_string())?;
        return Ok(());
    }
    let pad = ((x1 - x0) * 0.05).max(0.5);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d((x0 - pad)..(x1 + pad), 0.0..(y1 * 1.1).max(1.0))
        .map_err(|e| e.to_string())?;
    let names = x_names.map(|n| n.to_vec());
    let x_fmt = move |x: &f64| match &names {
        Some(n) if (x.fract()).abs() < 1e-9 && *x >= 0.0 => n
            .get(*x as usize)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        Some(_) => String::new(),
        // Integer positions only: K, layers and counts are whole numbers.
        None if x.fract().abs() < 1e-9 => format!("{x:.0}"),
        None => String::new(),
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(y_fmt)
        .light_line_style(RGBColor(235, 235, 235));
    if let Some(n) = x_names {
        mesh.x_labels(n.len() + 1).x_label_style(("sans-serif", 10));
    }
    mesh.draw().map_err(|e| e.to_string())?;
    for s in series {
        let style = ShapeStyle::from(&s.color).stroke_width(2);
        let anno = if s.dashed {
            chart.draw_series(DashedLineSeries::new(s.points.iter().copied(), 6, 4, style))
        } else {
            chart.draw_series(LineSeries::new(s.points.iter().copied(), style))
        }
        .map_err(|e| e.to_string())?;
        let color = s.color;
        anno.label(&s.label).legend(move |(x, y)| {
            PathElement::new(
                vec![(x, y), (x + 20, y)],
                ShapeStyle::from(&color).stroke_width(2),
            )
        });
        let st = ShapeStyle::from(&s.color).filled();
        chart
            .draw_series(s.points.iter().map(|p| Circle::new(*p, 3, st)))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 11))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// inodes.svg: used inodes and bytes by phase (deepest image set) and growth with layers.
pub struct InodesChart;

impl Exporter for InodesChart {
    fn file_name(&self) -> String {
        "inodes.svg".into()
    }

    fn render(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        let backings = super::summary::backings_of(report, "inodes");
        let phases = crate::workload::inodes::PHASES;
        // Short names that fit under the axis, in the same order.
        let short = [
            "empty", "base", "layers", "created", "mounted", "written", "ctrs rm", "imgs rm",
        ];
        let rows = backings.len().max(1);
        svg_page(
            "inodes.svg",
            (1400, 60 + 480 * rows as u32),
            "overlaybench · inodes and bytes used, per layout (statvfs of a fresh filesystem each)",
            |root| {
                let panels = root.split_evenly((rows, 3));
                for (bi, backing) in backings.iter().enumerate() {
                    let cases: Vec<_> = report
                        .cases_of("inodes")
                        .filter(|c| c.param_str("backing") == backing)
                        .collect();
                    let deepest = cases
                        .iter()
                        .filter_map(|c| c.param_f64("layers"))
                        .fold(0.0, f64::max);
                    let by_phase = |metric: &str| -> Vec<Series> {
                        let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
                        for c in cases.iter().filter(|c| {
                            c.metric == metric && c.param_f64("layers") == Some(deepest)
                        }) {
                            if let Some(i) = phases.iter().position(|p| *p == c.param_str("phase"))
                            {
                                lines
                                    .entry(c.layout.clone())
                                    .or_default()
                                    .push((i as f64, c.stats.median));
                            }
                        }
                        to_series(lines)
                    };
                    let growth = || -> Vec<Series> {
                        let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
                        for c in cases.iter().filter(|c| {
                            c.metric == "used_inodes" && c.param_str("phase") == "layers"
                        }) {
                            let empty = cases
                                .iter()
                                .find(|e| {
                                    e.metric == "used_inodes"
                                        && e.layout == c.layout
                                        && e.param_str("phase") == "empty"
                                        && e.param_f64("layers") == c.param_f64("layers")
                                })
                                .map_or(0.0, |e| e.stats.median);
                            if let Some(l) = c.param_f64("layers") {
                                lines
                                    .entry(c.layout.clone())
                                    .or_default()
                                    .push((l, c.stats.median - empty));
                            }
                        }
                        to_series(lines)
                    };
                    let count = |v: &f64| format!("{v:.0}");
                    let bytes = |v: &f64| super::summary::fmt_bytes(*v);
                    linear_panel(
                        &panels[bi * 3],
                        &format!("used inodes by phase, {deepest:.0}-layer images ({backing})"),
                        "phase",
                        "inodes in use",
                        &by_phase("used_inodes"),
                        Some(&short),
                        &count,
                    )?;
                    linear_panel(
                        &panels[bi * 3 + 1],
                        &format!("used bytes by phase, {deepest:.0}-layer images ({backing})"),
                        "phase",
                        "bytes in use",
                        &by_phase("used_bytes"),
                        Some(&short),
                        &bytes,
                    )?;
                    linear_panel(
                        &panels[bi * 3 + 2],
                        &format!("inodes of all image layers vs layers per image ({backing})"),
                        "layers per image",
                        "inodes (layers phase − empty)",
                        &growth(),
                        None,
                        &count,
                    )?;
                }
                Ok(())
            },
        )
    }
}

fn to_series(lines: BTreeMap<String, Vec<(f64, f64)>>) -> Vec<Series> {
    lines
        .into_iter()
        .map(|(layout, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                color: layout_color(&layout),
                // The legacy driver often equals overlay2: dashed keeps both visible.
                dashed: layout == "overlay",
                label: layout,
                marker: Marker::Circle,
                points,
            }
        })
        .collect()
}

/// page-cache.svg: resident bytes vs K per layout, with perfect- and no-sharing lines.
pub struct PageCacheChart;

impl Exporter for PageCacheChart {
    fn file_name(&self) -> String {
        "page-cache.svg".into()
    }

    fn render(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        let backings = super::summary::backings_of(report, "page-cache");
        let rows = backings.len().max(1);
        svg_page(
            "page-cache.svg",
            (1200, 60 + 460 * rows as u32),
            "overlaybench · page cache used by K containers reading one image (mincore)",
            |root| {
                let panels = root.split_evenly((rows, 2));
                for (bi, backing) in backings.iter().enumerate() {
                    let cases: Vec<_> = report
                        .cases_of("page-cache")
                        .filter(|c| {
                            c.param_str("backing") == backing && c.metric == "resident_bytes"
                        })
                        .collect();
                    let set = cases
                        .iter()
                        .filter_map(|c| c.param_f64("set_bytes"))
                        .fold(0.0, f64::max);
                    let kmax = cases
                        .iter()
                        .filter_map(|c| c.param_f64("containers"))
                        .fold(1.0, f64::max);
                    for (pi, (phase, title)) in [
                        ("read", "every container reads the set"),
                        ("after-copy-up", "after half the containers copy_up the set"),
                    ]
                    .iter()
                    .enumerate()
                    {
                        let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
                        for c in cases.iter().filter(|c| c.param_str("phase") == *phase) {
                            if let Some(k) = c.param_f64("containers") {
                                lines
                                    .entry(c.layout.clone())
                                    .or_default()
                                    .push((k, c.stats.median));
                            }
                        }
                        let mut series = to_series(lines);
                        for (label, points) in [
                            ("perfect sharing (one copy)", vec![(1.0, set), (kmax, set)]),
                            (
                                "no sharing (K copies)",
                                vec![(1.0, set), (kmax, set * kmax)],
                            ),
                        ] {
                            series.push(Series {
                                label: label.into(),
                                color: if label.starts_with("perfect") {
                                    RGBColor(120, 120, 120)
                                } else {
                                    RGBColor(0, 0, 0)
                                },
                                marker: Marker::Circle,
                                dashed: true,
                                points,
                            });
                        }
                        let bytes = |v: &f64| super::summary::fmt_bytes(*v);
                        linear_panel(
                            &panels[bi * 2 + pi],
                            &format!("{title} ({backing})"),
                            "containers (K)",
                            "page cache resident",
                            &series,
                            None,
                            &bytes,
                        )?;
                    }
                }
                Ok(())
            },
        )
    }
}
