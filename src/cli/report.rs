//! `overlaybench report` arguments, lowered into a `ReportConfig`.

use std::path::PathBuf;

use clap::Args;

use overlaybench::app::report::{self, ReportConfig, ReportOutcome};
use overlaybench::report::export::ExportFormat;

use super::choice;

/// `overlaybench report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// A report folder or its report.json.
    pub path: PathBuf,
    /// Where to write the rendered files [default: next to report.json].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// What to produce.
    #[arg(long, value_parser = choice::<ExportFormat>(), default_value = "files")]
    pub format: ExportFormat,
}

impl ReportArgs {
    /// The library's config.
    pub fn into_config(self) -> ReportConfig {
        ReportConfig {
            path: self.path,
            out: self.out,
            format: self.format,
        }
    }
}

/// Re-renders or exports a report.
pub fn execute(args: ReportArgs) -> anyhow::Result<i32> {
    match report::report(&args.into_config())? {
        ReportOutcome::Export(text) => super::out::stdout(&format!("{text}\n"))?,
        ReportOutcome::Written(paths) => {
            for p in paths {
                super::out::err_line(&format!("wrote {}", p.display()));
            }
        }
    }
    Ok(0)
}
