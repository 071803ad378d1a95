//! Helpers shared by the integration tests.
#![allow(dead_code, unused_macros)]

use std::fs;
use std::path::{Path, PathBuf};

/// `module::function`: a trial's name from the module that declares it
/// (`module_path!()` less the test crate's name) and its function, so each
/// test's name is written once, as its function.
pub fn trial_name(module_path: &str, function: &str) -> String {
    let module = module_path.split_once("::").map_or(module_path, |(_, m)| m);
    format!("{module}::{function}")
}

/// A kernel test's `Trial`, named `module::function` after its function.
macro_rules! trial {
    ($f:ident) => {
        libtest_mimic::Trial::test(
            $crate::common::trial_name(module_path!(), stringify!($f)),
            $f,
        )
    };
}

/// A CLI test's entry, `(name, needs root, function)`, named
/// `module::function` after its function; `user` marks one that runs without
/// root.
macro_rules! cli_trial {
    ($f:ident) => {
        (
            $crate::common::trial_name(module_path!(), stringify!($f)),
            true,
            $f as fn(),
        )
    };
    ($f:ident, user) => {
        (
            $crate::common::trial_name(module_path!(), stringify!($f)),
            false,
            $f as fn(),
        )
    };
}

/// Whether the tests run as root (CI does; without root they skip visibly).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Mount points at or below `dir` in *this* process's view.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = overlaybench::isolate::MountInfo::current().expect("mountinfo");
    info.under(dir).map(|e| e.mount_point.clone()).collect()
}

/// Loop devices whose backing file lies under `dir` (attached or deleted).
pub fn loops_backed_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/sys/block") else {
        return out;
    };
    for e in entries.flatten() {
        let f = e.path().join("loop/backing_file");
        if let Ok(b) = fs::read_to_string(&f) {
            if b.trim().starts_with(&*dir.to_string_lossy()) {
                out.push(format!("{}: {}", e.file_name().to_string_lossy(), b.trim()));
            }
        }
    }
    out
}

/// Waits (up to `secs`) until nothing of ours is mounted or attached under `dir`,
/// then asserts it. Teardown after SIGKILL is asynchronous in the kernel.
pub fn assert_nothing_left(dir: &Path, secs: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let (m, l) = (mounts_under(dir), loops_backed_under(dir));
        if m.is_empty() && l.is_empty() {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "left behind under {}: mounts {m:?}, loop devices {l:?}",
                dir.display()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `run-*` dirs under a scratch root.
pub fn run_dirs(root: &Path) -> Vec<PathBuf> {
    fs::read_dir(root)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("run-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Live processes whose command line mentions `dir` (a daemon of ours serving
/// a mount under it), as "pid: cmdline".
pub fn processes_mentioning(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Ok(cmd) = fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&needle) {
                out.push(format!("{pid}: {}", cmd.trim()));
            }
        }
    }
    out
}

/// Waits (up to `secs`) until no process mentions `dir`, then asserts it: a
/// daemon killed with its parent exits asynchronously.
pub fn assert_no_process_mentions(dir: &Path, secs: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let left = processes_mentioning(dir);
        if left.is_empty() {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!("processes left behind under {}: {left:?}", dir.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
