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
    assert!(
        r.kernel.max_lower_layers.is_some_and(|m| m >= 2),
        "{:?}",
        r.kernel.max_lower_layers
    );
    assert_eq!(r.path.d_type, None, "an empty dir cannot tell d_type");
    assert_clean(d.path());
}

/// This module's tests, each with whether it needs root.
pub fn tests() -> Vec<(&'static str, bool, fn())> {
    vec![
        (
            "doctor::doctor_reports_hostile_configs_without_crashing",
            false,
            doctor_reports_hostile_configs_without_crashing,
        ),
        (
            "doctor::doctor_refuses_a_missing_path",
            false,
            doctor_refuses_a_missing_path,
        ),
        (
            "doctor::doctor_probes_features_by_mounting",
            true,
            doctor_probes_features_by_mounting,
        ),
    ]
}
