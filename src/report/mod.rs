//! Reports: the JSON contract, and exporters that render it (SVG charts,
//! summary.md, terminal table). Exporters are pure: `&Report` in, bytes out; the
//! caller writes files atomically.

pub mod export;
pub mod plan;
pub mod schema;
pub mod summary;
pub mod svg;
pub mod table;
mod write;

pub use schema::{case_key, Case, Derived, Report, RunError, RunStatus, ToolInfo, SCHEMA_VERSION};
pub use write::{read_report, write_atomic, write_report_dir};

use std::path::PathBuf;

use crate::error::ErrorClass;

/// Something that renders a report to a file's bytes.
pub trait Exporter {
    /// File name in the report folder (`summary.md`, `lookup.svg`).
    fn file_name(&self) -> String;
    /// The file's content.
    fn render(&self, report: &Report) -> Result<Vec<u8>, ReportError>;
}

/// Failures reading, rendering or writing reports.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid report: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{} has schema_version {found}; this build reads version {expected}", path.display())]
    SchemaVersion {
        path: PathBuf,
        found: u64,
        expected: u32,
    },
    #[error("rendering {what}: {detail}")]
    Render { what: String, detail: String },
}

impl ReportError {
    /// Exit-code class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            ReportError::Parse { .. } | ReportError::SchemaVersion { .. } => ErrorClass::Usage,
            ReportError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorClass::Usage
            }
            _ => ErrorClass::Runtime,
        }
    }
}

/// Every exporter that draws from a report: summary plus one chart per workload present.
pub fn exporters_for(report: &Report) -> Vec<Box<dyn Exporter>> {
    let mut out: Vec<Box<dyn Exporter>> = vec![Box::new(summary::SummaryMarkdown)];
    let mut workloads: Vec<&str> = report.cases.iter().map(|c| c.workload.as_str()).collect();
    workloads.sort_unstable();
    workloads.dedup();
    for w in workloads {
        if let Some(chart) = svg::chart_for(w) {
            out.push(chart);
        }
    }
    out
}
