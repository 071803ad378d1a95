//! The `overlaybench` binary: parse, dispatch to the subcommand (which enters the
//! private mount namespace before any thread exists, lowers its arguments into
//! the library's configs and calls `app`), print the error chain and map it to
//! an exit code. Nothing here panics on a closed or full stdout/stderr.

mod cli;

use clap::Parser;

use cli::{Cli, Command};
use overlaybench::app::AppError;
use overlaybench::error::ErrorClass;

fn main() {
    let result = match Cli::parse().command {
        Command::Run(args) => cli::run::execute(*args),
        Command::Report(args) => cli::report::execute(args),
        Command::Plan(args) => cli::plan::execute(*args),
        Command::Doctor(args) => cli::doctor::execute(args),
        Command::Compare(args) => cli::compare::execute(args),
        Command::Claims(args) => cli::claims::execute(args),
        Command::Fleet(args) => cli::fleet::execute(args),
    };
    let code = match result {
        Ok(code) => code,
        Err(err) => {
            cli::out::err_line(&format!("error: {}", chain(&err)));
            classify(&err).exit_code()
        }
    };
    std::process::exit(code);
}

/// The error and its causes, `: `-separated, each said once: a typed error that
/// already shows its source (`reading x: No such file`) does not repeat it.
fn chain(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let c = cause.to_string();
        if c.is_empty() || text.contains(&c) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&c);
    }
    text
}

/// The exit-code class of the first typed error in the chain.
fn classify(err: &anyhow::Error) -> ErrorClass {
    err.chain()
        .find_map(|cause| {
            cause
                .downcast_ref::<AppError>()
                .map(AppError::class)
                .or_else(|| {
                    cause
                        .downcast_ref::<cli::out::StdoutError>()
                        .map(|_| ErrorClass::Runtime)
                })
        })
        .unwrap_or(ErrorClass::Runtime)
}
