//! `overlaybench compare`: the CI gate between two reports, with every known
//! workload's gate rules from the registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::AppError;
use crate::compare::format::{render, CompareFormat};
use crate::compare::{
    self as cmp, CompareOptions, FigureSet, MissingPolicy, NoisyPolicy, WorkloadRules,
};
use crate::input::canonical_for_creation;
use crate::report::{self, RunStatus};

fn status_name(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Running => "running",
        RunStatus::Complete => "complete",
        RunStatus::Interrupted => "interrupted",
        RunStatus::Failed => "failed",
    }
}
use crate::workload;

/// What the user asked `compare` for.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// The baseline report (report.json or its folder).
    pub baseline: PathBuf,
    /// The current report.
    pub current: PathBuf,
    /// One threshold for every figure.
    pub threshold: Option<f64>,
    /// Per-workload thresholds.
    pub workload_thresholds: Vec<(String, f64)>,
    /// A gate file.
    pub gate_file: Option<PathBuf>,
    /// Which figures are gated.
    pub figures: FigureSet,
    /// Missing figures.
    pub missing: Option<MissingPolicy>,
    /// Params left out when matching.
    pub ignore_params: Vec<String>,
    /// Output format.
    pub format: CompareFormat,
    /// Write the output here instead of returning it for stdout.
    pub output: Option<PathBuf>,
    /// Bootstrap resamples per figure (100 to 100000).
    pub resamples: usize,
    /// Accept a current report that is not complete.
    pub allow_partial: bool,
    /// What a report too noisy to gate on does.
    pub noisy: NoisyPolicy,
    /// Text and markdown list every gated figure, not only the changed and
    /// near-threshold ones.
    pub all: bool,
}

/// The outcome of a comparison.
#[derive(Debug)]
pub struct CompareOutcome {
    /// The rendered comparison (also written to `output` when given).
    pub text: String,
    /// Whether the gate fails.
    pub failed: bool,
    /// Warnings for stderr (partial reports).
    pub warnings: Vec<String>,
    /// Whether `text` went to the output file (else it is for stdout).
    pub written: bool,
    /// Whether the verdict was withheld: a report too noisy, `--noisy fail`.
    pub withheld: bool,
}

/// Every registered workload's gate rules, by name.
pub fn registry_rules() -> BTreeMap<String, WorkloadRules> {
    workload::WORKLOADS
        .iter()
        .map(|w| {
            (
                w.name.to_string(),
                WorkloadRules {
                    config_key: w.config_key,
                    rules: w.gate,
                },
            )
        })
        .collect()
}

/// Fewest and most bootstrap resamples: below, the interval is noise; above,
/// the time and memory grow with no gain in the verdict.
pub const RESAMPLES: std::ops::RangeInclusive<usize> = 100..=100_000;

/// Refuses workload names the registry does not know (a typo would silently
/// drop a threshold), listing the known ones.
fn check_workload_names<'a>(
    names: impl Iterator<Item = &'a String>,
    rules: &BTreeMap<String, WorkloadRules>,
    whence: &str,
) -> Result<(), AppError> {
    for n in names {
        if !rules.contains_key(n) {
            let known: Vec<&str> = rules.keys().map(String::as_str).collect();
            return Err(AppError::Usage(format!(
                "unknown workload '{n}' in {whence}; known workloads: {}",
                known.join(", ")
            )));
        }
    }
    Ok(())
}

/// Compares the two reports of `cfg`.
pub fn compare(cfg: &CompareConfig) -> Result<CompareOutcome, AppError> {
    if !RESAMPLES.contains(&cfg.resamples) {
        return Err(AppError::Usage(format!(
            "--resamples {} is out of range: use {} to {}",
            cfg.resamples,
            RESAMPLES.start(),
            RESAMPLES.end()
        )));
    }
    let output = match &cfg.output {
        Some(p) => {
            let p = canonical_for_creation("--output", p)?;
            if p.exists() && !p.is_file() {
                return Err(AppError::Usage(format!(
                    "--output {} exists and is not a regular file; name a file to write",
                    p.display()
                )));
            }
            if !p.parent().is_some_and(Path::is_dir) {
                return Err(AppError::Usage(format!(
                    "--output {}: its folder does not exist; make it first",
                    p.display()
                )));
            }
            Some(p)
        }
        None => None,
    };
    let gate = match &cfg.gate_file {
        Some(p) => cmp::gate::read(p).map_err(AppError::Usage)?,
        None => cmp::gate::GateFile::default(),
    };
    let rules = registry_rules();
    check_workload_names(
        cfg.workload_thresholds.iter().map(|(w, _)| w),
        &rules,
        "--workload-threshold",
    )?;
    check_workload_names(gate.workloads.keys(), &rules, "the gate file's [workloads]")?;
    // Built-in per-workload defaults, unless one threshold is given for everything;
    // then the gate file's and the command line's per-workload values.
    let global = cfg.threshold.or(gate.threshold.map(|t| t.0));
    let mut per_workload = if global.is_some() {
        BTreeMap::new()
    } else {
        cmp::default_thresholds(&rules)
    };
    per_workload.extend(gate.workloads.iter().map(|(k, v)| (k.clone(), v.0)));
    per_workload.extend(cfg.workload_thresholds.iter().cloned());
    let opts = CompareOptions {
        threshold: global.unwrap_or(0.10),
        per_workload,
        figures: cfg.figures,
        missing: cfg.missing.or(gate.missing).unwrap_or(MissingPolicy::Fail),
        ignore_params: cfg.ignore_params.clone(),
        resamples: cfg.resamples,
        rules,
        noisy: cfg.noisy,
    };
    let baseline = report::read_report(&cfg.baseline)?;
    let current = report::read_report(&cfg.current)?;
    // Bad input (exit 2), like reports run with different parameters: the
    // host running compare lacks nothing; the report cannot be gated anywhere.
    cmp::gateable(&cfg.baseline.display().to_string(), &baseline)?;
    cmp::gateable(&cfg.current.display().to_string(), &current)?;
    if current.status != RunStatus::Complete && !cfg.allow_partial {
        return Err(AppError::Usage(format!(
            "{} is not a complete run (status {}); a partial run cannot pass the gate — rerun it, or pass \
             --allow-partial to compare its finished cases",
            cfg.current.display(),
            status_name(current.status)
        )));
    }
    let mut warnings = Vec::new();
    for (name, r) in [(&cfg.baseline, &baseline), (&cfg.current, &current)] {
        if r.status != RunStatus::Complete {
            warnings.push(format!(
                "{} is not a complete run (status {}); only its finished cases are compared",
                name.display(),
                status_name(r.status)
            ));
        }
    }
    let names = (
        cfg.baseline.display().to_string(),
        cfg.current.display().to_string(),
    );
    let mut result = cmp::compare(&baseline, &current, (&names.0, &names.1), &opts)?;
    // Both reports' findings by today's rules (a stored section may come from an
    // older engine), so a change is in the figures, not in the rules.
    result.findings_changed = cmp::findings::changes(
        &crate::workload::findings_of(&baseline),
        &crate::workload::findings_of(&current),
    );
    let text = render(&result, cfg.format, cfg.all);
    if cfg.output.is_some() {
        // The file holds the reasons; stderr still says why there is no verdict.
        warnings.extend(
            result
                .noisy
                .iter()
                .map(|n| format!("too noisy to gate on: {n}")),
        );
    }
    if let Some(p) = &output {
        report::write_atomic(p, text.as_bytes())?;
    }
    Ok(CompareOutcome {
        text,
        failed: result.failed(),
        withheld: result.withheld(),
        warnings,
        written: cfg.output.is_some(),
    })
}
