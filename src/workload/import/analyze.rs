//! Pure: import's readings → cases (one per layout × image × layer, and per
//! whole image), throughput of the whole-image import, and each layout's cost
//! against the layout that holds the same tree in another form — through one
//! typed view of its keys.

use super::keys::{Metric, Reading, Scope, View, NAME, REFERENCE, REFERENCE_TOOL};
use crate::report::{kinds, Derived};
use crate::workload::{CaseView, Recorded};

/// Where the readings were taken.
pub struct Setting<'a> {
    /// Backing filesystem name.
    pub backing: &'a str,
    /// Layout names by index.
    pub layouts: &'a [&'static str],
    /// For each layout, the index of the layout holding the same tree, if it ran.
    pub same_tree: &'a [Option<usize>],
    /// Each image's reference and layer count.
    pub images: &'a [(String, usize)],
}

/// Turns readings into cases; per layout and image, the whole-image
/// throughput (MiB of layer content per second) and the ratio of its
/// whole-image import to the same-tree layout's.
pub fn record(out: &mut Recorded, s: &Setting<'_>, readings: &[Reading]) {
    let name = |l: Option<usize>| match l {
        Some(i) => s.layouts.get(i).copied().unwrap_or("?"),
        None => REFERENCE,
    };
    let view = |r: &Reading| {
        let (image, layers) = s.images.get(r.image).cloned().unwrap_or_default();
        View {
            backing: s.backing.into(),
            image,
            image_layers: layers,
            layer: match r.scope {
                Scope::Layer(k) => Some(k),
                Scope::Image => None,
            },
            layer_bytes: r.layer_bytes,
            tool: r.layout.is_none().then(|| REFERENCE_TOOL.to_string()),
            same_tree: None,
        }
    };
    for r in readings {
        out.case_of(
            &view(r),
            name(r.layout),
            r.metric.name(),
            "ns",
            vec![r.value],
        );
    }
    // Layer content per image (the same layer holds the same bytes in every layout).
    let image_bytes = |image: usize| -> u64 {
        let mut per_layer: std::collections::BTreeMap<usize, u64> = Default::default();
        for r in readings.iter().filter(|r| r.image == image) {
            if let (Scope::Layer(k), Some(b)) = (r.scope, r.layer_bytes) {
                let e = per_layer.entry(k).or_default();
                *e = (*e).max(b);
            }
        }
        per_layer.values().sum()
    };
    let whole: Vec<&Reading> = readings
        .iter()
        .filter(|r| r.scope == Scope::Image && r.metric == Metric::Import && r.layout.is_some())
        .collect();
    for r in &whole {
        let v = view(r);
        let id = v.case_id(name(r.layout), Metric::Import.name());
        let mib = image_bytes(r.image) as f64 / (1 << 20) as f64;
        if r.value > 0.0 && mib > 0.0 {
            out.derived.push(Derived {
                workload: NAME.into(),
                layout: name(r.layout).into(),
                kind: kinds::THROUGHPUT.into(),
                params: v.params(),
                value: mib / (r.value / 1e9),
                unit: "MiB/s".into(),
                n: 1,
                inputs: vec![id.clone()],
                x: vec![mib],
                ..Default::default()
            });
        }
        let Some(other) = r.layout.and_then(|l| s.same_tree.get(l).copied().flatten()) else {
            continue;
        };
        let Some(den) = whole
            .iter()
            .find(|o| o.layout == Some(other) && o.image == r.image && o.value > 0.0)
        else {
            continue;
        };
        let den_id = view(den).case_id(name(den.layout), Metric::Import.name());
        let rv = View {
            same_tree: Some(name(den.layout).to_string()),
            ..v
        };
        out.derived.push(Derived::ratio(
            NAME,
            name(r.layout),
            rv.params(),
            r.value / den.value,
            id,
            den_id,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_and_same_tree_ratio_come_from_the_whole_image() {
        let reading = |layout, scope, value, bytes| Reading {
            layout,
            image: 0,
            scope,
            metric: Metric::Import,
            value,
            layer_bytes: bytes,
        };
        let readings = vec![
            reading(Some(0), Scope::Layer(0), 1e8, Some(1 << 20)),
            reading(Some(0), Scope::Layer(1), 1e8, Some(1 << 20)),
            reading(Some(1), Scope::Layer(0), 3e8, Some(1 << 20)),
            reading(Some(0), Scope::Image, 1e9, None),
            reading(Some(1), Scope::Image, 3e9, None),
            reading(None, Scope::Layer(0), 2e8, Some(1 << 20)),
        ];
        let mut out = Recorded::default();
        record(
            &mut out,
            &Setting {
                backing: "ext4",
                layouts: &["overlay2", "erofs"],
                same_tree: &[None, Some(0)],
                images: &[("synthetic:import".into(), 2)],
            },
            &readings,
        );
        assert_eq!(out.cases.len(), 6);
        let tp = out
            .derived
            .iter()
            .find(|d| d.kind == kinds::THROUGHPUT && d.layout == "overlay2")
            .expect("throughput");
        // 2 MiB in one second.
        assert!((tp.value - 2.0).abs() < 1e-9);
        let ratio = out
            .derived
            .iter()
            .find(|d| d.kind == kinds::RATIO)
            .expect("ratio");
        assert_eq!(ratio.layout, "erofs");
        assert!((ratio.value - 3.0).abs() < 1e-9);
        assert_eq!(
            View::of_derived(ratio).and_then(|v| v.same_tree),
            Some("overlay2".into())
        );
        let reference = out
            .cases
            .iter()
            .find(|c| c.layout == REFERENCE)
            .expect("reference");
        assert!(View::of_case(reference).and_then(|v| v.tool).is_some());
    }
}
