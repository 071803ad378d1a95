//! Each workload end to end through `run`: its input checks and its figures from real mounts.

use super::*;

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

fn copy_up_size_beyond_the_scratch_space_is_refused_up_front() {
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

fn copy_up_metacopy_refused_rootless_exits_3() {
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

fn copy_up_run_on_two_backings() {
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

fn inodes_run_counts_every_phase_and_names_the_backing() {
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
        .args(["run", "--page-cache-containers", "0,2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--page-cache-containers 0 is out of range",
        ));
}

fn page_cache_sharing_factor_from_a_real_mount() {
    let d = tmp();
    let out = d.path().join("out");
    run_in(
        d.path(),
        &out,
        &[
            "--workloads",
            "page-cache",
            "--page-cache-containers",
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

/// M images holding the same files in other layers: composefs caches the
/// files once (sharing ≈ M), overlay2 once per image (≈ 1) — through the
/// page-cache workload's own measurement.
fn page_cache_composefs_shares_across_images() {
    let d = tmp();
    let out = d.path().join("out");
    run_in(
        d.path(),
        &out,
        &[
            "--workloads",
            "page-cache",
            "--layouts",
            "overlay2,composefs,erofs",
            "--page-cache-containers",
            "1",
            "--cache-images",
            "1,3",
            "--cache-set",
            "16M",
            "--cache-files",
            "2",
        ],
    )
    .assert()
    .success()
    .stdout(predicate::str::contains("M different images"));
    assert_clean(d.path());
    let r = read_report(&out).expect("report");
    let factor = |layout: &str| {
        r.derived
            .iter()
            .find(|x| {
                x.workload == "page-cache"
                    && x.layout == layout
                    && x.params.get("images").and_then(|v| v.as_f64()) == Some(3.0)
                    && x.params.get("phase").and_then(|v| v.as_str()) == Some("multi-image")
            })
            .unwrap_or_else(|| panic!("no multi-image factor for {layout}"))
            .value
    };
    let (cfs, o2, erofs) = (factor("composefs"), factor("overlay2"), factor("erofs"));
    assert!(
        (2.7..=3.3).contains(&cfs),
        "composefs: 3 images share {cfs:.2}x, expected ≈ 3"
    );
    assert!(
        (0.9..=1.1).contains(&o2),
        "overlay2: 3 images share {o2:.2}x, expected ≈ 1 (one copy per image)"
    );
    // An EROFS layer's data is cached in its inode and in the image file.
    assert!(
        (0.45..=0.55).contains(&erofs),
        "erofs: 3 images share {erofs:.2}x, expected ≈ 0.5 (two copies per image)"
    );
}

/// A layout the user names must run: without its tool (found by probing)
/// the run exits 3 naming it; taken by default it is skipped with a note.
fn erofs_layouts_missing_features_exit_3_when_named() {
    let d = tmp();
    run_in(
        d.path(),
        &d.path().join("out"),
        &[
            "--workloads",
            "lookup",
            "--layouts",
            "erofs,plain",
            "--backing",
            "tmpfs",
        ],
    )
    .env("PATH", d.path())
    .assert()
    .code(3)
    .stderr(
        predicate::str::contains("layout erofs cannot run on this host").and(
            predicate::str::contains("mkfs.erofs (erofs-utils) is missing"),
        ),
    );
    assert_clean(d.path());
    // Rootless, EROFS cannot be mounted at all: named, composefs exits 3 too.
    nix::unistd::chown(d.path(), Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
    let out = StdCommand::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(assert_cmd::cargo::cargo_bin("overlaybench"))
        .args([
            "run",
            "--workloads",
            "lookup",
            "--layouts",
            "composefs",
            "--backing",
            "tmpfs",
            "--no-progress",
        ])
        .arg("--scratch")
        .arg(d.path().join("scratch-rootless"))
        .arg("--out")
        .arg(d.path().join("out3"))
        .output()
        .expect("setpriv runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("layout composefs") && err.contains("real root"),
        "{err}"
    );
}

/// This module's tests, each with whether it needs root.
pub fn tests() -> Vec<(String, bool, fn())> {
    vec![
        cli_trial!(copy_up_sizes_are_validated, user),
        cli_trial!(copy_up_size_beyond_the_scratch_space_is_refused_up_front),
        cli_trial!(copy_up_metacopy_refused_rootless_exits_3),
        cli_trial!(copy_up_run_on_two_backings),
        cli_trial!(inodes_run_counts_every_phase_and_names_the_backing),
        cli_trial!(page_cache_input_is_validated, user),
        cli_trial!(page_cache_sharing_factor_from_a_real_mount),
        cli_trial!(page_cache_composefs_shares_across_images),
        cli_trial!(erofs_layouts_missing_features_exit_3_when_named),
    ]
}
