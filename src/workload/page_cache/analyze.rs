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
        (c.workload == NAME)
            .then(|| parse_params(&c.params))
            .flatten()
    }

    /// The typed view of a derived figure's params.
    pub fn of_derived(d: &Derived) -> Option<View> {
        (d.workload == NAME)
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
    for r in readings {
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
        };
        let p = Params::resolve(&b, &Options::default(), None, NAME).expect("valid");
        let set = p.set_bytes as f64;
        let readings = vec![
            Reading {
                layout: 0,
                containers: 4,
                phase: Phase::Read,
                metric: RESIDENT,
                value: set,
                unit: "bytes",
            },
            Reading {
                layout: 1,
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
        };
        let p = Params::resolve(&b, &Options::default(), None, NAME).expect("valid");
        let set = p.set_bytes as f64;
        let reading = |layout, value| Reading {
            layout,
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
