//! The storm workload end to end: bad input exits 2 naming the limit before
//! anything is made; a run writes its cases, chart and summary and feeds
//! `plan`; Ctrl-C in the middle of a large mount-table phase leaves nothing
//! mounted.

use super::*;

fn storm_input_is_validated_before_anything_is_made() {
    let d = tmp();
    let scratch = d.path().join("scratch");
    for (args, says) in [
        (vec!["--storm-depths", "501"], "depth 501"),
        (vec!["--concurrency", "0"], "--concurrency 0"),
        (vec!["--concurrency", "5000"], "1 to 1024"),
        (vec!["--held-depth", "600"], "--held-depth 600"),
        (vec!["--mounts-held", "200000"], "fs.mount-max"),
    ] {
        bin()
            .args(["run", "--workloads", "storm", "--scratch"])
            .arg(&scratch)
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(says));
    }
    // 64 containers with per-layer idmap at depth 64 hold more than 256 descriptors.
    let out = StdCommand::new("prlimit")
        .arg("--nofile=256")
        .arg(assert_cmd::cargo::cargo_bin("overlaybench"))
        .args(["run", "--workloads", "storm", "--concurrency", "64"])
        .args(["--storm-depths", "64", "--idmap", "per-layer", "--scratch"])
        .arg(&scratch)
        .output()
        .expect("prlimit runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("RLIMIT_NOFILE is 256"), "{err}");
    assert!(!scratch.exists(), "nothing may be made before the checks");
}

fn storm_run_writes_cases_chart_summary_and_a_plan_line() {
    let d = tmp();
    let out = d.path().join("out");
    run_in(
        d.path(),
        &out,
        &[
            "--workloads",
            "inodes,storm",
            "--concurrency",
            "1,4",
            "--storm-depths",
            "1,8",
            "--storm-rounds",
            "2",
            "--mounts-held",
            "0,40,80",
            "--held-depth",
            "4",
        ],
    )
    .args([
        "--layers",
        "8",
        "--images",
        "1",
        "--containers",
        "1",
        "--files-per-layer",
        "5",
        "--dirs-per-layer",
        "2",
        "--writes",
        "1",
    ])
    .assert()
    .success()
    .stdout(predicate::str::contains("storm on ext4"));
    assert_clean(d.path());
    let r = read_report(&out).expect("report");
    assert_eq!(r.status, RunStatus::Complete, "{:?}", r.errors);
    let storm: Vec<_> = r.cases.iter().filter(|c| c.workload == "storm").collect();
    let has = |metric: &str, layout: &str| {
        storm
            .iter()
            .any(|c| c.metric == metric && c.layout == layout)
    };
    for layout in ["overlay2", "overlay", "plain"] {
        for m in [
            "time_to_ready",
            "time_to_ready_p99",
            "starts_per_second",
            "time_to_stop",
        ] {
            assert!(has(m, layout), "no {m} for {layout}");
        }
    }
    // Every container of every storm is a sample: 2 rounds × 2 storms of 4
    // (small storms repeat up to 8 containers a round), and C = 1 storms 8 times a round.
    let at = |c: f64, metric: &str| {
        storm
            .iter()
            .find(|x| {
                x.layout == "overlay2"
                    && x.metric == metric
                    && x.param_f64("concurrency") == Some(c)
                    && x.param_str("idmap") == "none"
            })
            .map(|x| x.samples.len())
            .expect("case")
    };
    assert_eq!(at(4.0, "time_to_ready"), 16);
    assert_eq!(at(4.0, "time_to_ready_p99"), 4);
    assert_eq!(at(1.0, "time_to_ready_p99"), 16);
    // A layout that mounts nothing has no mount-table figures.
    assert!(has("mountinfo_read_time", "overlay2") && !has("mountinfo_read_time", "plain"));
    // Idmapped lowers where the layout stacks layers: per layer and at the parent.
    for mode in ["per-layer", "common-parent"] {
        assert!(
            storm.iter().any(|c| c.layout == "overlay2"
                && c.param_str("idmap") == mode
                && c.metric == "time_to_ready"),
            "no overlay2 {mode} case"
        );
    }
    assert!(!storm
        .iter()
        .any(|c| c.layout == "plain" && c.param_str("idmap") == "per-layer"));
    let derived = |kind: &str| {
        r.derived
            .iter()
            .filter(|x| x.workload == "storm" && x.kind == kind)
            .count()
    };
    assert!(
        derived("ratio") > 0 && derived("slope") > 0,
        "{:?}",
        r.derived
    );
    // The held mounts' lines grow the table with every mount.
    let bytes = |n: f64| {
        storm
            .iter()
            .find(|c| {
                c.layout == "overlay2"
                    && c.metric == "mountinfo_bytes"
                    && c.param_f64("held") == Some(n)
            })
            .map(|c| c.stats.median)
            .expect("bytes")
    };
    assert!(bytes(80.0) > bytes(40.0) && bytes(40.0) > bytes(0.0));
    assert!(r.notes.iter().any(|n| n.contains("nothing of ours left")));
    let svg = std::fs::read_to_string(out.join("storm.svg")).expect("storm.svg");
    assert!(svg.contains("containers started at once") && svg.contains("mounts held"));
    let summary = std::fs::read_to_string(out.join("summary.md")).expect("summary");
    for heading in [
        "## storm — containers started at once (ext4)",
        "## storm — idmapped lower layers (ext4)",
        "## storm — mount table against mounts held (ext4)",
    ] {
        assert!(summary.contains(heading), "{heading} missing:\n{summary}");
    }
    // plan reads the start-up rate from the same report.
    bin()
        .args(["plan", "--from"])
        .arg(&out)
        .args([
            "--layers",
            "8",
            "--files-per-layer",
            "5",
            "--dirs-per-layer",
            "2",
            "--images",
            "10",
            "--containers",
            "3",
            "--fs-size",
            "10G",
            "--out",
        ])
        .arg(d.path().join("plan"))
        .assert()
        .success()
        .stdout(
            predicate::str::contains("start-up burst: 30 containers")
                .and(predicate::str::contains("with overlay2"))
                .and(predicate::str::contains("storm depth 8")),
        );
}

fn ctrl_c_in_a_large_mount_table_phase_leaves_nothing_mounted() {
    let d = tmp();
    let child = StdCommand::new(assert_cmd::cargo::cargo_bin("overlaybench"))
        .args(["run", "--workloads", "storm", "--layouts", "overlay2"])
        .args([
            "--concurrency",
            "1",
            "--storm-depths",
            "1",
            "--storm-rounds",
            "1",
        ])
        .args(["--idmap", "none", "--mounts-held", "5000", "--no-progress"])
        .arg("--scratch")
        .arg(d.path().join("scratch"))
        .arg("--out")
        .arg(d.path().join("out"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The run's own namespace, seen from here: wait until it holds many overlays.
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(120);
    let overlays = || {
        std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
            .map(|t| t.lines().filter(|l| l.contains(" - overlay ")).count())
            .unwrap_or(0)
    };
    while overlays() < 300 {
        assert!(
            Instant::now() < deadline,
            "the run never held 300 overlay mounts"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert_clean(d.path());
    let r = read_report(&d.path().join("out")).expect("report");
    assert_eq!(r.status, RunStatus::Interrupted);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    // The run checked its own mount table after removing the held mounts.
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("nothing of ours left") && n.contains("after the interruption")),
        "{:?}",
        r.notes
    );
    // The storm measured before Ctrl-C is kept.
    assert!(r
        .cases
        .iter()
        .any(|c| c.workload == "storm" && c.metric == "time_to_ready"));
}

/// This module's tests, each with whether it needs root.
pub fn tests() -> Vec<(String, bool, fn())> {
    vec![
        cli_trial!(storm_input_is_validated_before_anything_is_made, user),
        cli_trial!(storm_run_writes_cases_chart_summary_and_a_plan_line),
        cli_trial!(ctrl_c_in_a_large_mount_table_phase_leaves_nothing_mounted),
    ]
}
