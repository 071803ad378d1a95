//! `overlaybench claims` arguments, lowered into a `ClaimsConfig`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use overlaybench::app::claims::{self, ClaimsConfig, ClaimsPlan};
use overlaybench::app::AppError;
use overlaybench::config::{MountApiChoice, Suite};
use overlaybench::isolate;

use super::{choice, parse_size};

/// `overlaybench claims`.
#[derive(Debug, Clone, Args)]
pub struct ClaimsArgs {
    /// Machine-readable JSON (with the host and backing facts) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Backing filesystem for the experiments: ext4, xfs, tmpfs or dir:PATH.
    #[arg(long, default_value = "ext4")]
    pub backing: String,
    /// How much each experiment measures (quick: under a minute).
    #[arg(long, value_parser = choice::<Suite>(), default_value = "quick")]
    pub suite: Suite,
    /// Claims to check, by number or name (comma-separated) [all].
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Where the scratch filesystem is made; must be empty or made by overlaybench.
    #[arg(long, default_value = "/var/tmp/overlaybench")]
    pub scratch: PathBuf,
    /// Size of the scratch filesystem (e.g. 2G) [sized from the settings].
    #[arg(long, value_parser = parse_size)]
    pub fs_size: Option<u64>,
    /// Overlay mount API.
    #[arg(long, value_parser = choice::<MountApiChoice>(), default_value = "auto")]
    pub mount_api: MountApiChoice,
    /// No progress lines (also off when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

impl ClaimsArgs {
    /// The library's config.
    pub fn to_config(&self) -> ClaimsConfig {
        ClaimsConfig {
            backing: self.backing.clone(),
            scratch: self.scratch.clone(),
            suite: self.suite,
            only: self.only.clone(),
            mount_api: self.mount_api,
            fs_size: self.fs_size,
        }
    }
}

/// Checks the claims: validate, isolate before any thread, run, print. Exit 0
/// when they ran (refuted claims included), 1 when an experiment failed, 3 when
/// the host cannot run them, 130 when interrupted.
pub fn execute(args: ClaimsArgs) -> anyhow::Result<i32> {
    let plan = ClaimsPlan::try_from(&args.to_config())?;
    // Must precede every thread (the signal handler's).
    let privilege = isolate::enter_private_namespace()
        .map_err(AppError::from)
        .context("isolating the claims")?;
    // The first signal finishes the current claim; a second leaves at once
    // (the kernel tears the namespace and its mounts down).
    super::signals::install(super::signals::FirstSignal::FinishStep, || {})
        .context("installing the signal handling")?;
    let interrupted = overlaybench::stop::flag();
    let show = !args.no_progress && std::io::stderr().is_terminal();
    let total = if args.only.is_empty() {
        overlaybench::claims::CLAIMS.len()
    } else {
        args.only.len()
    };
    let mut n = 0;
    let outcome = claims::claims(&plan, privilege, interrupted, &mut |c| {
        n += 1;
        if show {
            super::out::err_line(&format!("[{n}/{total}] claim {}: {}", c.id, c.slug));
        }
    })?;
    let text = if args.json {
        serde_json::to_string_pretty(&outcome.report).context("serialising the claims")? + "\n"
    } else {
        overlaybench::report::claims::text(&outcome.report.claims)
    };
    super::out::stdout(&text)?;
    Ok(if outcome.interrupted {
        super::out::err_line("interrupted: the claims above are the ones finished before it");
        overlaybench::stop::exit_code()
    } else if outcome.failed() {
        super::out::err_line(
            "an experiment failed (see 'error in claim'); its claim has no verdict",
        );
        1
    } else {
        0
    })
}
