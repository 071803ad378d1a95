//! Child processes (mkfs, xfs_info, …) run with a time limit, are killed when a
//! signal asks the run to stop, and die with us (PR_SET_PDEATHSIG): a hung tool
//! can never hold a run, and a killed run never leaves a tool running.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::IsolateError;

/// How often a running child is checked (exit, stop request, time limit).
const POLL: Duration = Duration::from_millis(20);

/// Runs `cmd` to completion within `timeout`, capturing its output. `hint`
/// tells how to install the program when it is missing (exit 3).
pub fn run_command(
    cmd: &mut Command,
    timeout: Duration,
    hint: &str,
) -> Result<Output, IsolateError> {
    run(cmd, timeout, hint, true)
}

/// The same for a command that undoes something of ours (a runtime's kill or
/// delete): it runs to its end or its time limit even once a signal has asked
/// the run to stop, since stopping is what it is for.
pub fn run_cleanup_command(
    cmd: &mut Command,
    timeout: Duration,
    hint: &str,
) -> Result<Output, IsolateError> {
    run(cmd, timeout, hint, false)
}

fn run(
    cmd: &mut Command,
    timeout: Duration,
    hint: &str,
    interruptible: bool,
) -> Result<Output, IsolateError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            IsolateError::Unsupported(format!("{program} is not installed; install it ({hint})"))
        } else {
            IsolateError::Command {
                command: program.clone(),
                detail: e.to_string(),
            }
        }
    })?;
    // Drain both pipes while waiting: a chatty child must not block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                return Err(IsolateError::Command {
                    command: program,
                    detail: format!("waiting for it: {e}"),
                })
            }
        }
        let stop = interruptible && crate::stop::requested();
        if stop || started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            if stop {
                return Err(IsolateError::Interrupted);
            }
            return Err(IsolateError::Command {
                command: program,
                detail: format!(
                    "did not finish within {} s and was killed",
                    timeout.as_secs()
                ),
            });
        }
        std::thread::sleep(POLL);
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hung_child_is_killed_at_its_time_limit() {
        let started = Instant::now();
        let err = run_command(
            Command::new("sleep").arg("30"),
            Duration::from_millis(300),
            "coreutils",
        )
        .unwrap_err();
        assert!(err.to_string().contains("killed"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let ok = run_command(
            Command::new("echo").arg("hi"),
            Duration::from_secs(10),
            "coreutils",
        )
        .expect("echo runs");
        assert_eq!(ok.stdout, b"hi\n");
        let missing = run_command(
            &mut Command::new("overlaybench-no-such-tool"),
            Duration::from_secs(1),
            "nothing",
        )
        .unwrap_err();
        assert!(matches!(missing, IsolateError::Unsupported(_)));
    }
}
