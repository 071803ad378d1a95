//! The `overlaybench` binary: parse, dispatch to the subcommand (which enters the
//! private mount namespace before any thread exists, lowers its arguments into
//! the library's configs and calls `app`), print the error chain and map it to
//! an exit code.

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
    };
    let code = match result {
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
