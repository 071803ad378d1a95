//! The `overlaybench` binary: parse, enter the private mount namespace before any
//! thread exists, dispatch, print the error chain and map it to an exit code.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use overlaybench::cli::{Cli, Command, ReportArgs, RunArgs};
use overlaybench::error::classify;
use overlaybench::plan::RunPlan;
use overlaybench::report::{self, summary, RunStatus};
use overlaybench::{isolate, runner};

fn main() {
    let cli = Cli::parse();
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            classify(&err).exit_code()
        }
    };
    std::process::exit(code);
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run(&args),
        Command::Report(args) => rerender(&args),
    }
}

fn run(args: &RunArgs) -> anyhow::Result<i32> {
    let plan = RunPlan::try_from(args)?;
    // Must precede every thread (progress bar, rayon, signal handler).
    let privilege = isolate::enter_private_namespace().context("isolating the run")?;
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            // Second Ctrl-C: leave now; the kernel tears our namespace down.
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupted: finishing the current step, cleaning up, writing a partial report…"
        );
    })
    .context("installing the Ctrl-C handler")?;
    let argv: Vec<String> = std::env::args().collect();
    let outcome = runner::run(&plan, privilege, &argv, &interrupted)?;
    print!("{}", summary::terminal(&outcome.report));
    eprintln!("report: {}", plan.out_dir.display());
    for p in &outcome.written {
        eprintln!("  {}", p.display());
    }
    match (outcome.report.status, outcome.error) {
        (RunStatus::Complete, _) => Ok(0),
        (RunStatus::Interrupted, _) => {
            eprintln!("interrupted: the report is marked 'interrupted' and holds the cases finished before it");
            Ok(130)
        }
        (_, Some(e)) => Err(anyhow::Error::new(e).context(format!(
            "the run failed; the partial report in {} is marked 'failed'",
            plan.out_dir.display()
        ))),
        (_, None) => Ok(1),
    }
}

fn rerender(args: &ReportArgs) -> anyhow::Result<i32> {
    let report = report::read_report(&args.path)?;
    let out = match &args.out {
        Some(o) => o.clone(),
        None if args.path.is_dir() => args.path.clone(),
        None => args.path.parent().unwrap_or(Path::new(".")).to_path_buf(),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for exporter in report::exporters_for(&report) {
        let path = out.join(exporter.file_name());
        report::write_atomic(&path, &exporter.render(&report)?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(0)
}
