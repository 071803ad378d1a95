//! Fault injection for the isolation tests: `OVERLAYBENCH_FAULT=<point>:<panic|error|sigint|wait=FLAG>`
//! makes the named point panic, fail, send the process a real SIGINT, or make
//! the file FLAG and wait (at most a minute) until the test removes it, so
//! tests can prove that a panic, an error or an interrupt mid-run leaves nothing
//! mounted — at a known moment instead of after a sleep. Unset, it costs one env
//! lookup per call outside any timed region.

/// What an armed fault point does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Return an error from the point.
    Error,
}

/// Checks the point `name`: panics if armed with `panic`, returns `Some(Fault)` for `error`.
pub fn hit(name: &str) -> Option<Fault> {
    let spec = std::env::var("OVERLAYBENCH_FAULT").ok()?;
    let (point, action) = spec.split_once(':')?;
    if point != name {
        return None;
    }
    match action {
        "panic" => panic!("injected fault at {name}"),
        "error" => Some(Fault::Error),
        "sigint" => {
            // Once: a second SIGINT would abort the run (a point hit again before
            // the signal thread has set the stop flag must not send another).
            static SENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !SENT.swap(true, std::sync::atomic::Ordering::SeqCst) {
                // Our own pid; the signal thread handles it.
                let _ =
                    nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGINT);
            }
            None
        }
        a => {
            let flag = std::path::Path::new(a.strip_prefix("wait=")?);
            // The test acts while we are held here (swaps a directory, …), then
            // removes the flag; it cannot hold a run forever.
            std::fs::write(flag, b"").ok()?;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while flag.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            None
        }
    }
}
