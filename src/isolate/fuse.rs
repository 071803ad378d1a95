//! FUSE mounts served by a daemon we start (fuse-overlayfs): the daemon runs in
//! the foreground (`-f`) as our child, in our private mount namespace, and dies
//! with us (`PR_SET_PDEATHSIG`, which fires when the *thread* that forked it
//! exits — so every daemon is spawned from one long-lived thread). A FUSE
//! mount whose daemon is gone stays mounted and answers ENOTCONN until it is
//! unmounted: the guard unmounts first, then reaps the daemon, on every path.

use std::fs::File;
use std::io::{Read, Seek};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::mount::{umount2, MntFlags};

use super::mounts::Unmount;
use super::IsolateError;

/// `statfs` magic of a FUSE mount.
const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

type Job = Box<dyn FnOnce() + Send>;

/// The one long-lived thread every daemon is forked from (started on first use,
/// after the namespace was entered).
fn spawner() -> Result<&'static Mutex<mpsc::Sender<Job>>, IsolateError> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    if let Some(s) = SPAWNER.get() {
        return Ok(s);
    }
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("overlaybench-daemons".into())
        .spawn(move || {
            for job in rx {
                job();
            }
        })
        .map_err(IsolateError::io(
            "starting the daemon spawner thread for",
            "fuse mounts",
        ))?;
    Ok(SPAWNER.get_or_init(|| Mutex::new(tx)))
}

fn spawn_long_lived(mut cmd: Command) -> std::io::Result<Child> {
    let (tx, rx) = mpsc::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(cmd.spawn());
    });
    let sent = spawner()
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .lock()
        .map_err(|_| std::io::Error::other("the daemon spawner lock is poisoned"))?
        .send(job);
    sent.map_err(|_| std::io::Error::other("the daemon spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("the daemon spawner thread is gone"))?
}

/// An anonymous in-memory file for the daemon's stderr: it never fills a pipe
/// (a blocked daemon would hang the mount) and leaves nothing on disk.
fn memfd(name: &std::ffi::CStr) -> std::io::Result<File> {
    let fd = nix::sys::memfd::memfd_create(name, nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC)?;
    Ok(File::from(fd))
}

/// A FUSE mount and the daemon serving it.
#[derive(Debug)]
pub struct FuseMount {
    target: PathBuf,
    program: String,
    child: Option<Child>,
    log: Option<File>,
}

fn is_fuse(target: &Path) -> bool {
    nix::sys::statfs::statfs(target)
        .map(|s| s.filesystem_type().0 == FUSE_SUPER_MAGIC)
        .unwrap_or(false)
}

impl FuseMount {
    /// Starts `program ARGS… target` in the foreground and waits (up to
    /// `timeout`) until the mount at `target` answers as FUSE. Returns the guard
    /// and the time from spawn to a serving mount.
    pub fn start(
        program: &str,
        args: &[String],
        target: &Path,
        timeout: Duration,
    ) -> Result<(FuseMount, Duration), IsolateError> {
        let log = memfd(c"fuse-daemon-stderr")
            .map_err(IsolateError::io("making a log for the daemon of", target))?;
        let stderr = log
            .try_clone()
            .map_err(IsolateError::io("making a log for the daemon of", target))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .arg(target)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            // Its own process group: a terminal's Ctrl-C goes to our group only, so
            // the daemon keeps serving while we finish the step and unmount.
            .process_group(0);
        let parent = nix::unistd::getpid();
        // SAFETY: the closure makes async-signal-safe syscalls only.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
                // We died between fork and prctl: nobody would ever unmount.
                if nix::unistd::getppid() != parent {
                    return Err(nix::errno::Errno::ESRCH.into());
                }
                Ok(())
            });
        }
        let start = Instant::now();
        let child = spawn_long_lived(cmd).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                IsolateError::Unsupported(format!(
                    "{program} is not installed; install it (apt-get install {program})"
                ))
            } else {
                IsolateError::Command {
                    command: program.into(),
                    detail: e.to_string(),
                }
            }
        })?;
        let mut m = FuseMount {
            target: target.to_path_buf(),
            program: program.into(),
            child: Some(child),
            log: Some(log),
        };
        loop {
            if is_fuse(target) {
                return Ok((m, start.elapsed()));
            }
            let exited = m.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                let detail = format!("exited with {status} before mounting: {}", m.log_text());
                m.child = None;
                return Err(IsolateError::Command {
                    command: format!("{program} {}", args.join(" ")),
                    detail,
                });
            }
            if start.elapsed() > timeout {
                // Drop tears down whatever came up.
                return Err(IsolateError::Command {
                    command: format!("{program} {}", args.join(" ")),
                    detail: format!(
                        "no FUSE mount at {} after {timeout:?}: {}",
                        target.display(),
                        m.log_text()
                    ),
                });
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// What the daemon wrote to stderr (its lines about lazytime dropped: 1.10
    /// prints one on every start).
    pub fn log_text(&mut self) -> String {
        let Some(f) = self.log.as_mut() else {
            return String::new();
        };
        let mut text = String::new();
        if f.rewind().is_err() || f.read_to_string(&mut text).is_err() {
            return String::new();
        }
        text.lines()
            .filter(|l| !l.contains("unknown argument ignored: lazytime"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Unmounts (retrying while the kernel says busy: a child forked by another
    /// thread may hold an fd of ours until it execs), then waits for the daemon.
    fn teardown(&mut self) -> Result<(), IsolateError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let mut result = Ok(());
        let mut tries = 0;
        loop {
            match umount2(&self.target, MntFlags::empty()) {
                Ok(()) => break,
                Err(nix::errno::Errno::EBUSY) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => {
                    let _ = umount2(&self.target, MntFlags::MNT_DETACH);
                    result = Err(IsolateError::Unmount {
                        target: self.target.clone(),
                        source: e,
                    });
                    break;
                }
            }
        }
        // The daemon exits once its mount is gone; give it a moment, then insist.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    if result.is_ok() {
                        result = Err(IsolateError::Command {
                            command: self.program.clone(),
                            detail: format!(
                                "the daemon of {} did not exit after unmount; killed",
                                self.target.display()
                            ),
                        });
                    }
                    break;
                }
            }
        }
        result
    }
}

impl Unmount for FuseMount {
    fn target(&self) -> &Path {
        &self.target
    }

    fn unmount(mut self: Box<Self>) -> Result<(), IsolateError> {
        self.teardown()
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Lazily: a drop path (panic, error) must never block on a busy mount.
            let _ = umount2(&self.target, MntFlags::MNT_DETACH);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
