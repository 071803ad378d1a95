//! Reading node reports for a merge: folders walked for `report.json` (with
//! the node's `doctor.json` and `fleet-node.json` beside it), or a stream of
//! one JSON document per line (`jq -c`, or the summary lines pods print, as
//! `kubectl logs` returns them). Each report is parsed without its raw
//! samples — the headlines need only each case's statistics — and reduced to a
//! `NodeSummary` at once.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::{FleetBuilder, FleetError, NodeProblem, NodeSummary};
use crate::host::HostInfo;
use crate::report::validate::{self, SampleSpan, UniqueIds};
use crate::report::{
    case_key, Case, Derived, HeadlineSource, Report, RunError, RunStatus, ToolInfo, SCHEMA_VERSION,
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

/// A case without its raw samples (their span is kept for the range check,
/// not the samples: the headlines read each case's statistics and params only).
#[derive(Deserialize)]
struct LightCase {
    #[serde(default)]
    id: String,
    workload: String,
    layout: String,
    params: BTreeMap<String, Value>,
    metric: String,
    unit: String,
    samples: SampleSpan,
    stats: Stats,
}

/// A run report as far as a fleet needs it: its cases and derived figures
/// are kept unparsed until their workload is known, and parsed only when a
/// section's headlines read them.
#[derive(Deserialize)]
struct LightReport<'a> {
    #[serde(borrow)]
    schema_version: &'a RawValue,
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

impl LightReport<'_> {
    /// The report the headlines read, after every case and derived figure was
    /// checked as `read_report` checks them (`report::validate`): a node
    /// report with negative samples or duplicate ids is skipped, not merged.
    fn into_report(self) -> Result<Report, String> {
        let (case_readers, derived_readers) = headline_readers();
        let mut ids = UniqueIds::default();
        let mut cases = Vec::new();
        for (i, raw) in self.cases.iter().enumerate() {
            let c: LightCase =
                serde_json::from_str(raw.get()).map_err(|e| format!("cases[{i}]: {e}"))?;
            let key = case_key(&c.workload, &c.layout, &c.metric, &c.params);
            let id = if c.id.is_empty() {
                key.clone()
            } else {
                c.id.clone()
            };
            validate::check_case_values(&id, &c.unit, &c.metric, &c.samples, &c.stats)?;
            ids.case(&c.id, key, &c.samples)?;
            if case_readers.contains(&c.workload.as_str()) {
                cases.push(Case {
                    id: String::new(),
                    workload: c.workload,
                    layout: c.layout,
                    params: c.params,
                    metric: c.metric,
                    unit: c.unit,
                    samples: Vec::new(),
                    stats: c.stats,
                });
            }
        }
        let mut derived = Vec::new();
        for (i, raw) in self.derived.iter().enumerate() {
            let d: LightDerived =
                serde_json::from_str(raw.get()).map_err(|e| format!("derived[{i}]: {e}"))?;
            let d = Derived {
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
            };
            ids.derived(&d)?;
            validate::check_derived_values(&d)?;
            if derived_readers.contains(&d.workload.as_str()) {
                derived.push(d);
            }
        }
        Ok(Report {
            schema_version: SCHEMA_VERSION,
            tool: self.tool,
            status: self.status,
            started_at: self.started_at,
            duration_s: self.duration_s,
            host: self.host,
            config: Value::Null,
            cases,
            derived,
            errors: self.errors,
            notes: Vec::new(),
            images: Vec::new(),
            claims: Vec::new(),
            conditions: self.conditions,
            skipped: Vec::new(),
            findings: None,
            // A fleet report keeps the nodes' figures, not their read sets.
            extras: Default::default(),
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

/// Only a document's version, as its raw text.
#[derive(Deserialize)]
struct VersionOf<'a> {
    #[serde(borrow, default)]
    schema_version: Option<&'a RawValue>,
}

/// Why a document is not a node report, naming what it looks like instead.
fn foreign(text: &str, err: &serde_json::Error) -> String {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return format!("not valid JSON: {err}");
    };
    let kind = v.get("kind").and_then(Value::as_str);
    let tool = v.pointer("/tool/name").and_then(Value::as_str);
    // The version as written: a 2^64 is named as given, never as a double.
    let version = serde_json::from_str::<VersionOf<'_>>(text)
        .ok()
        .and_then(|v| v.schema_version)
        .map(|r| validate::check_schema_version(Some(r.get())));
    match (kind, tool, version) {
        (Some(k), _, _) => format!("a \"{k}\" document, not a run report"),
        (None, Some(t), _) if t != env!("CARGO_PKG_NAME") => {
            format!("a report of another tool ({t})")
        }
        (None, Some(_), Some(Err(why))) => format!("report {why}"),
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
    validate::check_schema_version(Some(light.schema_version.get()))
        .map_err(|why| format!("report {why}"))?;
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

/// One line of input, as `next_line` read it.
enum Line {
    /// No more input.
    End,
    /// A line of at most the cap, in the buffer (with its newline, if any).
    Text,
    /// A line longer than the cap, of this many bytes: read and dropped.
    TooLong(u64),
}

/// Reads the next line into `buf`, keeping at most `cap` bytes: the rest of a
/// longer line is read chunk by chunk and dropped until its newline, so memory
/// never grows past the cap whatever the input (a 1.2 GB line without a
/// newline costs the cap, not 1.2 GB).
fn next_line(input: &mut impl BufRead, buf: &mut Vec<u8>, cap: usize) -> std::io::Result<Line> {
    buf.clear();
    let mut total = 0u64;
    let mut over = false;
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        let (take, ends) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        total += take as u64;
        if !over {
            if buf.len() + take > cap {
                over = true;
                // Give the memory back at once: the line is not a document.
                *buf = Vec::new();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        input.consume(take);
        if ends {
            break;
        }
    }
    Ok(match (total, over) {
        (0, _) => Line::End,
        (_, false) => Line::Text,
        (n, true) => Line::TooLong(n),
    })
}

/// Reads one JSON document per line from `input` into `fleet`: a run report
/// (`jq -c . report.json`) or a pod's summary line. Lines that are neither are
/// listed as skipped, as are lines longer than a report may be (read in
/// bounded memory) and lines that are not UTF-8.
pub fn read_stream(input: impl BufRead, fleet: &mut FleetBuilder) -> Result<(), FleetError> {
    read_stream_capped(input, fleet, crate::input::REPORT_MAX_BYTES as usize)
}

/// `read_stream` with a line cap of `cap` bytes.
fn read_stream_capped(
    input: impl BufRead,
    fleet: &mut FleetBuilder,
    cap: usize,
) -> Result<(), FleetError> {
    let mut input = input;
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        number += 1;
        let read = next_line(&mut input, &mut line, cap).map_err(|source| FleetError::Io {
            what: "reading node reports from",
            path: PathBuf::from("standard input"),
            source,
        })?;
        let source = format!("stdin:{number}");
        match read {
            Line::End => return Ok(()),
            Line::TooLong(n) => {
                fleet.skip(
                    source,
                    format!(
                        "a line of {n} bytes, longer than a report may be ({cap} bytes); not read"
                    ),
                );
                continue;
            }
            Line::Text => {}
        }
        let text = match std::str::from_utf8(&line) {
            Ok(t) => t.trim(),
            Err(e) => {
                fleet.skip(
                    source,
                    format!(
                        "not UTF-8 text (invalid byte at offset {} of the line)",
                        e.valid_up_to()
                    ),
                );
                continue;
            }
        };
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
    fn long_and_non_utf8_lines_are_skipped_and_the_rest_read() {
        let mut f = FleetBuilder::new();
        let mut input = vec![b'{'; 100];
        input.extend_from_slice(b"\n\xff\xfe\n[1]\n");
        input.extend(std::iter::repeat_n(b'x', 50));
        read_stream_capped(std::io::BufReader::with_capacity(8, &input[..]), &mut f, 64)
            .expect("reads");
        let rep = f.finish();
        let reasons: Vec<(&str, &str)> = rep
            .skipped
            .iter()
            .map(|s| (s.source.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert!(reasons[0].1.contains("a line of 101 bytes"), "{reasons:?}");
        assert!(reasons[1].1.contains("not UTF-8"), "{reasons:?}");
        assert_eq!(
            reasons[3].0, "stdin:4",
            "the last line, without a newline, is read"
        );
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
