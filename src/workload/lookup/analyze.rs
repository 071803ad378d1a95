//! Pure: lookup's samples → cases, slopes against depth and ratios to the
//! baseline, through one typed view of its keys (`View`) that both writes and
//! reads the report's params.

use std::collections::BTreeMap;

use super::keys::{
    metric_of, Cache, Calibration, ImageKey, ImageView, Key, Op, StoreKey, Target, View, NAME,
};
use super::params::Params;
use crate::report::{case_key, Derived};
use crate::stats::fit_line;
use crate::workload::{CaseView, Recorded};

fn view(k: &Key, p: &Params, s: &Setting<'_>) -> View {
    let (eviction, backing) = (s.eviction, s.backing);
    View {
        backing: backing.into(),
        depth: Some(k.depth),
        op: k.op,
        target: k.target,
        cache: k.cache,
        eviction: (k.cache == Cache::Cold).then(|| eviction.to_string()),
        ops_per_sample: (k.op == Op::Stat).then_some(match k.cache {
            Cache::Cold => p.batch,
            Cache::Warm => p.names,
        }),
        entries: (k.op == Op::Readdir).then_some(k.depth * p.entries_per_layer),
        baseline: None,
        entry_timeout_s: s.timeouts.get(k.layout).copied().flatten(),
        same_tree: None,
        store_images: None,
    }
}

/// Where the samples were taken: names of the run's layouts (by index), the
/// baseline's index, the backing and how cold was made.
pub struct Setting<'a> {
    /// Layout names in interleaving order.
    pub layouts: &'a [&'static str],
    /// Index of the baseline layout, if it ran.
    pub baseline: Option<usize>,
    /// Per layout, the index of the layout holding the same trees in another
    /// form, if it ran (`Capabilities::same_tree_as`).
    pub same_tree: &'a [Option<usize>],
    /// Backing filesystem name.
    pub backing: &'a str,
    /// Eviction method name.
    pub eviction: &'a str,
    /// Per layout (by index), the kernel's entry/attr cache timeout when a
    /// daemon sets one.
    pub timeouts: &'a [Option<f64>],
}

/// Turns samples into cases, slopes of the median against depth (per layout ×
/// op × target × cache) and ratios to the baseline at each depth.
pub fn record(out: &mut Recorded, p: &Params, s: &Setting<'_>, samples: BTreeMap<Key, Vec<f64>>) {
    let name = |k: &Key| s.layouts[k.layout];
    let id = |k: &Key| view(k, p, s).case_id(name(k), metric_of(k.op).0);
    let mut medians: BTreeMap<Key, f64> = BTreeMap::new();
    for (key, samples) in samples {
        let (metric, unit) = metric_of(key.op);
        if let Some(m) = out.case_of(&view(&key, p, s), name(&key), metric, unit, samples) {
            medians.insert(key, m);
        }
    }
    let mut series: BTreeMap<Key, Vec<(f64, f64, String)>> = BTreeMap::new();
    for (k, &m) in &medians {
        series
            .entry(Key { depth: 0, ..*k })
            .or_default()
            .push((k.depth as f64, m, id(k)));
    }
    for (k, pts) in &series {
        let xy: Vec<(f64, f64)> = pts.iter().map(|(x, y, _)| (*x, *y)).collect();
        let Some(fit) = fit_line(&xy) else { continue };
        let v = View {
            depth: None,
            entries: None,
            ..view(k, p, s)
        };
        let points = pts.iter().map(|(x, _, id)| (*x, id.clone())).collect();
        out.derived.push(Derived::slope(
            NAME,
            name(k),
            v.params(),
            &fit,
            "ns/layer",
            points,
        ));
    }
    // Each layout against the one holding the same trees in another form.
    for (k, &m) in &medians {
        let Some(o) = s.same_tree.get(k.layout).copied().flatten() else {
            continue;
        };
        let b = Key { layout: o, ..*k };
        let Some(&bm) = medians.get(&b).filter(|v| **v > 0.0) else {
            continue;
        };
        let v = View {
            same_tree: Some(s.layouts[o].to_string()),
            ..view(k, p, s)
        };
        out.derived.push(Derived::ratio(
            NAME,
            name(k),
            v.params(),
            m / bm,
            id(k),
            id(&b),
        ));
    }
    let Some(base) = s.baseline else { return };
    for (k, &m) in &medians {
        if k.layout == base {
            continue;
        }
        let b = Key { layout: base, ..*k };
        let Some(&bm) = medians.get(&b).filter(|v| **v > 0.0) else {
            continue;
        };
        let v = View {
            baseline: Some(s.layouts[base].to_string()),
            ..view(k, p, s)
        };
        out.derived.push(Derived::ratio(
            NAME,
            name(k),
            v.params(),
            m / bm,
            id(k),
            id(&b),
        ));
    }
}

/// The calibrated figures: per cold stat series with references, a case of
/// the references (raw, ns) and one of the paired quotients (each batch over
/// the reference batch taken right after it, ×); per depth the ratio of the
/// two medians; per layout × target the slope of the quotients' medians over
/// every depth (× per layer, at least three depths).
pub fn record_calibrated(
    out: &mut Recorded,
    p: &Params,
    s: &Setting<'_>,
    series: &BTreeMap<Key, Vec<f64>>,
    reference: BTreeMap<Key, Vec<f64>>,
) {
    let with = |k: &Key, role: Calibration, depth: bool| {
        let v = View {
            depth: depth.then_some(k.depth),
            ..view(k, p, s)
        };
        v.calibration_params(role)
    };
    let mut fits: BTreeMap<Key, Vec<(f64, f64, String)>> = BTreeMap::new();
    for (k, refs) in reference {
        let Some(xs) = series.get(&k) else { continue };
        let layout = s.layouts[k.layout];
        let quotients: Vec<f64> = xs
            .iter()
            .zip(&refs)
            .filter(|(_, r)| **r > 0.0)
            .map(|(x, r)| x / r)
            .collect();
        let (metric, unit) = metric_of(k.op);
        let ref_params = with(&k, Calibration::Reference, true);
        let ref_id = case_key(NAME, layout, metric, &ref_params);
        let Some(ref_median) = out.case(NAME, layout, ref_params, metric, unit, refs) else {
            continue;
        };
        let q_params = with(&k, Calibration::Normalised, true);
        let q_metric = "latency_per_reference";
        let q_id = case_key(NAME, layout, q_metric, &q_params);
        let Some(q_median) = out.case(NAME, layout, q_params.clone(), q_metric, "x", quotients)
        else {
            continue;
        };
        let own_id = view(&k, p, s).case_id(layout, metric);
        let own_median = crate::stats::Stats::compute(xs).map(|st| st.median);
        if let Some(own) = own_median.filter(|_| ref_median > 0.0) {
            out.derived.push(Derived::ratio(
                NAME,
                layout,
                q_params,
                own / ref_median,
                own_id,
                ref_id,
            ));
        }
        fits.entry(Key { depth: 0, ..k })
            .or_default()
            .push((k.depth as f64, q_median, q_id));
    }
    for (k, pts) in fits {
        if pts.len() < 3 {
            continue;
        }
        let xy: Vec<(f64, f64)> = pts.iter().map(|(x, y, _)| (*x, *y)).collect();
        let Some(fit) = fit_line(&xy) else { continue };
        let params = with(&k, Calibration::Normalised, false);
        let points = pts.into_iter().map(|(x, _, id)| (x, id)).collect();
        out.derived.push(Derived::slope(
            NAME,
            s.layouts[k.layout],
            params,
            &fit,
            "x/layer",
            points,
        ));
    }
}

// ---------------------------------------------------------------------------
// The user's images.

/// Where image samples were taken: the run's layouts and images by index.
pub struct ImageSetting<'a> {
    /// Layout names in interleaving order.
    pub layouts: &'a [&'static str],
    /// Index of the baseline layout, if it ran.
    pub baseline: Option<usize>,
    /// Image references and layer counts, by index.
    pub images: &'a [(String, usize)],
    /// Backing filesystem name.
    pub backing: &'a str,
    /// Eviction method name.
    pub eviction: &'a str,
}

/// Turns image samples into cases and ratios to the baseline (same image,
/// layer and cache state). `counts` holds names per (image, layer) and
/// entries per image (layer `None`).
pub fn record_images(
    out: &mut Recorded,
    p: &Params,
    s: &ImageSetting<'_>,
    counts: &BTreeMap<(usize, Option<usize>), usize>,
    samples: BTreeMap<ImageKey, Vec<f64>>,
) {
    let view = |k: &ImageKey| -> Option<ImageView> {
        let (image, layers) = s.images.get(k.image)?;
        Some(ImageView {
            backing: s.backing.into(),
            image: image.clone(),
            layers: *layers,
            op: k.op,
            layer: k.layer,
            cache: k.cache,
            eviction: (k.cache == Cache::Cold).then(|| s.eviction.to_string()),
            names: counts.get(&(k.image, k.layer)).copied().unwrap_or(0),
            ops_per_sample: (k.op == Op::Stat).then_some(p.batch),
            baseline: None,
        })
    };
    let mut medians: BTreeMap<ImageKey, (f64, String)> = BTreeMap::new();
    for (k, samples) in samples {
        let (Some(v), Some(&layout)) = (view(&k), s.layouts.get(k.layout)) else {
            continue;
        };
        let (metric, unit) = metric_of(k.op);
        let id = v.case_id(layout, metric);
        if let Some(m) = out.case_of(&v, layout, metric, unit, samples) {
            medians.insert(k, (m, id));
        }
    }
    let Some(base) = s.baseline else { return };
    for (k, (m, id)) in &medians {
        if k.layout == base {
            continue;
        }
        let Some((bm, bid)) = medians
            .get(&ImageKey { layout: base, ..*k })
            .filter(|(v, _)| *v > 0.0)
        else {
            continue;
        };
        let Some(v) = view(k) else { continue };
        let v = ImageView {
            baseline: Some(s.layouts[base].to_string()),
            ..v
        };
        out.derived.push(Derived::ratio(
            NAME,
            s.layouts[k.layout],
            v.params(),
            m / bm,
            id.clone(),
            bid.clone(),
        ));
    }
}

fn store_view(k: &StoreKey, p: &Params, eviction: &str, backing: &str) -> View {
    View {
        backing: backing.into(),
        depth: None,
        op: k.op,
        target: Target::Store,
        cache: k.cache,
        eviction: (k.cache == Cache::Cold).then(|| eviction.to_string()),
        ops_per_sample: Some(match k.cache {
            Cache::Cold => p.batch,
            Cache::Warm => p.names,
        }),
        entries: None,
        baseline: None,
        same_tree: None,
        store_images: Some(k.images),
        entry_timeout_s: None,
    }
}

/// The store sweep's samples → cases and, per layout × op × cache, the slope
/// of the median against the images sharing the store (ns per image: flat
/// when other images cost a lookup nothing).
pub fn record_store(
    out: &mut Recorded,
    p: &Params,
    s: &Setting<'_>,
    samples: BTreeMap<StoreKey, Vec<f64>>,
) {
    let name = |k: &StoreKey| s.layouts[k.layout];
    let mut series: BTreeMap<StoreKey, Vec<(f64, f64, String)>> = BTreeMap::new();
    for (key, samples) in samples {
        let (metric, unit) = metric_of(key.op);
        let v = store_view(&key, p, s.eviction, s.backing);
        let id = v.case_id(name(&key), metric);
        if let Some(m) = out.case_of(&v, name(&key), metric, unit, samples) {
            series
                .entry(StoreKey { images: 0, ..key })
                .or_default()
                .push((key.images as f64, m, id));
        }
    }
    for (k, pts) in &series {
        let xy: Vec<(f64, f64)> = pts.iter().map(|(x, y, _)| (*x, *y)).collect();
        let Some(fit) = fit_line(&xy) else { continue };
        let v = View {
            store_images: None,
            ..store_view(k, p, s.eviction, s.backing)
        };
        let points = pts.iter().map(|(x, _, id)| (*x, id.clone())).collect();
        out.derived.push(Derived::slope(
            NAME,
            name(k),
            v.params(),
            &fit,
            "ns/image",
            points,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::lookup::params::Options;
    use crate::workload::Suite;

    #[test]
    fn slopes_and_ratios_come_from_the_medians() {
        let p = Params::resolve(Suite::Quick, &Options::default()).expect("valid");
        let mut samples = BTreeMap::new();
        for (layout, per_layer) in [(0usize, 1000.0), (1, 0.0)] {
            for depth in [1usize, 2, 4, 8] {
                let key = Key {
                    layout,
                    op: Op::Stat,
                    target: Target::Bottom,
                    cache: Cache::Cold,
                    depth,
                };
                let v = 500.0 + per_layer * depth as f64;
                samples.insert(key, vec![v, v + 1.0, v - 1.0]);
            }
        }
        let mut out = Recorded::default();
        let setting = Setting {
            layouts: &["overlay2", "plain"],
            baseline: Some(1),
            same_tree: &[None, None],
            backing: "ext4",
            eviction: "remount-backing",
            timeouts: &[None, None],
        };
        record(&mut out, &p, &setting, samples);
        assert_eq!(out.cases.len(), 8);
        let slope = out
            .derived
            .iter()
            .find(|d| d.layout == "overlay2" && d.kind == "slope")
            .expect("slope");
        assert!((slope.value - 1000.0).abs() < 1e-6 && slope.inputs.len() == 4);
        let v = View::of_derived(slope).expect("typed");
        assert_eq!((v.depth, v.op, v.target), (None, Op::Stat, Target::Bottom));
        let ratio = out
            .derived
            .iter()
            .find(|d| d.kind == "ratio" && d.params.get("depth") == Some(&8.into()))
            .expect("ratio");
        assert!((ratio.value - 8500.0 / 500.0).abs() < 1e-9);
        assert_eq!(
            View::of_case(&out.cases[0]).map(|v| v.backing),
            Some("ext4".into())
        );
    }

    #[test]
    fn same_tree_ratios_and_store_slopes() {
        let p = Params::resolve(Suite::Quick, &Options::default()).expect("valid");
        let mut samples = BTreeMap::new();
        for (layout, v) in [(0usize, 1000.0), (1, 1500.0)] {
            samples.insert(
                Key {
                    layout,
                    op: Op::Stat,
                    target: Target::Bottom,
                    cache: Cache::Cold,
                    depth: 4,
                },
                vec![v],
            );
        }
        let setting = Setting {
            layouts: &["overlay2", "erofs"],
            baseline: None,
            same_tree: &[None, Some(0)],
            backing: "ext4",
            eviction: "remount-backing",
            timeouts: &[None, None],
        };
        let mut out = Recorded::default();
        record(&mut out, &p, &setting, samples);
        let r = out
            .derived
            .iter()
            .find(|d| d.kind == "ratio")
            .expect("same-tree ratio");
        assert_eq!(r.layout, "erofs");
        assert!((r.value - 1.5).abs() < 1e-9);
        let v = View::of_derived(r).expect("typed");
        assert_eq!(
            (v.same_tree.as_deref(), v.baseline),
            (Some("overlay2"), None)
        );
        let mut store = BTreeMap::new();
        for images in [1usize, 4, 16] {
            store.insert(
                StoreKey {
                    layout: 1,
                    op: Op::Open,
                    cache: Cache::Cold,
                    images,
                },
                vec![2000.0 + 10.0 * images as f64],
            );
        }
        let mut out = Recorded::default();
        record_store(&mut out, &p, &setting, store);
        assert_eq!(out.cases.len(), 3);
        let slope = out
            .derived
            .iter()
            .find(|d| d.kind == "slope")
            .expect("slope");
        assert!((slope.value - 10.0).abs() < 1e-6 && slope.unit == "ns/image");
        let v = View::of_derived(slope).expect("typed");
        assert_eq!((v.target, v.store_images), (Target::Store, None));
    }
}
