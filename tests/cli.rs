//! The CLI contract, end to end through the real binary: exit codes, error text,
//! report files, and isolation — after a normal end, an error, a panic, Ctrl-C or
//! SIGKILL nothing of ours is mounted or attached in *this* (the caller's) view.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;

use overlaybench::report::{read_report, Report, RunStatus};

fn bin() -> Command {
    Command::cargo_bin("overlaybench").expect("binary built")
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("obc-")
        .tempdir_in("/var/tmp")
        .expect("tempdir")
}

/// Skips (visibly) a test that needs root.
macro_rules! needs_root {
    () => {
        if !common::is_root() {
            eprintln!("skipped: needs root (real mounts); CI runs as root");
            return;
        }
    };
}

/// A small but complete lookup run.
fn small_run_args(dir: &Path) -> Vec<String> {
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
fn run_in(dir: &Path, out: &Path, args: &[&str]) -> Command {
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

fn assert_clean(dir: &Path) {
    common::assert_nothing_left(dir, 10);
    let left = common::run_dirs(&dir.join("scratch"));
    assert!(left.is_empty(), "scratch run dirs left: {left:?}");
}

#[test]
fn depth_out_of_range_names_value_and_limit() {
    for (bad, shown) in [("0", "depth 0"), ("501", "depth 501")] {
        bin()
            .args(["run", "--depths", bad])
            .assert()
            .code(2)
            .stderr(
                predicate::str::contains(shown).and(predicate::str::contains("between 1 and 500")),
            );
    }
}

#[test]
fn unknown_choices_exit_2() {
    bin()
        .args(["run", "--layouts", "aufs"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("aufs"));
    bin()
        .args(["run", "--workloads", "fsync"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("fsync"));
    bin()
        .args(["run", "--backing", "zfs"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("zfs")
                .and(predicate::str::contains("ext4, xfs, tmpfs, dir:PATH")),
        );
    bin()
        .args(["run", "--fs-size", "lots"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("lots"));
}

#[test]
fn report_refuses_unknown_schema_and_garbage() {
    let d = tmp();
    let p = d.path().join("report.json");
    std::fs::write(&p, r#"{"schema_version": 99}"#).expect("write");
    bin()
        .args(["report"])
        .arg(&p)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("schema_version 99"));
    std::fs::write(&p, "{not json").expect("write");
    bin()
        .args(["report"])
        .arg(&p)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a valid report"));
    bin()
        .args(["report", "/nonexistent/report.json"])
        .assert()
        .code(2);
}

#[test]
fn foreign_scratch_dir_is_refused_and_untouched() {
    needs_root!();
    let d = tmp();
    let scratch = d.path().join("scratch");
    std::fs::create_dir(&scratch).expect("mkdir");
    std::fs::write(scratch.join("precious"), "keep me").expect("write");
    let mut args = small_run_args(d.path());
    args.extend(["--backing".into(), "tmpfs".into()]);
    bin()
        .args(&args)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "not empty and was not made by overlaybench",
        ));
    assert_eq!(
        std::fs::read_to_string(scratch.join("precious")).expect("kept"),
        "keep me"
    );
}

#[test]
fn backing_without_its_mkfs_exits_3_with_install_hint() {
    needs_root!();
    let d = tmp();
    let mut args = small_run_args(d.path());
    args.extend(["--backing".into(), "xfs".into()]);
    bin()
        .args(&args)
        .env("PATH", d.path())
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("mkfs.xfs is not installed")
                .and(predicate::str::contains("xfsprogs")),
        );
    assert_clean(d.path());
    let r = read_report(&d.path().join("out")).expect("a report explaining the failure");
    assert_eq!(r.status, RunStatus::Failed);
}

#[test]
fn without_root_loop_backings_exit_3() {
    needs_root!();
    let d = tmp();
    nix::unistd::chown(d.path(), Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
    let exe = assert_cmd::cargo::cargo_bin("overlaybench");
    let out = StdCommand::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .args(small_run_args(d.path()))
        .output()
        .expect("setpriv runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("loop devices need real root") && err.contains("--backing tmpfs"),
        "{err}"
    );
}

fn lookup_median(r: &Report, layout: &str, target: &str, cache: &str, depth: f64) -> f64 {
    r.cases
        .iter()
        .find(|c| {
            c.layout == layout
                && c.param_str("op") == "stat"
                && c.param_str("target") == target
                && c.param_str("cache") == cache
                && c.param_f64("depth") == Some(depth)
        })
        .unwrap_or_else(|| panic!("no case {layout} {target} {cache} @{depth}"))
        .stats
        .median
}

#[test]
fn run_writes_a_complete_report_that_rerenders() {
    needs_root!();
    let d = tmp();
    bin()
        .args(small_run_args(d.path()))
        .assert()
        .success()
        .stdout(
            predicate::str::contains("overlay2").and(predicate::str::contains("stat · bottom")),
        );
    assert_clean(d.path());
    let out = d.path().join("out");
    let r = read_report(&out).expect("report.json parses strictly");
    assert_eq!(r.status, RunStatus::Complete);
    assert_eq!(r.host.backings.len(), 1);
    assert_eq!(r.host.backings[0].fstype, "ext4");
    assert!(r
        .host
        .overlay_options_in_force
        .get("overlay2")
        .is_some_and(|o| o.contains("lowerdir")));
    // 3 layouts × 3 depths × (3 targets × cold/warm + readdir cold/warm) + 2 overlay layouts × 3 mount cases.
    assert_eq!(r.cases.len(), 3 * 3 * 8 + 2 * 3, "cases: {}", r.cases.len());
    for c in &r.cases {
        assert_eq!(c.samples.len(), c.stats.n);
        assert!(c.stats.median > 0.0 && c.unit == "ns");
    }
    // The kernel's shape: cold lookups of bottom-layer names grow with overlay2
    // depth; the legacy single-lower mount stays flat. (Generous factors: this
    // checks that eviction and the stacks are real, not a speed target.)
    let o2 = lookup_median(&r, "overlay2", "bottom", "cold", 64.0)
        / lookup_median(&r, "overlay2", "bottom", "cold", 1.0);
    let legacy = lookup_median(&r, "overlay", "bottom", "cold", 64.0)
        / lookup_median(&r, "overlay", "bottom", "cold", 1.0);
    assert!(o2 > 2.0, "overlay2 cold bottom @64 / @1 = {o2:.2}");
    assert!(
        legacy < o2 / 2.0,
        "legacy cold bottom @64 / @1 = {legacy:.2}, overlay2 {o2:.2}"
    );
    assert!(r
        .derived
        .iter()
        .any(|x| x.kind == "slope" && x.layout == "overlay2" && x.unit == "ns/layer"));
    assert!(r
        .derived
        .iter()
        .any(|x| x.kind == "ratio" && x.layout == "overlay"));

    let svg = std::fs::read_to_string(out.join("lookup.svg")).expect("svg");
    assert!(
        svg.starts_with("<svg")
            && svg.contains("lookup cost by lower depth")
            && svg.contains("lower depth (image layers)")
    );
    let summary = std::fs::read_to_string(out.join("summary.md")).expect("summary");
    assert!(
        summary.contains("## lookup") && summary.contains("| overlay2 | stat · bottom |"),
        "{summary}"
    );

    // `report` redraws both files from the JSON alone, byte for byte.
    std::fs::remove_file(out.join("lookup.svg")).expect("rm");
    std::fs::remove_file(out.join("summary.md")).expect("rm");
    bin().arg("report").arg(&out).assert().success();
    assert_eq!(
        std::fs::read_to_string(out.join("lookup.svg")).expect("svg again"),
        svg
    );
    assert_eq!(
        std::fs::read_to_string(out.join("summary.md")).expect("summary again"),
        summary
    );
}

#[test]
fn injected_error_marks_the_report_failed_and_cleans_up() {
    needs_root!();
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

#[test]
fn panic_mid_run_leaves_nothing() {
    needs_root!();
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
fn start_long_run(dir: &Path) -> Child {
    let mut args = small_run_args(dir);
    let rounds = args.iter().position(|a| a == "--rounds").expect("rounds") + 1;
    args[rounds] = "100000".into();
    let child = StdCommand::new(assert_cmd::cargo::cargo_bin("overlaybench"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::loops_backed_under(dir).is_empty() || !dir.join("out/report.json").exists() {
        assert!(
            Instant::now() < deadline,
            "the run never attached its loop device"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let it build its fixtures and get into the measuring loop (each round is
    // ~0.1 s here; fixtures well under a second).
    std::thread::sleep(Duration::from_millis(3000));
    child
}

#[test]
fn ctrl_c_stops_cleanly_with_a_partial_report() {
    needs_root!();
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

#[test]
fn sigkill_leaves_no_mount_and_the_next_run_removes_the_rest() {
    needs_root!();
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

#[test]
fn copy_up_sizes_are_validated() {
    bin()
        .args(["run", "--sizes", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("size 0"));
    bin()
        .args(["run", "--sizes", "1M,abc"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid size 'abc'"));
    bin()
        .args(["run", "--depth", "501"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("between 1 and 500"));
}

#[test]
fn copy_up_size_beyond_the_scratch_space_is_refused_up_front() {
    needs_root!();
    let d = tmp();
    run_in(
        d.path(),
        &d.path().join("out"),
        &["--workloads", "copy-up", "--sizes", "100T"],
    )
    .assert()
    .code(2)
    .stderr(predicate::str::contains("has only").and(predicate::str::contains("free")));
    assert_clean(d.path());
}

#[test]
fn copy_up_metacopy_refused_rootless_exits_3() {
    needs_root!();
    let d = tmp();
    nix::unistd::chown(d.path(), Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
    let out = StdCommand::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(assert_cmd::cargo::cargo_bin("overlaybench"))
        .args([
            "run",
            "--workloads",
            "copy-up",
            "--backing",
            "tmpfs",
            "--sizes",
            "1M",
            "--samples",
            "1",
            "--no-progress",
        ])
        .arg("--scratch")
        .arg(d.path().join("scratch"))
        .arg("--out")
        .arg(d.path().join("out"))
        .output()
        .expect("setpriv runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("refuses the overlay option set 'metacopy'") && err.contains("--variants"),
        "{err}"
    );
}

#[test]
fn copy_up_run_on_two_backings() {
    needs_root!();
    let d = tmp();
    let out = d.path().join("out");
    run_in(
        d.path(),
        &out,
        &[
            "--workloads",
            "copy-up",
            "--sizes",
            "1M,4M",
            "--samples",
            "2",
            "--caches",
            "cold",
        ],
    )
    .args(["--backing", "ext4,tmpfs"])
    .assert()
    .success()
    .stdout(
        predicate::str::contains("copy-up on ext4")
            .and(predicate::str::contains("copy-up on tmpfs")),
    );
    assert_clean(d.path());
    let r = read_report(&out).expect("report");
    assert_eq!(r.status, RunStatus::Complete);
    let median = |backing: &str, layout: &str, options: &str, op: &str| {
        r.cases
            .iter()
            .find(|c| {
                c.workload == "copy-up"
                    && c.param_str("backing") == backing
                    && c.layout == layout
                    && c.param_str("options") == options
                    && c.param_str("op") == op
                    && c.param_f64("size_bytes") == Some((4u64 << 20) as f64)
            })
            .unwrap_or_else(|| panic!("no case {backing} {layout} {options} {op}"))
            .stats
            .median
    };
    // metacopy turns chmod into a metadata-only copy; without it chmod copies 4 MiB.
    let (meta, full) = (
        median("ext4", "overlay2", "metacopy", "chmod"),
        median("ext4", "overlay2", "default", "chmod"),
    );
    assert!(
        meta * 3.0 < full,
        "metacopy chmod {meta} ns vs default {full} ns"
    );
    // The data copy metacopy deferred happens at the next write.
    let deferred = median("ext4", "overlay2", "metacopy", "write-after-chmod");
    assert!(
        deferred > 3.0 * meta,
        "write-after-chmod {deferred} ns vs chmod {meta} ns"
    );
    for b in ["ext4", "tmpfs"] {
        median(b, "reference", "copy_file_range+fsync", "copy");
        assert!(r.derived.iter().any(|x| x.workload == "copy-up"
            && x.kind == "ratio"
            && x.params.get("backing").and_then(|v| v.as_str()) == Some(b)));
    }
    let svg = std::fs::read_to_string(out.join("copy-up.svg")).expect("svg");
    assert!(svg.contains("first-write on ext4") && svg.contains("chmod on tmpfs"));
    let summary = std::fs::read_to_string(out.join("summary.md")).expect("summary");
    assert!(
        summary.contains("## copy-up — first write to a lower file (ext4)"),
        "{summary}"
    );
}

#[test]
fn plan_validates_its_input() {
    bin()
        .args(["plan", "--layers", "501", "--fs-size", "1G"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--layers 501"));
    bin()
        .args(["plan"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--fs-size"));
    bin()
        .args(["plan", "--fs-size", "1G", "--path", "/"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used with"));
    let d = tmp();
    std::fs::write(d.path().join("report.json"), r#"{"schema_version": 1}"#).expect("write");
    bin()
        .args(["plan", "--fs-size", "1G", "--from"])
        .arg(d.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a valid report"));
}

#[test]
fn plan_measures_projects_and_writes_its_files() {
    needs_root!();
    let d = tmp();
    let out = d.path().join("plan");
    bin()
        .args([
            "plan",
            "--images",
            "50",
            "--layers",
            "4",
            "--files-per-layer",
            "30",
            "--dirs-per-layer",
            "5",
        ])
        .args(["--fs-size", "1G", "--fs-inodes", "20000", "--scratch"])
        .arg(d.path().join("scratch"))
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("runs out of").and(predicate::str::contains("overlay2")));
    assert_clean(d.path());
    let p: overlaybench::capacity::PlanReport =
        serde_json::from_slice(&std::fs::read(out.join("plan.json")).expect("plan.json"))
            .expect("strict parse");
    assert_eq!(p.layouts.len(), 3);
    let get = |l: &str| p.layouts.iter().find(|x| x.layout == l).expect("layout");
    // Plain copies every image and container in full: it fits the fewest.
    assert!(get("plain").max_images < get("overlay2").max_images);
    assert!(p.layouts.iter().all(|l| l.costs.per_image_inodes > 0.0));
    let svg = std::fs::read_to_string(out.join("plan.svg")).expect("plan.svg");
    assert!(svg.contains("inodes available") && svg.contains("capacity plan"));
}

#[test]
fn inodes_run_counts_every_phase_and_names_the_backing() {
    needs_root!();
    let d = tmp();
    let out = d.path().join("out");
    run_in(
        d.path(),
        &out,
        &[
            "--workloads",
            "inodes",
            "--layers",
            "3,6",
            "--images",
            "2",
            "--containers",
            "1",
        ],
    )
    .args([
        "--files-per-layer",
        "20",
        "--dirs-per-layer",
        "5",
        "--writes",
        "4",
        "--backing",
        "ext4,tmpfs",
    ])
    .assert()
    .success()
    .stdout(
        predicate::str::contains("inodes on ext4").and(predicate::str::contains("inodes on tmpfs")),
    );
    assert_clean(d.path());
    let r = read_report(&out).expect("report");
    let used = |backing: &str, layout: &str, phase: &str| {
        r.cases
            .iter()
            .find(|c| {
                c.workload == "inodes"
                    && c.metric == "used_inodes"
                    && c.param_str("backing") == backing
                    && c.layout == layout
                    && c.param_str("phase") == phase
                    && c.param_f64("layers") == Some(6.0)
            })
            .unwrap_or_else(|| panic!("no case {backing} {layout} {phase}"))
            .stats
            .median
    };
    for b in ["ext4", "tmpfs"] {
        for l in ["overlay2", "overlay", "plain"] {
            assert_eq!(
                used(b, l, "images-removed"),
                used(b, l, "empty"),
                "{b} {l} leaked"
            );
            assert!(used(b, l, "layers") > used(b, l, "base-layers"));
        }
    }
    // tmpfs charges one inode per hard link: the legacy layout's roots cost more there.
    let legacy = |b: &str| used(b, "overlay", "layers") - used(b, "overlay", "empty");
    assert!(
        legacy("tmpfs") > legacy("ext4"),
        "tmpfs {} vs ext4 {}",
        legacy("tmpfs"),
        legacy("ext4")
    );
    assert!(std::fs::read_to_string(out.join("inodes.svg"))
        .expect("svg")
        .contains("used inodes by phase"));
}

#[test]
fn page_cache_input_is_validated() {
    bin()
        .args(["run", "--workloads", "page-cache", "--cache-set", "100T"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("MemAvailable"));
    bin()
        .args(["run", "--workloads", "page-cache", "--backing", "tmpfs"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be measured on tmpfs"));
    bin()
        .args(["run", "--containers", "0,2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--containers"));
}

#[test]
fn page_cache_sharing_factor_from_a_real_mount() {
    needs_root!();
    let d = tmp();
    let out = d.path().join("out");
    run_in(
        d.path(),
        &out,
        &[
            "--workloads",
            "page-cache",
            "--containers",
            "1,3",
            "--cache-set",
            "16M",
            "--cache-files",
            "2",
        ],
    )
    .assert()
    .success()
    .stdout(predicate::str::contains("page-cache on ext4"));
    assert_clean(d.path());
    let r = read_report(&out).expect("report");
    let factor = |layout: &str, k: f64, phase: &str| {
        r.derived
            .iter()
            .find(|x| {
                x.workload == "page-cache"
                    && x.layout == layout
                    && x.params.get("containers").and_then(|v| v.as_f64()) == Some(k)
                    && x.params.get("phase").and_then(|v| v.as_str()) == Some(phase)
            })
            .unwrap_or_else(|| panic!("no factor {layout} {k} {phase}"))
            .value
    };
    for layout in ["overlay2", "overlay"] {
        let shared = factor(layout, 3.0, "read");
        assert!(
            (2.7..=3.3).contains(&shared),
            "{layout}: 3 readers share {shared:.2}x, expected ≈ 3"
        );
        assert!((2.7..=3.3).contains(&factor(layout, 3.0, "read-concurrent")));
        // Two of three containers copied the set up: 3 copies cached, factor ≈ 1.
        let broken = factor(layout, 3.0, "after-copy-up");
        assert!(
            broken < shared * 0.5,
            "{layout}: after copy_up {broken:.2}x vs {shared:.2}x"
        );
    }
    let plain = factor("plain", 3.0, "read");
    assert!(
        (0.9..=1.1).contains(&plain),
        "plain shares {plain:.2}x, expected ≈ 1"
    );
    // On ext4 every copy costs disk: 3 plain copies, 2 copied-up containers.
    let disk = |layout: &str| {
        r.cases
            .iter()
            .find(|c| {
                c.layout == layout
                    && c.metric == "disk_bytes_added"
                    && c.param_f64("containers") == Some(3.0)
            })
            .unwrap_or_else(|| panic!("no disk figure for {layout}"))
            .stats
            .median
            / (16u64 << 20) as f64
    };
    assert!(
        (2.9..=3.3).contains(&disk("plain")),
        "plain: {:.2} sets on disk",
        disk("plain")
    );
    assert!(
        (1.9..=2.3).contains(&disk("overlay2")),
        "overlay2: {:.2} sets on disk",
        disk("overlay2")
    );
    assert!(std::fs::read_to_string(out.join("page-cache.svg"))
        .expect("svg")
        .contains("perfect sharing"));
}

#[test]
fn doctor_reports_hostile_configs_without_crashing() {
    let d = tmp();
    let etc = d.path().join("etc");
    std::fs::create_dir_all(etc.join("docker")).expect("mkdir");
    std::fs::create_dir_all(etc.join("containers")).expect("mkdir");
    std::fs::write(etc.join("docker/daemon.json"), "{\n  \"storage-driver\": \"overlay2\",\n  \"storage-opts\": [\"overlay2.override_kernel_check=true\"],\n  \"bogus\": {\n}").expect("w");
    // 2 MiB of TOML-looking garbage: refused by size, not parsed.
    std::fs::write(
        etc.join("containers/storage.conf"),
        "x = 1\n".repeat(350_000),
    )
    .expect("w");
    let out = bin()
        .args(["doctor", "--json", "--no-probe", "--config-root"])
        .arg(d.path())
        .arg("--path")
        .arg(d.path())
        .arg("--store")
        .arg(d.path())
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: overlaybench::doctor::DoctorReport =
        serde_json::from_slice(&out.stdout).expect("strict JSON");
    let docker = r
        .engines
        .iter()
        .find(|e| e.engine == "docker")
        .expect("docker");
    assert!(
        docker
            .error
            .as_deref()
            .is_some_and(|e| e.contains("line 5")),
        "{docker:?}"
    );
    let cs = r
        .engines
        .iter()
        .find(|e| e.engine == "containers-storage")
        .expect("cs");
    assert!(
        cs.error.as_deref().is_some_and(|e| e.contains("too large")),
        "{cs:?}"
    );
    assert!(r.store.is_none());
    assert_eq!(r.recommendation.choice, "overlay2");
    // The same valid file's removed option is flagged.
    std::fs::write(etc.join("docker/daemon.json"), r#"{"storage-driver":"overlay","storage-opts":["overlay2.override_kernel_check=true"],"unknown":1}"#)
        .expect("w");
    bin()
        .args(["doctor", "--no-probe", "--config-root"])
        .arg(d.path())
        .arg("--path")
        .arg(d.path())
        .assert()
        .success()
        .stdout(
            predicate::str::contains("override_kernel_check")
                .and(predicate::str::contains("legacy overlay driver")),
        );
}

#[test]
fn doctor_refuses_a_missing_path() {
    bin()
        .args(["doctor", "--no-probe", "--path", "/nonexistent/store"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/store"));
}

#[test]
fn doctor_probes_features_by_mounting() {
    needs_root!();
    let d = tmp();
    let out = bin()
        .args(["doctor", "--json", "--scratch"])
        .arg(d.path().join("scratch"))
        .arg("--path")
        .arg(d.path())
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: overlaybench::doctor::DoctorReport =
        serde_json::from_slice(&out.stdout).expect("strict JSON");
    let feature = |n: &str| {
        r.kernel
            .features
            .iter()
            .find(|f| f.name == n)
            .unwrap_or_else(|| panic!("no probe {n}"))
    };
    assert!(feature("overlay mount").supported && feature("multiple lowers").supported);
    assert!(
        r.kernel.max_lower_layers.is_some_and(|m| m >= 2),
        "{:?}",
        r.kernel.max_lower_layers
    );
    assert_eq!(r.path.d_type, None, "an empty dir cannot tell d_type");
    assert_clean(d.path());
}

/// A small lookup + inodes + page-cache run for the gate tests.
fn gate_run(d: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = d.join(name);
    run_in(
        d,
        &out,
        &[
            "--depths", "1,8,32", "--rounds", "3", "--names", "64", "--batch", "16",
        ],
    )
    .args(["--sizes", "4M,16M", "--samples", "5", "--caches", "cold"])
    .args(if extra.is_empty() {
        &["--workloads", "lookup,copy-up", "--procedures", "write"][..]
    } else {
        extra
    })
    .assert()
    .success();
    out
}

#[test]
fn compare_passes_a_run_against_itself_and_writes_every_format() {
    needs_root!();
    let d = tmp();
    let a = gate_run(d.path(), "a", &[]);
    for format in ["text", "markdown", "json", "junit"] {
        let out = bin()
            .args(["compare", "--format", format])
            .arg(&a)
            .arg(&a)
            .output()
            .expect("runs");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{format}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        match format {
            "json" => {
                let c: overlaybench::compare::Comparison =
                    serde_json::from_str(&text).expect("strict JSON");
                assert!(c.results.len() > 5 && c.regressed == 0 && !c.failed());
            }
            "junit" => {
                assert!(
                    text.starts_with("<?xml")
                        && text.contains("<testsuite name=\"overlaybench-gate\"")
                );
                assert!(text.contains("failures=\"0\"") && text.matches("<testcase ").count() > 5);
            }
            "markdown" => assert!(text.contains("### overlaybench gate: PASS"), "{text}"),
            _ => assert!(text.contains("PASS: 0 regressed"), "{text}"),
        }
    }
}

#[test]
fn compare_flags_a_real_slowdown_and_not_the_same_configuration() {
    needs_root!();
    let d = tmp();
    // An honest knob: on xfs (reflink) copy_up is a clone, on ext4 a full copy.
    let xfs = gate_run(
        d.path(),
        "xfs",
        &[
            "--workloads",
            "copy-up",
            "--backing",
            "xfs",
            "--procedures",
            "write,chmod",
        ],
    );
    let ext4 = gate_run(
        d.path(),
        "ext4",
        &[
            "--workloads",
            "copy-up",
            "--backing",
            "ext4",
            "--procedures",
            "write,chmod",
        ],
    );
    let out = bin()
        .args(["compare", "--ignore-param", "backing", "--format", "json"])
        .arg(&xfs)
        .arg(&ext4)
        .output()
        .expect("runs");
    let c: overlaybench::compare::Comparison = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        out.status.code(),
        Some(1),
        "the gate must fail: {:?}",
        c.results
    );
    assert!(
        c.results
            .iter()
            .any(|r| r.verdict == overlaybench::compare::Verdict::Regressed
                && r.id.contains("op=chmod")),
        "{:?}",
        c.results
    );
    // The junit output carries the failure for CI; the same configuration passes.
    let junit = bin()
        .args(["compare", "--ignore-param", "backing", "--format", "junit"])
        .arg(&xfs)
        .arg(&ext4)
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&junit.stdout).contains("<failure message="));
    bin()
        .arg("compare")
        .arg(&ext4)
        .arg(&ext4)
        .assert()
        .success();
}

#[test]
fn compare_refuses_bad_and_incomparable_input() {
    let d = tmp();
    let good = d.path().join("good.json");
    bin()
        .args(["compare", "/nonexistent/a.json", "/nonexistent/b.json"])
        .assert()
        .code(2);
    std::fs::write(&good, "{not json").expect("w");
    bin()
        .arg("compare")
        .arg(&good)
        .arg(&good)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a valid report"));
    bin()
        .args(["compare", "a", "b", "--threshold=-5%"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("-5%"));
    bin()
        .args(["compare", "a", "b", "--threshold", "lots"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid threshold 'lots'"));
    let gate = d.path().join("gate.toml");
    std::fs::write(&gate, "thresold = \"5%\"\n").expect("w");
    bin()
        .arg("compare")
        .arg(&good)
        .arg(&good)
        .arg("--gate-file")
        .arg(&gate)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("thresold"));
    // Two reports whose lookup measured different batch sizes.
    let mk = |batch: u64| {
        serde_json::json!({
            "schema_version": 1, "tool": {"name": "overlaybench", "version": "0"}, "status": "complete",
            "started_at": "", "duration_s": 0.0,
            "host": serde_json::to_value(overlaybench::host::HostInfo::default()).expect("host"),
            "config": {"plan": {"lookup": {"batch": batch}}}, "cases": [], "derived": [], "errors": [], "notes": []
        })
    };
    let (a, b) = (d.path().join("a.json"), d.path().join("b.json"));
    std::fs::write(&a, mk(16).to_string()).expect("w");
    std::fs::write(&b, mk(32).to_string()).expect("w");
    bin()
        .arg("compare")
        .arg(&a)
        .arg(&b)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "lookup.batch is 16 in the baseline, 32 in the current",
        ));
}

#[test]
fn exports_parse_back_with_their_published_fields() {
    needs_root!();
    let d = tmp();
    let a = gate_run(d.path(), "a", &[]);
    let out = bin()
        .args(["report", "--format", "bmf"])
        .arg(&a)
        .output()
        .expect("runs");
    assert!(out.status.success());
    // Bencher Metric Format: { benchmark: { measure: { value, lower_value?, upper_value? } } }
    let bmf: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, serde_json::Value>,
    > = serde_json::from_slice(&out.stdout).expect("bmf");
    assert!(bmf.len() > 10);
    for measures in bmf.values() {
        for m in measures.values() {
            let obj = m.as_object().expect("measure object");
            assert!(obj.get("value").is_some_and(|v| v.is_f64()));
            assert!(
                obj.keys()
                    .all(|k| ["value", "lower_value", "upper_value"].contains(&k.as_str())),
                "{obj:?}"
            );
        }
    }
    // github-action-benchmark customSmallerIsBetter: [{ name, unit, value, range?, extra? }]
    let out = bin()
        .args(["report", "--format", "github-action-benchmark"])
        .arg(&a)
        .output()
        .expect("runs");
    let gab: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_slice(&out.stdout).expect("array");
    assert!(gab.len() > 10);
    for e in &gab {
        assert!(
            e["name"].is_string() && e["unit"].is_string() && e["value"].is_number(),
            "{e:?}"
        );
        assert!(
            e.keys()
                .all(|k| ["name", "unit", "value", "range", "extra"].contains(&k.as_str())),
            "{e:?}"
        );
    }
}
