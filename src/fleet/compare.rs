//! The fleet-wide gate: a fleet report against an earlier one, group by group
//! (kernel, backing, stack) and figure by figure, with the verdict rule of
//! `compare` — the bootstrap interval of the change of the group's median
//! across nodes must lie entirely beyond the workload's threshold. The nodes'
//! values play the part raw samples play for one report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{FleetReport, GroupFigure};
use crate::compare::{verdict_of, Verdict};
use crate::report::Table;
use crate::stats::{bootstrap_change, seed_of};

/// One figure of one group, compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFigureResult {
    /// Group id (`kernel/backing/stack`).
    pub group: String,
    /// The figure.
    pub figure: String,
    /// Workload that measured it.
    pub workload: String,
    /// Unit.
    pub unit: String,
    /// Whether a larger value is better.
    pub higher_is_better: bool,
    /// Nodes in the baseline's group.
    pub baseline_nodes: usize,
    /// Nodes in the current group.
    pub current_nodes: usize,
    /// Baseline median across nodes.
    pub baseline: f64,
    /// Current median across nodes.
    pub current: f64,
    /// current / baseline − 1.
    pub change: f64,
    /// 95 % bootstrap interval of the change (nodes resampled).
    pub ci_low: f64,
    /// Upper bound.
    pub ci_high: f64,
    /// Threshold applied.
    pub threshold: f64,
    /// The verdict.
    pub verdict: Verdict,
}

/// A whole fleet comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetComparison {
    /// Format version.
    pub schema_version: u32,
    /// Always `fleet-compare`.
    pub kind: String,
    /// Figures compared.
    pub results: Vec<FleetFigureResult>,
    /// `group: figure` of the baseline absent from the current fleet.
    pub missing_in_current: Vec<String>,
    /// `group: figure` of the current fleet absent from the baseline.
    pub missing_in_baseline: Vec<String>,
    /// Counts.
    pub regressed: usize,
    /// Counts.
    pub improved: usize,
    /// Counts.
    pub unchanged: usize,
}

impl FleetComparison {
    /// Whether the gate fails: a regression, or nothing compared at all.
    pub fn failed(&self) -> bool {
        self.regressed > 0 || self.results.is_empty()
    }
}

fn figures(fleet: &FleetReport) -> BTreeMap<(String, String), &GroupFigure> {
    fleet
        .groups
        .iter()
        .flat_map(|g| {
            g.figures
                .iter()
                .map(move |f| ((g.key.id(), f.figure.clone()), f))
        })
        .collect()
}

/// Compares `current` against `baseline`; `threshold` overrides every
/// workload's own (from its gate rules, by name through the registry).
pub fn compare(
    baseline: &FleetReport,
    current: &FleetReport,
    threshold: Option<f64>,
    resamples: usize,
) -> FleetComparison {
    let base = figures(baseline);
    let cur = figures(current);
    let mut results = Vec::new();
    for ((group, figure), b) in &base {
        let Some(c) = cur.get(&(group.clone(), figure.clone())) else {
            continue;
        };
        let t = threshold.unwrap_or_else(|| {
            crate::workload::entry(&b.workload).map_or(0.10, |w| w.gate.threshold())
        });
        let bv: Vec<f64> = b.values.iter().copied().filter(|v| v.is_finite()).collect();
        let cv: Vec<f64> = c.values.iter().copied().filter(|v| v.is_finite()).collect();
        if bv.is_empty() || cv.is_empty() {
            continue;
        }
        let id = format!("{group}/{figure}");
        let ci = bootstrap_change(
            &|pick| pick(&bv),
            &|pick| pick(&cv),
            resamples,
            seed_of(&id),
        );
        if !(ci.baseline.is_finite() && ci.current.is_finite()) || ci.baseline == 0.0 {
            continue;
        }
        let higher = !b.lower_is_better;
        results.push(FleetFigureResult {
            group: group.clone(),
            figure: figure.clone(),
            workload: b.workload.clone(),
            unit: b.unit.clone(),
            higher_is_better: higher,
            baseline_nodes: bv.len(),
            current_nodes: cv.len(),
            baseline: ci.baseline,
            current: ci.current,
            change: ci.change,
            ci_low: ci.low,
            ci_high: ci.high,
            threshold: t,
            verdict: verdict_of(higher, ci.low, ci.high, t),
        });
    }
    let missing = |a: &BTreeMap<(String, String), &GroupFigure>,
                   b: &BTreeMap<(String, String), &GroupFigure>| {
        a.keys()
            .filter(|k| !b.contains_key(*k))
            .map(|(g, f)| format!("{g}: {f}"))
            .collect::<Vec<_>>()
    };
    let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
    FleetComparison {
        schema_version: 1,
        kind: "fleet-compare".into(),
        missing_in_current: missing(&base, &cur),
        missing_in_baseline: missing(&cur, &base),
        regressed: count(Verdict::Regressed),
        improved: count(Verdict::Improved),
        unchanged: count(Verdict::Unchanged),
        results,
    }
}

/// The comparison as markdown (also what the terminal shows).
pub fn render_markdown(c: &FleetComparison) -> String {
    let mut t = Table::new([
        "group",
        "figure",
        "nodes",
        "baseline",
        "current",
        "change",
        "95% CI",
        "threshold",
        "verdict",
    ]);
    for r in &c.results {
        t.row(vec![
            r.group.clone(),
            r.figure.clone(),
            format!("{}→{}", r.baseline_nodes, r.current_nodes),
            super::render::fmt_value(r.baseline, &r.unit),
            super::render::fmt_value(r.current, &r.unit),
            format!("{:+.1}%", r.change * 100.0),
            format!("{:+.1}%…{:+.1}%", r.ci_low * 100.0, r.ci_high * 100.0),
            format!("{:.0}%", r.threshold * 100.0),
            format!("{:?}", r.verdict).to_lowercase(),
        ]);
    }
    let mut s = format!(
        "# Fleet comparison\n\n{} regressed, {} improved, {} unchanged (per group: the median across nodes, nodes resampled).\n\n",
        c.regressed, c.improved, c.unchanged
    );
    s.push_str(&t.to_markdown());
    for (what, list) in [
        ("Only in the baseline", &c.missing_in_current),
        ("Only in the current fleet", &c.missing_in_baseline),
    ] {
        if !list.is_empty() {
            s.push_str(&format!("\n{what}:\n"));
            for l in list {
                s.push_str(&format!("- {l}\n"));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{group_figure, Group, GroupKey, NodeFigure, FLEET_SCHEMA_VERSION};

    fn fleet(values: &[f64]) -> FleetReport {
        let meta = NodeFigure {
            workload: "no-such-workload".into(),
            figure: "f".into(),
            layout: "l".into(),
            backing: "ext4".into(),
            value: 0.0,
            unit: "ns".into(),
            lower_is_better: true,
        };
        let names: Vec<String> = (0..values.len()).map(|i| format!("n{i}")).collect();
        let vals: Vec<(&str, f64)> = names
            .iter()
            .map(String::as_str)
            .zip(values.iter().copied())
            .collect();
        FleetReport {
            schema_version: FLEET_SCHEMA_VERSION,
            kind: "fleet".into(),
            tool_version: "0".into(),
            nodes: vec![],
            groups: vec![Group {
                key: GroupKey {
                    kernel_release: "k".into(),
                    backing: "ext4".into(),
                    layout: "l".into(),
                },
                nodes: names.clone(),
                figures: vec![group_figure(&meta, &vals)],
            }],
            skipped: vec![],
            findings: vec![],
        }
    }

    #[test]
    fn a_fleet_twice_as_slow_regresses_and_the_same_does_not() {
        let a = fleet(&[100.0, 102.0, 98.0, 101.0, 99.0]);
        let b = fleet(&[200.0, 204.0, 196.0, 202.0, 198.0]);
        let c = compare(&a, &b, None, 1000);
        assert_eq!((c.regressed, c.improved), (1, 0), "{c:?}");
        assert!(c.failed());
        let same = compare(&a, &a, None, 1000);
        assert_eq!(same.unchanged, 1);
        assert!(!same.failed());
        let back = compare(&b, &a, Some(0.2), 1000);
        assert_eq!(back.improved, 1);
    }
}
