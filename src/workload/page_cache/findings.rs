//! page-cache's questions for the findings: the memory the most containers
//! measured take reading the same image's files, per layout.

use std::collections::BTreeMap;

use super::keys::{Phase, View, NAME, RESIDENT};
use crate::findings::{ByPoint, Contender, FindingRules, Question};
use crate::report::{fmt_bytes, Report};
use crate::workload::CaseView;

/// The rules, registered in `ENTRY`.
pub struct Rules;

impl FindingRules for Rules {
    fn workload(&self) -> &'static str {
        NAME
    }

    fn topic(&self) -> &'static str {
        "page-cache sharing between containers"
    }

    fn questions(&self, report: &Report) -> Vec<Question> {
        // backing → (containers, set) → layout.
        let mut by: ByPoint<'_, (usize, u64)> = BTreeMap::new();
        for c in report.cases_of(NAME).filter(|c| c.metric == RESIDENT) {
            let Some(v) = View::of_case(c) else { continue };
            if v.phase != Phase::Read {
                continue;
            }
            by.entry(v.backing)
                .or_default()
                .entry((v.containers, v.set_bytes))
                .or_default()
                .insert(c.layout.clone(), c);
        }
        let mut out = Vec::new();
        for (backing, points) in by {
            let Some(((containers, set), cases)) = points.iter().next_back() else {
                continue;
            };
            out.push(Question {
                workload: NAME.into(),
                backing,
                question: format!(
                    "page cache taken by {containers} containers each reading the same {} of files",
                    fmt_bytes(*set as f64)
                ),
                unit: "bytes".into(),
                lower_is_better: true,
                contenders: cases.values().map(|c| Contender::of(c)).collect(),
                crossover: None,
                condition: None,
            });
        }
        out
    }
}
