//! A real OCI runtime (`crun`, what podman uses) starting a process on a
//! layout's merged mount: the bundle's `config.json` is generated with
//! oci-spec from the image config, the process gets its own pid, mount, uts
//! and ipc namespaces and an empty network namespace, and nothing is mounted
//! into it beyond a minimal /proc, /dev and /sys.
//!
//! Readiness is watched from outside: the process exits 0 (a one-shot), or a
//! line of its stdout/stderr matches a regular expression (a server: then
//! SIGTERM, and SIGKILL after a grace period). Every line and exit is stamped
//! when it arrives, by the thread that read it, so the time to ready does not
//! include the wait of the thread that judges it.
//!
//! Nothing stays behind: a `Started` container is killed (`crun kill …
//! KILL` of its init, which takes its pid namespace with it), reaped and deleted (`crun delete --force`, which also removes its
//! cgroup) when it is dropped — on an error, a timeout, a signal (the stop flag
//! is checked while waiting) and an unwinding panic alike. Its bundle dir is
//! removed with it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use oci_spec::runtime::{
    LinuxBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder,
    MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::error::ErrorClass;

/// The runtime's program name, looked up on PATH.
pub const RUNTIME: &str = "crun";
/// Longest line kept of the process's output (the rest of a longer line is
/// read and dropped).
pub const MAX_LINE_BYTES: usize = 64 << 10;
/// Lines of output kept for a failure's message.
pub const TAIL_LINES: usize = 12;
/// Characters of one kept line shown in a message.
const TAIL_LINE_CHARS: usize = 200;
/// How to install the runtime.
const INSTALL_HINT: &str = "Debian/Ubuntu: apt-get install crun; scripts/setup does";
/// How long `crun kill`/`delete` may take before they are given up on.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the runtime could not start or stop a container.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// crun is not installed (or does not run).
    #[error("the OCI runtime {RUNTIME} {0}; install it ({INSTALL_HINT})")]
    Missing(String),
    /// A file of the bundle or runtime state could not be written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The spec could not be built.
    #[error("building the OCI runtime spec: {0}")]
    Spec(String),
    /// A control command of the runtime failed.
    #[error("{RUNTIME} {command} {id}: {detail}")]
    Control {
        command: &'static str,
        id: String,
        detail: String,
    },
    /// The host's cgroup setup is one the runtime refuses, and it could not be hidden.
    #[error("{0}")]
    Cgroups(String),
}

impl RuntimeError {
    /// Exit-code class.
    pub fn class(&self) -> ErrorClass {
        match self {
            RuntimeError::Missing(_) | RuntimeError::Cgroups(_) => ErrorClass::Unsupported,
            _ => ErrorClass::Runtime,
        }
    }
}

/// The runtime found on this host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Runtime {
    /// Its program (looked up on PATH).
    pub program: String,
    /// Its version line (`crun version 1.8.1`).
    pub version: String,
}

impl Runtime {
    /// `crun`, with its version, or `Missing`.
    pub fn detect() -> Result<Runtime, RuntimeError> {
        let out = Command::new(RUNTIME)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => RuntimeError::Missing("is not on PATH".into()),
                _ => RuntimeError::Missing(format!("does not run: {e}")),
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let version = text.lines().next().unwrap_or("").trim().to_string();
        if !out.status.success() || version.is_empty() {
            return Err(RuntimeError::Missing(format!(
                "--version failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(Runtime {
            program: RUNTIME.into(),
            version,
        })
    }

    /// `crun --root STATE …`.
    fn command(&self, state: &Path) -> Command {
        let mut c = Command::new(&self.program);
        c.arg("--root").arg(state).stdin(Stdio::null());
        c
    }
}

/// What to run in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// argv (checked: no NUL, bounded).
    pub args: Vec<String>,
    /// Environment (`KEY=VALUE`).
    pub env: Vec<String>,
    /// Working directory in the container (absolute).
    pub cwd: String,
    /// User and group ids.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// The `config.json` of a container whose root is `rootfs`: `p` as its
/// process; its own pid, mount, uts, ipc and (empty) network namespaces;
/// /proc, a /dev tmpfs (the runtime fills in the standard devices) and a
/// read-only /sys, nothing else.
pub fn spec(rootfs: &Path, p: &ProcessSpec, hostname: &str) -> Result<Spec, RuntimeError> {
    let e = |e: oci_spec::OciSpecError| RuntimeError::Spec(e.to_string());
    let mount = |dest: &str, typ: &str, src: &str, opts: &[&str]| {
        MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .source(src)
            .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .build()
    };
    let mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]).map_err(e)?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )
        .map_err(e)?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )
        .map_err(e)?,
    ];
    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Network,
    ]
    .into_iter()
    .map(|t| LinuxNamespaceBuilder::default().typ(t).build())
    .collect::<Result<Vec<_>, _>>()
    .map_err(e)?;
    let defaults = Spec::default();
    let linux_defaults = defaults.linux().clone().unwrap_or_default();
    let resources = LinuxResourcesBuilder::default()
        .devices(device_rules().map_err(e)?)
        .pids(
            LinuxPidsBuilder::default()
                .limit(PIDS_LIMIT)
                .build()
                .map_err(e)?,
        )
        .build()
        .map_err(e)?;
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources)
        .masked_paths(linux_defaults.masked_paths().clone().unwrap_or_default())
        .readonly_paths(linux_defaults.readonly_paths().clone().unwrap_or_default())
        .build()
        .map_err(e)?;
    let process_defaults = defaults.process().clone().unwrap_or_default();
    let mut process = ProcessBuilder::default()
        .terminal(false)
        .args(p.args.clone())
        .env(p.env.clone())
        .cwd(p.cwd.clone())
        .user(
            UserBuilder::default()
                .uid(p.uid)
                .gid(p.gid)
                .build()
                .map_err(e)?,
        )
        .no_new_privileges(true)
        .build()
        .map_err(e)?;
    process.set_capabilities(process_defaults.capabilities().clone());
    process.set_rlimits(process_defaults.rlimits().clone());
    SpecBuilder::default()
        .version("1.0.0")
        .hostname(hostname)
        .root(
            RootBuilder::default()
                .path(rootfs)
                .readonly(false)
                .build()
                .map_err(e)?,
        )
        .process(process)
        .mounts(mounts)
        .linux(linux)
        .build()
        .map_err(e)
}

/// Output lines (each at most `MAX_LINE_BYTES`) queued between the pipe
/// readers and the waiter.
const LINES_QUEUED: usize = 256;

/// Most tasks a container may hold (podman's default is 2048): an image's
/// fork bomb stays inside its cgroup.
pub const PIDS_LIMIT: i64 = 4096;

/// The device cgroup's rules, as Docker and podman set them: every device
/// denied, then the standard character devices the runtime makes in /dev
/// allowed (null, zero, full, random, urandom, tty, console, ptmx, the pts).
/// A device node an image carries opens nothing (its mount is `nodev` too).
fn device_rules() -> Result<Vec<LinuxDeviceCgroup>, oci_spec::OciSpecError> {
    let deny = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()?;
    let allow = |major: i64, minor: Option<i64>| {
        let b = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(major)
            .access("rwm");
        match minor {
            Some(m) => b.minor(m).build(),
            None => b.build(),
        }
    };
    let mut rules = vec![deny];
    for (major, minor) in [
        (1, Some(3)),
        (1, Some(5)),
        (1, Some(7)),
        (1, Some(8)),
        (1, Some(9)),
        (5, Some(0)),
        (5, Some(1)),
        (5, Some(2)),
        (136, None),
    ] {
        rules.push(allow(major, minor)?);
    }
    Ok(rules)
}

/// Hides a cgroup v2 hierarchy mounted beside v1 controllers (a "hybrid"
/// host, which crun refuses to run on) for as long as it is held, with an
/// empty tmpfs over it. The mount is made in the tool's own private mount
/// namespace, so nothing outside sees it, and is undone on drop.
pub struct CgroupView {
    shadowed: Option<PathBuf>,
}

impl CgroupView {
    /// On a hybrid host, the hidden unified hierarchy; otherwise nothing.
    pub fn for_runtime() -> Result<CgroupView, RuntimeError> {
        let root = Path::new("/sys/fs/cgroup");
        let unified = root.join("unified");
        let fs_kind = |p: &Path| rustix::fs::statfs(p).ok().map(|s| s.f_type);
        const TMPFS: i64 = 0x0102_1994;
        const CGROUP2: i64 = 0x6367_7270;
        if fs_kind(root) != Some(TMPFS) || fs_kind(&unified) != Some(CGROUP2) {
            return Ok(CgroupView { shadowed: None });
        }
        rustix::mount::mount(
            "none",
            &unified,
            "tmpfs",
            rustix::mount::MountFlags::NOSUID
                | rustix::mount::MountFlags::NODEV
                | rustix::mount::MountFlags::NOEXEC,
            rustix::cstr!("size=1m,mode=0755"),
        )
        .map_err(|e| {
            RuntimeError::Cgroups(format!(
                "this host mounts cgroup v2 at {} beside v1 controllers (hybrid), which {RUNTIME} \
                 refuses, and hiding it in the tool's mount namespace failed: {e}",
                unified.display()
            ))
        })?;
        Ok(CgroupView {
            shadowed: Some(unified),
        })
    }

    /// Whether a hybrid hierarchy is hidden (say so in the report).
    pub fn hybrid(&self) -> bool {
        self.shadowed.is_some()
    }
}

impl Drop for CgroupView {
    fn drop(&mut self) {
        if let Some(p) = self.shadowed.take() {
            // Our own tmpfs in our own namespace: detach, nothing else can hold it.
            let _ = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// What the watcher saw, stamped when it arrived.
#[derive(Debug)]
enum Event {
    Line(Instant, String),
    Exit(Instant, std::io::Result<ExitStatus>),
}

/// How a start ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Ready after this long from the spawn of the runtime.
    Ready(Duration),
    /// Exited before ready (status as text), with the last lines of output.
    Exited { status: String, tail: Vec<String> },
    /// Not ready within the timeout, with the last lines of output.
    TimedOut { after: Duration, tail: Vec<String> },
}

/// Readiness: an exit 0, or a line matching.
#[derive(Debug, Clone)]
pub enum Readiness {
    /// The process exits 0.
    Exit,
    /// A line of stdout/stderr matches; then the process is stopped.
    Line(regex::Regex),
}

/// Unique container ids across the process's runs.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A container being run by `crun run` (foreground), watched.
pub struct Started<'a> {
    runtime: &'a Runtime,
    state: PathBuf,
    bundle: PathBuf,
    id: String,
    events: Receiver<Event>,
    threads: Vec<JoinHandle<()>>,
    exited: bool,
    tail: VecDeque<String>,
    /// When the runtime was spawned.
    pub spawned: Instant,
}

fn read_lines(r: impl Read, tx: SyncSender<Event>) {
    let mut r = BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut r)
            .take(MAX_LINE_BYTES as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let at = Instant::now();
                if line.last() != Some(&b'\n') && line.len() >= MAX_LINE_BYTES {
                    // Drop the rest of an over-long line.
                    let mut rest = Vec::new();
                    loop {
                        rest.clear();
                        match (&mut r)
                            .take(MAX_LINE_BYTES as u64)
                            .read_until(b'\n', &mut rest)
                        {
                            Ok(0) | Err(_) => break,
                            Ok(_) if rest.last() == Some(&b'\n') => break,
                            Ok(_) => {}
                        }
                    }
                }
                let text = String::from_utf8_lossy(&line)
                    .trim_end_matches(['\n', '\r'])
                    .to_string();
                if tx.send(Event::Line(at, text)).is_err() {
                    return;
                }
            }
        }
    }
}

impl<'a> Started<'a> {
    /// Writes the bundle (`bundle/config.json`) and spawns `crun run`.
    pub fn start(
        runtime: &'a Runtime,
        state: &Path,
        bundle: &Path,
        spec: &Spec,
    ) -> Result<Started<'a>, RuntimeError> {
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| RuntimeError::Io { what, path, source }
        };
        std::fs::create_dir_all(state).map_err(io("creating", state))?;
        std::fs::create_dir_all(bundle).map_err(io("creating", bundle))?;
        let config = bundle.join("config.json");
        let json =
            serde_json::to_vec_pretty(spec).map_err(|e| RuntimeError::Spec(e.to_string()))?;
        std::fs::write(&config, json).map_err(io("writing", &config))?;
        // The pid and a counter, and a random part: two runs that are each
        // pid 1 of their own pid namespace (pods) share the host's cgroup
        // tree, where the id names the container's cgroup.
        let id = format!(
            "overlaybench-{}-{}-{:08x}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let mut cmd = runtime.command(state);
        cmd.arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg(&id)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawned = Instant::now();
        let mut child: Child = cmd.spawn().map_err(|e| RuntimeError::Control {
            command: "run",
            id: id.clone(),
            detail: e.to_string(),
        })?;
        // Bounded: while nothing drains it (a stop under way), the readers
        // wait and the application blocks on its full pipe, instead of its
        // output piling up in the tool's memory.
        let (tx, events) = mpsc::sync_channel(LINES_QUEUED);
        let mut threads = Vec::new();
        if let Some(out) = child.stdout.take() {
            let tx = tx.clone();
            threads.push(std::thread::spawn(move || read_lines(out, tx)));
        }
        if let Some(err) = child.stderr.take() {
            let tx = tx.clone();
            threads.push(std::thread::spawn(move || read_lines(err, tx)));
        }
        threads.push(std::thread::spawn(move || {
            let status = child.wait();
            let _ = tx.send(Event::Exit(Instant::now(), status));
        }));
        Ok(Started {
            runtime,
            state: state.to_path_buf(),
            bundle: bundle.to_path_buf(),
            id,
            events,
            threads,
            exited: false,
            tail: VecDeque::new(),
            spawned,
        })
    }

    /// The container's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn keep(&mut self, line: String) {
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        let short: String = line.chars().take(TAIL_LINE_CHARS).collect();
        self.tail.push_back(short);
    }

    /// The last lines of output seen.
    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }

    /// Waits until ready, exited, `timeout` from the spawn, or `stop` set.
    pub fn wait_ready(
        &mut self,
        ready: &Readiness,
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<Outcome, RuntimeError> {
        let deadline = self.spawned + timeout;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(Outcome::TimedOut {
                    after: self.spawned.elapsed(),
                    tail: self.tail(),
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Outcome::TimedOut {
                    after: timeout,
                    tail: self.tail(),
                });
            }
            // Short waits, so a signal is seen within a tenth of a second.
            match self
                .events
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                Ok(Event::Line(at, line)) => {
                    let hit = matches!(ready, Readiness::Line(re) if re.is_match(&line));
                    self.keep(line);
                    if hit {
                        return Ok(Outcome::Ready(at.duration_since(self.spawned)));
                    }
                }
                Ok(Event::Exit(at, status)) => {
                    self.exited = true;
                    // Lines written before the exit are still queued: read them.
                    self.drain();
                    let status = status.map_err(|e| RuntimeError::Control {
                        command: "run",
                        id: self.id.clone(),
                        detail: format!("waiting: {e}"),
                    })?;
                    if let Readiness::Line(re) = ready {
                        if self.tail.iter().any(|l| re.is_match(l)) {
                            return Ok(Outcome::Ready(at.duration_since(self.spawned)));
                        }
                    }
                    if status.success() && matches!(ready, Readiness::Exit) {
                        return Ok(Outcome::Ready(at.duration_since(self.spawned)));
                    }
                    return Ok(Outcome::Exited {
                        status: status.to_string(),
                        tail: self.tail(),
                    });
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.exited = true;
                    return Ok(Outcome::Exited {
                        status: "unknown (the watcher ended)".into(),
                        tail: self.tail(),
                    });
                }
            }
        }
    }

    /// Reads what is queued, after the exit: the readers end at EOF, and
    /// with the queue bounded they may be waiting to hand over their last
    /// lines, so they are read from until every sender is gone (bounded in
    /// time: a reader still blocked then is left to end on its own).
    fn drain(&mut self) {
        let deadline = Instant::now() + CONTROL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.events.recv_timeout(left) {
                Ok(Event::Line(_, l)) => self.keep(l),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => return,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Runs a runtime control command, bounded in time: `crun COMMAND
    /// [OPTIONS] ID [SIGNAL]`.
    fn control(
        &self,
        command: &'static str,
        options: &[&str],
        signal: Option<&str>,
    ) -> Result<(), RuntimeError> {
        let err = |detail: String| RuntimeError::Control {
            command,
            id: self.id.clone(),
            detail,
        };
        let mut c = self.runtime.command(&self.state);
        c.arg(command).args(options).arg(&self.id).args(signal);
        let out = crate::isolate::run_cleanup_command(&mut c, CONTROL_TIMEOUT, INSTALL_HINT)
            .map_err(|e| err(e.to_string()))?;
        if out.status.success() {
            return Ok(());
        }
        let msg = String::from_utf8_lossy(&out.stderr);
        Err(err(format!(
            "{}: {}",
            out.status,
            msg.trim().chars().take(4096).collect::<String>()
        )))
    }

    /// Waits up to `grace` for the runtime to exit; whether it did.
    fn wait_exit(&mut self, grace: Duration) -> bool {
        if self.exited {
            return true;
        }
        let until = Instant::now() + grace;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Exit(..)) | Err(RecvTimeoutError::Disconnected) => {
                    self.exited = true;
                    self.drain();
                    return true;
                }
                Ok(Event::Line(_, l)) => self.keep(l),
                Err(RecvTimeoutError::Timeout) => return false,
            }
        }
    }

    /// Stops the container: SIGTERM, then SIGKILL to all its processes after
    /// `grace`; then deletes it (and its cgroup) and the bundle.
    pub fn stop(mut self, grace: Duration) -> Result<(), RuntimeError> {
        let mut first = Ok(());
        if !self.exited {
            // It may exit between the check and the kill: the kill then fails
            // harmlessly, and the wait below sees the exit.
            let _ = self.control("kill", &[], Some("TERM"));
            if !self.wait_exit(grace) {
                // The container's init: its pid namespace, and so every
                // process of it, dies with it (`--all` needs a cgroup the
                // runtime may not have made).
                let _ = self.control("kill", &[], Some("KILL"));
                if !self.wait_exit(CONTROL_TIMEOUT) {
                    first = Err(RuntimeError::Control {
                        command: "kill",
                        id: self.id.clone(),
                        detail: format!(
                            "the container did not exit within {CONTROL_TIMEOUT:?} of SIGKILL"
                        ),
                    });
                }
            }
        }
        self.finish(first)
    }

    /// Deletes what is left; keeps the first error.
    fn finish(&mut self, mut first: Result<(), RuntimeError>) -> Result<(), RuntimeError> {
        // `crun run` deletes a container that exited; one it could not (or a
        // kill that raced) is deleted here. "does not exist" is the usual answer.
        if let Err(e) = self.control("delete", &["--force"], None) {
            let gone = matches!(&e, RuntimeError::Control { detail, .. }
                if detail.contains("does not exist") || detail.contains("No such file"));
            if !gone && first.is_ok() {
                first = Err(e);
            }
        }
        if let Err(source) = std::fs::remove_dir_all(&self.bundle) {
            if source.kind() != std::io::ErrorKind::NotFound && first.is_ok() {
                first = Err(RuntimeError::Io {
                    what: "removing",
                    path: self.bundle.clone(),
                    source,
                });
            }
        }
        self.exited = true;
        self.bundle = PathBuf::new();
        first
    }
}

impl Drop for Started<'_> {
    fn drop(&mut self) {
        if self.bundle.as_os_str().is_empty() {
            return;
        }
        if !self.exited {
            let _ = self.control("kill", &[], Some("KILL"));
            self.wait_exit(CONTROL_TIMEOUT);
        }
        let _ = self.finish(Ok(()));
    }
}

/// Splits a command line the way a shell would for simple cases: words
/// separated by whitespace, `'…'` and `"…"` quoting (a backslash escapes the
/// next character outside single quotes). No expansions.
pub fn split_command(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("an unclosed ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => word.push(c),
                            None => return Err("a trailing backslash".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("an unclosed \" quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => {
                    in_word = true;
                    word.push(c)
                }
                None => return Err("a trailing backslash".into()),
            },
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c)
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_like_a_shell() {
        assert_eq!(
            split_command(r#"python3 -c 'import json; print("a b")'"#).expect("ok"),
            ["python3", "-c", r#"import json; print("a b")"#]
        );
        assert_eq!(
            split_command(r#"echo "x \" y" z\ w"#).expect("ok"),
            ["echo", "x \" y", "z w"]
        );
        assert_eq!(split_command("  ").expect("ok"), Vec::<String>::new());
        assert!(split_command("a 'b").is_err());
    }

    #[test]
    fn the_spec_has_the_namespaces_and_only_minimal_mounts() {
        let p = ProcessSpec {
            args: vec!["/bin/true".into()],
            env: vec!["A=b".into()],
            cwd: "/".into(),
            uid: 5,
            gid: 6,
        };
        let s = spec(Path::new("/x/merged"), &p, "h").expect("spec");
        let json = serde_json::to_value(&s).expect("json");
        let ns: Vec<&str> = json["linux"]["namespaces"]
            .as_array()
            .expect("ns")
            .iter()
            .filter_map(|n| n["type"].as_str())
            .collect();
        assert_eq!(ns, ["pid", "mount", "uts", "ipc", "network"]);
        let mounts: Vec<&str> = json["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .filter_map(|m| m["destination"].as_str())
            .collect();
        assert_eq!(mounts, ["/proc", "/dev", "/sys"]);
        assert_eq!(json["root"]["path"], "/x/merged");
        assert_eq!(json["process"]["user"]["uid"], 5);
        assert_eq!(json["process"]["args"][0], "/bin/true");
    }
}
