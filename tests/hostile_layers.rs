//! Hostile layers generated at random (`tests/common/layergen.rs`), checked
//! against the input contract at library level, without root: opening the
//! image, indexing it and applying every layer (in place over a tree that
//! holds symlinks out of it, and as an overlay diff) never panics and ends
//! `Ok` or in an error of the usage class (exit 2); nothing is written outside
//! the case's own directory; memory stays bounded.
//!
//! Deterministic: a fixed seed and a fixed number of cases (the environment's
//! `PROPTEST_CASES` is not read), so CI never flakes; a failure prints the
//! minimal input proptest shrank it to.

#[path = "common/layergen.rs"]
mod layergen;

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

use overlaybench::error::ErrorClass;
use overlaybench::image::apply::{apply_layer, ApplyOptions, DevicePolicy, WhiteoutStyle};
use overlaybench::image::source::{self, ImageRef, OpenOptions};
use overlaybench::image::ImageIndex;

use layergen::RawLayer;

const SEED: [u8; 32] = *b"overlaybench: hostile layers 23.";
const CASES: u32 = 96;
/// Peak resident memory a case may reach (the deepest generated chain is
/// 2,000 levels; an index quadratic in depth would need far more at 20,000,
/// which the path cap refuses).
const MAX_RSS_BYTES: u64 = 1 << 30;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The contract for an error: bad input is `Usage`. Without root, setting a
/// `trusted.*` xattr is refused by the kernel: `Unsupported` (exit 3) is
/// right there.
fn check_class(what: &str, class: ErrorClass, msg: &str) -> Result<(), TestCaseError> {
    let ok = class == ErrorClass::Usage || (!is_root() && class == ErrorClass::Unsupported);
    prop_assert!(ok, "{what}: class {class:?}, want Usage: {msg}");
    Ok(())
}

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Every path under `dir`, relative, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap_or(&p).display().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn check(layers: &[RawLayer]) -> Result<(), TestCaseError> {
    let tmp = tempfile::Builder::new()
        .prefix("ob-proplayers-")
        .tempdir()
        .map_err(|e| TestCaseError::fail(format!("tempdir: {e}")))?;
    let case = tmp.path().join("case");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&case).expect("mkdir");
    std::fs::create_dir_all(&outside).expect("mkdir");
    let reference = layergen::oci_layout(&case.join("img"), layers);
    let parsed = ImageRef::parse(&reference).expect("reference parses");
    let src = match source::open(&parsed, &OpenOptions::default()) {
        Ok(s) => s,
        Err(e) => return check_class("open", e.class(), &e.to_string()),
    };
    if let Err(e) = ImageIndex::build(&*src) {
        check_class("index", e.class(), &e.to_string())?;
    }
    let styles = [
        WhiteoutStyle::InPlace,
        WhiteoutStyle::OverlayDiff {
            xattr_prefix: if is_root() {
                "trusted.overlay."
            } else {
                "user.overlay."
            },
        },
    ];
    for (k, style) in styles.into_iter().enumerate() {
        let dest = case.join(format!("dest{k}"));
        std::fs::create_dir_all(&dest).expect("mkdir");
        if style == WhiteoutStyle::InPlace {
            // What a lower layer may have left: symlinks out of the tree,
            // under names the generator uses.
            std::os::unix::fs::symlink("../../outside", dest.join("a")).expect("symlink");
            std::os::unix::fs::symlink(&outside, dest.join("lib")).expect("symlink");
        }
        let opts = ApplyOptions {
            style,
            devices: DevicePolicy::SkipAndCount,
            owners: false,
        };
        for i in 0..layers.len() {
            if let Err(e) = apply_layer(&*src, i, &dest, &opts) {
                check_class("apply", e.class(), &e.to_string())?;
                break;
            }
        }
    }
    prop_assert!(
        listing(&outside).is_empty(),
        "written outside the destination: {:?}",
        listing(&outside)
    );
    let mut top: Vec<String> = std::fs::read_dir(&case)
        .expect("read")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    prop_assert_eq!(top, vec!["dest0", "dest1", "img"]);
    let rss = peak_rss_bytes();
    prop_assert!(rss < MAX_RSS_BYTES, "peak RSS {rss} bytes");
    Ok(())
}

#[test]
fn hostile_layers_keep_the_contract() {
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        max_shrink_iters: 256,
        ..Config::default()
    };
    // First layers every layout can reproduce (most reach the appliers), then
    // with the classes the reader refuses mixed in.
    for refused in [false, true] {
        layergen::set_refused_classes(refused);
        let mut runner = TestRunner::new_with_rng(
            config.clone(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &SEED),
        );
        if let Err(e) = runner.run(&layergen::image(6), |layers| check(&layers)) {
            panic!("refused classes {refused}: {e}");
        }
    }
}
