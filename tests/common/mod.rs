//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

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
