//! Writing to stdout and stderr without ever panicking (`print!` panics when the
//! stream is closed). A closed pipe (EPIPE: `… | head -1`) ends the output
//! quietly and the command keeps its own exit code (a failed gate still exits
//! 1); any other error on stdout (ENOSPC: `> /dev/full`) is an error with exit 1.
//! stderr is best effort: there is nowhere left to report its failure.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout's reader went away: nothing more is written there.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// stdout could not be written (not a closed pipe).
#[derive(Debug, thiserror::Error)]
#[error("writing to stdout: {0}")]
pub struct StdoutError(#[source] std::io::Error);

/// Writes `text` to stdout and flushes; a closed pipe is not an error.
pub fn stdout(text: &str) -> Result<(), StdoutError> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err(StdoutError(e)),
    }
}

/// Writes one line to stderr; failures are ignored (nowhere to report them).
pub fn err_line(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}
