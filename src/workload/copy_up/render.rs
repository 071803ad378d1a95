//! copy-up's section: per layout × options × op, the fit (fixed + per MiB), the
//! largest size cold and warm, throughput and the ratio to the reference copy;
//! and copy-up.svg (cold latency against size, a panel per backing × op).

use std::collections::BTreeMap;

use super::analyze::{Cache, Op, View, REFERENCE};
use super::NAME;
use crate::layout::{caps_of, style_of, CopyUp};
use crate::report::chart::{
    layout_color, line_panel, svg_page, Axis, Marker, RGBColor, Series, Unit,
};
use crate::report::summary::backings_of;
use crate::report::{
    fmt_ns, fmt_ratio, Block, Case, Derived, Headline, Report, ReportError, Section, Table,
};

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
    let min = sizes().fold(f64::MAX, f64::min);
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
        let cold_min = find(&layout, &options, op, Cache::Cold, min);
        // Flat: the fitted growth over the measured range is small next to the cost
        // itself (a clone, a metadata-only copy, or no copy at all).
        let flat = match (slope, cold_min) {
            (Some(d), Some(m0)) => {
                d.value * (max / MIB - min / MIB) < 0.5 * m0.max(1.0)
                    || d.r2.is_some_and(|r2| r2 < 0.8)
            }
            _ => false,
        };
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
        let mibs = if flat {
            "n/a (flat)".to_string()
        } else {
            derived("throughput", &layout, &options, op, Some(max))
                .map(|d| format!("{:.0}", d.value))
                .unwrap_or_else(|| "-".into())
        };
        let ratio = derived("ratio", &layout, &options, op, Some(max))
            .map(|d| fmt_ratio(d.value))
            .unwrap_or_else(|| "-".into());
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
                shown: fmt_ns(c.stats.median),
                lower_is_better: true,
            })
            .collect()
    }

    fn blocks(&self, r: &Report) -> Vec<Block> {
        backings_of(r, NAME)
            .into_iter()
            .filter_map(|backing| {
                let t = table(r, &backing, &Op::READING_ORDER)?;
                Some(Block {
                    heading: format!("copy-up — first write to a lower file ({backing})"),
                    intro: INTRO.into(),
                    tables: vec![(None, t)],
                })
            })
            .collect()
    }

    fn terminal_blocks(&self, r: &Report) -> Vec<Block> {
        backings_of(r, NAME)
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
            .collect()
    }

    fn chart_name(&self) -> Option<String> {
        Some("copy-up.svg".into())
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
