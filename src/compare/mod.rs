//! `overlaybench compare`: a CI gate that does not flap. Figures are matched by
//! id between two reports and recomputed from raw samples; the verdict follows
//! criterion's rule — *regressed* only when the whole 95 % bootstrap confidence
//! interval of the relative change lies beyond the threshold.

pub mod format;
pub mod gate;

use std::collections::{BTreeMap, HashMap};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorClass;
use crate::measure::fit_line;
use crate::report::{Case, Derived, Report};

/// Which figures are gated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FigureSet {
    /// In-run ratios, slopes with a clear trend, inode costs, sharing factors (default).
    Derived,
    /// Every case's median (absolute times: sensitive to the machine).
    Absolute,
    /// Both.
    All,
}

/// What to do when a figure is in one report only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MissingPolicy {
    /// A missing figure fails the gate.
    Fail,
    /// Missing figures are listed and ignored.
    Skip,
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
    /// Figures of the baseline absent from the current report.
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
}

impl Comparison {
    /// Whether the gate fails.
    pub fn failed(&self) -> bool {
        self.regressed > 0
            || (self.missing_fails
                && !(self.missing_in_current.is_empty() && self.missing_in_baseline.is_empty()))
    }
}

/// Why two reports cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("the reports were run with different parameters that change what a case measures: {0}; rerun one of them with the other's settings")]
    Incomparable(String),
    #[error("{0}")]
    Invalid(String),
}

impl CompareError {
    /// Always bad input.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Usage
    }
}

/// Plan keys that define what a case measures: if they differ, same ids mean different things.
const IDENTITY_KEYS: [&str; 14] = [
    "/lookup/names",
    "/lookup/batch",
    "/lookup/readdir_dirs",
    "/lookup/entries_per_layer",
    "/copy_up/depth",
    "/inodes/images",
    "/inodes/shared_pct",
    "/inodes/containers",
    "/inodes/files_per_layer",
    "/inodes/dirs_per_layer",
    "/inodes/writes",
    "/inodes/seed",
    "/page_cache/set_bytes",
    "/page_cache/files",
];

fn config_differences(a: &Report, b: &Report) -> Vec<String> {
    IDENTITY_KEYS
        .iter()
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

fn median_of(v: &mut [f64]) -> f64 {
    crate::measure::stats::quantile(
        {
            v.sort_by(f64::total_cmp);
            v
        },
        0.5,
    )
}

impl Def<'_> {
    fn value(&self, pick: &mut dyn FnMut(&Case) -> f64) -> f64 {
        match self {
            Def::Median(c) => pick(c),
            Def::Ratio(a, b) => pick(a) / pick(b),
            Def::Slope(pts) => {
                let xy: Vec<(f64, f64)> = pts.iter().map(|(x, c)| (*x, pick(c))).collect();
                fit_line(&xy).map_or(f64::NAN, |f| f.slope)
            }
            Def::Throughput(mib, c) => mib / (pick(c) / 1e9),
            Def::Fixed(v) => *v,
        }
    }
}

fn figures<'a>(r: &'a Report, set: FigureSet, ignore: &[String]) -> BTreeMap<String, Figure<'a>> {
    let by_id: HashMap<&str, &Case> = r.cases.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut largest: HashMap<&str, f64> = HashMap::new();
    for c in &r.cases {
        if let Some(size) = c.param_f64("size_bytes") {
            let e = largest.entry(c.workload.as_str()).or_insert(0.0);
            *e = e.max(size);
        }
    }
    let mut out = BTreeMap::new();
    if matches!(set, FigureSet::Derived | FigureSet::All) {
        for d in &r.derived {
            let Some((def, gated)) = derived_def(d, &by_id, &largest) else {
                continue;
            };
            // `all` gates every derived figure that can be recomputed.
            let gated = gated || set == FigureSet::All;
            out.insert(
                normalized_id(&d.workload, &d.layout, &d.kind, &d.params, ignore),
                Figure {
                    workload: d.workload.clone(),
                    unit: d.unit.clone(),
                    higher_is_better: matches!(d.kind.as_str(), "sharing-factor" | "throughput"),
                    def,
                    gated,
                },
            );
        }
    }
    if matches!(set, FigureSet::Absolute | FigureSet::All) {
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

/// How a derived figure is recomputed, and whether the default gate uses it.
///
/// Measured on a 2-core VM (5 quick suites back to back, `scripts/gate-noise`), the
/// figures kept here vary ≤ ~10 % between runs; the ones left out vary more and
/// are still compared with `--figures all` or shown by `absolute`:
/// - lookup: the *cold* slopes of stat (bottom, missing names) and of mount — fits
///   over all depths average out the per-depth disk noise of a cold lookup, which
///   makes single-depth ratios swing 10–14 %; warm and readdir figures swing more;
/// - copy-up: the cold ratio to the reference copy at the largest size, for ops
///   that copy (ratio ≥ 0.05) — the reference runs interleaved on the same disk,
///   so drift cancels; slopes are absolute disk speed and are left out;
/// - inodes per-unit costs and page-cache sharing factors: exact, always gated.
fn derived_def<'a>(
    d: &'a Derived,
    by_id: &HashMap<&str, &'a Case>,
    largest: &HashMap<&str, f64>,
) -> Option<(Def<'a>, bool)> {
    let input = |i: usize| {
        d.inputs
            .get(i)
            .and_then(|id| by_id.get(id.as_str()).copied())
    };
    let param = |k: &str| d.params.get(k).and_then(|v| v.as_str());
    let cold = param("cache") == Some("cold");
    match d.kind.as_str() {
        "ratio" => {
            let size = d.params.get("size_bytes").and_then(|v| v.as_f64());
            let gated = d.workload == "copy-up"
                && cold
                && d.value >= 0.05
                && size.is_some()
                && size == largest.get(d.workload.as_str()).copied();
            Some((Def::Ratio(input(0)?, input(1)?), gated))
        }
        "slope" => {
            let pts: Option<Vec<(f64, &Case)>> =
                d.x.iter()
                    .enumerate()
                    .map(|(i, x)| input(i).map(|c| (*x, c)))
                    .collect();
            let pts = pts.filter(|p| p.len() >= 2)?;
            let lookup_kept = d.workload == "lookup"
                && cold
                && (param("op") == Some("mount")
                    || (param("op") == Some("stat")
                        && matches!(param("target"), Some("bottom" | "missing"))));
            let gated = lookup_kept && d.r2.unwrap_or(0.0) >= 0.8 && d.value > 0.0;
            Some((Def::Slope(pts), gated))
        }
        "throughput" => Some((Def::Throughput(*d.x.first()?, input(0)?), false)),
        _ => Some((Def::Fixed(d.value), true)),
    }
}

/// Built-in per-workload thresholds: timing figures carry the run-to-run noise of
/// a shared VM (CV up to ~10 %), counts and sharing factors are exact.
pub fn default_thresholds() -> BTreeMap<String, f64> {
    [
        ("lookup", 0.25),
        ("copy-up", 0.25),
        ("inodes", 0.05),
        ("page-cache", 0.05),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn bootstrap(
    f: &Figure<'_>,
    g: &Figure<'_>,
    resamples: usize,
    seed: u64,
) -> (f64, f64, f64, f64, f64) {
    let point = |def: &Def<'_>| {
        def.value(&mut |c: &Case| {
            let mut s = c.samples.clone();
            median_of(&mut s)
        })
    };
    let (b0, c0) = (point(&f.def), point(&g.def));
    let change = c0 / b0 - 1.0;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let resample = |def: &Def<'_>, rng: &mut ChaCha8Rng| {
        def.value(&mut |c: &Case| {
            let n = c.samples.len();
            let mut s: Vec<f64> = (0..n).map(|_| c.samples[rng.gen_range(0..n)]).collect();
            median_of(&mut s)
        })
    };
    let mut changes: Vec<f64> = (0..resamples)
        .map(|_| resample(&g.def, &mut rng) / resample(&f.def, &mut rng) - 1.0)
        .filter(|x| x.is_finite())
        .collect();
    changes.sort_by(f64::total_cmp);
    if changes.is_empty() {
        return (b0, c0, change, change, change);
    }
    let lo = crate::measure::stats::quantile(&changes, 0.025);
    let hi = crate::measure::stats::quantile(&changes, 0.975);
    (b0, c0, change, lo.min(change), hi.max(change))
}

fn seed_of(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Compares `current` against `baseline`.
pub fn compare(
    baseline: &Report,
    current: &Report,
    names: (&str, &str),
    opts: &CompareOptions,
) -> Result<Comparison, CompareError> {
    let diffs = config_differences(baseline, current);
    if !diffs.is_empty() {
        return Err(CompareError::Incomparable(diffs.join("; ")));
    }
    let base = figures(baseline, opts.figures, &opts.ignore_params);
    let cur = figures(current, opts.figures, &opts.ignore_params);
    let mut results = Vec::new();
    let mut not_gated = 0;
    for (id, f) in &base {
        let Some(g) = cur.get(id) else { continue };
        if !(f.gated && g.gated) {
            not_gated += 1;
            continue;
        }
        let t = opts
            .per_workload
            .get(&f.workload)
            .copied()
            .unwrap_or(opts.threshold);
        let (b, c, change, lo, hi) = bootstrap(f, g, opts.resamples, seed_of(id));
        if !(b.is_finite() && c.is_finite()) || b == 0.0 {
            not_gated += 1;
            continue;
        }
        let verdict = if f.higher_is_better {
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
        };
        results.push(FigureResult {
            id: id.clone(),
            workload: f.workload.clone(),
            unit: f.unit.clone(),
            higher_is_better: f.higher_is_better,
            baseline: b,
            current: c,
            change,
            ci_low: lo,
            ci_high: hi,
            threshold: t,
            verdict,
        });
    }
    let missing_in_current: Vec<String> = base
        .iter()
        .filter(|(k, f)| f.gated && !cur.contains_key(*k))
        .map(|(k, _)| k.clone())
        .collect();
    let missing_in_baseline: Vec<String> = cur
        .iter()
        .filter(|(k, f)| f.gated && !base.contains_key(*k))
        .map(|(k, _)| k.clone())
        .collect();
    let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Stats;

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
