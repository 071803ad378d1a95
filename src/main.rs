//! The `overlaybench` binary: parse, enter the private mount namespace before any
//! thread exists, dispatch, print the error chain and map it to an exit code.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use overlaybench::capacity::{self, PlanReport};
use overlaybench::cli::{Cli, Command, CompareArgs, DoctorArgs, PlanArgs, ReportArgs, RunArgs};
use overlaybench::doctor;
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
        Command::Plan(args) => plan(&args),
        Command::Doctor(args) => doctor(&args),
        Command::Compare(args) => compare(&args),
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

fn plan(args: &PlanArgs) -> anyhow::Result<i32> {
    let fleet = capacity::fleet_from(args)?;
    let backing: overlaybench::isolate::BackingKind = args
        .backing
        .parse()
        .map_err(overlaybench::plan::PlanError::Invalid)?;
    let filesystem = match (&args.path, args.fs_size) {
        (Some(p), _) => capacity::filesystem_at(p)
            .with_context(|| format!("reading free space of {}", p.display()))?,
        (None, Some(size)) => {
            let mut fs = capacity::ext4_defaults(size);
            if let Some(n) = args.fs_inodes {
                fs.available_inodes = n;
                fs.source = format!("{size} bytes, {n} inodes (given)");
            }
            fs
        }
        (None, None) => anyhow::bail!(overlaybench::plan::PlanError::Invalid(
            "give --path or --fs-size".into()
        )),
    };
    let out = args.out.clone().unwrap_or_else(|| {
        Path::new("reports").join(format!(
            "plan-{}",
            overlaybench::plan::utc_stamp(std::time::SystemTime::now())
        ))
    });
    let (costs, costs_source) = match &args.from {
        Some(from) => {
            let report = report::read_report(from)?;
            let costs = capacity::costs_from_report(&report, &fleet, &backing.to_string())?;
            (costs, format!("inodes results in {}", from.display()))
        }
        None => {
            let privilege =
                isolate::enter_private_namespace().context("isolating the measurement")?;
            let config = overlaybench::layout::LayoutConfig {
                mount_api: if isolate::new_api_available() {
                    isolate::MountApi::New
                } else {
                    isolate::MountApi::Classic
                },
                options: Vec::new(),
                privilege,
            };
            let layouts: Vec<_> = args
                .layouts
                .iter()
                .map(|&k| overlaybench::layout::create(k, &config))
                .collect();
            let m = capacity::measurement_plan(&fleet, args.seed);
            eprintln!(
                "measuring per-unit costs on a fresh {backing} per layout (2 images of {} layers)…",
                fleet.layers
            );
            let request = isolate::ScratchRequest {
                root: args.scratch.clone(),
                kind: backing.clone(),
                planned_bytes: 0,
                fs_size_bytes: 0,
                inodes: None,
            };
            let costs = overlaybench::workload::inodes::measure_costs(&m, &layouts, &request)?;
            (
                costs,
                format!("measured now: 2 images of this shape on a fresh {backing} per layout"),
            )
        }
    };
    let report = PlanReport {
        schema_version: 1,
        kind: "plan".into(),
        layouts: capacity::project(&fleet, &filesystem, &costs),
        fleet,
        filesystem,
        costs_source,
        costs_backing: backing.to_string(),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let json = serde_json::to_vec_pretty(&report).context("serialising plan.json")?;
    report::write_atomic(&out.join("plan.json"), &json)?;
    report::write_atomic(&out.join("plan.svg"), &report::plan::plan_svg(&report)?)?;
    println!(
        "{} images × {} layers ({}% shared), {} containers each, on {} ({} inodes, {} free)",
        report.fleet.images,
        report.fleet.layers,
        report.fleet.shared_pct,
        report.fleet.containers,
        report.filesystem.source,
        report.filesystem.available_inodes,
        report::summary::fmt_bytes(report.filesystem.available_bytes as f64)
    );
    println!("costs: {}", report.costs_source);
    print!("{}", report::plan::plan_table(&report).to_text());
    eprintln!("plan: {}", out.display());
    Ok(0)
}

fn doctor(args: &DoctorArgs) -> anyhow::Result<i32> {
    let exists = |p: &str| Path::new(p).exists().then(|| std::path::PathBuf::from(p));
    let path = args
        .path
        .clone()
        .or_else(|| exists("/var/lib/docker"))
        .unwrap_or_else(|| ".".into());
    if !path.exists() {
        anyhow::bail!(overlaybench::plan::PlanError::Invalid(format!(
            "--path {} does not exist; name the directory your container store lives on",
            path.display()
        )));
    }
    let store_dir = args
        .store
        .clone()
        .or_else(|| exists("/var/lib/docker"))
        .or_else(|| exists("/var/lib/containers/storage"));
    if let Some(s) = &args.store {
        if !s.is_dir() {
            anyhow::bail!(overlaybench::plan::PlanError::Invalid(format!(
                "--store {} is not a directory",
                s.display()
            )));
        }
    }
    let path_report =
        doctor::path_facts(&path).with_context(|| format!("inspecting {}", path.display()))?;
    let engines = doctor::config::read_all(&args.config_root);
    let store = match &store_dir {
        Some(s) => {
            doctor::store::inventory(s).with_context(|| format!("inventorying {}", s.display()))?
        }
        None => None,
    };
    let mut kernel = doctor::kernel_facts(Path::new("/"));
    if args.no_probe {
        kernel.probe_error = Some("skipped (--no-probe)".into());
    } else if kernel.overlay_available {
        match isolate::enter_private_namespace() {
            Ok(privilege) => doctor::probe_kernel(&mut kernel, &args.scratch, privilege),
            Err(e) => kernel.probe_error = Some(format!("cannot isolate the probes: {e}")),
        }
    }
    let recommendation = doctor::recommend(&kernel, &path_report, store.as_ref(), &engines);
    let report = doctor::DoctorReport {
        schema_version: 1,
        kind: "doctor".into(),
        kernel,
        path: path_report,
        engines,
        store,
        recommendation,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("serialising the doctor report")?
        );
    } else {
        print!("{}", doctor::render_text(&report));
    }
    Ok(0)
}

fn compare(args: &CompareArgs) -> anyhow::Result<i32> {
    use overlaybench::compare::{self as cmp, CompareOptions, MissingPolicy};
    let gate = match &args.gate_file {
        Some(p) => cmp::gate::read(p).map_err(overlaybench::plan::PlanError::Invalid)?,
        None => cmp::gate::GateFile::default(),
    };
    // Built-in per-workload defaults, unless one threshold is given for everything;
    // then the gate file's and the command line's per-workload values.
    let global = args.threshold.or(gate.threshold.map(|t| t.0));
    let mut per_workload = if global.is_some() {
        Default::default()
    } else {
        cmp::default_thresholds()
    };
    per_workload.extend(gate.workloads.iter().map(|(k, v)| (k.clone(), v.0)));
    per_workload.extend(args.workload_thresholds.iter().cloned());
    let opts = CompareOptions {
        threshold: global.unwrap_or(0.10),
        per_workload,
        figures: args.figures,
        missing: args.missing.or(gate.missing).unwrap_or(MissingPolicy::Fail),
        ignore_params: args.ignore_params.clone(),
        resamples: args.resamples.max(100),
    };
    let baseline = report::read_report(&args.baseline)?;
    let current = report::read_report(&args.current)?;
    for (name, r) in [(&args.baseline, &baseline), (&args.current, &current)] {
        if r.status != report::RunStatus::Complete {
            eprintln!("warning: {} is not a complete run (status {:?}); only its finished cases are compared", name.display(), r.status);
        }
    }
    let names = (
        args.baseline.display().to_string(),
        args.current.display().to_string(),
    );
    let result = cmp::compare(&baseline, &current, (&names.0, &names.1), &opts)?;
    let text = cmp::format::render(&result, args.format);
    match &args.output {
        Some(p) => report::write_atomic(p, text.as_bytes())?,
        None => println!("{text}"),
    }
    Ok(if result.failed() { 1 } else { 0 })
}

fn rerender(args: &ReportArgs) -> anyhow::Result<i32> {
    let report = report::read_report(&args.path)?;
    match args.format {
        report::export::ExportFormat::Bmf => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report::export::bmf(&report))?
            );
            return Ok(0);
        }
        report::export::ExportFormat::GithubActionBenchmark => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report::export::github_action_benchmark(&report))?
            );
            return Ok(0);
        }
        report::export::ExportFormat::Files => {}
    }
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
