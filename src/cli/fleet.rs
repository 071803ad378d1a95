//! `overlaybench fleet`: manifests for Kubernetes, a node's run inside a fleet
//! pod, the merge of node reports and the fleet-wide gate.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use overlaybench::app::fleet::{self, MergeConfig};
use overlaybench::app::AppError;
use overlaybench::fleet::manifest::{ManifestConfig, Mode};
use overlaybench::fleet::Input;

use super::out;

/// `overlaybench fleet`.
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: FleetCommand,
}

/// `fleet` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum FleetCommand {
    /// Print the Kubernetes manifests (Namespace plus a DaemonSet or an Indexed Job)
    /// that run the tool on every node; `kubectl apply -f -` takes them.
    Manifest(ManifestArgs),
    /// Run on this node as a fleet pod does: the run into RESULTS/<node>/<run-id>/,
    /// the doctor beside it, one JSON summary line on stdout (the run's own
    /// output goes to stderr), optionally node_exporter's textfile.
    Node(NodeArgs),
    /// Merge node reports (folders searched for report.json, or `-` for one JSON
    /// document per line on stdin) into fleet.json, fleet.html, fleet.svg and
    /// summary.md. Unreadable or foreign inputs are listed and skipped.
    Merge(MergeArgs),
    /// Compare a fleet report against an earlier one, per group and figure, with
    /// `compare`'s verdict rule. Exit 0 when nothing regressed, 1 when something did.
    Compare(CompareArgs),
}

/// Scheduling of the fleet pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// One pod per node, kept after its run (it waits).
    Daemonset,
    /// An Indexed Job of --completions pods, one per node.
    Job,
}

/// `fleet manifest`.
#[derive(Debug, Clone, Args)]
pub struct ManifestArgs {
    /// Image reference the pods run.
    #[arg(long, default_value = concat!("overlaybench:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// Suite of each node's run.
    #[arg(long, default_value = "quick")]
    pub suite: String,
    /// Run only on nodes with this label (key=value; repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub node_selector: Vec<String>,
    /// DaemonSet (every matching node) or Indexed Job (--completions nodes).
    #[arg(long, value_enum, default_value = "daemonset")]
    pub mode: ModeArg,
    /// Pods of the Job (one per node).
    #[arg(long, default_value_t = 1)]
    pub completions: i32,
    /// Namespace to create and run in.
    #[arg(long, default_value = "overlaybench")]
    pub namespace: String,
    /// Also write node_exporter's textfile under the results hostPath (textfile/).
    #[arg(long)]
    pub prom: bool,
}

/// `fleet node`.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// Results root: the run goes to RESULTS/<node>/<run-id>/.
    #[arg(long, default_value = "/results")]
    pub results: PathBuf,
    /// Node name [default: $NODE_NAME, else the host name].
    #[arg(long)]
    pub node: Option<String>,
    /// Run id [default: the UTC start time, 20260101T000000Z].
    #[arg(long)]
    pub run_id: Option<String>,
    /// Write node_exporter's textfile overlaybench.prom into this folder.
    #[arg(long, value_name = "DIR")]
    pub prom: Option<PathBuf>,
    /// Skip the doctor (doctor.json beside the report).
    #[arg(long)]
    pub no_doctor: bool,
    /// After the run, wait for SIGTERM (a DaemonSet pod must not exit).
    #[arg(long)]
    pub wait: bool,
    /// Arguments of the run (after --), e.g. -- --suite quick --scratch /scratch.
    #[arg(last = true)]
    pub run_args: Vec<String>,
}

/// `fleet merge`.
#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// Folders holding node reports (searched 4 deep for report.json), or `-` for stdin.
    #[arg(required = true, value_name = "DIR")]
    pub inputs: Vec<PathBuf>,
    /// Folder for the fleet report.
    #[arg(long, default_value = "fleet")]
    pub out: PathBuf,
}

/// `fleet compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The earlier fleet.json (or its folder).
    pub baseline: PathBuf,
    /// The current fleet.json (or its folder).
    pub current: PathBuf,
    /// One threshold for every figure [default: each workload's own].
    #[arg(long, value_parser = parse_threshold)]
    pub threshold: Option<f64>,
    /// Bootstrap resamples per figure (100 to 100000).
    #[arg(long, default_value_t = 10_000)]
    pub resamples: usize,
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_threshold(s: &str) -> Result<f64, String> {
    overlaybench::compare::gate::parse_threshold(s)
}

/// Runs a `fleet` subcommand.
pub fn execute(args: FleetArgs) -> anyhow::Result<i32> {
    match args.command {
        FleetCommand::Manifest(a) => {
            let node_selector = a
                .node_selector
                .iter()
                .map(|s| overlaybench::fleet::manifest::parse_selector(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(AppError::from)?;
            let cfg = ManifestConfig {
                image: a.image,
                namespace: a.namespace,
                suite: a.suite,
                node_selector,
                mode: match a.mode {
                    ModeArg::Daemonset => Mode::DaemonSet,
                    ModeArg::Job => Mode::Job {
                        completions: a.completions,
                    },
                },
                prom: a.prom,
            };
            out::stdout(&fleet::manifest(&cfg)?)?;
            Ok(0)
        }
        FleetCommand::Merge(a) => {
            let input = if a.inputs.len() == 1 && a.inputs[0].as_os_str() == "-" {
                Input::Stdin
            } else {
                Input::Dirs(a.inputs.clone())
            };
            let stdin = std::io::stdin();
            let outcome = fleet::merge(&MergeConfig { input, out: a.out }, stdin.lock())?;
            for s in &outcome.fleet.skipped {
                out::err_line(&format!("skipped {}: {}", s.source, s.reason));
            }
            out::err_line(&format!(
                "fleet report: {} node(s), {} group(s), {} input(s) skipped",
                outcome.fleet.nodes.len(),
                outcome.fleet.groups.len(),
                outcome.fleet.skipped.len()
            ));
            for p in &outcome.written {
                out::err_line(&format!("  {}", p.display()));
            }
            Ok(0)
        }
        FleetCommand::Compare(a) => {
            let c = fleet::compare(&a.baseline, &a.current, a.threshold, a.resamples)?;
            let text = if a.json {
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&c).context("serialising the comparison")?
                )
            } else {
                overlaybench::fleet::compare::render_markdown(&c)
            };
            out::stdout(&text)?;
            Ok(if c.failed() { 1 } else { 0 })
        }
        FleetCommand::Node(a) => node(a),
    }
}

/// The host name, from the kernel.
fn hostname() -> String {
    nix::sys::utsname::uname()
        .ok()
        .map(|u| u.nodename().to_string_lossy().into_owned())
        .unwrap_or_else(|| "node".into())
}

fn node(a: NodeArgs) -> anyhow::Result<i32> {
    let node = a
        .node
        .or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(hostname);
    let run_id = a.run_id.unwrap_or_else(|| {
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            .to_string()
            .replace(['-', ':'], "")
    });
    for (what, v) in [("node name", &node), ("run id", &run_id)] {
        if v.is_empty() || v.contains('/') || v.starts_with('.') {
            return Err(AppError::Usage(format!(
                "{what} '{v}' cannot be a folder name: no '/', no leading '.'"
            ))
            .into());
        }
    }
    let dir = a.results.join(&node).join(&run_id);
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(AppError::io("creating the results folder", parent))?;
    }
    let mut argv: Vec<String> = vec![
        "overlaybench".into(),
        "run".into(),
        "--out".into(),
        dir.display().to_string(),
    ];
    argv.extend(a.run_args.iter().cloned());
    let run = match super::Cli::try_parse_from(&argv) {
        Ok(super::Cli {
            command: super::Command::Run(r),
        }) => r,
        Ok(_) => unreachable!("argv starts with run"),
        Err(e) => {
            return Err(AppError::Usage(format!(
                "the run's arguments ({}): {e}",
                a.run_args.join(" ")
            ))
            .into());
        }
    };
    // The pod's stdout is the one summary line: the run's own output goes to stderr.
    let saved = nix::unistd::dup(1).context("duplicating stdout")?;
    nix::unistd::dup2(2, 1).context("pointing stdout at stderr")?;
    let code = super::run::execute(*run);
    if !a.no_doctor && dir.join("report.json").exists() {
        doctor_into(&dir);
    }
    nix::unistd::dup2(saved, 1).context("restoring stdout")?;
    let _ = nix::unistd::close(saved);
    let finished = code.and_then(|code| {
        let line = fleet::node_finish(&dir, &node, &run_id, a.prom.as_deref())?;
        out::stdout(&format!("{line}\n"))?;
        Ok(code)
    });
    if a.wait && !overlaybench::stop::requested() {
        // A DaemonSet pod that exits is restarted, and would run again: wait
        // whether the run succeeded or not (its report says which).
        match &finished {
            Ok(_) => out::err_line("fleet node: done; waiting for SIGTERM"),
            Err(e) => out::err_line(&format!(
                "fleet node: the run did not finish ({e:#}); waiting for SIGTERM all the same"
            )),
        }
        while !overlaybench::stop::requested() {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
    finished
}

/// Runs `doctor --json` in a child (it enters its own namespace) into
/// `dir/doctor.json`; a doctor that fails leaves no file, and the fleet report
/// then says the node had none.
fn doctor_into(dir: &std::path::Path) {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let out_path = dir.join(overlaybench::fleet::read::DOCTOR_FILE);
    match std::process::Command::new(exe)
        .args(["doctor", "--json", "--no-store-images"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
    {
        Ok(o) if o.status.success() => {
            if let Err(e) = overlaybench::report::write_atomic(&out_path, &o.stdout) {
                out::err_line(&format!("warning: {e}"));
            }
        }
        Ok(o) => out::err_line(&format!(
            "warning: doctor exited with {}; no doctor.json for this node",
            o.status
        )),
        Err(e) => out::err_line(&format!(
            "warning: starting doctor: {e}; no doctor.json for this node"
        )),
    }
}
