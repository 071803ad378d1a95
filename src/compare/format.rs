//! Renderings of a comparison: a terminal table, a markdown CI comment, JSON, and
//! JUnit XML (one testcase per gated figure, a failure per regression).

use super::{Comparison, Verdict};
use crate::report::Table;

/// Output formats of `compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareFormat {
    /// Aligned table for a terminal.
    Text,
    /// A markdown comment for a pull request.
    Markdown,
    /// Machine-readable verdicts.
    Json,
    /// JUnit XML for CI test reports.
    Junit,
    /// A self-contained HTML page, changed figures first (`--output compare.html`).
    Html,
}

impl crate::choice::Choice for CompareFormat {
    const ALL: &'static [Self] = &[
        CompareFormat::Text,
        CompareFormat::Markdown,
        CompareFormat::Json,
        CompareFormat::Junit,
        CompareFormat::Html,
    ];
    fn name(self) -> &'static str {
        match self {
            CompareFormat::Text => "text",
            CompareFormat::Markdown => "markdown",
            CompareFormat::Json => "json",
            CompareFormat::Junit => "junit",
            CompareFormat::Html => "html",
        }
    }
    fn about(self) -> &'static str {
        match self {
            CompareFormat::Text => "Aligned table for a terminal",
            CompareFormat::Markdown => "A markdown comment for a pull request",
            CompareFormat::Json => "Machine-readable verdicts",
            CompareFormat::Junit => "JUnit XML for CI test reports",
            CompareFormat::Html => "A self-contained HTML page, changed figures first",
        }
    }
}

fn pct(v: f64) -> String {
    format!("{:+.1}%", 100.0 * v)
}

fn word(v: Verdict) -> &'static str {
    match v {
        Verdict::Improved => "improved",
        Verdict::Regressed => "REGRESSED",
        Verdict::Unchanged => "unchanged",
    }
}

fn table(c: &Comparison, only_changed: bool) -> Table {
    let mut t = Table::new([
        "figure",
        "baseline",
        "current",
        "change",
        "95% CI",
        "threshold",
        "verdict",
    ]);
    for r in c
        .results
        .iter()
        .filter(|r| !only_changed || r.verdict != Verdict::Unchanged)
    {
        t.row(vec![
            r.id.clone(),
            format!("{:.4} {}", r.baseline, r.unit),
            format!("{:.4}", r.current),
            pct(r.change),
            format!("[{}, {}]", pct(r.ci_low), pct(r.ci_high)),
            format!("±{:.0}%", 100.0 * r.threshold),
            word(r.verdict).into(),
        ]);
    }
    t
}

fn verdict_word(c: &Comparison) -> &'static str {
    if c.withheld() {
        "NO VERDICT (too noisy)"
    } else if c.failed() {
        "FAIL"
    } else {
        "PASS"
    }
}

fn headline(c: &Comparison) -> String {
    format!(
        "{}{}: {} regressed, {} improved, {} unchanged ({} figures not gated){}",
        verdict_word(c),
        if c.nothing_compared() {
            " (no figure could be compared)"
        } else {
            ""
        },
        c.regressed,
        c.improved,
        c.unchanged,
        c.not_gated,
        if c.missing_in_current.is_empty() && c.missing_in_baseline.is_empty() {
            String::new()
        } else {
            format!(
                "; {} missing in current, {} new{}",
                c.missing_in_current.len(),
                c.missing_in_baseline.len(),
                if c.missing_fails {
                    " (missing fails the gate)"
                } else {
                    " (skipped)"
                }
            )
        }
    )
}

/// Widest label the text table prints (the rest of a row takes 48 columns).
const LABEL_WIDTH: usize = 50;
/// Most near-threshold rows listed by default.
const NEAR_ROWS: usize = 8;

/// Params that never tell two gated figures apart in words: how cold was
/// made, how many ops a sample holds, what a ratio is taken against.
const QUIET_PARAMS: &[&str] = &["eviction", "ops_per_sample", "baseline", "calibration"];

/// The id split into workload, layout, kind and its `k=v` params.
fn parts(id: &str) -> (&str, &str, &str, Vec<(&str, &str)>) {
    let mut it = id.splitn(4, '/');
    let (w, l, k) = (
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
    );
    let params = it
        .next()
        .unwrap_or("")
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    (w, l, k, params)
}

fn human_value(key: &str, v: &str) -> String {
    if key.ends_with("bytes") {
        if let Ok(n) = v.parse::<u64>() {
            return crate::report::table::fmt_bytes(n as f64);
        }
    }
    if v.parse::<f64>().is_ok() {
        format!("{} {v}", key.replace('_', " "))
    } else {
        v.to_string()
    }
}

/// Short labels: `workload · layout · kind · …` with only the params whose
/// value differs between the workload's gated figures (so `backing` shows up
/// only when several were run).
fn labels(c: &Comparison) -> std::collections::HashMap<&str, String> {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    let mut values: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for r in &c.results {
        let (w, _, _, params) = parts(&r.id);
        for (k, v) in params {
            values.entry((w, k)).or_default().insert(v);
        }
    }
    let mut out = HashMap::new();
    for r in &c.results {
        let (w, l, kind, params) = parts(&r.id);
        let mut words = vec![w.to_string(), l.to_string()];
        let shown: Vec<String> = params
            .iter()
            .filter(|(k, _)| !QUIET_PARAMS.contains(k))
            .filter(|(k, _)| values.get(&(w, *k)).is_some_and(|s| s.len() > 1))
            .map(|(k, v)| human_value(k, v))
            .collect();
        if !shown.is_empty() {
            words.push(shown.join(" "));
        }
        words.push(kind.replace('-', " "));
        out.insert(r.id.as_str(), words.join(" · "));
    }
    out
}

fn clip(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(width - 1).collect();
        t.push('…');
        t
    }
}

/// Where a figure stands against its threshold: |change| / threshold, and
/// how close its interval's far end comes (1.0 = on the line).
fn closeness(r: &super::FigureResult) -> f64 {
    let far = r.ci_low.abs().max(r.ci_high.abs());
    (r.change.abs().max(far * 0.5)) / r.threshold.max(1e-9)
}

/// The rows shown by default: every changed figure, then the unchanged ones
/// whose change reached half the threshold (closest first, at most
/// `NEAR_ROWS`); with `all`, every figure. Returns the rows and how many
/// near-threshold ones were left out.
fn shown(c: &Comparison, all: bool) -> (Vec<&super::FigureResult>, usize) {
    let mut changed: Vec<_> = c
        .results
        .iter()
        .filter(|r| r.verdict != Verdict::Unchanged)
        .collect();
    changed.sort_by_key(|r| r.verdict != Verdict::Regressed);
    let mut near: Vec<_> = c
        .results
        .iter()
        .filter(|r| r.verdict == Verdict::Unchanged)
        .filter(|r| all || r.change.abs() >= 0.5 * r.threshold)
        .collect();
    near.sort_by(|a, b| closeness(b).total_cmp(&closeness(a)));
    let left = if all {
        0
    } else {
        near.len().saturating_sub(NEAR_ROWS)
    };
    if !all {
        near.truncate(NEAR_ROWS);
    }
    changed.extend(near);
    (changed, left)
}

fn conditions_line(c: &Comparison) -> Option<String> {
    (!c.noisy.is_empty()).then(|| {
        let policy = if c.noisy_fails {
            "no verdict; rerun on a quieter runner, or --noisy warn to judge anyway"
        } else {
            "judged anyway (--noisy warn)"
        };
        format!("too noisy to gate on ({policy}):")
    })
}

/// The terminal rendering: the verdict first, then the figures that matter.
fn text(c: &Comparison, all: bool) -> String {
    let labels = labels(c);
    let mut out = vec![headline(c)];
    out.push(format!("baseline {} → current {}", c.baseline, c.current));
    if let Some(line) = conditions_line(c) {
        out.push(line);
        out.extend(c.noisy.iter().map(|n| format!("  {}", clip(n, 96))));
    }
    let (rows, left) = shown(c, all);
    if rows.is_empty() {
        out.push(format!(
            "no gated figure moved by half its threshold or more ({} compared)",
            c.results.len()
        ));
    } else {
        out.push(format!(
            "{:<LABEL_WIDTH$} {:>8} {:>18} {:>5} {}",
            "figure", "change", "95% CI", "limit", "verdict"
        ));
        for r in &rows {
            let label = labels.get(r.id.as_str()).map_or(r.id.as_str(), |l| l);
            out.push(format!(
                "{:<LABEL_WIDTH$} {:>8} {:>18} {:>5} {}",
                clip(label, LABEL_WIDTH),
                pct(r.change),
                format!("[{}, {}]", pct(r.ci_low), pct(r.ci_high)),
                format!("±{:.0}%", 100.0 * r.threshold),
                word(r.verdict)
            ));
        }
        if left > 0 {
            out.push(format!("… and {left} more near their threshold"));
        }
    }
    for (what, ids) in [
        ("missing in current", &c.missing_in_current),
        ("new in current", &c.missing_in_baseline),
    ] {
        if !ids.is_empty() {
            out.push(format!(
                "{what}: {} (first: {})",
                ids.len(),
                clip(&ids[0], 60)
            ));
        }
    }
    out.push(findings_headline(c));
    let changed = super::findings::lines(&c.findings_changed);
    out.extend(
        changed
            .iter()
            .take(FINDINGS_SHOWN)
            .map(|l| format!("  {}", clip(l, 96))),
    );
    if changed.len() > FINDINGS_SHOWN {
        out.push(format!(
            "  … and {} more (--format markdown|json lists them whole)",
            changed.len() - FINDINGS_SHOWN
        ));
    }
    if !all {
        out.push("--all lists every gated figure; --format json|junit keeps full ids".into());
    }
    out.join("\n")
}

/// Changed findings the terminal lists (the rest are counted).
const FINDINGS_SHOWN: usize = 5;

/// After the verdict: whether the findings changed (never part of the verdict).
fn findings_headline(c: &Comparison) -> String {
    match c.findings_changed.len() {
        0 => "findings: none changed (same winners, differences and recommendation)".into(),
        n => format!("findings: {n} changed (not part of the verdict)"),
    }
}

/// The pull-request comment: the same verdict and rows, then every figure
/// folded away.
fn markdown(c: &Comparison, all: bool) -> String {
    let labels = labels(c);
    let row = |r: &super::FigureResult| {
        format!(
            "| {} | {:.4} {} | {:.4} | {} | [{}, {}] | ±{:.0}% | {} |\n",
            labels.get(r.id.as_str()).map_or(r.id.as_str(), |l| l),
            r.baseline,
            r.unit,
            r.current,
            pct(r.change),
            pct(r.ci_low),
            pct(r.ci_high),
            100.0 * r.threshold,
            word(r.verdict)
        )
    };
    let head = "| figure | baseline | current | change | 95% CI | limit | verdict |\n|---|---:|---:|---:|---|---:|---|\n";
    let mut s = format!("### overlaybench gate: {}\n\n", headline(c));
    s.push_str(&format!(
        "Baseline `{}` vs current `{}`. A figure regresses only when the whole 95% bootstrap \
         interval of its change lies beyond its limit.\n\n",
        c.baseline, c.current
    ));
    if let Some(line) = conditions_line(c) {
        s.push_str(&format!("**{line}**\n\n"));
        for n in &c.noisy {
            s.push_str(&format!("- {n}\n"));
        }
        s.push('\n');
    }
    let (rows, left) = shown(c, all);
    if rows.is_empty() {
        s.push_str("No gated figure moved by half its threshold or more.\n");
    } else {
        s.push_str(head);
        for r in &rows {
            s.push_str(&row(r));
        }
        if left > 0 {
            s.push_str(&format!("\n… and {left} more near their threshold.\n"));
        }
    }
    s.push_str(&format!("\n**{}**\n", findings_headline(c)));
    if !c.findings_changed.is_empty() {
        s.push('\n');
        for l in super::findings::lines(&c.findings_changed) {
            s.push_str(&format!("- {}\n", l.replace('|', "\\|")));
        }
    }
    s.push_str(&format!(
        "\n<details><summary>all {} gated figures</summary>\n\n{head}",
        c.results.len()
    ));
    for r in &c.results {
        s.push_str(&row(r));
    }
    s.push_str("\n</details>\n");
    for m in &c.missing_in_current {
        s.push_str(&format!("- missing in current: `{m}`\n"));
    }
    s
}

/// The comparison as one HTML page: the verdict, then the figures that changed
/// (regressions before improvements), then everything gated.
fn html(c: &Comparison) -> String {
    use crate::report::html::{escape, page, table as html_table};
    let mut changed: Vec<_> = c
        .results
        .iter()
        .filter(|r| r.verdict != Verdict::Unchanged)
        .cloned()
        .collect();
    changed.sort_by_key(|r| r.verdict != Verdict::Regressed);
    let subset = Comparison {
        results: changed,
        ..c.clone()
    };
    let (class, word) = if c.failed() {
        ("status-failed", "FAIL")
    } else {
        ("status-complete", "PASS")
    };
    let mut b = format!(
        "<header>\n<h1>overlaybench gate</h1>\n<p><span class=\"status {class}\">{word}</span> \
         <span class=\"meta\">{}</span></p>\n<p class=\"meta\">baseline <code>{}</code> · current <code>{}</code>. \
         A figure regresses only when the whole 95% bootstrap interval of its change lies beyond its threshold.</p>\n\
         </header>\n<main>\n<section id=\"changed\">\n<h2>Changed figures</h2>\n",
        escape(&headline(c)),
        escape(&c.baseline),
        escape(&c.current)
    );
    if subset.results.is_empty() {
        b.push_str("<p>No figure changed beyond its threshold.</p>\n");
    } else {
        b.push_str(&format!(
            "<div class=\"wide\">{}</div>",
            html_table(&table(&subset, false))
        ));
    }
    b.push_str("</section>\n");
    b.push_str(&format!(
        "<section id=\"findings\">\n<h2>Findings</h2>\n<p>{}</p>\n",
        escape(&findings_headline(c))
    ));
    if !c.findings_changed.is_empty() {
        b.push_str("<ul>\n");
        for l in super::findings::lines(&c.findings_changed) {
            b.push_str(&format!("<li>{}</li>\n", escape(&l)));
        }
        b.push_str("</ul>\n");
    }
    b.push_str("</section>\n");
    for (title, ids) in [
        ("Missing in the current report", &c.missing_in_current),
        ("New in the current report", &c.missing_in_baseline),
    ] {
        if !ids.is_empty() {
            b.push_str(&format!("<section>\n<h2>{title}</h2>\n<ul>\n"));
            for id in ids.iter() {
                b.push_str(&format!("<li><code>{}</code></li>\n", escape(id)));
            }
            b.push_str("</ul>\n</section>\n");
        }
    }
    b.push_str(&format!(
        "<section id=\"all\">\n<details><summary>All {} gated figures</summary>\n<div class=\"wide\">{}</div>\n\
         </details>\n</section>\n</main>\n",
        c.results.len(),
        html_table(&table(c, false))
    ));
    page(&format!("overlaybench gate · {word}"), &b, "")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders a comparison; `all` makes text and markdown list every gated
/// figure instead of the changed and near-threshold ones.
pub fn render(c: &Comparison, format: CompareFormat, all: bool) -> String {
    match format {
        CompareFormat::Text => text(c, all),
        CompareFormat::Markdown => markdown(c, all),
        CompareFormat::Html => html(c),
        CompareFormat::Json => {
            serde_json::to_string_pretty(c).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        }
        CompareFormat::Junit => {
            let nothing = usize::from(c.nothing_compared());
            let failures = c.regressed
                + nothing
                + if c.missing_fails {
                    c.missing_in_current.len()
                } else {
                    0
                };
            let errors = if c.withheld() { c.noisy.len() } else { 0 };
            let tests = c.results.len() + c.missing_in_current.len() + nothing + errors;
            let mut s = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"overlaybench\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">\n  <testsuite name=\"overlaybench-gate\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">\n"
            );
            for r in &c.results {
                s.push_str(&format!(
                    "    <testcase classname=\"{}\" name=\"{}\"",
                    xml_escape(&r.workload),
                    xml_escape(&r.id)
                ));
                if r.verdict == Verdict::Regressed {
                    s.push_str(&format!(
                        ">\n      <failure message=\"{} regressed {} (95% CI {}..{}) beyond ±{:.0}%\">baseline {} current {} {}</failure>\n    </testcase>\n",
                        xml_escape(&r.id),
                        pct(r.change),
                        pct(r.ci_low),
                        pct(r.ci_high),
                        100.0 * r.threshold,
                        r.baseline,
                        r.current,
                        xml_escape(&r.unit)
                    ));
                } else {
                    s.push_str(" />\n");
                }
            }
            if c.nothing_compared() {
                s.push_str("    <testcase classname=\"gate\" name=\"nothing compared\">\n      <failure message=\"no figure could be compared\" />\n    </testcase>\n");
            }
            // The machine, not the code: an error (not a failure) per noisy
            // span when the verdict is withheld.
            for n in c.noisy.iter().filter(|_| c.withheld()) {
                s.push_str(&format!(
                    "    <testcase classname=\"gate\" name=\"machine conditions\">\n      <error message=\"too noisy to gate on: {}\" />\n    </testcase>\n",
                    xml_escape(n)
                ));
            }
            for m in &c.missing_in_current {
                s.push_str(&format!(
                    "    <testcase classname=\"missing\" name=\"{}\"",
                    xml_escape(m)
                ));
                if c.missing_fails {
                    s.push_str(">\n      <failure message=\"missing in the current report\" />\n    </testcase>\n");
                } else {
                    s.push_str(">\n      <skipped message=\"missing in the current report\" />\n    </testcase>\n");
                }
            }
            s.push_str("  </testsuite>\n</testsuites>\n");
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::FigureResult;

    fn figure(id: &str, change: f64, verdict: Verdict) -> FigureResult {
        FigureResult {
            id: id.into(),
            workload: id.split('/').next().unwrap_or("").into(),
            unit: "x".into(),
            higher_is_better: false,
            baseline: 1.0,
            current: 1.0 + change,
            change,
            ci_low: change - 0.05,
            ci_high: change + 0.05,
            threshold: 0.25,
            verdict,
        }
    }

    fn comparison(results: Vec<FigureResult>) -> Comparison {
        let count = |v| results.iter().filter(|r| r.verdict == v).count();
        Comparison {
            schema_version: 1,
            kind: "compare".into(),
            baseline: "reports/ci/baseline".into(),
            current: "reports/ci/current".into(),
            threshold: 0.1,
            regressed: count(Verdict::Regressed),
            improved: count(Verdict::Improved),
            unchanged: count(Verdict::Unchanged),
            results,
            missing_in_current: vec![],
            missing_in_baseline: vec![],
            missing_fails: true,
            not_gated: 400,
            noisy: vec![],
            noisy_fails: true,
            findings_changed: vec![],
        }
    }

    /// 120 gated figures with long ids, 12 of them past half their threshold.
    fn many(regressed: bool) -> Comparison {
        let mut v: Vec<FigureResult> = (0..120)
            .map(|i| {
                let change = if i < 12 { 0.13 + 0.005 * i as f64 } else { 0.01 };
                figure(
                    &format!(
                        "inodes/overlay2/per-unit/backing=ext4,base_layers={i},containers=2,\
                         dirs_per_layer=20,files_per_layer=100,images=3,quantity=container,resource=bytes"
                    ),
                    change,
                    Verdict::Unchanged,
                )
            })
            .collect();
        if regressed {
            v.push(figure(
                "lookup/overlay2/slope/backing=ext4,cache=cold,calibration=normalised,eviction=remount-backing,\
                 max_depth=16,op=stat,ops_per_sample=32,target=bottom",
                0.6,
                Verdict::Regressed,
            ));
        }
        comparison(v)
    }

    #[test]
    fn a_passing_gate_fits_a_terminal_with_the_verdict_first() {
        let out = render(&many(false), CompareFormat::Text, false);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("PASS: 0 regressed, 0 improved, 120 unchanged"));
        assert!(lines.len() <= 20, "{} lines:\n{out}", lines.len());
        assert!(lines.iter().all(|l| l.chars().count() <= 100), "{out}");
        // The closest to the threshold first, the rest counted, not dropped.
        assert!(
            lines[3].starts_with("inodes · overlay2 · base layers 11 · per unit"),
            "{out}"
        );
        assert!(out.contains("… and 4 more near their threshold"), "{out}");
        // --all lists every figure.
        let all = render(&many(false), CompareFormat::Text, true);
        assert!(all.lines().count() > 120);
    }

    #[test]
    fn a_regression_leads_and_labels_name_what_differs() {
        let out = render(&many(true), CompareFormat::Text, false);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("FAIL: 1 regressed"), "{out}");
        assert!(
            lines[3].starts_with("lookup · overlay2 · slope") && lines[3].ends_with("REGRESSED"),
            "{out}"
        );
        assert!(lines.iter().all(|l| l.chars().count() <= 100), "{out}");
        let md = render(&many(true), CompareFormat::Markdown, false);
        assert!(md.starts_with("### overlaybench gate: FAIL: 1 regressed"));
        assert!(md.contains("| lookup · overlay2 · slope | 1.0000 x | 1.6000 | +60.0% |"));
        assert_eq!(md.matches("<details>").count(), 1);
    }

    #[test]
    fn a_noisy_report_withholds_the_verdict_and_says_why() {
        let mut c = many(true);
        c.noisy = vec![
            "current: lookup on ext4 (40 s): other processes used 96% of the CPUs (limit 75%)"
                .into(),
        ];
        let out = render(&c, CompareFormat::Text, false);
        assert!(out.starts_with("NO VERDICT (too noisy)"), "{out}");
        assert!(out.contains("other processes used 96%"));
        let xml = render(&c, CompareFormat::Junit, false);
        assert!(xml.contains("errors=\"1\"") && xml.contains("<error message=\"too noisy"));
        c.noisy_fails = false;
        let out = render(&c, CompareFormat::Text, false);
        assert!(
            out.starts_with("FAIL") && out.contains("judged anyway"),
            "{out}"
        );
    }
}
