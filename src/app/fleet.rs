//! `fleet`: the Kubernetes manifests, a node's part of a fleet run (its
//! summary line, node file and textfile beside the report), the merge of many
//! node reports into one fleet report, and the fleet-wide gate.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::AppError;
use crate::fleet::compare::{self as fleet_compare, FleetComparison};
use crate::fleet::manifest::{self, ManifestConfig};
use crate::fleet::read::{NodeFile, NodeLine, DOCTOR_FILE, NODE_FILE};
use crate::fleet::{render, FleetBuilder, FleetError, FleetReport, Input, NodeSummary};
use crate::report::write_atomic;

/// The manifests, as YAML.
pub fn manifest(cfg: &ManifestConfig) -> Result<String, AppError> {
    Ok(manifest::render(cfg)?)
}

/// What `fleet merge` is asked for.
#[derive(Debug, Clone)]
pub struct MergeConfig {
    /// Where the node reports come from.
    pub input: Input,
    /// Folder for fleet.json, fleet.html, fleet.svg and summary.md (made if absent).
    pub out: PathBuf,
}

/// A merge's result: the fleet report and the files written.
#[derive(Debug)]
pub struct MergeOutcome {
    /// The fleet report.
    pub fleet: FleetReport,
    /// Files written, in order.
    pub written: Vec<PathBuf>,
}

/// Merges node reports, reading them one at a time, and writes the fleet
/// report's files. Inputs that cannot be read are listed in the report; no
/// node at all is bad input (exit 2).
pub fn merge(cfg: &MergeConfig, stdin: impl BufRead) -> Result<MergeOutcome, AppError> {
    let mut b = FleetBuilder::new();
    match &cfg.input {
        Input::Dirs(dirs) => crate::fleet::read_dirs(dirs, &mut b)?,
        Input::Stdin => crate::fleet::read_stream(stdin, &mut b)?,
    }
    let what = match &cfg.input {
        Input::Dirs(d) => d
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        Input::Stdin => "standard input".into(),
    };
    let empty = b.is_empty();
    let fleet = b.finish();
    if empty {
        let why: Vec<String> = fleet
            .skipped
            .iter()
            .take(10)
            .map(|s| format!("{}: {}", s.source, s.reason))
            .collect();
        return Err(FleetError::Empty(format!("{what} ({})", why.join("; "))).into());
    }
    std::fs::create_dir_all(&cfg.out)
        .map_err(AppError::io("creating the fleet report folder", &cfg.out))?;
    let json = serde_json::to_vec_pretty(&fleet).map_err(|e| FleetError::Render {
        what: "fleet.json".into(),
        detail: e.to_string(),
    })?;
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("fleet.json", json),
        ("summary.md", render::summary_markdown(&fleet).into_bytes()),
        ("fleet.svg", render::svg(&fleet).into_bytes()),
        ("fleet.html", render::html(&fleet)?.into_bytes()),
    ];
    let mut written = Vec::new();
    for (name, bytes) in files {
        let p = cfg.out.join(name);
        write_atomic(&p, &bytes)?;
        written.push(p);
    }
    Ok(MergeOutcome { fleet, written })
}

/// Compares two fleet reports (files or their folders).
pub fn compare(
    baseline: &Path,
    current: &Path,
    threshold: Option<f64>,
    resamples: usize,
) -> Result<FleetComparison, AppError> {
    if !super::compare::RESAMPLES.contains(&resamples) {
        return Err(AppError::Usage(format!(
            "--resamples {resamples} is out of range: use {} to {}",
            super::compare::RESAMPLES.start(),
            super::compare::RESAMPLES.end()
        )));
    }
    let b = crate::fleet::read_fleet(baseline)?;
    let c = crate::fleet::read_fleet(current)?;
    Ok(fleet_compare::compare(&b, &c, threshold, resamples))
}

/// After a node's run wrote `dir`: its node file, its summary (with the
/// doctor's problems when `doctor.json` is there) and, with `prom_dir`, the
/// textfile `overlaybench.prom` there. Returns the summary line to print.
pub fn node_finish(
    dir: &Path,
    node: &str,
    run_id: &str,
    prom_dir: Option<&Path>,
) -> Result<String, AppError> {
    let node_file = NodeFile {
        node: node.into(),
        run_id: run_id.into(),
    };
    let render_err = |what: &str| {
        let what = what.to_string();
        move |e: serde_json::Error| {
            AppError::from(FleetError::Render {
                what: what.clone(),
                detail: e.to_string(),
            })
        }
    };
    let bytes = serde_json::to_vec(&node_file).map_err(render_err(NODE_FILE))?;
    write_atomic(&dir.join(NODE_FILE), &bytes)?;
    let report = dir.join("report.json");
    let text = crate::input::read_text(
        &report,
        crate::input::REPORT_MAX_BYTES,
        "the node's report",
        crate::input::Follow::NoSymlinks,
    )?;
    let mut summary: NodeSummary = crate::fleet::node_summary(
        &text,
        node.into(),
        Some(run_id.into()),
        format!("{node}/{run_id}"),
    )
    .map_err(|reason| FleetError::Invalid {
        what: report.display().to_string(),
        detail: reason,
    })?;
    let doctor = dir.join(DOCTOR_FILE);
    if doctor.exists() {
        let text = crate::input::read_text(
            &doctor,
            crate::input::REPORT_MAX_BYTES,
            "the node's doctor report",
            crate::input::Follow::NoSymlinks,
        )?;
        if let Ok(p) = crate::fleet::read::doctor_problems(&text) {
            summary.problems = p;
            summary.doctor_read = true;
        }
    }
    if let Some(prom) = prom_dir {
        std::fs::create_dir_all(prom)
            .map_err(AppError::io("creating the textfile folder", prom))?;
        write_atomic(
            &prom.join("overlaybench.prom"),
            crate::fleet::prom::textfile(&summary).as_bytes(),
        )?;
    }
    serde_json::to_string(&NodeLine::new(summary)).map_err(render_err("the summary line"))
}
