//! The findings engine: from a report's measured cases to what they mean for
//! the choice of layout. Each workload states its questions (`FindingRules`,
//! in its own folder's `findings.rs`): which cases answer one, for which
//! layouts, which way is better, and where the answer changes. This module
//! ranks the layouts of each question through a bootstrap of the ratio of
//! their medians, phrases the outcome (an interval holding 1 is "no
//! difference"; a layout measured alone is not ranked) and derives the
//! recommendation. Nothing here names a workload.

use std::collections::BTreeMap;

use crate::layout;
use crate::report::findings::{Finding, Findings, Outcome, Recommendation};
use crate::report::{fmt_bytes, fmt_ns, Report};
use crate::stats::{bootstrap_change, median_of, seed_of};

/// Resamples behind each ratio's interval (as `compare`'s bootstrap).
const RESAMPLES: usize = 2000;

/// The pair a recommendation is first sought between, in order of preference
/// on a tie: Docker's supported driver and the legacy one it replaced.
const PAIR: [&str; 2] = ["overlay2", "overlay"];

/// One layout's answer to a question: the case whose samples are its figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Contender {
    /// The layout.
    pub layout: String,
    /// Id of the case (`Case::id`) the figure is.
    pub figure: String,
    /// Its samples (a count measured once is one sample: exact).
    pub samples: Vec<f64>,
}

/// A case's id as `report.json` holds it (older reports: its key).
pub fn figure_id(c: &crate::report::Case) -> String {
    if c.id.is_empty() {
        c.key()
    } else {
        c.id.clone()
    }
}

impl Contender {
    /// A case as a contender: its layout, its id and its samples.
    pub fn of(c: &crate::report::Case) -> Contender {
        Contender {
            layout: c.layout.clone(),
            figure: figure_id(c),
            samples: c.samples.clone(),
        }
    }
}

/// A workload's cases grouped for its questions: backing → the point a
/// question is asked at (a depth, a size, a burst) → layout.
pub type ByPoint<'a, K> = BTreeMap<String, BTreeMap<K, BTreeMap<String, &'a crate::report::Case>>>;

/// Fewest timings on each side for a ranking: with fewer, a bootstrap has
/// nothing to resample and the ratio would pass for exact.
const MIN_TIMINGS: usize = 3;

/// Whether `q`'s two contenders have enough samples to rank: counts measured
/// once are exact, a time measured once is not.
fn rankable(q: &Question, a: &Contender, b: &Contender) -> bool {
    q.unit != "ns" || (a.samples.len() >= MIN_TIMINGS && b.samples.len() >= MIN_TIMINGS)
}

/// Where a question's answer changes, found by a workload's rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Crossover {
    /// In words, with its figures (`overlay2 passes 10× plain at 32 layers`).
    pub text: String,
    /// Ids of the cases it rests on.
    pub figures: Vec<String>,
}

/// One question a run answers, as a workload states it.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// The workload whose cases answer it.
    pub workload: String,
    /// The backing measured.
    pub backing: String,
    /// The question with its conditions.
    pub question: String,
    /// Unit of the samples (`ns`, `bytes`, `inodes`).
    pub unit: String,
    /// Smaller is better (times, bytes); else larger (sharing).
    pub lower_is_better: bool,
    /// Each layout's figure; baselines are left out by the engine.
    pub contenders: Vec<Contender>,
    /// Where the answer changes, if the rule found it.
    pub crossover: Option<Crossover>,
    /// Only under this condition (deeper stacks than images usually have);
    /// such findings feed "what would change it", not the recommendation.
    pub condition: Option<String>,
}

/// A workload's rules: the questions its cases in `report` answer.
pub trait FindingRules {
    /// The questions `report`'s cases of this workload answer (none when it
    /// holds none of them).
    fn questions(&self, report: &Report) -> Vec<Question>;
    /// The question this workload answers, for "not measured" (`lookup cost by depth`).
    fn topic(&self) -> &'static str;
    /// The workload's name (`Case::workload`).
    fn workload(&self) -> &'static str;
}

/// A value in its unit, as the findings print it.
pub fn shown(value: f64, unit: &str) -> String {
    match unit {
        "ns" => fmt_ns(value),
        "bytes" => fmt_bytes(value),
        "x" => format!("{value:.2}×"),
        u => format!("{} {u}", trim(value)),
    }
}

fn trim(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The ranking of two contenders: (better, worse, ratio worse/better (or
/// better/worse when larger is better), low, high).
struct Ranked<'a> {
    better: &'a Contender,
    worse: &'a Contender,
    ratio: f64,
    low: f64,
    high: f64,
}

fn median(samples: &[f64]) -> f64 {
    median_of(&mut samples.to_vec())
}

fn rank<'a>(a: &'a Contender, b: &'a Contender, lower_is_better: bool) -> Option<Ranked<'a>> {
    let (ma, mb) = (median(&a.samples), median(&b.samples));
    if !(ma.is_finite() && mb.is_finite()) || ma <= 0.0 || mb <= 0.0 {
        return None;
    }
    let a_better = if lower_is_better { ma <= mb } else { ma >= mb };
    let (better, worse) = if a_better { (a, b) } else { (b, a) };
    // The ratio is always ≥ 1: the worse over the better for times, the
    // better over the worse for sharing.
    let (num, den) = if lower_is_better {
        (worse, better)
    } else {
        (better, worse)
    };
    let seed = seed_of(&format!("{}|{}", num.figure, den.figure));
    let ci = bootstrap_change(
        &|pick| pick(&den.samples),
        &|pick| pick(&num.samples),
        RESAMPLES,
        seed,
    );
    Some(Ranked {
        better,
        worse,
        ratio: 1.0 + ci.change,
        low: 1.0 + ci.low,
        high: 1.0 + ci.high,
    })
}

/// Two layouts' figures ranked as the findings rank them, for the engines that
/// weigh figures outside a report's findings (claims, compare, fleet).
#[derive(Debug, Clone, PartialEq)]
pub struct PairRank {
    /// The layout with the better median.
    pub better: String,
    /// The other.
    pub worse: String,
    /// How many times better (≥ 1), point estimate.
    pub ratio: f64,
    /// 2.5 % bound of the ratio.
    pub low: f64,
    /// 97.5 % bound of the ratio.
    pub high: f64,
    /// The interval excludes 1: a difference beyond the noise.
    pub decisive: bool,
}

/// `a` against `b` on one figure: `None` when either has no positive, finite
/// median (nothing to rank).
pub fn rank_pair(a: &Contender, b: &Contender, lower_is_better: bool) -> Option<PairRank> {
    let r = rank(a, b, lower_is_better)?;
    Some(PairRank {
        better: r.better.layout.clone(),
        worse: r.worse.layout.clone(),
        ratio: r.ratio,
        low: r.low,
        high: r.high,
        decisive: decisive(&r),
    })
}

/// Every question `report`'s cases answer, from every registered workload's rules.
pub fn questions_of(report: &Report, rules: &[&(dyn FindingRules + Sync)]) -> Vec<Question> {
    rules.iter().flat_map(|r| r.questions(report)).collect()
}

/// Whether a ranking is beyond the noise: the ratio's interval excludes 1.
fn decisive(r: &Ranked<'_>) -> bool {
    r.low > 1.0
}

fn phrase(q: &Question, r: &Ranked<'_>) -> (Outcome, String) {
    let unit = q.unit.as_str();
    let (b, w) = (median(&r.better.samples), median(&r.worse.samples));
    if decisive(r) {
        let word = if q.lower_is_better { "less" } else { "more" };
        let margin = if r.high > r.low {
            format!(
                "{:.2}× {word} (95 % interval {:.2}–{:.2}×)",
                r.ratio, r.low, r.high
            )
        } else {
            format!("{:.2}× {word} (exact counts)", r.ratio)
        };
        (
            Outcome::Wins,
            format!(
                "{} on {}: {} wins, {} vs {} on {} — {margin}",
                q.question,
                q.backing,
                r.better.layout,
                shown(b, unit),
                shown(w, unit),
                r.worse.layout
            ),
        )
    } else {
        (
            Outcome::NoDifference,
            format!(
                "{} on {}: no difference between {} and {} ({} vs {}; the ratio's 95 % interval {:.2}–{:.2}× holds 1)",
                q.question,
                q.backing,
                r.better.layout,
                r.worse.layout,
                shown(b, unit),
                shown(w, unit),
                r.low.min(1.0),
                r.high.max(1.0)
            ),
        )
    }
}

/// A ranking in a few words, for the recommendation's reasons:
/// `cold lookup …, 128 layers: overlay 37.6× less (34.8–47.5×)`.
fn brief(q: &Question, r: &Ranked<'_>) -> String {
    let word = if q.lower_is_better { "less" } else { "more" };
    let interval = if r.high > r.low {
        format!(" ({:.2}–{:.2}×)", r.low, r.high)
    } else {
        String::new()
    };
    let verdict = if decisive(r) {
        format!("{} {:.2}× {word}{interval}", r.better.layout, r.ratio)
    } else {
        format!("no difference{interval}")
    };
    format!("{}: {verdict}", q.question)
}

/// Baselines (a flattened copy) are what layouts are measured against, not
/// a choice the findings rank.
fn candidate(c: &Contender) -> bool {
    !layout::caps_of(&c.layout).baseline && layout::entry(&c.layout).is_some()
}

/// One question's finding, and (when both of `pair` were measured) which of
/// the pair it favours.
fn answer(q: &Question, pair: Option<(&str, &str)>) -> Option<(Finding, Option<PairVote>)> {
    let mut cands: Vec<&Contender> = q
        .contenders
        .iter()
        .filter(|c| candidate(c) && !c.samples.is_empty())
        .collect();
    if cands.is_empty() {
        return None;
    }
    cands.sort_by(|a, b| {
        let (ma, mb) = (median(&a.samples), median(&b.samples));
        if q.lower_is_better {
            ma.total_cmp(&mb)
        } else {
            mb.total_cmp(&ma)
        }
    });
    let mut figures: Vec<String> = cands.iter().map(|c| c.figure.clone()).collect();
    let crossover = q.crossover.as_ref().map(|x| {
        figures.extend(x.figures.iter().cloned());
        x.text.clone()
    });
    let mut finding = Finding {
        workload: q.workload.clone(),
        backing: q.backing.clone(),
        question: q.question.clone(),
        outcome: Outcome::Unranked,
        winner: None,
        against: None,
        ratio: None,
        ratio_low: None,
        ratio_high: None,
        crossover: crossover.clone(),
        condition: q.condition.clone(),
        text: String::new(),
        figures,
    };
    let too_few = cands.len() >= 2 && !rankable(q, cands[0], cands[1]);
    let ranked = if cands.len() >= 2 && !too_few {
        rank(cands[0], cands[1], q.lower_is_better)
    } else {
        None
    };
    match &ranked {
        Some(r) => {
            let (outcome, text) = phrase(q, r);
            finding.outcome = outcome;
            finding.text = text;
            if outcome == Outcome::Wins {
                finding.winner = Some(r.better.layout.clone());
            }
            finding.against = Some(r.worse.layout.clone());
            finding.ratio = Some(r.ratio);
            finding.ratio_low = Some(r.low);
            finding.ratio_high = Some(r.high);
        }
        None if too_few => {
            finding.text = format!(
                "{} on {}: {} {}, {} {} (timed fewer than {MIN_TIMINGS} times each: not ranked)",
                q.question,
                q.backing,
                cands[0].layout,
                shown(median(&cands[0].samples), &q.unit),
                cands[1].layout,
                shown(median(&cands[1].samples), &q.unit)
            );
        }
        None => {
            finding.text = format!(
                "{} on {}: only {} measured ({}); not ranked",
                q.question,
                q.backing,
                cands[0].layout,
                shown(median(&cands[0].samples), &q.unit)
            );
        }
    }
    if cands.len() > 2 {
        let rest: Vec<String> = cands[2..]
            .iter()
            .map(|c| format!("{} {}", c.layout, shown(median(&c.samples), &q.unit)))
            .collect();
        finding
            .text
            .push_str(&format!("; then {}", rest.join(", ")));
    }
    if let Some(x) = &crossover {
        finding.text.push_str(&format!("; {x}"));
    }
    if let Some(c) = &q.condition {
        finding.text.push_str(&format!(" [{c}]"));
    }
    // The pair's own ranking (the two may not be the top two).
    let vote = pair.and_then(|(a, b)| {
        let ca = q.contenders.iter().find(|c| c.layout == a)?;
        let cb = q.contenders.iter().find(|c| c.layout == b)?;
        if !rankable(q, ca, cb) {
            return None;
        }
        let r = rank(ca, cb, q.lower_is_better)?;
        Some(PairVote {
            favours: decisive(&r).then(|| r.better.layout.clone()),
            text: brief(q, &r),
            figures: vec![ca.figure.clone(), cb.figure.clone()],
            condition: q.condition.clone(),
        })
    });
    Some((finding, vote))
}

/// What one question says about the recommended pair.
struct PairVote {
    /// The better of the two beyond the noise, if either.
    favours: Option<String>,
    /// The pair's comparison in words.
    text: String,
    figures: Vec<String>,
    condition: Option<String>,
}

/// The findings of `report`, from `rules` (every registered workload's).
pub fn compute(report: &Report, rules: &[&(dyn FindingRules + Sync)]) -> Findings {
    let questions: Vec<Question> = rules.iter().flat_map(|r| r.questions(report)).collect();
    let measured: Vec<String> = {
        let mut v: Vec<String> = questions
            .iter()
            .flat_map(|q| q.contenders.iter())
            .filter(|c| candidate(c))
            .map(|c| c.layout.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let pair = choose_pair(&measured, &questions);
    let pair_ref = pair.as_ref().map(|(a, b)| (a.as_str(), b.as_str()));
    let mut findings = Vec::new();
    let mut votes = Vec::new();
    for q in &questions {
        if let Some((f, v)) = answer(q, pair_ref) {
            findings.push(f);
            votes.extend(v);
        }
    }
    let not_measured = rules
        .iter()
        .filter(|r| !report.cases.iter().any(|c| c.workload == r.workload()))
        .map(|r| format!("{} (workload {} not run)", r.topic(), r.workload()))
        .collect();
    Findings {
        findings,
        recommendation: pair_ref.and_then(|p| recommend(p, &votes)),
        not_measured,
    }
}

/// The two layouts a recommendation is made between: overlay2 and overlay
/// when both were measured, else the two candidates measured in most questions.
fn choose_pair(measured: &[String], questions: &[Question]) -> Option<(String, String)> {
    if PAIR.iter().all(|p| measured.iter().any(|m| m == p)) {
        return Some((PAIR[0].into(), PAIR[1].into()));
    }
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for q in questions {
        for c in q.contenders.iter().filter(|c| candidate(c)) {
            *count.entry(c.layout.as_str()).or_default() += 1;
        }
    }
    let mut v: Vec<(&str, usize)> = count.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    match v.as_slice() {
        [a, b, ..] => Some((a.0.to_string(), b.0.to_string())),
        _ => None,
    }
}

/// The recommendation between `pair` from each question's vote: the common
/// case's questions are tallied; a tie goes to the first of the pair (for
/// overlay2 and overlay: the one Docker still ships); wins under a condition
/// are what would change it.
fn recommend(pair: (&str, &str), votes: &[PairVote]) -> Option<Recommendation> {
    if votes.is_empty() {
        return None;
    }
    let tally = |l: &str| {
        votes
            .iter()
            .filter(|v| v.condition.is_none() && v.favours.as_deref() == Some(l))
            .count()
    };
    let (ta, tb) = (tally(pair.0), tally(pair.1));
    let (layout, over) = if tb > ta {
        (pair.1, pair.0)
    } else {
        (pair.0, pair.1)
    };
    let mut reasons = Vec::new();
    let mut would_change = Vec::new();
    let mut figures = Vec::new();
    for v in votes {
        match (&v.favours, &v.condition) {
            (Some(l), None) if l == layout => {
                reasons.push(v.text.clone());
                figures.extend(v.figures.iter().cloned());
            }
            (Some(_), None) => {
                would_change.push(format!("where this matters most: {}", v.text));
                figures.extend(v.figures.iter().cloned());
            }
            (Some(l), Some(c)) if l == over => {
                would_change.push(format!("{c}: {}", v.text));
                figures.extend(v.figures.iter().cloned());
            }
            _ => {}
        }
    }
    let basis = if ta == tb {
        format!(
            "the measured questions split evenly ({ta} each, the rest no difference); {} is preferred on a tie",
            layout
        )
    } else {
        format!(
            "it is better beyond the noise in {} of the measured questions, {over} in {}",
            ta.max(tb),
            ta.min(tb)
        )
    };
    if layout == PAIR[1] && over == PAIR[0] {
        would_change.push(format!(
            "{layout} is the legacy driver, gone from Docker 24 on: where Docker ≥ 24 is required, {over}"
        ));
    }
    figures.sort();
    figures.dedup();
    Some(Recommendation {
        layout: layout.into(),
        over: over.into(),
        text: format!("{layout} over {over}: {basis}"),
        reasons,
        would_change,
        figures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(layout: &str, samples: &[f64]) -> Contender {
        Contender {
            layout: layout.into(),
            figure: format!("w/{layout}/m/"),
            samples: samples.to_vec(),
        }
    }

    fn q(contenders: Vec<Contender>, condition: Option<&str>) -> Question {
        Question {
            workload: "w".into(),
            backing: "ext4".into(),
            question: "cold lookup".into(),
            unit: "ns".into(),
            lower_is_better: true,
            contenders,
            crossover: None,
            condition: condition.map(String::from),
        }
    }

    #[test]
    fn overlapping_intervals_are_no_difference_and_a_lone_layout_is_not_ranked() {
        let noisy = q(
            vec![
                c("overlay2", &[100.0, 110.0, 90.0, 105.0, 95.0]),
                c("overlay", &[101.0, 111.0, 89.0, 104.0, 96.0]),
            ],
            None,
        );
        let (f, v) = answer(&noisy, Some(("overlay2", "overlay"))).expect("answer");
        assert_eq!(f.outcome, Outcome::NoDifference, "{}", f.text);
        assert!(f.winner.is_none() && f.text.contains("no difference"));
        assert!(v.expect("vote").favours.is_none());
        let lone = q(vec![c("overlay2", &[1.0]), c("plain", &[0.5])], None);
        let (f, _) = answer(&lone, None).expect("answer");
        assert_eq!(f.outcome, Outcome::Unranked);
        assert!(f.text.contains("not ranked"), "{}", f.text);
    }

    #[test]
    fn a_clear_win_states_the_ratio_with_its_interval() {
        let clear = q(
            vec![
                c("overlay2", &[300.0, 310.0, 290.0, 305.0, 295.0]),
                c("overlay", &[100.0, 110.0, 90.0, 105.0, 95.0]),
            ],
            None,
        );
        let (f, v) = answer(&clear, Some(("overlay2", "overlay"))).expect("answer");
        assert_eq!(f.outcome, Outcome::Wins);
        assert_eq!(f.winner.as_deref(), Some("overlay"));
        let (lo, hi) = (f.ratio_low.expect("low"), f.ratio_high.expect("high"));
        assert!(lo > 1.0 && lo <= 3.0 && hi >= 3.0, "{lo} {hi}");
        assert_eq!(v.expect("vote").favours.as_deref(), Some("overlay"));
    }

    /// The committed example run: every question it answers has a finding,
    /// each cited id is a case of the report, and overlay2 vs overlay is decided.
    #[test]
    fn the_example_run_answers_its_questions_citing_cases_it_holds() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/reports/example/report.json");
        let text = std::fs::read_to_string(path).expect("the example report");
        let r: Report = serde_json::from_str(&text).expect("a report");
        let f = crate::workload::findings_of(&r);
        for w in ["lookup", "copy-up", "inodes", "page-cache"] {
            assert!(f.findings.iter().any(|x| x.workload == w), "no {w} finding");
        }
        let ids: std::collections::BTreeSet<&str> = r.cases.iter().map(|c| c.id.as_str()).collect();
        let mut cited = 0;
        for id in f.cited() {
            assert!(ids.contains(id), "{id} is cited but not a case");
            cited += 1;
        }
        assert!(cited > 0);
        let rec = f.recommendation.as_ref().expect("a recommendation");
        assert!(["overlay2", "overlay"].contains(&rec.layout.as_str()));
        assert!(
            f.findings.iter().any(|x| x
                .crossover
                .as_deref()
                .is_some_and(|c| c.contains("10× plain"))),
            "the depth where overlay2 passes 10× plain"
        );
        assert!(
            f.lines(crate::report::summary::FINDINGS_LINES).len()
                <= crate::report::summary::FINDINGS_LINES
        );
    }

    #[test]
    fn conditional_wins_change_the_recommendation_only_in_words() {
        let vote = |favours: Option<&str>, condition: Option<&str>| PairVote {
            favours: favours.map(String::from),
            text: "t".into(),
            figures: vec!["id".into()],
            condition: condition.map(String::from),
        };
        let r = recommend(
            ("overlay2", "overlay"),
            &[
                vote(Some("overlay2"), None),
                vote(Some("overlay"), Some("deeper than 64 layers")),
                vote(None, None),
            ],
        )
        .expect("recommendation");
        assert_eq!(
            (r.layout.as_str(), r.over.as_str()),
            ("overlay2", "overlay")
        );
        assert!(r
            .would_change
            .iter()
            .any(|w| w.starts_with("deeper than 64")));
        let tie = recommend(
            ("overlay2", "overlay"),
            &[vote(Some("overlay2"), None), vote(Some("overlay"), None)],
        )
        .expect("recommendation");
        assert_eq!(tie.layout, "overlay2", "a tie goes to the supported driver");
    }
}
