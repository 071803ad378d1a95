//! SIGINT, SIGTERM and SIGHUP, handled alike (signal-hook, on a thread of its
//! own started after the private namespace is entered): the first asks the
//! command to stop (`overlaybench::stop`), which finishes its current step,
//! cleans up, marks its report `interrupted` and exits 128 + the signal; a
//! second one aborts at once, after `on_abort` marked what it could.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use overlaybench::stop;

use super::out::err_line;

/// What the first signal does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstSignal {
    /// Ask the command to stop after its current step (a run: its report keeps
    /// what was measured).
    FinishStep,
    /// Clean up (`on_abort`) and exit at once: the command writes nothing before
    /// its end (doctor, plan), so there is nothing to finish.
    Exit,
}

/// Installs the handling; `on_abort` runs before exiting on a second signal
/// (or on the first with `FirstSignal::Exit`).
pub fn install(first: FirstSignal, on_abort: impl Fn() + Send + 'static) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let again = stop::request(sig);
                if first == FirstSignal::Exit {
                    on_abort();
                    std::process::exit(stop::exit_code());
                }
                if !again {
                    err_line(&format!(
                        "\n{}: finishing the current step, cleaning up, writing a partial report… \
                         (again to abort at once)",
                        stop::signal_name(sig)
                    ));
                    continue;
                }
                err_line(&format!(
                    "{} again: aborting now; the report is marked 'interrupted'",
                    stop::signal_name(sig)
                ));
                on_abort();
                // The kernel tears our namespace and its mounts down; autoclear
                // loop devices go with their last user.
                std::process::exit(stop::exit_code());
            }
        })?;
    Ok(())
}
