//! Chart primitives for SVG charts (plotters): a page, log-log and linear line
//! panels with titles, labelled axes with units and legends. Workloads draw
//! their own charts from these; a layout's colour and dash come from its
//! registry entry, so every chart draws a layout the same way.

use std::collections::BTreeMap;

pub use plotters::coord::Shift;
use plotters::prelude::*;
pub use plotters::prelude::{
    DrawingArea, DrawingBackend, RGBColor, SVGBackend, SeriesLabelPosition,
};

use super::ReportError;

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

/// A layout's colour, from its registry entry (stable across charts).
pub fn layout_color(layout: &str) -> RGBColor {
    let (r, g, b) = crate::layout::style_of(layout).rgb;
    RGBColor(r, g, b)
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
        .y_label_formatter(&|y| super::fmt_ns(*y))
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

/// One line per layout, in the layout's registry style, points sorted by x.
pub fn layout_series(lines: BTreeMap<String, Vec<(f64, f64)>>) -> Vec<Series> {
    lines
        .into_iter()
        .map(|(layout, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                color: layout_color(&layout),
                dashed: crate::layout::style_of(&layout).dashed,
                label: layout,
                marker: Marker::Circle,
                points,
            }
        })
        .collect()
}

/// How a `doubling_panel`'s y axis is scaled and labelled.
pub enum YScale<'a> {
    /// Logarithmic, labelled as times (the values are ns).
    LogNs,
    /// Linear from 0, labelled by the function.
    Linear(&'a dyn Fn(&f64) -> String),
}

/// The first corner (upper left, upper right, lower right, lower left) where a
/// legend of `series` leaves every line visible. `to_unit` maps a data point
/// to the plotting area (0..1 on both axes, y up); `size` is the area in pixels.
pub fn free_corner(
    series: &[Series],
    to_unit: &dyn Fn((f64, f64)) -> (f64, f64),
    size: (u32, u32),
) -> SeriesLabelPosition {
    let longest = series
        .iter()
        .map(|s| s.label.chars().count())
        .max()
        .unwrap_or(0);
    let w = ((longest as f64 * 6.5 + 60.0) / size.0.max(1) as f64).min(1.0);
    let h = ((series.len() as f64 * 16.0 + 16.0) / size.1.max(1) as f64).min(1.0);
    // Lines sampled along each segment, not only at the points.
    let mut samples = Vec::new();
    for s in series {
        let pts: Vec<(f64, f64)> = s.points.iter().map(|&p| to_unit(p)).collect();
        samples.extend(pts.iter().copied());
        for pair in pts.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            samples.extend((1..20).map(|i| {
                let t = i as f64 / 20.0;
                (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1))
            }));
        }
    }
    let corners = [
        (SeriesLabelPosition::UpperLeft, (0.0, w), (1.0 - h, 1.0)),
        (
            SeriesLabelPosition::UpperRight,
            (1.0 - w, 1.0),
            (1.0 - h, 1.0),
        ),
        (SeriesLabelPosition::LowerRight, (1.0 - w, 1.0), (0.0, h)),
        (SeriesLabelPosition::LowerLeft, (0.0, w), (0.0, h)),
    ];
    for (pos, (x0, x1), (y0, y1)) in corners.iter().cloned() {
        let margin = 0.02;
        let covered = samples.iter().any(|&(x, y)| {
            x >= x0 - margin && x <= x1 + margin && y >= y0 - margin && y <= y1 + margin
        });
        if !covered {
            return pos;
        }
    }
    SeriesLabelPosition::UpperLeft
}

/// A line panel whose x doubles from point to point (containers started at
/// once, layers): log₂ x with a tick at each power of two in range, so ticks
/// are round and sit on the points. The legend shows each line's marker and
/// dash beside its colour, so lines read without colour too, and goes to the
/// first corner where it covers no line.
pub fn doubling_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    y: YScale<'_>,
) -> Result<(), String> {
    let pts = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.0 > 0.0 && p.1.is_finite())
    };
    let (mut x0, mut x1) = (f64::MAX, f64::MIN);
    let (mut y0, mut y1) = (f64::MAX, 0.0f64);
    for &(x, v) in pts() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        if v > 0.0 {
            y0 = y0.min(v);
        }
        y1 = y1.max(v);
    }
    if x0 > x1 || y1 <= 0.0 {
        area.titled(&format!("{title} (no data)"), ("sans-serif", 16))
            .map_err(|e| e.to_string())?;
        return Ok(());
    }
    let ticks: Vec<f64> = (x0.log2().ceil() as i32..=x1.log2().floor() as i32)
        .map(|e| 2f64.powi(e))
        .collect();
    let (x0, x1) = (x0 / 1.2, x1.max(x0 * 2.0) * 1.2);
    let x = (x0..x1).log_scale().with_key_points(ticks);
    let (w, h) = area.dim_in_pixel();
    // The plotting area, without caption, label areas and margins.
    let plot = (w.saturating_sub(110), h.saturating_sub(90));
    let ux = move |v: f64| (v.ln() - x0.ln()) / (x1.ln() - x0.ln());
    let x_fmt = |v: &f64| format!("{v:.0}");
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(80);
    match y {
        YScale::LogNs => {
            let widen = ((10.0 * y0 / y1).max(1.0)).sqrt();
            let (ya, yb) = (y0 / 1.5 / widen, y1 * 1.5 * widen);
            let legend = free_corner(
                series,
                &|(px, py)| (ux(px), (py.ln() - ya.ln()) / (yb.ln() - ya.ln())),
                plot,
            );
            let mut chart = builder
                .build_cartesian_2d(x, (ya..yb).log_scale())
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&|v| super::fmt_ns(*v))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(|e| e.to_string())?;
            draw_marked(&mut chart, series, legend)
        }
        YScale::Linear(fmt) => {
            let top = y1 * 1.15;
            let legend = free_corner(series, &|(px, py)| (ux(px), py / top), plot);
            let mut chart = builder
                .build_cartesian_2d(x, 0.0..top)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .x_label_formatter(&x_fmt)
                .y_label_formatter(fmt)
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(|e| e.to_string())?;
            draw_marked(&mut chart, series, legend)
        }
    }
}

/// Draws lines with their markers, and a legend showing colour, dash and marker.
fn draw_marked<'a, DB: DrawingBackend + 'a, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    series: &[Series],
    legend: SeriesLabelPosition,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for s in series {
        let style = ShapeStyle::from(&s.color).stroke_width(2);
        let points = s.points.iter().copied().filter(|&(x, _)| x > 0.0);
        let anno = if s.dashed {
            chart.draw_series(DashedLineSeries::new(points.clone(), 6, 4, style))
        } else {
            chart.draw_series(LineSeries::new(points.clone(), style))
        }
        .map_err(|e| e.to_string())?;
        let (color, dashed) = (s.color, s.dashed);
        // The marker as a character: one element type for every marker.
        let glyph = match s.marker {
            Marker::Circle => "●",
            Marker::Triangle => "▲",
            Marker::Cross => "✕",
        };
        anno.label(&s.label).legend(move |at| {
            let line = ShapeStyle::from(&color).stroke_width(2);
            let spans = if dashed {
                [(0, 6), (10, 16), (20, 26)]
            } else {
                [(0, 26), (0, 0), (0, 0)]
            };
            let [a, b, c] = spans.map(|(x0, x1)| PathElement::new(vec![(x0, 0), (x1, 0)], line));
            let font = ("sans-serif", 16).into_font().color(&color);
            EmptyElement::at(at) + a + b + c + Text::new(glyph, (9, -6), font)
        });
        let st = ShapeStyle::from(&s.color).filled();
        let hollow = ShapeStyle::from(&s.color).stroke_width(2);
        let r = match s.marker {
            Marker::Circle => chart.draw_series(points.map(|p| Circle::new(p, 4, st).into_dyn())),
            Marker::Triangle => {
                chart.draw_series(points.map(|p| TriangleMarker::new(p, 5, st).into_dyn()))
            }
            Marker::Cross => chart.draw_series(points.map(|p| Cross::new(p, 4, hollow).into_dyn())),
        };
        r.map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .legend_area_size(34)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 11))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}
