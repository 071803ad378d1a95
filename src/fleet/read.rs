//! Reading node reports for a merge: folders walked for `report.json` (with
//! the node's `doctor.json` and `fleet-node.json` beside it), or a stream of
//! one JSON document per line (`jq -c`, or the summary lines pods print, as
//! `kubectl logs` returns them). Each report is parsed without its raw
//! samples — the headlines need only each case's statistics — and reduced to a
//! `NodeSummary` at once.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::{FleetBuilder, FleetError, NodeProblem, NodeSummary};
use crate::host::HostInfo;
use crate::report::{
    Case, Derived, HeadlineSource, Report, RunError, RunStatus, ToolInfo, SCHEMA_VERSION,
};
use crate::stats::Stats;

/// The file a fleet pod writes beside its report, naming its node and run.
pub const NODE_FILE: &str = "fleet-node.json";
/// The doctor report a fleet pod writes beside its run report.
pub const DOCTOR_FILE: &str = "doctor.json";
/// `kind` of the one-line summary a pod prints (a `NodeSummary` with it).
pub const NODE_LINE_KIND: &str = "fleet-node";
/// Deepest folder below a merge argument searched for reports
/// (`<root>/<node>/<run-id>/report.json` is 3).
const MAX_DEPTH: usize = 4;

/// Where a node report comes from.
#[derive(Debug, Clone)]
pub enum Input {
    /// Folders (or report.json files) to search.
    Dirs(Vec<PathBuf>),
    /// Standard input, one JSON document per line.
    Stdin,
}

/// `fleet-node.json`: who wrote the report beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    /// Node name (the pod's `NODE_NAME`).
    pub node: String,
    /// Run id.
    pub run_id: String,
}

/// The summary line a pod prints: `{"kind":"fleet-node", …NodeSummary}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeLine {
    /// Always `fleet-node` (first, so a reader can tell it from a report cheaply).
    pub kind: String,
    /// Version of `fleet.json` whose node entries it matches.
    pub schema_version: u32,
    /// The node.
    #[serde(flatten)]
    pub node: NodeSummary,
}

impl NodeLine {
    /// The line for `node`.
    pub fn new(node: NodeSummary) -> Self {
        NodeLine {
            kind: NODE_LINE_KIND.into(),
            schema_version: super::FLEET_SCHEMA_VERSION,
            node,
        }
    }
}

/// A case without its raw samples and id (skipped, not parsed, while
/// reading: the headlines read each case's statistics and params only).
#[derive(Deserialize)]
struct LightCase {
    #[allow(dead_code)]
    #[serde(default)]
    id: IgnoredAny,
    workload: String,
    layout: String,
    params: BTreeMap<String, Value>,
    metric: String,
    unit: String,
    #[allow(dead_code)]
    samples: IgnoredAny,
    stats: Stats,
}

/// A run report as far as a fleet needs it: its cases and derived figures
/// are kept unparsed until their workload is known, and parsed only when a
/// section's headlines read them.
#[derive(Deserialize)]
struct LightReport<'a> {
    schema_version: u32,
    tool: ToolInfo,
    status: RunStatus,
    started_at: String,
    duration_s: f64,
    host: HostInfo,
    #[serde(borrow)]
    cases: Vec<&'a RawValue>,
    #[serde(borrow)]
    derived: Vec<&'a RawValue>,
    errors: Vec<RunError>,
    #[serde(default)]
    conditions: Vec<crate::host::conditions::Conditions>,
}

/// The workload of a case or derived figure (its other fields skipped).
#[derive(Deserialize)]
struct WorkloadOf<'a> {
    #[serde(borrow)]
    workload: Cow<'a, str>,
}

/// The workloads whose headlines read cases, and those whose read derived figures.
fn headline_readers() -> (Vec<&'static str>, Vec<&'static str>) {
    let of = |src: HeadlineSource| {
        crate::workload::WORKLOADS
            .iter()
            .filter(|w| w.section.headline_source() == src)
            .map(|w| w.name)
            .collect()
    };
    (of(HeadlineSource::Cases), of(HeadlineSource::Derived))
}

/// Parses the elements of `raw` whose workload is one of `wanted`.
fn parse_wanted<T: serde::de::DeserializeOwned>(
    raw: &[&RawValue],
    wanted: &[&str],
    what: &str,
) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let w: WorkloadOf<'_> =
            serde_json::from_str(r.get()).map_err(|e| format!("{what}[{i}]: {e}"))?;
        if wanted.contains(&w.workload.as_ref()) {
            out.push(serde_json::from_str(r.get()).map_err(|e| format!("{what}[{i}]: {e}"))?);
        }
    }
    Ok(out)
}

impl LightReport<'_> {
    fn into_report(self) -> Result<Report, String> {
        let (case_readers, derived_readers) = headline_readers();
        let cases: Vec<LightCase> = parse_wanted(&self.cases, &case_readers, "cases")?;
        let derived: Vec<LightDerived> = parse_wanted(&self.derived, &derived_readers, "derived")?;
        Ok(Report {
            schema_version: self.schema_version,
            tool: self.tool,
            status: self.status,
            started_at: self.started_at,
            duration_s: self.duration_s,
            host: self.host,
            config: Value::Null,
            cases: cases
                .into_iter()
                .map(|c| Case {
                    id: String::new(),
                    workload: c.workload,
                    layout: c.layout,
                    params: c.params,
                    metric: c.metric,
                    unit: c.unit,
                    samples: Vec::new(),
                    stats: c.stats,
                })
                .collect(),
            derived: derived
                .into_iter()
                .map(|d| Derived {
                    workload: d.workload,
                    layout: d.layout,
                    kind: d.kind,
                    params: d.params,
                    value: d.value,
                    unit: d.unit,
                    r2: d.r2,
                    intercept: d.intercept,
                    n: d.n,
                    inputs: Vec::new(),
                    x: Vec::new(),
                })
                .collect(),
            errors: self.errors,
            notes: Vec::new(),
            images: Vec::new(),
            claims: Vec::new(),
            conditions: self.conditions,
            skipped: Vec::new(),
        })
    }
}

/// A derived figure without the ids and x of its inputs (what `compare`
/// recomputes it from; a headline needs only its value).
#[derive(Deserialize)]
struct LightDerived {
    workload: String,
    layout: String,
    kind: String,
    params: BTreeMap<String, Value>,
    value: f64,
    unit: String,
    r2: Option<f64>,
    intercept: Option<f64>,
    n: usize,
    #[allow(dead_code)]
    #[serde(default)]
    inputs: IgnoredAny,
    #[allow(dead_code)]
    #[serde(default)]
    x: IgnoredAny,
}

/// Why a document is not a node report, naming what it looks like instead.
fn foreign(text: &str, err: &serde_json::Error) -> String {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return format!("not valid JSON: {err}");
    };
    let kind = v.get("kind").and_then(Value::as_str);
    let tool = v.pointer("/tool/name").and_then(Value::as_str);
    let version = v.get("schema_version").and_then(Value::as_u64);
    match (kind, tool, version) {
        (Some(k), _, _) => format!("a \"{k}\" document, not a run report"),
        (None, Some(t), _) if t != env!("CARGO_PKG_NAME") => {
            format!("a report of another tool ({t})")
        }
        (None, Some(_), Some(v)) if v != SCHEMA_VERSION as u64 => {
            format!("report schema_version {v}; this build reads version {SCHEMA_VERSION}")
        }
        (None, None, _) => "not an overlaybench report (no tool, no kind)".into(),
        _ => format!("not a valid run report: {err}"),
    }
}

/// Parses one report's text into a summary; `Err` is the reason to skip it.
pub fn node_summary(
    text: &str,
    node: String,
    run_id: Option<String>,
    source: String,
) -> Result<NodeSummary, String> {
    let light: LightReport = serde_json::from_str(text).map_err(|e| foreign(text, &e))?;
    if light.tool.name != env!("CARGO_PKG_NAME") {
        return Err(format!("a report of another tool ({})", light.tool.name));
    }
    if light.schema_version != SCHEMA_VERSION {
        return Err(format!(
            "report schema_version {}; this build reads version {SCHEMA_VERSION}",
            light.schema_version
        ));
    }
    let report = light.into_report()?;
    let run_id = run_id.unwrap_or_else(|| report.started_at.clone());
    Ok(NodeSummary::of_report(&report, node, run_id, source))
}

/// The failing and warning checks of a doctor report's text.
pub fn doctor_problems(text: &str) -> Result<Vec<NodeProblem>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    if v.get("kind").and_then(Value::as_str) != Some("doctor") {
        return Err("not a doctor report (its \"kind\" is not \"doctor\")".into());
    }
    let checks = v
        .get("checks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Ok(checks
        .iter()
        .filter_map(|c| {
            let status = c.get("status")?.as_str()?;
            (status == "fail" || status == "warn").then(|| NodeProblem {
                status: status.to_string(),
                check: c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                figure: c
                    .get("figure")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            })
        })
        .collect())
}

fn read_small(path: &Path, what: &'static str) -> Result<String, String> {
    crate::input::read_text(
        path,
        crate::input::CONFIG_MAX_BYTES,
        what,
        crate::input::Follow::Symlinks,
    )
    .map_err(|e| e.to_string())
}

/// Reads one `report.json` found under `root` into a summary (with its
/// node file and doctor report when present).
fn read_one(root: &Path, file: &Path) -> Result<NodeSummary, String> {
    let source = file.display().to_string();
    let text = crate::input::read_text(
        file,
        crate::input::REPORT_MAX_BYTES,
        "a node report",
        crate::input::Follow::Symlinks,
    )
    .map_err(|e| e.to_string())?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let named = match dir.join(NODE_FILE) {
        p if p.exists() => Some(
            serde_json::from_str::<NodeFile>(&read_small(&p, "a fleet node file")?)
                .map_err(|e| format!("{}: {e}", p.display()))?,
        ),
        _ => None,
    };
    let (node, run_id) = match named {
        Some(n) => (n.node, Some(n.run_id)),
        None => node_of_path(root, dir),
    };
    let mut summary = node_summary(&text, node, run_id, source)?;
    drop(text);
    let doctor = dir.join(DOCTOR_FILE);
    if doctor.exists() {
        summary.problems = doctor_problems(&read_small(&doctor, "a doctor report")?)
            .map_err(|e| format!("{}: {e}", doctor.display()))?;
        summary.doctor_read = true;
    }
    Ok(summary)
}

/// `<root>/<node>/<run-id>/` → (node, run-id); `<root>/<node>/` → (node, —);
/// the root itself → (its name, —).
fn node_of_path(root: &Path, dir: &Path) -> (String, Option<String>) {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let rel: Vec<String> = dir
        .strip_prefix(root)
        .map(|r| {
            r.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    match rel.as_slice() {
        [] => (
            name(&std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()))
                .unwrap_or_else(|| "node".into()),
            None,
        ),
        [node] => (node.clone(), None),
        [.., node, run] => (node.clone(), Some(run.clone())),
    }
}

/// Every `report.json` under `dir` (or `dir` itself when it is a file),
/// sorted; unreadable folders are listed as skipped.
fn find_reports(
    dir: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
    skipped: &mut Vec<(String, String)>,
) {
    if depth == 0 && dir.is_file() {
        out.push(dir.to_path_buf());
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            skipped.push((dir.display().to_string(), format!("cannot list it: {e}")));
            return;
        }
    };
    let mut subdirs = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            subdirs.push(p);
        } else if e.file_name() == "report.json" {
            out.push(p);
        }
    }
    if depth < MAX_DEPTH {
        subdirs.sort();
        for d in subdirs {
            find_reports(&d, depth + 1, out, skipped);
        }
    }
}

/// Reads every report under `dirs` into `fleet`, two at a time (rayon's pool),
/// each reduced to its summary before the next is read.
pub fn read_dirs(dirs: &[PathBuf], fleet: &mut FleetBuilder) -> Result<(), FleetError> {
    for dir in dirs {
        if !dir.exists() {
            return Err(FleetError::Io {
                what: "reading node reports from",
                path: dir.clone(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        find_reports(dir, 0, &mut files, &mut skipped);
        files.sort();
        let root = if dir.is_file() {
            dir.parent().unwrap_or(Path::new("."))
        } else {
            dir.as_path()
        };
        let read: Vec<Result<NodeSummary, (String, String)>> = files
            .par_iter()
            .map(|f| read_one(root, f).map_err(|reason| (f.display().to_string(), reason)))
            .collect();
        for (source, reason) in skipped {
            fleet.skip(source, reason);
        }
        for r in read {
            match r {
                Ok(n) => fleet.add(n),
                Err((source, reason)) => fleet.skip(source, reason),
            }
        }
        if files.is_empty() {
            fleet.skip(
                dir.display().to_string(),
                "no report.json in it (searched 4 folders deep)".into(),
            );
        }
    }
    Ok(())
}

/// Reads one JSON document per line from `input` into `fleet`: a run report
/// (`jq -c . report.json`) or a pod's summary line. Lines that are neither are
/// listed as skipped, as are lines longer than a report may be.
pub fn read_stream(input: impl BufRead, fleet: &mut FleetBuilder) -> Result<(), FleetError> {
    let mut input = input;
    let mut line = String::new();
    let mut number = 0usize;
    loop {
        line.clear();
        number += 1;
        let n = (&mut input)
            .take(crate::input::REPORT_MAX_BYTES + 1)
            .read_line(&mut line)
            .map_err(|source| FleetError::Io {
                what: "reading node reports from",
                path: PathBuf::from("standard input"),
                source,
            })?;
        if n == 0 {
            return Ok(());
        }
        let source = format!("stdin:{number}");
        if n as u64 > crate::input::REPORT_MAX_BYTES {
            fleet.skip(
                source,
                "a line longer than a report may be (256 MiB)".into(),
            );
            // The rest of that line is not a document either.
            let mut sink = Vec::new();
            input
                .read_until(b'\n', &mut sink)
                .map_err(|source| FleetError::Io {
                    what: "reading node reports from",
                    path: PathBuf::from("standard input"),
                    source,
                })?;
            continue;
        }
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let kind_line = format!("{{\"kind\":\"{NODE_LINE_KIND}\"");
        let parsed = if text.starts_with(&kind_line) {
            serde_json::from_str::<NodeLine>(text)
                .map_err(|e| format!("a malformed node summary line: {e}"))
                .and_then(|l| {
                    if l.schema_version == super::FLEET_SCHEMA_VERSION {
                        Ok(l.node)
                    } else {
                        Err(format!(
                            "node line schema_version {}; this build reads {}",
                            l.schema_version,
                            super::FLEET_SCHEMA_VERSION
                        ))
                    }
                })
        } else {
            node_summary(text, format!("stdin-{number}"), None, source.clone())
        };
        match parsed {
            Ok(mut n) => {
                if n.source.is_empty() {
                    n.source = source;
                }
                fleet.add(n)
            }
            Err(reason) => fleet.skip(source, reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_and_run_come_from_the_path() {
        let r = Path::new("/x/results");
        assert_eq!(
            node_of_path(r, Path::new("/x/results/n1/r1")),
            ("n1".into(), Some("r1".into()))
        );
        assert_eq!(
            node_of_path(r, Path::new("/x/results/n1")),
            ("n1".into(), None)
        );
    }

    #[test]
    fn foreign_documents_say_what_they_are() {
        let mut f = FleetBuilder::new();
        let lines = "{\"kind\":\"doctor\",\"schema_version\":1}\n[1,2]\n{\"tool\":{\"name\":\"fio\",\"version\":\"3\"}}\nnot json\n\n";
        read_stream(lines.as_bytes(), &mut f).expect("reads");
        let rep = f.finish();
        assert!(rep.nodes.is_empty());
        let reasons: Vec<&str> = rep.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(rep.skipped.len(), 4, "{reasons:?}");
        assert!(reasons[0].contains("\"doctor\" document"), "{reasons:?}");
        assert!(reasons[2].contains("another tool (fio)"), "{reasons:?}");
        assert!(reasons[3].contains("not valid JSON"), "{reasons:?}");
    }

    #[test]
    fn doctor_problems_are_its_failing_and_warning_checks() {
        let text = r#"{"kind":"doctor","checks":[{"name":"a","status":"pass","figure":"1"},{"name":"b","status":"fail","figure":"2"},{"name":"c","status":"warn","figure":"3"}]}"#;
        let p = doctor_problems(text).expect("parses");
        assert_eq!(
            p.iter().map(|p| p.check.as_str()).collect::<Vec<_>>(),
            vec!["b", "c"]
        );
        assert!(doctor_problems("{\"kind\":\"fleet\"}").is_err());
    }
}
