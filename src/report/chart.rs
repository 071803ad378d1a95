//! Chart primitives for SVG charts (plotters): a page, log-log and linear line
//! panels with titles and labelled axes. Workloads draw their own charts from
//! these; what makes a chart readable is decided here, once, for all of them:
//!
//! - ticks sit at round values *in the unit shown* (`64 MiB`, `256 MiB`, `2 µs`,
//!   `5 ms`; powers of two on log axes of sizes and counts), never at `190.7 MiB`;
//! - every line of a panel differs from the others without colour: by marker
//!   and dash (`distinguish`), and the legend shows both;
//! - the legend sits under the plot area, never over the data.
//!
//! A layout's colour, dash and marker come from its registry entry, so every
//! chart draws a layout the same way.

use std::collections::BTreeMap;

pub use plotters::coord::Shift;
use plotters::element::{DashedPathElement, Drawable, PointCollection};
use plotters::prelude::*;
pub use plotters::prelude::{DrawingArea, DrawingBackend, RGBColor, SVGBackend};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters_backend::{BackendCoord, DrawingErrorKind};

use super::ReportError;

/// Marker drawn at each point (filled or open shapes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// Filled circle.
    Circle,
    /// Filled triangle.
    Triangle,
    /// Filled square.
    Square,
    /// Filled diamond.
    Diamond,
    /// Diagonal cross.
    Cross,
    /// Open circle.
    Ring,
    /// Open triangle.
    TriangleOpen,
    /// Open square.
    SquareOpen,
    /// Open diamond.
    DiamondOpen,
    /// Upright cross.
    Plus,
}

/// Every marker, in the order `distinguish` hands them out.
pub const MARKERS: [Marker; 10] = [
    Marker::Circle,
    Marker::Triangle,
    Marker::Square,
    Marker::Diamond,
    Marker::Cross,
    Marker::Ring,
    Marker::TriangleOpen,
    Marker::SquareOpen,
    Marker::DiamondOpen,
    Marker::Plus,
];

/// One line of a panel.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Line colour.
    pub color: RGBColor,
    /// Point marker.
    pub marker: Marker,
    /// Dashed line (used for warm, and for layouts whose style says so).
    pub dashed: bool,
    /// (x, y) points, x ascending.
    pub points: Vec<(f64, f64)>,
}

/// What an axis's values are, so that its ticks are round in the unit shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Whole things (layers, containers, inodes).
    Count,
    /// Nanoseconds, shown as ns, µs, ms or s.
    Ns,
    /// Bytes, shown in binary units.
    Bytes,
    /// Mebibytes (the values are already in MiB), shown in binary units.
    MiB,
}

/// An axis: its label and the unit of its values.
#[derive(Debug, Clone, Copy)]
pub struct Axis<'a> {
    /// Label under (x) or beside (y) the axis.
    pub label: &'a str,
    /// Unit of the values.
    pub unit: Unit,
}

impl<'a> Axis<'a> {
    /// An axis labelled `label` whose values are in `unit`.
    pub fn new(label: &'a str, unit: Unit) -> Axis<'a> {
        Axis { label, unit }
    }
}

/// A layout's colour, from its registry entry (stable across charts).
pub fn layout_color(layout: &str) -> RGBColor {
    let (r, g, b) = crate::layout::style_of(layout).rgb;
    RGBColor(r, g, b)
}

/// A layout's marker: a triangle where its style asks for one, otherwise the
/// marker of its place in the registry (stable across charts).
pub fn layout_marker(layout: &str) -> Marker {
    if crate::layout::style_of(layout).triangle {
        return Marker::Triangle;
    }
    let at = crate::layout::LAYOUTS
        .iter()
        .position(|e| e.name == layout)
        .unwrap_or(MARKERS.len() - 1);
    // Triangles are the triangle-styled layouts' own.
    let own: Vec<Marker> = MARKERS
        .iter()
        .copied()
        .filter(|m| *m != Marker::Triangle)
        .collect();
    own[at % own.len()]
}

/// The same lines, each with a (marker, dash) pair no other line of the panel
/// has: a line that repeats an earlier line's pair gets the first free marker
/// (with its own dash if any is left, else with the other dash).
pub fn distinguish(series: &[Series]) -> Vec<Series> {
    let mut used: Vec<(Marker, bool)> = Vec::new();
    series
        .iter()
        .map(|s| {
            let mut s = s.clone();
            if used.contains(&(s.marker, s.dashed)) {
                let free = [s.dashed, !s.dashed]
                    .iter()
                    .flat_map(|&d| MARKERS.iter().map(move |&m| (m, d)))
                    .find(|pair| !used.contains(pair));
                if let Some((m, d)) = free {
                    s.marker = m;
                    s.dashed = d;
                }
            }
            used.push((s.marker, s.dashed));
            s
        })
        .collect()
}

/// An SVG page: white background, a title, then `draw` on the area under it.
pub fn svg_page(
    what: &str,
    size: (u32, u32),
    title: &str,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>,
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

/// Round ticks of an axis and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticks {
    /// Tick positions, ascending.
    pub values: Vec<f64>,
    /// Their labels, in the unit shown.
    pub labels: Vec<String>,
}

impl Ticks {
    fn label_of(&self, v: f64) -> String {
        self.values
            .iter()
            .position(|t| (t - v).abs() <= 1e-9 * t.abs().max(1e-12))
            .map(|i| self.labels[i].clone())
            .unwrap_or_default()
    }
}

/// A number without trailing zeros (`2`, `2.5`, `0.25`).
fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

const BINARY: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];

/// (scale, suffix) of the time unit a value of `ns` reads best in.
fn time_unit(ns: f64) -> (f64, &'static str) {
    match ns.abs() {
        v if v >= 1e9 => (1e9, "s"),
        v if v >= 1e6 => (1e6, "ms"),
        v if v >= 1e3 => (1e3, "µs"),
        _ => (1.0, "ns"),
    }
}

/// (scale, suffix) of the largest binary unit not above `bytes`.
fn byte_unit(bytes: f64) -> (f64, &'static str) {
    let mut i = 0;
    while i + 1 < BINARY.len() && bytes.abs() >= 1024f64.powi(i as i32 + 1) {
        i += 1;
    }
    (1024f64.powi(i as i32), BINARY[i])
}

/// A count as a tick reads it: `5000`, `15k`, `12M`.
fn count_label(v: f64) -> String {
    match v.abs() {
        a if a >= 1e6 => format!("{}M", trim(v / 1e6)),
        a if a >= 1e4 => format!("{}k", trim(v / 1e3)),
        _ => trim(v),
    }
}

/// `v` of `unit` as a tick label, in the unit that suits the value itself.
pub fn tick_label(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Count => count_label(v),
        Unit::Ns => {
            let (s, u) = time_unit(v);
            format!("{} {u}", trim(v / s))
        }
        Unit::Bytes | Unit::MiB => {
            let b = if unit == Unit::MiB { v * 1048576.0 } else { v };
            let (s, u) = byte_unit(b);
            format!("{} {u}", trim(b / s))
        }
    }
}

/// Round ticks covering `lo..=hi` on a linear axis: 1-2-5 steps (powers of two
/// for sizes) in one display unit chosen from the largest value, all labels in
/// that unit (`0 MiB`, `256 MiB`, `512 MiB`).
pub fn linear_ticks(unit: Unit, lo: f64, hi: f64) -> Ticks {
    let to_base = if unit == Unit::MiB { 1048576.0 } else { 1.0 };
    let (scale, suffix) = match unit {
        Unit::Count => (1.0, ""),
        Unit::Ns => time_unit(hi.max(lo.abs())),
        Unit::Bytes | Unit::MiB => {
            // A unit the top value is at least 4 of, so steps stay whole numbers.
            let (s, u) = byte_unit(hi.max(lo.abs()) * to_base / 4.0);
            (s / to_base, u)
        }
    };
    let (a, b) = (lo / scale, hi / scale);
    let span = (b - a).max(f64::MIN_POSITIVE);
    let binary = matches!(unit, Unit::Bytes | Unit::MiB);
    let candidates: Vec<f64> = (-6..=15)
        .flat_map(|k| {
            if binary {
                vec![2f64.powi(k)]
            } else {
                let d = 10f64.powi(k);
                vec![d, 2.0 * d, 5.0 * d]
            }
        })
        .filter(|s| unit != Unit::Count || *s >= 1.0)
        .collect();
    let step = candidates
        .iter()
        .copied()
        .find(|s| ((b / s - 1e-9).ceil() - (a / s + 1e-9).floor()) <= 7.0)
        .unwrap_or(span);
    // From the last tick at or below `lo` to the first at or above `hi`.
    let (first, last) = (
        (a / step + 1e-9).floor() as i64,
        (b / step - 1e-9).ceil() as i64,
    );
    let values: Vec<f64> = (first..=last.max(first + 1))
        .map(|i| i as f64 * step * scale)
        .collect();
    let labels = values
        .iter()
        .map(|v| {
            if unit == Unit::Count {
                count_label(*v)
            } else if suffix.is_empty() {
                trim(v / scale)
            } else {
                format!("{} {suffix}", trim(v / scale))
            }
        })
        .collect();
    Ticks { values, labels }
}

/// Round ticks covering `lo..=hi` (both > 0) on a log axis: decades (with 2
/// and 5 between them over a short range) for times and counts spanning many
/// decades; powers of two for sizes and small counts; at most about 8.
pub fn log_ticks(unit: Unit, lo: f64, hi: f64) -> Ticks {
    let powers = |base: f64, mults: &[f64]| -> Vec<f64> {
        let (k0, k1) = (
            lo.log(base).floor() as i32 - 1,
            hi.log(base).ceil() as i32 + 1,
        );
        (k0..=k1)
            .flat_map(|k| mults.iter().map(move |m| m * base.powi(k)))
            .filter(|v| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9))
            .collect()
    };
    let thin = |v: Vec<f64>| -> Vec<f64> {
        let stride = v.len().div_ceil(8).max(1);
        v.into_iter().step_by(stride).collect()
    };
    let values = match unit {
        Unit::Bytes | Unit::MiB => thin(powers(2.0, &[1.0])),
        Unit::Count if hi / lo <= 4096.0 => thin(powers(2.0, &[1.0])),
        _ => {
            let with_25 = powers(10.0, &[1.0, 2.0, 5.0]);
            if with_25.len() <= 8 {
                with_25
            } else {
                thin(powers(10.0, &[1.0]))
            }
        }
    };
    let labels = values.iter().map(|v| tick_label(unit, *v)).collect();
    Ticks { values, labels }
}

/// `lo..hi` (both > 0) widened outwards to the nearest round values of a log
/// axis (powers of two for sizes and small counts, 1-2-5 of a decade else), so
/// both ends carry a tick.
fn round_range(unit: Unit, lo: f64, hi: f64) -> (f64, f64) {
    let binary =
        matches!(unit, Unit::Bytes | Unit::MiB) || (unit == Unit::Count && hi / lo <= 4096.0);
    let round: Vec<f64> = if binary {
        let k = lo.log2().floor() as i32;
        (k - 1..=hi.log2().ceil() as i32 + 1)
            .map(|k| 2f64.powi(k))
            .collect()
    } else {
        let k = lo.log10().floor() as i32;
        (k - 1..=hi.log10().ceil() as i32 + 1)
            .flat_map(|k| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(k)))
            .collect()
    };
    let eps = 1e-9;
    // `round` ascends: the last value not above `lo`, the first not below `hi`.
    let below = round.iter().rev().copied().find(|t| *t <= lo * (1.0 + eps));
    let above = round.iter().copied().find(|t| *t >= hi * (1.0 - eps));
    (below.unwrap_or(lo).min(lo), above.unwrap_or(hi).max(hi))
}

const LEGEND_FONT: u32 = 11;
const LEGEND_ROW: u32 = 16;
const SAMPLE: i32 = 36;

/// Columns and rows the legend of `series` takes in `width` pixels.
fn legend_grid(series: &[Series], width: u32) -> (usize, usize, i32) {
    let longest = series
        .iter()
        .map(|s| s.label.chars().count())
        .max()
        .unwrap_or(0) as i32;
    // ~0.6 em per character of an 11 px sans-serif face.
    let col = SAMPLE + 8 + longest * (LEGEND_FONT as i32 * 6 / 10 + 1) + 16;
    let cols = ((width as i32 - 20) / col.max(1)).max(1) as usize;
    let rows = series.len().div_ceil(cols);
    (cols, rows, col)
}

fn stroke(s: &Series) -> ShapeStyle {
    ShapeStyle::from(&s.color).stroke_width(2)
}

/// A marker centred on `at` (data or pixel coordinates), drawn in pixels.
struct MarkerAt<C> {
    at: C,
    marker: Marker,
    color: RGBColor,
}

fn marker_at<C>(marker: Marker, at: C, color: RGBColor) -> MarkerAt<C> {
    MarkerAt { at, marker, color }
}

impl<'a, C: 'a> PointCollection<'a, C> for &'a MarkerAt<C> {
    type Point = &'a C;
    type IntoIter = std::iter::Once<&'a C>;
    fn point_iter(self) -> Self::IntoIter {
        std::iter::once(&self.at)
    }
}

impl<C, DB: DrawingBackend> Drawable<DB> for MarkerAt<C> {
    fn draw<I: Iterator<Item = BackendCoord>>(
        &self,
        mut pos: I,
        backend: &mut DB,
        _: (u32, u32),
    ) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
        let Some((x, y)) = pos.next() else {
            return Ok(());
        };
        let fill = ShapeStyle::from(&self.color).filled();
        let line = ShapeStyle::from(&self.color).stroke_width(2);
        let at = |pts: &[(i32, i32)]| -> Vec<BackendCoord> {
            pts.iter().map(|(dx, dy)| (x + dx, y + dy)).collect()
        };
        let closed = |pts: &[(i32, i32)]| {
            let mut v = at(pts);
            v.push((x + pts[0].0, y + pts[0].1));
            v
        };
        let tri = [(0, -5), (5, 4), (-5, 4)];
        let sq = [(-4, -4), (4, -4), (4, 4), (-4, 4)];
        let dia = [(0, -5), (5, 0), (0, 5), (-5, 0)];
        match self.marker {
            Marker::Circle => backend.draw_circle((x, y), 4, &fill, true),
            Marker::Ring => backend.draw_circle((x, y), 4, &line, false),
            Marker::Triangle => backend.fill_polygon(at(&tri), &fill),
            Marker::TriangleOpen => backend.draw_path(closed(&tri), &line),
            Marker::Square => backend.fill_polygon(at(&sq), &fill),
            Marker::SquareOpen => backend.draw_path(closed(&sq), &line),
            Marker::Diamond => backend.fill_polygon(at(&dia), &fill),
            Marker::DiamondOpen => backend.draw_path(closed(&dia), &line),
            Marker::Cross => {
                backend.draw_line((x - 4, y - 4), (x + 4, y + 4), &line)?;
                backend.draw_line((x - 4, y + 4), (x + 4, y - 4), &line)
            }
            Marker::Plus => {
                backend.draw_line((x, y - 5), (x, y + 5), &line)?;
                backend.draw_line((x - 5, y), (x + 5, y), &line)
            }
        }
    }
}

/// A linear axis whose ticks are exactly `ticks` (plotters' own numeric axes
/// choose their own, and cannot take a formatter over fixed key points).
struct Ticked {
    range: std::ops::Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type ValueType = f64;
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;

    fn range(&self) -> std::ops::Range<f64> {
        self.range.clone()
    }

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let (a, b) = (self.range.start, self.range.end);
        if b == a {
            return (limit.0 + limit.1) / 2;
        }
        let f = (v - a) / (b - a);
        limit.0 + (f * (limit.1 - limit.0) as f64 + 1e-3).floor() as i32
    }

    fn key_points<H: plotters::coord::ranged1d::KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }
}

/// Draws the legend of `series` in `area` (under the plot): a line sample with
/// the line's dash and marker, then the label.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
) -> Result<(), String> {
    let (w, _) = area.dim_in_pixel();
    let (cols, _, col) = legend_grid(series, w);
    let font = ("sans-serif", LEGEND_FONT)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (i, s) in series.iter().enumerate() {
        let x = 14 + (i % cols) as i32 * col;
        let y = 10 + (i / cols) as i32 * LEGEND_ROW as i32;
        let seg = vec![(x, y), (x + SAMPLE, y)];
        if s.dashed {
            area.draw(&DashedPathElement::new(seg, 6, 4, stroke(s)))
        } else {
            area.draw(&PathElement::new(seg, stroke(s)))
        }
        .map_err(|e| e.to_string())?;
        area.draw(&marker_at(s.marker, (x + SAMPLE / 2, y), s.color))
            .map_err(|e| e.to_string())?;
        area.draw(&Text::new(
            s.label.clone(),
            (x + SAMPLE + 8, y),
            font.clone(),
        ))
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The plot area and, under it, the legend's (none for an empty legend).
fn split_for_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
) -> (DrawingArea<DB, Shift>, Option<DrawingArea<DB, Shift>>) {
    if series.is_empty() {
        return (area.clone(), None);
    }
    let (w, h) = area.dim_in_pixel();
    let (_, rows, _) = legend_grid(series, w);
    let legend_h = (rows as u32 * LEGEND_ROW + 8).min(h / 2);
    let (plot, legend) = area.split_vertically(h - legend_h);
    (plot, Some(legend))
}

type Chart<'a, DB, X, Y> = ChartContext<'a, DB, Cartesian2d<X, Y>>;

/// Draws every series' line and markers into `chart`.
fn draw_lines<DB: DrawingBackend, X, Y>(
    chart: &mut Chart<'_, DB, X, Y>,
    series: &[Series],
    keep: impl Fn(&(f64, f64)) -> bool,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for s in series {
        let points: Vec<(f64, f64)> = s.points.iter().copied().filter(|p| keep(p)).collect();
        if s.dashed {
            chart.draw_series(DashedLineSeries::new(points.clone(), 6, 4, stroke(s)))
        } else {
            chart.draw_series(LineSeries::new(points.clone(), stroke(s)))
        }
        .map_err(|e| e.to_string())?;
        chart
            .draw_series(points.into_iter().map(|p| marker_at(s.marker, p, s.color)))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn no_data<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, title: &str) -> Result<(), String> {
    area.titled(&format!("{title} (no data)"), ("sans-serif", 16))
        .map_err(|e| e.to_string())
        .map(drop)
}

/// Draws one panel with log axes, ticks round in each axis's unit.
pub fn line_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x: Axis<'_>,
    y: Axis<'_>,
    series: &[Series],
) -> Result<(), String> {
    let series = distinguish(series);
    let positive = |p: &(f64, f64)| p.0 > 0.0 && p.1 > 0.0;
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(positive)
        .collect();
    if pts.is_empty() {
        return no_data(area, title);
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (px, py) in &pts {
        (x0, x1, y0, y1) = (x0.min(*px), x1.max(*px), y0.min(*py), y1.max(*py));
    }
    let (x0, x1) = round_range(x.unit, x0, x1);
    let (y0, y1) = round_range(y.unit, y0, y1);
    // Room around the outermost points so markers are not cut by the frame.
    let (x0, x1, y0, y1) = (x0 / 1.12, x1 * 1.12, y0 / 1.25, y1 * 1.25);
    let (xt, yt) = (log_ticks(x.unit, x0, x1), log_ticks(y.unit, y0, y1));
    let (plot, legend) = split_for_legend(area, &series);
    let xs = (x0..x1).log_scale().with_key_points(xt.values.clone());
    let ys = (y0..y1).log_scale().with_key_points(yt.values.clone());
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(xs, ys)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x.label)
        .y_desc(y.label)
        .x_label_formatter(&|v| xt.label_of(*v))
        .y_label_formatter(&|v| yt.label_of(*v))
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(|e| e.to_string())?;
    draw_lines(&mut chart, &series, positive)?;
    match legend {
        Some(l) => draw_legend(&l, &series),
        None => Ok(()),
    }
}

/// Draws one panel with linear axes; `x_names` labels integer x positions
/// (phases) instead of numbers.
pub fn linear_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x: Axis<'_>,
    y: Axis<'_>,
    series: &[Series],
    x_names: Option<&[&str]>,
) -> Result<(), String> {
    let series = distinguish(series);
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    if pts.is_empty() {
        return no_data(area, title);
    }
    let fold = |f: fn(&(f64, f64)) -> f64, init: f64, g: fn(f64, f64) -> f64| {
        pts.iter().map(f).fold(init, g)
    };
    let (x0, x1) = (
        fold(|p| p.0, f64::MAX, f64::min),
        fold(|p| p.0, f64::MIN, f64::max),
    );
    let y1 = fold(|p| p.1, 0.0, f64::max);
    let y0 = fold(|p| p.1, 0.0, f64::min);
    let xt = match x_names {
        Some(names) => Ticks {
            values: (0..names.len()).map(|i| i as f64).collect(),
            labels: names.iter().map(|s| s.to_string()).collect(),
        },
        None => linear_ticks(x.unit, x0, x1.max(x0 + 1.0)),
    };
    let yt = linear_ticks(y.unit, y0, y1.max(y0 + 1.0));
    let (ya, yb) = (yt.values[0], yt.values[yt.values.len() - 1]);
    let (x0, x1) = (x0.min(xt.values[0]), x1.max(xt.values[xt.values.len() - 1]));
    let pad = ((x1 - x0) * 0.05).max(0.5);
    let ypad = (yb - ya) * 0.03;
    let (plot, legend) = split_for_legend(area, &series);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(
            Ticked {
                range: (x0 - pad)..(x1 + pad),
                ticks: xt.values.clone(),
            },
            Ticked {
                range: (ya - ypad)..(yb + ypad),
                ticks: yt.values.clone(),
            },
        )
        .map_err(|e| e.to_string())?;
    let (x_fmt, y_fmt) = (|v: &f64| xt.label_of(*v), |v: &f64| yt.label_of(*v));
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x.label)
        .y_desc(y.label)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .bold_line_style(RGBColor(225, 225, 225));
    if x_names.is_some() {
        mesh.x_label_style(("sans-serif", 10));
    }
    mesh.draw().map_err(|e| e.to_string())?;
    draw_lines(&mut chart, &series, |_| true)?;
    match legend {
        Some(l) => draw_legend(&l, &series),
        None => Ok(()),
    }
}

/// One line per layout, in the layout's registry style, points sorted by x.
pub fn layout_series(lines: BTreeMap<String, Vec<(f64, f64)>>) -> Vec<Series> {
    lines
        .into_iter()
        .map(|(layout, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                color: layout_color(&layout),
                dashed: crate::layout::style_of(&layout).dashed,
                marker: layout_marker(&layout),
                label: layout,
                points,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1048576.0;

    #[test]
    fn byte_ticks_are_round_in_the_unit_shown() {
        let t = linear_ticks(Unit::Bytes, 0.0, 1.07 * 1024.0 * MIB);
        assert_eq!(
            t.labels,
            ["0 MiB", "256 MiB", "512 MiB", "768 MiB", "1024 MiB", "1280 MiB"]
        );
        let t = linear_ticks(Unit::Bytes, 0.0, 64.0 * MIB);
        assert_eq!(t.labels, ["0 MiB", "16 MiB", "32 MiB", "48 MiB", "64 MiB"]);
        // Never a tick like 190.7 MiB.
        assert!(t.labels.iter().all(|l| !l.contains('.')), "{t:?}");
    }

    #[test]
    fn time_and_count_ticks_step_1_2_5() {
        let t = linear_ticks(Unit::Ns, 0.0, 23e6);
        assert_eq!(
            t.labels,
            ["0 ms", "5 ms", "10 ms", "15 ms", "20 ms", "25 ms"]
        );
        let t = linear_ticks(Unit::Count, 1.0, 4.0);
        assert_eq!(t.labels, ["1", "2", "3", "4"]);
        // The ticks cover the data: the last is at or above the largest value.
        let t = linear_ticks(Unit::Count, 0.0, 16_001.0);
        assert_eq!(t.labels, ["0", "5000", "10k", "15k", "20k"]);
        assert_eq!(tick_label(Unit::Count, 14e6), "14M");
    }

    #[test]
    fn log_ticks_are_powers_in_the_unit_shown() {
        let t = log_ticks(Unit::MiB, 1.0, 64.0);
        assert_eq!(
            t.labels,
            ["1 MiB", "2 MiB", "4 MiB", "8 MiB", "16 MiB", "32 MiB", "64 MiB"]
        );
        let t = log_ticks(Unit::MiB, 1.0, 1024.0);
        assert!(
            t.values.len() <= 8 && t.labels.contains(&"1 GiB".to_string()),
            "{t:?}"
        );
        let t = log_ticks(Unit::Ns, 3e3, 150e3);
        assert_eq!(t.labels, ["5 µs", "10 µs", "20 µs", "50 µs", "100 µs"]);
        let t = log_ticks(Unit::Ns, 3e3, 30e6);
        assert!(
            t.labels.contains(&"1 ms".to_string()) && t.values.len() <= 8,
            "{t:?}"
        );
        let t = log_ticks(Unit::Count, 1.0, 128.0);
        assert_eq!(t.labels, ["1", "2", "4", "8", "16", "32", "64", "128"]);
    }

    #[test]
    fn ranges_end_on_ticks() {
        assert_eq!(round_range(Unit::Ns, 3.2e3, 140e3), (2e3, 200e3));
        assert_eq!(round_range(Unit::Count, 1.0, 128.0), (1.0, 128.0));
        assert_eq!(round_range(Unit::MiB, 1.5, 48.0), (1.0, 64.0));
    }

    #[test]
    fn every_line_differs_without_colour() {
        let s = |label: &str, marker, dashed| Series {
            label: label.into(),
            color: RGBColor(0, 0, 0),
            marker,
            dashed,
            points: vec![(1.0, 1.0)],
        };
        let out = distinguish(&[
            s("a", Marker::Circle, false),
            s("b", Marker::Circle, false),
            s("c", Marker::Circle, true),
            s("d", Marker::Circle, true),
            s("e", Marker::Triangle, false),
        ]);
        let pairs: Vec<(Marker, bool)> = out.iter().map(|s| (s.marker, s.dashed)).collect();
        for (i, p) in pairs.iter().enumerate() {
            assert!(!pairs[..i].contains(p), "{pairs:?}");
        }
        assert_eq!(pairs[0], (Marker::Circle, false));
        assert_eq!(pairs[2], (Marker::Circle, true));
    }

    #[test]
    fn registry_layouts_get_distinct_markers() {
        let names = crate::layout::names();
        let markers: Vec<(Marker, bool)> = names
            .iter()
            .map(|n| (layout_marker(n), crate::layout::style_of(n).dashed))
            .collect();
        for (i, m) in markers.iter().enumerate() {
            assert!(!markers[..i].contains(m), "{names:?}: {markers:?}");
        }
    }

    #[test]
    fn legend_sits_under_the_plot() {
        let series: Vec<Series> = (0..8)
            .map(|i| Series {
                label: format!("series number {i}"),
                color: RGBColor(0, 0, 0),
                marker: Marker::Circle,
                dashed: false,
                points: vec![(1.0, 1.0 + i as f64), (2.0, 2.0 + i as f64)],
            })
            .collect();
        let svg = svg_page("t.svg", (500, 400), "t", |root| {
            linear_panel(
                root,
                "p",
                Axis::new("x", Unit::Count),
                Axis::new("y", Unit::Bytes),
                &series,
                None,
            )
        })
        .expect("renders");
        let text = String::from_utf8(svg).expect("utf8");
        // Every legend label is drawn below the x-axis label ("x").
        let y_of = |needle: &str| -> f64 {
            let i = text.find(needle).expect("label drawn");
            let tag = &text[text[..i].rfind("<text").expect("text tag")..i];
            let y = tag.split("y=\"").nth(1).expect("y attr");
            y[..y.find('"').expect("quote")].parse().expect("number")
        };
        // plotters writes each text on a line of its own.
        let axis = y_of(">\nx\n</text>");
        for i in 0..8 {
            assert!(
                y_of(&format!(">\nseries number {i}\n<")) > axis,
                "legend {i} over the plot"
            );
        }
    }
}
