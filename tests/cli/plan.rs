//! `plan`: input checks and a measured projection.

use super::*;

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

fn plan_measures_projects_and_writes_its_files() {
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

/// This module's tests, each with whether it needs root.
pub fn tests() -> Vec<(String, bool, fn())> {
    vec![
        cli_trial!(plan_validates_its_input, user),
        cli_trial!(plan_measures_projects_and_writes_its_files),
    ]
}
