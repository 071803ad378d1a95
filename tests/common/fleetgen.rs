//! Node reports for fleet tests and the merge bench, generated from a real
//! report: every figure of node `i` (each case's samples and statistics, each
//! derived figure) scaled by a factor drawn from a seeded generator, nodes
//! spread over three kernels, and every `OUTLIER_EVERY`-th node five times
//! slower (the outliers a merge must find). Written compact, as `jq -c` would.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Every this many nodes, one is an outlier (5× every figure).
pub const OUTLIER_EVERY: usize = 97;

/// Kernels the generated nodes are spread over (the real one is kept for a third).
pub const KERNELS: [&str; 2] = ["6.1.0-28-amd64", "6.12.9-cloud-amd64"];

/// A deterministic factor in 0.85..1.15 for node `i` (splitmix64).
pub fn factor(seed: u64, i: usize) -> f64 {
    let mut z = seed.wrapping_add((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    0.85 + 0.30 * ((z >> 11) as f64 / (1u64 << 53) as f64)
}

fn scale_num(v: &mut Value, f: f64) {
    if let Some(x) = v.as_f64() {
        if let Some(n) = serde_json::Number::from_f64(x * f) {
            *v = Value::Number(n);
        }
    }
}

/// `real` with every figure scaled by `f` and its kernel set to `kernel`.
pub fn varied(real: &Value, f: f64, kernel: Option<&str>) -> Value {
    let mut r = real.clone();
    if let Some(k) = kernel {
        r["host"]["kernel_release"] = Value::String(k.into());
    }
    if let Some(cases) = r.get_mut("cases").and_then(Value::as_array_mut) {
        for c in cases {
            if let Some(s) = c.get_mut("samples").and_then(Value::as_array_mut) {
                s.iter_mut().for_each(|v| scale_num(v, f));
            }
            if let Some(st) = c.get_mut("stats").and_then(Value::as_object_mut) {
                for k in [
                    "min", "max", "median", "mean", "p95", "p99", "stddev", "mad",
                ] {
                    if let Some(v) = st.get_mut(k) {
                        scale_num(v, f);
                    }
                }
            }
        }
    }
    if let Some(ds) = r.get_mut("derived").and_then(Value::as_array_mut) {
        for d in ds {
            if let Some(v) = d.get_mut("value") {
                scale_num(v, f);
            }
        }
    }
    r
}

/// The factor and kernel of generated node `i`.
pub fn node_params(seed: u64, i: usize) -> (f64, Option<&'static str>) {
    let f = if i % OUTLIER_EVERY == OUTLIER_EVERY - 1 {
        5.0
    } else {
        factor(seed, i)
    };
    let kernel = match i % 3 {
        0 => None,
        k => Some(KERNELS[k - 1]),
    };
    (f, kernel)
}

/// Writes `n` node reports generated from the report at `real` under
/// `out/node-NNNN/run-1/report.json`; returns the report paths.
pub fn write_nodes(real: &Path, out: &Path, n: usize, seed: u64) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(real).expect("read the real report");
    let real: Value = serde_json::from_str(&text).expect("a JSON report");
    (0..n)
        .map(|i| {
            let (f, kernel) = node_params(seed, i);
            let dir = out.join(format!("node-{i:04}")).join("run-1");
            std::fs::create_dir_all(&dir).expect("mkdir");
            let p = dir.join("report.json");
            let bytes = serde_json::to_vec(&varied(&real, f, kernel)).expect("serialise");
            std::fs::write(&p, bytes).expect("write a node report");
            p
        })
        .collect()
}
