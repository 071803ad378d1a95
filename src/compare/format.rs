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

fn headline(c: &Comparison) -> String {
    format!(
        "{}{}: {} regressed, {} improved, {} unchanged ({} figures not gated){}",
        if c.failed() { "FAIL" } else { "PASS" },
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

/// Renders a comparison.
pub fn render(c: &Comparison, format: CompareFormat) -> String {
    match format {
        CompareFormat::Text => format!("{}\n{}", table(c, false).to_text(), headline(c)),
        CompareFormat::Markdown => {
            let mut s = format!("### overlaybench gate: {}\n\n", headline(c));
            s.push_str(&format!("Baseline `{}` vs current `{}`. A figure regresses only when the whole 95% bootstrap \
                 interval of its change lies beyond the threshold.\n\n", c.baseline, c.current));
            let changed = table(c, true);
            if changed.rows.is_empty() {
                s.push_str("No figure changed beyond its threshold.\n");
            } else {
                s.push_str(&changed.to_markdown());
            }
            s.push_str(&format!(
                "\n<details><summary>all {} gated figures</summary>\n\n{}\n</details>\n",
                c.results.len(),
                table(c, false).to_markdown()
            ));
            for m in &c.missing_in_current {
                s.push_str(&format!("- missing in current: `{m}`\n"));
            }
            s
        }
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
            let tests = c.results.len() + c.missing_in_current.len() + nothing;
            let mut s = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"overlaybench\" tests=\"{tests}\" failures=\"{failures}\">\n  <testsuite name=\"overlaybench-gate\" tests=\"{tests}\" failures=\"{failures}\">\n"
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
