//! `overlaybench compare`: a CI gate that does not flap. Figures are matched by
//! id between two reports and recomputed from raw samples; the verdict follows
//! criterion's rule — *regressed* only when the whole 95 % bootstrap confidence
//! interval of the relative change lies beyond the threshold.

pub mod findings;
pub mod format;
pub mod gate;
mod rules;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use rules::{GateRules, WorkloadRules};

use crate::choice::Choice;
use crate::error::ErrorClass;
use crate::report::{kinds, Case, Derived, Report};
use rayon::prelude::*;

use crate::stats::{bootstrap_change_shared, fit_line, seed_of, SortedInputs};

/// Which figures are gated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FigureSet {
    /// In-run ratios, slopes with a clear trend, inode costs, sharing factors (default).
    Derived,
    /// Every case's median (absolute times: sensitive to the machine).
    Absolute,
    /// Both.
    All,
}

impl Choice for FigureSet {
    const ALL: &'static [Self] = &[FigureSet::Derived, FigureSet::Absolute, FigureSet::All];
    fn name(self) -> &'static str {
        match self {
            FigureSet::Derived => "derived",
            FigureSet::Absolute => "absolute",
            FigureSet::All => "all",
        }
    }
    fn about(self) -> &'static str {
        match self {
            FigureSet::Derived => {
                "In-run ratios, slopes with a clear trend, inode costs, sharing factors (default)"
            }
            FigureSet::Absolute => "Every case's median (absolute times: sensitive to the machine)",
            FigureSet::All => "Both",
        }
    }
}

/// What to do when a figure is in one report only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissingPolicy {
    /// A missing figure fails the gate.
    Fail,
    /// Missing figures are listed and ignored.
    Skip,
}

impl Choice for MissingPolicy {
    const ALL: &'static [Self] = &[MissingPolicy::Fail, MissingPolicy::Skip];
    fn name(self) -> &'static str {
        match self {
            MissingPolicy::Fail => "fail",
            MissingPolicy::Skip => "skip",
        }
    }
    fn about(self) -> &'static str {
        match self {
            MissingPolicy::Fail => "A missing figure fails the gate",
            MissingPolicy::Skip => "Missing figures are listed and ignored",
        }
    }
}

/// The verdict on one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Better beyond the threshold, with confidence.
    Improved,
    /// Worse beyond the threshold, with confidence.
    Regressed,
    /// Within the threshold, or not confidently beyond it.
    Unchanged,
}

/// Comparison settings.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Relative change tolerated (0.10 = 10 %).
    pub threshold: f64,
    /// Per-workload thresholds.
    pub per_workload: BTreeMap<String, f64>,
    /// Which figures.
    pub figures: FigureSet,
    /// Missing figures.
    pub missing: MissingPolicy,
    /// Params left out when matching (e.g. `backing` to compare ext4 with xfs).
    pub ignore_params: Vec<String>,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Every known workload's gate rules, by workload name.
    pub rules: BTreeMap<String, WorkloadRules>,
    /// What a run too noisy to gate on does to the verdict.
    pub noisy: NoisyPolicy,
}

/// What to do when a report was measured on a machine too busy to gate on
/// (`host::conditions::Conditions::too_noisy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoisyPolicy {
    /// No verdict: the gate exits with its own code (4) so CI can rerun.
    Fail,
    /// Judge anyway and say so.
    Warn,
}

impl Choice for NoisyPolicy {
    const ALL: &'static [Self] = &[NoisyPolicy::Fail, NoisyPolicy::Warn];
    fn name(self) -> &'static str {
        match self {
            NoisyPolicy::Fail => "fail",
            NoisyPolicy::Warn => "warn",
        }
    }
    fn about(self) -> &'static str {
        match self {
            NoisyPolicy::Fail => "No verdict on a noisy run: exit 4 so CI can rerun it",
            NoisyPolicy::Warn => "Judge a noisy run anyway, and say so",
        }
    }
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FigureResult {
    /// Matching id (workload/layout/kind/params).
    pub id: String,
    /// Workload.
    pub workload: String,
    /// Unit of the figure.
    pub unit: String,
    /// Whether a larger value is better (sharing factors, throughput).
    pub higher_is_better: bool,
    /// Baseline value.
    pub baseline: f64,
    /// Current value.
    pub current: f64,
    /// current / baseline − 1.
    pub change: f64,
    /// 95 % confidence interval of the change (bootstrap over raw samples).
    pub ci_low: f64,
    /// Upper bound.
    pub ci_high: f64,
    /// Threshold applied.
    pub threshold: f64,
    /// The verdict.
    pub verdict: Verdict,
}

/// The whole comparison (`--format json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Comparison {
    /// Format version.
    pub schema_version: u32,
    /// Always `compare`.
    pub kind: String,
    /// Baseline report.
    pub baseline: String,
    /// Current report.
    pub current: String,
    /// Default threshold.
    pub threshold: f64,
    /// Gated figures.
    pub results: Vec<FigureResult>,
    /// Figures of the baseline absent from the current report, or present but
    /// not computable from its samples (none kept).
    pub missing_in_current: Vec<String>,
    /// Figures of the current report absent from the baseline.
    pub missing_in_baseline: Vec<String>,
    /// Whether missing figures fail the gate.
    pub missing_fails: bool,
    /// Counts.
    pub regressed: usize,
    /// Counts.
    pub improved: usize,
    /// Counts.
    pub unchanged: usize,
    /// Figures present in both but not gated (no clear trend, or negligible).
    pub not_gated: usize,
    /// Why a report was too noisy to gate on (`baseline: …`, `current: …`),
    /// over the spans of workloads with gated timings; empty when both were quiet enough.
    #[serde(default)]
    pub noisy: Vec<String>,
    /// Whether a noisy report withholds the verdict (`--noisy fail`).
    #[serde(default)]
    pub noisy_fails: bool,
    /// The findings that changed between the two reports (a winner, a
    /// difference appearing or vanishing, the recommendation); said after the
    /// gate's verdict, never part of it.
    #[serde(default)]
    pub findings_changed: Vec<findings::FindingChange>,
}

impl Comparison {
    /// Whether the gate fails: a regression, a missing figure (with `--missing
    /// fail`), or nothing compared at all — a gate that checked nothing must not pass.
    pub fn failed(&self) -> bool {
        self.regressed > 0
            || self.nothing_compared()
            || (self.missing_fails
                && !(self.missing_in_current.is_empty() && self.missing_in_baseline.is_empty()))
    }

    /// Whether no figure could be compared.
    pub fn nothing_compared(&self) -> bool {
        self.results.is_empty()
    }

    /// Whether the verdict is withheld: a report was too noisy and the policy is `fail`.
    pub fn withheld(&self) -> bool {
        self.noisy_fails && !self.noisy.is_empty()
    }
}

/// Why `r`'s spans of timed workloads were too noisy to gate on.
fn noisy_spans(r: &Report, which: &str, rules: &BTreeMap<String, WorkloadRules>) -> Vec<String> {
    r.conditions
        .iter()
        .filter(|c| rules.get(&c.workload).is_some_and(|w| w.rules.timed()))
        .filter_map(|c| c.too_noisy())
        .map(|why| format!("{which}: {why}"))
        .collect()
}

/// Why two reports cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("the reports were run with different parameters that change what a case measures: {0}; rerun one of them with the other's settings")]
    Incomparable(String),
    #[error("{0}")]
    Invalid(String),
    /// A report measured on an emulated CPU: its timings gate nothing.
    #[error("{report} was measured on an emulated CPU ({how}): an emulator translates every instruction, so its timings say nothing about a real CPU and compare refuses to gate them against any report; rerun it on bare metal or under hardware virtualisation (KVM)")]
    Emulated { report: String, how: String },
}

/// Refuses a report whose host was an emulator (`host.machine.kind`): no
/// threshold makes its timings comparable with another run's, not even with
/// another emulated one (the emulator's speed depends on its host's load).
pub fn gateable(name: &str, r: &Report) -> Result<(), CompareError> {
    match &r.host.machine {
        Some(m) if m.kind == crate::host::machine::MachineKind::Emulated => {
            let mut how = m.hypervisor.clone().unwrap_or_else(|| "an emulator".into());
            if !m.evidence.is_empty() {
                how = format!("{how}; {}", m.evidence.join(", "));
            }
            Err(CompareError::Emulated {
                report: name.to_string(),
                how,
            })
        }
        _ => Ok(()),
    }
}

impl CompareError {
    /// Always bad input.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Usage
    }
}

fn config_differences(
    a: &Report,
    b: &Report,
    rules: &BTreeMap<String, WorkloadRules>,
) -> Vec<String> {
    let mut keys: Vec<String> = rules
        .values()
        .flat_map(|w| {
            w.rules
                .identity_keys()
                .iter()
                .map(move |k| format!("/{}{k}", w.config_key))
        })
        .collect();
    keys.sort();
    keys.iter()
        .filter_map(|k| {
            let x = a.config.get("plan").and_then(|p| p.pointer(k));
            let y = b.config.get("plan").and_then(|p| p.pointer(k));
            (x.is_some() && y.is_some() && x != y).then(|| {
                format!(
                    "{} is {} in the baseline, {} in the current report",
                    k.trim_start_matches('/').replace('/', "."),
                    x.unwrap_or(&Value::Null),
                    y.unwrap_or(&Value::Null)
                )
            })
        })
        .collect()
}

fn normalized_id(
    workload: &str,
    layout: &str,
    kind: &str,
    params: &BTreeMap<String, Value>,
    ignore: &[String],
) -> String {
    let kept: BTreeMap<String, Value> = params
        .iter()
        .filter(|(k, _)| !ignore.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    crate::report::case_key(workload, layout, kind, &kept)
}

/// A figure recomputable from one report's raw samples.
#[derive(Clone)]
enum Def<'a> {
    Median(&'a Case),
    Ratio(&'a Case, &'a Case),
    Slope(Vec<(f64, &'a Case)>),
    Throughput(f64, &'a Case),
    Fixed(f64),
}

struct Figure<'a> {
    workload: String,
    unit: String,
    higher_is_better: bool,
    def: Def<'a>,
    gated: bool,
}

impl Def<'_> {
    /// The figure, asking `pick` for a median of each input's samples.
    fn value(&self, pick: &mut dyn FnMut(&[f64]) -> f64) -> f64 {
        match self {
            Def::Median(c) => pick(&c.samples),
            Def::Ratio(a, b) => pick(&a.samples) / pick(&b.samples),
            Def::Slope(pts) => {
                let xy: Vec<(f64, f64)> = pts.iter().map(|(x, c)| (*x, pick(&c.samples))).collect();
                fit_line(&xy).map_or(f64::NAN, |f| f.slope)
            }
            Def::Throughput(mib, c) => mib / (pick(&c.samples) / 1e9),
            Def::Fixed(v) => *v,
        }
    }
}

fn figures<'a>(r: &'a Report, opts: &CompareOptions) -> BTreeMap<String, Figure<'a>> {
    let by_id: HashMap<&str, &Case> = r.cases.iter().map(|c| (c.id.as_str(), c)).collect();
    let ignore = &opts.ignore_params;
    let mut out = BTreeMap::new();
    if matches!(opts.figures, FigureSet::Derived | FigureSet::All) {
        for d in &r.derived {
            let Some(def) = derived_def(d, &by_id) else {
                continue;
            };
            let rules = opts.rules.get(&d.workload).map(|w| w.rules);
            // `all` gates every derived figure that can be recomputed; a workload
            // this build does not know has no rules, so nothing of it is gated.
            let gated = rules.is_some_and(|g| g.gated(d, r)) || opts.figures == FigureSet::All;
            out.insert(
                normalized_id(&d.workload, &d.layout, &d.kind, &d.params, ignore),
                Figure {
                    workload: d.workload.clone(),
                    unit: d.unit.clone(),
                    higher_is_better: rules.is_some_and(|g| g.higher_is_better(d)),
                    def,
                    gated,
                },
            );
        }
    }
    if matches!(opts.figures, FigureSet::Absolute | FigureSet::All) {
        for c in &r.cases {
            out.insert(
                normalized_id(&c.workload, &c.layout, &c.metric, &c.params, ignore),
                Figure {
                    workload: c.workload.clone(),
                    unit: c.unit.clone(),
                    higher_is_better: false,
                    def: Def::Median(c),
                    gated: c.stats.median > 0.0,
                },
            );
        }
    }
    out
}

/// How a derived figure is recomputed from raw samples (None when its inputs
/// are not in the report, or a fit has fewer than two points).
fn derived_def<'a>(d: &'a Derived, by_id: &HashMap<&str, &'a Case>) -> Option<Def<'a>> {
    let input = |i: usize| {
        d.inputs
            .get(i)
            .and_then(|id| by_id.get(id.as_str()).copied())
    };
    match d.kind.as_str() {
        kinds::RATIO => Some(Def::Ratio(input(0)?, input(1)?)),
        kinds::SLOPE => {
            let pts: Option<Vec<(f64, &Case)>> =
                d.x.iter()
                    .enumerate()
                    .map(|(i, x)| input(i).map(|c| (*x, c)))
                    .collect();
            Some(Def::Slope(pts.filter(|p| p.len() >= 2)?))
        }
        kinds::THROUGHPUT => Some(Def::Throughput(*d.x.first()?, input(0)?)),
        _ => Some(Def::Fixed(d.value)),
    }
}

/// Every workload's default threshold, from its rules.
pub fn default_thresholds(rules: &BTreeMap<String, WorkloadRules>) -> BTreeMap<String, f64> {
    rules
        .iter()
        .map(|(k, w)| (k.clone(), w.rules.threshold()))
        .collect()
}

/// The verdict on a change whose 95 % interval is `lo..hi`, against the
/// threshold `t` (criterion's rule: only an interval entirely beyond the
/// threshold is a change). The fleet gate uses it too.
pub fn verdict_of(higher_is_better: bool, lo: f64, hi: f64, t: f64) -> Verdict {
    if higher_is_better {
        if hi < -t {
            Verdict::Regressed
        } else if lo > t {
            Verdict::Improved
        } else {
            Verdict::Unchanged
        }
    } else if lo > t {
        Verdict::Regressed
    } else if hi < -t {
        Verdict::Improved
    } else {
        Verdict::Unchanged
    }
}

/// What became of one baseline figure.
enum Judged {
    /// Not in the current report.
    Absent,
    /// In both, not gated (or a zero baseline).
    NotGated,
    /// Its samples in the current report do not give a number.
    UncomputableCurrent(String),
    /// Its samples in the baseline do not give a number.
    UncomputableBaseline(String),
    /// Compared.
    Result(Box<FigureResult>),
}

/// The verdict on baseline figure `f` against its current counterpart `g`.
fn judge(
    id: &str,
    f: &Figure<'_>,
    g: Option<&Figure<'_>>,
    opts: &CompareOptions,
    sorted: &SortedInputs,
) -> Judged {
    let Some(g) = g else { return Judged::Absent };
    if !(f.gated && g.gated) {
        return Judged::NotGated;
    }
    let t = opts
        .per_workload
        .get(&f.workload)
        .copied()
        .unwrap_or(opts.threshold);
    let ci = bootstrap_change_shared(
        &|pick| f.def.value(pick),
        &|pick| g.def.value(pick),
        opts.resamples,
        seed_of(id),
        sorted,
    );
    let (b, c, change, lo, hi) = (ci.baseline, ci.current, ci.change, ci.low, ci.high);
    // A figure whose samples are gone (or never were) cannot be computed:
    // it is missing, never silently "not gated".
    if !c.is_finite() {
        return Judged::UncomputableCurrent(id.to_string());
    }
    if !b.is_finite() {
        return Judged::UncomputableBaseline(id.to_string());
    }
    if b == 0.0 {
        return Judged::NotGated;
    }
    Judged::Result(Box::new(FigureResult {
        id: id.to_string(),
        workload: f.workload.clone(),
        unit: f.unit.clone(),
        higher_is_better: f.higher_is_better,
        baseline: b,
        current: c,
        change,
        ci_low: lo,
        ci_high: hi,
        threshold: t,
        verdict: verdict_of(f.higher_is_better, lo, hi, t),
    }))
}

/// Compares `current` against `baseline`.
pub fn compare(
    baseline: &Report,
    current: &Report,
    names: (&str, &str),
    opts: &CompareOptions,
) -> Result<Comparison, CompareError> {
    let diffs = config_differences(baseline, current, &opts.rules);
    if !diffs.is_empty() {
        return Err(CompareError::Incomparable(diffs.join("; ")));
    }
    let base = figures(baseline, opts);
    let cur = figures(current, opts);
    // Each figure's interval is independent (its own seed): computed in
    // parallel, gathered in id order, so the output is the same either way.
    let sorted = SortedInputs::default();
    let pairs: Vec<(&String, &Figure<'_>, Option<&Figure<'_>>)> =
        base.iter().map(|(id, f)| (id, f, cur.get(id))).collect();
    let judged: Vec<Judged> = pairs
        .par_iter()
        .map(|&(id, f, g)| judge(id, f, g, opts, &sorted))
        .collect();
    let mut results = Vec::new();
    let mut not_gated = 0;
    let mut uncomputable_current = Vec::new();
    let mut uncomputable_baseline = Vec::new();
    for j in judged {
        match j {
            Judged::Absent => {}
            Judged::NotGated => not_gated += 1,
            Judged::UncomputableCurrent(id) => uncomputable_current.push(id),
            Judged::UncomputableBaseline(id) => uncomputable_baseline.push(id),
            Judged::Result(r) => results.push(*r),
        }
    }
    let mut missing_in_current: Vec<String> = base
        .iter()
        .filter(|(k, f)| f.gated && !cur.contains_key(*k))
        .map(|(k, _)| k.clone())
        .chain(uncomputable_current)
        .collect();
    missing_in_current.sort();
    let mut missing_in_baseline: Vec<String> = cur
        .iter()
        .filter(|(k, f)| f.gated && !base.contains_key(*k))
        .map(|(k, _)| k.clone())
        .chain(uncomputable_baseline)
        .collect();
    missing_in_baseline.sort();
    let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
    let mut noisy = noisy_spans(baseline, "baseline", &opts.rules);
    noisy.extend(noisy_spans(current, "current", &opts.rules));
    Ok(Comparison {
        schema_version: 1,
        kind: "compare".into(),
        baseline: names.0.into(),
        current: names.1.into(),
        threshold: opts.threshold,
        regressed: count(Verdict::Regressed),
        improved: count(Verdict::Improved),
        unchanged: count(Verdict::Unchanged),
        not_gated,
        results,
        missing_in_current,
        missing_in_baseline,
        missing_fails: opts.missing == MissingPolicy::Fail,
        noisy,
        noisy_fails: opts.noisy == NoisyPolicy::Fail,
        findings_changed: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Stats;

    fn size_param() -> BTreeMap<String, Value> {
        [
            ("size_bytes".to_string(), serde_json::json!(1)),
            ("cache".to_string(), serde_json::json!("cold")),
        ]
        .into_iter()
        .collect()
    }

    fn case(id: &str, samples: Vec<f64>) -> Case {
        Case {
            id: id.into(),
            workload: "copy-up".into(),
            layout: id.into(),
            params: size_param(),
            metric: "m".into(),
            unit: "ns".into(),
            stats: Stats::compute(&samples).expect("stats"),
            samples,
        }
    }

    fn report(a: Vec<f64>, b: Vec<f64>) -> Report {
        let (ca, cb) = (case("a", a), case("b", b));
        let d = Derived {
            workload: "copy-up".into(),
            layout: "a".into(),
            kind: "ratio".into(),
            params: size_param(),
            value: ca.stats.median / cb.stats.median,
            unit: "x".into(),
            inputs: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        Report {
            schema_version: 1,
            tool: crate::report::ToolInfo {
                name: "t".into(),
                version: "0".into(),
            },
            status: crate::report::RunStatus::Complete,
            started_at: String::new(),
            duration_s: 0.0,
            host: Default::default(),
            config: serde_json::json!({}),
            cases: vec![ca, cb],
            derived: vec![d],
            errors: vec![],
            notes: vec![],
            images: vec![],
            claims: vec![],
            skipped: vec![],
            conditions: vec![],
            findings: None,
            extras: Default::default(),
        }
    }

    /// Gates every ratio, lower is better.
    struct Ratios;

    impl GateRules for Ratios {
        fn threshold(&self) -> f64 {
            0.10
        }
        fn calibration(&self) -> &'static str {
            "test"
        }
        fn timed(&self) -> bool {
            true
        }
        fn gated(&self, d: &Derived, _: &Report) -> bool {
            d.kind == kinds::RATIO
        }
        fn higher_is_better(&self, _: &Derived) -> bool {
            false
        }
        fn identity_keys(&self) -> &'static [&'static str] {
            &["/depth"]
        }
    }

    fn opts() -> CompareOptions {
        CompareOptions {
            threshold: 0.10,
            per_workload: BTreeMap::new(),
            figures: FigureSet::Derived,
            missing: MissingPolicy::Fail,
            ignore_params: vec![],
            resamples: 500,
            rules: [(
                "copy-up".to_string(),
                WorkloadRules {
                    config_key: "copy_up",
                    rules: &Ratios,
                },
            )]
            .into_iter()
            .collect(),
            noisy: NoisyPolicy::Fail,
        }
    }

    fn noisy(center: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| center * (1.0 + 0.02 * ((i * 7 % 11) as f64 / 5.0 - 1.0)))
            .collect()
    }

    #[test]
    fn same_data_is_unchanged_and_a_real_shift_regresses() {
        let base = report(noisy(200.0, 40), noisy(100.0, 40));
        let same = compare(&base, &base, ("b", "c"), &opts()).expect("compare");
        assert_eq!((same.regressed, same.unchanged), (0, 1));
        assert!(!same.failed());
        let slower = report(noisy(300.0, 40), noisy(100.0, 40));
        let c = compare(&base, &slower, ("b", "c"), &opts()).expect("compare");
        assert_eq!(c.regressed, 1, "{c:?}");
        assert!(c.results[0].ci_low > 0.10 && c.failed());
        let faster = compare(&slower, &base, ("b", "c"), &opts()).expect("compare");
        assert_eq!(faster.improved, 1);
    }

    #[test]
    fn figures_of_a_workload_without_rules_are_not_gated() {
        let base = report(noisy(200.0, 40), noisy(100.0, 40));
        let slower = report(noisy(300.0, 40), noisy(100.0, 40));
        let mut o = opts();
        o.rules.clear();
        let c = compare(&base, &slower, ("b", "c"), &o).expect("compare");
        assert_eq!((c.regressed, c.results.len(), c.not_gated), (0, 0, 1));
    }

    #[test]
    fn identity_keys_make_reports_incomparable() {
        let mut a = report(noisy(200.0, 40), noisy(100.0, 40));
        let mut b = a.clone();
        a.config = serde_json::json!({"plan": {"copy_up": {"depth": 3}}});
        b.config = serde_json::json!({"plan": {"copy_up": {"depth": 5}}});
        let err = compare(&a, &b, ("b", "c"), &opts())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("copy_up.depth is 3 in the baseline, 5"),
            "{err}"
        );
    }

    #[test]
    fn a_current_report_without_samples_fails_the_gate() {
        let base = report(noisy(200.0, 40), noisy(100.0, 40));
        let mut empty = base.clone();
        for c in &mut empty.cases {
            c.samples.clear();
        }
        let c = compare(&base, &empty, ("b", "c"), &opts()).expect("compare");
        assert_eq!(c.missing_in_current.len(), 1, "{c:?}");
        assert!(c.failed());
        let mut skip = opts();
        skip.missing = MissingPolicy::Skip;
        let c = compare(&base, &empty, ("b", "c"), &skip).expect("compare");
        assert!(
            c.nothing_compared() && c.failed(),
            "nothing compared never passes"
        );
    }

    #[test]
    fn a_shift_inside_the_noise_is_not_a_regression() {
        // 12 % shift of widely spread samples: the interval straddles the 10 % line.
        let wide = |c: f64| {
            (0..20)
                .map(|i| c * (0.5 + (i % 10) as f64 / 10.0))
                .collect::<Vec<_>>()
        };
        let base = report(wide(200.0), wide(100.0));
        let cur = report(wide(224.0), wide(100.0));
        let c = compare(&base, &cur, ("b", "c"), &opts()).expect("compare");
        assert_eq!(c.regressed, 0, "{:?}", c.results);
    }
}
