//! One node's figures in the Prometheus text format, for node_exporter's
//! textfile collector (`--collector.textfile.directory`): headline times in
//! seconds and sharing factors as ratios, with the figure, stack and backing
//! as labels; the run's status and the doctor's problems beside them. Written
//! so `promtool check metrics` finds nothing to say.

use std::fmt::Write as _;

use super::NodeSummary;
use crate::report::RunStatus;

/// A label value with `\`, `"` and newlines escaped as the format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The textfile for `node` (one `.prom` file; write it atomically, as the
/// collector may read it at any time).
pub fn textfile(node: &NodeSummary) -> String {
    let mut s = String::new();
    let mut family = |name: &str, help: &str, samples: Vec<(String, f64)>| {
        if samples.is_empty() {
            return;
        }
        let _ = writeln!(s, "# HELP {name} {help}");
        let _ = writeln!(s, "# TYPE {name} gauge");
        for (labels, v) in samples {
            let _ = writeln!(s, "{name}{{{labels}}} {v}");
        }
    };
    let base = format!(
        "node=\"{}\",run_id=\"{}\"",
        label(&node.node),
        label(&node.run_id)
    );
    let per_unit = |unit: &str, scale: f64| -> Vec<(String, f64)> {
        node.figures
            .iter()
            .filter(|f| f.unit == unit && f.value.is_finite())
            .map(|f| {
                (
                    format!(
                        "{base},workload=\"{}\",figure=\"{}\",stack=\"{}\",backing=\"{}\"",
                        label(&f.workload),
                        label(&f.figure),
                        label(&f.layout),
                        label(&f.backing)
                    ),
                    f.value * scale,
                )
            })
            .collect()
    };
    family(
        "overlaybench_headline_seconds",
        "Median of a headline time measured by overlaybench on this node (copy-up, lookup, start-up).",
        per_unit("ns", 1e-9),
    );
    family(
        "overlaybench_headline_ratio",
        "A headline ratio measured by overlaybench on this node (page-cache sharing factor).",
        per_unit("x", 1.0),
    );
    let status = |s: RunStatus| match s {
        RunStatus::Running => "running",
        RunStatus::Complete => "complete",
        RunStatus::Interrupted => "interrupted",
        RunStatus::Failed => "failed",
    };
    family(
        "overlaybench_run_info",
        "The overlaybench run this file describes: 1, with its kernel, status and tool version as labels.",
        vec![(
            format!(
                "{base},kernel=\"{}\",status=\"{}\",version=\"{}\"",
                label(&node.kernel_release),
                status(node.status),
                label(&node.tool_version)
            ),
            1.0,
        )],
    );
    if let Ok(t) = humantime::parse_rfc3339_weak(node.started_at.trim_end_matches('Z')) {
        if let Ok(d) = t.duration_since(std::time::UNIX_EPOCH) {
            family(
                "overlaybench_run_start_timestamp_seconds",
                "When the run started, seconds since the epoch (UTC).",
                vec![(base.clone(), d.as_secs() as f64)],
            );
        }
    }
    family(
        "overlaybench_run_errors",
        "Things the run could not measure on this node.",
        vec![(base.clone(), node.run_errors as f64)],
    );
    if node.doctor_read {
        family(
            "overlaybench_doctor_problems",
            "Doctor checks that failed on this node (a problem, as doctor --exit-code reports it).",
            vec![(base.clone(), node.failing_checks() as f64)],
        );
        family(
            "overlaybench_doctor_warnings",
            "Doctor checks that warned on this node (close to a limit).",
            vec![(
                base.clone(),
                (node.problems.len() - node.failing_checks()) as f64,
            )],
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
