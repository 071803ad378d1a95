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
        // Judged whatever the test machine's load (the noisy rule has its own test).
        let out = bin()
            .args(["compare", "--noisy", "warn", "--format", format])
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
            _ => {
                // Verdict first, and a passing gate fits a terminal.
                assert!(text.starts_with("PASS: 0 regressed"), "{text}");
                let lines: Vec<&str> = text.lines().collect();
                assert!(lines.len() <= 20, "{} lines:\n{text}", lines.len());
                assert!(
                    lines.iter().all(|l| l.chars().count() <= 100),
                    "a line is wider than 100 columns:\n{text}"
                );
            }
        }
    }
    // The same report, as if measured while other jobs held the CPUs: no
    // verdict by default (exit 4, the reason named), a verdict with --noisy warn.
    let mut r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("report.json")).expect("report"))
            .expect("json");
    let spans = r["conditions"].as_array_mut().expect("conditions recorded");
    assert!(!spans.is_empty());
    for c in spans.iter_mut() {
        c["others_cpu_pct"] = serde_json::json!(95.0);
    }
    let busy = d.path().join("busy");
    std::fs::create_dir_all(&busy).expect("mkdir");
    std::fs::write(busy.join("report.json"), r.to_string()).expect("write");
    let out = bin()
        .arg("compare")
        .arg(&a)
        .arg(&busy)
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(
        text.starts_with("NO VERDICT (too noisy)")
            && text.contains("current: lookup on ext4")
            && text.contains("other processes used 95% of the CPUs"),
        "{text}"
    );
    bin()
        .args(["compare", "--noisy", "warn"])
        .arg(&a)
        .arg(&busy)
        .assert()
        .success()
        .stdout(predicate::str::contains("judged anyway"));
}

/// `report` with every raw sample (and the stats) of the cold first-write
/// cases of the overlay layouts multiplied by `factor`: a slowdown of known size
/// in real samples, so the gate's verdict does not hang on a busy machine's
/// noise between two runs.
fn slowed(report: &Path, factor: f64) -> serde_json::Value {
    let text = std::fs::read_to_string(report.join("report.json")).expect("report");
    let mut r: serde_json::Value = serde_json::from_str(&text).expect("json");
    let mut slowed = 0;
    for c in r["cases"].as_array_mut().expect("cases") {
        let p = &c["params"];
        if c["workload"] != "copy-up"
            || c["layout"] == "reference"
            || p["op"] != "first-write"
            || p["cache"] != "cold"
        {
            continue;
        }
        for v in c["samples"].as_array_mut().expect("samples") {
            *v = serde_json::json!(v.as_f64().expect("sample") * factor);
        }
        for (k, v) in c["stats"].as_object_mut().expect("stats") {
            if !matches!(k.as_str(), "n" | "outliers" | "cv") {
                if let Some(x) = v.as_f64() {
                    *v = serde_json::json!(x * factor);
                }
            }
        }
        slowed += 1;
    }
    assert!(slowed > 0, "no cold first-write case to slow down");
    r
}

fn compare_flags_a_slowdown_and_not_the_same_configuration() {
    let d = tmp();
    let procedures = ["--workloads", "copy-up", "--procedures", "write,chmod"];
    let ext4 = gate_run(
        d.path(),
        "ext4",
        &[&procedures[..], &["--backing", "ext4"]].concat(),
    );
    // 20× every first-write sample: far beyond any spread of 5 real samples,
    // so the whole bootstrap interval clears the 25 % threshold on any machine.
    let slow = d.path().join("slow");
    std::fs::create_dir_all(&slow).expect("mkdir");
    std::fs::write(
        slow.join("report.json"),
        serde_json::to_string(&slowed(&ext4, 20.0)).expect("json"),
    )
    .expect("write");
    let out = bin()
        .args(["compare", "--noisy", "warn", "--format", "json"])
        .arg(&ext4)
        .arg(&slow)
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
                && r.id.contains("op=first-write")),
        "{:?}",
        c.results
    );
    // The junit output carries the failure for CI; the same run passes.
    let junit = bin()
        .args(["compare", "--noisy", "warn", "--format", "junit"])
        .arg(&ext4)
        .arg(&slow)
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&junit.stdout).contains("<failure message="));
    bin()
        .args(["compare", "--noisy", "warn"])
        .arg(&ext4)
        .arg(&ext4)
        .assert()
        .success();
    // Another backing is another configuration: its figures are other figures
    // (missing and new fail the gate) unless the user says the parameter may differ.
    let xfs = gate_run(
        d.path(),
        "xfs",
        &[&procedures[..], &["--backing", "xfs"]].concat(),
    );
    bin()
        .args(["compare", "--noisy", "warn"])
        .arg(&xfs)
        .arg(&ext4)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("no figure could be compared"));
    let code = bin()
        .args(["compare", "--noisy", "warn", "--ignore-param", "backing"])
        .arg(&xfs)
        .arg(&ext4)
        .output()
        .expect("runs")
        .status
        .code();
    assert!(
        matches!(code, Some(0) | Some(1)),
        "with --ignore-param backing the two compare: {code:?}"
    );
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

/// A real report whose host facts say it ran under QEMU's emulator (TCG):
/// compare refuses to gate it against anything — a real run, or itself —
/// with exit 2 naming the report (the input cannot be gated anywhere; the
/// host running compare lacks nothing), and prints no verdict.
fn compare_refuses_timings_measured_under_emulation() {
    let d = tmp();
    let real = gate_run(d.path(), "real", &["--workloads", "lookup"]);
    let text = std::fs::read_to_string(real.join("report.json")).expect("report");
    let mut r: serde_json::Value = serde_json::from_str(&text).expect("json");
    r["host"]["machine"] = serde_json::json!({
        "kind": "emulated",
        "hypervisor": "QEMU TCG",
        "evidence": ["cpuid 0x40000000: \"TCGTCGTCGTCG\""]
    });
    let emulated = d.path().join("emulated.json");
    std::fs::write(&emulated, r.to_string()).expect("w");
    for (a, b) in [
        (real.as_path(), emulated.as_path()),
        (emulated.as_path(), real.as_path()),
        (emulated.as_path(), emulated.as_path()),
    ] {
        bin()
            .arg("compare")
            .arg(a)
            .arg(b)
            .args(["--noisy", "warn"])
            .assert()
            .code(2)
            .stdout(predicate::str::is_empty())
            .stderr(predicate::str::contains(emulated.display().to_string()))
            .stderr(predicate::str::contains("emulated CPU (QEMU TCG"))
            .stderr(predicate::str::contains("refuses to gate"));
    }
    // The real report still gates against itself.
    bin()
        .arg("compare")
        .arg(&real)
        .arg(&real)
        .args(["--noisy", "warn"])
        .assert()
        .success();
}

/// This module's tests, each with whether it needs root.
pub fn tests() -> Vec<(String, bool, fn())> {
    vec![
        cli_trial!(compare_passes_a_run_against_itself_and_writes_every_format),
        cli_trial!(compare_flags_a_slowdown_and_not_the_same_configuration),
        cli_trial!(compare_refuses_bad_and_incomparable_input, user),
        cli_trial!(compare_refuses_timings_measured_under_emulation),
    ]
}
