//! `summary.md`: what a CI comment or a person reads first. Also the terminal
//! summary (same tables, aligned text).

use std::collections::BTreeSet;
use std::fmt::Write;

use super::table::{fmt_ns, Table};
use super::{Exporter, Report, ReportError, RunStatus};

/// Renders summary.md.
pub struct SummaryMarkdown;

impl Exporter for SummaryMarkdown {
    fn file_name(&self) -> String {
        "summary.md".into()
    }
    fn render(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        Ok(markdown(report).into_bytes())
    }
}

fn status_word(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Running => "INCOMPLETE (still running, or the run died)",
        RunStatus::Complete => "complete",
        RunStatus::Interrupted => "INTERRUPTED (partial results)",
        RunStatus::Failed => "FAILED (partial results; see errors)",
    }
}

/// The header lines: what was measured where.
fn preamble(r: &Report) -> Vec<String> {
    let h = &r.host;
    let backings: Vec<String> = h
        .backings
        .iter()
        .map(|b| {
            let mut s = format!("{} ({})", b.kind, b.fstype);
            if let Some(dev) = &b.device {
                s.push_str(&format!(" on {dev}"));
                if b.loop_direct_io == Some(true) {
                    s.push_str(" with direct I/O");
                }
            }
            s
        })
        .collect();
    vec![
        format!(
            "status: {} · started {} · {:.1} s",
            status_word(r.status),
            r.started_at,
            r.duration_s
        ),
        format!(
            "host: Linux {} · {} · {} cores · {:.1} GiB",
            h.kernel_release,
            if h.cpu_model.is_empty() {
                "unknown CPU"
            } else {
                &h.cpu_model
            },
            h.cores,
            h.memory_bytes as f64 / (1u64 << 30) as f64
        ),
        format!("backing: {}", backings.join(", ")),
    ]
}

/// The lookup headline: per layout × target, slope and ratio at the deepest point.
pub fn lookup_tables(r: &Report) -> Option<(Table, Table)> {
    let cases: Vec<_> = r.cases_of("lookup").collect();
    if cases.is_empty() {
        return None;
    }
    let depths: BTreeSet<u64> = cases
        .iter()
        .filter_map(|c| c.param_f64("depth"))
        .map(|d| d as u64)
        .collect();
    let (lo, hi) = (*depths.first()?, *depths.last()?);
    let median = |layout: &str, op: &str, target: &str, cache: &str, depth: u64| {
        cases
            .iter()
            .find(|c| {
                c.layout == layout
                    && c.param_str("op") == op
                    && c.param_str("target") == target
                    && c.param_str("cache") == cache
                    && c.param_f64("depth") == Some(depth as f64)
            })
            .map(|c| c.stats.median)
    };
    let derived =
        |kind: &str, layout: &str, op: &str, target: &str, cache: &str, depth: Option<u64>| {
            r.derived.iter().find(|d| {
                d.workload == "lookup"
                    && d.kind == kind
                    && d.layout == layout
                    && d.params.get("op").and_then(|v| v.as_str()) == Some(op)
                    && d.params.get("target").and_then(|v| v.as_str()) == Some(target)
                    && d.params.get("cache").and_then(|v| v.as_str()) == Some(cache)
                    && depth
                        .is_none_or(|dp| d.params.get("depth").and_then(|v| v.as_u64()) == Some(dp))
            })
        };
    let layouts: Vec<String> = {
        let mut seen = Vec::new();
        for c in &cases {
            if !seen.contains(&c.layout) {
                seen.push(c.layout.clone());
            }
        }
        seen
    };
    let mut headline = Table::new([
        "layout".to_string(),
        "op · target".into(),
        "cold slope per layer (r²)".into(),
        format!("cold @{lo}"),
        format!("cold @{hi}"),
        format!("warm @{hi}"),
        format!("cold vs plain @{hi}"),
    ]);
    for layout in &layouts {
        for (op, target) in [
            ("stat", "top"),
            ("stat", "bottom"),
            ("stat", "missing"),
            ("readdir", "spread"),
        ] {
            let slope = derived("slope", layout, op, target, "cold", None)
                .map(|d| format!("{} ({:.2})", fmt_ns(d.value), d.r2.unwrap_or(f64::NAN)))
                .unwrap_or_else(|| "-".into());
            let ratio = derived("ratio", layout, op, target, "cold", Some(hi))
                .map(|d| format!("{:.2}x", d.value))
                .unwrap_or_else(|| "-".into());
            let cell = |v: Option<f64>| v.map(fmt_ns).unwrap_or_else(|| "-".into());
            headline.row(vec![
                layout.clone(),
                format!("{op} · {target}"),
                slope,
                cell(median(layout, op, target, "cold", lo)),
                cell(median(layout, op, target, "cold", hi)),
                cell(median(layout, op, target, "warm", hi)),
                ratio,
            ]);
        }
    }
    let mut mount = Table::new(
        std::iter::once("depth".to_string())
            .chain(layouts.iter().filter(|l| *l != "plain").cloned()),
    );
    for d in &depths {
        let mut row = vec![d.to_string()];
        for l in layouts.iter().filter(|l| *l != "plain") {
            row.push(
                median(l, "mount", "stack", "cold", *d)
                    .map(fmt_ns)
                    .unwrap_or_else(|| "-".into()),
            );
        }
        mount.row(row);
    }
    Some((headline, mount))
}

/// The whole summary.md.
pub fn markdown(r: &Report) -> String {
    let mut s = String::from("# overlaybench report\n\n");
    for line in preamble(r) {
        let _ = writeln!(s, "- {line}");
    }
    if let Some((headline, mount)) = lookup_tables(r) {
        s.push_str("\n## lookup — cost by lower depth\n\n");
        s.push_str(
            "Medians per operation. *cold* = fresh overlay mount with the scratch filesystem's caches evicted, \
             each name looked up once; *warm* = the same names again. Slopes are least-squares fits of the \
             median against depth (image layers; the legacy `overlay` mount always has one lower). \
             Ratios are to `plain` in the same run.\n\n",
        );
        s.push_str(&headline.to_markdown());
        s.push_str("\nMount time of a fresh container (median):\n\n");
        s.push_str(&mount.to_markdown());
    }
    if !r.notes.is_empty() {
        s.push_str("\n## Notes\n\n");
        for n in &r.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    if !r.errors.is_empty() {
        s.push_str("\n## Errors\n\n");
        for e in &r.errors {
            let _ = writeln!(
                s,
                "- {}{}",
                e.workload
                    .as_deref()
                    .map(|w| format!("{w}: "))
                    .unwrap_or_default(),
                e.message
            );
        }
    }
    s
}

/// The terminal summary printed at the end of a run.
pub fn terminal(r: &Report) -> String {
    let mut s = String::new();
    for line in preamble(r) {
        let _ = writeln!(s, "{line}");
    }
    if let Some((headline, _)) = lookup_tables(r) {
        s.push_str("\nlookup (median per op; slope = cost of each extra layer, cold)\n");
        s.push_str(&headline.to_text());
    }
    for e in &r.errors {
        let _ = writeln!(s, "error: {}", e.message);
    }
    s
}
