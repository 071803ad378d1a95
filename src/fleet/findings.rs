//! The findings of a fleet, per group of like nodes. Each node's findings are
//! computed from its own report by the findings engine while that report is in
//! hand (`NodeFinding`: a few words per question, no samples), then set side
//! by side for the nodes of one kernel and backing filesystem — findings
//! compare storage stacks, so the stack is what they answer, not part of the
//! group: per question, which layout wins on how many nodes and by how much,
//! and which recommendation how many nodes' figures support.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::NodeSummary;
use crate::report::findings::{Findings, Outcome};
use crate::stats::quantile;

/// What the fleet keeps of one of a node's findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeFinding {
    /// The workload whose figures answer it.
    pub workload: String,
    /// The backing it was measured on.
    pub backing: String,
    /// The question, with its conditions.
    pub question: String,
    /// How it came out.
    pub outcome: Outcome,
    /// The better layout (`wins`).
    pub winner: Option<String>,
    /// How many times better, point estimate.
    pub ratio: Option<f64>,
}

/// A node's findings as the fleet keeps them, and the recommendation
/// (`overlay2 over overlay`) its figures support.
pub fn of_findings(f: &Findings) -> (Vec<NodeFinding>, Option<String>) {
    let kept = f
        .findings
        .iter()
        .map(|x| NodeFinding {
            workload: x.workload.clone(),
            backing: x.backing.clone(),
            question: x.question.clone(),
            outcome: x.outcome,
            winner: x.winner.clone(),
            ratio: x.ratio,
        })
        .collect();
    let rec = f
        .recommendation
        .as_ref()
        .map(|r| format!("{} over {}", r.layout, r.over));
    (kept, rec)
}

/// How many nodes of a group answered a question one way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerTally {
    /// `overlay wins`, `no difference` or `not ranked`.
    pub answer: String,
    /// The nodes that answered so, sorted.
    pub nodes: Vec<String>,
    /// Median over those nodes of the winner's ratio (for `wins`).
    pub median_ratio: Option<f64>,
}

/// One question across the nodes of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupQuestion {
    /// The workload whose figures answer it.
    pub workload: String,
    /// The question.
    pub question: String,
    /// The answers, most nodes first.
    pub answers: Vec<AnswerTally>,
    /// In one sentence (`overlay wins on 3 of 4 nodes (median 2.31×); no difference on 1: n4`).
    pub text: String,
}

/// The findings of a group of like nodes (one kernel, one backing filesystem).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupFindings {
    /// `uname -r` of its nodes.
    pub kernel_release: String,
    /// The backing filesystem measured.
    pub backing: String,
    /// Its nodes with findings, sorted.
    pub nodes: Vec<String>,
    /// Per question, in the order the first node answered them.
    pub questions: Vec<GroupQuestion>,
    /// Each recommendation and the nodes whose figures support it, most first.
    pub recommendations: Vec<AnswerTally>,
}

fn answer(f: &NodeFinding) -> String {
    match (f.outcome, &f.winner) {
        (Outcome::Wins, Some(w)) => format!("{w} wins"),
        (Outcome::Wins, None) => "a layout wins".into(),
        (Outcome::NoDifference, _) => "no difference".into(),
        (Outcome::Unranked, _) => "not ranked".into(),
    }
}

/// Tallies of `(answer, node, ratio)`, most nodes first (then by answer).
fn tally(items: Vec<(String, String, Option<f64>)>) -> Vec<AnswerTally> {
    let mut by: BTreeMap<String, (Vec<String>, Vec<f64>)> = BTreeMap::new();
    for (a, node, ratio) in items {
        let e = by.entry(a).or_default();
        e.0.push(node);
        e.1.extend(ratio.filter(|r| r.is_finite()));
    }
    let mut out: Vec<AnswerTally> = by
        .into_iter()
        .map(|(answer, (mut nodes, mut ratios))| {
            nodes.sort();
            ratios.sort_by(f64::total_cmp);
            AnswerTally {
                median_ratio: (!ratios.is_empty() && answer.ends_with(" wins"))
                    .then(|| quantile(&ratios, 0.5)),
                answer,
                nodes,
            }
        })
        .collect();
    out.sort_by_key(|a| std::cmp::Reverse(a.nodes.len()));
    out
}

fn tally_text(answers: &[AnswerTally], of: usize) -> String {
    answers
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let ratio = a
                .median_ratio
                .map(|r| format!(" (median {r:.2}×)"))
                .unwrap_or_default();
            // The minority answers name their nodes: those are the ones to look at.
            let who = if i > 0 && a.nodes.len() <= 5 {
                format!(": {}", a.nodes.join(", "))
            } else {
                String::new()
            };
            format!(
                "{} on {} of {of} node(s){ratio}{who}",
                a.answer,
                a.nodes.len()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The findings of `nodes`, per kernel and backing filesystem.
pub fn groups_of(nodes: &[NodeSummary]) -> Vec<GroupFindings> {
    type Answers = Vec<(String, String, Option<f64>)>;
    struct Acc {
        nodes: Vec<String>,
        order: Vec<(String, String)>,
        questions: BTreeMap<(String, String), Answers>,
        recs: Answers,
    }
    let mut groups: BTreeMap<(String, String), Acc> = BTreeMap::new();
    for n in nodes {
        for f in &n.findings {
            let acc = groups
                .entry((n.kernel_release.clone(), f.backing.clone()))
                .or_insert_with(|| Acc {
                    nodes: Vec::new(),
                    order: Vec::new(),
                    questions: BTreeMap::new(),
                    recs: Vec::new(),
                });
            if acc.nodes.last() != Some(&n.node) {
                acc.nodes.push(n.node.clone());
                if let Some(r) = &n.recommendation {
                    acc.recs.push((r.clone(), n.node.clone(), None));
                }
            }
            let q = (f.workload.clone(), f.question.clone());
            if !acc.questions.contains_key(&q) {
                acc.order.push(q.clone());
            }
            acc.questions
                .entry(q)
                .or_default()
                .push((answer(f), n.node.clone(), f.ratio));
        }
    }
    groups
        .into_iter()
        .map(|((kernel_release, backing), mut acc)| {
            acc.nodes.sort();
            let of = acc.nodes.len();
            let questions = acc
                .order
                .iter()
                .map(|q| {
                    let answers = tally(acc.questions.remove(q).unwrap_or_default());
                    GroupQuestion {
                        workload: q.0.clone(),
                        question: q.1.clone(),
                        text: format!("{}: {}", q.1, tally_text(&answers, of)),
                        answers,
                    }
                })
                .collect();
            GroupFindings {
                kernel_release,
                backing,
                nodes: acc.nodes,
                questions,
                recommendations: tally(acc.recs),
            }
        })
        .collect()
}

impl GroupFindings {
    /// `6.18.44 · ext4`.
    pub fn label(&self) -> String {
        format!("{} · {}", self.kernel_release, self.backing)
    }

    /// The recommendations in one sentence (`overlay2 over overlay on 3 of 3 node(s)`).
    pub fn recommendation_text(&self) -> String {
        if self.recommendations.is_empty() {
            return "no recommendation (fewer than two layouts compared)".into();
        }
        tally_text(&self.recommendations, self.nodes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Report;

    fn example() -> Report {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/reports/example/report.json");
        let text = std::fs::read_to_string(path).expect("the example report");
        serde_json::from_str(&text).expect("a report")
    }

    /// Three nodes of one kernel and backing: two ran the example, one where
    /// the legacy overlay's figures are 50× slower. Each question says how many
    /// nodes answered it which way, naming the odd one out.
    #[test]
    fn a_group_of_like_nodes_tallies_each_question_and_the_recommendation() {
        let base = example();
        let mut slow = base.clone();
        for c in slow.cases.iter_mut().filter(|c| c.layout == "overlay") {
            for x in c.samples.iter_mut() {
                *x *= 50.0;
            }
        }
        let node = |r: &Report, name: &str| {
            NodeSummary::of_report(r, name.into(), "r1".into(), format!("{name}/r1"))
        };
        let nodes = vec![node(&base, "a"), node(&base, "b"), node(&slow, "c")];
        assert!(!nodes[0].findings.is_empty());
        let groups = groups_of(&nodes);
        assert_eq!(groups.len(), 1, "one kernel, one backing: {groups:#?}");
        let g = &groups[0];
        assert_eq!(g.nodes, vec!["a", "b", "c"]);
        assert_eq!(g.backing, "ext4");
        // The example's own findings hold on every node where nothing changed:
        // a question overlay won on a and b is won by overlay2 on c.
        let flipped = g
            .questions
            .iter()
            .find(|q| {
                q.answers.len() == 2
                    && q.answers[0].answer == "overlay wins"
                    && q.answers[0].nodes == ["a", "b"]
                    && q.answers[1].nodes == ["c"]
            })
            .unwrap_or_else(|| panic!("no question flipped on node c: {:#?}", g.questions));
        assert!(
            flipped.text.contains("overlay wins on 2 of 3 node(s)")
                && flipped.text.contains("on 1 of 3 node(s)")
                && flipped.text.ends_with(": c"),
            "{}",
            flipped.text
        );
        let recs: usize = g.recommendations.iter().map(|r| r.nodes.len()).sum();
        assert_eq!(recs, 3, "{:?}", g.recommendations);
        // Rendered first in summary.md.
        let fleet = crate::fleet::FleetReport {
            schema_version: crate::fleet::FLEET_SCHEMA_VERSION,
            kind: crate::fleet::KIND.into(),
            tool_version: "0".into(),
            nodes: nodes.clone(),
            groups: vec![],
            skipped: vec![],
            findings: groups.clone(),
        };
        let md = crate::fleet::render::summary_markdown(&fleet);
        let at = md.find("## Findings on").expect("a findings section");
        assert!(at < md.find("## Nodes").expect("nodes"), "{md}");
        assert!(md.contains("Recommendation: "), "{md}");
    }
}
