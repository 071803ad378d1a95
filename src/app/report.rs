//! `overlaybench report`: re-render a report's files from its report.json, or
//! export it for a benchmark tracker.

use std::path::{Path, PathBuf};

use super::AppError;
use crate::report::export::{self, ExportFormat};
use crate::report::{self, Derived};
use crate::workload;

/// What the user asked `report` for.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// A report folder or its report.json.
    pub path: PathBuf,
    /// Where to write rendered files (default: next to report.json).
    pub out: Option<PathBuf>,
    /// What to produce.
    pub format: ExportFormat,
}

/// What `report` produced.
#[derive(Debug)]
pub enum ReportOutcome {
    /// Files written.
    Written(Vec<PathBuf>),
    /// An export for stdout.
    Export(String),
}

/// Whether a larger value of `d` is better, by its workload's gate rules.
pub fn higher_is_better(d: &Derived) -> bool {
    workload::entry(&d.workload).is_some_and(|w| w.gate.higher_is_better(d))
}

/// Re-renders or exports the report of `cfg`.
pub fn report(cfg: &ReportConfig) -> Result<ReportOutcome, AppError> {
    let mut r = report::read_report(&cfg.path)?;
    let export = |v: serde_json::Value| {
        serde_json::to_string_pretty(&v).map_err(|e| {
            AppError::Report(report::ReportError::Render {
                what: "export".into(),
                detail: e.to_string(),
            })
        })
    };
    match cfg.format {
        ExportFormat::Bmf => return Ok(ReportOutcome::Export(export(export::bmf(&r))?)),
        ExportFormat::GithubActionBenchmark => {
            return Ok(ReportOutcome::Export(export(
                export::github_action_benchmark(&r, &higher_is_better),
            )?))
        }
        ExportFormat::Files => {}
    }
    // Recomputed from the cases, whatever the file holds: a stored section
    // is this build's words only if this build wrote it, and a forged one
    // must not reach the page.
    r.findings = Some(workload::findings_of(&r));
    let path = crate::input::canonical_existing("report", &cfg.path)?;
    let out = match &cfg.out {
        Some(o) => {
            let o = crate::input::canonical_for_creation("--out", o)?;
            if o.exists() && !o.is_dir() {
                return Err(AppError::Usage(format!(
                    "--out {} is a file; name a directory for the rendered files",
                    o.display()
                )));
            }
            o
        }
        None if path.is_dir() => path.clone(),
        None => path.parent().unwrap_or(Path::new("/")).to_path_buf(),
    };
    std::fs::create_dir_all(&out).map_err(AppError::io("creating", &out))?;
    let mut written = Vec::new();
    for exporter in report::exporters_for(&r, &workload::sections()) {
        let path = out.join(exporter.file_name());
        report::write_atomic(&path, &exporter.render(&r)?)?;
        written.push(path);
    }
    Ok(ReportOutcome::Written(written))
}
