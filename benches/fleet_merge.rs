//! `fleet merge` at fleet scale: 1,000 node reports generated from the
//! committed real report (reports/example, 1.2 MB, every figure varied per
//! node, three kernels, one node in 97 five times slower) merged by the
//! release binary, timed, with its peak RSS from GNU time. The targets are the
//! issue's: under 5 s and 200 MiB. Prints both; exits 1 when either is missed.
//!
//! Run: `cargo bench --bench fleet_merge` (NODES=… to change the count; KEEP=1
//! keeps the merged fleet report). The node reports are generated once into
//! target/tmp/fleet-merge/nodes-N (~1 GB of compact JSON) and reused, so
//! `/usr/bin/time -v overlaybench fleet merge --out X target/tmp/fleet-merge/nodes-1000`
//! can check the figures independently.

#[path = "../tests/common/fleetgen.rs"]
mod fleetgen;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The targets.
const MAX_SECONDS: f64 = 5.0;
const MAX_RSS_BYTES: u64 = 200 << 20;

fn main() {
    // cargo bench passes --bench; nothing else to parse.
    let nodes: usize = std::env::var("NODES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fleet-merge");
    let dir = root.join(format!("nodes-{nodes}"));
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example/report.json");
    if !dir
        .join(format!("node-{:04}/run-1/report.json", nodes - 1))
        .exists()
    {
        let t = Instant::now();
        let _ = std::fs::remove_dir_all(&dir);
        fleetgen::write_nodes(&real, &dir, nodes, 7);
        eprintln!(
            "generated {nodes} node reports in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let bytes: u64 = walk_bytes(&dir);
    let out = root.join("fleet");
    // GNU time measures the peak RSS: wait4 on a child of this process would
    // count this process's memory too (exec records the vfork's peak).
    let time_file = root.join("time.txt");
    let t = Instant::now();
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&time_file)
        .arg(env!("CARGO_BIN_EXE_overlaybench"))
        .args(["fleet", "merge", "--out"])
        .arg(&out)
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run /usr/bin/time overlaybench");
    let secs = t.elapsed().as_secs_f64();
    assert!(status.success(), "fleet merge failed: {status:?}");
    let rss = std::fs::read_to_string(&time_file)
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse::<u64>().ok()))
        .expect("time's %M")
        * 1024;
    println!(
        "fleet merge: {nodes} node reports ({:.0} MiB of JSON) in {secs:.2} s, peak RSS {:.1} MiB \
         (targets: < {MAX_SECONDS} s, < {} MiB)",
        bytes as f64 / (1 << 20) as f64,
        rss as f64 / (1 << 20) as f64,
        MAX_RSS_BYTES >> 20
    );
    if std::env::var_os("KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&out);
    }
    if secs >= MAX_SECONDS || rss >= MAX_RSS_BYTES {
        eprintln!("fleet merge missed its target");
        std::process::exit(1);
    }
}

fn walk_bytes(dir: &Path) -> u64 {
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                n += walk_bytes(&p);
            } else if let Ok(m) = e.metadata() {
                n += m.len();
            }
        }
    }
    n
}
