//! The process-wide stop request: the binary's signal handling (SIGINT, SIGTERM,
//! SIGHUP) sets it; long loops and child processes poll it. A signal is a
//! process-wide event, so this is the one piece of global state: every run
//! finishes its current step, cleans up and marks its report `interrupted`.
//!
//! The exit code of an interrupted command is 128 + the signal number (130 for
//! SIGINT, 143 for SIGTERM, 129 for SIGHUP), as shells report a death by signal.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::sys::signal::Signal;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Records that `signal` asked the process to stop; returns whether a stop had
/// already been asked for (a second signal).
pub fn request(signal: i32) -> bool {
    let _ = SIGNAL.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    REQUESTED.swap(true, Ordering::SeqCst)
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// The flag itself, for code that takes `&AtomicBool` (a run's context).
pub fn flag() -> &'static AtomicBool {
    &REQUESTED
}

/// The signal that asked first (SIGINT when none did: an interrupt found by
/// other means is reported as Ctrl-C's).
pub fn signal() -> i32 {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => Signal::SIGINT as i32,
        s => s,
    }
}

/// The exit code of an interrupted command: 128 + the signal number.
pub fn exit_code() -> i32 {
    128 + signal()
}

/// The signal's name for messages (`SIGTERM`).
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        s if s == Signal::SIGINT as i32 => "SIGINT",
        s if s == Signal::SIGTERM as i32 => "SIGTERM",
        s if s == Signal::SIGHUP as i32 => "SIGHUP",
        _ => "a signal",
    }
}
