//! `overlaybench compare` arguments, lowered into a `CompareConfig`.

use std::path::PathBuf;

use clap::Args;

use overlaybench::app::compare::{self, CompareConfig};
use overlaybench::compare::format::CompareFormat;
use overlaybench::compare::gate::parse_threshold;
use overlaybench::compare::{FigureSet, MissingPolicy, NoisyPolicy};

use super::choice;

/// `overlaybench compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The baseline report (report.json or its folder).
    pub baseline: PathBuf,
    /// The current report.
    pub current: PathBuf,
    /// Relative change tolerated, for every figure (e.g. 10%) [built in: each
    /// workload's own, from its measured run-to-run noise].
    #[arg(allow_negative_numbers = true, long, value_parser = parse_threshold)]
    pub threshold: Option<f64>,
    /// Per-workload threshold, WORKLOAD=PCT (repeatable), e.g. lookup=15%.
    #[arg(allow_negative_numbers = true, long = "workload-threshold", value_parser = parse_workload_threshold)]
    pub workload_thresholds: Vec<(String, f64)>,
    /// A gate file (TOML: threshold, missing, [workloads]); options given here win.
    #[arg(long)]
    pub gate_file: Option<PathBuf>,
    /// Which figures are gated.
    #[arg(long, value_parser = choice::<FigureSet>(), default_value = "derived")]
    pub figures: FigureSet,
    /// What a figure present in one report only does [fail].
    #[arg(long, value_parser = choice::<MissingPolicy>())]
    pub missing: Option<MissingPolicy>,
    /// Leave a parameter out when matching figures (e.g. backing, to compare ext4 with xfs).
    #[arg(long = "ignore-param")]
    pub ignore_params: Vec<String>,
    /// Output format.
    #[arg(long, value_parser = choice::<CompareFormat>(), default_value = "text")]
    pub format: CompareFormat,
    /// Write the output to this file instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Bootstrap resamples per figure (100 to 100000).
    #[arg(allow_negative_numbers = true, long, default_value_t = 1000)]
    pub resamples: usize,
    /// Compare a current report that is not complete (interrupted, failed or
    /// still running) instead of refusing it; only its finished cases count.
    #[arg(long)]
    pub allow_partial: bool,
    /// A report measured on a machine too busy to gate on (CPU pressure, steal
    /// or memory pressure past the limits in docs/ci-gate.md): `fail` withholds
    /// the verdict and exits 4 so CI can rerun; `warn` judges anyway
    #[arg(long, value_parser = choice::<NoisyPolicy>(), default_value = "fail")]
    pub noisy: NoisyPolicy,
    /// Text and markdown: list every gated figure, not only the ones that
    /// changed or came near their threshold
    #[arg(long)]
    pub all: bool,
}

fn parse_workload_threshold(s: &str) -> Result<(String, f64), String> {
    let (w, t) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}': use WORKLOAD=PCT, e.g. lookup=15%"))?;
    Ok((w.to_string(), parse_threshold(t)?))
}

impl CompareArgs {
    /// The library's config.
    pub fn into_config(self) -> CompareConfig {
        CompareConfig {
            baseline: self.baseline,
            current: self.current,
            threshold: self.threshold,
            workload_thresholds: self.workload_thresholds,
            gate_file: self.gate_file,
            figures: self.figures,
            missing: self.missing,
            ignore_params: self.ignore_params,
            format: self.format,
            output: self.output,
            resamples: self.resamples,
            allow_partial: self.allow_partial,
            noisy: self.noisy,
            all: self.all,
        }
    }
}

/// Exit code when a report was too noisy to judge (`--noisy fail`).
pub const EXIT_NOISY: i32 = 4;

/// Compares two reports; exit 1 when the gate fails, 4 when a report was too
/// noisy to judge.
pub fn execute(args: CompareArgs) -> anyhow::Result<i32> {
    let outcome = compare::compare(&args.into_config())?;
    for w in &outcome.warnings {
        super::out::err_line(&format!("warning: {w}"));
    }
    if !outcome.written {
        super::out::stdout(&format!("{}\n", outcome.text))?;
    }
    Ok(if outcome.withheld {
        EXIT_NOISY
    } else {
        i32::from(outcome.failed)
    })
}
