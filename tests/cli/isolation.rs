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

/// The mount id of the run's scratch filesystem, as its own namespace shows it.
fn scratch_mount_id(pid: u32, dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    let under = dir.join("scratch").display().to_string();
    text.lines()
        .find(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.len() > 4 && f[4].starts_with(&under) && f[4].ends_with("/fs")
        })
        .and_then(|l| l.split(' ').next().map(str::to_string))
}

/// Whether the run `pid` has an overlay mounted under `dir` in its own namespace.
fn overlay_mounted(pid: u32, dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")) else {
        return false;
    };
    let under = dir.display().to_string();
    text.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let fstype = l.split(" - ").nth(1).and_then(|t| t.split(' ').next());
        f.len() > 4 && f[4].starts_with(&under) && fstype == Some("overlay")
    })
}

/// Starts a long run and waits until its loop device is attached.
pub(crate) fn start_long_run(dir: &Path) -> Child {
    start_long_run_with(dir, &[])
}

/// Starts a long lookup run with `extra` arguments and waits until it
/// measures: the first cold round remounts the scratch fs (a new mount id in
/// the run's own namespace — whatever the layout mounts, or if it mounts
/// nothing); tmpfs is never remounted, so there the first overlay mount says so.
/// Fails the test without leaving its run behind: the run is interrupted (so
/// it unmounts and detaches what it made, as after any Ctrl-C) and reaped first.
fn give_up(mut child: Child, why: String) -> ! {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let _ = child.wait();
    panic!("{why}");
}

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
        if Instant::now() >= deadline {
            give_up(child, "the run never attached its loop device".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Wait until it measures: only the measuring loop remounts the scratch fs,
    // and that shows in the run's own namespace (never in ours). No sleep can
    // know when fixture building ends on a loaded machine; this can.
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let now = scratch_mount_id(child.id(), dir);
        if first.is_none() {
            first = now.clone();
        } else if now.is_some() && now != first {
            break;
        }
        if extra.contains(&"tmpfs") && overlay_mounted(child.id(), dir) {
            break;
        }
        if Instant::now() >= deadline {
            give_up(
                child,
                format!(
                    "the run with {extra:?} never started measuring (still building fixtures after 300 s?); \
                     scratch mount {first:?} → {now:?}"
                ),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// The new layouts, each with the backing it runs on.
const NEW_LAYOUTS: [(&str, &str); 4] = [
    ("containerd", "ext4"),
    ("rootless", "ext4"),
    ("fuse-overlayfs", "ext4"),
    ("btrfs", "btrfs"),
];

fn ctrl_c_with_each_new_layout_leaves_nothing() {
    for (layout, backing) in NEW_LAYOUTS {
        let d = tmp();
        let child = start_long_run_with(d.path(), &["--layouts", layout, "--backing", backing]);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .expect("SIGINT");
        let out = child.wait_with_output().expect("wait");
        assert_eq!(
            out.status.code(),
            Some(130),
            "{layout}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_clean(d.path());
        common::assert_no_process_mentions(d.path(), 10);
        let r = read_report(&d.path().join("out")).expect("report");
        assert_eq!(r.status, RunStatus::Interrupted, "{layout}");
        assert!(
            r.cases.iter().any(|c| c.layout == layout),
            "{layout}: an interrupted lookup keeps what it measured"
        );
    }
}

fn sigkill_with_each_new_layout_leaves_nothing() {
    for (layout, backing) in NEW_LAYOUTS {
        let d = tmp();
        let mut child = start_long_run_with(d.path(), &["--layouts", layout, "--backing", backing]);
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        // Mounts go with the namespace, the loop device with autoclear, a FUSE
        // daemon with its parent (PR_SET_PDEATHSIG).
        common::assert_nothing_left(d.path(), 10);
        common::assert_no_process_mentions(d.path(), 10);
    }
}

fn ctrl_c_stops_cleanly_with_a_partial_report() {
    let d = tmp();
    // A real SIGINT, sent by the run to itself right after its first measured
    // mount: deterministic under any load (no sleep guessing when samples exist).
    let mut args = small_run_args(d.path());
    let rounds = args.iter().position(|a| a == "--rounds").expect("rounds") + 1;
    args[rounds] = "100000".into();
    let child = StdCommand::new(assert_cmd::cargo::cargo_bin("overlaybench"))
        .args(&args)
        .env("OVERLAYBENCH_FAULT", "lookup-measured:sigint")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
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
pub fn tests() -> Vec<(String, bool, fn())> {
    vec![
        cli_trial!(injected_error_marks_the_report_failed_and_cleans_up),
        cli_trial!(panic_mid_run_leaves_nothing),
        cli_trial!(ctrl_c_stops_cleanly_with_a_partial_report),
        cli_trial!(sigkill_leaves_no_mount_and_the_next_run_removes_the_rest),
        cli_trial!(ctrl_c_with_each_new_layout_leaves_nothing),
        cli_trial!(sigkill_with_each_new_layout_leaves_nothing),
        cli_trial!(erofs_layouts_leave_nothing_after_ctrl_c_and_sigkill),
    ]
}
