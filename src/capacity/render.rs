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
            if l.max_containers == u64::MAX {
                "unbounded".into()
            } else {
                l.max_containers.to_string()
            },
            l.limited_by.clone(),
        ]);
    }
    t
}

/// One sentence for a layout: which resource runs out first, and after how
/// many images (of the fleet's mix, each with its containers).
pub fn verdict(p: &PlanReport, l: &super::LayoutPlan) -> String {
    let asked = p.images_asked();
    if l.max_images == u64::MAX {
        return format!(
            "{}: nothing runs out (each image costs nothing more)",
            l.layout
        );
    }
    let (pct, other, other_pct) = if l.limited_by == super::INODES {
        (l.pct_inodes, "bytes", l.pct_bytes)
    } else {
        (l.pct_bytes, "inodes", l.pct_inodes)
    };
    let fits = if l.max_images >= asked {
        format!(
            "the {asked} asked fit, using {pct:.1}% of the {}",
            l.limited_by
        )
    } else {
        format!("only {} of the {asked} asked fit", l.max_images)
    };
    format!(
        "{}: {} run out first, after {} images — {fits} ({other}: {other_pct:.1}%)",
        l.layout, l.limited_by, l.max_images
    )
}

/// The per-layer costs a plan of real images projected from: a row per
/// image layer (or flattened image), a column per layout.
pub fn image_costs_table(p: &PlanReport) -> Table {
    let mut head = vec!["image".to_string(), "layer".into(), "chain id".into()];
    head.extend(p.image_costs.iter().map(|l| l.layout.clone()));
    let mut t = Table::new(head);
    for d in &p.images {
        let cell = |l: &super::images::LayoutImageCosts, layer: usize| -> String {
            let Some(c) = l.images.iter().find(|c| c.reference == d.reference) else {
                return "-".into();
            };
            match c.units.iter().find(|u| u.top_layer == layer) {
                Some(u) if u.layers > 1 => {
                    format!("{:.0} · {} (flattened)", u.inodes, fmt_bytes(u.bytes))
                }
                Some(u) => format!("{:.0} · {}", u.inodes, fmt_bytes(u.bytes)),
                None => "(in the flattened image)".into(),
            }
        };
        let chains: Vec<String> = p
            .image_costs
            .iter()
            .flat_map(|l| l.images.iter())
            .filter(|c| c.reference == d.reference)
            .flat_map(|c| c.units.iter())
            .filter(|u| u.layers == 1)
            .map(|u| u.chain_id.clone())
            .collect();
        for layer in 0..d.layers {
            let mut row = vec![
                d.reference.clone(),
                format!(
                    "{} of {}{}",
                    layer + 1,
                    d.layers,
                    if layer < d.shared_layers {
                        " (shared)"
                    } else {
                        ""
                    }
                ),
                chains
                    .get(layer)
                    .map(|c| c.trim_start_matches("sha256:").chars().take(12).collect())
                    .unwrap_or_default(),
            ];
            row.extend(p.image_costs.iter().map(|l| cell(l, layer)));
            t.row(row);
        }
        let mut row = vec![d.reference.clone(), "per container".into(), String::new()];
        row.extend(p.image_costs.iter().map(|l| {
            l.images
                .iter()
                .find(|c| c.reference == d.reference)
                .map(|c| {
                    format!(
                        "{:.0} · {}",
                        c.per_container_inodes,
                        fmt_bytes(c.per_container_bytes)
                    )
                })
                .unwrap_or_else(|| "-".into())
        }));
        t.row(row);
    }
    t
}

/// plan.svg: used inodes and bytes vs number of images, per layout, with the
/// filesystem's limits drawn as lines.
pub fn plan_svg(p: &PlanReport) -> Result<Vec<u8>, ReportError> {
    let max_x = p
        .layouts
        .iter()
        .map(|l| l.max_images.min(p.images_asked() * 4))
        .chain([p.images_asked()])
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
                let containers = p.containers_per_image();
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
            "overlaybench · capacity plan: {} (costs: {})",
            p.describe(),
            p.costs_backing
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
