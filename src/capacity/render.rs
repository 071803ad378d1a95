//! Rendering a capacity plan: the terminal/markdown table and plan.svg.

use plotters::prelude::*;

use super::PlanReport;
use crate::report::chart::{
    layout_color, layout_marker, linear_panel, svg_page, Axis, Marker, Series, Unit,
};
use crate::report::{fmt_bytes, ReportError, Table};

/// One row per layout: needs, share of the filesystem, what runs out first.
pub fn plan_table(p: &PlanReport) -> Table {
    let mut t = Table::new([
        "layout",
        "inodes needed",
        "% of inodes",
        "bytes needed",
        "% of bytes",
        "images that fit",
        "containers",
        "runs out of",
    ]);
    for l in &p.layouts {
        t.row(vec![
            l.layout.clone(),
            format!("{:.0}", l.needed_inodes),
            format!("{:.1}%", l.pct_inodes),
            fmt_bytes(l.needed_bytes),
            format!("{:.1}%", l.pct_bytes),
            if l.max_images == u64::MAX {
                "unbounded".into()
            } else {
                l.max_images.to_string()
            },
            l.max_containers.to_string(),
            l.limited_by.clone(),
        ]);
    }
    t
}

/// plan.svg: used inodes and bytes vs number of images, per layout, with the
/// filesystem's limits drawn as lines.
pub fn plan_svg(p: &PlanReport) -> Result<Vec<u8>, ReportError> {
    let max_x = p
        .layouts
        .iter()
        .map(|l| l.max_images.min(p.fleet.images * 4))
        .chain([p.fleet.images])
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.2;
    let lines = |inodes: bool| -> Vec<Series> {
        let mut out: Vec<Series> = p
            .layouts
            .iter()
            .map(|l| {
                let c = &l.costs;
                let containers = p.fleet.containers as f64;
                let (base, per) = if inodes {
                    (
                        c.shared_base_inodes,
                        c.per_image_inodes + containers * c.per_container_inodes,
                    )
                } else {
                    (
                        c.shared_base_bytes,
                        c.per_image_bytes + containers * c.per_container_bytes,
                    )
                };
                Series {
                    label: format!("{} (fits {})", l.layout, l.max_images),
                    color: layout_color(&l.layout),
                    marker: layout_marker(&l.layout),
                    dashed: false,
                    points: vec![(0.0, base), (max_x, base + per * max_x)],
                }
            })
            .collect();
        let limit = if inodes {
            p.filesystem.available_inodes
        } else {
            p.filesystem.available_bytes
        } as f64;
        out.push(Series {
            label: if inodes {
                "inodes available".into()
            } else {
                "bytes available".into()
            },
            color: RGBColor(0, 0, 0),
            marker: Marker::Circle,
            dashed: true,
            points: vec![(0.0, limit), (max_x, limit)],
        });
        out
    };
    svg_page(
        "plan.svg",
        (1200, 520),
        &format!(
            "overlaybench · capacity plan: images of {} layers, {} containers each (costs: {})",
            p.fleet.layers, p.fleet.containers, p.costs_backing
        ),
        |root| {
            let panels = root.split_evenly((1, 2));
            let images = Axis::new("images (with their containers)", Unit::Count);
            linear_panel(
                &panels[0],
                "inodes used vs images",
                images,
                Axis::new("inodes", Unit::Count),
                &lines(true),
                None,
            )?;
            linear_panel(
                &panels[1],
                "bytes used vs images",
                images,
                Axis::new("bytes", Unit::Bytes),
                &lines(false),
                None,
            )?;
            Ok(())
        },
    )
}
