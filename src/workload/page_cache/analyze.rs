//! Pure: page-cache's readings → cases and sharing factors, through one typed
//! view of its keys.

use serde::{Deserialize, Serialize};

use super::params::Params;
use super::NAME;
use crate::report::{params_of, parse_params, Case, Derived};
use crate::workload::Recorded;

/// When residency is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// After every container read the set, one after the other.
    Read,
    /// After every container read the set, all at once.
    ReadConcurrent,
    /// After half the containers copied the set up and all read again.
    AfterCopyUp,
    /// M different images (same files, no shared layer), one container each,
    /// after each read the set; `containers` is M.
    MultiImage,
}

/// One reading: a layout (by its index in the run), K, phase, metric, value, unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Index of the layout in the run.
    pub layout: usize,
    /// Index of the user's image read (None: the synthetic set).
    pub image: Option<usize>,
    /// Containers reading.
    pub containers: usize,
    /// When.
    pub phase: Phase,
    /// What (`resident_bytes`, `backing_files`, …).
    pub metric: &'static str,
    /// The figure.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
}

/// The report's params of a page-cache case or derived figure, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// Backing filesystem.
    pub backing: String,
    /// Containers reading.
    pub containers: usize,
    /// When.
    pub phase: Phase,
    /// Bytes of the set.
    pub set_bytes: u64,
    /// Files of the set.
    pub files: usize,
    /// How caches were emptied between phases.
    pub eviction: String,
    /// Containers that had copied the set up (sharing factors).
    #[serde(default)]
    pub copied_up_containers: Option<usize>,
    /// Different images read, one container each (multi-image case only).
    #[serde(default)]
    pub images: Option<usize>,
}

impl View {
    /// The typed view of a case's params (None for another workload's).
    pub fn of_case(c: &Case) -> Option<View> {
        // A case about one of the user's images has its own view (`ImageView`).
        (c.workload == NAME && !c.params.contains_key("image"))
            .then(|| parse_params(&c.params))
            .flatten()
    }

    /// The typed view of a derived figure's params.
    pub fn of_derived(d: &Derived) -> Option<View> {
        (d.workload == NAME && !d.params.contains_key("image"))
            .then(|| parse_params(&d.params))
            .flatten()
    }
}

/// Metric of the bytes resident over the distinct backing files.
pub const RESIDENT: &str = "resident_bytes";
/// Metric of the disk the containers add.
pub const DISK_ADDED: &str = "disk_bytes_added";
/// Kind of the sharing factor figure.
pub const SHARING: &str = "sharing-factor";

/// How many containers copy the set up in the last phase (half, at least one).
pub fn copied_up(k: usize) -> usize {
    k.div_ceil(2)
}

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
                params: params_of(&view(Some(copied))),
                value: (r.containers as f64 * p.set_bytes as f64) / r.value,
                unit: "x".into(),
                r2: None,
                intercept: None,
                n: 1,
                ..Default::default()
            });
        }
        out.case(
            NAME,
            layout,
            params_of(&view(None)),
            r.metric,
            r.unit,
            vec![r.value],
        );
    }
}

// ---------------------------------------------------------------------------
// The user's images.

/// The report's params of a page-cache case or derived figure about one of
/// the user's images, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageView {
    /// Backing filesystem.
    pub backing: String,
    /// The image's reference.
    pub image: String,
    /// Containers reading.
    pub containers: usize,
    /// When.
    pub phase: Phase,
    /// Bytes of the image's files read.
    pub set_bytes: u64,
    /// The same in whole 4 KiB pages per file: what one cached copy takes
    /// (sharing = K × this / resident).
    pub set_page_bytes: u64,
    /// Files read.
    pub files: usize,
    /// The glob patterns that chose them (absent: every regular file, up to the budget).
    #[serde(default)]
    pub read_set: Option<String>,
    /// How caches were emptied between phases.
    pub eviction: String,
    /// Containers that had copied the set up (sharing factors).
    #[serde(default)]
    pub copied_up_containers: Option<usize>,
}

impl ImageView {
    /// The typed view of a case's params (None for a synthetic case).
    pub fn of_case(c: &Case) -> Option<ImageView> {
        (c.workload == NAME)
            .then(|| parse_params(&c.params))
            .flatten()
    }

    /// The typed view of a derived figure's params.
    pub fn of_derived(d: &Derived) -> Option<ImageView> {
        (d.workload == NAME)
            .then(|| parse_params(&d.params))
            .flatten()
    }
}

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
                params: params_of(&view(Some(copied))),
                value: (r.containers as f64 * set.page_bytes as f64) / r.value,
                unit: "x".into(),
                r2: None,
                intercept: None,
                n: 1,
                ..Default::default()
            });
        }
        out.case(
            NAME,
            layout,
            params_of(&view(None)),
            r.metric,
            r.unit,
            vec![r.value],
        );
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
