//! Renderings of checked claims (Docker's storage notes, each with a verdict):
//! the markdown of summary.md, the terminal table of `overlaybench claims` and
//! of a run, and the tally that leads both. Verdict first: what was found comes
//! before how.

use std::fmt::Write;

use super::{ClaimVerdict, ClaimsRun};

/// Verdicts in the order a reader wants them: what changed or is wrong first.
const ORDER: [ClaimVerdict; 5] = [
    ClaimVerdict::Changed,
    ClaimVerdict::Refuted,
    ClaimVerdict::Depends,
    ClaimVerdict::Confirmed,
    ClaimVerdict::NotTestable,
];

/// `12 claims: 2 changed, 3 refuted, 6 confirmed, 1 not testable here`.
pub fn tally(run: &ClaimsRun) -> String {
    let parts: Vec<String> = ORDER
        .iter()
        .filter_map(|v| {
            let n = run.claims.iter().filter(|c| c.verdict == *v).count();
            (n > 0).then(|| format!("{n} {}", v.word()))
        })
        .collect();
    let failed = run.claims.iter().filter(|c| c.error.is_some()).count();
    format!(
        "{} claim{}: {}{}",
        run.claims.len(),
        if run.claims.len() == 1 { "" } else { "s" },
        parts.join(", "),
        if failed > 0 {
            format!(
                " ({failed} experiment{} failed)",
                if failed == 1 { "" } else { "s" }
            )
        } else {
            String::new()
        }
    )
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The summary.md part for one backing: heading, tally, table, then what each
/// experiment observed.
pub fn markdown(run: &ClaimsRun) -> String {
    let mut s = format!(
        "\n## Claims — Docker's overlay storage notes, checked on this host ({})\n\n{}. Each statement is a real \
         experiment on this kernel ({} settings, {:.1} s); *changed* = true once, different here; *depends* = its figures disagree, each side's named.\n\n",
        run.backing,
        tally(run),
        run.suite,
        run.duration_s
    );
    s.push_str("| # | verdict | claim | figure |\n|---:|---|---|---|\n");
    for c in &run.claims {
        let _ = writeln!(
            s,
            "| {} | **{}** | {} | {} |",
            c.id,
            c.verdict.word(),
            cell(&c.statement),
            cell(&c.figure)
        );
    }
    s.push_str("\nWhat each experiment observed:\n\n");
    for c in &run.claims {
        let mut facts = c.observations.clone();
        if let Some(r) = &c.reason {
            facts.insert(0, r.clone());
        }
        let _ = writeln!(s, "- **{} {}**: {}", c.id, c.slug, cell(&facts.join("; ")));
    }
    s
}

/// The terminal table: verdict, number, name, figure; then reasons and errors.
pub fn text(run: &ClaimsRun) -> String {
    let rows: Vec<[String; 4]> = run
        .claims
        .iter()
        .map(|c| {
            [
                c.verdict.word().to_string(),
                c.id.to_string(),
                c.slug.clone(),
                c.figure.clone(),
            ]
        })
        .collect();
    let head = ["verdict", "#", "claim", "figure"].map(String::from);
    let mut widths = [0usize; 3];
    for r in rows.iter().chain(std::iter::once(&head)) {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |r: &[String; 4]| {
        format!(
            "{:<a$}  {:>b$}  {:<c$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            a = widths[0],
            b = widths[1],
            c = widths[2]
        )
        .trim_end()
        .to_string()
    };
    let mut s = format!(
        "claims on {} ({} settings, {:.1} s) — {}\n",
        run.backing,
        run.suite,
        run.duration_s,
        tally(run)
    );
    let _ = writeln!(s, "{}", line(&head));
    for r in &rows {
        let _ = writeln!(s, "{}", line(r));
    }
    for c in run.claims.iter().filter(|c| c.error.is_some()) {
        let _ = writeln!(
            s,
            "error in claim {} ({}): {}",
            c.id,
            c.slug,
            c.error.as_deref().unwrap_or("")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ClaimRecord;

    fn record(id: u32, verdict: ClaimVerdict, error: Option<&str>) -> ClaimRecord {
        ClaimRecord {
            id,
            slug: format!("c{id}"),
            statement: "a | b".into(),
            verdict,
            reason: None,
            figure: format!("figure {id}"),
            value: None,
            unit: String::new(),
            observations: vec!["seen".into()],
            error: error.map(str::to_string),
            duration_s: 0.1,
        }
    }

    fn run() -> ClaimsRun {
        ClaimsRun {
            backing: "ext4".into(),
            started_at: String::new(),
            duration_s: 1.0,
            suite: "quick".into(),
            claims: vec![
                record(1, ClaimVerdict::Changed, None),
                record(2, ClaimVerdict::Confirmed, None),
                record(3, ClaimVerdict::NotTestable, Some("boom")),
            ],
        }
    }

    #[test]
    fn tally_leads_with_what_changed() {
        assert_eq!(
            tally(&run()),
            "3 claims: 1 changed, 1 confirmed, 1 not testable here (1 experiment failed)"
        );
    }

    #[test]
    fn markdown_escapes_cells_and_text_names_errors() {
        let md = markdown(&run());
        assert!(
            md.contains("| 1 | **changed** | a \\| b | figure 1 |"),
            "{md}"
        );
        assert!(md.contains("- **2 c2**: seen"), "{md}");
        let t = text(&run());
        assert!(
            t.lines().nth(1).is_some_and(|l| l.starts_with("verdict")),
            "{t}"
        );
        assert!(t.contains("error in claim 3 (c3): boom"), "{t}");
    }
}
