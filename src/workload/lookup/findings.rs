//! lookup's questions for the findings: how a cold lookup and a container's
//! start-up cost at the depth images usually have and at the deepest stack
//! measured, and the depth where a layout's cold lookup passes N× plain.

use std::collections::{BTreeMap, BTreeSet};

use super::keys::{Cache, Op, Target, View, NAME};
use crate::findings::{figure_id, Contender, Crossover, FindingRules, Question};
use crate::layout;
use crate::report::{Case, Report};
use crate::workload::CaseView;

/// Deepest stack counted as what images usually have (Docker Hub images
/// mostly have 5–15 layers); deeper ones make a conditional finding.
const TYPICAL_MAX: usize = 16;

/// The multiple of plain's cold lookup a crossover is reported at.
const TIMES_PLAIN: f64 = 10.0;

/// The rules, registered in `ENTRY`.
pub struct Rules;

/// Cases of one op/target, cold, by backing → depth → layout.
type ByDepth<'a> = BTreeMap<String, BTreeMap<usize, BTreeMap<String, &'a Case>>>;

fn by_depth(report: &Report, op: Op, target: Target) -> ByDepth<'_> {
    let mut out: ByDepth<'_> = BTreeMap::new();
    for c in report.cases_of(NAME) {
        let Some(v) = View::of_case(c) else { continue };
        if v.op != op || v.target != target || v.cache != Cache::Cold || v.store_images.is_some() {
            continue;
        }
        let Some(depth) = v.depth else { continue };
        out.entry(v.backing)
            .or_default()
            .entry(depth)
            .or_default()
            .insert(c.layout.clone(), c);
    }
    out
}

fn question(
    backing: &str,
    what: &str,
    depth: usize,
    cases: &BTreeMap<String, &Case>,
    condition: Option<String>,
) -> Question {
    Question {
        workload: NAME.into(),
        backing: backing.into(),
        question: format!("{what}, {depth} layers"),
        unit: "ns".into(),
        lower_is_better: true,
        contenders: cases.values().map(|c| Contender::of(c)).collect(),
        crossover: None,
        condition,
    }
}

/// The typical depth and the deepest, of the depths measured.
fn depths(by: &BTreeMap<usize, BTreeMap<String, &Case>>) -> Vec<(usize, Option<String>)> {
    let typical = by.keys().copied().filter(|d| *d <= TYPICAL_MAX).max();
    let deepest = by.keys().copied().max();
    let mut out = Vec::new();
    if let Some(t) = typical {
        out.push((t, None));
    }
    if let Some(d) = deepest.filter(|d| Some(*d) != typical) {
        out.push((
            d,
            (d > TYPICAL_MAX)
                .then(|| format!("stacks deeper than {TYPICAL_MAX} layers and lookup-heavy")),
        ));
    }
    out
}

/// Where each layout's cold lookup first reaches `TIMES_PLAIN`× the
/// baseline's at the same depth, or that it never does.
fn crossover(by: &BTreeMap<usize, BTreeMap<String, &Case>>) -> Option<Crossover> {
    let layouts: BTreeSet<&String> = by
        .values()
        .flat_map(|m| m.keys())
        .filter(|l| !layout::caps_of(l).baseline)
        .collect();
    let mut parts = Vec::new();
    let mut figures = Vec::new();
    for l in layouts {
        let mut passed = None;
        let mut deepest = None;
        for (d, m) in by {
            let (Some(c), Some(base)) = (
                m.get(l),
                m.values().find(|c| layout::caps_of(&c.layout).baseline),
            ) else {
                continue;
            };
            if base.stats.median <= 0.0 {
                continue;
            }
            let ratio = c.stats.median / base.stats.median;
            deepest = Some((*d, ratio, base.layout.clone()));
            if ratio >= TIMES_PLAIN {
                passed = Some((*d, ratio, base.layout.clone()));
                figures.push(figure_id(c));
                figures.push(figure_id(base));
                break;
            }
        }
        match (passed, deepest) {
            (Some((d, r, base)), _) => parts.push(format!(
                "{l} passes {TIMES_PLAIN:.0}× {base} at {d} layers ({r:.1}×)"
            )),
            (None, Some((d, r, base))) => parts.push(format!(
                "{l} stays under {TIMES_PLAIN:.0}× {base} up to {d} layers ({r:.1}×)"
            )),
            _ => {}
        }
    }
    (!parts.is_empty()).then(|| Crossover {
        text: parts.join("; "),
        figures,
    })
}

impl FindingRules for Rules {
    fn workload(&self) -> &'static str {
        NAME
    }

    fn topic(&self) -> &'static str {
        "lookup cost and container start-up by depth"
    }

    fn questions(&self, report: &Report) -> Vec<Question> {
        let mut out = Vec::new();
        for (backing, by) in by_depth(report, Op::Stat, Target::Bottom) {
            let cross = crossover(&by);
            for (i, (d, condition)) in depths(&by).into_iter().enumerate() {
                let mut q = question(
                    &backing,
                    "cold lookup of a name in the bottom layer",
                    d,
                    &by[&d],
                    condition,
                );
                if i == 0 {
                    q.crossover = cross.clone();
                }
                out.push(q);
            }
        }
        for (backing, by) in by_depth(report, Op::Startup, Target::Stack) {
            for (d, condition) in depths(&by) {
                out.push(question(
                    &backing,
                    "container start-up (mount and first lookups), cold",
                    d,
                    &by[&d],
                    condition,
                ));
            }
        }
        out
    }
}
