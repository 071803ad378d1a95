//! app's section: time to ready per layout, cold and warm (median, p95 and
//! the bootstrap interval of the median), the ratios to overlay2 and plain,
//! and app.svg.

use plotters::prelude::*;

use super::keys::{base_overlay2, is_baseline, Cache, ReadSetRecord, View, NAME, TIME_TO_READY};
use crate::capacity::Fleet;
use crate::report::chart::{layout_color, linear_ticks, svg_page, Unit};
use crate::report::summary::backings_of;
use crate::report::{
    fmt_bytes, fmt_ns, fmt_ratio, kinds, Block, Case, Report, ReportError, Section, Table,
};
use crate::stats::{median_interval, seed_of};
use crate::workload::{CaseView, PlanNotes};

/// Renders app's cases.
pub struct AppSection;

const INTRO: &str = "The user's image started with a real OCI runtime (crun, its own pid, mount, uts, ipc and \
empty network namespaces) on each layout's container mount. *Time to ready* runs from the runtime's spawn to the \
process's exit 0 (a one-shot) or to the first output line matching `--app-ready-line` (a server, then stopped). \
*cold*: the backing was evicted (fresh mount, loop buffers dropped) and the container mounted afresh before the \
start; *warm*: started again at once. Layouts are interleaved round by round. *95 % interval*: bootstrap interval \
of the median. Ratios are medians over overlay2's and plain's in the same run.";

/// Resamples of each case's bootstrap interval.
const RESAMPLES: usize = 1000;

fn views(r: &Report) -> Vec<(&Case, View)> {
    r.cases_of(NAME)
        .filter(|c| c.metric == TIME_TO_READY)
        .filter_map(|c| View::of_case(c).map(|v| (c, v)))
        .collect()
}

fn interval(c: &Case) -> Option<(f64, f64)> {
    let id = View::of_case(c)
        .map(|v| v.case_id(&c.layout, &c.metric))
        .unwrap_or_default();
    median_interval(&c.samples, RESAMPLES, seed_of(&id))
}

fn ratio(
    r: &Report,
    layout: &str,
    backing: &str,
    cache: Cache,
    base: &dyn Fn(&str) -> bool,
) -> Option<f64> {
    r.derived
        .iter()
        .filter(|d| d.kind == kinds::RATIO && d.layout == layout)
        .find(|d| {
            View::of_derived(d).is_some_and(|v| {
                v.backing == backing && v.cache == cache && v.baseline.as_deref().is_some_and(base)
            })
        })
        .map(|d| d.value)
}

fn table(r: &Report, backing: &str) -> Option<Table> {
    let all = views(r);
    let of: Vec<&(&Case, View)> = all.iter().filter(|(_, v)| v.backing == backing).collect();
    if of.is_empty() {
        return None;
    }
    let mut t = Table::new([
        "layout",
        "cache",
        "median",
        "p95",
        "95 % interval",
        "n",
        "× overlay2",
        "× plain",
    ]);
    for cache in Cache::ALL {
        for (c, _) in of.iter().filter(|(_, v)| v.cache == cache) {
            let ratio_to = |base: &dyn Fn(&str) -> bool| {
                if base(&c.layout) {
                    "1.00x".to_string()
                } else {
                    ratio(r, &c.layout, backing, cache, base)
                        .map(fmt_ratio)
                        .unwrap_or_else(|| "—".into())
                }
            };
            t.row(vec![
                c.layout.clone(),
                cache.name().into(),
                fmt_ns(c.stats.median),
                fmt_ns(c.stats.p95),
                interval(c)
                    .map(|(lo, hi)| format!("{} – {}", fmt_ns(lo), fmt_ns(hi)))
                    .unwrap_or_default(),
                c.stats.n.to_string(),
                ratio_to(&|l| l == base_overlay2()),
                ratio_to(&is_baseline),
            ]);
        }
    }
    Some(t)
}

/// The read-set list's file name in the report dir.
pub const READSET_FILE: &str = "app-readset.txt";
/// Path components a top directory is cut at (`usr/lib/python3.11`).
const TOP_DEPTH: usize = 3;
/// Top directories shown.
const TOP_DIRS: usize = 8;

const READSET_INTRO: &str = "What the start opened and read, recorded with fanotify on a start of its own \
(cold, before the timed ones; not timed): files, their bytes (sizes at open), and their share of the image's \
regular files and bytes. The list, in first-open order, is `app-readset.txt` (usable as a prefetch list).";

/// The read set's top directories by bytes: (dir, files, bytes), most first.
fn top_dirs(rec: &ReadSetRecord) -> Vec<(String, u64, u64)> {
    let mut by: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for f in &rec.files {
        let p = std::path::Path::new(&f.path);
        let dir: std::path::PathBuf = p
            .parent()
            .map(|d| d.components().take(TOP_DEPTH).collect())
            .unwrap_or_default();
        let e = by.entry(dir.to_string_lossy().into_owned()).or_default();
        e.0 += 1;
        e.1 += f.bytes;
    }
    let mut v: Vec<(String, u64, u64)> = by.into_iter().map(|(d, (n, b))| (d, n, b)).collect();
    v.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    v.truncate(TOP_DIRS);
    v
}

fn share(a: u64, b: u64) -> String {
    if b == 0 {
        "—".into()
    } else {
        format!("{:.1} %", 100.0 * a as f64 / b as f64)
    }
}

/// The read set's summary for `backing`: its size and share of the image,
/// and its top directories.
fn read_set_block(r: &Report, backing: &str) -> Option<Block> {
    let rec = ReadSetRecord::of_report(r)
        .into_iter()
        .find(|x| x.backing == backing)?;
    let files = rec.files.len() as u64 + rec.files_not_listed;
    let bytes: u64 = rec.files.iter().map(|f| f.bytes).sum();
    let mut t = Table::new(["directory", "files", "bytes", "share of the set's bytes"]);
    for (dir, n, b) in top_dirs(&rec) {
        t.row(vec![
            if dir.is_empty() {
                "/".into()
            } else {
                format!("/{dir}")
            },
            n.to_string(),
            fmt_bytes(b as f64),
            share(b, bytes),
        ]);
    }
    Some(Block {
        heading: format!(
            "app: what {} read at start on {backing} — {files} files, {} ({} of the image's files, {} of its bytes){}",
            rec.image,
            fmt_bytes(bytes as f64),
            share(files, rec.image_files),
            share(bytes, rec.image_bytes),
            if rec.incomplete { "; incomplete" } else { "" }
        ),
        intro: format!("{READSET_INTRO} Recorded on {}.", rec.layout),
        tables: vec![(Some("top directories by bytes".into()), t)],
    })
}

fn image_of(r: &Report, backing: &str) -> String {
    views(r)
        .into_iter()
        .find(|(_, v)| v.backing == backing)
        .map(|(_, v)| v.image)
        .unwrap_or_default()
}

impl Section for AppSection {
    fn workload(&self) -> &'static str {
        NAME
    }

    fn blocks(&self, r: &Report) -> Vec<Block> {
        backings_of(r, NAME)
            .into_iter()
            .flat_map(|b| {
                let times = table(r, &b).map(|t| Block {
                    heading: format!("app: {} started on {b}", image_of(r, &b)),
                    intro: INTRO.into(),
                    tables: vec![(None, t)],
                });
                times.into_iter().chain(read_set_block(r, &b))
            })
            .collect()
    }

    fn terminal_blocks(&self, r: &Report) -> Vec<Block> {
        backings_of(r, NAME)
            .into_iter()
            .flat_map(|b| {
                let times = table(r, &b).map(|t| Block {
                    heading: format!("app on {b}: {} time to ready", image_of(r, &b)),
                    intro: String::new(),
                    tables: vec![(None, t)],
                });
                let reads = read_set_block(r, &b).map(|blk| Block {
                    intro: String::new(),
                    ..blk
                });
                times.into_iter().chain(reads)
            })
            .collect()
    }

    fn extra_file_names(&self, r: &Report) -> Vec<String> {
        if ReadSetRecord::of_report(r).is_empty() {
            Vec::new()
        } else {
            vec![READSET_FILE.to_string()]
        }
    }

    /// The first backing's read set, one path per line in first-open order
    /// (a name holding a newline, from a hostile image, would split a line:
    /// left out).
    fn extra_file(&self, r: &Report, name: &str) -> Result<Vec<u8>, ReportError> {
        let rec = ReadSetRecord::of_report(r).into_iter().next();
        match rec {
            Some(rec) if name == READSET_FILE => {
                let mut out = String::new();
                for f in rec.files.iter().filter(|f| !f.path.contains(['\n', '\r'])) {
                    out.push_str(&f.path);
                    out.push('\n');
                }
                Ok(out.into_bytes())
            }
            _ => Err(ReportError::Render {
                what: name.to_string(),
                detail: "no such file".into(),
            }),
        }
    }

    fn chart_name(&self) -> Option<String> {
        Some(format!("{NAME}.svg"))
    }

    fn has_chart(&self, r: &Report) -> bool {
        !views(r).is_empty()
    }

    fn chart(&self, r: &Report) -> Result<Vec<u8>, ReportError> {
        let all = views(r);
        let backings = backings_of(r, NAME);
        let rows = backings.len().max(1);
        svg_page(
            "app.svg",
            (1000, 60 + 460 * rows as u32),
            "overlaybench · app: time to ready of the user's image per layout",
            |root| {
                let panels = root.split_evenly((rows, 1));
                for (bi, backing) in backings.iter().enumerate() {
                    let of: Vec<&(&Case, View)> =
                        all.iter().filter(|(_, v)| &v.backing == backing).collect();
                    let mut layouts: Vec<String> = Vec::new();
                    for (c, _) in &of {
                        if !layouts.contains(&c.layout) {
                            layouts.push(c.layout.clone());
                        }
                    }
                    let image = of.first().map(|(_, v)| v.image.clone()).unwrap_or_default();
                    panel(&panels[bi], &format!("{image} · {backing}"), &layouts, &of)?;
                }
                Ok(())
            },
        )
    }
}

/// The capacity plan's note: what the image's start read is page cache a
/// node needs to start it warm, once per image where the layout shares an
/// image's files between its containers, once per container where it copies
/// them (the page-cache workload measures which layout does which).
pub struct AppPlan;

impl PlanNotes for AppPlan {
    fn plan_notes(&self, report: &Report, fleet: &Fleet, backing: &str) -> Vec<String> {
        let recs = ReadSetRecord::of_report(report);
        let Some(rec) = recs
            .iter()
            .find(|x| x.backing == backing)
            .or_else(|| recs.first())
        else {
            return Vec::new();
        };
        let bytes: u64 = rec.files.iter().map(|f| f.bytes).sum();
        let images = fleet.images as f64;
        let containers = images * fleet.containers as f64;
        vec![format!(
            "start-up page cache: {} read {}{} at start ({} of its bytes; app's read set, recorded on {} \
             on {}). If each of the plan's {} images reads as much, starting them warm needs ≈ {} of page \
             cache where containers share their image's files (the overlay layouts), ≈ {} where each of \
             the {} containers has its own copy (plain)",
            rec.image,
            fmt_bytes(bytes as f64),
            if rec.files_not_listed > 0 || rec.incomplete {
                " or more"
            } else {
                ""
            },
            share(bytes, rec.image_bytes),
            rec.layout,
            rec.backing,
            fleet.images,
            fmt_bytes(bytes as f64 * images),
            fmt_bytes(bytes as f64 * containers),
            containers as u64
        )]
    }
}

/// A layout's point of one cache: its name, x, and (median, interval low,
/// interval high, p95).
type Placed = (String, f64, (f64, f64, f64, f64));

/// One backing's panel: per layout, the cold and warm medians with their
/// intervals (a bar from the interval's low to its high end), p95 as an open mark.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    layouts: &[String],
    of: &[&(&Case, View)],
) -> Result<(), String> {
    let point = |layout: &str, cache: Cache| {
        of.iter()
            .find(|(c, v)| c.layout == layout && v.cache == cache)
            .map(|(c, _)| {
                let (lo, hi) = interval(c).unwrap_or((c.stats.median, c.stats.median));
                (c.stats.median, lo, hi, c.stats.p95)
            })
    };
    let top = of
        .iter()
        .map(|(c, _)| c.stats.p95.max(interval(c).map(|i| i.1).unwrap_or(0.0)))
        .fold(0.0, f64::max);
    let yt = linear_ticks(Unit::Ns, 0.0, top.max(1.0));
    let y1 = yt.values.last().copied().unwrap_or(top) * 1.05;
    let n = layouts.len().max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5..(n - 0.5), 0.0..y1)
        .map_err(|e| e.to_string())?;
    let label_y = |v: &f64| {
        yt.values
            .iter()
            .position(|t| (t - v).abs() <= 1e-9 * t.abs().max(1.0))
            .map(|i| yt.labels[i].clone())
            .unwrap_or_default()
    };
    let label_x = |v: &f64| {
        let i = v.round();
        if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < layouts.len() {
            layouts[i as usize].clone()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_desc("layout")
        .y_desc("time to ready (median, 95 % interval; ◇ p95)")
        .x_labels(layouts.len().max(1) * 2 + 1)
        .x_label_formatter(&label_x)
        .y_labels(yt.values.len() * 4)
        .y_label_formatter(&label_y)
        .disable_x_mesh()
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(|e| e.to_string())?;
    for (ci, cache) in Cache::ALL.into_iter().enumerate() {
        let offset = if ci == 0 { -0.12 } else { 0.12 };
        let pts: Vec<Placed> = layouts
            .iter()
            .enumerate()
            .filter_map(|(i, l)| point(l, cache).map(|p| (l.clone(), i as f64 + offset, p)))
            .collect();
        let first = pts
            .first()
            .map(|(l, _, _)| layout_color(l))
            .unwrap_or(BLACK);
        let filled = cache == Cache::Cold;
        chart
            .draw_series(pts.iter().map(|(l, x, (m, lo, hi, _))| {
                ErrorBar::new_vertical(*x, *lo, *m, *hi, layout_color(l).stroke_width(2), 10)
            }))
            .map_err(|e| e.to_string())?
            .label(format!(
                "{}: median, 95 % interval ({})",
                cache.name(),
                if filled { "●" } else { "○" }
            ))
            .legend(move |(x, y)| {
                if filled {
                    Circle::new((x, y), 5, first.filled())
                } else {
                    Circle::new((x, y), 5, first.stroke_width(2))
                }
            });
        chart
            .draw_series(pts.iter().map(|(l, x, (m, _, _, _))| {
                let c = layout_color(l);
                if filled {
                    Circle::new((*x, *m), 5, c.filled())
                } else {
                    Circle::new((*x, *m), 5, c.stroke_width(2))
                }
            }))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(pts.iter().map(|(l, x, (_, _, _, p95))| {
                Text::new(
                    "◇",
                    (*x - 0.02, *p95),
                    ("sans-serif", 12).into_font().color(&layout_color(l)),
                )
            }))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(200, 200, 200))
        .draw()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::app::keys::ReadSetFile;

    #[test]
    fn plan_note_scales_the_read_set_per_image_and_per_container() {
        let fleet = Fleet {
            images: 10,
            layers: 12,
            shared_pct: 60,
            files_per_layer: 100,
            dirs_per_layer: 20,
            containers: 3,
            writes: 10,
        };
        let mut r = Report::new(Default::default(), serde_json::json!({}));
        assert!(AppPlan.plan_notes(&r, &fleet, "ext4").is_empty());
        let rec = ReadSetRecord {
            image: "oci:x:y".into(),
            backing: "ext4".into(),
            layout: "overlay2".into(),
            files: vec![
                ReadSetFile {
                    path: "usr/bin/python3".into(),
                    bytes: 3 << 20,
                },
                ReadSetFile {
                    path: "usr/lib/python3.11/json/__init__.py".into(),
                    bytes: 1 << 20,
                },
            ],
            files_not_listed: 0,
            image_files: 100,
            image_bytes: 40 << 20,
            incomplete: false,
        };
        r.extras.insert(
            NAME.into(),
            vec![serde_json::to_value(&rec).expect("record")],
        );
        let notes = AppPlan.plan_notes(&r, &fleet, "ext4");
        assert_eq!(notes.len(), 1, "{notes:?}");
        let n = &notes[0];
        // 4 MiB read, 10 % of the image; × 10 images, × 30 containers.
        for says in [
            "read 4.0 MiB at start",
            "10.0 %",
            "≈ 40.0 MiB",
            "≈ 120.0 MiB",
            "30 containers",
        ] {
            assert!(n.contains(says), "{says}: {n}");
        }
    }
}
