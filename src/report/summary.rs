//! `summary.md`: what a CI comment or a person reads first, and the terminal
//! summary printed at the end of a run. Both compose the workloads' sections in
//! report order around the run's preamble, notes and errors.

use std::fmt::Write;

use super::section::{Block, Section};
use super::{Exporter, Report, ReportError, RunStatus};

/// Renders summary.md from the given sections.
pub struct SummaryMarkdown {
    /// Sections in report order.
    pub sections: Vec<&'static (dyn Section + Sync)>,
}

impl Exporter for SummaryMarkdown {
    fn file_name(&self) -> String {
        "summary.md".into()
    }
    fn render(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        Ok(markdown(report, &self.sections).into_bytes())
    }
}

/// How a run's status reads to a person (upper case where the results are partial).
pub fn status_word(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Running => "INCOMPLETE (still running, or the run died)",
        RunStatus::Complete => "complete",
        RunStatus::Interrupted => "INTERRUPTED (partial results)",
        RunStatus::Failed => "FAILED (partial results; see errors)",
    }
}

/// The header lines: what was measured where.
pub fn preamble(r: &Report) -> Vec<String> {
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

/// Backings a workload's cases were measured on, in report order.
pub fn backings_of(r: &Report, workload: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in r.cases_of(workload) {
        let b = c.param_str("backing").to_string();
        // Figures read from an image's layer streams have no backing.
        if !b.is_empty() && !out.contains(&b) {
            out.push(b);
        }
    }
    out
}

/// The user's images (`image` param) a workload's cases measured, in report order.
pub fn images_of(r: &Report, workload: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in r.cases_of(workload) {
        let i = c.param_str("image");
        if !i.is_empty() && !out.iter().any(|o| o == i) {
            out.push(i.to_string());
        }
    }
    out
}

fn block_markdown(s: &mut String, b: &Block) {
    let _ = write!(s, "\n## {}\n\n{}\n\n", b.heading, b.intro);
    for (caption, table) in &b.tables {
        if let Some(c) = caption {
            let _ = write!(s, "\n{c}\n\n");
        }
        s.push_str(&table.to_markdown());
    }
}

/// The whole summary.md.
pub fn markdown(r: &Report, sections: &[&'static (dyn Section + Sync)]) -> String {
    let mut s = String::from("# overlaybench report\n\n");
    for line in preamble(r) {
        let _ = writeln!(s, "- {line}");
    }
    // What the figures mean leads: it is what a reader decides from.
    if let Some(f) = &r.findings {
        s.push_str(&f.markdown());
    }
    // Verdicts on Docker's notes lead: they are what a reader decides from.
    for run in &r.claims {
        s.push_str(&super::claims::markdown(run));
    }
    for section in sections {
        for b in section.blocks(r) {
            block_markdown(&mut s, &b);
        }
    }
    s.push_str(&super::layout_claims::markdown(r, sections));
    if !r.skipped.is_empty() {
        s.push_str("\n## Skipped\n\n");
        for k in &r.skipped {
            let _ = writeln!(s, "- `{}` on {}: {}", k.layout, k.backing, k.reason);
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

/// Most lines the terminal gives the findings before the tables.
pub const FINDINGS_LINES: usize = 18;

/// The terminal summary printed at the end of a run.
pub fn terminal(r: &Report, sections: &[&'static (dyn Section + Sync)]) -> String {
    let mut s = String::new();
    // The findings first, at most `FINDINGS_LINES` lines; the tables follow.
    if let Some(f) = &r.findings {
        s.push_str("Findings\n");
        for line in f.lines(FINDINGS_LINES) {
            let _ = writeln!(s, "{line}");
        }
        s.push_str("(the tables follow; summary.md and report.html hold them all)\n\n");
    }
    for line in preamble(r) {
        let _ = writeln!(s, "{line}");
    }
    for run in &r.claims {
        let _ = write!(s, "\n{}", super::claims::text(run));
    }
    for section in sections {
        for b in section.terminal_blocks(r) {
            let _ = writeln!(s, "\n{}", b.heading);
            for (caption, table) in &b.tables {
                if let Some(c) = caption {
                    let _ = writeln!(s, "{c}");
                }
                s.push_str(&table.to_text());
            }
        }
    }
    let claims = super::layout_claims::terminal(r, sections);
    if !claims.is_empty() {
        let _ = write!(s, "\n{claims}");
    }
    for k in &r.skipped {
        let _ = writeln!(s, "skipped: {} on {}: {}", k.layout, k.backing, k.reason);
    }
    for e in &r.errors {
        let _ = writeln!(s, "error: {}", e.message);
    }
    s
}
