//! page-cache's section: resident bytes and sharing factors per layout × K, and
//! page-cache.svg (resident bytes against K, with perfect- and no-sharing lines).

use std::collections::BTreeMap;

use super::analyze::{Phase, View, DISK_ADDED, RESIDENT, SHARING};
use super::NAME;
use crate::report::chart::{
    layout_series, linear_panel, svg_page, Axis, Marker, RGBColor, Series, Unit,
};
use crate::report::summary::backings_of;
use crate::report::{fmt_bytes, Block, Case, Headline, Report, ReportError, Section, Table};

/// Renders page-cache's cases.
pub struct PageCacheSection;

const INTRO: &str = "K containers of one image each read the whole cache set; residency is read from \
the kernel (`mincore` over every distinct backing file; /proc/meminfo and the memory cgroup agree within noise \
and are in report.json). *sharing* = K × set size / resident bytes: K is perfect sharing, 1 is none. Then half the \
containers (rounded up) copy_up the set with a one-byte write and all read again. *disk added* = what the K \
containers and their copies add to the filesystem (`statvfs`): on xfs copies are reflinks that share blocks on \
disk, yet each still caches its own pages. Eviction between phases: `posix_fadvise` DONTNEED on exactly these files.";

fn views(r: &Report) -> Vec<(&Case, View)> {
    r.cases_of(NAME)
        .filter_map(|c| View::of_case(c).map(|v| (c, v)))
        .collect()
}

fn table(r: &Report, backing: &str) -> Option<Table> {
    let all = views(r);
    let cases: Vec<&(&Case, View)> = all
        .iter()
        .filter(|(c, v)| v.backing == backing && c.metric == RESIDENT)
        .collect();
    if cases.is_empty() {
        return None;
    }
    let resident = |layout: &str, k: usize, phase: Phase| {
        cases
            .iter()
            .find(|(c, v)| c.layout == layout && v.containers == k && v.phase == phase)
            .map(|(c, _)| c.stats.median)
    };
    let factor = |layout: &str, k: usize, phase: Phase| {
        r.derived
            .iter()
            .filter(|d| d.kind == SHARING && d.layout == layout)
            .find(|d| {
                View::of_derived(d)
                    .is_some_and(|v| v.backing == backing && v.containers == k && v.phase == phase)
            })
            .map(|d| format!("{:.2}x", d.value))
            .unwrap_or_else(|| "-".into())
    };
    let mut keys: Vec<(String, usize)> = Vec::new();
    for (c, v) in &cases {
        let k = (c.layout.clone(), v.containers);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut t = Table::new([
        "layout",
        "containers",
        "resident after reads",
        "sharing",
        "sharing (concurrent)",
        "after copy_up in half",
        "sharing",
        "disk added",
    ]);
    let b = |v: Option<f64>| v.map(fmt_bytes).unwrap_or_else(|| "-".into());
    for (layout, k) in keys {
        let disk = all
            .iter()
            .find(|(c, v)| {
                c.layout == layout
                    && c.metric == DISK_ADDED
                    && v.backing == backing
                    && v.containers == k
            })
            .map(|(c, _)| c.stats.median);
        t.row(vec![
            layout.clone(),
            k.to_string(),
            b(resident(&layout, k, Phase::Read)),
            factor(&layout, k, Phase::Read),
            factor(&layout, k, Phase::ReadConcurrent),
            b(resident(&layout, k, Phase::AfterCopyUp)),
            factor(&layout, k, Phase::AfterCopyUp),
            b(disk),
        ]);
    }
    Some(t)
}

impl Section for PageCacheSection {
    fn workload(&self) -> &'static str {
        NAME
    }

    /// The sharing factor of the most containers, read one after the other
    /// before any copy-up.
    fn headlines(&self, r: &Report) -> Vec<Headline> {
        let sharing: Vec<(&crate::report::Derived, View)> = r
            .derived
            .iter()
            .filter(|d| d.kind == SHARING)
            .filter_map(|d| View::of_derived(d).map(|v| (d, v)))
            .filter(|(_, v)| v.phase == Phase::Read)
            .collect();
        let Some(k) = sharing.iter().map(|(_, v)| v.containers).max() else {
            return Vec::new();
        };
        sharing
            .iter()
            .filter(|(_, v)| v.containers == k)
            .map(|(d, v)| Headline {
                figure: format!("page cache: sharing factor of {k} containers reading one image"),
                layout: d.layout.clone(),
                backing: v.backing.clone(),
                value: d.value,
                shown: format!("{:.2}x", d.value),
                lower_is_better: false,
            })
            .collect()
    }

    fn blocks(&self, r: &Report) -> Vec<Block> {
        backings_of(r, NAME)
            .into_iter()
            .filter_map(|backing| {
                let t = table(r, &backing)?;
                Some(Block {
                    heading: format!(
                        "page-cache — memory of K containers reading one image ({backing})"
                    ),
                    intro: INTRO.into(),
                    tables: vec![(None, t)],
                })
            })
            .collect()
    }

    fn terminal_blocks(&self, r: &Report) -> Vec<Block> {
        backings_of(r, NAME)
            .into_iter()
            .filter_map(|backing| {
                let t = table(r, &backing)?;
                Some(Block {
                    heading: format!(
                        "page-cache on {backing} (resident set from mincore; sharing = K × set / resident)"
                    ),
                    intro: String::new(),
                    tables: vec![(None, t)],
                })
            })
            .collect()
    }

    fn chart_name(&self) -> Option<String> {
        Some("page-cache.svg".into())
    }

    fn chart(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        let backings = backings_of(report, NAME);
        let rows = backings.len().max(1);
        let all = views(report);
        svg_page(
            "page-cache.svg",
            (1200, 60 + 460 * rows as u32),
            "overlaybench · page cache used by K containers reading one image (mincore)",
            |root| {
                let panels = root.split_evenly((rows, 2));
                for (bi, backing) in backings.iter().enumerate() {
                    let cases: Vec<&(&Case, View)> = all
                        .iter()
                        .filter(|(c, v)| v.backing == *backing && c.metric == RESIDENT)
                        .collect();
                    let set = cases
                        .iter()
                        .map(|(_, v)| v.set_bytes as f64)
                        .fold(0.0, f64::max);
                    let kmax = cases
                        .iter()
                        .map(|(_, v)| v.containers as f64)
                        .fold(1.0, f64::max);
                    for (pi, (phase, title)) in [
                        (Phase::Read, "every container reads the set"),
                        (
                            Phase::AfterCopyUp,
                            "after half the containers copy_up the set",
                        ),
                    ]
                    .iter()
                    .enumerate()
                    {
                        let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
                        for (c, v) in cases.iter().filter(|(_, v)| v.phase == *phase) {
                            lines
                                .entry(c.layout.clone())
                                .or_default()
                                .push((v.containers as f64, c.stats.median));
                        }
                        let mut series = layout_series(lines);
                        for (label, points) in [
                            ("perfect sharing (one copy)", vec![(1.0, set), (kmax, set)]),
                            (
                                "no sharing (K copies)",
                                vec![(1.0, set), (kmax, set * kmax)],
                            ),
                        ] {
                            series.push(Series {
                                label: label.into(),
                                color: if label.starts_with("perfect") {
                                    RGBColor(120, 120, 120)
                                } else {
                                    RGBColor(0, 0, 0)
                                },
                                marker: Marker::Circle,
                                dashed: true,
                                points,
                            });
                        }
                        linear_panel(
                            &panels[bi * 2 + pi],
                            &format!("{title} ({backing})"),
                            Axis::new("containers (K)", Unit::Count),
                            Axis::new("page cache resident", Unit::Bytes),
                            &series,
                            None,
                        )?;
                    }
                }
                Ok(())
            },
        )
    }
}
