//! What a report read back must hold before anything judges, renders or plans
//! from it (DESIGN.md "Untrusted inputs": reports read back are validated). A
//! report is an input like any other: a hand-edited or hostile one must not pass
//! the gate with negative or absurd samples, nor hide a slower copy of a case
//! behind a duplicate id. `compare`, `report`, `plan --from` and `fleet merge`
//! all go through here (`read_report`, and the fleet's light reader).
//!
//! What is checked, and why:
//! - `schema_version` is one this build reads, named as written (a 2^64 is said
//!   as `18446744073709551616`, never as a wrapped or defaulted number);
//! - every case id (and the id its fields make) is unique, and so is every
//!   derived figure's (workload, layout, kind, params): `compare` matches on them,
//!   so a duplicate would silently replace one figure with another;
//! - samples and statistics are within the range their unit allows
//!   (`SampleRule::of`): times, bytes and counts are never negative (except a
//!   metric that says it is a `delta`, a signed change) and never past a bound no
//!   real measurement reaches; any other unit (ratios, rates) is a positive
//!   finite number. JSON cannot carry NaN or an infinity, and serde refuses a
//!   number that overflows a double, so "finite" is the parser's part.

use std::collections::{HashMap, HashSet};

use super::schema::{case_key, Case, Derived, Report, SCHEMA_VERSION};
use crate::stats::Stats;

/// The longest time a sample may be, ns: one year. A sample is one timed
/// operation inside one run, and no run lasts a year; past this the figure
/// is not a measurement.
pub const MAX_TIME_NS: f64 = 365.25 * 86_400.0 * 1e9;
/// The largest byte count a sample may be: 2^63, the largest file or
/// filesystem size Linux can express (`loff_t`).
pub const MAX_BYTES: f64 = 9_223_372_036_854_775_808.0;
/// The largest count (inodes, entries, files, …) a sample may be: 2^53, past
/// which a double no longer holds every integer (no filesystem holds that many).
pub const MAX_COUNT: f64 = 9_007_199_254_740_992.0;

/// Units of time (the tool writes `ns`).
const TIME_UNITS: &[(&str, f64)] = &[("ns", 1.0), ("us", 1e3), ("ms", 1e6), ("s", 1e9)];
/// Units of bytes.
const BYTE_UNITS: &[&str] = &["bytes", "B"];
/// Units that count things.
const COUNT_UNITS: &[&str] = &[
    "inodes",
    "entries",
    "files",
    "containers",
    "lines",
    "layers",
    "dirs",
    "images",
];

/// The range a case's samples must lie in, by its unit (and, for a signed
/// change, its metric).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleRule {
    /// Smallest allowed value.
    pub min: f64,
    /// Whether `min` itself is allowed (0 is a valid time; a ratio of 0 is not).
    pub min_inclusive: bool,
    /// Largest allowed value.
    pub max: f64,
    /// What the range is, for the error.
    pub why: &'static str,
}

impl SampleRule {
    /// The rule for samples of `unit` measured as `metric`.
    pub fn of(unit: &str, metric: &str) -> SampleRule {
        // A metric named a delta is a change of a level (page cache before and
        // after): it may go down.
        let signed = metric.contains("delta");
        let bounded = |max: f64, why_unsigned: &'static str, why_signed: &'static str| {
            if signed {
                SampleRule {
                    min: -max,
                    min_inclusive: true,
                    max,
                    why: why_signed,
                }
            } else {
                SampleRule {
                    min: 0.0,
                    min_inclusive: true,
                    max,
                    why: why_unsigned,
                }
            }
        };
        if let Some((_, scale)) = TIME_UNITS.iter().find(|(u, _)| *u == unit) {
            return bounded(
                MAX_TIME_NS / scale,
                "a time is 0 to one year (3.16e16 ns): no sample of a run outlasts it",
                "a change of time is within one year (3.16e16 ns) either way",
            );
        }
        if BYTE_UNITS.contains(&unit) {
            return bounded(
                MAX_BYTES,
                "a byte count is 0 to 2^63 (the largest size Linux can express)",
                "a change of bytes is within 2^63 either way (the largest size Linux can express)",
            );
        }
        if COUNT_UNITS.contains(&unit) {
            return bounded(
                MAX_COUNT,
                "a count is 0 to 2^53 (past it a double does not hold every integer)",
                "a change of a count is within 2^53 either way",
            );
        }
        if unit == "fraction" {
            // A share of a whole (app's read set of its image): none is a valid answer.
            return SampleRule {
                min: 0.0,
                min_inclusive: true,
                max: 1.0,
                why: "a fraction is 0 to 1",
            };
        }
        SampleRule {
            min: 0.0,
            min_inclusive: false,
            max: f64::MAX,
            why: "a ratio or rate is a positive finite number",
        }
    }

    /// Whether `x` is allowed.
    pub fn allows(&self, x: f64) -> bool {
        x.is_finite() && x <= self.max && (x > self.min || (self.min_inclusive && x == self.min))
    }
}

/// A number as a person would write it: plain when short, else in exponent
/// form (1e308, not 309 digits).
pub fn shown(x: f64) -> String {
    let a = x.abs();
    if a != 0.0 && !(1e-6..1e15).contains(&a) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// The smallest and largest sample of a case, with their positions: all a
/// range check needs, so a reader that skips the samples (the fleet's) can
/// still check them without keeping them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SampleSpan {
    /// Samples seen.
    pub n: usize,
    /// Smallest sample and its index.
    pub min: Option<(usize, f64)>,
    /// Largest sample and its index.
    pub max: Option<(usize, f64)>,
}

impl SampleSpan {
    /// Adds the next sample.
    pub fn push(&mut self, x: f64) {
        let i = self.n;
        self.n += 1;
        if self.min.is_none_or(|(_, m)| x < m) {
            self.min = Some((i, x));
        }
        if self.max.is_none_or(|(_, m)| x > m) {
            self.max = Some((i, x));
        }
    }

    /// The span of `samples`.
    pub fn of(samples: &[f64]) -> SampleSpan {
        let mut s = SampleSpan::default();
        for &x in samples {
            s.push(x);
        }
        s
    }
}

impl<'de> serde::Deserialize<'de> for SampleSpan {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SampleSpan;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of numbers")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SampleSpan, A::Error> {
                let mut s = SampleSpan::default();
                while let Some(x) = seq.next_element::<f64>()? {
                    s.push(x);
                }
                Ok(s)
            }
        }
        d.deserialize_seq(V)
    }
}

/// Checks the text of a `schema_version` as written: an integer this build
/// reads. `Err` says what was found, as given.
pub fn check_schema_version(raw: Option<&str>) -> Result<(), String> {
    let Some(raw) = raw else {
        return Err(format!(
            "it has no schema_version; this build reads 1..={SCHEMA_VERSION}"
        ));
    };
    let raw = raw.trim();
    match raw.parse::<u64>() {
        Ok(v) if (1..=u64::from(SCHEMA_VERSION)).contains(&v) => Ok(()),
        _ => Err(format!(
            "schema_version {raw} is not one this build reads (1..={SCHEMA_VERSION})"
        )),
    }
}

/// Checks one case's samples (as their span) and statistics against its unit.
pub fn check_case_values(
    id: &str,
    unit: &str,
    metric: &str,
    span: &SampleSpan,
    stats: &Stats,
) -> Result<(), String> {
    let rule = SampleRule::of(unit, metric);
    for (i, x) in [span.min, span.max].into_iter().flatten() {
        if !rule.allows(x) {
            return Err(format!(
                "case {id}: sample {i} is {} {unit}; {}",
                shown(x),
                rule.why
            ));
        }
    }
    let located = [
        ("min", stats.min),
        ("max", stats.max),
        ("median", stats.median),
        ("mean", stats.mean),
        ("p95", stats.p95),
        ("p99", stats.p99),
    ];
    // A case without samples keeps its statistics (the gate finds it
    // uncomputable); they must still be numbers its unit allows.
    for (name, x) in located {
        if !rule.allows(x) {
            return Err(format!(
                "case {id}: stats.{name} is {} {unit}; {}",
                shown(x),
                rule.why
            ));
        }
    }
    for (name, x) in [("stddev", stats.stddev), ("mad", stats.mad)] {
        if !(x.is_finite() && x >= 0.0) {
            return Err(format!(
                "case {id}: stats.{name} is {}; a spread is a finite number, not negative",
                shown(x)
            ));
        }
    }
    if !stats.cv.is_finite() {
        return Err(format!("case {id}: stats.cv is {}", shown(stats.cv)));
    }
    Ok(())
}

/// Tracks ids seen so far and refuses the second of two.
#[derive(Default)]
pub struct UniqueIds {
    cases: HashMap<String, SpanPrint>,
    keys: HashMap<String, SpanPrint>,
    derived: HashSet<String>,
}

/// What a case's samples look like (count, smallest, largest), to tell a case
/// repeated word for word from two different cases under one id.
type SpanPrint = (usize, Option<u64>, Option<u64>);

fn print_of(span: &SampleSpan) -> SpanPrint {
    (
        span.n,
        span.min.map(|(_, x)| x.to_bits()),
        span.max.map(|(_, x)| x.to_bits()),
    )
}

impl UniqueIds {
    /// A case's id (its fields' id when it has none) and the id its fields
    /// make must both be new.
    ///
    /// A case repeated with the same samples is one figure and is allowed:
    /// earlier builds wrote an image's stream figures once per backing, and
    /// their reports are still baselines. The same id with other samples is
    /// ambiguous to a gate and refused.
    pub fn case(&mut self, id: &str, key: String, span: &SampleSpan) -> Result<(), String> {
        let shown_id = if id.is_empty() { key.as_str() } else { id };
        let print = print_of(span);
        if self
            .cases
            .insert(shown_id.to_string(), print)
            .is_some_and(|seen| seen != print)
        {
            return Err(format!(
                "case {shown_id} is listed twice with other samples; a case id must be unique (compare matches on it)"
            ));
        }
        if self
            .keys
            .insert(key.clone(), print)
            .is_some_and(|seen| seen != print)
        {
            return Err(format!(
                "case {shown_id} has the workload, layout, metric and params of another case ({key}); \
                 each case must be unique"
            ));
        }
        Ok(())
    }

    /// A derived figure's (workload, layout, kind, params) must be new.
    pub fn derived(&mut self, d: &Derived) -> Result<(), String> {
        let key = case_key(&d.workload, &d.layout, &d.kind, &d.params);
        if !self.derived.insert(key.clone()) {
            return Err(format!(
                "derived figure {key} is listed twice; a derived figure must be unique (compare matches on it)"
            ));
        }
        Ok(())
    }
}

/// Checks a derived figure's numbers (JSON holds only finite ones; this
/// names the figure if a caller built one otherwise).
pub fn check_derived_values(d: &Derived) -> Result<(), String> {
    let key = || case_key(&d.workload, &d.layout, &d.kind, &d.params);
    if !d.value.is_finite() {
        return Err(format!(
            "derived figure {}: value is {}",
            key(),
            shown(d.value)
        ));
    }
    if let Some(x) = d.x.iter().find(|x| !x.is_finite()) {
        return Err(format!(
            "derived figure {}: x {} is not finite",
            key(),
            shown(*x)
        ));
    }
    Ok(())
}

/// Checks a whole report (the version was checked before it was parsed).
pub fn check(report: &Report) -> Result<(), String> {
    let mut ids = UniqueIds::default();
    for c in &report.cases {
        check_case(c, &mut ids)?;
    }
    for d in &report.derived {
        ids.derived(d)?;
        check_derived_values(d)?;
    }
    Ok(())
}

fn check_case(c: &Case, ids: &mut UniqueIds) -> Result<(), String> {
    let key = c.key();
    let id = if c.id.is_empty() { key.as_str() } else { &c.id };
    check_case_values(
        id,
        &c.unit,
        &c.metric,
        &SampleSpan::of(&c.samples),
        &c.stats,
    )?;
    ids.case(&c.id, key.clone(), &SampleSpan::of(&c.samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_the_unit() {
        let ns = SampleRule::of("ns", "latency_per_op");
        assert!(ns.allows(0.0) && ns.allows(1e9) && !ns.allows(-1.0) && !ns.allows(1e308));
        let delta = SampleRule::of("bytes", "meminfo_cached_delta_bytes");
        assert!(delta.allows(-4096.0) && !delta.allows(-1e308));
        let ratio = SampleRule::of("x", "sharing");
        assert!(ratio.allows(1e-3) && !ratio.allows(0.0) && !ratio.allows(-1.0));
        assert!(SampleRule::of("inodes", "m").allows(MAX_COUNT));
        assert!(!SampleRule::of("inodes", "m").allows(MAX_COUNT * 2.0));
    }

    #[test]
    fn versions_are_named_as_written() {
        assert!(check_schema_version(Some("1")).is_ok());
        let e = check_schema_version(Some("18446744073709551616")).unwrap_err();
        assert!(
            e.contains("schema_version 18446744073709551616 is not one this build reads (1..=1)"),
            "{e}"
        );
        assert!(check_schema_version(Some("0")).is_err());
        assert!(check_schema_version(Some("\"1\""))
            .unwrap_err()
            .contains("\"1\""));
        assert!(check_schema_version(Some("1.0")).is_err());
        assert!(check_schema_version(None).is_err());
    }

    #[test]
    fn spans_find_the_extremes() {
        let s = SampleSpan::of(&[3.0, -1.0, 7.0, 2.0]);
        assert_eq!((s.n, s.min, s.max), (4, Some((1, -1.0)), Some((2, 7.0))));
        let parsed: SampleSpan = serde_json::from_str("[3, -1, 7, 2]").expect("parses");
        assert_eq!(parsed, s);
        assert_eq!(shown(1e308), "1e308");
        assert_eq!(shown(-5.0), "-5");
    }
}
