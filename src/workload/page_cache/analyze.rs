//! Pure: page-cache's readings → cases and sharing factors, through one typed
//! view of its keys.

use super::keys::{copied_up, ImageView, Phase, Reading, View, NAME, RESIDENT, SHARING};
use super::params::Params;
use crate::report::Derived;
use crate::workload::{CaseView, Recorded};

/// Turns readings into cases and, for resident bytes, the sharing factor
/// K × set / resident (K is perfect sharing, 1 none; for M images, M × set /
/// resident).
pub fn record(
    out: &mut Recorded,
    p: &Params,
    backing: &str,
    layouts: &[&str],
    readings: Vec<Reading>,
) {
    for r in readings.into_iter().filter(|r| r.image.is_none()) {
        let view = |copied: Option<usize>| View {
            backing: backing.into(),
            containers: r.containers,
            phase: r.phase,
            set_bytes: p.set_bytes,
            files: p.files,
            eviction: "posix_fadvise-dontneed".into(),
            copied_up_containers: copied,
            images: (r.phase == Phase::MultiImage).then_some(r.containers),
        };
        let Some(&layout) = layouts.get(r.layout) else {
            continue;
        };
        if r.metric == RESIDENT && r.value > 0.0 {
            let copied = if r.phase == Phase::AfterCopyUp {
                copied_up(r.containers)
            } else {
                0
            };
            out.derived.push(Derived {
                workload: NAME.into(),
                layout: layout.into(),
                kind: SHARING.into(),
                params: view(Some(copied)).params(),
                value: (r.containers as f64 * p.set_bytes as f64) / r.value,
                unit: "x".into(),
                r2: None,
                intercept: None,
                n: 1,
                ..Default::default()
            });
        }
        out.case_of(&view(None), layout, r.metric, r.unit, vec![r.value]);
    }
}

// ---------------------------------------------------------------------------
// The user's images.

/// Turns the images' readings into cases and sharing factors; `images[i]`
/// is image `i`'s reference and `sets[i]` what its containers read.
pub fn record_images(
    out: &mut Recorded,
    p: &Params,
    backing: &str,
    layouts: &[&str],
    images: &[String],
    sets: &[super::params::ImageReadSet],
    readings: Vec<Reading>,
) {
    for r in readings {
        let (Some(ii), Some(&layout)) = (r.image, layouts.get(r.layout)) else {
            continue;
        };
        let (Some(image), Some(set)) = (images.get(ii), sets.get(ii)) else {
            continue;
        };
        let view = |copied: Option<usize>| ImageView {
            backing: backing.into(),
            image: image.clone(),
            containers: r.containers,
            phase: r.phase,
            set_bytes: set.bytes,
            set_page_bytes: set.page_bytes,
            files: set.names.len(),
            read_set: (!p.read_set.is_empty()).then(|| p.read_set.join(" ")),
            eviction: "posix_fadvise-dontneed".into(),
            copied_up_containers: copied,
        };
        if r.metric == RESIDENT && r.value > 0.0 {
            let copied = if r.phase == Phase::AfterCopyUp {
                copied_up(r.containers)
            } else {
                0
            };
            out.derived.push(Derived {
                workload: NAME.into(),
                layout: layout.into(),
                kind: SHARING.into(),
                params: view(Some(copied)).params(),
                value: (r.containers as f64 * set.page_bytes as f64) / r.value,
                unit: "x".into(),
                r2: None,
                intercept: None,
                n: 1,
                ..Default::default()
            });
        }
        out.case_of(&view(None), layout, r.metric, r.unit, vec![r.value]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::page_cache::params::Options;
    use crate::workload::{BuildContext, Suite, WorkloadOptions};

    #[test]
    fn sharing_is_k_times_the_set_over_resident() {
        let opts = WorkloadOptions::default();
        let b = BuildContext {
            suite: Suite::Quick,
            options: &opts,
            backings: &[],
            selected: &[],
            seed: 1,
            images: 0,
            synthetic: true,
        };
        let p = Params::resolve(&b, &Options::default(), None, NAME).expect("valid");
        let set = p.set_bytes as f64;
        let readings = vec![
            Reading {
                layout: 0,
                image: None,
                containers: 4,
                phase: Phase::Read,
                metric: RESIDENT,
                value: set,
                unit: "bytes",
            },
            Reading {
                layout: 1,
                image: None,
                containers: 4,
                phase: Phase::Read,
                metric: RESIDENT,
                value: 4.0 * set,
                unit: "bytes",
            },
        ];
        let mut out = Recorded::default();
        record(&mut out, &p, "ext4", &["overlay2", "plain"], readings);
        let f: Vec<f64> = out.derived.iter().map(|d| d.value).collect();
        assert_eq!(f, vec![4.0, 1.0]);
        assert_eq!(
            View::of_derived(&out.derived[0]).and_then(|v| v.copied_up_containers),
            Some(0)
        );
        assert_eq!(
            View::of_case(&out.cases[0]).map(|v| v.phase),
            Some(Phase::Read)
        );
        assert_eq!(copied_up(1), 1);
        assert_eq!(copied_up(4), 2);
    }

    #[test]
    fn multi_image_sharing_is_m_times_the_set_over_resident() {
        let opts = WorkloadOptions::default();
        let b = BuildContext {
            suite: Suite::Quick,
            options: &opts,
            backings: &[],
            selected: &[],
            seed: 1,
            images: 0,
            synthetic: true,
        };
        let p = Params::resolve(&b, &Options::default(), None, NAME).expect("valid");
        let set = p.set_bytes as f64;
        let reading = |layout, value| Reading {
            layout,
            image: None,
            containers: 3,
            phase: Phase::MultiImage,
            metric: RESIDENT,
            value,
            unit: "bytes",
        };
        let mut out = Recorded::default();
        record(
            &mut out,
            &p,
            "ext4",
            &["overlay2", "composefs"],
            vec![reading(0, 3.0 * set), reading(1, set)],
        );
        let f: Vec<f64> = out.derived.iter().map(|d| d.value).collect();
        assert_eq!(f, vec![1.0, 3.0]);
        let v = View::of_derived(&out.derived[1]).expect("typed");
        assert_eq!((v.phase, v.images), (Phase::MultiImage, Some(3)));
        assert_eq!(View::of_case(&out.cases[0]).and_then(|v| v.images), Some(3));
    }
}
