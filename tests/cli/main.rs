//! The CLI contract, end to end through the real binary, one module per
//! subcommand: exit codes, error text, report files, and isolation — after a
//! normal end, an error, a panic, Ctrl-C or SIGKILL nothing of ours is mounted or
//! attached in *this* (the caller's) view.
//!
//! A custom harness (libtest-mimic) so that a test that needs root and does not
//! have it is reported *ignored*, never *ok*. CI runs as root: there every test runs.

// First, in a group of its own: its test-registering macros are in scope
// for the modules below.
#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod app;
#[path = "../common/appimage.rs"]
#[allow(dead_code)]
mod appimage;
mod claims;
mod compare;
mod doctor;
mod fleet;
#[path = "../common/fleetgen.rs"]
mod fleetgen;
mod hostile;
mod images;
mod isolation;
#[path = "../common/layergen.rs"]
mod layergen;
mod layers;
mod plan;
#[path = "../common/realimage.rs"]
#[allow(dead_code)]
mod realimage;
mod report;
mod run;
mod scratch;
mod sources;
mod storm;
mod walks;
mod workloads;

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;

use overlaybench::report::{read_report, Report, RunStatus};

pub(crate) fn bin() -> Command {
    Command::cargo_bin("overlaybench").expect("binary built")
}

pub(crate) fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("obc-")
        .tempdir_in("/var/tmp")
        .expect("tempdir")
}

/// A small but complete lookup run.
pub(crate) fn small_run_args(dir: &Path) -> Vec<String> {
    [
        "run",
        "--workloads",
        "lookup",
        "--depths",
        "1,16,64",
        "--rounds",
        "2",
        "--names",
        "64",
        "--batch",
        "16",
        "--no-progress",
        "--scratch",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        dir.join("scratch").display().to_string(),
        "--out".into(),
        dir.join("out").display().to_string(),
    ])
    .collect()
}

/// `overlaybench run ARGS` confined to `dir`: scratch in `dir/scratch`, report in `out`.
pub(crate) fn run_in(dir: &Path, out: &Path, args: &[&str]) -> Command {
    let mut c = bin();
    c.arg("run")
        .args(args)
        .arg("--no-progress")
        .arg("--scratch")
        .arg(dir.join("scratch"))
        .arg("--out")
        .arg(out);
    c
}

pub(crate) fn assert_clean(dir: &Path) {
    common::assert_nothing_left(dir, 10);
    let left = common::run_dirs(&dir.join("scratch"));
    assert!(left.is_empty(), "scratch run dirs left: {left:?}");
}

/// Exit code and stderr of `cmd`, killed if it runs past `secs`.
pub(crate) fn bounded(mut cmd: StdCommand, secs: u64) -> (Option<i32>, String) {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return (status.code(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let root = common::is_root();
    if !root {
        eprintln!(
            "CLI tests that need root (real mounts, loop devices) are ignored here; CI runs them as root"
        );
    }
    let trials: Vec<libtest_mimic::Trial> = [
        run::tests(),
        isolation::tests(),
        workloads::tests(),
        storm::tests(),
        app::tests(),
        plan::tests(),
        doctor::tests(),
        hostile::tests(),
        compare::tests(),
        report::tests(),
        claims::tests(),
        images::tests(),
        fleet::tests(),
        sources::tests(),
        scratch::tests(),
        layers::tests(),
        walks::tests(),
    ]
    .into_iter()
    .flatten()
    .map(|(name, needs_root, f)| {
        libtest_mimic::Trial::test(name, move || {
            f();
            Ok(())
        })
        .with_ignored_flag(needs_root && !root)
    })
    .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    // The shared image fixture lives in a static, which is never dropped.
    images::remove_fixture();
    fleet::remove_fixture();
    conclusion.exit();
}
