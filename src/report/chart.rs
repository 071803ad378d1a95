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
