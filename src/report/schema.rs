//! `report.json`: the versioned contract every exporter, `compare` and `report`
//! read. Adding a field keeps `schema_version`; renaming or removing bumps it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::host::HostInfo;
use crate::image::ImageInfo;
use crate::stats::Stats;

/// The version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Version of this format (see `SCHEMA_VERSION`).
    pub schema_version: u32,
    /// Which tool wrote it.
    pub tool: ToolInfo,
    /// `running` while cases are still being added; only `complete` is a whole run.
    pub status: RunStatus,
    /// UTC start time, RFC 3339.
    pub started_at: String,
    /// Wall time of the run so far, seconds.
    pub duration_s: f64,
    /// The host and backing the run measured.
    pub host: HostInfo,
    /// Everything needed to rerun: the resolved plan and the command line.
    pub config: Value,
    /// Measured cases with raw samples.
    pub cases: Vec<Case>,
    /// Figures computed from cases (slopes, ratios).
    pub derived: Vec<Derived>,
    /// Things that could not be measured, and why.
    pub errors: Vec<RunError>,
    /// Caveats that apply to the whole run (eviction method, backing limits).
    pub notes: Vec<String>,
    /// The user's images the run measured (`--image`): reference, digests,
    /// platform and every layer; empty for synthetic-only runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageInfo>,
    /// Docker's storage-driver statements checked on this host, one run per backing
    /// (absent when no claims were run: added after version 1 shipped, so optional).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimsRun>,
    /// Layouts a backing (or the host) could not run, each with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// How busy the machine was while each workload measured (pressure,
    /// steal, load, clock); `compare` refuses to judge a run too noisy to gate on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<crate::host::conditions::Conditions>,
    /// What the figures mean for the choice of layout, computed from them
    /// (absent in reports written before findings existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<super::findings::Findings>,
    /// Per workload (by name), records it keeps beside its cases that are not
    /// samples (e.g. app's start-up read set: the files, in first-open order),
    /// each read back only through that workload's typed view; absent when none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extras: BTreeMap<String, Vec<Value>>,
}

/// What a check of one of Docker's statements found on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimVerdict {
    /// The statement holds here.
    Confirmed,
    /// The statement does not hold here (and, as far as is known, never did).
    Refuted,
    /// True once, different on this kernel or engine.
    Changed,
    /// This host or build cannot check it; `reason` says why.
    NotTestable,
    /// The figures disagree: the statement holds on some and not on others;
    /// `figure` names each side's figures.
    Depends,
}

impl ClaimVerdict {
    /// The verdict as tables print it.
    pub fn word(self) -> &'static str {
        match self {
            ClaimVerdict::Confirmed => "confirmed",
            ClaimVerdict::Refuted => "refuted",
            ClaimVerdict::Changed => "changed",
            ClaimVerdict::NotTestable => "not testable here",
            ClaimVerdict::Depends => "depends",
        }
    }
}

/// One statement checked by a real experiment.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRecord {
    /// Number of the statement in the claims registry (1-based, stable).
    pub id: u32,
    /// Stable short name (`layer-limit`).
    pub slug: String,
    /// The statement as Docker's notes make it.
    pub statement: String,
    /// What the experiment found.
    pub verdict: ClaimVerdict,
    /// Why it is not testable here, or why the experiment failed.
    pub reason: Option<String>,
    /// The headline figure or observation, in words with its unit.
    pub figure: String,
    /// The headline figure as a number, when there is one.
    pub value: Option<f64>,
    /// Unit of `value` (`layers`, `ns/MiB`, `x`); empty without a value.
    pub unit: String,
    /// What was observed, one fact per line.
    pub observations: Vec<String>,
    /// The experiment failed with this error (the verdict is then `not-testable`).
    pub error: Option<String>,
    /// Wall time of the experiment, seconds.
    pub duration_s: f64,
}

/// The claims checked on one backing.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimsRun {
    /// The backing they ran on (`ext4`, …), as in cases' params.
    pub backing: String,
    /// UTC start time, RFC 3339.
    pub started_at: String,
    /// Wall time of all claims, seconds.
    pub duration_s: f64,
    /// Settings preset (`quick`, `standard`, `full`).
    pub suite: String,
    /// One record per claim, in registry order.
    pub claims: Vec<ClaimRecord>,
}

/// Tool name and version.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolInfo {
    /// `overlaybench`.
    pub name: String,
    /// Crate version.
    pub version: String,
}

/// How far the run got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Still running (or the process died): cases so far are valid, the set is partial.
    Running,
    /// Every planned case ran.
    Complete,
    /// Stopped by Ctrl-C; the cases present are valid.
    Interrupted,
    /// Stopped by an error (see `errors`).
    Failed,
}

/// One measured case: a workload × layout × parameter point.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Stable identity: workload/layout/metric/params — the same case in another run
    /// of the same configuration has the same id (`compare` matches on it).
    #[serde(default)]
    pub id: String,
    /// Workload name (`lookup`, …).
    pub workload: String,
    /// Layout name (`overlay2`, `overlay`, `plain`).
    pub layout: String,
    /// Parameters of the point (`depth`, `target`, `op`, `cache`, …).
    pub params: BTreeMap<String, Value>,
    /// What was measured (`latency_per_op`, `mount_time`, …).
    pub metric: String,
    /// Unit of samples and stats (`ns`, `bytes`, `inodes`).
    pub unit: String,
    /// Raw samples, in measurement order.
    pub samples: Vec<f64>,
    /// Statistics of `samples`.
    pub stats: Stats,
}

/// A figure derived from several cases (a fit or a ratio).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Derived {
    /// Workload it belongs to.
    pub workload: String,
    /// Layout it describes.
    pub layout: String,
    /// `slope` (least-squares fit) or `ratio` (to a baseline in the same run).
    pub kind: String,
    /// Parameters that select the cases it was computed from.
    pub params: BTreeMap<String, Value>,
    /// The figure.
    pub value: f64,
    /// Its unit (`ns/layer`, `x`).
    pub unit: String,
    /// Coefficient of determination, for fits.
    pub r2: Option<f64>,
    /// Intercept, for fits (in the y unit).
    pub intercept: Option<f64>,
    /// Points (fits) or samples behind it.
    pub n: usize,
    /// Ids of the cases it is computed from (ratio: numerator, denominator; slope and
    /// throughput: one per point), so it can be recomputed from raw samples.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// x of each input, for slopes (depth, MiB) and throughput (MiB).
    #[serde(default)]
    pub x: Vec<f64>,
}

impl Derived {
    /// A least-squares slope over the medians of the cases `inputs`, at `x`.
    pub fn slope(
        workload: &str,
        layout: &str,
        params: BTreeMap<String, Value>,
        fit: &crate::stats::LineFit,
        unit: &str,
        points: Vec<(f64, String)>,
    ) -> Derived {
        Derived {
            workload: workload.into(),
            layout: layout.into(),
            kind: kinds::SLOPE.into(),
            params,
            value: fit.slope,
            unit: unit.into(),
            r2: Some(fit.r2),
            intercept: Some(fit.intercept),
            n: fit.n,
            x: points.iter().map(|(x, _)| *x).collect(),
            inputs: points.into_iter().map(|(_, id)| id).collect(),
        }
    }

    /// Whether a fitted slope is flat: the change it fits over the measured
    /// range is under half the fitted cost at the range's start, or it is
    /// negative with a poor fit. Printing such a slope (`-9.33 ns per layer`)
    /// would claim a trend the noise made.
    pub fn is_flat(&self) -> bool {
        let (Some(lo), Some(hi)) = (
            self.x.iter().copied().reduce(f64::min),
            self.x.iter().copied().reduce(f64::max),
        ) else {
            return false;
        };
        let start = self.intercept.unwrap_or(0.0) + self.value * lo;
        let change = self.value * (hi - lo);
        change.abs() < 0.5 * start.abs() || (self.value < 0.0 && self.r2.unwrap_or(0.0) < 0.8)
    }

    /// A slope as the tables print it: `flat`, or the value in `fmt` with its r².
    pub fn slope_cell(&self, fmt: impl Fn(f64) -> String) -> String {
        if self.is_flat() {
            "flat".into()
        } else {
            format!("{} ({:.2})", fmt(self.value), self.r2.unwrap_or(f64::NAN))
        }
    }

    /// The ratio of two cases' medians taken in the same run (`num` / `den`).
    pub fn ratio(
        workload: &str,
        layout: &str,
        params: BTreeMap<String, Value>,
        value: f64,
        num: String,
        den: String,
    ) -> Derived {
        Derived {
            workload: workload.into(),
            layout: layout.into(),
            kind: kinds::RATIO.into(),
            params,
            value,
            unit: "x".into(),
            n: 1,
            inputs: vec![num, den],
            ..Default::default()
        }
    }
}

/// Something that could not be measured.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunError {
    /// Workload concerned, if any.
    pub workload: Option<String>,
    /// What happened, naming the value or path.
    pub message: String,
}

/// A layout not run on a backing, and why (a visible skip, never a silent one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Skipped {
    /// The layout.
    pub layout: String,
    /// The backing it was not run on.
    pub backing: String,
    /// Why, and what would let it run.
    pub reason: String,
}

impl Report {
    /// A run that has just started: no cases yet, status `running`, this build's tool info.
    pub fn new(host: HostInfo, config: Value) -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            tool: ToolInfo {
                name: env!("CARGO_PKG_NAME").into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            status: RunStatus::Running,
            started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            duration_s: 0.0,
            host,
            config,
            cases: Vec::new(),
            derived: Vec::new(),
            errors: Vec::new(),
            notes: Vec::new(),
            images: Vec::new(),
            claims: Vec::new(),
            skipped: Vec::new(),
            conditions: Vec::new(),
            findings: None,
            extras: BTreeMap::new(),
        }
    }

    /// The cases of one workload.
    pub fn cases_of<'a>(&'a self, workload: &'a str) -> impl Iterator<Item = &'a Case> + 'a {
        self.cases.iter().filter(move |c| c.workload == workload)
    }
}

/// The kinds of derived figure: how `compare` recomputes each from raw samples.
pub mod kinds {
    /// A least-squares slope over the medians of `inputs` at `x`.
    pub const SLOPE: &str = "slope";
    /// The ratio of two cases' medians (`inputs[0] / inputs[1]`), taken in one run.
    pub const RATIO: &str = "ratio";
    /// MiB per second of one case (`x[0]` MiB over its median ns).
    pub const THROUGHPUT: &str = "throughput";
}

/// A typed parameter view as the report's key → value map (`None` fields are left out).
pub fn params_of<T: Serialize>(view: &T) -> BTreeMap<String, Value> {
    match serde_json::to_value(view) {
        Ok(Value::Object(m)) => m.into_iter().filter(|(_, v)| !v.is_null()).collect(),
        _ => BTreeMap::new(),
    }
}

/// Reads a typed parameter view back from a report's map; `None` when the map is
/// not of that shape (another workload's, or another version's).
pub fn parse_params<T: serde::de::DeserializeOwned>(params: &BTreeMap<String, Value>) -> Option<T> {
    serde_json::from_value(Value::Object(
        params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    ))
    .ok()
}

/// The stable id of a case: `workload/layout/metric/k=v,k=v` (params sorted).
pub fn case_key(
    workload: &str,
    layout: &str,
    metric: &str,
    params: &BTreeMap<String, Value>,
) -> String {
    let p: Vec<String> = params
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    format!("{workload}/{layout}/{metric}/{}", p.join(","))
}

impl Case {
    /// This case's id from its fields.
    pub fn key(&self) -> String {
        case_key(&self.workload, &self.layout, &self.metric, &self.params)
    }

    /// A string parameter, or "".
    pub fn param_str(&self, key: &str) -> &str {
        self.params.get(key).and_then(Value::as_str).unwrap_or("")
    }

    /// A numeric parameter.
    pub fn param_f64(&self, key: &str) -> Option<f64> {
        self.params.get(key).and_then(Value::as_f64)
    }
}

/// The JSON Schema of `report.json` (shipped as `docs/report.schema.json`).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Report)).unwrap_or_default()
}
