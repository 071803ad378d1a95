//! import's section: per image, what converting it into each layout costs (the
//! whole image, and layer by layer against the `mkfs.erofs` reference), and
//! import.svg (time per layer, per layout, one panel per image).

use std::collections::BTreeMap;

use super::keys::{Metric, View, NAME, REFERENCE};
use crate::report::chart::{layout_series, linear_panel, svg_page, Axis, Unit};
use crate::report::summary::backings_of;
use crate::report::{fmt_bytes, fmt_ns, kinds, Block, Case, Report, ReportError, Section, Table};
use crate::workload::CaseView;

/// Renders import's cases.
pub struct ImportSection;

const INTRO: &str = "What a pull costs: each image converted into every layout's store — *layer by layer* \
(layer k added to a store that holds the layers below it, as a pull that adds one layer to an image the host \
has; layouts that flatten an image, `plain` and `composefs`, rebuild it whole each time), and *whole* into a \
fresh store with the layout's own parallelism. *writeback* is the `syncfs` right after (not in the import \
time). `mkfs.erofs` alone is the reference: the EROFS conversion of each layer already unpacked in overlay form \
(this erofs-utils has no `--tar`, so containerd's tar-to-EROFS path cannot be timed here).";

fn cases<'a>(r: &'a Report, backing: &str) -> Vec<(&'a Case, View)> {
    r.cases_of(NAME)
        .filter_map(|c| View::of_case(c).map(|v| (c, v)))
        .filter(|(_, v)| v.backing == backing)
        .collect()
}

fn in_order(all: &[(&Case, View)], f: impl Fn(&View) -> String) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (_, v) in all {
        let k = f(v);
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

fn tables(r: &Report, backing: &str) -> Vec<(Option<String>, Table)> {
    let all = cases(r, backing);
    let mut out = Vec::new();
    for image in in_order(&all, |v| v.image.clone()) {
        let here: Vec<&(&Case, View)> = all.iter().filter(|(_, v)| v.image == image).collect();
        let mut layouts: Vec<String> = Vec::new();
        for (c, _) in &here {
            if !layouts.contains(&c.layout) {
                layouts.push(c.layout.clone());
            }
        }
        let get = |layout: &str, metric: Metric, layer: Option<usize>| {
            here.iter()
                .find(|(c, v)| c.layout == layout && c.metric == metric.name() && v.layer == layer)
                .map(|(c, _)| c.stats.median)
        };
        let layers: Vec<usize> = {
            let mut l: Vec<usize> = here.iter().filter_map(|(_, v)| v.layer).collect();
            l.sort_unstable();
            l.dedup();
            l
        };
        let derived = |layout: &str, kind: &str| {
            r.derived.iter().find(|d| {
                d.kind == kind
                    && d.layout == layout
                    && View::of_derived(d).is_some_and(|v| v.backing == backing && v.image == image)
            })
        };
        let mut t = Table::new([
            "layout",
            "whole image",
            "writeback",
            "MiB/s",
            "vs same tree",
            "layer by layer: sum",
            "median layer",
            "slowest layer",
        ]);
        let cell = |v: Option<f64>| v.map(fmt_ns).unwrap_or_else(|| "-".into());
        for l in &layouts {
            let per: Vec<f64> = layers
                .iter()
                .filter_map(|&k| get(l, Metric::Import, Some(k)))
                .collect();
            let mut sorted = per.clone();
            sorted.sort_by(f64::total_cmp);
            let same = derived(l, kinds::RATIO).map(|d| {
                format!(
                    "{:.2}x {}",
                    d.value,
                    View::of_derived(d)
                        .and_then(|v| v.same_tree)
                        .unwrap_or_default()
                )
            });
            t.row(vec![
                l.clone(),
                cell(get(l, Metric::Import, None)),
                cell(get(l, Metric::Writeback, None)),
                derived(l, kinds::THROUGHPUT)
                    .map(|d| format!("{:.0}", d.value))
                    .unwrap_or_else(|| "-".into()),
                same.unwrap_or_else(|| "-".into()),
                cell((!per.is_empty()).then(|| per.iter().sum())),
                cell(sorted.get(sorted.len() / 2).copied()),
                cell(sorted.last().copied()),
            ]);
        }
        out.push((Some(format!("{image} ({} layers)", layers.len())), t));
        // Layer by layer, each layout beside the reference.
        let mut lt = Table::new(
            ["layer".to_string(), "content".to_string()]
                .into_iter()
                .chain(layouts.iter().cloned()),
        );
        for &k in &layers {
            let bytes = here
                .iter()
                .find_map(|(_, v)| (v.layer == Some(k)).then_some(v.layer_bytes).flatten());
            let mut row = vec![
                k.to_string(),
                bytes
                    .map(|b| fmt_bytes(b as f64))
                    .unwrap_or_else(|| "-".into()),
            ];
            for l in &layouts {
                row.push(cell(get(l, Metric::Import, Some(k))));
            }
            lt.row(row);
        }
        out.push((
            Some(format!(
                "{image}: import time of each layer (bottom first; `{REFERENCE}` = conversion alone)"
            )),
            lt,
        ));
    }
    out
}

impl Section for ImportSection {
    fn workload(&self) -> &'static str {
        NAME
    }

    fn blocks(&self, r: &Report) -> Vec<Block> {
        backings_of(r, NAME)
            .into_iter()
            .map(|backing| Block {
                heading: format!("import — converting each image into each layout ({backing})"),
                intro: INTRO.into(),
                tables: tables(r, &backing),
            })
            .filter(|b| !b.tables.is_empty())
            .collect()
    }

    fn terminal_blocks(&self, r: &Report) -> Vec<Block> {
        backings_of(r, NAME)
            .into_iter()
            .map(|backing| Block {
                heading: format!("import on {backing} (whole image; layer by layer)"),
                intro: String::new(),
                // The per-image summary only: per-layer rows are in summary.md.
                tables: tables(r, &backing).into_iter().step_by(2).collect(),
            })
            .filter(|b| !b.tables.is_empty())
            .collect()
    }

    fn chart_name(&self) -> Option<String> {
        Some("import.svg".into())
    }

    fn chart(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        let backings = backings_of(report, NAME);
        let panels: Vec<(String, String)> = backings
            .iter()
            .flat_map(|b| {
                let all = cases(report, b);
                in_order(&all, |v| v.image.clone())
                    .into_iter()
                    .map(move |i| (b.clone(), i))
                    .collect::<Vec<_>>()
            })
            .collect();
        let rows = panels.len().max(1);
        svg_page(
            "import.svg",
            (1000, 60 + 420 * rows as u32),
            "overlaybench · import: time to add each layer to a layout's store",
            |root| {
                let areas = root.split_evenly((rows, 1));
                for (i, (backing, image)) in panels.iter().enumerate() {
                    let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
                    for (c, v) in cases(report, backing) {
                        if v.image != *image || c.metric != Metric::Import.name() {
                            continue;
                        }
                        if let Some(k) = v.layer {
                            lines
                                .entry(c.layout.clone())
                                .or_default()
                                .push((k as f64, c.stats.median));
                        }
                    }
                    linear_panel(
                        &areas[i],
                        &format!("{image} ({backing})"),
                        Axis::new("layer (0 = bottom)", Unit::Count),
                        Axis::new("import time", Unit::Ns),
                        &layout_series(lines),
                        None,
                    )?;
                }
                Ok(())
            },
        )
    }
}
