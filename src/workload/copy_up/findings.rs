//! copy-up's questions for the findings: what the first write to the largest
//! file measured costs on each layout (default options, cold), and the file
//! size at which a first write passes 100 ms.

use std::collections::BTreeMap;

use super::keys::{Cache, Op, View, NAME};
use crate::findings::{figure_id, Contender, Crossover, FindingRules, Question};
use crate::layout;
use crate::report::{fmt_bytes, Case, Report};
use crate::stats::fit_line;
use crate::workload::CaseView;

/// The first-write time a crossover is reported at, ns.
const SLOW_NS: f64 = 100e6;

/// The options every layout runs with (the others are variants of it).
const DEFAULT_OPTIONS: &str = "default";

/// The rules, registered in `ENTRY`.
pub struct Rules;

/// Where each layout's first write passes `SLOW_NS`: measured, or projected
/// from a line through its sizes.
fn crossover(by: &BTreeMap<u64, BTreeMap<String, &Case>>) -> Option<Crossover> {
    let mut layouts: Vec<&String> = by.values().flat_map(|m| m.keys()).collect();
    layouts.sort();
    layouts.dedup();
    let mut parts = Vec::new();
    let mut figures = Vec::new();
    for l in layouts.into_iter().filter(|l| !layout::caps_of(l).baseline) {
        let points: Vec<(u64, &Case)> = by
            .iter()
            .filter_map(|(s, m)| m.get(l).map(|c| (*s, *c)))
            .collect();
        if let Some((s, c)) = points.iter().find(|(_, c)| c.stats.median >= SLOW_NS) {
            parts.push(format!(
                "{l}'s first write passes 100 ms at {} (measured)",
                fmt_bytes(*s as f64)
            ));
            figures.push(figure_id(c));
            continue;
        }
        let xy: Vec<(f64, f64)> = points
            .iter()
            .map(|(s, c)| (*s as f64, c.stats.median))
            .collect();
        let Some(fit) = fit_line(&xy) else { continue };
        if fit.slope > 0.0 && fit.r2 >= 0.8 {
            let at = (SLOW_NS - fit.intercept) / fit.slope;
            parts.push(format!(
                "{l}'s first write would pass 100 ms at about {} (projected from {} sizes, r² {:.2})",
                fmt_bytes(at.max(0.0)),
                xy.len(),
                fit.r2
            ));
            figures.extend(points.iter().map(|(_, c)| figure_id(c)));
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
        "copy-up cost by file size"
    }

    fn questions(&self, report: &Report) -> Vec<Question> {
        // backing → size → layout.
        let mut by: BTreeMap<String, BTreeMap<u64, BTreeMap<String, &Case>>> = BTreeMap::new();
        for c in report.cases_of(NAME) {
            let Some(v) = View::of_case(c) else { continue };
            let Some(size) = v.size_bytes else { continue };
            if v.op != Op::FirstWrite || v.cache != Cache::Cold || v.options != DEFAULT_OPTIONS {
                continue;
            }
            by.entry(v.backing)
                .or_default()
                .entry(size)
                .or_default()
                .insert(c.layout.clone(), c);
        }
        let mut out = Vec::new();
        for (backing, sizes) in by {
            let Some((size, cases)) = sizes.iter().next_back() else {
                continue;
            };
            out.push(Question {
                workload: NAME.into(),
                backing,
                question: format!("first write to a {} file, cold", fmt_bytes(*size as f64)),
                unit: "ns".into(),
                lower_is_better: true,
                contenders: cases.values().map(|c| Contender::of(c)).collect(),
                crossover: crossover(&sizes),
                condition: None,
            });
        }
        out
    }
}
