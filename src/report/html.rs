//! `report.html`: the report a person opens in a browser — one self-contained
//! file (inline SVG and CSS, a few lines of inline script, nothing fetched).
//! Verdict first: the run's status, the verdicts on Docker's claims and each
//! section's headline tables, then the host and backing facts, every section's
//! tables and chart, the notes and the errors. Every chart links to the raw
//! samples of its figures, kept in a collapsible table where each derived
//! figure links to the cases it was computed from. Like summary.md it composes
//! the sections it is given and names none of them; the same report always
//! renders to the same bytes.

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::Value;

use super::section::{Block, Section};
use super::summary::status_word;
use super::table::Table;
use super::{ClaimVerdict, ClaimsRun, Exporter, Report, ReportError, RunStatus};

/// Renders report.html from the given sections.
pub struct HtmlReport {
    /// Sections in report order.
    pub sections: Vec<&'static (dyn Section + Sync)>,
}

impl Exporter for HtmlReport {
    fn file_name(&self) -> String {
        "report.html".into()
    }
    fn render(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        Ok(render(report, &self.sections)?.into_bytes())
    }
}

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The inline markdown the sections write (`code`, **strong**, *em*) as HTML,
/// escaped first.
pub fn inline_markdown(s: &str) -> String {
    let escaped = escape(s);
    let mut out = String::with_capacity(escaped.len());
    let (mut code, mut strong, mut em) = (false, false, false);
    let mut chars = escaped.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                out.push_str(if code { "</code>" } else { "<code>" });
                code = !code;
            }
            '*' if !code && chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str(if strong { "</strong>" } else { "<strong>" });
                strong = !strong;
            }
            // A lone `*` opens emphasis only before a word (`K × 2*` stays text).
            '*' if !code && (em || chars.peek().is_some_and(|n| !n.is_whitespace())) => {
                out.push_str(if em { "</em>" } else { "<em>" });
                em = !em;
            }
            c => out.push(c),
        }
    }
    // Unbalanced markers close at the end rather than leak into the page.
    for (open, tag) in [(em, "</em>"), (strong, "</strong>"), (code, "</code>")] {
        if open {
            out.push_str(tag);
        }
    }
    out
}

/// Whether a cell reads as a number (`12.5 µs`, `-0.35 ns`, `1.71x`, `-`).
fn numeric(cell: &str) -> bool {
    cell == "-"
        || cell
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || ((c == '-' || c == '+') && cell.len() > 1))
}

/// A table as HTML: a column whose cells all read as numbers is right-aligned
/// (figures line up), every other column reads left to right.
pub fn table(t: &Table) -> String {
    let num: Vec<bool> = (0..t.headers.len())
        .map(|i| {
            let cells: Vec<&str> = t
                .rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(String::as_str)
                .collect();
            !cells.is_empty() && cells.iter().all(|c| numeric(c))
        })
        .collect();
    let class = |i: usize| {
        if num.get(i).copied().unwrap_or(false) {
            " class=\"num\""
        } else {
            ""
        }
    };
    let mut s = String::from("<table>\n<thead><tr>");
    for (i, h) in t.headers.iter().enumerate() {
        let _ = write!(s, "<th{}>{}</th>", class(i), inline_markdown(h));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for r in &t.rows {
        s.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            let _ = write!(s, "<td{}>{}</td>", class(i), inline_markdown(c));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table>\n");
    s
}

/// The stylesheet of every page this tool writes.
pub const CSS: &str = r#"
:root { --fg: #1b1f23; --muted: #586069; --line: #d0d7de; --bg-soft: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--fg); }
header, main, footer { max-width: 1320px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 20px; border-bottom: 1px solid var(--line); }
h1 { font-size: 26px; margin: 0 0 6px; }
h2 { font-size: 21px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 17px; margin: 24px 0 8px; }
h4 { font-size: 15px; margin: 18px 0 6px; }
nav { margin: 10px 0 12px; font-size: 14px; }
nav a { margin-right: 14px; }
a { color: #0550ae; }
.meta, .caption, figcaption, footer { color: var(--muted); font-size: 13px; }
.status { display: inline-block; font-weight: 600; padding: 2px 10px; border-radius: 4px; border: 1px solid; }
.status-complete { color: #116329; background: #dafbe1; border-color: #4ac26b; }
.status-failed { color: #82071e; background: #ffebe9; border-color: #ff8182; }
.status-interrupted, .status-running { color: #7d4e00; background: #fff8c5; border-color: #d4a72c; }
.verdict { display: inline-block; font-weight: 600; font-size: 13px; padding: 1px 7px; border-radius: 3px; border: 1px solid; white-space: nowrap; }
.verdict-confirmed { color: #116329; background: #dafbe1; border-color: #4ac26b; }
.verdict-refuted { color: #82071e; background: #ffebe9; border-color: #ff8182; }
.verdict-changed { color: #7d4e00; background: #fff8c5; border-color: #d4a72c; }
.verdict-not-testable { color: #57606a; background: #f6f8fa; border-color: #afb8c1; }
.verdict-depends { color: #0a3069; background: #ddf4ff; border-color: #54aeff; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13.5px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: var(--bg-soft); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.text { text-align: left; }
.wide { overflow-x: auto; }
code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, monospace; background: var(--bg-soft); padding: 0 3px; border-radius: 3px; }
figure.chart { margin: 14px 0 20px; }
figure.chart svg { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); }
details { margin: 10px 0 18px; }
summary { cursor: pointer; font-weight: 600; }
td.samples { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; text-align: left; max-width: 640px; word-break: break-word; }
:target { outline: 2px solid #d4a72c; }
ul.facts li { margin: 2px 0; }
"#;

/// A whole page around `body`.
pub fn page(title: &str, body: &str, script: &str) -> String {
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n\
         <style>{CSS}</style>\n</head>\n<body>\n",
        escape(title)
    );
    s.push_str(body);
    if !script.is_empty() {
        let _ = write!(s, "<script>\n{script}\n</script>\n");
    }
    s.push_str("</body>\n</html>\n");
    s
}

/// Opens the `<details>` around a linked anchor, so a link to a raw sample
/// shows it.
const OPEN_TARGET: &str = "function openTarget() {\n  var id = decodeURIComponent(location.hash.slice(1));\n  \
var el = id ? document.getElementById(id) : null;\n  for (var e = el; e; e = e.parentElement) {\n    \
if (e.tagName === 'DETAILS') { e.open = true; }\n  }\n  if (el) { el.scrollIntoView(); }\n}\n\
window.addEventListener('hashchange', openTarget);\nopenTarget();";

fn status_class(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Running => "status-running",
        RunStatus::Complete => "status-complete",
        RunStatus::Interrupted => "status-interrupted",
        RunStatus::Failed => "status-failed",
    }
}

fn verdict_badge(v: ClaimVerdict) -> String {
    let class = match v {
        ClaimVerdict::Confirmed => "confirmed",
        ClaimVerdict::Refuted => "refuted",
        ClaimVerdict::Changed => "changed",
        ClaimVerdict::NotTestable => "not-testable",
        ClaimVerdict::Depends => "depends",
    };
    format!(
        "<span class=\"verdict verdict-{class}\">{}</span>",
        v.word()
    )
}

/// A stable anchor for a workload's parts (`w-copy-up`).
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn params_text(params: &std::collections::BTreeMap<String, Value>) -> String {
    params
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn number(v: f64) -> String {
    if v.is_finite() && v.abs() >= 1e-3 && v.abs() < 1e15 {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v}")
    }
}

fn blocks_html(s: &mut String, blocks: &[Block], level: u8) {
    for b in blocks {
        let _ = writeln!(s, "<h{level}>{}</h{level}>", inline_markdown(&b.heading));
        if !b.intro.is_empty() {
            let _ = writeln!(s, "<p>{}</p>", inline_markdown(&b.intro));
        }
        for (caption, t) in &b.tables {
            if let Some(c) = caption {
                let _ = writeln!(s, "<p class=\"caption\">{}</p>", inline_markdown(c));
            }
            let _ = write!(s, "<div class=\"wide\">{}</div>", table(t));
        }
    }
}

fn claims_html(s: &mut String, run: &ClaimsRun) {
    let _ = writeln!(
        s,
        "<h4>On {} ({} settings, {:.1} s): {}</h4>",
        escape(&run.backing),
        escape(&run.suite),
        run.duration_s,
        escape(&super::claims::tally(run))
    );
    s.push_str(
        "<div class=\"wide\"><table>\n<thead><tr><th class=\"num\">#</th><th>verdict</th><th>claim</th>\
         <th>figure</th><th>what the experiment observed</th></tr></thead>\n<tbody>\n",
    );
    for c in &run.claims {
        let mut facts = c.observations.clone();
        if let Some(r) = &c.reason {
            facts.insert(0, r.clone());
        }
        let items: String = facts
            .iter()
            .map(|f| format!("<li>{}</li>", inline_markdown(f)))
            .collect();
        let _ = writeln!(
            s,
            "<tr id=\"claim-{}-{}\"><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td><details><summary>{} observation{}</summary><ul class=\"facts\">{items}</ul></details></td></tr>",
            slug(&run.backing),
            c.id,
            c.id,
            verdict_badge(c.verdict),
            escape(&c.statement),
            inline_markdown(&c.figure),
            facts.len(),
            if facts.len() == 1 { "" } else { "s" }
        );
    }
    s.push_str("</tbody>\n</table></div>\n");
}

fn host_html(s: &mut String, r: &Report) {
    let h = &r.host;
    let mut facts = Table::new(["fact", "value"]);
    let mut row = |k: &str, v: String| facts.row(vec![k.into(), v]);
    row(
        "kernel",
        format!("Linux {} ({})", h.kernel_release, h.kernel_version),
    );
    row("architecture", h.arch.clone());
    row(
        "CPU",
        format!(
            "{} · {} cores",
            if h.cpu_model.is_empty() {
                "unknown"
            } else {
                &h.cpu_model
            },
            h.cores
        ),
    );
    row("memory", super::fmt_bytes(h.memory_bytes as f64));
    row("page size", format!("{} bytes", h.page_size));
    if let Some(p) = h.privilege {
        row(
            "privilege",
            serde_json::to_value(p)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        );
    }
    if let Some(a) = h.mount_api {
        row(
            "overlay mount API",
            serde_json::to_value(a)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        );
    }
    let params: Vec<String> = h
        .overlay_params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    row(
        "overlay module parameters",
        format!("`{}`", params.join(" ")),
    );
    // Facts are text: left-aligned.
    let _ = write!(
        s,
        "<div class=\"wide\">{}</div>",
        table(&facts).replace(" class=\"num\"", "")
    );
    if !h.backings.is_empty() {
        let mut b = Table::new([
            "backing",
            "filesystem",
            "device",
            "size",
            "inodes",
            "made with",
            "mount options",
        ]);
        for x in &h.backings {
            b.row(vec![
                x.kind.clone(),
                x.fstype.clone(),
                match (&x.device, x.loop_direct_io) {
                    (Some(d), Some(true)) => format!("{d} (loop, direct I/O)"),
                    (Some(d), _) => d.clone(),
                    (None, _) => "-".into(),
                },
                super::fmt_bytes(x.size_bytes as f64),
                x.inodes_total.to_string(),
                x.made_with
                    .as_deref()
                    .map(|m| format!("`{m}`"))
                    .unwrap_or_else(|| "-".into()),
                format!(
                    "`{}`{}",
                    x.mount_options,
                    if x.accounting_exact {
                        ""
                    } else {
                        " (an existing directory: statvfs includes other data)"
                    }
                ),
            ]);
        }
        let _ = write!(
            s,
            "<h3>Backing filesystems</h3><div class=\"wide\">{}</div>",
            table(&b)
        );
    }
    if !h.overlay_options_in_force.is_empty() {
        let mut o = Table::new([
            "layout",
            "overlay options in force (read back from mountinfo)",
        ]);
        for (k, v) in &h.overlay_options_in_force {
            o.row(vec![k.clone(), format!("`{v}`")]);
        }
        let _ = write!(
            s,
            "<h3>Overlay options in force</h3><div class=\"wide\">{}</div>",
            table(&o)
        );
    }
}

/// The derived figures and cases of one workload, each case anchored so that a
/// figure can link to the samples it was computed from.
fn raw_html(s: &mut String, r: &Report, workload: &str, anchors: &HashMap<&str, String>) {
    let cases: Vec<(usize, &super::Case)> = r
        .cases
        .iter()
        .enumerate()
        .filter(|(_, c)| c.workload == workload)
        .collect();
    let derived: Vec<&super::Derived> = r
        .derived
        .iter()
        .filter(|d| d.workload == workload)
        .collect();
    let _ = writeln!(
        s,
        "<details class=\"raw\" id=\"raw-{}\"><summary>Raw samples: {} cases, {} derived figures</summary>",
        slug(workload),
        cases.len(),
        derived.len()
    );
    if !derived.is_empty() {
        s.push_str(
            "<h4>Derived figures (each links to the cases it was computed from)</h4>\n<div class=\"wide\"><table>\n\
             <thead><tr><th>kind</th><th>layout</th><th>parameters</th><th class=\"num\">value</th><th>unit</th>\
             <th class=\"num\">r²</th><th>computed from</th></tr></thead>\n<tbody>\n",
        );
        for d in derived {
            let links: Vec<String> = d
                .inputs
                .iter()
                .enumerate()
                .map(|(i, id)| match anchors.get(id.as_str()) {
                    Some(a) => format!(
                        "<a href=\"#{a}\">{}</a>",
                        d.x.get(i).map_or(format!("#{}", i + 1), |x| number(*x))
                    ),
                    None => escape(id),
                })
                .collect();
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                escape(&d.kind),
                escape(&d.layout),
                escape(&params_text(&d.params)),
                number(d.value),
                escape(&d.unit),
                d.r2.map(number).unwrap_or_else(|| "-".into()),
                links.join(" ")
            );
        }
        s.push_str("</tbody>\n</table></div>\n");
    }
    s.push_str(
        "<h4>Cases (raw samples in measurement order)</h4>\n<div class=\"wide\"><table>\n<thead><tr><th>layout</th>\
         <th>metric</th><th>parameters</th><th>unit</th><th class=\"num\">n</th><th class=\"num\">median</th>\
         <th class=\"num\">p95</th><th>samples</th></tr></thead>\n<tbody>\n",
    );
    for (i, c) in cases {
        let samples: Vec<String> = c.samples.iter().map(|v| format!("{v}")).collect();
        let _ = writeln!(
            s,
            "<tr id=\"case-{i}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"samples\">{}</td></tr>",
            escape(&c.layout),
            escape(&c.metric),
            escape(&params_text(&c.params)),
            escape(&c.unit),
            c.stats.n,
            number(c.stats.median),
            number(c.stats.p95),
            samples.join(" ")
        );
    }
    s.push_str("</tbody>\n</table></div>\n</details>\n");
}

/// Links to the cited cases' rows (their raw samples).
fn figure_links(figures: &[String], anchors: &HashMap<&str, String>) -> String {
    let links: Vec<String> = figures
        .iter()
        .enumerate()
        .filter_map(|(i, id)| {
            anchors.get(id.as_str()).map(|a| {
                format!(
                    "<a class=\"figure\" href=\"#{a}\" title=\"{}\">[{}]</a>",
                    escape(id),
                    i + 1
                )
            })
        })
        .collect();
    links.join(" ")
}

/// The findings section: the recommendation, then one item per finding.
fn findings_html(b: &mut String, f: &super::findings::Findings, anchors: &HashMap<&str, String>) {
    b.push_str("<section id=\"findings\">\n<h2>Findings</h2>\n");
    if let Some(r) = &f.recommendation {
        let _ = writeln!(
            b,
            "<p class=\"recommendation\"><strong>Recommendation: {}</strong> {}</p>",
            escape(&r.text),
            figure_links(&r.figures, anchors)
        );
        b.push_str("<ul class=\"facts\">\n");
        for x in &r.reasons {
            let _ = writeln!(b, "<li>because {}</li>", escape(x));
        }
        for x in &r.would_change {
            let _ = writeln!(b, "<li>would change it: {}</li>", escape(x));
        }
        b.push_str("</ul>\n");
    }
    b.push_str("<ul class=\"facts findings\">\n");
    for x in &f.findings {
        let _ = writeln!(
            b,
            "<li>{} {}</li>",
            escape(&x.text),
            figure_links(&x.figures, anchors)
        );
    }
    for n in &f.not_measured {
        let _ = writeln!(b, "<li>not measured: {}</li>", escape(n));
    }
    b.push_str("</ul>\n</section>\n");
}

/// The whole page.
pub fn render(
    r: &Report,
    sections: &[&'static (dyn Section + Sync)],
) -> Result<String, ReportError> {
    let present: Vec<&'static (dyn Section + Sync)> = sections
        .iter()
        .copied()
        .filter(|sec| r.cases.iter().any(|c| c.workload == sec.workload()))
        .collect();
    let anchors: HashMap<&str, String> = r
        .cases
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), format!("case-{i}")))
        .collect();
    let mut b = String::new();
    // Header: what this is, and the one-word state of the run.
    let _ = writeln!(
        b,
        "<header>\n<h1>overlaybench report</h1>\n<p><span class=\"status {}\">{}</span> \
         <span class=\"meta\">started {} · {:.1} s · {} {} · report.json schema {}</span></p>",
        status_class(r.status),
        escape(status_word(r.status)),
        escape(&r.started_at),
        r.duration_s,
        escape(&r.tool.name),
        escape(&r.tool.version),
        r.schema_version
    );
    b.push_str("<nav>");
    if r.findings.is_some() {
        b.push_str("<a href=\"#findings\">Findings</a>");
    }
    b.push_str("<a href=\"#summary\">Summary</a>");
    if !r.claims.is_empty() {
        b.push_str("<a href=\"#claims\">Claims</a>");
    }
    b.push_str("<a href=\"#host\">Host and backing</a>");
    for sec in &present {
        let _ = write!(
            b,
            "<a href=\"#w-{}\">{}</a>",
            slug(sec.workload()),
            escape(sec.workload())
        );
    }
    if !r.notes.is_empty() {
        b.push_str("<a href=\"#notes\">Notes</a>");
    }
    if !r.errors.is_empty() {
        let _ = write!(b, "<a href=\"#errors\">Errors ({})</a>", r.errors.len());
    }
    b.push_str("</nav>\n</header>\n<main>\n");
    // What the figures mean comes first, each finding linked to the cases it cites.
    if let Some(f) = &r.findings {
        findings_html(&mut b, f, &anchors);
    }

    // Verdict first: the state, the claims' tally and table, the errors, then
    // each section's headline tables.
    b.push_str("<section id=\"summary\">\n<h2>Summary</h2>\n<ul class=\"facts\">\n");
    for line in super::summary::preamble(r) {
        let _ = writeln!(b, "<li>{}</li>", escape(&line));
    }
    for run in &r.claims {
        let _ = writeln!(
            b,
            "<li><a href=\"#claims\">Docker's overlay notes on {}</a>: {}</li>",
            escape(&run.backing),
            escape(&super::claims::tally(run))
        );
    }
    if !r.errors.is_empty() {
        let _ = writeln!(
            b,
            "<li><a href=\"#errors\">{} error{}</a>: something could not be measured</li>",
            r.errors.len(),
            if r.errors.len() == 1 { "" } else { "s" }
        );
    }
    b.push_str("</ul>\n");
    if !r.claims.is_empty() {
        b.push_str(
            "<div id=\"claims\">\n<h3>Claims — Docker's overlay storage notes, checked on this host</h3>\n\
             <p>Each statement is a real experiment on this kernel. <em>changed</em> = true once, different here; \
             <em>depends</em> = its figures disagree, each side's named; <em>not testable here</em> carries its reason.</p>\n",
        );
        for run in &r.claims {
            claims_html(&mut b, run);
        }
        b.push_str("</div>\n");
    }
    let headlines: Vec<Block> = present
        .iter()
        .flat_map(|sec| sec.terminal_blocks(r))
        .collect();
    if !headlines.is_empty() {
        b.push_str("<h3>Headline figures</h3>\n");
        blocks_html(&mut b, &headlines, 4);
    }
    b.push_str("</section>\n");

    b.push_str("<section id=\"host\">\n<h2>Host and backing</h2>\n");
    host_html(&mut b, r);
    b.push_str("</section>\n");

    for sec in &present {
        let w = sec.workload();
        let _ = writeln!(b, "<section id=\"w-{}\">\n<h2>{}</h2>", slug(w), escape(w));
        blocks_html(&mut b, &sec.blocks(r), 3);
        if let Some(name) = sec.chart_name() {
            let svg = String::from_utf8(sec.chart(r)?).map_err(|e| ReportError::Render {
                what: name.clone(),
                detail: e.to_string(),
            })?;
            let _ = writeln!(
                b,
                "<figure class=\"chart\" id=\"chart-{}\">\n{}\n<figcaption>{} (also written as its own file) · \
                 <a href=\"#raw-{}\">the raw samples behind it</a></figcaption>\n</figure>",
                slug(w),
                svg.trim(),
                escape(&name),
                slug(w)
            );
        }
        raw_html(&mut b, r, w, &anchors);
        b.push_str("</section>\n");
    }

    if !r.notes.is_empty() {
        b.push_str("<section id=\"notes\">\n<h2>Notes</h2>\n<ul class=\"facts\">\n");
        for n in &r.notes {
            let _ = writeln!(b, "<li>{}</li>", inline_markdown(n));
        }
        b.push_str("</ul>\n</section>\n");
    }
    if !r.errors.is_empty() {
        b.push_str("<section id=\"errors\">\n<h2>Errors</h2>\n<ul class=\"facts\">\n");
        for e in &r.errors {
            let _ = writeln!(
                b,
                "<li>{}{}</li>",
                e.workload
                    .as_deref()
                    .map(|w| format!("<strong>{}</strong>: ", escape(w)))
                    .unwrap_or_default(),
                escape(&e.message)
            );
        }
        b.push_str("</ul>\n</section>\n");
    }
    b.push_str("</main>\n");
    let _ = writeln!(
        b,
        "<footer><p>Written by {} {} from report.json alone; <code>overlaybench report DIR</code> renders it \
         again. Charts are inline SVG; nothing here is fetched from the network.</p></footer>",
        escape(&r.tool.name),
        escape(&r.tool.version)
    );
    let title = format!(
        "overlaybench report · {} · {}",
        status_word(r.status),
        r.started_at
    );
    Ok(page(&title, &b, OPEN_TARGET))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_converts_inline_markdown() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(
            inline_markdown("*cold* = `posix_fadvise` <x> and **bold**"),
            "<em>cold</em> = <code>posix_fadvise</code> &lt;x&gt; and <strong>bold</strong>"
        );
        // A lone star before a space is text; an unbalanced marker is closed.
        assert_eq!(inline_markdown("2 * 3"), "2 * 3");
        assert_eq!(inline_markdown("`open"), "<code>open</code>");
    }

    #[test]
    fn tables_keep_the_first_column_as_label() {
        let mut t = Table::new(["layout", "slope"]);
        t.row(vec!["overlay2".into(), "12 µs".into()]);
        let h = table(&t);
        assert!(
            h.contains("<th>layout</th><th class=\"num\">slope</th>"),
            "{h}"
        );
        assert!(
            h.contains("<td>overlay2</td><td class=\"num\">12 µs</td>"),
            "{h}"
        );
    }

    #[test]
    fn an_empty_report_is_a_whole_page() {
        let r = Report::new(Default::default(), serde_json::json!({}));
        let html = render(&r, &[]).expect("renders");
        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
        assert!(html.contains("id=\"summary\"") && html.contains("id=\"host\""));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "nothing fetched"
        );
        assert_eq!(render(&r, &[]).expect("again"), html, "deterministic");
    }
}
