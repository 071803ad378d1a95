//! Reports, generic: the JSON contract, the `Section` seam workloads render
//! through, tables and chart primitives, summary.md, report.html and the
//! terminal summary, exports for benchmark trackers, and atomic writes. Exporters are pure:
//! `&Report` in, bytes out; the caller writes files atomically. Nothing here
//! names a workload: the caller passes the sections.

pub mod chart;
pub mod claims;
pub mod export;
pub mod findings;
pub mod html;
pub mod layout_claims;
pub mod schema;
pub mod section;
pub mod summary;
pub mod table;
pub mod validate;
mod write;

pub use schema::{
    case_key, kinds, params_of, parse_params, Case, ClaimRecord, ClaimVerdict, ClaimsRun, Derived,
    Report, RunError, RunStatus, Skipped, ToolInfo, SCHEMA_VERSION,
};
pub use section::{Block, Headline, HeadlineSource, Section};
pub use table::{fmt_bytes, fmt_ns, fmt_ratio, Table};
pub use write::{
    mark_active_interrupted, parse_report, read_report, write_atomic, write_report_dir, OutDir,
};

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
    #[error("{}: {detail}", path.display())]
    SchemaVersion { path: PathBuf, detail: String },
    #[error("{} is refused: {detail}", path.display())]
    Invalid { path: PathBuf, detail: String },
    #[error("rendering {what}: {detail}")]
    Render { what: String, detail: String },
    #[error(transparent)]
    Input(#[from] crate::input::ReadError),
    /// A report folder could not be written; what was in it is removed, so
    /// nothing there claims to be a report (whole or running).
    #[error(
        "could not write the report in {}: {source}; its files were removed, so no report there \
         claims to be whole — free space or name another --out",
        dir.display()
    )]
    Unwritten {
        dir: PathBuf,
        source: Box<ReportError>,
    },
}

impl ReportError {
    /// Exit-code class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            ReportError::Parse { .. }
            | ReportError::SchemaVersion { .. }
            | ReportError::Invalid { .. } => ErrorClass::Usage,
            ReportError::Input(e) => e.class(),
            ReportError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorClass::Usage
            }
            _ => ErrorClass::Runtime,
        }
    }
}

/// A section's chart as an exporter.
struct ChartExporter {
    section: &'static (dyn Section + Sync),
    file_name: String,
    /// One of the section's further charts, not its main one.
    extra: bool,
}

impl Exporter for ChartExporter {
    fn file_name(&self) -> String {
        self.file_name.clone()
    }
    fn render(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        if self.extra {
            self.section.extra_chart(report, &self.file_name)
        } else {
            self.section.chart(report)
        }
    }
}

/// A section's text file (one of its `extra_file_names`) as an exporter.
struct TextExporter {
    section: &'static (dyn Section + Sync),
    file_name: String,
}

impl Exporter for TextExporter {
    fn file_name(&self) -> String {
        self.file_name.clone()
    }
    fn render(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        self.section.extra_file(report, &self.file_name)
    }
}

/// Every exporter that draws from a report: summary.md and report.html, plus
/// the chart of each section whose workload has cases in it (in workload-name
/// order).
pub fn exporters_for(
    report: &Report,
    sections: &[&'static (dyn Section + Sync)],
) -> Vec<Box<dyn Exporter>> {
    let mut out: Vec<Box<dyn Exporter>> = vec![
        Box::new(summary::SummaryMarkdown {
            sections: sections.to_vec(),
        }),
        Box::new(html::HtmlReport {
            sections: sections.to_vec(),
        }),
    ];
    let mut present: Vec<&'static (dyn Section + Sync)> = sections
        .iter()
        .copied()
        .filter(|s| report.cases.iter().any(|c| c.workload == s.workload()))
        .collect();
    present.sort_by_key(|s| s.workload());
    for section in present {
        if let Some(file_name) = section.chart_name().filter(|_| section.has_chart(report)) {
            out.push(Box::new(ChartExporter {
                section,
                file_name,
                extra: false,
            }));
        }
        for file_name in section.extra_chart_names(report) {
            out.push(Box::new(ChartExporter {
                section,
                file_name,
                extra: true,
            }));
        }
        for file_name in section.extra_file_names(report) {
            out.push(Box::new(TextExporter { section, file_name }));
        }
    }
    out
}
