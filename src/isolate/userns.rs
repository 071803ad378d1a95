//! A child in a new user namespace, for doctor's idmapped-mount probes: the
//! user namespace an idmapped mount maps through. (Rootless overlay mounts are
//! the `child` module's: a helper hands the mount back as an fd.)
//!
//! Why fork rather than re-exec: between `fork` and `_exit` the child makes only
//! raw system calls on data prepared before the fork — no allocation, no lock a
//! thread of the parent may hold — so forking a threaded process is safe here.
//! The parent (real root in the initial user namespace) writes the child's id
//! maps, which needs no `setgroups=deny`, and bounds every wait: a child that
//! hangs is killed, and it dies with the parent (`PR_SET_PDEATHSIG`).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

/// Why a user-namespace child could not do its part.
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    /// fork, a pipe or a wait failed.
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        source: std::io::Error,
    },
    /// Writing the child's id map (user namespaces unavailable, or not root).
    #[error("writing {}: {source}", path.display())]
    Map {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The child refused at one step, with the errno it got.
    #[error("{step}: {}", std::io::Error::from_raw_os_error(*errno))]
    Child { step: &'static str, errno: i32 },
    /// The child did not finish in time and was killed.
    #[error("the user-namespace child did not finish within {} ms and was killed", .0.as_millis())]
    Timeout(Duration),
}

/// What each step number the child reports means (1: its unshare; the body
/// userns_fd runs does nothing that can fail).
const STEPS: [&str; 2] = ["ok", "unshare(CLONE_NEWUSER)"];

fn pipe() -> Result<(OwnedFd, OwnedFd), UsernsError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| UsernsError::Sys {
        what: "pipe2",
        source: e.into(),
    })
}

/// Waits until `fd` is readable or `deadline` passes.
fn readable(fd: &OwnedFd, deadline: Instant) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
        .unwrap_or(PollTimeout::MAX);
    let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    matches!(nix::poll::poll(&mut p, ms), Ok(n) if n > 0)
}

/// One byte from `fd` (EINTR retried).
fn read_byte(fd: &OwnedFd) -> Option<u8> {
    let mut b = [0u8];
    loop {
        match nix::unistd::read(fd.as_raw_fd(), &mut b) {
            Ok(1) => return Some(b[0]),
            Err(Errno::EINTR) => continue,
            _ => return None,
        }
    }
}

/// A forked child inside a new user namespace, waiting for its maps.
struct Child {
    pid: Option<Pid>,
    go: OwnedFd,
    result: OwnedFd,
    deadline: Instant,
    timeout: Duration,
}

impl Child {
    /// Forks; the child unshares `flags` (CLONE_NEWUSER at least), says so, waits
    /// for "go", runs `body` (raw system calls only) and exits.
    fn fork(
        flags: CloneFlags,
        map: &str,
        timeout: Duration,
        body: &dyn Fn() -> Result<(), (u8, i32)>,
    ) -> Result<Child, UsernsError> {
        let (ready_r, ready_w) = pipe()?;
        let (go_r, go_w) = pipe()?;
        let (result_r, result_w) = pipe()?;
        // SAFETY: the child runs only async-signal-safe system calls on data
        // made before the fork (each nix call here is one syscall, no
        // allocation), then _exits (see the module doc).
        let pid = match unsafe { nix::unistd::fork() } {
            Ok(ForkResult::Parent { child }) => child,
            Ok(ForkResult::Child) => {
                let fail = |step: u8, errno: i32| -> ! {
                    let mut msg = [0u8; 5];
                    msg[0] = step;
                    msg[1..].copy_from_slice(&errno.to_le_bytes());
                    let _ = nix::unistd::write(&result_w, &msg);
                    crate::sys::exit_now(1)
                };
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
                if let Err(e) = nix::sched::unshare(flags) {
                    fail(1, e as i32);
                }
                let _ = nix::unistd::write(&ready_w, b"r");
                if read_byte(&go_r) != Some(b'g') {
                    crate::sys::exit_now(2);
                }
                match body() {
                    Ok(()) => crate::sys::exit_now(0),
                    Err((step, errno)) => fail(step, errno),
                }
            }
            Err(e) => {
                return Err(UsernsError::Sys {
                    what: "fork",
                    source: e.into(),
                })
            }
        };
        let mut child = Child {
            pid: Some(pid),
            go: go_w,
            result: result_r,
            deadline: Instant::now() + timeout,
            timeout,
        };
        drop((ready_w, go_r, result_w));
        let ready = readable(&ready_r, child.deadline) && read_byte(&ready_r) == Some(b'r');
        if !ready {
            // It failed to unshare (its reason is in the result pipe) or hangs.
            return Err(child
                .finish()
                .err()
                .unwrap_or(UsernsError::Timeout(timeout)));
        }
        for file in ["uid_map", "gid_map"] {
            let path = PathBuf::from(format!("/proc/{pid}/{file}"));
            if let Err(source) = std::fs::write(&path, map) {
                child.kill();
                return Err(UsernsError::Map { path, source });
            }
        }
        Ok(child)
    }

    fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            // Our own child, reaped at once.
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }

    /// Lets the child run its body and waits for it (killing it past the deadline).
    fn finish(mut self) -> Result<(), UsernsError> {
        let _ = nix::unistd::write(&self.go, b"g");
        let Some(pid) = self.pid else {
            return Err(UsernsError::Child {
                step: "the child",
                errno: Errno::ESRCH as i32,
            });
        };
        let status = loop {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::EINTR)
                    if Instant::now() <= self.deadline =>
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Ok(WaitStatus::StillAlive) | Err(_) => {
                    self.kill();
                    return Err(UsernsError::Timeout(self.timeout));
                }
                Ok(done) => {
                    self.pid = None;
                    break done;
                }
            }
        };
        let mut msg = [0u8; 5];
        // The child is gone: whatever it wrote is in the pipe.
        if let Ok(5) = nix::unistd::read(self.result.as_raw_fd(), &mut msg) {
            let errno = i32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]]);
            let step = STEPS
                .get(usize::from(msg[0]))
                .copied()
                .unwrap_or("the child");
            return Err(UsernsError::Child { step, errno });
        }
        if status != WaitStatus::Exited(pid, 0) {
            return Err(UsernsError::Child {
                step: "the child",
                errno: Errno::EIO as i32,
            });
        }
        Ok(())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An fd of a fresh user namespace mapping `0..n` to `first..first+n`
/// (`map`: a `uid_map` line such as `0 100000 65536`), for idmapped mounts.
pub fn userns_fd(map: &str, timeout: Duration) -> Result<OwnedFd, UsernsError> {
    let child = Child::fork(CloneFlags::CLONE_NEWUSER, map, timeout, &|| Ok(()))?;
    let pid = child.pid.map_or(0, Pid::as_raw);
    let ns_path = PathBuf::from(format!("/proc/{pid}/ns/user"));
    let ns = std::fs::File::open(&ns_path)
        .map(OwnedFd::from)
        .map_err(|source| UsernsError::Map {
            path: ns_path,
            source,
        });
    child.finish()?;
    ns
}
