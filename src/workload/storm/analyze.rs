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

use super::keys::{
    Idmap, Key, Phase, Round, Samples, View, BASE_C1, BASE_NO_IDMAP, DOUBLING, MOUNTINFO_BYTES,
    MOUNTINFO_LINES, MOUNTINFO_PARSE, MOUNTINFO_READ, MOUNTINFO_READ_CPU, MOUNTS_PER_UNIT,
    MOUNT_TIME, NAME, STARTS_PER_SECOND, TEARDOWN_TIME, TIME_TO_READY, TIME_TO_READY_P99,
    TIME_TO_STOP, UNMOUNT_TIME,
};
use crate::report::{kinds, Derived};
use crate::stats::{fit_line, Stats};
use crate::workload::{CaseView, Recorded};

impl View {
    fn storm(backing: &str, phase: Phase, k: &Key, read_set: usize, image: Option<&str>) -> View {
        View {
            backing: backing.into(),
            phase,
            depth: k.depth,
            idmap: Some(k.idmap),
            concurrency: Some(k.concurrency),
            read_set: (phase == Phase::Start).then_some(read_set),
            image: image.map(str::to_string),
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
            image: None,
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
    /// The user's image the storms started (its recorded read set), if any.
    pub image: Option<&'a str>,
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
        let start = View::storm(s.backing, Phase::Start, k, s.read_set, s.image);
        let stop = View::storm(s.backing, Phase::Stop, k, s.read_set, s.image);
        let layout = name(k.layout);
        let ready: Vec<f64> = rounds.iter().flat_map(|r| r.ready_ns.clone()).collect();
        if let Some(m) = out.case_of(&start, layout, TIME_TO_READY, "ns", ready) {
            ready_ids.insert(*k, (m, start.case_id(layout, TIME_TO_READY)));
        }
        let p99: Vec<f64> = rounds.iter().filter_map(round_p99).collect();
        if let Some(m) = out.case_of(&start, layout, TIME_TO_READY_P99, "ns", p99) {
            p99_ids.insert(*k, (m, start.case_id(layout, TIME_TO_READY_P99)));
        }
        let rate: Vec<f64> = rounds
            .iter()
            .filter(|r| r.wall_ns > 0.0)
            .map(|r| k.concurrency as f64 / (r.wall_ns / 1e9))
            .collect();
        out.case_of(&start, layout, STARTS_PER_SECOND, "starts/s", rate);
        let stopped: Vec<f64> = rounds.iter().flat_map(|r| r.stop_ns.clone()).collect();
        out.case_of(&stop, layout, TIME_TO_STOP, "ns", stopped);
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
            ..View::storm(s.backing, Phase::Start, k, s.read_set, s.image)
        };
        out.derived.push(Derived::ratio(
            NAME,
            name(k.layout),
            v.params(),
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
            ..View::storm(s.backing, Phase::Start, k, s.read_set, s.image)
        };
        out.derived.push(Derived {
            workload: NAME.into(),
            layout: name(k.layout).into(),
            kind: DOUBLING.into(),
            params: v.params(),
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
            ..View::storm(s.backing, Phase::Start, k, s.read_set, s.image)
        };
        out.derived.push(Derived::ratio(
            NAME,
            name(k.layout),
            v.params(),
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
        let view = View::table(s.backing, depth, Some(held));
        for (metric, unit, values) in [
            (MOUNTINFO_READ, "ns", t.read_ns.clone()),
            (MOUNTINFO_READ_CPU, "ns", t.read_cpu_ns.clone()),
            (MOUNTINFO_PARSE, "ns", t.parse_ns.clone()),
            (MOUNTINFO_BYTES, "bytes", vec![t.bytes]),
            (MOUNTINFO_LINES, "lines", vec![t.lines]),
            (MOUNT_TIME, "ns", t.mount_ns.clone()),
            (UNMOUNT_TIME, "ns", t.unmount_ns.clone()),
        ] {
            let Some(m) = out.case_of(&view, layout, metric, unit, values) else {
                continue;
            };
            if matches!(
                metric,
                MOUNTINFO_READ | MOUNTINFO_READ_CPU | MOUNTINFO_PARSE | MOUNT_TIME
            ) {
                slopes.entry((li, depth, metric)).or_default().push((
                    held as f64 / MOUNTS_PER_UNIT,
                    m,
                    view.case_id(layout, metric),
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
            v.params(),
            &fit,
            "ns per 1000 mounts",
            pts.into_iter().map(|(x, _, id)| (x, id)).collect(),
        ));
    }
    for (&(li, depth, held), &ns) in &samples.teardown {
        out.case_of(
            &View::table(s.backing, depth, Some(held)),
            name(li),
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
    use crate::workload::storm::keys::TablePoint;

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
            image: None,
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
