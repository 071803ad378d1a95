//! The `overlaybench` binary: parse, enter the private mount namespace before any
//! thread exists, lower the arguments into the library's configs, call `app`,
//! print, and map the error chain to an exit code.

mod cli;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use cli::{Cli, Command};
use overlaybench::app::{self, AppError};
use overlaybench::config::RunConfig;
use overlaybench::error::ErrorClass;
use overlaybench::isolate;
use overlaybench::report::RunStatus;

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

/// The exit-code class of the first typed error in the chain.
fn classify(err: &anyhow::Error) -> ErrorClass {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<AppError>().map(AppError::class))
        .unwrap_or(ErrorClass::Runtime)
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run(*args),
        Command::Report(args) => match app::report::report(&args.into_config())? {
            app::report::ReportOutcome::Export(text) => {
                println!("{text}");
                Ok(0)
            }
            app::report::ReportOutcome::Written(paths) => {
                for p in paths {
                    eprintln!("wrote {}", p.display());
                }
                Ok(0)
            }
        },
        Command::Plan(args) => {
            let cfg = app::plan::PlanConfig::try_from(args.into_request())?;
            // Measuring mounts: isolate first (no thread exists yet).
            let privilege = match cfg.from {
                Some(_) => None,
                None => Some(isolate::enter_private_namespace().map_err(AppError::from)?),
            };
            let outcome = app::plan::plan(&cfg, privilege)?;
            print!("{}", app::plan::text(&outcome.report));
            eprintln!("plan: {}", outcome.out.display());
            Ok(0)
        }
        Command::Doctor(args) => {
            let cfg = args.to_config();
            let privilege = (!cfg.no_probe).then(isolate::enter_private_namespace);
            let report = app::doctor::doctor(&cfg, privilege)?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report)
                        .context("serialising the doctor report")?
                );
            } else {
                print!("{}", overlaybench::doctor::render_text(&report));
            }
            Ok(0)
        }
        Command::Compare(args) => {
            let outcome = app::compare::compare(&args.into_config())?;
            for w in &outcome.warnings {
                eprintln!("warning: {w}");
            }
            if !outcome.written {
                println!("{}", outcome.text);
            }
            Ok(i32::from(outcome.failed))
        }
    }
}

fn run(args: cli::run::RunArgs) -> anyhow::Result<i32> {
    let cfg = RunConfig::try_from(args.into_request()).map_err(AppError::from)?;
    // Must precede every thread (progress bar, rayon, signal handler).
    let privilege = isolate::enter_private_namespace()
        .map_err(AppError::from)
        .context("isolating the run")?;
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
    let outcome = app::run::run(&cfg, privilege, &argv, &interrupted)?;
    print!("{}", app::run::terminal_summary(&outcome.report));
    eprintln!("report: {}", cfg.out_dir.display());
    for p in &outcome.written {
        eprintln!("  {}", p.display());
    }
    match (outcome.report.status, outcome.error) {
        (RunStatus::Complete, _) => Ok(0),
        (RunStatus::Interrupted, _) => {
            eprintln!("interrupted: the report is marked 'interrupted' and holds the cases finished before it");
            Ok(130)
        }
        (_, Some(e)) => Err(anyhow::Error::new(AppError::from(e)).context(format!(
            "the run failed; the partial report in {} is marked 'failed'",
            cfg.out_dir.display()
        ))),
        (_, None) => Ok(1),
    }
}
