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

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(UsernsError::Sys {
            what: "pipe2",
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Waits until `fd` is readable or `deadline` passes.
fn readable(fd: &OwnedFd, deadline: Instant) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) > 0 }
}

/// A forked child inside a new user namespace, waiting for its maps.
struct Child {
    pid: libc::pid_t,
    go: OwnedFd,
    result: OwnedFd,
    deadline: Instant,
    timeout: Duration,
}

impl Child {
    /// Forks; the child unshares `flags` (CLONE_NEWUSER at least), says so, waits
    /// for "go", runs `body` (raw system calls only) and exits.
    fn fork(
        flags: libc::c_int,
        map: &str,
        timeout: Duration,
        body: &dyn Fn() -> Result<(), (u8, i32)>,
    ) -> Result<Child, UsernsError> {
        let (ready_r, ready_w) = pipe()?;
        let (go_r, go_w) = pipe()?;
        let (result_r, result_w) = pipe()?;
        // SAFETY: the child runs only async-signal-safe system calls on data
        // made before the fork, then _exits (see the module doc).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(UsernsError::Sys {
                what: "fork",
                source: std::io::Error::last_os_error(),
            });
        }
        if pid == 0 {
            // SAFETY: the child side; every call is a plain system call.
            unsafe {
                let fail = |step: u8, errno: i32| -> ! {
                    let mut msg = [0u8; 5];
                    msg[0] = step;
                    msg[1..].copy_from_slice(&errno.to_le_bytes());
                    libc::write(result_w.as_raw_fd(), msg.as_ptr().cast(), 5);
                    libc::_exit(1)
                };
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::unshare(flags) != 0 {
                    fail(1, *libc::__errno_location());
                }
                libc::write(ready_w.as_raw_fd(), b"r".as_ptr().cast(), 1);
                let mut b = [0u8; 1];
                if libc::read(go_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) != 1 {
                    libc::_exit(2);
                }
                match body() {
                    Ok(()) => libc::_exit(0),
                    Err((step, errno)) => fail(step, errno),
                }
            }
        }
        let mut child = Child {
            pid,
            go: go_w,
            result: result_r,
            deadline: Instant::now() + timeout,
            timeout,
        };
        drop((ready_w, go_r, result_w));
        let mut b = [0u8; 1];
        // SAFETY: reading one byte into a one-byte buffer.
        let ready = readable(&ready_r, child.deadline)
            && unsafe { libc::read(ready_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) } == 1;
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
        // SAFETY: our own child; reaped right after.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
        self.pid = 0;
    }

    /// Lets the child run its body and waits for it (killing it past the deadline).
    fn finish(mut self) -> Result<(), UsernsError> {
        // SAFETY: one byte from a static buffer.
        unsafe { libc::write(self.go.as_raw_fd(), b"g".as_ptr().cast(), 1) };
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r == self.pid {
                self.pid = 0;
                break;
            }
            if r < 0 || Instant::now() > self.deadline {
                self.kill();
                return Err(UsernsError::Timeout(self.timeout));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut msg = [0u8; 5];
        // SAFETY: the child is gone; at most 5 bytes into a 5-byte buffer.
        let n = unsafe { libc::read(self.result.as_raw_fd(), msg.as_mut_ptr().cast(), 5) };
        if n == 5 {
            let errno = i32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]]);
            let step = STEPS
                .get(usize::from(msg[0]))
                .copied()
                .unwrap_or("the child");
            return Err(UsernsError::Child { step, errno });
        }
        if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            return Err(UsernsError::Child {
                step: "the child",
                errno: libc::EIO,
            });
        }
        Ok(())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.pid > 0 {
            self.kill();
        }
    }
}

/// An fd of a fresh user namespace mapping `0..n` to `first..first+n`
/// (`map`: a `uid_map` line such as `0 100000 65536`), for idmapped mounts.
pub fn userns_fd(map: &str, timeout: Duration) -> Result<OwnedFd, UsernsError> {
    let child = Child::fork(libc::CLONE_NEWUSER, map, timeout, &|| Ok(()))?;
    let ns_path = PathBuf::from(format!("/proc/{}/ns/user", child.pid));
    let ns = std::fs::File::open(&ns_path)
        .map(OwnedFd::from)
        .map_err(|source| UsernsError::Map {
            path: ns_path,
            source,
        });
    child.finish()?;
    ns
}
