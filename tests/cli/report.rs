//! `report`: refusing what is not a report, and exports parsed against their published fields.

use super::*;
use crate::compare::gate_run;

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

fn exports_parse_back_with_their_published_fields() {
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

/// This module's tests, each with whether it needs root.
pub fn tests() -> Vec<(String, bool, fn())> {
    vec![
        cli_trial!(report_refuses_unknown_schema_and_garbage, user),
        cli_trial!(exports_parse_back_with_their_published_fields),
    ]
}
