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
pub fn lookup_tables(r: &Report, backing: &str) -> Option<(Table, Table)> {
    let cases: Vec<_> = r
        .cases_of("lookup")
        .filter(|c| c.param_str("backing") == backing)
        .collect();
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

/// Backings a workload's cases were measured on, in report order.
pub fn backings_of(r: &Report, workload: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in r.cases_of(workload) {
        let b = c.param_str("backing").to_string();
        if !out.contains(&b) {
            out.push(b);
        }
    }
    out
}

/// A ratio with enough digits to tell small ones apart.
fn fmt_ratio(v: f64) -> String {
    if v.abs() >= 0.1 {
        format!("{v:.2}x")
    } else {
        format!("{v:.4}x")
    }
}

/// Ops of copy-up in reading order.
pub const COPY_UP_OPS: [&str; 6] = [
    "first-write",
    "second-write",
    "chmod",
    "write-after-chmod",
    "append",
    "truncate",
];

/// The copy-up headline for one backing: per layout × options × op, the fit, the
/// largest size, throughput and the ratio to the reference copy.
pub fn copy_up_table(r: &Report, backing: &str, ops: &[&str]) -> Option<Table> {
    let cases: Vec<_> = r
        .cases_of("copy-up")
        .filter(|c| c.param_str("backing") == backing)
        .collect();
    let max = cases
        .iter()
        .filter_map(|c| c.param_f64("size_bytes"))
        .fold(0.0, f64::max);
    let min = cases
        .iter()
        .filter_map(|c| c.param_f64("size_bytes"))
        .fold(f64::MAX, f64::min);
    if cases.is_empty() || max <= 0.0 {
        return None;
    }
    let mib = |b: f64| b / (1u64 << 20) as f64;
    let find = |layout: &str, options: &str, op: &str, cache: &str, size: f64| {
        cases
            .iter()
            .find(|c| {
                c.layout == layout
                    && c.param_str("options") == options
                    && c.param_str("op") == op
                    && c.param_str("cache") == cache
                    && c.param_f64("size_bytes") == Some(size)
            })
            .map(|c| c.stats.median)
    };
    let derived = |kind: &str, layout: &str, options: &str, op: &str, size: Option<f64>| {
        r.derived.iter().find(|d| {
            let p = |k: &str| d.params.get(k).and_then(|v| v.as_str());
            d.workload == "copy-up"
                && d.kind == kind
                && d.layout == layout
                && p("backing") == Some(backing)
                && p("options") == Some(options)
                && p("op") == Some(op)
                && p("cache") == Some("cold")
                && size
                    .is_none_or(|s| d.params.get("size_bytes").and_then(|v| v.as_f64()) == Some(s))
        })
    };
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for c in &cases {
        let key = (
            c.layout.clone(),
            c.param_str("options").to_string(),
            c.param_str("op").to_string(),
        );
        if (ops.contains(&key.2.as_str()) || c.layout == "reference") && !rows.contains(&key) {
            rows.push(key);
        }
    }
    let order = |op: &str| COPY_UP_OPS.iter().position(|o| *o == op).unwrap_or(99);
    rows.sort_by(|a, b| {
        let la = if a.0 == "reference" {
            "~"
        } else {
            a.0.as_str()
        };
        let lb = if b.0 == "reference" {
            "~"
        } else {
            b.0.as_str()
        };
        (la, &a.1, order(&a.2)).cmp(&(lb, &b.1, order(&b.2)))
    });
    let big = format!("{:.0} MiB", mib(max));
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
    for (layout, options, op) in rows {
        let slope = derived("slope", &layout, &options, &op, None);
        let cold_max = find(&layout, &options, &op, "cold", max);
        let cold_min = find(&layout, &options, &op, "cold", min);
        // Flat: the fitted growth over the measured range is small next to the cost
        // itself (a clone, a metadata-only copy, or no copy at all).
        let flat = match (slope, cold_min) {
            (Some(d), Some(m0)) => {
                d.value * (mib(max) - mib(min)) < 0.5 * m0.max(1.0)
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
            derived("throughput", &layout, &options, &op, Some(max))
                .map(|d| format!("{:.0}", d.value))
                .unwrap_or_else(|| "-".into())
        };
        let ratio = derived("ratio", &layout, &options, &op, Some(max))
            .map(|d| fmt_ratio(d.value))
            .unwrap_or_else(|| "-".into());
        let cell = |v: Option<f64>| v.map(fmt_ns).unwrap_or_else(|| "-".into());
        t.row(vec![
            layout.clone(),
            options.clone(),
            op.clone(),
            fixed,
            per_mib,
            cell(cold_max),
            cell(find(&layout, &options, &op, "warm", max)),
            mibs,
            ratio,
        ]);
    }
    Some(t)
}

/// Bytes in binary units.
pub fn fmt_bytes(b: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut i = 0;
    while v.abs() >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// The inodes headline for one backing: per layout × layers, per-unit costs.
pub fn inodes_table(r: &Report, backing: &str) -> Option<Table> {
    let per_unit: Vec<_> = r
        .derived
        .iter()
        .filter(|d| {
            d.workload == "inodes"
                && d.kind == "per-unit"
                && d.params.get("backing").and_then(|v| v.as_str()) == Some(backing)
        })
        .collect();
    if per_unit.is_empty() {
        return None;
    }
    let get = |layout: &str, layers: u64, quantity: &str, resource: &str| {
        per_unit
            .iter()
            .find(|d| {
                let p = |k: &str| d.params.get(k);
                d.layout == layout
                    && p("layers").and_then(|v| v.as_u64()) == Some(layers)
                    && p("quantity").and_then(|v| v.as_str()) == Some(quantity)
                    && p("resource").and_then(|v| v.as_str()) == Some(resource)
            })
            .map(|d| d.value)
    };
    let mut keys: Vec<(String, u64, u64)> = Vec::new();
    for d in &per_unit {
        let k = (
            d.layout.clone(),
            d.params.get("layers").and_then(|v| v.as_u64()).unwrap_or(0),
            d.params
                .get("base_layers")
                .and_then(|v| v.as_u64())
                .unwrap_or(0),
        );
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut t = Table::new([
        "layout",
        "layers/image (shared)",
        "inodes: shared base",
        "per image",
        "per layer",
        "per container",
        "bytes: per image",
        "per container",
    ]);
    let n = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into());
    let b = |v: Option<f64>| v.map(fmt_bytes).unwrap_or_else(|| "-".into());
    for (layout, layers, base) in keys {
        t.row(vec![
            layout.clone(),
            format!("{layers} ({base})"),
            n(get(&layout, layers, "shared-base", "inodes")),
            n(get(&layout, layers, "image", "inodes")),
            n(get(&layout, layers, "layer", "inodes")),
            n(get(&layout, layers, "container", "inodes")),
            b(get(&layout, layers, "image", "bytes")),
            b(get(&layout, layers, "container", "bytes")),
        ]);
    }
    Some(t)
}

/// The page-cache headline for one backing: resident bytes and sharing factor per layout × K.
pub fn page_cache_table(r: &Report, backing: &str) -> Option<Table> {
    let cases: Vec<_> = r
        .cases_of("page-cache")
        .filter(|c| c.param_str("backing") == backing && c.metric == "resident_bytes")
        .collect();
    if cases.is_empty() {
        return None;
    }
    let resident = |layout: &str, k: f64, phase: &str| {
        cases
            .iter()
            .find(|c| {
                c.layout == layout
                    && c.param_f64("containers") == Some(k)
                    && c.param_str("phase") == phase
            })
            .map(|c| c.stats.median)
    };
    let factor = |layout: &str, k: f64, phase: &str| {
        r.derived
            .iter()
            .find(|d| {
                d.workload == "page-cache"
                    && d.layout == layout
                    && d.params.get("backing").and_then(|v| v.as_str()) == Some(backing)
                    && d.params.get("containers").and_then(|v| v.as_f64()) == Some(k)
                    && d.params.get("phase").and_then(|v| v.as_str()) == Some(phase)
            })
            .map(|d| format!("{:.2}x", d.value))
            .unwrap_or_else(|| "-".into())
    };
    let mut keys: Vec<(String, f64)> = Vec::new();
    for c in &cases {
        let k = (c.layout.clone(), c.param_f64("containers").unwrap_or(0.0));
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut t = Table::new([
        "layout",
        "containers",
        "resident after reads",
        "sharing",
        "sharing (concurrent)",
        "after copy_up in half",
        "sharing",
        "disk added",
    ]);
    let b = |v: Option<f64>| v.map(fmt_bytes).unwrap_or_else(|| "-".into());
    for (layout, k) in keys {
        t.row(vec![
            layout.clone(),
            format!("{k:.0}"),
            b(resident(&layout, k, "read")),
            factor(&layout, k, "read"),
            factor(&layout, k, "read-concurrent"),
            b(resident(&layout, k, "after-copy-up")),
            factor(&layout, k, "after-copy-up"),
            b(r.cases_of("page-cache")
                .find(|c| {
                    c.layout == layout
                        && c.metric == "disk_bytes_added"
                        && c.param_str("backing") == backing
                        && c.param_f64("containers") == Some(k)
                })
                .map(|c| c.stats.median)),
        ]);
    }
    Some(t)
}

const PAGE_CACHE_INTRO: &str = "K containers of one image each read the whole cache set; residency is read from \
the kernel (`mincore` over every distinct backing file; /proc/meminfo and the memory cgroup agree within noise \
and are in report.json). *sharing* = K × set size / resident bytes: K is perfect sharing, 1 is none. Then half the \
containers (rounded up) copy_up the set with a one-byte write and all read again. *disk added* = what the K \
containers and their copies add to the filesystem (`statvfs`): on xfs copies are reflinks that share blocks on \
disk, yet each still caches its own pages. Eviction between phases: `posix_fadvise` DONTNEED on exactly these files.";

const INODES_INTRO: &str = "Exact `statvfs` deltas of a fresh filesystem per layout (so counts never mix). \
*shared base*: the layers every image shares, stored once by overlay2 and the legacy driver (plain flattens \
every image); *per image*: each image's own layers; *per layer*: all stored layers / their count; *per \
container*: created + mounted + written (copy_ups, new files, deletions). Every figure is for this backing \
filesystem: tmpfs charges one inode per hard link.";

const LOOKUP_INTRO: &str = "Medians per operation. *cold* = fresh overlay mount with the scratch filesystem's caches \
evicted, each name looked up once; *warm* = the same names again. Slopes are least-squares fits of the median against \
depth (image layers; the legacy `overlay` mount always has one lower). Ratios are to `plain` in the same run.";

const COPY_UP_INTRO: &str = "Medians per operation; every sample is a fresh container, so each first touch is a real \
copy_up (checked afterwards in the upper dir). *cold* = the lower file evicted (`posix_fadvise` DONTNEED), *warm* = \
read beforehand. *fixed* and *per MiB* are a least-squares fit of latency against file size; *flat* means the size \
does not matter (a clone, a metadata-only copy, or no copy). *vs reference* = the op / copying the same file with \
`copy_file_range` + `fsync` on the same filesystem in the same run, at the largest size.";

/// The whole summary.md.
pub fn markdown(r: &Report) -> String {
    let mut s = String::from("# overlaybench report\n\n");
    for line in preamble(r) {
        let _ = writeln!(s, "- {line}");
    }
    for backing in backings_of(r, "lookup") {
        if let Some((headline, mount)) = lookup_tables(r, &backing) {
            let _ = write!(
                s,
                "\n## lookup — cost by lower depth ({backing})\n\n{LOOKUP_INTRO}\n\n"
            );
            s.push_str(&headline.to_markdown());
            s.push_str("\nMount time of a fresh container (median):\n\n");
            s.push_str(&mount.to_markdown());
        }
    }
    for backing in backings_of(r, "copy-up") {
        if let Some(t) = copy_up_table(r, &backing, &COPY_UP_OPS) {
            let _ = write!(
                s,
                "\n## copy-up — first write to a lower file ({backing})\n\n{COPY_UP_INTRO}\n\n"
            );
            s.push_str(&t.to_markdown());
        }
    }
    for backing in backings_of(r, "inodes") {
        if let Some(t) = inodes_table(r, &backing) {
            let _ = write!(s, "\n## inodes — consumption per layer, image and container ({backing})\n\n{INODES_INTRO}\n\n");
            s.push_str(&t.to_markdown());
        }
    }
    for backing in backings_of(r, "page-cache") {
        if let Some(t) = page_cache_table(r, &backing) {
            let _ = write!(s, "\n## page-cache — memory of K containers reading one image ({backing})\n\n{PAGE_CACHE_INTRO}\n\n");
            s.push_str(&t.to_markdown());
        }
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
    for backing in backings_of(r, "lookup") {
        if let Some((headline, _)) = lookup_tables(r, &backing) {
            let _ = writeln!(
                s,
                "\nlookup on {backing} (median per op; slope = cost of each extra layer, cold)"
            );
            s.push_str(&headline.to_text());
        }
    }
    for backing in backings_of(r, "copy-up") {
        if let Some(t) = copy_up_table(r, &backing, &["first-write", "chmod", "write-after-chmod"])
        {
            let _ = writeln!(
                s,
                "\ncopy-up on {backing} (median; fit of latency vs size; full table in summary.md)"
            );
            s.push_str(&t.to_text());
        }
    }
    for backing in backings_of(r, "inodes") {
        if let Some(t) = inodes_table(r, &backing) {
            let _ = writeln!(
                s,
                "\ninodes on {backing} (statvfs deltas, fresh fs per layout)"
            );
            s.push_str(&t.to_text());
        }
    }
    for backing in backings_of(r, "page-cache") {
        if let Some(t) = page_cache_table(r, &backing) {
            let _ = writeln!(s, "\npage-cache on {backing} (resident set from mincore; sharing = K × set / resident)");
            s.push_str(&t.to_text());
        }
    }
    for e in &r.errors {
        let _ = writeln!(s, "error: {}", e.message);
    }
    s
}
