//! import's question for the findings: how long each image takes to become
//! a stored image in each layout (unpack, convert, store), whole.

use std::collections::BTreeMap;

use super::keys::{Metric, View, NAME};
use crate::findings::{Contender, FindingRules, Question};
use crate::report::{Case, Report};
use crate::workload::CaseView;

/// The rules, registered in `ENTRY`.
pub struct Rules;

impl FindingRules for Rules {
    fn workload(&self) -> &'static str {
        NAME
    }

    fn topic(&self) -> &'static str {
        "importing an image"
    }

    fn questions(&self, report: &Report) -> Vec<Question> {
        // (backing, image, layers) → layout.
        let mut by: BTreeMap<(String, String, usize), BTreeMap<String, &Case>> = BTreeMap::new();
        for c in report
            .cases_of(NAME)
            .filter(|c| c.metric == Metric::Import.name())
        {
            let Some(v) = View::of_case(c) else { continue };
            if v.layer.is_some() {
                continue;
            }
            by.entry((v.backing, v.image, v.image_layers))
                .or_default()
                .insert(c.layout.clone(), c);
        }
        by.into_iter()
            .map(|((backing, image, layers), cases)| Question {
                workload: NAME.into(),
                backing,
                question: format!("importing {image} ({layers} layers) whole"),
                unit: "ns".into(),
                lower_is_better: true,
                contenders: cases.values().map(|c| Contender::of(c)).collect(),
                crossover: None,
                condition: None,
            })
            .collect()
    }
}
