//! What the gate says after its verdict: which findings changed between the
//! baseline and the current report — a question's winner, a difference that
//! appeared or vanished, a question answered by one report only, the
//! recommendation. Pure: two reports' findings in, the changes out; the
//! findings themselves come from the findings engine (the caller computes them
//! with today's rules for both reports, so an old report is judged alike).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::report::findings::{Finding, Findings, Outcome};

/// How a finding changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FindingChangeKind {
    /// Another layout wins now.
    WinnerChanged,
    /// A difference beyond the noise appeared (no difference, or unranked, before).
    DifferenceAppeared,
    /// The difference is within the noise now.
    DifferenceVanished,
    /// Answered by the current report only.
    NewQuestion,
    /// Answered by the baseline only.
    QuestionGone,
    /// The recommended layout changed (or one appeared or vanished).
    RecommendationChanged,
}

impl FindingChangeKind {
    /// In words, for the terminal and markdown.
    pub fn word(self) -> &'static str {
        match self {
            FindingChangeKind::WinnerChanged => "winner changed",
            FindingChangeKind::DifferenceAppeared => "difference appeared",
            FindingChangeKind::DifferenceVanished => "difference vanished",
            FindingChangeKind::NewQuestion => "new question",
            FindingChangeKind::QuestionGone => "question gone",
            FindingChangeKind::RecommendationChanged => "recommendation changed",
        }
    }
}

/// One finding that changed between the two reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingChange {
    /// How it changed.
    pub kind: FindingChangeKind,
    /// The question (`lookup · cold stat … , 32 layers on ext4`), or
    /// `recommendation`.
    pub question: String,
    /// The finding in the baseline, in words (empty when it had none).
    pub baseline: String,
    /// The finding in the current report, in words (empty when it has none).
    pub current: String,
}

fn key(f: &Finding) -> String {
    format!("{} · {} on {}", f.workload, f.question, f.backing)
}

/// `overlay wins 2.31×`, `no difference`, `not ranked`: the outcome alone.
fn outcome(f: &Finding) -> String {
    match (f.outcome, &f.winner, f.ratio) {
        (Outcome::Wins, Some(w), Some(r)) => match (f.ratio_low, f.ratio_high) {
            (Some(lo), Some(hi)) if hi > lo => {
                format!("{w} wins, {r:.2}× (95 % interval {lo:.2}–{hi:.2}×)")
            }
            _ => format!("{w} wins, {r:.2}×"),
        },
        (Outcome::Wins, _, _) => "a layout wins".into(),
        (Outcome::NoDifference, _, _) => format!(
            "no difference{}",
            f.against
                .as_ref()
                .map(|a| format!(" ({} vs {a})", f.winner.as_deref().unwrap_or("top two")))
                .unwrap_or_default()
        ),
        (Outcome::Unranked, _, _) => "not ranked (one layout measured)".into(),
    }
}

/// The findings that changed from `baseline` to `current`, in the current
/// report's order (then the questions gone), the recommendation first.
pub fn changes(baseline: &Findings, current: &Findings) -> Vec<FindingChange> {
    let mut out = Vec::new();
    let (rb, rc) = (&baseline.recommendation, &current.recommendation);
    if rb.as_ref().map(|r| (&r.layout, &r.over)) != rc.as_ref().map(|r| (&r.layout, &r.over)) {
        out.push(FindingChange {
            kind: FindingChangeKind::RecommendationChanged,
            question: "recommendation".into(),
            baseline: rb.as_ref().map(|r| r.text.clone()).unwrap_or_default(),
            current: rc.as_ref().map(|r| r.text.clone()).unwrap_or_default(),
        });
    }
    let base: BTreeMap<String, &Finding> = baseline.findings.iter().map(|f| (key(f), f)).collect();
    let mut seen = Vec::new();
    for c in &current.findings {
        let k = key(c);
        let kind = match base.get(&k) {
            None => Some(FindingChangeKind::NewQuestion),
            Some(b) => {
                seen.push(k.clone());
                match (b.outcome, c.outcome) {
                    (Outcome::Wins, Outcome::Wins) if b.winner != c.winner => {
                        Some(FindingChangeKind::WinnerChanged)
                    }
                    (Outcome::Wins, Outcome::Wins) => None,
                    (_, Outcome::Wins) => Some(FindingChangeKind::DifferenceAppeared),
                    (Outcome::Wins, _) => Some(FindingChangeKind::DifferenceVanished),
                    _ => None,
                }
            }
        };
        if let Some(kind) = kind {
            out.push(FindingChange {
                kind,
                baseline: base.get(&k).map(|b| outcome(b)).unwrap_or_default(),
                current: outcome(c),
                question: k,
            });
        }
    }
    for b in &baseline.findings {
        let k = key(b);
        if !seen.contains(&k) && !current.findings.iter().any(|c| key(c) == k) {
            out.push(FindingChange {
                kind: FindingChangeKind::QuestionGone,
                baseline: outcome(b),
                current: String::new(),
                question: k,
            });
        }
    }
    out
}

/// The changes as lines (`- winner changed: … — was …, now …`).
pub fn lines(changes: &[FindingChange]) -> Vec<String> {
    changes
        .iter()
        .map(|c| {
            let was = if c.baseline.is_empty() {
                "none".to_string()
            } else {
                c.baseline.clone()
            };
            let now = if c.current.is_empty() {
                "none".to_string()
            } else {
                c.current.clone()
            };
            format!("{}: {} — was {was}; now {now}", c.kind.word(), c.question)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::findings::Recommendation;

    fn finding(question: &str, outcome: Outcome, winner: Option<&str>) -> Finding {
        Finding {
            workload: "lookup".into(),
            backing: "ext4".into(),
            question: question.into(),
            outcome,
            winner: winner.map(String::from),
            against: Some("overlay2".into()),
            ratio: Some(2.0),
            ratio_low: Some(1.5),
            ratio_high: Some(2.5),
            crossover: None,
            condition: None,
            text: format!("{question}: …"),
            figures: vec![],
        }
    }

    fn rec(layout: &str, over: &str) -> Option<Recommendation> {
        Some(Recommendation {
            layout: layout.into(),
            over: over.into(),
            text: format!("{layout} over {over}"),
            reasons: vec![],
            would_change: vec![],
            figures: vec![],
        })
    }

    #[test]
    fn each_kind_of_change_is_named_and_the_same_findings_change_nothing() {
        let base = Findings {
            findings: vec![
                finding("a", Outcome::Wins, Some("overlay")),
                finding("b", Outcome::NoDifference, None),
                finding("c", Outcome::Wins, Some("overlay")),
                finding("d", Outcome::Wins, Some("overlay")),
                finding("gone", Outcome::Wins, Some("overlay")),
            ],
            recommendation: rec("overlay", "overlay2"),
            not_measured: vec![],
        };
        assert!(changes(&base, &base).is_empty());
        let cur = Findings {
            findings: vec![
                finding("a", Outcome::Wins, Some("overlay2")),
                finding("b", Outcome::Wins, Some("overlay")),
                finding("c", Outcome::NoDifference, None),
                finding("d", Outcome::Wins, Some("overlay")),
                finding("new", Outcome::Unranked, None),
            ],
            recommendation: rec("overlay2", "overlay"),
            not_measured: vec![],
        };
        let got: Vec<(FindingChangeKind, String)> = changes(&base, &cur)
            .into_iter()
            .map(|c| (c.kind, c.question))
            .collect();
        use FindingChangeKind::*;
        let want: Vec<(FindingChangeKind, String)> = vec![
            (RecommendationChanged, "recommendation".into()),
            (WinnerChanged, "lookup · a on ext4".into()),
            (DifferenceAppeared, "lookup · b on ext4".into()),
            (DifferenceVanished, "lookup · c on ext4".into()),
            (NewQuestion, "lookup · new on ext4".into()),
            (QuestionGone, "lookup · gone on ext4".into()),
        ];
        assert_eq!(got, want);
        let l = lines(&changes(&base, &cur));
        assert!(
            l[1].contains("was overlay wins, 2.00× (95 % interval 1.50–2.50×); now overlay2 wins"),
            "{}",
            l[1]
        );
    }
}
