//! app's questions for the findings: how long the user's image takes to be
//! ready per layout, cold (the figure a storage choice rests on: the image's
//! data read from the backing) and, as a second question, warm.

use std::collections::BTreeMap;

use super::keys::{Cache, View, NAME, TIME_TO_READY};
use crate::findings::{Contender, FindingRules, Question};
use crate::report::{Case, Report};
use crate::workload::CaseView;

/// Layout → its case, per question.
type ByLayout<'a> = BTreeMap<String, &'a Case>;

/// The rules, registered in `ENTRY`.
pub struct Rules;

impl FindingRules for Rules {
    fn workload(&self) -> &'static str {
        NAME
    }

    fn topic(&self) -> &'static str {
        "time to ready of the user's image"
    }

    fn questions(&self, report: &Report) -> Vec<Question> {
        // (backing, cache) → (image, layout → case).
        let mut by: BTreeMap<(String, Cache), (String, ByLayout<'_>)> = BTreeMap::new();
        for c in report.cases_of(NAME).filter(|c| c.metric == TIME_TO_READY) {
            let Some(v) = View::of_case(c) else { continue };
            if v.baseline.is_some() {
                continue;
            }
            by.entry((v.backing, v.cache))
                .or_insert_with(|| (v.image.clone(), BTreeMap::new()))
                .1
                .insert(c.layout.clone(), c);
        }
        by.into_iter()
            .map(|((backing, cache), (image, cases))| Question {
                workload: NAME.into(),
                backing,
                question: format!(
                    "time until {image} is ready, started {} ({})",
                    cache.name(),
                    match cache {
                        Cache::Cold => "its data evicted, the container mounted afresh",
                        Cache::Warm => "again at once after a cold start",
                    }
                ),
                unit: "ns".into(),
                lower_is_better: true,
                contenders: cases.values().map(|c| Contender::of(c)).collect(),
                crossover: None,
                condition: None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::app::keys::Ready;
    use crate::workload::Recorded;

    #[test]
    fn cold_and_warm_are_two_questions_lower_is_better() {
        let mut out = Recorded::default();
        for cache in Cache::ALL {
            let v = View {
                image: "oci:x:y".into(),
                backing: "ext4".into(),
                cache,
                ready: Ready::Exit,
                baseline: None,
            };
            out.case_of(&v, "overlay2", TIME_TO_READY, "ns", vec![1e8, 1.1e8]);
            out.case_of(&v, "overlay", TIME_TO_READY, "ns", vec![2e8, 2.1e8]);
            out.case_of(
                &v,
                "overlay2",
                super::super::keys::READSET_FILES,
                "files",
                vec![9.0],
            );
        }
        let mut r = Report::new(Default::default(), serde_json::json!({}));
        for mut c in out.cases {
            c.id = c.key();
            r.cases.push(c);
        }
        let q = Rules.questions(&r);
        assert_eq!(q.len(), 2);
        assert!(q[0].question.contains("cold"), "{}", q[0].question);
        assert!(q[1].question.contains("warm"));
        assert!(q
            .iter()
            .all(|q| q.lower_is_better && q.contenders.len() == 2));
    }
}
