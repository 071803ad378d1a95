//! `fleet`: the manifests against the Kubernetes schemas of three minors, a
//! node's run as a pod does it (folder, summary line, textfile checked by
//! promtool), the merge of real runs on several backings and stacks (groups,
//! MAD outliers, doctor problems, skipped inputs, stdin), the fleet gate,
//! doctor's node-problem-detector exit codes, the merge's memory bound, and
//! the container image run under a real engine with the manifest's
//! privileges and mounts.

use std::collections::BTreeMap;
use std::io::Write as _;

use overlaybench::fleet::manifest::KUBERNETES_VERSIONS;
use overlaybench::fleet::read::NodeLine;
use overlaybench::fleet::FleetReport;

use super::*;

/// kubernetes-validate as scripts/setup installs it (a venv under /opt).
const VALIDATOR: &str = "/opt/kubernetes-validate/bin/kubernetes-validate";

fn validator() -> PathBuf {
    let p = std::env::var_os("OVERLAYBENCH_KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(VALIDATOR));
    assert!(p.exists(), "{} missing: run scripts/setup", p.display());
    p
}

fn validate(file: &Path, version: &str) -> std::process::Output {
    StdCommand::new(validator())
        .args(["--strict", "--kubernetes-version", version])
        .arg(file)
        .output()
        .expect("kubernetes-validate runs")
}

fn manifest_validates_against_three_kubernetes_minors() {
    let d = tmp();
    for (name, args) in [
        (
            "daemonset",
            vec!["--prom", "--node-selector", "kubernetes.io/os=linux"],
        ),
        (
            "job",
            vec!["--mode", "job", "--completions", "5", "--suite", "standard"],
        ),
    ] {
        let out = bin()
            .args(["fleet", "manifest"])
            .args(&args)
            .output()
            .expect("runs");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file = d.path().join(format!("{name}.yaml"));
        std::fs::write(&file, &out.stdout).expect("write");
        for v in KUBERNETES_VERSIONS {
            let o = validate(&file, v);
            let text = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "{name} against {v}:\n{text}");
            assert_eq!(
                text.matches("passed").count(),
                2,
                "{name} against {v}: both objects checked\n{text}"
            );
        }
    }
    // The validator is not a rubber stamp: a misspelt field fails under --strict.
    let good = std::fs::read_to_string(d.path().join("daemonset.yaml")).expect("read");
    let bad = d.path().join("bad.yaml");
    std::fs::write(&bad, good.replace("privileged: true", "privilegd: true")).expect("write");
    assert!(
        !validate(&bad, KUBERNETES_VERSIONS[2]).status.success(),
        "a misspelt field must fail"
    );
    // The shipped YAML is what the command prints.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/overlaybench-quick.yaml");
    let now = bin()
        .args(["fleet", "manifest", "--prom"])
        .output()
        .expect("runs");
    assert_eq!(
        std::fs::read_to_string(&shipped).expect("deploy/overlaybench-quick.yaml"),
        String::from_utf8_lossy(&now.stdout),
        "deploy/overlaybench-quick.yaml is stale: regenerate it with `overlaybench fleet manifest --prom`"
    );
    bin()
        .args(["fleet", "manifest", "--node-selector", "novalue"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("key=value"));
}

/// A node's run args: small but with a headline of every kind (lookup,
/// start-up, copy-up, page cache), on `backings` and `layouts`.
fn node_run_args(scratch: &Path, backings: &str, layouts: &str) -> Vec<String> {
    [
        "--workloads",
        "lookup,copy-up,page-cache",
        "--depths",
        "1,16",
        "--rounds",
        "2",
        "--names",
        "64",
        "--batch",
        "16",
        "--sizes",
        "1M",
        "--samples",
        "3",
        "--procedures",
        "write",
        "--variants",
        "default",
        "--cache-set",
        "16M",
        "--page-cache-containers",
        "1,2",
        "--backing",
        backings,
        "--layouts",
        layouts,
        "--no-progress",
        "--scratch",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([scratch.display().to_string()])
    .collect()
}

/// `fleet node` for `node` under `results`; returns its summary line.
fn fleet_node(
    d: &Path,
    results: &Path,
    node: &str,
    backings: &str,
    layouts: &str,
    prom: Option<&Path>,
) -> NodeLine {
    let mut c = bin();
    c.args(["fleet", "node", "--results"])
        .arg(results)
        .args(["--node", node, "--run-id", "r1"]);
    if let Some(p) = prom {
        c.arg("--prom").arg(p);
    }
    let out = c
        .arg("--")
        .args(node_run_args(&d.join("scratch"), backings, layouts))
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(
        stdout.lines().count(),
        1,
        "exactly one summary line on stdout:\n{stdout}"
    );
    serde_json::from_str(stdout.trim()).expect("the summary line is a node line")
}

fn fleet_merge(inputs: &[&Path], out: &Path) -> FleetReport {
    let o = bin()
        .args(["fleet", "merge", "--out"])
        .arg(out)
        .args(inputs)
        .output()
        .expect("runs");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&std::fs::read(out.join("fleet.json")).expect("fleet.json"))
        .expect("a fleet report")
}

fn node_run_writes_its_folder_summary_line_and_textfile() {
    let d = tmp();
    let results = d.path().join("results");
    let prom = d.path().join("textfile");
    let line = fleet_node(
        d.path(),
        &results,
        "node-a",
        "ext4",
        "overlay2,overlay",
        Some(&prom),
    );
    let dir = results.join("node-a/r1");
    let report = read_report(&dir).expect("report.json in <node>/<run-id>/");
    assert_eq!(report.status, RunStatus::Complete);
    for f in [
        "doctor.json",
        "fleet-node.json",
        "summary.md",
        "report.html",
    ] {
        assert!(dir.join(f).exists(), "{f} missing in {}", dir.display());
    }
    assert_eq!(
        (line.node.node.as_str(), line.node.run_id.as_str()),
        ("node-a", "r1")
    );
    assert!(line.node.doctor_read, "the doctor ran beside the run");
    let kinds: Vec<&str> = line
        .node
        .figures
        .iter()
        .map(|f| f.workload.as_str())
        .collect();
    for w in ["lookup", "copy-up", "page-cache"] {
        assert!(kinds.contains(&w), "{w} headline missing: {kinds:?}");
    }
    let text = std::fs::read_to_string(prom.join("overlaybench.prom")).expect("textfile");
    assert!(
        text.contains("overlaybench_headline_seconds{node=\"node-a\""),
        "{text}"
    );
    let mut check = StdCommand::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/setup installs prometheus)");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let o = check.wait_with_output().expect("promtool");
    assert!(
        o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_clean(d.path());
}

/// Real runs on this machine standing in for node pools (ext4 and xfs
/// backings, overlay2/overlay and overlay2/plain stacks), plus nodes made
/// from one of them with its figures varied (one 5× slower), a malformed and
/// a foreign report; then the same through stdin, and the fleet gate.
fn merge_of_real_runs_finds_groups_outliers_and_problems() {
    let d = tmp();
    let results = d.path().join("results");
    let a = fleet_node(
        d.path(),
        &results,
        "pool1-a",
        "ext4",
        "overlay2,overlay",
        None,
    );
    let b = fleet_node(
        d.path(),
        &results,
        "pool2-a",
        "xfs",
        "overlay2,overlay",
        None,
    );
    fleet_node(
        d.path(),
        &results,
        "pool3-a",
        "ext4",
        "overlay2,plain",
        None,
    );
    // pool1-b..e: pool1-a's report with its figures varied; pool1-e 5× slower.
    let real: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(results.join("pool1-a/r1/report.json")).expect("read"),
    )
    .expect("json");
    for (name, f) in [
        ("pool1-b", 1.02),
        ("pool1-c", 0.98),
        ("pool1-d", 1.01),
        ("pool1-e", 5.0),
    ] {
        let dir = results.join(name).join("r1");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let v = fleetgen::varied(&real, f, None);
        std::fs::write(
            dir.join("report.json"),
            serde_json::to_vec(&v).expect("ser"),
        )
        .expect("write");
    }
    // pool1-d's doctor found a problem.
    std::fs::write(
        results.join("pool1-d/r1/doctor.json"),
        r#"{"kind":"doctor","checks":[{"name":"inode headroom","status":"fail","figure":"2% free"}]}"#,
    )
    .expect("write");
    std::fs::create_dir_all(results.join("broken/r1")).expect("mkdir");
    std::fs::write(
        results.join("broken/r1/report.json"),
        "{\"schema_version\": 1, \"tool\": ",
    )
    .expect("write");
    std::fs::create_dir_all(results.join("foreign/r1")).expect("mkdir");
    std::fs::copy(
        results.join("pool1-a/r1/doctor.json"),
        results.join("foreign/r1/report.json"),
    )
    .expect("copy");

    let out = d.path().join("fleet");
    let fleet = fleet_merge(&[&results], &out);
    for f in ["fleet.json", "fleet.html", "fleet.svg", "summary.md"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let names: Vec<&str> = fleet.nodes.iter().map(|n| n.node.as_str()).collect();
    assert_eq!(
        names,
        ["pool1-a", "pool1-b", "pool1-c", "pool1-d", "pool1-e", "pool2-a", "pool3-a"]
    );
    let skipped: BTreeMap<&str, &str> = fleet
        .skipped
        .iter()
        .map(|s| (s.source.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(
        skipped
            .iter()
            .any(|(s, r)| s.contains("broken") && r.contains("not valid JSON")),
        "{skipped:?}"
    );
    assert!(
        skipped
            .iter()
            .any(|(s, r)| s.contains("foreign") && r.contains("\"doctor\" document")),
        "{skipped:?}"
    );
    let kernel = &a.node.kernel_release;
    let group = |backing: &str, layout: &str| {
        fleet
            .groups
            .iter()
            .find(|g| {
                (
                    &g.key.kernel_release,
                    g.key.backing.as_str(),
                    g.key.layout.as_str(),
                ) == (kernel, backing, layout)
            })
            .unwrap_or_else(|| {
                panic!(
                    "no group {backing}·{layout}: {:?}",
                    fleet
                        .groups
                        .iter()
                        .map(|g| g.key.label())
                        .collect::<Vec<_>>()
                )
            })
    };
    let g = group("ext4", "overlay2");
    assert_eq!(
        g.nodes,
        ["pool1-a", "pool1-b", "pool1-c", "pool1-d", "pool1-e", "pool3-a"]
    );
    assert_eq!(group("xfs", "overlay").nodes, ["pool2-a"]);
    assert_eq!(group("ext4", "plain").nodes, ["pool3-a"]);
    assert_eq!(group("ext4", "overlay").nodes.len(), 5);
    // In the pool1-only group every figure flags pool1-e, on the bad side
    // (5× slower, or sharing 5× more is better — the sharing factor is higher-is-better).
    let overlay = group("ext4", "overlay");
    assert!(!overlay.figures.is_empty());
    for f in &overlay.figures {
        let flagged: Vec<&str> = f.outliers.iter().map(|o| o.node.as_str()).collect();
        assert_eq!(flagged, ["pool1-e"], "{}: {f:?}", f.figure);
        assert_eq!(f.outliers[0].worse, f.lower_is_better, "{}", f.figure);
        assert_eq!(f.n, 5);
        assert!(f.median <= f.p90 && f.p90 <= f.max);
    }
    // pool1-d's failing check is listed; the real nodes' doctor saw this
    // host as it is at the time, so only what it says is checked for them.
    let problems: Vec<&str> = fleet
        .nodes_with_problems()
        .map(|n| n.node.as_str())
        .collect();
    assert!(problems.contains(&"pool1-d"), "{problems:?}");
    for n in &fleet.nodes {
        assert_eq!(
            problems.contains(&n.node.as_str()),
            n.problems.iter().any(|p| p.status == "fail"),
            "{}: {:?}",
            n.node,
            n.problems
        );
        assert_eq!(
            n.doctor_read,
            results.join(&n.node).join("r1/doctor.json").exists(),
            "{}",
            n.node
        );
    }
    let summary = std::fs::read_to_string(out.join("summary.md")).expect("summary");
    for want in [
        "## Group",
        "inode headroom",
        "pool1-e",
        "broken",
        "median",
        "p90",
    ] {
        assert!(summary.contains(want), "{want} missing in summary.md");
    }
    let svg = std::fs::read_to_string(out.join("fleet.svg")).expect("svg");
    assert!(svg.contains("#d62728"), "outliers drawn red");

    // The same reports on stdin (compact, one per line), with the pods'
    // summary lines as `kubectl logs` gives them, and a stray log line.
    let mut stdin = Vec::new();
    for n in ["pool1-b", "pool1-c"] {
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(results.join(n).join("r1/report.json")).expect("r"),
        )
        .expect("json");
        stdin.extend(serde_json::to_vec(&v).expect("ser"));
        stdin.push(b'\n');
    }
    for l in [&a, &b] {
        stdin.extend(serde_json::to_vec(l).expect("ser"));
        stdin.push(b'\n');
    }
    stdin.extend(b"fleet node: done; waiting for SIGTERM\n");
    let out2 = d.path().join("fleet-stdin");
    let o = bin()
        .args(["fleet", "merge", "--out"])
        .arg(&out2)
        .arg("-")
        .write_stdin(stdin)
        .output()
        .expect("runs");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let f2: FleetReport =
        serde_json::from_slice(&std::fs::read(out2.join("fleet.json")).expect("r")).expect("fleet");
    assert_eq!(
        f2.nodes.len(),
        4,
        "{:?}",
        f2.nodes.iter().map(|n| &n.node).collect::<Vec<_>>()
    );
    assert_eq!(f2.skipped.len(), 1, "{:?}", f2.skipped);

    // The fleet gate: against itself nothing changes. Then pool1 without its
    // outlier (a 5× node among five makes the median's interval too wide for
    // any verdict, as it should) and pool2, against pool1 3× slower.
    bin()
        .args(["fleet", "compare"])
        .arg(&out)
        .arg(&out)
        .assert()
        .code(0);
    let (base, slow) = (d.path().join("results-base"), d.path().join("results-slow"));
    for n in ["pool1-a", "pool1-b", "pool1-c", "pool1-d", "pool2-a"] {
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(results.join(n).join("r1/report.json")).expect("r"),
        )
        .expect("json");
        for (root, f) in [(&base, 1.0), (&slow, 3.0)] {
            if root == &slow && n == "pool2-a" {
                continue;
            }
            let dir = root.join(n).join("r1");
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(
                dir.join("report.json"),
                serde_json::to_vec(&fleetgen::varied(&v, f, None)).expect("s"),
            )
            .expect("write");
        }
    }
    let (out, out3) = (d.path().join("fleet-base"), d.path().join("fleet-slow"));
    fleet_merge(&[&base], &out);
    fleet_merge(&[&slow], &out3);
    let o = bin()
        .args(["fleet", "compare", "--json"])
        .arg(&out)
        .arg(&out3)
        .output()
        .expect("runs");
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let c: overlaybench::fleet::compare::FleetComparison =
        serde_json::from_slice(&o.stdout).expect("json");
    assert!(c.regressed >= 1, "{c:?}");
    assert!(
        c.results
            .iter()
            .filter(|r| r.unit == "ns" && r.group.contains("/ext4/overlay"))
            .all(|r| r.verdict == overlaybench::compare::Verdict::Regressed),
        "{c:?}"
    );
    assert!(
        c.missing_in_current.iter().any(|m| m.contains("/xfs/")),
        "pool2 is gone: {:?}",
        c.missing_in_current
    );
    bin()
        .args(["fleet", "compare"])
        .arg(results.join("pool1-a/r1/report.json"))
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a fleet report"));
    bin()
        .args(["fleet", "merge", "--out"])
        .arg(d.path().join("none"))
        .arg(results.join("broken"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nothing to merge"));
    assert_clean(d.path());
}

/// doctor --exit-code, as node-problem-detector runs a custom plugin: 0 on a
/// filesystem with room, 1 on a full one, and neither for a path that is not there.
fn doctor_exit_code_follows_the_npd_plugin_contract() {
    let d = tmp();
    let (roomy, full, root) = (
        d.path().join("roomy"),
        d.path().join("full"),
        d.path().join("root"),
    );
    for p in [&roomy, &full, &root] {
        std::fs::create_dir_all(p).expect("mkdir");
    }
    let exe = assert_cmd::cargo::cargo_bin("overlaybench");
    let script = format!(
        "set -e; mount -t tmpfs -o size=64M tmpfs {roomy}; mount -t tmpfs -o size=4M tmpfs {full}; \
         head -c 3900000 /dev/zero > {full}/fill; \
         for p in {roomy} {full} {root}/missing; do \
           set +e; {exe} doctor --exit-code --no-probe --config-root {root} --path $p; echo \"rc=$?\"; set -e; done",
        roomy = roomy.display(),
        full = full.display(),
        root = root.display(),
        exe = exe.display()
    );
    let o = StdCommand::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let codes: Vec<&str> = text.lines().filter(|l| l.starts_with("rc=")).collect();
    assert_eq!(
        codes,
        ["rc=0", "rc=1", "rc=2"],
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("problem: byte headroom")),
        "{text}"
    );
    assert!(
        text.lines().next().is_some_and(|l| l.starts_with("ok")),
        "{text}"
    );
    assert_clean(d.path());
}

/// Peak RSS of `overlaybench ARGS`, from GNU time (`%M`). Not wait4 on a
/// child of this process: the child's peak would include this process's
/// resident memory, which exec records from the vfork that started it.
fn peak_rss(dir: &Path, args: &[&std::ffi::OsStr]) -> (std::process::ExitStatus, u64) {
    let file = dir.join("time.txt");
    let status = StdCommand::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&file)
        .arg(assert_cmd::cargo::cargo_bin("overlaybench"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("/usr/bin/time (scripts/setup installs it)");
    let text = std::fs::read_to_string(&file).expect("time's output");
    let kib: u64 = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("time's output: {text}"));
    (status, kib * 1024)
}

/// The merge streams: 150 node reports of 0.85 MB each (130 MB of compact
/// JSON) merge in under 100 MiB (about 30 MiB here) — held whole, parsed, they
/// would take several times that.
fn merge_streams_node_reports_in_bounded_memory() {
    let d = tmp();
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example/report.json");
    let nodes = d.path().join("nodes");
    fleetgen::write_nodes(&real, &nodes, 150, 7);
    let out = d.path().join("fleet");
    let (status, rss) = peak_rss(
        d.path(),
        &[
            "fleet".as_ref(),
            "merge".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
            nodes.as_os_str(),
        ],
    );
    assert!(status.success(), "{status:?}");
    let f: FleetReport =
        serde_json::from_slice(&std::fs::read(out.join("fleet.json")).expect("r")).expect("fleet");
    assert_eq!(f.nodes.len(), 150);
    assert!(f.skipped.is_empty(), "{:?}", f.skipped);
    // Nodes 96 and 193… are the generated outliers; 96 is on the real kernel.
    assert!(
        f.groups.iter().flat_map(|g| &g.figures).any(|fig| fig
            .outliers
            .iter()
            .any(|o| o.node == "node-0096" && o.worse)),
        "the 5× node is an outlier"
    );
    assert!(rss < 100 << 20, "peak RSS {} MiB", rss >> 20);
}

/// `fleet merge -` (what `kubectl logs` pipes in) skips a 600 MB line with no
/// newline and a line of invalid UTF-8 — one bad pod's log — and merges the
/// good reports around them, in memory bounded by the report cap (it read the
/// long line whole before: 1.15 GiB for 1.2 GB).
fn merge_stdin_skips_long_and_invalid_lines_in_bounded_memory() {
    let d = tmp();
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example/report.json");
    let nodes = fleetgen::write_nodes(&real, &d.path().join("nodes"), 2, 11);
    let input = d.path().join("stdin");
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&input).expect("create"));
        w.write_all(&std::fs::read(&nodes[0]).expect("node"))
            .expect("write");
        w.write_all(b"\n").expect("write");
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..600 {
            w.write_all(&chunk).expect("write");
        }
        w.write_all(b"\n\xff\xfe{\"not\": \"utf-8\"}\n")
            .expect("write");
        w.write_all(&std::fs::read(&nodes[1]).expect("node"))
            .expect("write");
        w.write_all(b"\n").expect("write");
    }
    let out = d.path().join("fleet");
    let time_file = d.path().join("time.txt");
    let status = StdCommand::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&time_file)
        .arg(assert_cmd::cargo::cargo_bin("overlaybench"))
        .args(["fleet", "merge", "--out"])
        .arg(&out)
        .arg("-")
        .stdin(std::fs::File::open(&input).expect("open"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("/usr/bin/time");
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(&time_file).expect("time's output");
    let kib: u64 = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("time's output: {text}"));
    let f: FleetReport =
        serde_json::from_slice(&std::fs::read(out.join("fleet.json")).expect("r")).expect("fleet");
    assert_eq!(f.nodes.len(), 2, "{:?}", f.skipped);
    // A line is buffered up to the report cap (256 MiB: one compact node
    // report may be that big) and then skipped unread: memory stays under the
    // cap plus the merge, not the 600 MiB the line holds.
    assert!(kib < 320 << 10, "peak RSS {} MiB", kib >> 10);
}

/// The image: scripts/build-image (once per test run; its rootfs is cached
/// between runs), loaded into podman with its own storage root, and run with
/// the DaemonSet's privileges and mounts (bind mounts standing in for its
/// hostPaths) to a complete report.
fn image_runs_to_a_complete_report_with_the_manifests_privileges() {
    let d = tmp();
    let image = image_fixture();
    // The manifest's pod: what it declares is what the engine gets.
    let yaml = bin()
        .args(["fleet", "manifest"])
        .output()
        .expect("runs")
        .stdout;
    let text = String::from_utf8(yaml).expect("utf-8");
    let ds: k8s_openapi::api::apps::v1::DaemonSet = text
        .split("---\n")
        .find(|doc| doc.contains("kind: DaemonSet"))
        .map(|doc| serde_norway::from_str(doc).expect("a DaemonSet"))
        .expect("a DaemonSet document");
    let pod = ds.spec.expect("spec").template.spec.expect("pod spec");
    let c = &pod.containers[0];
    let sc = c.security_context.as_ref().expect("security context");
    assert_eq!(sc.privileged, Some(true));
    let host_paths: BTreeMap<String, String> = pod
        .volumes
        .iter()
        .flatten()
        .map(|v| {
            (
                v.name.clone(),
                v.host_path.as_ref().expect("hostPath").path.clone(),
            )
        })
        .collect();
    let mut args: Vec<String> = vec![
        "run".into(),
        "--rm".into(),
        "--privileged".into(),
        "--network=none".into(),
    ];
    // Not a privilege: podman's default rlimits exceed the hard ones a
    // sandboxed CI runner may have (runc then fails with EPERM), so ask for
    // what this process has.
    let nofile = rlimit(libc::RLIMIT_NOFILE);
    args.extend([
        "--ulimit".into(),
        format!("nofile={nofile}:{nofile}"),
        "--ulimit".into(),
        format!("nproc={0}:{0}", rlimit(libc::RLIMIT_NPROC).min(4096)),
    ]);
    for m in c.volume_mounts.iter().flatten() {
        // A hostPath, here a folder of the test's own.
        let host = d.path().join(host_paths[&m.name].trim_start_matches('/'));
        std::fs::create_dir_all(&host).expect("mkdir");
        args.extend(["-v".into(), format!("{}:{}", host.display(), m.mount_path)]);
    }
    args.extend([
        "-e".into(),
        "NODE_NAME=image-node".into(),
        image.tag.clone(),
    ]);
    // The manifest's args up to the run's own, then a small run.
    let cargs = c.args.clone().expect("args");
    let cut = cargs.iter().position(|a| a == "--").expect("--");
    args.extend(cargs[..cut].iter().filter(|a| *a != "--wait").cloned());
    args.extend(["--run-id".into(), "img".into(), "--".into()]);
    args.extend(node_run_args(
        Path::new("/scratch"),
        "ext4",
        "overlay2,overlay",
    ));
    let o = image.podman().args(&args).output().expect("podman run");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let line: NodeLine =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).expect("one summary line");
    assert_eq!(line.node.node, "image-node");
    let results = d.path().join(host_paths["results"].trim_start_matches('/'));
    let report = read_report(&results.join("image-node/img")).expect("the report on the hostPath");
    assert_eq!(report.status, RunStatus::Complete, "{:?}", report.errors);
    assert!(results.join("image-node/img/doctor.json").exists());
    assert_clean(d.path());
}

/// This process's soft limit of `resource`.
fn rlimit(resource: libc::__rlimit_resource_t) -> u64 {
    // SAFETY: getrlimit fills a plain struct.
    let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrlimit(resource, &mut r) }, 0);
    r.rlim_cur
}

/// The image built once per test run, loaded into a podman store of its own.
struct ImageFixture {
    tag: String,
    store: PathBuf,
}

impl ImageFixture {
    fn podman(&self) -> StdCommand {
        let mut c = StdCommand::new("podman");
        c.arg("--root")
            .arg(self.store.join("root"))
            .arg("--runroot")
            .arg(self.store.join("run"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            // runc, named: with crun installed too podman picks crun, which
            // refuses a host mixing cgroup v1 and v2 ("cgroups in hybrid mode
            // not supported").
            .args(["--runtime", "runc"]);
        c
    }
}

static IMAGE: std::sync::OnceLock<ImageFixture> = std::sync::OnceLock::new();

fn image_fixture() -> &'static ImageFixture {
    IMAGE.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("image");
        let exe = assert_cmd::cargo::cargo_bin("overlaybench");
        let o = StdCommand::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-image"))
            .arg(&exe)
            .env("OUT", &target)
            .output()
            .expect("scripts/build-image");
        assert!(
            o.status.success(),
            "build-image: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let stdout = String::from_utf8_lossy(&o.stdout).to_string();
        let archive = stdout.lines().next().expect("archive path").to_string();
        let store = tempfile::Builder::new()
            .prefix("obc-podman-")
            .tempdir_in("/var/tmp")
            .expect("tmp")
            .keep();
        let fx = ImageFixture {
            tag: "localhost/overlaybench:test".into(),
            store,
        };
        let o = fx
            .podman()
            .args(["load", "-q", "-i", &archive])
            .output()
            .expect("podman load");
        assert!(
            o.status.success(),
            "podman load: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let loaded = String::from_utf8_lossy(&o.stdout).to_string();
        let id = loaded
            .trim()
            .rsplit(' ')
            .next()
            .expect("loaded image")
            .to_string();
        let o = fx
            .podman()
            .args(["tag", &id, &fx.tag])
            .output()
            .expect("podman tag");
        assert!(
            o.status.success(),
            "podman tag {id}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        fx
    })
}

/// Removes the podman store the image fixture made (called once at the end).
pub fn remove_fixture() {
    if let Some(fx) = IMAGE.get() {
        let _ = fx.podman().args(["system", "reset", "--force"]).output();
        let _ = std::fs::remove_dir_all(&fx.store);
    }
}

pub fn tests() -> Vec<(String, bool, fn())> {
    vec![
        cli_trial!(
            merge_stdin_skips_long_and_invalid_lines_in_bounded_memory,
            user
        ),
        cli_trial!(manifest_validates_against_three_kubernetes_minors, user),
        cli_trial!(node_run_writes_its_folder_summary_line_and_textfile),
        cli_trial!(merge_of_real_runs_finds_groups_outliers_and_problems),
        cli_trial!(doctor_exit_code_follows_the_npd_plugin_contract),
        cli_trial!(merge_streams_node_reports_in_bounded_memory, user),
        cli_trial!(image_runs_to_a_complete_report_with_the_manifests_privileges),
    ]
}
