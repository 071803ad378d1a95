//! Isolation of `run`: after an error, a panic, Ctrl-C or SIGKILL nothing of ours is mounted or attached in the caller's view.

use super::*;

fn injected_error_marks_the_report_failed_and_cleans_up() {
    let d = tmp();
    bin()
        .args(small_run_args(d.path()))
        .env("OVERLAYBENCH_FAULT", "lookup-mounted:error")
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("injected fault")
                .and(predicate::str::contains("marked 'failed'")),
        );
    assert_clean(d.path());
    let r = read_report(&d.path().join("out")).expect("report");
    assert_eq!(r.status, RunStatus::Failed);
    assert!(!r.errors.is_empty());
}

fn panic_mid_run_leaves_nothing() {
    let d = tmp();
    bin()
        .args(small_run_args(d.path()))
        .env("OVERLAYBENCH_FAULT", "lookup-mounted:panic")
        .assert()
        .code(101)
        .stderr(predicate::str::contains("injected fault"));
    assert_clean(d.path());
}

/// Starts a long run and waits until its loop device is attached.
pub(crate) fn start_long_run(dir: &Path) -> Child {
    start_long_run_with(dir, &[])
}

/// `start_long_run` with more arguments (layouts, backing).
pub(crate) fn start_long_run_with(dir: &Path, extra: &[&str]) -> Child {
    let mut args = small_run_args(dir);
    args.extend(extra.iter().map(|s| s.to_string()));
    let rounds = args.iter().position(|a| a == "--rounds").expect("rounds") + 1;
    args[rounds] = "100000".into();
    let child = StdCommand::new(assert_cmd::cargo::cargo_bin("overlaybench"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while (common::loops_backed_under(dir).is_empty() && !extra.contains(&"tmpfs"))
        || !dir.join("out/report.json").exists()
    {
        assert!(
            Instant::now() < deadline,
            "the run never attached its loop device"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Wait until it measures: only the measuring loop mounts overlays, and they
    // show in the run's own namespace (never in ours). No sleep can know when
    // fixture building ends on a loaded machine; this can.
    let mountinfo = format!("/proc/{}/mountinfo", child.id());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = std::fs::read_to_string(&mountinfo).unwrap_or_default();
        if text.contains(" - overlay ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run never mounted an overlay (still building fixtures after 120 s?)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn ctrl_c_stops_cleanly_with_a_partial_report() {
    let d = tmp();
    let child = start_long_run(d.path());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_clean(d.path());
    let r = read_report(&d.path().join("out")).expect("report");
    assert_eq!(r.status, RunStatus::Interrupted);
    // The rounds measured before Ctrl-C are kept, each case with its real n.
    assert!(
        !r.cases.is_empty(),
        "an interrupted lookup keeps what it measured"
    );
    assert!(r
        .cases
        .iter()
        .all(|c| c.samples.len() == c.stats.n && c.stats.n > 0));
}

fn sigkill_leaves_no_mount_and_the_next_run_removes_the_rest() {
    let d = tmp();
    let mut child = start_long_run(d.path());
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    // The kernel tears the namespace (mounts) and the autoclear loop device down.
    common::assert_nothing_left(d.path(), 10);
    let stale: Vec<PathBuf> = common::run_dirs(&d.path().join("scratch"));
    assert_eq!(
        stale.len(),
        1,
        "the killed run's dir stays until the next run: {stale:?}"
    );
    // Its image was unlinked when attached: only empty dirs remain.
    assert!(!stale[0].join("backing.img").exists());
    let mut args = small_run_args(d.path());
    let i = args.iter().position(|a| a == "--out").expect("out") + 1;
    args[i] = d.path().join("out2").display().to_string();
    args.extend(["--backing".into(), "tmpfs".into()]);
    bin().args(&args).assert().success();
    assert_clean(d.path());
}

/// The EROFS-backed layouts hold more mounts per container (a mount per layer,
/// a metadata image) and, on tmpfs, read-only loop devices: after Ctrl-C and
/// after SIGKILL none of it is left.
fn erofs_layouts_leave_nothing_after_ctrl_c_and_sigkill() {
    for backing in ["ext4", "tmpfs"] {
        let extra = ["--layouts", "erofs,composefs", "--backing", backing];
        let d = tmp();
        let child = start_long_run_with(d.path(), &extra);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .expect("SIGINT");
        let out = child.wait_with_output().expect("wait");
        assert_eq!(
            out.status.code(),
            Some(130),
            "{backing}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_clean(d.path());
        let d = tmp();
        let mut child = start_long_run_with(d.path(), &extra);
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        // Loop devices under EROFS layers on tmpfs are autoclear too.
        common::assert_nothing_left(d.path(), 10);
    }
}

/// This module's tests, each with whether it needs root.
pub fn tests() -> Vec<(&'static str, bool, fn())> {
    vec![
        (
            "isolation::injected_error_marks_the_report_failed_and_cleans_up",
            true,
            injected_error_marks_the_report_failed_and_cleans_up,
        ),
        (
            "isolation::panic_mid_run_leaves_nothing",
            true,
            panic_mid_run_leaves_nothing,
        ),
        (
            "isolation::ctrl_c_stops_cleanly_with_a_partial_report",
            true,
            ctrl_c_stops_cleanly_with_a_partial_report,
        ),
        (
            "isolation::sigkill_leaves_no_mount_and_the_next_run_removes_the_rest",
            true,
            sigkill_leaves_no_mount_and_the_next_run_removes_the_rest,
        ),
        (
            "isolation::erofs_layouts_leave_nothing_after_ctrl_c_and_sigkill",
            true,
            erofs_layouts_leave_nothing_after_ctrl_c_and_sigkill,
        ),
    ]
}
