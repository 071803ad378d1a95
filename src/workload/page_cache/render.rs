//! page-cache's section: resident bytes and sharing factors per layout × K, and
//! page-cache.svg (resident bytes against K, with perfect- and no-sharing lines).

use std::collections::BTreeMap;

use super::keys::{ImageView, Phase, View, DISK_ADDED, NAME, RESIDENT, SHARING};
use crate::report::chart::{
    layout_series, linear_panel, svg_page, Axis, Marker, RGBColor, Series, Unit,
};
use crate::report::summary::{backings_of, images_of};
use crate::report::{fmt_bytes, Block, Case, Headline, Report, ReportError, Section, Table};
use crate::workload::CaseView;

/// Renders page-cache's cases.
pub struct PageCacheSection;

const INTRO: &str = "K containers of one image each read the whole cache set; residency is read from \
the kernel (`mincore` over every distinct backing file; /proc/meminfo and the memory cgroup agree within noise \
and are in report.json). *sharing* = K × set size / resident bytes: K is perfect sharing, 1 is none. Then half the \
containers (rounded up) copy_up the set with a one-byte write and all read again. *disk added* = what the K \
containers and their copies add to the filesystem (`statvfs`): on xfs copies are reflinks that share blocks on \
disk, yet each still caches its own pages. Eviction between phases: `posix_fadvise` DONTNEED on exactly these files.";

/// The chart of the user's images.
const IMAGE_CHART: &str = "page-cache-images.svg";

fn image_views<'a>(r: &'a Report, image: &str, backing: &str) -> Vec<(&'a Case, ImageView)> {
    r.cases_of(NAME)
        .filter_map(|c| ImageView::of_case(c).map(|v| (c, v)))
        .filter(|(_, v)| v.image == image && v.backing == backing)
        .collect()
}

/// The table of one image on one backing, and a line saying what was read.
fn image_table(r: &Report, image: &str, backing: &str) -> Option<(Table, String)> {
    let all = image_views(r, image, backing);
    let cases: Vec<&(&Case, ImageView)> =
        all.iter().filter(|(c, _)| c.metric == RESIDENT).collect();
    let first = cases.first()?;
    let what = format!(
        "K containers of {image} each read {} files ({}){}.",
        first.1.files,
        fmt_bytes(first.1.set_bytes as f64),
        first
            .1
            .read_set
            .as_ref()
            .map(|g| format!(" matching {g}"))
            .unwrap_or_default()
    );
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
                ImageView::of_derived(d).is_some_and(|v| {
                    v.image == image
                        && v.backing == backing
                        && v.containers == k
                        && v.phase == phase
                })
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
            .find(|(c, v)| c.layout == layout && c.metric == DISK_ADDED && v.containers == k)
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
    Some((t, what))
}

fn image_blocks(r: &Report, terminal: bool) -> Vec<Block> {
    let mut out = Vec::new();
    for backing in backings_of(r, NAME) {
        for image in images_of(r, NAME) {
            let Some((t, what)) = image_table(r, &image, &backing) else {
                continue;
            };
            out.push(Block {
                heading: if terminal {
                    format!("page-cache of {image} on {backing} (sharing = K × set / resident)")
                } else {
                    format!("page-cache — K containers reading {image} ({backing})")
                },
                intro: if terminal {
                    String::new()
                } else {
                    format!("{what} Residency, phases and eviction as for the synthetic set above.")
                },
                tables: vec![(None, t)],
            });
        }
    }
    out
}

fn views(r: &Report) -> Vec<(&Case, View)> {
    r.cases_of(NAME)
        .filter_map(|c| View::of_case(c).map(|v| (c, v)))
        .collect()
}

fn table(r: &Report, backing: &str) -> Option<Table> {
    let all = views(r);
    let cases: Vec<&(&Case, View)> = all
        .iter()
        .filter(|(c, v)| {
            v.backing == backing && c.metric == RESIDENT && v.phase != Phase::MultiImage
        })
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

const IMAGES_INTRO: &str = "M *different* images, one container each, read the set: every image holds \
the same files (same names and content) in other layers, so no layer is shared. A store that keeps a file once \
by content caches it once (sharing M); a store of layers caches each image's copy (sharing 1). *sharing* = M × \
set / resident. An EROFS layer's data is cached twice — in the EROFS inode and in the image file it is read \
from — and both are counted.";

/// The multi-image table: resident bytes and sharing per layout × M.
fn images_table(r: &Report, backing: &str) -> Option<Table> {
    let all = views(r);
    let cases: Vec<&(&Case, View)> = all
        .iter()
        .filter(|(c, v)| {
            v.backing == backing && c.metric == RESIDENT && v.phase == Phase::MultiImage
        })
        .collect();
    if cases.is_empty() {
        return None;
    }
    let mut t = Table::new([
        "layout",
        "images (M)",
        "resident after reads",
        "sharing",
        "backing files",
    ]);
    for (c, v) in &cases {
        let m = v.images.unwrap_or(v.containers);
        let factor = r
            .derived
            .iter()
            .filter(|d| d.kind == SHARING && d.layout == c.layout)
            .find(|d| {
                View::of_derived(d).is_some_and(|dv| {
                    dv.backing == backing && dv.phase == Phase::MultiImage && dv.containers == m
                })
            })
            .map(|d| format!("{:.2}x", d.value))
            .unwrap_or_else(|| "-".into());
        let files = all
            .iter()
            .find(|(o, ov)| {
                o.layout == c.layout
                    && o.metric == "backing_files"
                    && ov.backing == backing
                    && ov.phase == Phase::MultiImage
                    && ov.containers == m
            })
            .map(|(o, _)| format!("{:.0}", o.stats.median))
            .unwrap_or_else(|| "-".into());
        t.row(vec![
            c.layout.clone(),
            m.to_string(),
            fmt_bytes(c.stats.median),
            factor,
            files,
        ]);
    }
    Some(t)
}

impl Section for PageCacheSection {
    fn workload(&self) -> &'static str {
        NAME
    }

    fn headline_source(&self) -> crate::report::HeadlineSource {
        crate::report::HeadlineSource::Derived
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
                unit: "x",
                shown: format!("{:.2}x", d.value),
                lower_is_better: false,
            })
            .collect()
    }

    fn blocks(&self, r: &Report) -> Vec<Block> {
        let mut out: Vec<Block> = backings_of(r, NAME)
            .into_iter()
            .filter_map(|backing| {
                let t = table(r, &backing)?;
                let mut tables = vec![(None, t)];
                let mut intro = INTRO.to_string();
                if let Some(m) = images_table(r, &backing) {
                    tables.push((
                        Some("M different images sharing files, not layers".into()),
                        m,
                    ));
                    intro = format!("{INTRO}\n\n{IMAGES_INTRO}");
                }
                Some(Block {
                    heading: format!(
                        "page-cache — memory of K containers reading one image ({backing})"
                    ),
                    intro,
                    tables,
                })
            })
            .collect();
        out.extend(image_blocks(r, false));
        out
    }

    fn terminal_blocks(&self, r: &Report) -> Vec<Block> {
        let mut out: Vec<Block> = backings_of(r, NAME)
            .into_iter()
            .filter_map(|backing| {
                let t = table(r, &backing)?;
                let mut tables = vec![(None, t)];
                if let Some(m) = images_table(r, &backing) {
                    tables.push((
                        Some("M different images sharing files, not layers (sharing = M × set / resident)".into()),
                        m,
                    ));
                }
                Some(Block {
                    heading: format!(
                        "page-cache on {backing} (resident set from mincore; sharing = K × set / resident)"
                    ),
                    intro: String::new(),
                    tables,
                })
            })
            .collect();
        out.extend(image_blocks(r, true));
        out
    }

    fn chart_name(&self) -> Option<String> {
        Some("page-cache.svg".into())
    }

    fn has_chart(&self, r: &Report) -> bool {
        r.cases_of(NAME).any(|c| View::of_case(c).is_some())
    }

    fn extra_chart_names(&self, r: &Report) -> Vec<String> {
        if r.cases_of(NAME).any(|c| ImageView::of_case(c).is_some()) {
            vec![IMAGE_CHART.into()]
        } else {
            Vec::new()
        }
    }

    fn extra_chart(&self, report: &Report, name: &str) -> Result<Vec<u8>, ReportError> {
        let pairs: Vec<(String, String)> = backings_of(report, NAME)
            .into_iter()
            .flat_map(|b| {
                images_of(report, NAME)
                    .into_iter()
                    .map(move |i| (b.clone(), i))
            })
            .collect();
        let rows = pairs.len().max(1);
        svg_page(
            name,
            (1200, 60 + 460 * rows as u32),
            "overlaybench · page cache used by K containers reading your images (mincore)",
            |root| {
                let panels = root.split_evenly((rows, 2));
                for (i, (backing, image)) in pairs.iter().enumerate() {
                    let views = image_views(report, image, backing);
                    let cases: Vec<&(&Case, ImageView)> =
                        views.iter().filter(|(c, _)| c.metric == RESIDENT).collect();
                    let set = cases
                        .iter()
                        .map(|(_, v)| v.set_page_bytes as f64)
                        .fold(0.0, f64::max);
                    let kmax = cases
                        .iter()
                        .map(|(_, v)| v.containers as f64)
                        .fold(1.0, f64::max);
                    for (pi, (phase, title)) in [
                        (Phase::Read, "every container reads the set"),
                        (Phase::AfterCopyUp, "after half copy_up the set"),
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
                        for (label, points, color) in [
                            (
                                "perfect sharing (one copy)",
                                vec![(1.0, set), (kmax, set)],
                                RGBColor(120, 120, 120),
                            ),
                            (
                                "no sharing (K copies)",
                                vec![(1.0, set), (kmax, set * kmax)],
                                RGBColor(0, 0, 0),
                            ),
                        ] {
                            series.push(Series {
                                label: label.into(),
                                color,
                                marker: Marker::Circle,
                                dashed: true,
                                points,
                            });
                        }
                        linear_panel(
                            &panels[i * 2 + pi],
                            &format!("{title} — {image} ({backing})"),
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

    fn chart(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        let backings = backings_of(report, NAME);
        let rows = backings.len().max(1);
        let all = views(report);
        // A third panel per backing when the run read M different images.
        let multi = all
            .iter()
            .any(|(c, v)| c.metric == RESIDENT && v.phase == Phase::MultiImage);
        let cols = if multi { 3 } else { 2 };
        svg_page(
            "page-cache.svg",
            (600 * cols as u32, 60 + 460 * rows as u32),
            if multi {
                "overlaybench · page cache used by K containers of one image, and by M images sharing files (mincore)"
            } else {
                "overlaybench · page cache used by K containers reading one image (mincore)"
            },
            |root| {
                let panels = root.split_evenly((rows, cols));
                for (bi, backing) in backings.iter().enumerate() {
                    let cases: Vec<&(&Case, View)> = all
                        .iter()
                        .filter(|(c, v)| {
                            v.backing == *backing
                                && c.metric == RESIDENT
                                && v.phase != Phase::MultiImage
                        })
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
                            &panels[bi * cols + pi],
                            &format!("{title} ({backing})"),
                            Axis::new("containers (K)", Unit::Count),
                            Axis::new("page cache resident", Unit::Bytes),
                            &series,
                            None,
                        )?;
                    }
                    if multi {
                        multi_panel(&panels[bi * cols + 2], &all, backing)?;
                    }
                }
                Ok(())
            },
        )
    }
}

/// Resident bytes against M different images (one container each), with the
/// one-copy and M-copies lines.
fn multi_panel<DB: plotters::prelude::DrawingBackend>(
    area: &plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    all: &[(&Case, View)],
    backing: &str,
) -> Result<(), String> {
    let cases: Vec<&(&Case, View)> = all
        .iter()
        .filter(|(c, v)| {
            v.backing == backing && c.metric == RESIDENT && v.phase == Phase::MultiImage
        })
        .collect();
    let set = cases
        .iter()
        .map(|(_, v)| v.set_bytes as f64)
        .fold(0.0, f64::max);
    let mmax = cases
        .iter()
        .map(|(_, v)| v.images.unwrap_or(v.containers) as f64)
        .fold(1.0, f64::max);
    let mut lines: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (c, v) in &cases {
        lines
            .entry(c.layout.clone())
            .or_default()
            .push((v.images.unwrap_or(v.containers) as f64, c.stats.median));
    }
    let mut series = layout_series(lines);
    for (label, points, color) in [
        (
            "one copy (shared by content)",
            vec![(1.0, set), (mmax, set)],
            RGBColor(120, 120, 120),
        ),
        (
            "M copies (one per image)",
            vec![(1.0, set), (mmax, set * mmax)],
            RGBColor(0, 0, 0),
        ),
    ] {
        series.push(Series {
            label: label.into(),
            color,
            marker: Marker::Circle,
            dashed: true,
            points,
        });
    }
    linear_panel(
        area,
        &format!("M different images, same files, no shared layer ({backing})"),
        Axis::new("images (M), one container each", Unit::Count),
        Axis::new("page cache resident", Unit::Bytes),
        &series,
        None,
    )
}
