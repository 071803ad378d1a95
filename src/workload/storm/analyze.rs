//! Pure: storm's samples → cases and derived figures, through one typed view of
//! its keys (`View`) that both writes and reads the report's params.
//!
//! Per storm point (layout × depth × idmap × concurrency C): every container's
//! time to ready (pooled over rounds), one p99 and one starts-per-second per
//! round, and every container's time to stop. Derived: p99 at C over p99 at
//! C = 1 (a ratio of per-round p99 medians, recomputable by the gate), the
//! idmapped modes over no idmap, the concurrency at which p99 doubles, and the
//! slope of the mount-table read against mounts held.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::NAME;
use crate::choice::Choice;
use crate::isolate::IdmapMode;
use crate::report::{case_key, kinds, params_of, parse_params, Case, Derived};
use crate::stats::{fit_line, Stats};
use crate::workload::Recorded;

/// How a container's lower layers are idmapped.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "kebab-case")]
pub enum Idmap {
    /// Plain lowers.
    #[default]
    None,
    /// One idmapped clone per lower layer.
    PerLayer,
    /// One idmapped clone of the layers' common parent.
    CommonParent,
}

impl Idmap {
    /// The idmapped modes (what the suites measure besides `none`).
    pub const ALL_MODES: [Idmap; 2] = [Idmap::PerLayer, Idmap::CommonParent];

    /// The kernel-side mode (None for plain lowers).
    pub fn mode(self) -> Option<IdmapMode> {
        match self {
            Idmap::None => None,
            Idmap::PerLayer => Some(IdmapMode::PerLayer),
            Idmap::CommonParent => Some(IdmapMode::CommonParent),
        }
    }
}

impl Choice for Idmap {
    const ALL: &'static [Self] = &[Idmap::None, Idmap::PerLayer, Idmap::CommonParent];
    fn name(self) -> &'static str {
        match self {
            Idmap::None => "none",
            Idmap::PerLayer => "per-layer",
            Idmap::CommonParent => "common-parent",
        }
    }
    fn about(self) -> &'static str {
        match self {
            Idmap::None => "Plain lower layers",
            Idmap::PerLayer => {
                "One idmapped clone per lower layer (open_tree + mount_setattr each; containerd 2.1)"
            }
            Idmap::CommonParent => {
                "One idmapped clone of the layers' common parent (containerd's fix for #12048)"
            }
        }
    }
}

/// Which part of the workload a figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// C containers start at once.
    Start,
    /// The same C containers stop at once (unmount + remove).
    Stop,
    /// Mounts held while the mount table is read and one more mount is made.
    MountTable,
}

/// Every container's time from the storm's release to its read set done, ns.
pub const TIME_TO_READY: &str = "time_to_ready";
/// p99 of one storm's times to ready (one sample per round), ns.
pub const TIME_TO_READY_P99: &str = "time_to_ready_p99";
/// C over the time from release to the last container ready (one per round).
pub const STARTS_PER_SECOND: &str = "starts_per_second";
/// Every container's time from the stop release to unmounted and removed, ns.
pub const TIME_TO_STOP: &str = "time_to_stop";
/// open + read of the whole /proc/self/mountinfo + close, ns.
pub const MOUNTINFO_READ: &str = "mountinfo_read_time";
/// The same read in CPU time of the reading thread (the kernel's work, not the
/// wait for a core), ns.
pub const MOUNTINFO_READ_CPU: &str = "mountinfo_read_cpu_time";
/// Parsing what was read into mount entries, ns.
pub const MOUNTINFO_PARSE: &str = "mountinfo_parse_time";
/// Size of the mount table as read, bytes.
pub const MOUNTINFO_BYTES: &str = "mountinfo_bytes";
/// Lines of the mount table (every mount of the namespace).
pub const MOUNTINFO_LINES: &str = "mountinfo_lines";
/// One more container mount with N held, ns.
pub const MOUNT_TIME: &str = "mount_time";
/// Its unmount, ns.
pub const UNMOUNT_TIME: &str = "unmount_time";
/// Removing every held mount at once (one detach of their parent), ns.
pub const TEARDOWN_TIME: &str = "teardown_time";
/// Kind of the concurrency at which p99 reaches twice its C = 1 value.
pub const DOUBLING: &str = "p99-doubling-concurrency";
/// `baseline` of the ratios to C = 1.
pub const BASE_C1: &str = "concurrency=1";
/// `baseline` of the ratios to plain lowers.
pub const BASE_NO_IDMAP: &str = "idmap=none";
/// Slopes are per this many held mounts.
pub const MOUNTS_PER_UNIT: f64 = 1000.0;

/// One storm series: the layout by its index in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// Index of the layout in the run's interleaving order.
    pub layout: usize,
    /// Image layers.
    pub depth: usize,
    /// Idmap mode.
    pub idmap: Idmap,
    /// Containers started at once.
    pub concurrency: usize,
}

/// What one storm measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Round {
    /// Per container, from release to ready, ns.
    pub ready_ns: Vec<f64>,
    /// Per container, from the stop release to removed, ns.
    pub stop_ns: Vec<f64>,
    /// From release to the last container ready, ns.
    pub wall_ns: f64,
}

/// What was measured with N mounts held (one layout).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TablePoint {
    /// Reads of the whole table, wall time, ns.
    pub read_ns: Vec<f64>,
    /// The same reads, CPU time of the reading thread, ns.
    pub read_cpu_ns: Vec<f64>,
    /// Parses of it, ns.
    pub parse_ns: Vec<f64>,
    /// Its size, bytes.
    pub bytes: f64,
    /// Its lines.
    pub lines: f64,
    /// One more mount, ns.
    pub mount_ns: Vec<f64>,
    /// Its unmount, ns.
    pub unmount_ns: Vec<f64>,
}

/// Everything measured, kept as it comes so an interrupted run keeps it.
#[derive(Debug, Default)]
pub struct Samples {
    /// Storms, in measurement order per series.
    pub storms: BTreeMap<Key, Vec<Round>>,
    /// Per (layout, depth of the held mounts, mounts held).
    pub table: BTreeMap<(usize, usize, usize), TablePoint>,
    /// Per (layout, depth, mounts held): removing them all at once, ns.
    pub teardown: BTreeMap<(usize, usize, usize), f64>,
    /// Lookups of a read set that contradicted the image.
    pub unexpected: usize,
}

/// The report's params of a storm case or derived figure, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// Backing filesystem.
    pub backing: String,
    /// Which part.
    pub phase: Phase,
    /// Image layers.
    pub depth: usize,
    /// Idmap mode (start and stop).
    #[serde(default)]
    pub idmap: Option<Idmap>,
    /// Containers started at once (start and stop; absent on doubling figures).
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Lookups of the start-up read set (start).
    #[serde(default)]
    pub read_set: Option<usize>,
    /// Mounts held (mount-table; absent on slopes).
    #[serde(default)]
    pub held: Option<usize>,
    /// The metric a derived figure is computed from.
    #[serde(default)]
    pub of: Option<String>,
    /// What a ratio is taken against (`concurrency=1`, `idmap=none`).
    #[serde(default)]
    pub baseline: Option<String>,
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

    fn storm(backing: &str, phase: Phase, k: &Key, read_set: usize) -> View {
        View {
            backing: backing.into(),
            phase,
            depth: k.depth,
            idmap: Some(k.idmap),
            concurrency: Some(k.concurrency),
            read_set: (phase == Phase::Start).then_some(read_set),
            held: None,
            of: None,
            baseline: None,
        }
    }

    fn table(backing: &str, depth: usize, held: Option<usize>) -> View {
        View {
            backing: backing.into(),
            phase: Phase::MountTable,
            depth,
            idmap: None,
            concurrency: None,
            read_set: None,
            held,
            of: None,
            baseline: None,
        }
    }
}

/// Where the samples were taken.
pub struct Setting<'a> {
    /// Layout names in interleaving order.
    pub layouts: &'a [&'static str],
    /// Backing filesystem name.
    pub backing: &'a str,
    /// Lookups in a container's read set.
    pub read_set: usize,
}

/// The p99 of one storm (None when it started nothing).
pub fn round_p99(r: &Round) -> Option<f64> {
    Stats::compute(&r.ready_ns).map(|s| s.p99)
}

/// The concurrency at which `p99(C)` first reaches twice `p99(1)`, interpolated
/// on log2 C between the two measured points around it; None when it never does
/// (or C = 1 is missing). `points` are (C, p99), any order.
pub fn doubling_concurrency(points: &[(f64, f64)]) -> Option<f64> {
    let mut pts = points.to_vec();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let base = pts.iter().find(|(c, _)| *c == 1.0)?.1;
    if base <= 0.0 {
        return None;
    }
    let mut prev = (1.0f64, 1.0f64);
    for &(c, y) in pts.iter().filter(|(c, _)| *c > 1.0) {
        let r = y / base;
        if r >= 2.0 {
            let (lc0, lc1) = (prev.0.log2(), c.log2());
            let t = if r > prev.1 {
                (2.0 - prev.1) / (r - prev.1)
            } else {
                1.0
            };
            return Some(2f64.powf(lc0 + t.clamp(0.0, 1.0) * (lc1 - lc0)));
        }
        prev = (c, r);
    }
    None
}

/// Turns samples into cases and derived figures.
pub fn record(out: &mut Recorded, s: &Setting<'_>, samples: &Samples) {
    let name = |i: usize| s.layouts.get(i).copied().unwrap_or("?");
    let mut p99_ids: BTreeMap<Key, (f64, String)> = BTreeMap::new();
    let mut ready_ids: BTreeMap<Key, (f64, String)> = BTreeMap::new();
    for (k, rounds) in &samples.storms {
        let start = params_of(&View::storm(s.backing, Phase::Start, k, s.read_set));
        let stop = params_of(&View::storm(s.backing, Phase::Stop, k, s.read_set));
        let layout = name(k.layout);
        let ready: Vec<f64> = rounds.iter().flat_map(|r| r.ready_ns.clone()).collect();
        if let Some(m) = out.case(NAME, layout, start.clone(), TIME_TO_READY, "ns", ready) {
            ready_ids.insert(*k, (m, case_key(NAME, layout, TIME_TO_READY, &start)));
        }
        let p99: Vec<f64> = rounds.iter().filter_map(round_p99).collect();
        if let Some(m) = out.case(NAME, layout, start.clone(), TIME_TO_READY_P99, "ns", p99) {
            p99_ids.insert(*k, (m, case_key(NAME, layout, TIME_TO_READY_P99, &start)));
        }
        let rate: Vec<f64> = rounds
            .iter()
            .filter(|r| r.wall_ns > 0.0)
            .map(|r| k.concurrency as f64 / (r.wall_ns / 1e9))
            .collect();
        out.case(NAME, layout, start, STARTS_PER_SECOND, "starts/s", rate);
        let stopped: Vec<f64> = rounds.iter().flat_map(|r| r.stop_ns.clone()).collect();
        out.case(NAME, layout, stop, TIME_TO_STOP, "ns", stopped);
    }
    // p99 at C over p99 at C = 1, and where it doubles.
    let mut curves: BTreeMap<Key, Vec<(f64, f64)>> = BTreeMap::new();
    for (k, (m, id)) in &p99_ids {
        let one = Key {
            concurrency: 1,
            ..*k
        };
        curves
            .entry(one)
            .or_default()
            .push((k.concurrency as f64, *m));
        if k.concurrency == 1 {
            continue;
        }
        let Some((bm, bid)) = p99_ids.get(&one).filter(|(b, _)| *b > 0.0) else {
            continue;
        };
        let v = View {
            of: Some(TIME_TO_READY_P99.into()),
            baseline: Some(BASE_C1.into()),
            ..View::storm(s.backing, Phase::Start, k, s.read_set)
        };
        out.derived.push(Derived::ratio(
            NAME,
            name(k.layout),
            params_of(&v),
            m / bm,
            id.clone(),
            bid.clone(),
        ));
    }
    for (k, pts) in &curves {
        let Some(c) = doubling_concurrency(pts) else {
            continue;
        };
        let v = View {
            concurrency: None,
            of: Some(TIME_TO_READY_P99.into()),
            baseline: Some(BASE_C1.into()),
            ..View::storm(s.backing, Phase::Start, k, s.read_set)
        };
        out.derived.push(Derived {
            workload: NAME.into(),
            layout: name(k.layout).into(),
            kind: DOUBLING.into(),
            params: params_of(&v),
            value: c,
            unit: "containers".into(),
            n: pts.len(),
            ..Default::default()
        });
    }
    // Idmapped over plain lowers, same point.
    for (k, (m, id)) in &ready_ids {
        if k.idmap == Idmap::None {
            continue;
        }
        let plain = Key {
            idmap: Idmap::None,
            ..*k
        };
        let Some((bm, bid)) = ready_ids.get(&plain).filter(|(b, _)| *b > 0.0) else {
            continue;
        };
        let v = View {
            of: Some(TIME_TO_READY.into()),
            baseline: Some(BASE_NO_IDMAP.into()),
            ..View::storm(s.backing, Phase::Start, k, s.read_set)
        };
        out.derived.push(Derived::ratio(
            NAME,
            name(k.layout),
            params_of(&v),
            m / bm,
            id.clone(),
            bid.clone(),
        ));
    }
    // The mount table: points (x = thousands held, median, case id) per layout × depth × metric.
    type Points = Vec<(f64, f64, String)>;
    let mut slopes: BTreeMap<(usize, usize, &str), Points> = BTreeMap::new();
    for (&(li, depth, held), t) in &samples.table {
        let layout = name(li);
        let params = params_of(&View::table(s.backing, depth, Some(held)));
        for (metric, unit, values) in [
            (MOUNTINFO_READ, "ns", t.read_ns.clone()),
            (MOUNTINFO_READ_CPU, "ns", t.read_cpu_ns.clone()),
            (MOUNTINFO_PARSE, "ns", t.parse_ns.clone()),
            (MOUNTINFO_BYTES, "bytes", vec![t.bytes]),
            (MOUNTINFO_LINES, "lines", vec![t.lines]),
            (MOUNT_TIME, "ns", t.mount_ns.clone()),
            (UNMOUNT_TIME, "ns", t.unmount_ns.clone()),
        ] {
            let Some(m) = out.case(NAME, layout, params.clone(), metric, unit, values) else {
                continue;
            };
            if matches!(
                metric,
                MOUNTINFO_READ | MOUNTINFO_READ_CPU | MOUNTINFO_PARSE | MOUNT_TIME
            ) {
                slopes.entry((li, depth, metric)).or_default().push((
                    held as f64 / MOUNTS_PER_UNIT,
                    m,
                    case_key(NAME, layout, metric, &params),
                ));
            }
        }
    }
    for ((li, depth, metric), pts) in slopes {
        let xy: Vec<(f64, f64)> = pts.iter().map(|(x, y, _)| (*x, *y)).collect();
        let Some(fit) = fit_line(&xy) else { continue };
        let v = View {
            of: Some(metric.into()),
            ..View::table(s.backing, depth, None)
        };
        out.derived.push(Derived::slope(
            NAME,
            name(li),
            params_of(&v),
            &fit,
            "ns per 1000 mounts",
            pts.into_iter().map(|(x, _, id)| (x, id)).collect(),
        ));
    }
    for (&(li, depth, held), &ns) in &samples.teardown {
        out.case(
            NAME,
            name(li),
            params_of(&View::table(s.backing, depth, Some(held))),
            TEARDOWN_TIME,
            "ns",
            vec![ns],
        );
    }
}

/// How long a burst of pod starts takes to get storage ready, from measured
/// starts per second at each concurrency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    /// Seconds until the last of the burst is ready.
    pub seconds: f64,
    /// How it was obtained.
    pub basis: BurstBasis,
}

/// Where a burst estimate comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BurstBasis {
    /// This many started at once was measured.
    Measured { concurrency: usize },
    /// Between two measured concurrencies (linear in the time to the last ready).
    Interpolated { below: usize, above: usize },
    /// Beyond the largest measured, at its rate (a node past saturation starts
    /// no faster).
    Extrapolated {
        concurrency: usize,
        starts_per_second: f64,
    },
}

/// The time for `n` starts at once, from `(concurrency, starts per second)`
/// medians (None without a positive rate).
pub fn burst(points: &[(usize, f64)], n: usize) -> Option<Burst> {
    let mut pts: Vec<(usize, f64)> = points.iter().copied().filter(|p| p.1 > 0.0).collect();
    pts.sort_by_key(|p| p.0);
    let wall = |(c, rate): (usize, f64)| c as f64 / rate;
    if let Some(&p) = pts.iter().find(|p| p.0 == n) {
        return Some(Burst {
            seconds: wall(p),
            basis: BurstBasis::Measured { concurrency: n },
        });
    }
    let &last = pts.last()?;
    if n > last.0 {
        return Some(Burst {
            seconds: n as f64 / last.1,
            basis: BurstBasis::Extrapolated {
                concurrency: last.0,
                starts_per_second: last.1,
            },
        });
    }
    let above = *pts.iter().find(|p| p.0 > n)?;
    let below = pts
        .iter()
        .rev()
        .find(|p| p.0 < n)
        .copied()
        .unwrap_or((0, 0.0));
    let (w0, w1) = (if below.0 == 0 { 0.0 } else { wall(below) }, wall(above));
    let t = (n - below.0) as f64 / (above.0 - below.0) as f64;
    Some(Burst {
        seconds: w0 + t * (w1 - w0),
        basis: BurstBasis::Interpolated {
            below: below.0,
            above: above.0,
        },
    })
}

/// Whether `d` is a ratio of p99 at some C to p99 at C = 1.
pub fn is_p99_ratio(d: &Derived, v: &View) -> bool {
    d.kind == kinds::RATIO && v.baseline.as_deref() == Some(BASE_C1)
}

/// Whether `d` is the slope of the mount-table read against mounts held, in
/// CPU time (wall time also counts the wait for a core under load).
pub fn is_read_cpu_slope(d: &Derived, v: &View) -> bool {
    d.kind == kinds::SLOPE && v.of.as_deref() == Some(MOUNTINFO_READ_CPU)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(ready: &[f64], wall: f64) -> Round {
        Round {
            ready_ns: ready.to_vec(),
            stop_ns: ready.iter().map(|x| x * 2.0).collect(),
            wall_ns: wall,
        }
    }

    #[test]
    fn bursts_use_the_measured_rate() {
        let pts = [(1, 500.0), (4, 1000.0), (16, 1600.0)];
        let exact = burst(&pts, 4).expect("burst");
        assert!((exact.seconds - 0.004).abs() < 1e-12);
        assert_eq!(exact.basis, BurstBasis::Measured { concurrency: 4 });
        let far = burst(&pts, 160).expect("burst");
        assert!((far.seconds - 0.1).abs() < 1e-12, "{far:?}");
        let mid = burst(&pts, 10).expect("burst");
        assert!(
            (mid.seconds - (0.004 + 0.5 * 0.006)).abs() < 1e-12,
            "{mid:?}"
        );
        assert_eq!(burst(&[], 4), None);
    }

    #[test]
    fn doubling_is_interpolated_on_log2_c() {
        assert_eq!(doubling_concurrency(&[(1.0, 10.0), (2.0, 12.0)]), None);
        // Ratios 1 → 1.5 → 2.5 at C = 1, 4, 16: the doubling lies between 4 and 16.
        let c = doubling_concurrency(&[(16.0, 25.0), (1.0, 10.0), (4.0, 15.0)]).expect("doubles");
        assert!((c - 2f64.powf(2.0 + 0.5 * 2.0)).abs() < 1e-9, "{c}");
        assert_eq!(doubling_concurrency(&[(1.0, 10.0), (2.0, 20.0)]), Some(2.0));
        assert_eq!(doubling_concurrency(&[(2.0, 20.0)]), None);
    }

    #[test]
    fn records_cases_ratios_and_slopes() {
        let mut samples = Samples::default();
        let key = |layout, idmap, concurrency| Key {
            layout,
            depth: 16,
            idmap,
            concurrency,
        };
        for r in 0..3 {
            let j = r as f64;
            samples
                .storms
                .entry(key(0, Idmap::None, 1))
                .or_default()
                .push(round(&[1000.0 + j], 1000.0));
            samples
                .storms
                .entry(key(0, Idmap::None, 4))
                .or_default()
                .push(round(&[1000.0, 2000.0, 3000.0, 4000.0 + j], 4000.0));
            samples
                .storms
                .entry(key(0, Idmap::PerLayer, 1))
                .or_default()
                .push(round(&[1500.0 + j], 1500.0));
        }
        for (held, ns) in [
            (0usize, 40_000.0),
            (1000, 2_040_000.0),
            (5000, 10_040_000.0),
        ] {
            samples.table.insert(
                (0, 16, held),
                TablePoint {
                    read_ns: vec![ns, ns + 10.0, ns - 10.0],
                    read_cpu_ns: vec![ns * 0.9],
                    parse_ns: vec![ns / 10.0],
                    bytes: 1000.0 + held as f64 * 1600.0,
                    lines: 22.0 + held as f64,
                    mount_ns: vec![300_000.0],
                    unmount_ns: vec![2_000_000.0],
                },
            );
        }
        samples.teardown.insert((0, 16, 5000), 5e8);
        let mut out = Recorded::default();
        let s = Setting {
            layouts: &["overlay2"],
            backing: "ext4",
            read_set: 8,
        };
        record(&mut out, &s, &samples);
        let case = |metric: &str, c: usize, idmap: Idmap| {
            out.cases
                .iter()
                .find(|x| {
                    x.metric == metric
                        && View::of_case(x)
                            .is_some_and(|v| v.concurrency == Some(c) && v.idmap == Some(idmap))
                })
                .unwrap_or_else(|| panic!("no {metric} at {c}"))
        };
        assert_eq!(case(TIME_TO_READY, 4, Idmap::None).samples.len(), 12);
        assert_eq!(case(TIME_TO_READY_P99, 4, Idmap::None).samples.len(), 3);
        let rate = case(STARTS_PER_SECOND, 4, Idmap::None).stats.median;
        assert!((rate - 1e6).abs() < 1e-3, "{rate}");
        assert_eq!(case(TIME_TO_STOP, 1, Idmap::None).unit, "ns");
        let ratio = out
            .derived
            .iter()
            .find(|d| View::of_derived(d).is_some_and(|v| is_p99_ratio(d, &v)))
            .expect("p99 ratio");
        assert_eq!(ratio.inputs.len(), 2);
        let p99_4 = case(TIME_TO_READY_P99, 4, Idmap::None).stats.median;
        let p99_1 = case(TIME_TO_READY_P99, 1, Idmap::None).stats.median;
        assert!((ratio.value - p99_4 / p99_1).abs() < 1e-9 && ratio.value > 3.0);
        assert!(out
            .derived
            .iter()
            .any(|d| d.kind == DOUBLING && d.value <= 4.0));
        let idmap = out
            .derived
            .iter()
            .find(|d| {
                View::of_derived(d).is_some_and(|v| v.baseline.as_deref() == Some(BASE_NO_IDMAP))
            })
            .expect("idmap ratio");
        assert!((idmap.value - 1501.0 / 1001.0).abs() < 1e-9);
        let slope = out
            .derived
            .iter()
            .find(|d| {
                d.kind == kinds::SLOPE
                    && View::of_derived(d).is_some_and(|v| v.of.as_deref() == Some(MOUNTINFO_READ))
            })
            .expect("read slope");
        assert!((slope.value - 2_000_000.0).abs() < 1.0, "{}", slope.value);
        let cpu = out
            .derived
            .iter()
            .find(|d| View::of_derived(d).is_some_and(|v| is_read_cpu_slope(d, &v)))
            .expect("CPU read slope");
        assert!((cpu.value - 1_800_000.0).abs() < 1.0, "{}", cpu.value);
        assert_eq!(slope.x, vec![0.0, 1.0, 5.0]);
        assert!(out.cases.iter().any(|c| c.metric == TEARDOWN_TIME));
    }
}
