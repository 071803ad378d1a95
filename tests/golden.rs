//! Golden tests, root-free: the committed example report (`reports/example/`)
//! drives every reader of report.json — re-rendering, exports, the gate and the
//! planner — and their output must stay byte for byte what is committed. A change
//! that moves a figure, a key or a chart shows here first; regenerate the files
//! under `tests/golden/` on purpose (see `docs/architecture.md`), never to silence it.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn bin() -> Command {
    Command::cargo_bin("overlaybench").expect("binary")
}

fn golden(name: &str) -> PathBuf {
    Path::new("tests/golden").join(name)
}

fn assert_same(actual: &[u8], expected: &Path) {
    let want = std::fs::read(expected).expect("golden file");
    if actual != want.as_slice() {
        let got = expected.with_extension("actual");
        let _ = std::fs::write(&got, actual);
        panic!(
            "{} differs from the golden file (actual output written to {})",
            expected.display(),
            got.display()
        );
    }
}

#[test]
fn example_rerenders_byte_for_byte() {
    let out = tempfile::tempdir().expect("tempdir");
    bin()
        .args(["report", "reports/example", "--out"])
        .arg(out.path())
        .assert()
        .success();
    let mut rendered: Vec<_> = std::fs::read_dir(out.path())
        .expect("read out")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    rendered.sort();
    assert!(rendered.contains(&"summary.md".to_string()), "{rendered:?}");
    for name in rendered {
        let got = std::fs::read(out.path().join(&name)).expect("rendered file");
        assert_same(&got, &Path::new("reports/example").join(&name));
    }
}

#[test]
fn example_exports_are_stable() {
    for (format, file) in [
        ("bmf", "example.bmf.json"),
        ("github-action-benchmark", "example.gab.json"),
    ] {
        let out = bin()
            .args(["report", "reports/example", "--format", format])
            .output()
            .expect("runs");
        assert!(out.status.success(), "{format}: {out:?}");
        assert_same(&out.stdout, &golden(file));
    }
}

#[test]
fn example_compared_with_itself_passes_in_every_format() {
    for (format, file) in [
        ("text", "compare-self.txt"),
        ("markdown", "compare-self.md"),
        ("junit", "compare-self.xml"),
        ("json", "compare-self.json"),
        ("html", "compare-self.html"),
    ] {
        let out = bin()
            .args([
                "compare",
                "reports/example",
                "reports/example",
                "--format",
                format,
            ])
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(0), "{format}: {out:?}");
        assert_same(&out.stdout, &golden(file));
    }
}

/// After the gate's verdict, compare says which findings changed: against a
/// copy of the example where the legacy overlay is 50× slower, the questions it
/// won change winner (terminal, markdown and JSON alike); the verdict still leads.
#[test]
fn compare_names_the_findings_that_changed_after_its_verdict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string("reports/example/report.json").expect("example");
    let mut r: serde_json::Value = serde_json::from_str(&text).expect("json");
    for c in r["cases"].as_array_mut().expect("cases") {
        if c["layout"] == "overlay" {
            let s: Vec<f64> = c["samples"]
                .as_array()
                .expect("samples")
                .iter()
                .map(|x| x.as_f64().expect("number") * 50.0)
                .collect();
            c["samples"] = serde_json::json!(s);
        }
    }
    let slower = dir.path().join("report.json");
    std::fs::write(&slower, serde_json::to_vec(&r).expect("json")).expect("write");
    let run = |format: &str| {
        let out = bin()
            .args(["compare", "reports/example"])
            .arg(&slower)
            .args(["--format", format, "--figures", "all", "--noisy", "warn"])
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(1), "{format}: {out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let t = run("text");
    assert!(t.starts_with("FAIL: "), "the gate's verdict leads: {t}");
    let at = t.find("findings: ").expect("a findings line");
    assert!(t[at..].contains("changed (not part of the verdict)"), "{t}");
    assert!(t.contains("winner changed: "), "{t}");
    let md = run("markdown");
    assert!(md.starts_with("### overlaybench gate: FAIL"), "{md}");
    assert!(md.contains("- winner changed: "), "{md}");
    let j: serde_json::Value = serde_json::from_str(&run("json")).expect("json");
    let changed = j["findings_changed"].as_array().expect("findings_changed");
    assert!(
        changed.iter().any(|c| c["kind"] == "winner-changed"
            && c["baseline"]
                .as_str()
                .is_some_and(|b| b.starts_with("overlay wins"))),
        "{changed:#?}"
    );
}

#[test]
fn plan_from_the_example_is_stable() {
    let out = tempfile::tempdir().expect("tempdir");
    let dir = out.path().join("plan");
    let run = bin()
        .args([
            "plan",
            "--from",
            "reports/example",
            "--images",
            "500",
            "--layers",
            "20",
            "--fs-size",
            "200G",
            "--out",
        ])
        .arg(&dir)
        .output()
        .expect("runs");
    assert!(run.status.success(), "{run:?}");
    assert_same(&run.stdout, &golden("plan-from-example.txt"));
    for (file, want) in [
        ("plan.json", "plan-from-example.json"),
        ("plan.svg", "plan-from-example.svg"),
    ] {
        assert_same(
            &std::fs::read(dir.join(file)).expect("plan file"),
            &golden(want),
        );
    }
}
