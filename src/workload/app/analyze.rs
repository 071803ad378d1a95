//! app's analysis (pure): samples → cases (time to ready per layout, cold and
//! warm) and the ratios to overlay2 and to plain of the same run.

use super::keys::{
    base_overlay2, is_baseline, Cache, ReadSetFile, ReadSetRecord, Ready, Samples, View,
    MAX_KEPT_FILES, NAME, READSET_BYTES, READSET_BYTE_FRACTION, READSET_FILES,
    READSET_FILE_FRACTION, TIME_TO_READY,
};
use crate::report::Derived;
use crate::workload::{CaseView, Recorded};

/// What the cases are about.
pub struct Setting<'a> {
    /// Layout names, by index in the run.
    pub layouts: &'a [&'static str],
    /// The image as the user named it.
    pub image: &'a str,
    /// Backing name.
    pub backing: &'a str,
    /// How readiness was judged.
    pub ready: Ready,
}

/// Records the cases and ratios of `s`, and the first layout's read set.
pub fn record(out: &mut Recorded, set: &Setting<'_>, s: &Samples) {
    record_read_sets(out, set, s);
    for cache in Cache::ALL {
        let view = View {
            image: set.image.to_string(),
            backing: set.backing.to_string(),
            cache,
            ready: set.ready,
            baseline: None,
        };
        let mut medians = Vec::new();
        for (li, name) in set.layouts.iter().enumerate() {
            let Some(samples) = s.series.get(&(li, cache)) else {
                continue;
            };
            if let Some(m) = out.case_of(&view, name, TIME_TO_READY, "ns", samples.clone()) {
                medians.push((*name, m));
            }
        }
        let plain = set.layouts.iter().copied().find(|l| is_baseline(l));
        for base in [Some(base_overlay2()), plain].into_iter().flatten() {
            let Some(&(_, den)) = medians.iter().find(|(n, _)| *n == base) else {
                continue;
            };
            if den <= 0.0 {
                continue;
            }
            for &(name, num) in medians.iter().filter(|(n, _)| *n != base) {
                let ratio = View {
                    baseline: Some(base.to_string()),
                    ..view.clone()
                };
                out.derived.push(Derived::ratio(
                    super::keys::NAME,
                    name,
                    ratio.params(),
                    num / den,
                    view.case_id(name, TIME_TO_READY),
                    view.case_id(base, TIME_TO_READY),
                ));
            }
        }
    }
}

/// Per layout, the read set's size and fractions (one sample each, under the
/// cold view: the recording start was cold); the list of the first layout
/// recorded, in first-open order, as `extras.app`.
fn record_read_sets(out: &mut Recorded, set: &Setting<'_>, s: &Samples) {
    let view = View {
        image: set.image.to_string(),
        backing: set.backing.to_string(),
        cache: Cache::Cold,
        ready: set.ready,
        baseline: None,
    };
    for (li, rs) in &s.read_sets {
        let Some(name) = set.layouts.get(*li) else {
            continue;
        };
        for (metric, unit, value) in [
            (READSET_FILES, "files", rs.files.len() as f64),
            (READSET_BYTES, "bytes", rs.bytes() as f64),
            (READSET_FILE_FRACTION, "fraction", rs.file_fraction()),
            (READSET_BYTE_FRACTION, "fraction", rs.byte_fraction()),
        ] {
            out.case_of(&view, name, metric, unit, vec![value]);
        }
    }
    if let Some((li, rs)) = s.read_sets.iter().next() {
        let record = ReadSetRecord {
            image: set.image.to_string(),
            backing: set.backing.to_string(),
            layout: set
                .layouts
                .get(*li)
                .copied()
                .unwrap_or_default()
                .to_string(),
            files: rs
                .files
                .iter()
                .take(MAX_KEPT_FILES)
                .map(|f| ReadSetFile {
                    path: f.path.to_string_lossy().into_owned(),
                    bytes: f.size,
                })
                .collect(),
            files_not_listed: rs.files.len().saturating_sub(MAX_KEPT_FILES) as u64,
            image_files: rs.image_files,
            image_bytes: rs.image_bytes,
            incomplete: rs.incomplete(),
        };
        if let Ok(v) = serde_json::to_value(&record) {
            out.extras.push((NAME.to_string(), v));
        }
        if rs.incomplete() {
            out.note(format!(
                "app: the read set recorded on {} is incomplete (a cap was hit or the kernel's \
                 event queue overflowed): {} files beyond the cap, index truncated: {}, overflow: {}",
                set.layouts.get(*li).copied().unwrap_or_default(),
                rs.dropped,
                rs.index_truncated,
                rs.overflowed
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::readset::{ReadFile, ReadSet};
    use std::path::PathBuf;

    #[test]
    fn read_set_cases_and_the_first_layouts_list() {
        let mut s = Samples::default();
        s.series.insert((0, Cache::Cold), vec![2e8, 2.2e8]);
        s.series.insert((1, Cache::Cold), vec![1e8, 1.1e8]);
        for li in [0, 1] {
            s.read_sets.insert(
                li,
                ReadSet {
                    files: vec![
                        ReadFile {
                            path: PathBuf::from("usr/bin/python3.11"),
                            size: 300,
                            read: true,
                            exec: true,
                        },
                        ReadFile {
                            path: PathBuf::from("usr/lib/python3.11/json/__init__.py"),
                            size: 100,
                            read: true,
                            exec: false,
                        },
                    ],
                    image_files: 20,
                    image_bytes: 4000,
                    ..ReadSet::default()
                },
            );
        }
        let mut out = Recorded::default();
        let layouts = ["overlay2", "plain"];
        record(
            &mut out,
            &Setting {
                layouts: &layouts,
                image: "oci:x:y",
                backing: "ext4",
                ready: Ready::Exit,
            },
            &s,
        );
        let of = |metric: &str| {
            out.cases
                .iter()
                .filter(|c| c.metric == metric)
                .map(|c| c.samples[0])
                .collect::<Vec<_>>()
        };
        assert_eq!(of(READSET_FILES), [2.0, 2.0]);
        assert_eq!(of(READSET_BYTES), [400.0, 400.0]);
        assert_eq!(of(READSET_FILE_FRACTION), [0.1, 0.1]);
        assert_eq!(of(READSET_BYTE_FRACTION), [0.1, 0.1]);
        assert_eq!(out.extras.len(), 1);
        let rec: ReadSetRecord = serde_json::from_value(out.extras[0].1.clone()).expect("typed");
        assert_eq!(rec.layout, "overlay2");
        assert_eq!(rec.files[1].path, "usr/lib/python3.11/json/__init__.py");
        // The ratio of overlay2 to plain, cold.
        assert!(out.derived.iter().any(|d| (d.value - 2.0).abs() < 0.2));
    }
}
