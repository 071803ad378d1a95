//! The `findings` section of `report.json`: what a run's figures mean for the
//! user's decision, computed by the findings engine and
//! shown first by every rendering. Here only the data and its words: nothing
//! here computes a finding or names a workload.

use serde::{Deserialize, Serialize};

/// What a run's measurements answer, and the recommendation they support.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Findings {
    /// One per question the run answered, in workload order.
    pub findings: Vec<Finding>,
    /// Which of the measured layouts to use, when two of them were compared.
    pub recommendation: Option<Recommendation>,
    /// Questions the run did not answer (a workload not run, a layout not measured).
    pub not_measured: Vec<String>,
}

/// How a question came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// One layout is better beyond the noise (the ratio's 95 % interval excludes 1).
    Wins,
    /// The ratio's interval holds 1: no difference.
    NoDifference,
    /// Only one layout was measured: nothing is ranked.
    Unranked,
}

/// One answered question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// The workload whose figures answer it.
    pub workload: String,
    /// The backing it was measured on.
    pub backing: String,
    /// The question, with its conditions (`cold lookup of a name in the bottom layer, 32 layers`).
    pub question: String,
    /// How it came out.
    pub outcome: Outcome,
    /// The better layout (`wins`), else absent.
    pub winner: Option<String>,
    /// The layout it is set against (the runner-up).
    pub against: Option<String>,
    /// How many times better the winner is (worse / better, ≥ 1), point estimate.
    pub ratio: Option<f64>,
    /// 2.5 % bound of that ratio (bootstrap over both layouts' samples).
    pub ratio_low: Option<f64>,
    /// 97.5 % bound of that ratio.
    pub ratio_high: Option<f64>,
    /// Where the answer changes (a depth, a size, an image count), when it does.
    pub crossover: Option<String>,
    /// Only under this condition (e.g. stacks deeper than typical images);
    /// absent when the question is about the common case.
    pub condition: Option<String>,
    /// The finding in one sentence, with its figures.
    pub text: String,
    /// Ids of the cases in `cases` whose figures it cites.
    pub figures: Vec<String>,
}

/// Which layout to use, of those measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Recommendation {
    /// The layout recommended.
    pub layout: String,
    /// The layout it is recommended over.
    pub over: String,
    /// The recommendation in one sentence.
    pub text: String,
    /// Why: the findings it rests on, with their figures.
    pub reasons: Vec<String>,
    /// What would change it.
    pub would_change: Vec<String>,
    /// Ids of the cases the reasons cite.
    pub figures: Vec<String>,
}

impl Findings {
    /// Every case id cited, findings and recommendation.
    pub fn cited(&self) -> impl Iterator<Item = &str> {
        self.findings
            .iter()
            .flat_map(|f| f.figures.iter())
            .chain(self.recommendation.iter().flat_map(|r| r.figures.iter()))
            .map(String::as_str)
    }

    /// The findings as plain lines (terminal, at most `max` lines, then a
    /// pointer to the rest).
    pub fn lines(&self, max: usize) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(r) = &self.recommendation {
            out.push(format!("Recommendation: {}", r.text));
            if !r.reasons.is_empty() {
                out.push(format!("  because {}", r.reasons.join("; ")));
            }
            for w in &r.would_change {
                out.push(format!("  would change it: {w}"));
            }
        }
        for f in &self.findings {
            out.push(format!("- {}", f.text));
        }
        for n in &self.not_measured {
            out.push(format!("- not measured: {n}"));
        }
        if out.len() > max {
            let rest = out.len() - (max - 1);
            out.truncate(max - 1);
            out.push(format!("… {rest} more in summary.md"));
        }
        out
    }

    /// The findings as summary.md's first section.
    pub fn markdown(&self) -> String {
        let mut s = String::from("\n## Findings\n\n");
        if let Some(r) = &self.recommendation {
            s.push_str(&format!("**Recommendation: {}**\n\n", r.text));
            for x in &r.reasons {
                s.push_str(&format!("- because {x}\n"));
            }
            for w in &r.would_change {
                s.push_str(&format!("- would change it: {w}\n"));
            }
            s.push('\n');
        }
        for f in &self.findings {
            s.push_str(&format!("- {}\n", f.text));
        }
        for n in &self.not_measured {
            s.push_str(&format!("- not measured: {n}\n"));
        }
        s
    }
}
