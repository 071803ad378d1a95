//! The seam between the generic report and the workloads: each workload renders
//! its own cases as a `Section` (titled blocks of tables, and a chart); summary.md,
//! the terminal summary and the HTML page compose sections without knowing whose
//! they are.

use super::table::Table;
use super::{Report, ReportError};

/// One titled part of a summary: a heading, an intro paragraph, and tables, each
/// with an optional caption printed above it.
#[derive(Debug, Clone, Default)]
pub struct Block {
    /// The heading (markdown `##`).
    pub heading: String,
    /// What the tables mean; empty for terminal blocks.
    pub intro: String,
    /// Tables in order, each with an optional caption.
    pub tables: Vec<(Option<String>, Table)>,
}

/// One figure a section puts forward for comparing layouts side by side: the
/// same `figure` text for every layout and backing it was measured on, so the
/// summary can set them against each other (claims checked on this host)
/// without knowing whose figure it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Headline {
    /// What it is, with its conditions (`copy-up: first write to a 64 MiB file, cold`).
    pub figure: String,
    /// The layout measured.
    pub layout: String,
    /// The backing it was measured on.
    pub backing: String,
    /// The value, in `unit`.
    pub value: f64,
    /// Unit of `value` (`ns`, `x`), so a fleet of them can be summarised and printed.
    pub unit: &'static str,
    /// The value as the section prints it.
    pub shown: String,
    /// Lower values are better (times); else higher (sharing factors).
    pub lower_is_better: bool,
}

/// What a section's headlines are computed from, so a reader that wants only
/// the headlines of many reports (a fleet merge) parses nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadlineSource {
    /// It has no headlines.
    Nothing,
    /// Its cases (their statistics and params; never raw samples).
    Cases,
    /// Its derived figures (values and params).
    Derived,
}

/// What a workload contributes to every rendering of a report.
pub trait Section {
    /// The workload whose cases it renders (`Case::workload`).
    fn workload(&self) -> &'static str;
    /// Blocks of summary.md and the HTML report, in order (one per backing, typically).
    fn blocks(&self, report: &Report) -> Vec<Block>;
    /// Compact blocks printed in the terminal at the end of a run.
    fn terminal_blocks(&self, report: &Report) -> Vec<Block>;
    /// File name of its chart, if it draws one (`lookup.svg`).
    fn chart_name(&self) -> Option<String>;
    /// Whether this report holds what its main chart draws (a run of the
    /// user's images only has no synthetic cases to chart); yes by default.
    fn has_chart(&self, _report: &Report) -> bool {
        true
    }
    /// Its chart, as SVG bytes.
    fn chart(&self, report: &Report) -> Result<Vec<u8>, ReportError>;
    /// File names of further charts this report holds figures for (e.g. of
    /// the user's images); none by default.
    fn extra_chart_names(&self, _report: &Report) -> Vec<String> {
        Vec::new()
    }
    /// The further chart `name` (one of `extra_chart_names`), as SVG bytes.
    fn extra_chart(&self, _report: &Report, name: &str) -> Result<Vec<u8>, ReportError> {
        Err(ReportError::Render {
            what: name.to_string(),
            detail: "no such chart".into(),
        })
    }
    /// File names of text files this report holds the data of (e.g. app's
    /// `app-readset.txt`); none by default. Each must end in `.txt`.
    fn extra_file_names(&self, _report: &Report) -> Vec<String> {
        Vec::new()
    }
    /// The text file `name` (one of `extra_file_names`).
    fn extra_file(&self, _report: &Report, name: &str) -> Result<Vec<u8>, ReportError> {
        Err(ReportError::Render {
            what: name.to_string(),
            detail: "no such file".into(),
        })
    }
    /// Its headline figures, one per layout and backing measured (none by default).
    fn headlines(&self, _report: &Report) -> Vec<Headline> {
        Vec::new()
    }
    /// What `headlines` reads (nothing by default); it must read nothing else.
    fn headline_source(&self) -> HeadlineSource {
        HeadlineSource::Nothing
    }
}
