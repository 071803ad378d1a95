//! Weighing a comparative statement ("A performs better than B") over every
//! figure both were measured on, each ranked as the findings rank layouts: a
//! ratio whose 95 % bootstrap interval holds 1 is no difference. A statement
//! is confirmed when every decided figure favours it, refuted when none does,
//! and *depends* when its figures disagree — the verdict then names the
//! figures on each side, so one figure never decides alone.

use std::fmt::Write;

use super::Finding;
use crate::findings::{rank_pair, shown, Contender, PairRank, Question};
use crate::report::{ClaimVerdict, Report};

/// One figure both layouts were measured on, ranked.
#[derive(Debug, Clone, PartialEq)]
pub struct Weight {
    /// The question, with its conditions and backing.
    pub question: String,
    /// Unit of the values.
    pub unit: String,
    /// The claimed-better layout's median.
    pub claimed_value: f64,
    /// The other layout's median.
    pub other_value: f64,
    /// The two ranked (which is better, by how much, beyond the noise or not).
    pub rank: PairRank,
    /// Only under this condition (not the common case): shown, not counted.
    pub condition: Option<String>,
    /// Ids of the figures (cases) it rests on, when it comes from a report.
    pub figures: Vec<String>,
}

impl Weight {
    /// The layout it favours beyond the noise, if either.
    pub fn favours(&self) -> Option<&str> {
        self.rank.decisive.then_some(self.rank.better.as_str())
    }

    /// `first write to a 32.0 MiB file: overlay2 21.7 ms vs btrfs 152 µs`.
    fn short(&self, claimed: &str, other: &str) -> String {
        format!(
            "{}: {claimed} {} vs {other} {}",
            self.question,
            shown(self.claimed_value, &self.unit),
            shown(self.other_value, &self.unit)
        )
    }

    /// The short form with the margin and its interval, or "no difference".
    fn long(&self, claimed: &str, other: &str) -> String {
        let r = &self.rank;
        let margin = match self.favours() {
            Some(l) if r.high > r.low => format!(
                "{l} better, {:.2}× (95 % interval {:.2}–{:.2}×)",
                r.ratio, r.low, r.high
            ),
            Some(l) => format!("{l} better, {:.2}× (exact counts)", r.ratio),
            None => format!(
                "no difference (the ratio's 95 % interval {:.2}–{:.2}× holds 1)",
                r.low.min(1.0),
                r.high.max(1.0)
            ),
        };
        let cond = self
            .condition
            .as_ref()
            .map(|c| format!(" [only {c}: not counted]"))
            .unwrap_or_default();
        format!("{} — {margin}{cond}", self.short(claimed, other))
    }
}

/// A statement weighed over its figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Weighing {
    /// The layout the statement says is better.
    pub claimed: String,
    /// The layout it is said to beat.
    pub other: String,
    /// Every figure both were measured on, in the order given.
    pub weights: Vec<Weight>,
}

/// Weighs "`claimed` performs better than `other`" over `questions`: each one
/// that measured both layouts becomes a weight (the others are left out).
pub fn weigh(claimed: &str, other: &str, questions: &[Question]) -> Weighing {
    let pick = |q: &Question, l: &str| -> Option<Contender> {
        q.contenders
            .iter()
            .find(|c| c.layout == l && !c.samples.is_empty())
            .cloned()
    };
    let weights = questions
        .iter()
        .filter_map(|q| {
            let (a, b) = (pick(q, claimed)?, pick(q, other)?);
            let rank = rank_pair(&a, &b, q.lower_is_better)?;
            let median = |c: &Contender| crate::stats::median_of(&mut c.samples.clone());
            Some(Weight {
                question: format!("{} ({})", q.question, q.backing),
                unit: q.unit.clone(),
                claimed_value: median(&a),
                other_value: median(&b),
                rank,
                condition: q.condition.clone(),
                figures: vec![a.figure, b.figure],
            })
        })
        .collect();
    Weighing {
        claimed: claimed.into(),
        other: other.into(),
        weights,
    }
}

impl Weighing {
    /// The figures of the common case (conditional ones are shown, not counted)
    /// that favour `layout` beyond the noise.
    pub fn favouring<'a>(&'a self, layout: &'a str) -> impl Iterator<Item = &'a Weight> + 'a {
        self.weights
            .iter()
            .filter(move |w| w.condition.is_none() && w.favours() == Some(layout))
    }

    /// The verdict: confirmed when the decided figures all favour the claim,
    /// refuted when none does (or none is decided: no figure shows it better),
    /// depends when they disagree; `None` without a figure both were measured on.
    pub fn verdict(&self) -> Option<ClaimVerdict> {
        let counted = self.weights.iter().filter(|w| w.condition.is_none());
        if counted.count() == 0 {
            return None;
        }
        let pro = self.favouring(&self.claimed).count();
        let con = self.favouring(&self.other).count();
        Some(match (pro > 0, con > 0) {
            (true, true) => ClaimVerdict::Depends,
            (true, false) => ClaimVerdict::Confirmed,
            _ => ClaimVerdict::Refuted,
        })
    }

    /// The verdict as a claim's finding: the figure names each side's
    /// figures; one observation per figure weighed, with its margin.
    pub fn finding(&self) -> Finding {
        let (c, o) = (self.claimed.as_str(), self.other.as_str());
        let Some(verdict) = self.verdict() else {
            return Finding::not_testable(format!(
                "no figure measured both {c} and {o} (of the common case)"
            ));
        };
        let side = |l: &str| -> Vec<String> { self.favouring(l).map(|w| w.short(c, o)).collect() };
        let (pro, con) = (side(c), side(o));
        let counted = self
            .weights
            .iter()
            .filter(|w| w.condition.is_none())
            .count();
        let even = counted - pro.len() - con.len();
        let mut figure = String::new();
        if !pro.is_empty() {
            let _ = write!(figure, "{c} better on {}", pro.join("; "));
        }
        if !con.is_empty() {
            if !figure.is_empty() {
                figure.push_str(" — but ");
            }
            let _ = write!(figure, "{o} better on {}", con.join("; "));
        }
        if figure.is_empty() {
            let _ = write!(
                figure,
                "no difference beyond the noise between {c} and {o} on any of {counted} figure(s)"
            );
        } else if even > 0 {
            let _ = write!(figure, "; no difference on {even} more");
        }
        let obs = self.weights.iter().map(|w| w.long(c, o)).collect();
        Finding::new(verdict, figure)
            .with_value(
                pro.len() as f64,
                &format!("of {counted} figures favour {c}"),
            )
            .with_observations(obs)
    }

    /// Ids of the figures weighed.
    pub fn figures(&self) -> impl Iterator<Item = &str> {
        self.weights
            .iter()
            .flat_map(|w| w.figures.iter())
            .map(String::as_str)
    }
}

/// Weighs the statement over every question `report`'s cases answer (the
/// findings' questions, from every registered workload's rules): a run that
/// measured both layouts on one backing answers it with its own figures.
pub fn from_report(report: &Report, claimed: &str, other: &str) -> Weighing {
    let rules = crate::workload::finding_rules();
    weigh(
        claimed,
        other,
        &crate::findings::questions_of(report, &rules),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(what: &str, lower: bool, a: &[f64], b: &[f64]) -> Question {
        let c = |l: &str, s: &[f64]| Contender {
            layout: l.into(),
            figure: format!("{what}/{l}"),
            samples: s.to_vec(),
        };
        Question {
            workload: "claims".into(),
            backing: "ext4".into(),
            question: what.into(),
            unit: "ns".into(),
            lower_is_better: lower,
            contenders: vec![c("overlay2", a), c("btrfs", b)],
            crossover: None,
            condition: None,
        }
    }

    const FAST: [f64; 5] = [100.0, 104.0, 98.0, 101.0, 99.0];
    const SLOW: [f64; 5] = [400.0, 410.0, 390.0, 405.0, 395.0];

    #[test]
    fn figures_that_disagree_make_depends_naming_each_side() {
        let w = weigh(
            "overlay2",
            "btrfs",
            &[
                q("first write", true, &SLOW, &FAST),
                q("new-file write", true, &FAST, &SLOW),
            ],
        );
        assert_eq!(w.verdict(), Some(ClaimVerdict::Depends));
        let f = w.finding();
        assert_eq!(f.verdict, ClaimVerdict::Depends);
        assert!(
            f.figure.contains("overlay2 better on new-file write")
                && f.figure.contains("btrfs better on first write"),
            "{}",
            f.figure
        );
        assert_eq!(f.observations.len(), 2);
    }

    #[test]
    fn one_side_only_confirms_or_refutes_and_noise_decides_nothing() {
        let noisy = [100.0, 140.0, 70.0, 120.0, 90.0];
        let pro = weigh(
            "overlay2",
            "btrfs",
            &[
                q("a", true, &FAST, &SLOW),
                q("b", true, &noisy, &[101.0, 139.0, 71.0, 119.0, 91.0]),
            ],
        );
        assert_eq!(pro.verdict(), Some(ClaimVerdict::Confirmed));
        assert!(pro.finding().figure.contains("no difference on 1 more"));
        let con = weigh("overlay2", "btrfs", &[q("a", false, &FAST, &SLOW)]);
        assert_eq!(
            con.verdict(),
            Some(ClaimVerdict::Refuted),
            "higher is better here"
        );
        let none = weigh("overlay2", "btrfs", &[q("b", true, &noisy, &noisy)]);
        assert_eq!(none.verdict(), Some(ClaimVerdict::Refuted));
        assert!(none.finding().figure.contains("no difference"));
        let empty = weigh("overlay2", "plain", &[q("a", true, &FAST, &SLOW)]);
        assert_eq!(empty.verdict(), None);
        assert_eq!(empty.finding().verdict, ClaimVerdict::NotTestable);
    }

    fn report(path: &str) -> Report {
        let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
            .expect("the committed report");
        serde_json::from_str(&text).expect("a report")
    }

    /// Claim 10 from a real run that measured overlay2 and btrfs on one btrfs
    /// backing (quick suite, this VM): overlay2 shares the page cache, btrfs
    /// writes a big file first without copying it and looks names up flat —
    /// the figures disagree, so the claim depends, naming each side's figures.
    #[test]
    fn claim_10_depends_on_a_run_that_measured_both() {
        let w = from_report(
            &report("tests/fixtures/btrfs-run/report.json"),
            "overlay2",
            "btrfs",
        );
        assert!(w.weights.len() >= 4, "{w:#?}");
        let f = w.finding();
        assert_eq!(f.verdict, ClaimVerdict::Depends, "{}", f.figure);
        let (pro, con) = f.figure.split_once(" — but ").expect("two sides");
        assert!(
            pro.starts_with("overlay2 better on page cache taken by 4 containers")
                && pro.contains("overlay2 64.0 MiB vs btrfs 256.0 MiB"),
            "{pro}"
        );
        assert!(
            con.starts_with("btrfs better on ") && con.contains("first write to a 16.0 MiB file"),
            "{con}"
        );
        assert!(
            f.observations
                .iter()
                .any(|o| o.contains("start-up") && o.contains("no difference")),
            "{:#?}",
            f.observations
        );
    }

    /// The committed example measured no btrfs: the run's figures weigh
    /// nothing and the claim is not testable from them (never decided by none).
    #[test]
    fn the_example_run_cannot_weigh_claim_10() {
        let w = from_report(&report("reports/example/report.json"), "overlay2", "btrfs");
        assert!(w.weights.is_empty());
        assert_eq!(w.finding().verdict, ClaimVerdict::NotTestable);
        let legacy = from_report(
            &report("reports/example/report.json"),
            "overlay2",
            "overlay",
        );
        assert!(
            legacy.weights.len() >= 4,
            "the example measured overlay2 and overlay"
        );
        assert!(legacy.verdict().is_some());
    }

    #[test]
    fn a_conditional_figure_is_shown_but_not_counted() {
        let mut deep = q("lookup, 128 layers", true, &SLOW, &FAST);
        deep.condition = Some("deeper than 16 layers".into());
        let w = weigh("overlay2", "btrfs", &[q("a", true, &FAST, &SLOW), deep]);
        assert_eq!(w.verdict(), Some(ClaimVerdict::Confirmed));
        assert!(w.finding().observations[1].contains("not counted"));
    }
}
