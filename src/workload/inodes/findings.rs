//! inodes' questions for the findings: inodes and bytes used once the
//! images of the deepest stack measured are stored, per layout.

use std::collections::BTreeMap;

use super::keys::{Phase, View, NAME};
use crate::findings::{ByPoint, Contender, FindingRules, Question};
use crate::report::Report;
use crate::workload::CaseView;

/// The rules, registered in `ENTRY`.
pub struct Rules;

/// The metrics asked about, with their unit and what they are.
const METRICS: [(&str, &str, &str); 2] = [
    ("used_inodes", "inodes", "inodes used"),
    ("used_bytes", "bytes", "bytes used"),
];

impl FindingRules for Rules {
    fn workload(&self) -> &'static str {
        NAME
    }

    fn topic(&self) -> &'static str {
        "inodes and bytes per image and container"
    }

    fn questions(&self, report: &Report) -> Vec<Question> {
        let mut out = Vec::new();
        for (metric, unit, what) in METRICS {
            // backing → (layers, images) → layout.
            let mut by: ByPoint<'_, (usize, usize)> = BTreeMap::new();
            for c in report.cases_of(NAME).filter(|c| c.metric == metric) {
                let Some(v) = View::of_case(c) else { continue };
                let (Some(layers), Some(Phase::Layers)) = (v.layers, v.phase) else {
                    continue;
                };
                by.entry(v.backing)
                    .or_default()
                    .entry((layers, v.images))
                    .or_default()
                    .insert(c.layout.clone(), c);
            }
            for (backing, points) in by {
                let Some(((layers, images), cases)) = points.iter().next_back() else {
                    continue;
                };
                out.push(Question {
                    workload: NAME.into(),
                    backing,
                    question: format!("{what} with {images} images of {layers} layers stored"),
                    unit: unit.into(),
                    lower_is_better: true,
                    contenders: cases.values().map(|c| Contender::of(c)).collect(),
                    crossover: None,
                    condition: None,
                });
            }
        }
        out
    }
}
