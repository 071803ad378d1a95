//! app's `run` options: what to start from the user's image and when it is ready.

use std::time::Duration;

use clap::Args;

use overlaybench::workload::app;

use super::OptionGroup;

/// app: the user's image started with an OCI runtime.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "app options")]
pub struct AppArgs {
    /// Run this instead of the image's Entrypoint + Cmd: 'CMD ARGS…', split
    /// like a shell splits words ('…' and "…" quote; no expansions).
    #[arg(long, value_name = "'CMD ARGS…'")]
    pub app_command: Option<String>,
    /// Ready when a line of the process's stdout or stderr matches this regular
    /// expression (then it is stopped: SIGTERM, SIGKILL 5 s later) [ready at exit 0].
    #[arg(long, value_name = "REGEX")]
    pub app_ready_line: Option<String>,
    /// A start not ready within this fails its layout, with the last lines of
    /// output (e.g. 30s, 2m) [60s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub app_timeout: Option<Duration>,
    /// Rounds of one cold and one warm start per layout (1 to 1000)
    /// [quick: 5, standard: 10, full: 20].
    #[arg(allow_negative_numbers = true, long)]
    pub app_rounds: Option<usize>,
}

impl OptionGroup for AppArgs {
    const HEADING: &'static str = "app options";
    type Options = app::Options;
}

impl From<AppArgs> for app::Options {
    fn from(a: AppArgs) -> Self {
        app::Options {
            command: a.app_command,
            ready_line: a.app_ready_line,
            timeout: a.app_timeout,
            rounds: a.app_rounds,
        }
    }
}
