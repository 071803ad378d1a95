//! Exports for benchmark trackers: Bencher Metric Format and
//! github-action-benchmark's `customSmallerIsBetter` array.

use serde_json::{json, Map, Value};

use super::{Derived, Report};

/// Export formats of `overlaybench report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Re-render the SVG charts and summary.md into the report folder.
    Files,
    /// Bencher Metric Format JSON on stdout.
    Bmf,
    /// github-action-benchmark `customSmallerIsBetter` JSON on stdout.
    GithubActionBenchmark,
}

impl crate::choice::Choice for ExportFormat {
    const ALL: &'static [Self] = &[
        ExportFormat::Files,
        ExportFormat::Bmf,
        ExportFormat::GithubActionBenchmark,
    ];
    fn name(self) -> &'static str {
        match self {
            ExportFormat::Files => "files",
            ExportFormat::Bmf => "bmf",
            ExportFormat::GithubActionBenchmark => "github-action-benchmark",
        }
    }
    fn about(self) -> &'static str {
        match self {
            ExportFormat::Files => "Re-render the SVG charts and summary.md into the report folder",
            ExportFormat::Bmf => "Bencher Metric Format JSON on stdout",
            ExportFormat::GithubActionBenchmark => {
                "github-action-benchmark `customSmallerIsBetter` JSON on stdout"
            }
        }
    }
}

/// Bencher Metric Format: `{ benchmark: { measure: { value, lower_value, upper_value } } }`,
/// one benchmark per case (median, with min and max as bounds) and per derived figure.
pub fn bmf(r: &Report) -> Value {
    let mut out = Map::new();
    for c in &r.cases {
        let mut measure = Map::new();
        measure.insert(
            format!("{}_{}", c.metric, c.unit),
            json!({ "value": c.stats.median, "lower_value": c.stats.min, "upper_value": c.stats.max }),
        );
        out.insert(c.id.clone(), Value::Object(measure));
    }
    for d in &r.derived {
        let name = crate::report::case_key(&d.workload, &d.layout, &d.kind, &d.params);
        let mut measure = Map::new();
        measure.insert(d.unit.replace('/', "_per_"), json!({ "value": d.value }));
        out.insert(name, Value::Object(measure));
    }
    Value::Object(out)
}

/// github-action-benchmark `customSmallerIsBetter`: `[{ name, unit, value, range, extra }]`
/// for every figure where smaller is better; `higher_is_better` (the workloads' gate
/// rules) says which derived figures to leave out.
pub fn github_action_benchmark(r: &Report, higher_is_better: &dyn Fn(&Derived) -> bool) -> Value {
    let mut out = Vec::new();
    for c in &r.cases {
        out.push(json!({
            "name": c.id,
            "unit": c.unit,
            "value": c.stats.median,
            "range": format!("± {}", c.stats.mad),
            "extra": format!("n={} p95={} cv={:.3}", c.stats.n, c.stats.p95, c.stats.cv),
        }));
    }
    for d in r.derived.iter().filter(|d| !higher_is_better(d)) {
        out.push(json!({
            "name": crate::report::case_key(&d.workload, &d.layout, &d.kind, &d.params),
            "unit": d.unit,
            "value": d.value,
        }));
    }
    Value::Array(out)
}
