//! `run`: argument validation (exit 2 naming the value), backings, a complete run that re-renders.

use super::*;

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

/// lookup's and storm's depths and rounds are separate flags now, and inodes'
/// and page-cache's containers: each refusal names the flag that was given,
/// so each reached its own workload.
fn workload_flags_reach_only_their_workload() {
    for (args, says) in [
        (
            ["--rounds", "0"],
            "--rounds 0 is out of range: use --rounds >= 1",
        ),
        (
            ["--storm-rounds", "0"],
            "--storm-rounds 0 is out of range: use --storm-rounds >= 1",
        ),
        (["--storm-depths", "0"], "depth 0 is out of range"),
        (
            ["--page-cache-containers", "0"],
            "--page-cache-containers 0 is out of range",
        ),
        (
            ["--containers", "1001"],
            "--containers 1001 is out of range",
        ),
    ] {
        bin()
            .args(["run"])
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(says));
    }
    // Storm sees its own depths, not lookup's (which once fed both).
    bin()
        .args(["run", "--workloads", "storm", "--depths", "0"])
        .args(["--storm-depths", "600"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("depth 600 is out of range")
                .and(predicate::str::contains("depth 0").not()),
        );
    // inodes takes one number of containers per image (as `plan` does).
    bin()
        .args(["run", "--containers", "1,2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--containers"));
}

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
            predicate::str::contains("zfs").and(predicate::str::contains(
                "ext4, xfs, btrfs, tmpfs, dir:PATH",
            )),
        );
    bin()
        .args(["run", "--fs-size", "lots"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("lots"));
}

fn foreign_scratch_dir_is_refused_and_untouched() {
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

fn backing_without_its_mkfs_exits_3_with_install_hint() {
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

fn without_root_loop_backings_exit_3() {
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

pub(crate) fn lookup_median(
    r: &Report,
    layout: &str,
    target: &str,
    cache: &str,
    depth: f64,
) -> f64 {
    r.cases
        .iter()
        .find(|c| {
            c.layout == layout
                && c.param_str("op") == "stat"
                && c.param_str("target") == target
                && c.param_str("cache") == cache
                && c.param_f64("depth") == Some(depth)
                && !c.params.contains_key("calibration")
        })
        .unwrap_or_else(|| panic!("no case {layout} {target} {cache} @{depth}"))
        .stats
        .median
}

fn run_writes_a_complete_report_that_rerenders() {
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
    // 3 layouts × 3 depths × (3 targets × cold/warm + readdir cold/warm + start-up)
    // + 2 overlay layouts × 3 mount cases + the store sweep: 3 layouts × stat/open
    // × cold/warm × 3 store sizes + the calibration: per cold stat series (3
    // layouts × 3 depths × 3 targets) its references and the quotients.
    assert_eq!(
        r.cases.len(),
        3 * 3 * 9 + 2 * 3 + 3 * 2 * 2 * 3 + 3 * 3 * 3 * 2,
        "cases: {}",
        r.cases.len()
    );
    for c in &r.cases {
        assert_eq!(c.samples.len(), c.stats.n);
        let unit = if c.param_str("calibration") == "normalised" {
            "x"
        } else {
            "ns"
        };
        assert!(c.stats.median > 0.0 && c.unit == unit, "{}", c.id);
    }
    // The calibration is a cold lookup in a plain directory of the backing:
    // plain's own lookups are the same operation, so its quotient sits near 1
    // at every depth, while overlay2's grows with the layers searched.
    let quotient = |layout: &str, depth: f64| {
        r.cases
            .iter()
            .find(|c| {
                c.layout == layout
                    && c.param_str("calibration") == "normalised"
                    && c.param_str("target") == "bottom"
                    && c.param_f64("depth") == Some(depth)
            })
            .unwrap_or_else(|| panic!("no calibrated case {layout} @{depth}"))
            .stats
            .median
    };
    for depth in [1.0, 16.0, 64.0] {
        let q = quotient("plain", depth);
        assert!(
            (0.5..2.0).contains(&q),
            "plain ÷ calibration @{depth} = {q:.2}"
        );
    }
    assert!(
        quotient("overlay2", 64.0) > 2.0 * quotient("overlay2", 1.0),
        "overlay2's calibrated cold lookup must grow with depth"
    );
    // The gate uses the calibrated figures.
    let gate = bin()
        .args(["compare", "--format", "json", "--noisy", "warn"])
        .arg(&out)
        .arg(&out)
        .output()
        .expect("compare runs");
    let c: overlaybench::compare::Comparison =
        serde_json::from_slice(&gate.stdout).expect("compare json");
    let lookup: Vec<&str> = c
        .results
        .iter()
        .filter(|f| f.workload == "lookup")
        .map(|f| f.id.as_str())
        .collect();
    // Only calibrated figures, and of the per-depth ones only the deepest stack.
    assert!(
        lookup.iter().any(|id| id.contains("/ratio/"))
            && lookup.iter().all(|id| id.contains("calibration=normalised")
                && (!id.contains("/ratio/") || id.contains("depth=64"))),
        "gated lookup figures: {lookup:?}"
    );
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

/// Issue 13's run: every row, every workload, ext4 and btrfs in one report;
/// the btrfs row only on btrfs (skipped on ext4 with the reason); the claim
/// about overlay2 and btrfs checked in the summary.
fn all_rows_on_ext4_and_btrfs_in_one_report() {
    let d = tmp();
    let out = d.path().join("out");
    let layouts = [
        "overlay2",
        "containerd",
        "rootless",
        "fuse-overlayfs",
        "btrfs",
        "plain",
    ];
    run_in(
        d.path(),
        &out,
        &[
            "--layouts",
            &layouts.join(","),
            "--backing",
            "ext4,btrfs",
            "--depths",
            "1,4",
            "--rounds",
            "1",
            "--storm-depths",
            "1,4",
            "--storm-rounds",
            "1",
            "--names",
            "32",
            "--batch",
            "16",
            "--sizes",
            "1M,4M",
            "--samples",
            "1",
            "--layers",
            "3",
            "--images",
            "2",
            "--page-cache-containers",
            "1,2",
            "--cache-set",
            "8M",
            "--cache-files",
            "2",
        ],
    )
    .assert()
    .success();
    assert_clean(d.path());
    common::assert_no_process_mentions(d.path(), 10);
    let r = read_report(&out).expect("report.json parses strictly");
    assert_eq!(r.status, RunStatus::Complete, "{:?}", r.errors);
    assert_eq!(r.host.backings.len(), 2);
    assert_eq!(r.skipped.len(), 1, "{:?}", r.skipped);
    assert_eq!(
        (r.skipped[0].layout.as_str(), r.skipped[0].backing.as_str()),
        ("btrfs", "ext4")
    );
    assert!(r.skipped[0].reason.contains("--backing btrfs"));
    for workload in ["lookup", "copy-up", "inodes", "page-cache"] {
        for backing in ["ext4", "btrfs"] {
            for layout in layouts {
                let expected = !(layout == "btrfs" && backing == "ext4");
                let found = r.cases.iter().any(|c| {
                    c.workload == workload
                        && c.layout == layout
                        && c.param_str("backing") == backing
                });
                assert_eq!(found, expected, "{workload} · {layout} · {backing}");
            }
        }
    }
    let summary = std::fs::read_to_string(out.join("summary.md")).expect("summary");
    assert!(
        summary.contains("## Claims checked on this host")
            && summary.contains("overlay2 performs better than btrfs")
            && summary.contains("## Skipped"),
        "{summary}"
    );
}

/// This module's tests, each with whether it needs root.
pub fn tests() -> Vec<(String, bool, fn())> {
    vec![
        cli_trial!(depth_out_of_range_names_value_and_limit, user),
        cli_trial!(workload_flags_reach_only_their_workload, user),
        cli_trial!(unknown_choices_exit_2, user),
        cli_trial!(foreign_scratch_dir_is_refused_and_untouched),
        cli_trial!(backing_without_its_mkfs_exits_3_with_install_hint),
        cli_trial!(without_root_loop_backings_exit_3),
        cli_trial!(run_writes_a_complete_report_that_rerenders),
        cli_trial!(all_rows_on_ext4_and_btrfs_in_one_report),
    ]
}
