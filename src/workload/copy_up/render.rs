//! copy-up's section: per layout × options × op, the fit (fixed + per MiB), the
//! largest size cold and warm, throughput and the ratio to the reference copy;
//! and copy-up.svg (cold latency against size, a panel per backing × op).

use std::collections::BTreeMap;

use super::keys::{Cache, ImageView, Op, View, NAME, REFERENCE};
use crate::layout::{caps_of, style_of, CopyUp};
use crate::report::chart::{
    layout_color, line_panel, svg_page, Axis, Marker, RGBColor, Series, Unit,
};
use crate::report::summary::{backings_of, images_of};
use crate::report::{
    fmt_ns, fmt_ratio, Block, Case, Derived, Headline, Report, ReportError, Section, Table,
};
use crate::workload::CaseView;

/// Renders copy-up's cases.
pub struct CopyUpSection;

const INTRO: &str = "Medians per operation; every sample is a fresh container, so each first touch is a real \
copy_up (checked afterwards in the upper dir). *cold* = the lower file evicted (`posix_fadvise` DONTNEED), *warm* = \
read beforehand. *fixed* and *per MiB* are a least-squares fit of latency against file size; *flat* means the size \
does not matter (a clone, a metadata-only copy, or no copy). *vs reference* = the op / copying the same file with \
`copy_file_range` + `fsync` on the same filesystem in the same run, at the largest size.";

const MIB: f64 = (1u64 << 20) as f64;

/// The headline table for one backing, for the ops in `ops`.
fn table(r: &Report, backing: &str, ops: &[Op]) -> Option<Table> {
    let cases: Vec<(&Case, View)> = r
        .cases_of(NAME)
        .filter_map(|c| View::of_case(c).map(|v| (c, v)))
        .filter(|(_, v)| v.backing == backing)
        .collect();
    let sizes = || {
        cases
            .iter()
            .filter_map(|(_, v)| v.size_bytes)
            .map(|s| s as f64)
    };
    let max = sizes().fold(0.0, f64::max);
    if cases.is_empty() || max <= 0.0 {
        return None;
    }
    let find = |layout: &str, options: &str, op: Op, cache: Cache, size: f64| {
        cases
            .iter()
            .find(|(c, v)| {
                c.layout == layout
                    && v.options == options
                    && v.op == op
                    && v.cache == cache
                    && v.size_bytes.map(|s| s as f64) == Some(size)
            })
            .map(|(c, _)| c.stats.median)
    };
    let derived =
        |kind: &str, layout: &str, options: &str, op: Op, size: Option<f64>| -> Option<&Derived> {
            r.derived.iter().find(|d| {
                d.kind == kind
                    && d.layout == layout
                    && View::of_derived(d).is_some_and(|v| {
                        v.backing == backing
                            && v.options == options
                            && v.op == op
                            && v.cache == Cache::Cold
                            && size.is_none_or(|s| v.size_bytes.map(|b| b as f64) == Some(s))
                    })
            })
        };
    let mut rows: Vec<(String, String, Op)> = Vec::new();
    for (c, v) in &cases {
        let key = (c.layout.clone(), v.options.clone(), v.op);
        if (ops.contains(&v.op) || c.layout == REFERENCE) && !rows.contains(&key) {
            rows.push(key);
        }
    }
    let order = |op: Op| {
        Op::READING_ORDER
            .iter()
            .position(|o| *o == op)
            .unwrap_or(99)
    };
    // The reference sorts last.
    let rank = |l: &str| {
        if l == REFERENCE {
            "~".to_string()
        } else {
            l.to_string()
        }
    };
    rows.sort_by(|a, b| (rank(&a.0), &a.1, order(a.2)).cmp(&(rank(&b.0), &b.1, order(b.2))));
    let big = format!("{:.0} MiB", max / MIB);
    let mut t = Table::new([
        "layout".to_string(),
        "options".into(),
        "op".into(),
        "cold fixed".into(),
        "cold per MiB (r²)".into(),
        format!("cold @{big}"),
        format!("warm @{big}"),
        "cold MiB/s".into(),
        "vs reference".into(),
    ]);
    let cell = |v: Option<f64>| v.map(fmt_ns).unwrap_or_else(|| "-".into());
    for (layout, options, op) in rows {
        let slope = derived("slope", &layout, &options, op, None);
        let cold_max = find(&layout, &options, op, Cache::Cold, max);
        // Flat: the fitted growth over the measured range is small next to the cost
        // itself (a clone, a metadata-only copy, or no copy at all).
        let flat = slope.is_some_and(super::analyze::is_flat);
        let per_mib = slope
            .map(|d| {
                if flat {
                    "flat".to_string()
                } else {
                    format!("{} ({:.2})", fmt_ns(d.value), d.r2.unwrap_or(f64::NAN))
                }
            })
            .unwrap_or_else(|| "-".into());
        let fixed = slope
            .and_then(|d| d.intercept)
            .map(|v| fmt_ns(v.max(0.0)))
            .unwrap_or_else(|| "-".into());
        let ratio_at_max = derived("ratio", &layout, &options, op, Some(max)).map(|d| d.value);
        let mibs = if flat {
            "n/a (flat)".to_string()
        } else if ratio_at_max.is_some_and(|r| r < super::analyze::COPY_FRACTION) {
            "n/a (no copy)".to_string()
        } else {
            derived("throughput", &layout, &options, op, Some(max))
                .map(|d| format!("{:.0}", d.value))
                .unwrap_or_else(|| "-".into())
        };
        // An operation that copies nothing has no rate to compare with the
        // reference copy's.
        let ratio = if flat {
            "-".to_string()
        } else {
            derived("ratio", &layout, &options, op, Some(max))
                .map(|d| fmt_ratio(d.value))
                .unwrap_or_else(|| "-".into())
        };
        t.row(vec![
            layout.clone(),
            options.clone(),
            op.name().to_string(),
            fixed,
            per_mib,
            cell(cold_max),
            cell(find(&layout, &options, op, Cache::Warm, max)),
            mibs,
            ratio,
        ]);
    }
    Some(t)
}

/// The chart of the user's images.
const IMAGE_CHART: &str = "copy-up-images.svg";

const IMAGE_INTRO: &str = "The largest regular files of your image, each first touched in a fresh container \
per sample (cold: the lower file evicted first), per layout and overlay option set. Each cell is the median; \
*vs reference* = the op on the largest file / copying that file with `copy_file_range` + `fsync` on the same \
filesystem in the same run.";

/// The table of one image on one backing: a row per layout × options × op,
/// a column per file.
fn image_table(r: &Report, image: &str, backing: &str, ops: &[Op]) -> Option<Table> {
    let cases: Vec<(&Case, ImageView)> = r
        .cases_of(NAME)
        .filter_map(|c| ImageView::of_case(c).map(|v| (c, v)))
        .filter(|(_, v)| v.image == image && v.backing == backing && v.cache == Cache::Cold)
        .collect();
    if cases.is_empty() {
        return None;
    }
    let mut files: Vec<(String, u64)> = Vec::new();
    for (_, v) in &cases {
        if let (Some(f), Some(s)) = (&v.file, v.size_bytes) {
            if !files.iter().any(|x| x.0 == *f) {
                files.push((f.clone(), s));
            }
        }
    }
    files.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut rows: Vec<(String, String, Op)> = Vec::new();
    for (c, v) in &cases {
        let key = (c.layout.clone(), v.options.clone(), v.op);
        if (ops.contains(&v.op) || c.layout == REFERENCE) && !rows.contains(&key) {
            rows.push(key);
        }
    }
    let order = |op: Op| {
        Op::READING_ORDER
            .iter()
            .position(|o| *o == op)
            .unwrap_or(99)
    };
    let rank = |l: &str| {
        if l == REFERENCE {
            "~".to_string()
        } else {
            l.to_string()
        }
    };
    rows.sort_by(|a, b| (rank(&a.0), &a.1, order(a.2)).cmp(&(rank(&b.0), &b.1, order(b.2))));
    let mut head = vec!["layout".to_string(), "options".into(), "op".into()];
    head.extend(
        files
            .iter()
            .map(|(f, s)| format!("{f} ({})", crate::report::fmt_bytes(*s as f64))),
    );
    head.push("vs reference".into());
    let mut t = Table::new(head);
    let largest = files.first().map(|f| f.0.clone());
    for (layout, options, op) in rows {
        let mut row = vec![layout.clone(), options.clone(), op.name().to_string()];
        for (f, _) in &files {
            row.push(
                cases
                    .iter()
                    .find(|(c, v)| {
                        c.layout == layout
                            && v.options == options
                            && v.op == op
                            && v.file.as_deref() == Some(f.as_str())
                    })
                    .map(|(c, _)| fmt_ns(c.stats.median))
                    .unwrap_or_else(|| "-".into()),
            );
        }
        row.push(
            r.derived
                .iter()
                .filter(|d| d.kind == "ratio" && d.layout == layout)
                .find(|d| {
                    ImageView::of_derived(d).is_some_and(|v| {
                        v.image == image
                            && v.backing == backing
                            && v.options == options
                            && v.op == op
                            && v.cache == Cache::Cold
                            && v.file == largest
                    })
                })
                .map(|d| fmt_ratio(d.value))
                .unwrap_or_else(|| "-".into()),
        );
        t.row(row);
    }
    Some(t)
}

fn image_blocks(r: &Report, terminal: bool) -> Vec<Block> {
    let ops: &[Op] = if terminal {
        &[Op::FirstWrite, Op::Chmod]
    } else {
        &Op::READING_ORDER
    };
    let mut out = Vec::new();
    for backing in backings_of(r, NAME) {
        for image in images_of(r, NAME) {
            let Some(t) = image_table(r, &image, &backing, ops) else {
                continue;
            };
            out.push(Block {
                heading: if terminal {
                    format!("copy-up of {image}'s largest files on {backing} (cold, median)")
                } else {
                    format!("copy-up — the largest files of {image} ({backing})")
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

/// A colour per overlay option set.
fn options_color(options: &str) -> RGBColor {
    match options {
        "metacopy" => RGBColor(148, 103, 189),
        "volatile" => RGBColor(255, 127, 14),
        _ => RGBColor(214, 39, 40),
    }
}

impl Section for CopyUpSection {
    fn workload(&self) -> &'static str {
        NAME
    }

    fn headline_source(&self) -> crate::report::HeadlineSource {
        crate::report::HeadlineSource::Cases
    }

    /// The cold first write to the largest file, with the kernel's default
    /// options, per layout and backing.
    fn headlines(&self, r: &Report) -> Vec<Headline> {
        let views: Vec<(&Case, View)> = r
            .cases_of(NAME)
            .filter_map(|c| View::of_case(c).map(|v| (c, v)))
            .filter(|(c, _)| c.layout != REFERENCE)
            .collect();
        let Some(max) = views.iter().filter_map(|(_, v)| v.size_bytes).max() else {
            return Vec::new();
        };
        let figure = format!(
            "copy-up: first write to a {:.0} MiB lower file, cold",
            max as f64 / MIB
        );
        views
            .iter()
            .filter(|(_, v)| {
                v.op == Op::FirstWrite
                    && v.cache == Cache::Cold
                    && v.options == "default"
                    && v.size_bytes == Some(max)
            })
            .map(|(c, v)| Headline {
                figure: figure.clone(),
                layout: c.layout.clone(),
                backing: v.backing.clone(),
                value: c.stats.median,
                unit: "ns",
                shown: fmt_ns(c.stats.median),
                lower_is_better: true,
            })
            .collect()
    }

    fn blocks(&self, r: &Report) -> Vec<Block> {
        let mut out: Vec<Block> = backings_of(r, NAME)
            .into_iter()
            .filter_map(|backing| {
                let t = table(r, &backing, &Op::READING_ORDER)?;
                Some(Block {
                    heading: format!("copy-up — first write to a lower file ({backing})"),
                    intro: INTRO.into(),
                    tables: vec![(None, t)],
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
                let t = table(r, &backing, &[Op::FirstWrite, Op::Chmod, Op::WriteAfterChmod])?;
                Some(Block {
                    heading: format!(
                        "copy-up on {backing} (median; fit of latency vs size; full table in summary.md)"
                    ),
                    intro: String::new(),
                    tables: vec![(None, t)],
                })
            })
            .collect();
        out.extend(image_blocks(r, true));
        out
    }

    fn chart_name(&self) -> Option<String> {
        Some("copy-up.svg".into())
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
        let views: Vec<(&Case, ImageView)> = report
            .cases_of(NAME)
            .filter_map(|c| ImageView::of_case(c).map(|v| (c, v)))
            .filter(|(_, v)| v.cache == Cache::Cold)
            .collect();
        let pairs: Vec<(String, String)> = backings_of(report, NAME)
            .into_iter()
            .flat_map(|b| {
                images_of(report, NAME)
                    .into_iter()
                    .map(move |i| (b.clone(), i))
            })
            .collect();
        let ops: Vec<Op> = [Op::FirstWrite, Op::Chmod]
            .into_iter()
            .filter(|op| views.iter().any(|(_, v)| v.op == *op))
            .collect();
        let cols = ops.len().max(1);
        let rows = pairs.len().max(1);
        svg_page(
            name,
            (560 * cols as u32, 60 + 420 * rows as u32),
            "overlaybench · copy-up of your images' largest files, cold (median; fresh container per sample)",
            |root| {
                let panels = root.split_evenly((rows, cols));
                for (pi, (backing, image)) in pairs.iter().enumerate() {
                    for (oi, op) in ops.iter().enumerate() {
                        let mut lines: BTreeMap<(String, String), Vec<(f64, f64)>> =
                            BTreeMap::new();
                        for (c, v) in views.iter().filter(|(c, v)| {
                            v.backing == *backing
                                && v.image == *image
                                && (v.op == *op || c.layout == REFERENCE)
                        }) {
                            let Some(size) = v.size_bytes else { continue };
                            lines
                                .entry((c.layout.clone(), v.options.clone()))
                                .or_default()
                                .push((size as f64 / MIB, c.stats.median));
                        }
                        let series: Vec<Series> = lines
                            .into_iter()
                            .map(|((layout, options), mut points)| {
                                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                                let style = style_of(&layout);
                                let (color, dashed) = if layout == REFERENCE {
                                    (RGBColor(0, 0, 0), true)
                                } else if caps_of(&layout).copy_up == CopyUp::None {
                                    (layout_color(&layout), style.dashed)
                                } else {
                                    (options_color(&options), style.dashed)
                                };
                                Series {
                                    label: format!("{layout} · {options}"),
                                    color,
                                    marker: if style.triangle {
                                        Marker::Triangle
                                    } else {
                                        Marker::Circle
                                    },
                                    dashed,
                                    points,
                                }
                            })
                            .collect();
                        line_panel(
                            &panels[pi * cols + oi],
                            &format!("{} — {image} ({backing})", op.name()),
                            Axis::new("file size", Unit::MiB),
                            Axis::new("latency", Unit::Ns),
                            &series,
                        )?;
                    }
                }
                Ok(())
            },
        )
    }

    fn chart(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        let backings = backings_of(report, NAME);
        let views: Vec<(&Case, View)> = report
            .cases_of(NAME)
            .filter_map(|c| View::of_case(c).map(|v| (c, v)))
            .collect();
        let ops: Vec<Op> = Op::READING_ORDER
            .iter()
            .copied()
            .filter(|op| *op != Op::SecondWrite && views.iter().any(|(_, v)| v.op == *op))
            .collect();
        let cols = ops.len().clamp(1, 3);
        let rows_per_backing = ops.len().div_ceil(cols).max(1);
        let rows = rows_per_backing * backings.len().max(1);
        svg_page(
            "copy-up.svg",
            (520 * cols as u32, 60 + 420 * rows as u32),
            "overlaybench · copy-up: first touch of a lower file, cold (median; fresh container per sample)",
            |root| {
                let panels = root.split_evenly((rows, cols));
                for (bi, backing) in backings.iter().enumerate() {
                    for (oi, op) in ops.iter().enumerate() {
                        let mut lines: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
                        for (c, v) in views.iter().filter(|(c, v)| {
                            v.backing == *backing
                                && v.cache == Cache::Cold
                                && (v.op == *op || c.layout == REFERENCE)
                        }) {
                            let Some(size) = v.size_bytes else { continue };
                            lines
                                .entry((c.layout.clone(), v.options.clone()))
                                .or_default()
                                .push((size as f64 / MIB, c.stats.median));
                        }
                        let series: Vec<Series> = lines
                            .into_iter()
                            .map(|((layout, options), mut points)| {
                                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                                let style = style_of(&layout);
                                let no_copy_up = caps_of(&layout).copy_up == CopyUp::None;
                                let (color, dashed) = if layout == REFERENCE {
                                    (RGBColor(0, 0, 0), true)
                                } else if no_copy_up {
                                    (layout_color(&layout), style.dashed)
                                } else {
                                    (options_color(&options), style.dashed)
                                };
                                Series {
                                    label: if no_copy_up && layout != REFERENCE {
                                        format!("{layout} (no copy_up)")
                                    } else {
                                        format!("{layout} · {options}")
                                    },
                                    color,
                                    marker: if style.triangle {
                                        Marker::Triangle
                                    } else {
                                        Marker::Circle
                                    },
                                    dashed,
                                    points,
                                }
                            })
                            .collect();
                        let panel = &panels[bi * rows_per_backing * cols + oi];
                        line_panel(
                            panel,
                            &format!("{} on {backing}", op.name()),
                            Axis::new("file size", Unit::MiB),
                            Axis::new("latency", Unit::Ns),
                            &series,
                        )?;
                    }
                }
                Ok(())
            },
        )
    }
}
