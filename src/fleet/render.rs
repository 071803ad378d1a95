//! The fleet report as people read it: `summary.md`, `fleet.html` (the same
//! tables plus the chart, self-contained) and `fleet.svg` (every node's
//! figure relative to its group's median, outliers marked). Pure: report in,
//! bytes out; the caller writes the files.

use std::fmt::Write as _;

use super::{FleetReport, GroupFigure, NodeFigure};
use crate::report::html::{escape, page, table as html_table};
use crate::report::{fmt_ns, Table};

/// Nodes beyond which summary.md leaves the per-node figures to fleet.json and
/// fleet.html (a table of thousands of rows is read by nobody).
pub const SUMMARY_NODE_ROWS: usize = 50;

/// A value in its unit, as the node reports print it.
pub fn fmt_value(value: f64, unit: &str) -> String {
    if !value.is_finite() {
        return "—".into();
    }
    match unit {
        "ns" => fmt_ns(value),
        "x" => format!("{value:.2}x"),
        u => format!("{value:.3} {u}"),
    }
}

fn short(f: &NodeFigure) -> String {
    format!("{} [{} on {}]", f.figure, f.layout, f.backing)
}

/// The tables every rendering shares, each with its heading and intro.
fn sections(fleet: &FleetReport, all_nodes: bool) -> Vec<(String, String, Vec<Table>)> {
    let mut out = Vec::new();
    // What the figures mean first: per kernel and backing, each question's
    // answer across the nodes and the recommendation they support.
    for g in &fleet.findings {
        let mut t = Table::new(["question", "answer across the nodes"]);
        for q in &g.questions {
            let answers = q
                .text
                .strip_prefix(&format!("{}: ", q.question))
                .unwrap_or(&q.text);
            t.row(vec![
                format!("{} ({})", q.question, q.workload),
                answers.to_string(),
            ]);
        }
        out.push((
            format!("Findings on {}", g.label()),
            format!(
                "{} node(s), each judged from its own report (a difference inside a node's noise is no difference). \
                 Recommendation: {}.",
                g.nodes.len(),
                g.recommendation_text()
            ),
            vec![t],
        ));
    }
    let mut nodes = Table::new([
        "node", "kernel", "status", "stacks", "figures", "doctor", "outliers",
    ]);
    let outlier_count = |node: &str| {
        fleet
            .groups
            .iter()
            .flat_map(|g| &g.figures)
            .flat_map(|f| &f.outliers)
            .filter(|o| o.node == node && o.worse)
            .count()
    };
    for n in &fleet.nodes {
        let mut stacks: Vec<String> = n
            .figures
            .iter()
            .map(|f| format!("{} on {}", f.layout, f.backing))
            .collect();
        stacks.sort();
        stacks.dedup();
        let doctor = if !n.doctor_read {
            "not run".to_string()
        } else if n.problems.is_empty() {
            "ok".to_string()
        } else {
            format!(
                "{} fail, {} warn",
                n.failing_checks(),
                n.problems.len() - n.failing_checks()
            )
        };
        nodes.row(vec![
            n.node.clone(),
            n.kernel_release.clone(),
            format!("{:?}", n.status).to_lowercase(),
            stacks.join(", "),
            n.figures.len().to_string(),
            doctor,
            outlier_count(&n.node).to_string(),
        ]);
    }
    out.push((
        "Nodes".to_string(),
        "Each node's latest run (`outliers`: figures where it is on the bad side of its group, by the MAD rule).".to_string(),
        vec![nodes],
    ));

    let mut groups = Vec::new();
    for g in &fleet.groups {
        let mut t = Table::new([
            "figure",
            "nodes",
            "median",
            "p90",
            "max",
            "outliers (worse side first)",
        ]);
        for f in &g.figures {
            t.row(vec![
                f.figure.clone(),
                f.n.to_string(),
                fmt_value(f.median, &f.unit),
                fmt_value(f.p90, &f.unit),
                fmt_value(f.max, &f.unit),
                outliers_cell(f),
            ]);
        }
        groups.push((g.key.label(), g.nodes.len(), t));
    }
    for (label, n, t) in groups {
        out.push((
            format!("Group {label}"),
            format!(
                "{n} node(s) with this kernel, backing filesystem and storage stack. An outlier's modified z-score \
                 |0.6745 (x − median) / MAD| exceeds {}; groups of fewer than {} nodes have none.",
                super::OUTLIER_Z,
                super::OUTLIER_MIN_NODES
            ),
            vec![t],
        ));
    }

    let mut problems = Table::new(["node", "status", "check", "figure"]);
    let mut warned = Vec::new();
    for n in &fleet.nodes {
        for p in &n.problems {
            problems.row(vec![
                n.node.clone(),
                p.status.clone(),
                p.check.clone(),
                p.figure.clone(),
            ]);
        }
        if !n.problems.is_empty() && n.failing_checks() == 0 {
            warned.push(n.node.as_str());
        }
    }
    problems
        .rows
        .sort_by(|a, b| (a[1] != "fail", &a[0]).cmp(&(b[1] != "fail", &b[0])));
    let without: Vec<&str> = fleet
        .nodes_without_doctor()
        .map(|n| n.node.as_str())
        .collect();
    let mut intro = format!(
        "Checks the node's `doctor` did not pass, failures first. A failure is a problem (as `doctor --exit-code` \
         reports it to node-problem-detector); {} node(s) have warnings only.",
        warned.len()
    );
    if !without.is_empty() {
        intro.push_str(&format!(
            " {} node(s) had no doctor report: {}.",
            without.len(),
            list_capped(&without, 20)
        ));
    }
    out.push((
        "Nodes whose doctor found problems".into(),
        intro,
        vec![problems],
    ));

    if all_nodes || fleet.nodes.len() <= SUMMARY_NODE_ROWS {
        let mut t = Table::new(["node", "figure", "value"]);
        for n in &fleet.nodes {
            for f in &n.figures {
                t.row(vec![n.node.clone(), short(f), fmt_value(f.value, &f.unit)]);
            }
        }
        out.push(("Headline figures per node".into(), String::new(), vec![t]));
    } else {
        out.push((
            "Headline figures per node".into(),
            format!(
                "{} nodes: every node's figures are in fleet.json and fleet.html.",
                fleet.nodes.len()
            ),
            vec![],
        ));
    }

    let mut skipped = Table::new(["input", "why it was left out"]);
    for s in &fleet.skipped {
        skipped.row(vec![s.source.clone(), s.reason.clone()]);
    }
    out.push((
        "Inputs left out".into(),
        "Malformed, foreign or superseded inputs: listed, never fatal.".into(),
        vec![skipped],
    ));
    out
}

fn list_capped(items: &[&str], cap: usize) -> String {
    if items.len() <= cap {
        items.join(", ")
    } else {
        format!("{} and {} more", items[..cap].join(", "), items.len() - cap)
    }
}

fn outliers_cell(f: &GroupFigure) -> String {
    if f.outliers.is_empty() {
        return "none".into();
    }
    let mut o: Vec<&super::Outlier> = f.outliers.iter().collect();
    o.sort_by(|a, b| b.worse.cmp(&a.worse).then(b.z.abs().total_cmp(&a.z.abs())));
    let words: Vec<String> = o
        .iter()
        .take(8)
        .map(|o| format!("{} {} (z {:+.1})", o.node, fmt_value(o.value, &f.unit), o.z))
        .collect();
    if o.len() > 8 {
        format!("{}, and {} more", words.join(", "), o.len() - 8)
    } else {
        words.join(", ")
    }
}

fn headline(fleet: &FleetReport) -> String {
    let problems = fleet.nodes_with_problems().count();
    let outliers: usize = fleet
        .groups
        .iter()
        .flat_map(|g| &g.figures)
        .map(|f| f.outliers.iter().filter(|o| o.worse).count())
        .sum();
    format!(
        "{} node(s) in {} group(s); {} outlier figure(s) on the bad side; {} node(s) with doctor problems; {} input(s) left out.",
        fleet.nodes.len(),
        fleet.groups.len(),
        outliers,
        problems,
        fleet.skipped.len()
    )
}

/// `summary.md`.
pub fn summary_markdown(fleet: &FleetReport) -> String {
    let mut s = format!("# Fleet report\n\n{}\n", headline(fleet));
    for (heading, intro, tables) in sections(fleet, false) {
        let _ = write!(s, "\n## {heading}\n\n");
        if !intro.is_empty() {
            let _ = writeln!(s, "{intro}\n");
        }
        for t in tables {
            if t.rows.is_empty() {
                s.push_str("None.\n");
            } else {
                s.push_str(&t.to_markdown());
            }
        }
    }
    s
}

/// `fleet.html`: the summary's tables with every node's figures and the chart inline.
pub fn html(fleet: &FleetReport) -> Result<String, super::FleetError> {
    let mut body = format!(
        "<header><h1>Fleet report</h1><p class=\"meta\">{}</p></header>\n<main>\n",
        escape(&headline(fleet))
    );
    let _ = write!(
        body,
        "<h2>Every node against its group</h2>\n<figure class=\"chart\">{}<figcaption>Each dot is a node's figure over its group's median (log scale); red dots are outliers by the MAD rule.</figcaption></figure>\n",
        svg(fleet)
    );
    for (heading, intro, tables) in sections(fleet, true) {
        let _ = writeln!(body, "<h2>{}</h2>", escape(&heading));
        if !intro.is_empty() {
            let _ = writeln!(body, "<p>{}</p>", escape(&intro).replace('`', ""));
        }
        for t in tables {
            if t.rows.is_empty() {
                body.push_str("<p>None.</p>\n");
            } else {
                let _ = write!(body, "<div class=\"wide\">{}</div>", html_table(&t));
            }
        }
    }
    body.push_str("</main>\n");
    Ok(page("overlaybench fleet report", &body, ""))
}

/// Width of the chart's plotting band and of its labels, px.
const PLOT_W: f64 = 560.0;
const LABEL_W: f64 = 470.0;
const ROW_H: f64 = 22.0;
/// The chart's x range: a node's figure over its group's median, 1/RANGE..RANGE.
const RANGE: f64 = 4.0;

/// `fleet.svg`: one row per group and figure, one dot per node at its value
/// over the group's median on a log axis (clamped to ¼…4×), outliers red.
pub fn svg(fleet: &FleetReport) -> String {
    let rows: Vec<(String, &GroupFigure)> = fleet
        .groups
        .iter()
        .flat_map(|g| {
            g.figures
                .iter()
                .map(move |f| (format!("{} — {}", g.key.label(), f.figure), f))
        })
        .collect();
    let top = 40.0;
    let h = top + ROW_H * rows.len().max(1) as f64 + 40.0;
    let w = LABEL_W + PLOT_W + 30.0;
    let x_of = |ratio: f64| {
        let r = ratio.clamp(1.0 / RANGE, RANGE);
        LABEL_W + (r.log2() + RANGE.log2()) / (2.0 * RANGE.log2()) * PLOT_W
    };
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-size=\"14\">Each node's figure over its group's median</text>\n"
    );
    for tick in [0.25, 0.5, 1.0, 2.0, 4.0] {
        let x = x_of(tick);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{}\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{tick}×</text>",
            h - 30.0,
            if tick == 1.0 { "#888" } else { "#ddd" },
            h - 16.0
        );
    }
    if rows.is_empty() {
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"{:.0}\">No figures.</text>",
            top + 14.0
        );
    }
    for (i, (label, f)) in rows.iter().enumerate() {
        let y = top + ROW_H * i as f64 + ROW_H / 2.0;
        let label = if label.chars().count() > 78 {
            format!("{}…", label.chars().take(77).collect::<String>())
        } else {
            label.clone()
        };
        let _ = writeln!(
            s,
            "<text x=\"6\" y=\"{:.1}\">{}</text>",
            y + 4.0,
            escape(&label)
        );
        if f.median.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            continue;
        }
        for v in f.values.iter().filter(|v| v.is_finite()) {
            let out = f.outliers.iter().any(|o| o.value == *v);
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{}\" fill-opacity=\"0.6\"/>",
                x_of(v / f.median),
                if out { "#d62728" } else { "#1f77b4" }
            );
        }
    }
    s.push_str("</svg>\n");
    s
}
