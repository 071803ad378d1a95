//! `doctor`: hostile configs, missing paths, feature probes.

use super::*;

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
    // No store and an unreadable daemon.json: a new host gets containerd's
    // snapshotter, Docker 29's default store.
    assert_eq!(r.recommendation.choice, "containerd");
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

fn doctor_refuses_a_missing_path() {
    bin()
        .args(["doctor", "--no-probe", "--path", "/nonexistent/store"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/store"));
}

fn doctor_probes_features_by_mounting() {
    let d = tmp();
    let out = bin()
        .args(["doctor", "--json"])
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
    // Rootless overlay is probed on ext4, where a rootless store lives, not
    // on doctor's tmpfs (which keeps user.* xattrs only since Linux 6.6).
    let rootless = feature("rootless overlay (user namespace)");
    assert!(
        rootless.supported
            && rootless
                .detail
                .starts_with("mkfs.ext4 made a filesystem on a loop device"),
        "{rootless:?}"
    );
    assert!(
        r.kernel.max_lower_layers.is_some_and(|m| m >= 2),
        "{:?}",
        r.kernel.max_lower_layers
    );
    assert_eq!(r.path.d_type, None, "an empty dir cannot tell d_type");
    assert_clean(d.path());
}

/// Every stack is assessed from a probe that mounted it the way its engine
/// does, each runnable stack's reasons cite a figure measured here, and the
/// choice is among the runnable ones. Overlay's own stacks must work on any
/// host the suite runs on; the others (btrfs, EROFS, FUSE: kernel features)
/// are skipped visibly, with the probe's own reason, where this host lacks them.
fn doctor_probes_every_stack_and_cites_figures() {
    let d = tmp();
    let out = bin()
        .args(["doctor", "--json", "--from", "reports/example"])
        .arg("--path")
        .arg(d.path())
        .arg("--config-root")
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
    let rec = &r.recommendation;
    let names: Vec<&str> = rec.stacks.iter().map(|s| s.name.as_str()).collect();
    // Every layout of the registry, in its order: doctor keeps no list of its own.
    assert_eq!(names, overlaybench::layout::names());
    for st in &rec.stacks {
        let must = matches!(
            st.name.as_str(),
            "containerd" | "overlay2" | "rootless" | "overlay" | "plain"
        );
        match st.runnable {
            Some(true) => {}
            other if !must => {
                eprintln!(
                    "SKIP stack {}: runnable {other:?}: {}",
                    st.name,
                    st.reasons
                        .iter()
                        .map(|r| r.text.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                );
                continue;
            }
            other => panic!(
                "{} must run on any host: {other:?} {:?}",
                st.name, st.reasons
            ),
        }
        if st.name != "plain" {
            assert!(
                st.mount_us.is_some_and(|us| us > 0),
                "{} was not mounted by its own probe: {st:?}",
                st.name
            );
            assert!(
                st.reasons.iter().any(|r| r.figure.contains(".mount_us = ")),
                "{}: no reason cites its measured mount time: {:?}",
                st.name,
                st.reasons
            );
        }
    }
    assert!(
        rec.stacks
            .iter()
            .any(|s| s.name == rec.choice && s.runnable == Some(true)),
        "the choice {} is not a runnable stack",
        rec.choice
    );
    assert!(rec.reasons.iter().all(|r| !r.figure.is_empty()));
    // The example report was measured elsewhere: shown, never used to choose.
    let ev = rec.evidence.as_ref().expect("the --from report's evidence");
    assert!(!ev.layouts.is_empty(), "{ev:?}");
    if !ev.same_kernel {
        assert!(
            rec.reasons
                .iter()
                .any(|r| r.text.contains("not this host's")),
            "{:?}",
            rec.reasons
        );
    }
    assert_clean(d.path());
}

/// This module's tests, each with whether it needs root.
/// A run prints its findings before any table, and `doctor --from` that
/// report chooses what the run recommended between the pair it compared:
/// one engine, so the two never disagree.
fn doctor_from_a_run_recommends_what_the_run_found() {
    let d = tmp();
    let out = d.path().join("run");
    let run = run_in(
        d.path(),
        &out,
        &[
            "--depths", "1,8,32", "--rounds", "3", "--names", "64", "--batch", "16",
        ],
    )
    .args([
        "--workloads",
        "lookup,inodes",
        "--layouts",
        "overlay2,overlay,plain",
    ])
    .output()
    .expect("runs");
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let first_table = stdout.find("lookup on ").expect("the lookup table");
    assert!(stdout.starts_with("Findings"), "{stdout}");
    let rec_at = stdout.find("Recommendation: ").expect("a recommendation");
    assert!(rec_at < first_table, "findings first: {stdout}");
    let text = std::fs::read_to_string(out.join("report.json")).expect("report.json");
    let report: overlaybench::report::Report = serde_json::from_str(&text).expect("a report");
    let rec = report
        .findings
        .as_ref()
        .and_then(|f| f.recommendation.as_ref())
        .expect("the run's recommendation");
    assert_eq!(
        (rec.layout.as_str() == "overlay2") as u8 + (rec.over.as_str() == "overlay2") as u8,
        1,
        "between overlay2 and overlay: {rec:?}"
    );
    let ids: std::collections::BTreeSet<&str> =
        report.cases.iter().map(|c| c.id.as_str()).collect();
    for id in report.findings.iter().flat_map(|f| f.cited()) {
        assert!(ids.contains(id), "{id} is cited but not in report.json");
    }
    let doc = bin()
        .args(["doctor", "--json", "--from"])
        .arg(&out)
        .arg("--path")
        .arg(d.path())
        .arg("--config-root")
        .arg(d.path())
        .output()
        .expect("runs");
    assert_eq!(
        doc.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&doc.stderr)
    );
    let r: overlaybench::doctor::DoctorReport =
        serde_json::from_slice(&doc.stdout).expect("strict JSON");
    // Doctor shows the run's own recommendation, never chooses the layout
    // the run recommended against, and takes the run's side when its own
    // choice is one of the two (with no store here it may be containerd's
    // snapshotter, which the run did not measure).
    let shown = r
        .recommendation
        .evidence
        .as_ref()
        .and_then(|e| e.recommendation.as_ref())
        .expect("doctor --from shows the run's recommendation");
    assert_eq!((&shown.layout, &shown.over), (&rec.layout, &rec.over));
    let choice = &r.recommendation.choice;
    assert_ne!(choice, &rec.over, "{:?}", r.recommendation.reasons);
    if [&rec.layout, &rec.over].contains(&choice) {
        assert_eq!(choice, &rec.layout);
    }
    assert!(
        r.recommendation
            .reasons
            .iter()
            .any(|x| x.figure == "evidence.recommendation"
                && x.text
                    .contains(&format!("recommends {} over {}", rec.layout, rec.over))),
        "doctor cites the run's recommendation: {:?}",
        r.recommendation.reasons
    );
    assert_clean(d.path());
}

pub fn tests() -> Vec<(String, bool, fn())> {
    vec![
        cli_trial!(doctor_reports_hostile_configs_without_crashing, user),
        cli_trial!(doctor_refuses_a_missing_path, user),
        cli_trial!(doctor_probes_features_by_mounting),
        cli_trial!(doctor_probes_every_stack_and_cites_figures),
        cli_trial!(doctor_from_a_run_recommends_what_the_run_found),
    ]
}
