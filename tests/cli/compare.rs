//! `compare`: the gate on real runs and on bad input.

use super::*;

/// A small lookup + inodes + page-cache run for the gate tests.
pub(crate) fn gate_run(d: &Path, name: &str, extra: &[&str]) -> PathBuf {
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

fn compare_passes_a_run_against_itself_and_writes_every_format() {
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

fn compare_flags_a_real_slowdown_and_not_the_same_configuration() {
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

/// This module's tests, each with whether it needs root.
pub fn tests() -> Vec<(&'static str, bool, fn())> {
    vec![
        (
            "compare::compare_passes_a_run_against_itself_and_writes_every_format",
            true,
            compare_passes_a_run_against_itself_and_writes_every_format,
        ),
        (
            "compare::compare_flags_a_real_slowdown_and_not_the_same_configuration",
            true,
            compare_flags_a_real_slowdown_and_not_the_same_configuration,
        ),
        (
            "compare::compare_refuses_bad_and_incomparable_input",
            false,
            compare_refuses_bad_and_incomparable_input,
        ),
    ]
}
