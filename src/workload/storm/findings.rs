//! storm's questions for the findings: how fast a burst of containers gets
//! its storage ready (p99 of the largest burst measured, at the deepest
//! stack up to what images usually have), and what the mount table costs
//! with the most mounts held.

use std::collections::BTreeMap;

use super::keys::{Idmap, Phase, View, MOUNTINFO_READ, NAME, TIME_TO_READY_P99};
use crate::findings::{ByPoint, Contender, FindingRules, Question};
use crate::report::{Case, Report};
use crate::workload::CaseView;

/// Deepest stack counted as what images usually have (as lookup's).
const TYPICAL_MAX: usize = 16;

/// The rules, registered in `ENTRY`.
pub struct Rules;

/// Per backing: the largest point and its cases by layout.
type Largest<'a> = BTreeMap<String, ((usize, usize), BTreeMap<String, &'a Case>)>;

/// The cases of `metric` and `phase`, by backing → the point `key` picks
/// (the largest wins) → layout.
fn largest<'a>(
    report: &'a Report,
    metric: &str,
    phase: Phase,
    key: impl Fn(&View) -> Option<(usize, usize)>,
) -> Largest<'a> {
    let mut by: ByPoint<'a, (usize, usize)> = BTreeMap::new();
    for c in report.cases_of(NAME).filter(|c| c.metric == metric) {
        let Some(v) = View::of_case(c) else { continue };
        if v.phase != phase {
            continue;
        }
        let Some(k) = key(&v) else { continue };
        by.entry(v.backing)
            .or_default()
            .entry(k)
            .or_default()
            .insert(c.layout.clone(), c);
    }
    by.into_iter()
        .filter_map(|(b, points)| points.into_iter().next_back().map(|p| (b, p)))
        .collect()
}

fn question(backing: String, text: String, cases: &BTreeMap<String, &Case>) -> Question {
    Question {
        workload: NAME.into(),
        backing,
        question: text,
        unit: "ns".into(),
        lower_is_better: true,
        contenders: cases.values().map(|c| Contender::of(c)).collect(),
        crossover: None,
        condition: None,
    }
}

impl FindingRules for Rules {
    fn workload(&self) -> &'static str {
        NAME
    }

    fn topic(&self) -> &'static str {
        "containers started at once, and the mount table"
    }

    fn questions(&self, report: &Report) -> Vec<Question> {
        let mut out = Vec::new();
        // Depth first: the deepest typical stack, then the largest burst at it.
        // The user's image counts whatever its depth: it is what they run.
        let burst = largest(report, TIME_TO_READY_P99, Phase::Start, |v| {
            (v.idmap == Some(Idmap::None) && (v.image.is_some() || v.depth <= TYPICAL_MAX))
                .then_some((v.depth, v.concurrency?))
        });
        for (backing, ((depth, containers), cases)) in burst {
            let image = cases
                .values()
                .next()
                .and_then(|c| View::of_case(c))
                .and_then(|v| v.image);
            let layers = if depth == 1 { "layer" } else { "layers" };
            out.push(question(
                backing,
                match image {
                    Some(image) => format!(
                        "p99 time for {containers} containers of {image} started at once to get storage \
                         ready and read what its start reads, {depth} {layers}"
                    ),
                    None => format!(
                        "p99 time for {containers} containers started at once to get storage ready, {depth} {layers}"
                    ),
                },
                &cases,
            ));
        }
        let table = largest(report, MOUNTINFO_READ, Phase::MountTable, |v| {
            Some((v.held?, v.depth))
        });
        for (backing, ((held, depth), cases)) in table {
            out.push(question(
                backing,
                format!("reading /proc/self/mountinfo with {held} mounts of {depth} layers held"),
                &cases,
            ));
        }
        out
    }
}
