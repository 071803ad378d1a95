//! Pure: copy-up's samples → cases, fits of latency against size, throughput and
//! ratios to the in-run reference copy, through one typed view of its keys.

use std::collections::{BTreeMap, BTreeSet};

use super::keys::{ImageKey, ImageView, Key, Op, View, NAME, REFERENCE, REFERENCE_METHOD};
use crate::report::{kinds, Derived};
use crate::stats::fit_line;
use crate::workload::{CaseView, Recorded};

const MIB: f64 = (1u64 << 20) as f64;

fn view(k: &Key, backing: &str) -> View {
    View {
        backing: backing.into(),
        op: k.op,
        options: k.options.into(),
        cache: k.cache,
        size_bytes: (k.size > 0).then_some(k.size),
        baseline: None,
    }
}

/// Turns samples into cases, a fit of the median against size (fixed cost +
/// ns/MiB) per series, MiB/s per size, and the ratio to the reference copy of the
/// same size and cache state.
pub fn record(out: &mut Recorded, backing: &str, samples: BTreeMap<Key, Vec<f64>>) {
    let id = |k: &Key| view(k, backing).case_id(&k.layout, "latency");
    let mut medians: BTreeMap<Key, f64> = BTreeMap::new();
    for (key, s) in samples {
        if let Some(m) = out.case_of(&view(&key, backing), &key.layout, "latency", "ns", s) {
            medians.insert(key, m);
        }
    }
    let mut series: BTreeMap<Key, Vec<(f64, f64, String)>> = BTreeMap::new();
    for (k, &m) in &medians {
        series
            .entry(Key {
                size: 0,
                ..k.clone()
            })
            .or_default()
            .push((k.size as f64 / MIB, m, id(k)));
    }
    // Series that copy nothing (a clone, a metadata-only copy, a write in
    // place): no MiB/s for them, it would be a rate of no data.
    let mut copies_nothing: BTreeSet<Key> = BTreeSet::new();
    for (k, pts) in &series {
        let xy: Vec<(f64, f64)> = pts.iter().map(|(x, y, _)| (*x, *y)).collect();
        let Some(fit) = fit_line(&xy) else { continue };
        let points = pts.iter().map(|(x, _, id)| (*x, id.clone())).collect();
        let slope = Derived::slope(
            NAME,
            &k.layout,
            view(k, backing).params(),
            &fit,
            "ns/MiB",
            points,
        );
        if is_flat(&slope) {
            copies_nothing.insert(k.clone());
        }
        out.derived.push(slope);
    }
    for (k, &m) in &medians {
        let series_key = Key {
            size: 0,
            ..k.clone()
        };
        // Far quicker than copying the file is no copy either (plain writes
        // in place): its size over its time would be a rate of no data.
        let reference_ns = medians
            .get(&Key {
                layout: REFERENCE.into(),
                options: REFERENCE_METHOD,
                op: Op::Copy,
                ..k.clone()
            })
            .copied();
        let no_copy =
            k.layout != REFERENCE && reference_ns.is_some_and(|r| r > 0.0 && m / r < COPY_FRACTION);
        if m > 0.0 && !copies_nothing.contains(&series_key) && !no_copy {
            out.derived.push(Derived {
                workload: NAME.into(),
                layout: k.layout.clone(),
                kind: kinds::THROUGHPUT.into(),
                params: view(k, backing).params(),
                value: k.size as f64 / MIB / (m / 1e9),
                unit: "MiB/s".into(),
                r2: None,
                intercept: None,
                n: 1,
                inputs: vec![id(k)],
                x: vec![k.size as f64 / MIB],
            });
        }
        if k.layout == REFERENCE {
            continue;
        }
        let reference = Key {
            layout: REFERENCE.into(),
            options: REFERENCE_METHOD,
            op: Op::Copy,
            ..k.clone()
        };
        if let Some(&r) = medians.get(&reference).filter(|r| **r > 0.0) {
            let v = View {
                baseline: Some(REFERENCE.into()),
                ..view(k, backing)
            };
            out.derived.push(Derived::ratio(
                NAME,
                &k.layout,
                v.params(),
                m / r,
                id(k),
                id(&reference),
            ));
        }
    }
}

/// Below this fraction of the reference copy's time an operation copied
/// nothing (the gate's floor for copy-up ratios, `GateRules::gated`).
pub const COPY_FRACTION: f64 = 0.05;

/// Whether a latency-vs-size fit is flat: its growth is small next to the
/// cost itself or the fit explains little (`Derived::is_flat`, or r² under
/// 0.8). The table prints such a series as `flat`, with no MiB/s.
pub fn is_flat(slope: &Derived) -> bool {
    slope.is_flat() || slope.r2.is_some_and(|r2| r2 < 0.8)
}

// ---------------------------------------------------------------------------
// The user's images.

/// Turns image samples into cases, a fit of latency against file size per
/// (layout, options, op, cache, image), and ratios to the reference copy of
/// the same file. `files[i]` are image `i`'s timed files (path, bytes).
pub fn record_images(
    out: &mut Recorded,
    backing: &str,
    images: &[String],
    files: &[Vec<(std::path::PathBuf, u64)>],
    samples: BTreeMap<ImageKey, Vec<f64>>,
) {
    let view = |k: &ImageKey, fit: bool| -> Option<ImageView> {
        let (path, size) = files.get(k.image)?.get(k.file)?;
        Some(ImageView {
            backing: backing.into(),
            image: images.get(k.image)?.clone(),
            file: (!fit).then(|| path.display().to_string()),
            size_bytes: (!fit).then_some(*size),
            op: k.op,
            options: k.options.into(),
            cache: k.cache,
            baseline: None,
        })
    };
    let mut medians: BTreeMap<ImageKey, (f64, String, u64)> = BTreeMap::new();
    for (k, s) in samples {
        let Some(v) = view(&k, false) else { continue };
        let id = v.case_id(&k.layout, "latency");
        let size = v.size_bytes.unwrap_or(0);
        if let Some(m) = out.case_of(&v, &k.layout, "latency", "ns", s) {
            medians.insert(k, (m, id, size));
        }
    }
    let mut series: BTreeMap<ImageKey, Vec<(f64, f64, String)>> = BTreeMap::new();
    for (k, (m, id, size)) in &medians {
        series
            .entry(ImageKey {
                file: 0,
                ..k.clone()
            })
            .or_default()
            .push((*size as f64 / MIB, *m, id.clone()));
    }
    for (k, pts) in &series {
        let xy: Vec<(f64, f64)> = pts.iter().map(|(x, y, _)| (*x, *y)).collect();
        let (Some(fit), Some(v)) = (fit_line(&xy), view(k, true)) else {
            continue;
        };
        let points = pts.iter().map(|(x, _, id)| (*x, id.clone())).collect();
        out.derived.push(Derived::slope(
            NAME,
            &k.layout,
            v.params(),
            &fit,
            "ns/MiB",
            points,
        ));
    }
    for (k, (m, id, _)) in &medians {
        if k.layout == REFERENCE {
            continue;
        }
        let reference = ImageKey {
            layout: REFERENCE.into(),
            options: REFERENCE_METHOD,
            op: Op::Copy,
            ..k.clone()
        };
        let (Some((r, rid, _)), Some(v)) = (
            medians.get(&reference).filter(|r| r.0 > 0.0),
            view(k, false),
        ) else {
            continue;
        };
        let v = ImageView {
            baseline: Some(REFERENCE.into()),
            ..v
        };
        out.derived.push(Derived::ratio(
            NAME,
            &k.layout,
            v.params(),
            m / r,
            id.clone(),
            rid.clone(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::keys::Cache;
    use super::*;

    #[test]
    fn fit_and_ratio_to_the_reference() {
        let mut samples = BTreeMap::new();
        for size_mib in [1u64, 16, 64] {
            let size = size_mib << 20;
            let key = |layout: &str, options, op| Key {
                layout: layout.into(),
                options,
                op,
                cache: Cache::Cold,
                size,
            };
            // 1 ms fixed + 0.8 ms/MiB, the reference 0.5 ms/MiB.
            let v = 1e6 + 8e5 * size_mib as f64;
            samples.insert(key("overlay2", "default", Op::FirstWrite), vec![v; 3]);
            let r = 5e5 * size_mib as f64;
            samples.insert(key(REFERENCE, REFERENCE_METHOD, Op::Copy), vec![r; 3]);
        }
        let mut out = Recorded::default();
        record(&mut out, "ext4", samples);
        let slope = out
            .derived
            .iter()
            .find(|d| d.kind == "slope" && d.layout == "overlay2")
            .expect("slope");
        assert!((slope.value - 8e5).abs() < 1e-3);
        assert!((slope.intercept.unwrap_or(0.0) - 1e6).abs() < 1e-3);
        assert_eq!(View::of_derived(slope).and_then(|v| v.size_bytes), None);
        let ratio = out
            .derived
            .iter()
            .find(|d| {
                d.kind == "ratio"
                    && View::of_derived(d).and_then(|v| v.size_bytes) == Some(64 << 20)
            })
            .expect("ratio");
        assert!((ratio.value - (1e6 + 8e5 * 64.0) / (5e5 * 64.0)).abs() < 1e-9);
        assert_eq!(ratio.inputs.len(), 2);
    }
}
