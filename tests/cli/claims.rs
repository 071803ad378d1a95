//! `claims`: the verdict-first table, JSON parsed back strictly, bad input (2),
//! a host that cannot run them (3), and `run --claims` carrying them into the
//! report (summary.md and a re-render).

use super::*;

use overlaybench::claims::ClaimsReport;
use overlaybench::report::ClaimVerdict;

fn claims_in(dir: &Path) -> Command {
    let mut c = bin();
    c.arg("claims")
        .arg("--no-progress")
        .arg("--scratch")
        .arg(dir.join("scratch"));
    c
}

fn json_parses_back_with_host_and_backing() {
    let d = tmp();
    let out = claims_in(d.path())
        .args(["--only", "1,read-union,6,10", "--json"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let r: ClaimsReport = serde_json::from_slice(&out.stdout).expect("strict JSON");
    assert_eq!((r.schema_version, r.kind.as_str()), (1, "claims"));
    let ids: Vec<u32> = r.claims.claims.iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![1, 3, 6, 10]);
    assert_eq!(r.host.backings.len(), 1);
    assert_eq!(r.host.backings[0].fstype, "ext4");
    assert_eq!(r.claims.backing, "ext4");
    assert_eq!(r.claims.claims[0].verdict, ClaimVerdict::Changed);
    assert_eq!(r.claims.claims[1].verdict, ClaimVerdict::Confirmed);
    if overlaybench::layout::entry("btrfs").is_none() {
        let c10 = &r.claims.claims[3];
        assert_eq!(c10.verdict, ClaimVerdict::NotTestable);
        assert!(c10
            .reason
            .as_deref()
            .is_some_and(|s| s.contains("no btrfs layout")));
    }
    assert_clean(d.path());
}

fn table_leads_with_the_verdicts() {
    let d = tmp();
    let out = claims_in(d.path())
        .args(["--only", "3"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("claims on ext4") && lines[0].ends_with("1 claim: 1 confirmed"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("verdict") && lines[1].contains("figure"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("confirmed") && lines[2].contains("read-union"),
        "{text}"
    );
    assert_clean(d.path());
}

fn bad_input_exits_2_naming_the_choices() {
    let d = tmp();
    claims_in(d.path())
        .args(["--only", "nope"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("unknown claim 'nope'")
                .and(predicate::str::contains("1 (layer-limit)")),
        );
    claims_in(d.path())
        .args(["--backing", "zfs"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown backing 'zfs'"));
    assert!(
        !d.path().join("scratch").exists(),
        "nothing made on bad input"
    );
}

fn without_root_exits_3() {
    let d = tmp();
    nix::unistd::chown(d.path(), Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
    let out = StdCommand::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(assert_cmd::cargo::cargo_bin("overlaybench"))
        .args(["claims", "--no-progress", "--scratch"])
        .arg(d.path().join("scratch"))
        .output()
        .expect("setpriv runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("loop devices need real root"), "{err}");
}

fn run_with_claims_reports_them() {
    let d = tmp();
    let out = d.path().join("out");
    let mut args = small_run_args(d.path());
    args.push("--claims".into());
    bin().args(&args).assert().success().stdout(
        predicate::str::contains("claims on ext4").and(predicate::str::contains("layer-limit")),
    );
    assert_clean(d.path());
    let r = read_report(&out).expect("report.json parses strictly");
    assert_eq!(r.status, RunStatus::Complete);
    assert_eq!(r.claims.len(), 1);
    assert_eq!(r.claims[0].claims.len(), overlaybench::claims::CLAIMS.len());
    assert!(
        r.claims[0].claims.iter().all(|c| c.error.is_none()),
        "{:#?}",
        r.claims
    );
    let summary = std::fs::read_to_string(out.join("summary.md")).expect("summary");
    assert!(
        summary.contains("## Claims — Docker's overlay storage notes")
            && summary.contains("| 1 | **changed** |"),
        "{summary}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).expect("report.html");
    assert!(
        html.contains("id=\"claims\"") && html.contains("verdict-changed"),
        "claims in the HTML report"
    );
    // `report` redraws the same files from the JSON alone.
    std::fs::remove_file(out.join("summary.md")).expect("rm");
    bin().arg("report").arg(&out).assert().success();
    assert_eq!(
        std::fs::read_to_string(out.join("summary.md")).expect("summary again"),
        summary
    );
}

/// This module's tests, each with whether it needs root.
pub fn tests() -> Vec<(String, bool, fn())> {
    vec![
        cli_trial!(json_parses_back_with_host_and_backing),
        cli_trial!(table_leads_with_the_verdicts),
        cli_trial!(bad_input_exits_2_naming_the_choices, user),
        cli_trial!(without_root_exits_3),
        cli_trial!(run_with_claims_reports_them),
    ]
}
