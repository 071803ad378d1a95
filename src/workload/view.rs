//! One typed view of a workload's case parameters, both ways: a workload
//! declares its view once (a serde struct of enums and numbers, in its
//! `keys.rs`), and writes the report's `params` map and reads it back through
//! this trait — no workload parses its keys by string, and none repeats how a
//! case or figure is recognised as its own.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::report::{case_key, params_of, parse_params, Case, Derived};

/// Params key of the cases and figures about one of the user's images
/// (`--image`); synthetic cases never carry it.
pub const IMAGE_KEY: &str = "image";

/// Which of a workload's cases and figures a view reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// Every one (the workload has one view).
    All,
    /// The synthetic ones: those without an `image` key.
    Synthetic,
    /// Those about one of the user's images: with an `image` key.
    Images,
}

impl Subject {
    /// Whether `params` are of this subject.
    pub fn holds(self, params: &BTreeMap<String, Value>) -> bool {
        match self {
            Subject::All => true,
            Subject::Synthetic => !params.contains_key(IMAGE_KEY),
            Subject::Images => params.contains_key(IMAGE_KEY),
        }
    }
}

/// A workload's typed view of its cases' and derived figures' params: the one
/// place that spells its keys. `None` fields are left out of the map.
pub trait CaseView: Serialize + DeserializeOwned {
    /// The workload whose params these are (`Case::workload`).
    const WORKLOAD: &'static str;
    /// Which of that workload's cases and figures it reads.
    const SUBJECT: Subject;

    /// Whether `params` (already of `SUBJECT`) are this view's, when a further
    /// marker tells (lookup's calibration entries have a view of their own);
    /// yes by default.
    fn selects(_params: &BTreeMap<String, Value>) -> bool {
        true
    }

    /// The typed view of `params` recorded under `workload`; `None` for
    /// another workload's, another subject's, or another shape (another
    /// version's).
    fn of_params(workload: &str, params: &BTreeMap<String, Value>) -> Option<Self> {
        (workload == Self::WORKLOAD && Self::SUBJECT.holds(params) && Self::selects(params))
            .then(|| parse_params(params))
            .flatten()
    }

    /// The typed view of a case's params.
    fn of_case(c: &Case) -> Option<Self> {
        Self::of_params(&c.workload, &c.params)
    }

    /// The typed view of a derived figure's params.
    fn of_derived(d: &Derived) -> Option<Self> {
        Self::of_params(&d.workload, &d.params)
    }

    /// The report's params map of this view.
    fn params(&self) -> BTreeMap<String, Value> {
        params_of(self)
    }

    /// The id of this view's case of `metric` on `layout` (`Case::key`).
    fn case_id(&self, layout: &str, metric: &str) -> String {
        case_key(Self::WORKLOAD, layout, metric, &self.params())
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Synthetic {
        depth: usize,
        #[serde(default)]
        baseline: Option<String>,
    }

    impl CaseView for Synthetic {
        const WORKLOAD: &'static str = "w";
        const SUBJECT: Subject = Subject::Synthetic;
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Image {
        image: String,
        depth: usize,
    }

    impl CaseView for Image {
        const WORKLOAD: &'static str = "w";
        const SUBJECT: Subject = Subject::Images;
    }

    #[test]
    fn writes_and_reads_back_by_workload_and_subject() {
        let v = Synthetic {
            depth: 3,
            baseline: None,
        };
        let params = v.params();
        assert_eq!(params.keys().collect::<Vec<_>>(), ["depth"]);
        assert_eq!(Synthetic::of_params("w", &params), Some(v));
        assert_eq!(Synthetic::of_params("other", &params), None);
        assert_eq!(Image::of_params("w", &params), None);
        let i = Image {
            image: "docker.io/x:1".into(),
            depth: 2,
        };
        let params = i.params();
        assert_eq!(Synthetic::of_params("w", &params), None, "an image case");
        assert_eq!(Image::of_params("w", &params), Some(i));
        assert_eq!(
            Synthetic {
                depth: 1,
                baseline: Some("plain".into())
            }
            .case_id("overlay2", "m"),
            "w/overlay2/m/baseline=plain,depth=1"
        );
    }
}
