//! A fleet of node reports merged into one: per node its headline figures,
//! per group of like nodes (kernel, backing filesystem, storage stack) the
//! spread of each figure across nodes and the nodes beyond it (MAD rule), the
//! nodes whose doctor found a problem, and what could not be read.
//!
//! Invariants: reports are read one at a time and reduced to a `NodeSummary`
//! (a few hundred bytes) before the next is read, so memory grows with the
//! number of nodes, never with the size of their raw samples; a report that
//! cannot be read or is not an overlaybench run report is listed in `skipped`,
//! never fatal. The headline figures come from the workloads' sections through
//! the registry: nothing here names a workload.
//!
//! Also here: the Kubernetes manifests that run the tool on every node
//! (`manifest`), the node_exporter textfile of one report (`prom`), and the
//! fleet-wide gate (`compare`).

pub mod compare;
pub mod findings;
pub mod manifest;
pub mod prom;
pub mod read;
pub mod render;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::ErrorClass;
use crate::report::{Report, RunStatus};
use crate::stats::quantile;

pub use read::{node_summary, read_dirs, read_stream, Input};

/// Version of `fleet.json` this build writes and reads.
pub const FLEET_SCHEMA_VERSION: u32 = 1;

/// Modified z-score beyond which a node is an outlier in its group
/// (Iglewicz and Hoaglin's 3.5, the rule `Stats::outliers` uses for samples).
pub const OUTLIER_Z: f64 = 3.5;

/// Fewest nodes in a group for outliers to mean anything: with two, each is
/// as far from the median as the other.
pub const OUTLIER_MIN_NODES: usize = 3;

/// Failures of the fleet commands that are not a node's fault (a node's bad
/// report is skipped and listed instead).
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a fleet report: {detail}", path.display())]
    NotFleet { path: PathBuf, detail: String },
    #[error(
        "no node report could be read from {0}: nothing to merge (skipped inputs are listed above)"
    )]
    Empty(String),
    #[error("{what}: {detail}")]
    Invalid { what: String, detail: String },
    #[error(transparent)]
    Input(#[from] crate::input::ReadError),
    #[error("rendering {what}: {detail}")]
    Render { what: String, detail: String },
}

impl FleetError {
    /// Exit-code class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            FleetError::NotFleet { .. } | FleetError::Empty(_) | FleetError::Invalid { .. } => {
                ErrorClass::Usage
            }
            FleetError::Input(e) => e.class(),
            FleetError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorClass::Usage
            }
            _ => ErrorClass::Runtime,
        }
    }
}

/// One headline figure of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeFigure {
    /// Workload that measured it (its gate rules give the fleet gate's threshold).
    pub workload: String,
    /// What it is, with its conditions (the section's headline text).
    pub figure: String,
    /// Storage stack (layout) it was measured on.
    pub layout: String,
    /// Backing filesystem it was measured on.
    pub backing: String,
    /// The value, in `unit`.
    pub value: f64,
    /// `ns` or `x`.
    pub unit: String,
    /// Lower values are better (times); else higher (sharing factors).
    pub lower_is_better: bool,
}

/// A doctor check that did not pass on a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeProblem {
    /// `fail` or `warn`.
    pub status: String,
    /// The check (`image depth`, `inode headroom`, …).
    pub check: String,
    /// What was found, in words.
    pub figure: String,
}

/// What the fleet keeps of one node's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSummary {
    /// Node name (the `<node>` of `<node>/<run-id>/report.json`).
    pub node: String,
    /// Run id (the `<run-id>` folder; the start time for a report on stdin).
    pub run_id: String,
    /// Where it was read from (a path, or `stdin:<line>`).
    pub source: String,
    /// `uname -r` of the node.
    pub kernel_release: String,
    /// CPU architecture.
    pub arch: String,
    /// Online CPUs.
    pub cores: usize,
    /// Memory, bytes.
    pub memory_bytes: u64,
    /// How far its run got.
    pub status: RunStatus,
    /// UTC start of its run, RFC 3339.
    pub started_at: String,
    /// Version of the tool that measured it.
    pub tool_version: String,
    /// Headline figures (one per figure, layout and backing).
    pub figures: Vec<NodeFigure>,
    /// Errors the run recorded (things not measured), counted.
    pub run_errors: usize,
    /// Whether a doctor report (`doctor.json`) was found beside the run report.
    pub doctor_read: bool,
    /// The doctor's checks that did not pass (fail and warn).
    pub problems: Vec<NodeProblem>,
    /// Its findings, computed from its report while it was read (absent in
    /// fleet reports merged before findings existed).
    #[serde(default)]
    pub findings: Vec<findings::NodeFinding>,
    /// The recommendation its figures support (`overlay2 over overlay`).
    #[serde(default)]
    pub recommendation: Option<String>,
}

impl NodeSummary {
    /// Checks of its doctor that failed.
    pub fn failing_checks(&self) -> usize {
        self.problems.iter().filter(|p| p.status == "fail").count()
    }
}

impl NodeSummary {
    /// The summary of a report read from `source`, for `node` and `run_id`; the
    /// figures come from the registered sections' headlines.
    pub fn of_report(report: &Report, node: String, run_id: String, source: String) -> Self {
        let mut figures = Vec::new();
        for w in crate::workload::WORKLOADS {
            for h in w.section.headlines(report) {
                figures.push(NodeFigure {
                    workload: w.name.to_string(),
                    figure: h.figure,
                    layout: h.layout,
                    backing: h.backing,
                    value: h.value,
                    unit: h.unit.to_string(),
                    lower_is_better: h.lower_is_better,
                });
            }
        }
        // Today's rules on the report's figures (its stored section may come
        // from an older engine), reduced to a few words per question.
        let (findings, recommendation) =
            findings::of_findings(&crate::workload::findings_of(report));
        NodeSummary {
            findings,
            recommendation,
            node,
            run_id,
            source,
            kernel_release: report.host.kernel_release.clone(),
            arch: report.host.arch.clone(),
            cores: report.host.cores,
            memory_bytes: report.host.memory_bytes,
            status: report.status,
            started_at: report.started_at.clone(),
            tool_version: report.tool.version.clone(),
            figures,
            run_errors: report.errors.len(),
            doctor_read: false,
            problems: Vec::new(),
        }
    }
}

/// An input left out of the merge, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SkippedInput {
    /// The path (or `stdin:<line>`).
    pub source: String,
    /// Why it was left out.
    pub reason: String,
}

/// A group of like nodes: same kernel, backing filesystem and storage stack.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct GroupKey {
    /// `uname -r`.
    pub kernel_release: String,
    /// Backing filesystem.
    pub backing: String,
    /// Storage stack (layout).
    pub layout: String,
}

impl GroupKey {
    /// `6.18.44 · ext4 · overlay2`.
    pub fn label(&self) -> String {
        format!(
            "{} · {} · {}",
            self.kernel_release, self.backing, self.layout
        )
    }
    /// A stable id for matching groups across fleet reports.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.kernel_release, self.backing, self.layout)
    }
}

/// A node whose figure lies beyond its group's spread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Outlier {
    /// The node.
    pub node: String,
    /// Its value.
    pub value: f64,
    /// Modified z-score: 0.6745 (value − median) / MAD (or the mean absolute
    /// deviation × 1.2533 when MAD is 0).
    pub z: f64,
    /// Whether it is on the bad side of the median (slower, or sharing less).
    pub worse: bool,
}

/// One figure across the nodes of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupFigure {
    /// Workload that measured it.
    pub workload: String,
    /// The headline text.
    pub figure: String,
    /// Unit of the values.
    pub unit: String,
    /// Lower values are better.
    pub lower_is_better: bool,
    /// Nodes measured.
    pub n: usize,
    /// Median across nodes.
    pub median: f64,
    /// 90th percentile across nodes (linear interpolation).
    pub p90: f64,
    /// Largest.
    pub max: f64,
    /// Median absolute deviation from the median (unscaled).
    pub mad: f64,
    /// Nodes beyond `OUTLIER_Z`.
    pub outliers: Vec<Outlier>,
    /// Every node's value, in node order (the fleet gate bootstraps over them).
    pub values: Vec<f64>,
}

/// A group and its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Kernel, backing, stack.
    pub key: GroupKey,
    /// Its nodes, sorted.
    pub nodes: Vec<String>,
    /// Per figure, in figure order.
    pub figures: Vec<GroupFigure>,
}

/// `fleet.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetReport {
    /// `FLEET_SCHEMA_VERSION`.
    pub schema_version: u32,
    /// Always `fleet`.
    pub kind: String,
    /// Version of the tool that merged it.
    pub tool_version: String,
    /// One entry per node (its latest run), sorted by node name.
    pub nodes: Vec<NodeSummary>,
    /// Groups of like nodes, sorted by key.
    pub groups: Vec<Group>,
    /// Inputs left out, and why.
    pub skipped: Vec<SkippedInput>,
    /// The findings per group of like nodes (kernel and backing filesystem:
    /// findings compare the stacks), from each node's own report.
    #[serde(default)]
    pub findings: Vec<findings::GroupFindings>,
}

/// The word `fleet.json` carries in `kind`.
pub const KIND: &str = "fleet";

impl FleetReport {
    /// Nodes whose doctor found a failing check (a problem, as `doctor
    /// --exit-code` counts it; warnings alone are not).
    pub fn nodes_with_problems(&self) -> impl Iterator<Item = &NodeSummary> {
        self.nodes.iter().filter(|n| n.failing_checks() > 0)
    }
    /// Nodes without a doctor report.
    pub fn nodes_without_doctor(&self) -> impl Iterator<Item = &NodeSummary> {
        self.nodes.iter().filter(|n| !n.doctor_read)
    }
}

/// Builds a fleet report node by node: `add` each summary as it is read (the
/// caller never holds more than one report), then `finish`.
#[derive(Debug, Default)]
pub struct FleetBuilder {
    nodes: BTreeMap<String, NodeSummary>,
    skipped: Vec<SkippedInput>,
}

impl FleetBuilder {
    /// An empty fleet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node's summary; of two runs of one node the later start wins and
    /// the other is listed as skipped.
    pub fn add(&mut self, node: NodeSummary) {
        match self.nodes.get(&node.node) {
            Some(old)
                if (old.started_at.as_str(), old.run_id.as_str())
                    >= (node.started_at.as_str(), node.run_id.as_str()) =>
            {
                self.skipped.push(SkippedInput {
                    source: node.source.clone(),
                    reason: format!("an older run of node {} than {}", node.node, old.source),
                });
            }
            _ => {
                if let Some(old) = self.nodes.insert(node.node.clone(), node) {
                    self.skipped.push(SkippedInput {
                        reason: format!("an older run of node {}", old.node),
                        source: old.source,
                    });
                }
            }
        }
    }

    /// Lists an input left out.
    pub fn skip(&mut self, source: String, reason: String) {
        self.skipped.push(SkippedInput { source, reason });
    }

    /// Nodes added so far.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node was added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The fleet report: groups, their spreads and outliers.
    pub fn finish(self) -> FleetReport {
        let nodes: Vec<NodeSummary> = self.nodes.into_values().collect();
        FleetReport {
            schema_version: FLEET_SCHEMA_VERSION,
            kind: KIND.into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            groups: groups_of(&nodes),
            findings: findings::groups_of(&nodes),
            nodes,
            skipped: self.skipped,
        }
    }
}

/// Per (figure metadata) the values of a group, in node order.
type FigureValues<'a> = BTreeMap<&'a str, (&'a NodeFigure, Vec<(&'a str, f64)>)>;

fn groups_of(nodes: &[NodeSummary]) -> Vec<Group> {
    let mut groups: BTreeMap<GroupKey, (Vec<String>, FigureValues<'_>)> = BTreeMap::new();
    for n in nodes {
        for f in &n.figures {
            let key = GroupKey {
                kernel_release: n.kernel_release.clone(),
                backing: f.backing.clone(),
                layout: f.layout.clone(),
            };
            let (members, figs) = groups.entry(key).or_default();
            if members.last() != Some(&n.node) {
                members.push(n.node.clone());
            }
            figs.entry(f.figure.as_str())
                .or_insert_with(|| (f, Vec::new()))
                .1
                .push((n.node.as_str(), f.value));
        }
    }
    groups
        .into_iter()
        .map(|(key, (nodes, figs))| Group {
            key,
            nodes,
            figures: figs
                .into_values()
                .map(|(meta, values)| group_figure(meta, &values))
                .collect(),
        })
        .collect()
}

/// Spread and outliers of one figure across a group's nodes.
pub fn group_figure(meta: &NodeFigure, values: &[(&str, f64)]) -> GroupFigure {
    let mut sorted: Vec<f64> = values
        .iter()
        .map(|(_, v)| *v)
        .filter(|v| v.is_finite())
        .collect();
    sorted.sort_by(f64::total_cmp);
    let median = quantile(&sorted, 0.5);
    let mut dev: Vec<f64> = sorted.iter().map(|x| (x - median).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mad = quantile(&dev, 0.5);
    let outliers = outliers(values, median, mad, &dev, meta.lower_is_better);
    GroupFigure {
        workload: meta.workload.clone(),
        figure: meta.figure.clone(),
        unit: meta.unit.clone(),
        lower_is_better: meta.lower_is_better,
        n: sorted.len(),
        median,
        p90: quantile(&sorted, 0.9),
        max: sorted.last().copied().unwrap_or(f64::NAN),
        mad,
        outliers,
        values: values.iter().map(|(_, v)| *v).collect(),
    }
}

/// Nodes whose modified z-score exceeds `OUTLIER_Z`. When more than half the
/// nodes share the median (MAD = 0) the mean absolute deviation stands in
/// (Iglewicz and Hoaglin's fallback, scaled by 1.2533); when that is 0 too,
/// every node has the same value and none is an outlier.
fn outliers(
    values: &[(&str, f64)],
    median: f64,
    mad: f64,
    dev: &[f64],
    lower_is_better: bool,
) -> Vec<Outlier> {
    if dev.len() < OUTLIER_MIN_NODES {
        return Vec::new();
    }
    let scale = if mad > 0.0 {
        mad / 0.6745
    } else {
        let mean_ad = dev.iter().sum::<f64>() / dev.len() as f64;
        mean_ad * 1.253_314
    };
    if scale.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Vec::new();
    }
    values
        .iter()
        .filter(|(_, v)| v.is_finite())
        .filter_map(|(node, v)| {
            let z = (v - median) / scale;
            (z.abs() > OUTLIER_Z).then(|| Outlier {
                node: node.to_string(),
                value: *v,
                z,
                worse: if lower_is_better { z > 0.0 } else { z < 0.0 },
            })
        })
        .collect()
}

/// Reads a `fleet.json`, refusing other kinds and versions.
pub fn read_fleet(path: &std::path::Path) -> Result<FleetReport, FleetError> {
    let file = if path.is_dir() {
        path.join("fleet.json")
    } else {
        path.to_path_buf()
    };
    let text = crate::input::read_text(
        &file,
        crate::input::REPORT_MAX_BYTES,
        "a fleet report",
        crate::input::Follow::Symlinks,
    )?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| FleetError::NotFleet {
            path: file.clone(),
            detail: e.to_string(),
        })?;
    if value.get("kind").and_then(|k| k.as_str()) != Some(KIND) {
        return Err(FleetError::NotFleet {
            path: file,
            detail: "its \"kind\" is not \"fleet\" (a node's report.json goes to `fleet merge`, two run reports to `compare`)".into(),
        });
    }
    let found = value
        .get("schema_version")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if found != FLEET_SCHEMA_VERSION as u64 {
        return Err(FleetError::NotFleet {
            path: file,
            detail: format!(
                "schema_version {found}; this build reads version {FLEET_SCHEMA_VERSION}"
            ),
        });
    }
    serde_json::from_value(value).map_err(|e| FleetError::NotFleet {
        path: file,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(lower: bool) -> NodeFigure {
        NodeFigure {
            workload: "w".into(),
            figure: "f".into(),
            layout: "l".into(),
            backing: "ext4".into(),
            value: 0.0,
            unit: "ns".into(),
            lower_is_better: lower,
        }
    }

    #[test]
    fn spread_and_mad_outliers() {
        let vals: Vec<(&str, f64)> = vec![
            ("a", 10.0),
            ("b", 11.0),
            ("c", 9.0),
            ("d", 10.5),
            ("e", 40.0),
        ];
        let g = group_figure(&meta(true), &vals);
        assert_eq!(g.n, 5);
        assert_eq!(g.median, 10.5);
        assert_eq!(g.max, 40.0);
        assert_eq!(g.mad, 0.5);
        assert_eq!(g.outliers.len(), 1, "{g:?}");
        assert_eq!(g.outliers[0].node, "e");
        assert!(g.outliers[0].worse, "slower is worse for a time");
        let g = group_figure(&meta(false), &vals);
        assert!(!g.outliers[0].worse, "a higher sharing factor is better");
    }

    #[test]
    fn equal_values_have_no_outliers_and_mad_zero_falls_back() {
        let same: Vec<(&str, f64)> = vec![("a", 5.0), ("b", 5.0), ("c", 5.0)];
        assert!(group_figure(&meta(true), &same).outliers.is_empty());
        let mostly: Vec<(&str, f64)> =
            vec![("a", 5.0), ("b", 5.0), ("c", 5.0), ("d", 5.0), ("e", 50.0)];
        let g = group_figure(&meta(true), &mostly);
        assert_eq!(g.mad, 0.0);
        assert_eq!(
            g.outliers
                .iter()
                .map(|o| o.node.as_str())
                .collect::<Vec<_>>(),
            vec!["e"]
        );
        let two: Vec<(&str, f64)> = vec![("a", 1.0), ("b", 100.0)];
        assert!(
            group_figure(&meta(true), &two).outliers.is_empty(),
            "two nodes: no outlier"
        );
    }

    #[test]
    fn a_later_run_of_a_node_wins() {
        let n = |run: &str, at: &str| NodeSummary {
            node: "n1".into(),
            run_id: run.into(),
            source: format!("n1/{run}"),
            kernel_release: "k".into(),
            arch: "x86_64".into(),
            cores: 2,
            memory_bytes: 1,
            status: RunStatus::Complete,
            started_at: at.into(),
            tool_version: "0".into(),
            figures: vec![],
            run_errors: 0,
            doctor_read: false,
            problems: vec![],
            findings: vec![],
            recommendation: None,
        };
        let mut b = FleetBuilder::new();
        b.add(n("r2", "2026-01-02T00:00:00Z"));
        b.add(n("r1", "2026-01-01T00:00:00Z"));
        b.add(n("r3", "2026-01-03T00:00:00Z"));
        let f = b.finish();
        assert_eq!(f.nodes.len(), 1);
        assert_eq!(f.nodes[0].run_id, "r3");
        assert_eq!(f.skipped.len(), 2);
    }
}
