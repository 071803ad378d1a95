//! The bootstrap behind the gate's verdicts (criterion's rule): a figure computed
//! from several sample sets is recomputed on resamples of each, and the 95 %
//! interval of its relative change is what a verdict rests on.
//!
//! Cost. A resample of n samples is n draws and a selection, so a figure costs
//! resamples × n; a report of huge sample arrays (a 256 MiB report holds tens of
//! millions) would take minutes. Past `EXACT_MAX` samples the median of a
//! resample is drawn directly instead, from the samples sorted once: the k-th
//! smallest of n uniform draws of an index is ⌊n·U₍ₖ₎⌋ with U₍ₖ₎ ~ Beta(k, n+1−k),
//! and the next one is U₍ₖ₊₁₎ = U₍ₖ₎ + (1−U₍ₖ₎)·Beta(1, n−k). That is the same
//! distribution as resampling and taking the median (the same bootstrap, not an
//! approximation), in O(1) per resample. At or below `EXACT_MAX` — every report
//! the tool writes — the resamples are drawn as before, so their intervals are
//! unchanged to the bit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::quantile;

/// A figure's relative change between two runs, with its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChangeInterval {
    /// The figure on the baseline's samples.
    pub baseline: f64,
    /// The figure on the current samples.
    pub current: f64,
    /// `current / baseline - 1`.
    pub change: f64,
    /// 2.5 % quantile of the resampled change (never above `change`).
    pub low: f64,
    /// 97.5 % quantile of the resampled change (never below `change`).
    pub high: f64,
}

/// Most samples an input may have for its resamples to be drawn one by one;
/// above, the median of a resample is drawn from the order statistics (see
/// the module's doc). The reports the tool writes hold far fewer per case
/// (the committed example at most 80).
pub const EXACT_MAX: usize = 256;

/// Median of `v` (reordered in place): the value `quantile(sorted v, 0.5)`
/// gives, found by selection (O(n)) instead of a sort.
pub fn median_of(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let pos = 0.5 * (n - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let (_, a, right) = v.select_nth_unstable_by(lo, f64::total_cmp);
    let a = *a;
    let b = if hi == lo {
        a
    } else {
        // Everything right of the lo-th is at least it: the next order
        // statistic is the smallest of them.
        right.iter().copied().min_by(f64::total_cmp).unwrap_or(a)
    };
    a + (b - a) * (pos - lo as f64)
}

/// Sorted copies of the large inputs, shared by every figure of a comparison
/// (an input is often the denominator of many ratios): keyed by the address
/// and length of the samples, which outlive the comparison.
#[derive(Default)]
pub struct SortedInputs(Mutex<SortedByInput>);

/// A sorted copy per input, keyed by (address, length) of its samples.
type SortedByInput = HashMap<(usize, usize), Arc<Vec<f64>>>;

impl SortedInputs {
    fn get(&self, s: &[f64]) -> Arc<Vec<f64>> {
        let key = (s.as_ptr() as usize, s.len());
        // A panic elsewhere cannot leave a half-written entry: entries are
        // inserted whole, so a poisoned lock is still good.
        if let Some(v) = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
        {
            return Arc::clone(v);
        }
        let mut v = s.to_vec();
        v.sort_unstable_by(f64::total_cmp);
        let v = Arc::new(v);
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, Arc::clone(&v));
        v
    }
}

/// A standard normal variate (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]: ln is finite
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A Gamma(shape, 1) variate for shape ≥ 1 (Marsaglia and Tsang, 2000).
fn gamma(shape: f64, rng: &mut ChaCha8Rng) -> f64 {
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = 1.0 + c * x;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u: f64 = 1.0 - rng.gen::<f64>();
        if u < 1.0 - 0.0331 * x * x * x * x || u.ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
            return d * v;
        }
    }
}

/// The median of one bootstrap resample of the sorted samples `s`, drawn from
/// the order statistics of the resampled indices (exact; see the module doc).
fn resampled_median_sorted(s: &[f64], rng: &mut ChaCha8Rng) -> f64 {
    let n = s.len();
    let pos = 0.5 * (n - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    // U₍ₖ₎ for k = lo + 1 (1-based), from Beta(k, n + 1 − k) = X / (X + Y).
    let k = (lo + 1) as f64;
    let x = gamma(k, rng);
    let y = gamma(n as f64 + 1.0 - k, rng);
    let u_lo = x / (x + y);
    let index = |u: f64| ((u * n as f64) as usize).min(n - 1);
    let a = s[index(u_lo)];
    let b = if hi == lo {
        a
    } else {
        // The minimum of the n − k draws above U₍ₖ₎: Beta(1, n − k) by inversion.
        let m = n as f64 - k;
        let v: f64 = rng.gen();
        let step = 1.0 - (1.0 - v).powf(1.0 / m);
        s[index(u_lo + (1.0 - u_lo) * step)]
    };
    a + (b - a) * (pos - lo as f64)
}

/// A stable seed per figure id, so a comparison gives the same interval every time.
pub fn seed_of(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// A figure as a function of its inputs: it asks `pick` for the median of each
/// input's samples (or of a resample of them) and combines them.
pub type FigureFn<'a> = &'a dyn Fn(&mut dyn FnMut(&[f64]) -> f64) -> f64;

/// The change of `current` against `baseline`, with a `resamples`-fold bootstrap
/// interval (deterministic for a given `seed`).
pub fn bootstrap_change(
    baseline: FigureFn<'_>,
    current: FigureFn<'_>,
    resamples: usize,
    seed: u64,
) -> ChangeInterval {
    bootstrap_change_shared(baseline, current, resamples, seed, &SortedInputs::default())
}

/// `bootstrap_change`, with the sorted copies of large inputs kept in `sorted`
/// for the next figure that reads the same samples.
pub fn bootstrap_change_shared(
    baseline: FigureFn<'_>,
    current: FigureFn<'_>,
    resamples: usize,
    seed: u64,
    sorted: &SortedInputs,
) -> ChangeInterval {
    let point = |f: FigureFn<'_>| f(&mut |s: &[f64]| median_of(&mut s.to_vec()));
    let (b0, c0) = (point(baseline), point(current));
    let change = c0 / b0 - 1.0;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let resample = |f: FigureFn<'_>, rng: &mut ChaCha8Rng| {
        f(&mut |s: &[f64]| {
            let n = s.len();
            if n == 0 {
                return f64::NAN;
            }
            if n > EXACT_MAX {
                return resampled_median_sorted(&sorted.get(s), rng);
            }
            let mut r: Vec<f64> = (0..n).map(|_| s[rng.gen_range(0..n)]).collect();
            median_of(&mut r)
        })
    };
    let mut changes: Vec<f64> = (0..resamples)
        .map(|_| resample(current, &mut rng) / resample(baseline, &mut rng) - 1.0)
        .filter(|x| x.is_finite())
        .collect();
    changes.sort_by(f64::total_cmp);
    if changes.is_empty() {
        return ChangeInterval {
            baseline: b0,
            current: c0,
            change,
            low: change,
            high: change,
        };
    }
    ChangeInterval {
        baseline: b0,
        current: c0,
        change,
        low: quantile(&changes, 0.025).min(change),
        high: quantile(&changes, 0.975).max(change),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_inputs_have_zero_change_and_a_shift_is_caught() {
        let a: Vec<f64> = (0..40).map(|i| 100.0 + (i % 7) as f64).collect();
        let b: Vec<f64> = a.iter().map(|x| x * 1.5).collect();
        let fa = |p: &mut dyn FnMut(&[f64]) -> f64| p(&a);
        let fb = |p: &mut dyn FnMut(&[f64]) -> f64| p(&b);
        let same = bootstrap_change(&fa, &fa, 200, 1);
        assert_eq!(same.change, 0.0);
        let up = bootstrap_change(&fa, &fb, 200, 1);
        assert!(up.low > 0.4 && up.high < 0.6, "{up:?}");
        assert_eq!(bootstrap_change(&fa, &fb, 200, 1), up, "deterministic");
    }

    #[test]
    fn selection_gives_the_sorted_median_to_the_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for n in 1..60 {
            let v: Vec<f64> = (0..n).map(|_| rng.gen_range(-1e3..1e3)).collect();
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            assert_eq!(
                median_of(&mut v.clone()).to_bits(),
                quantile(&sorted, 0.5).to_bits(),
                "{n}"
            );
        }
    }

    /// The direct draw is the same bootstrap: its interval agrees with the
    /// one drawn sample by sample (to Monte Carlo noise), for odd and even n.
    #[test]
    fn order_statistic_draws_match_resampling() {
        for n in [1001usize, 1000] {
            let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
            let s: Vec<f64> = (0..n).map(|_| rng.gen::<f64>().powi(3) * 100.0).collect();
            let mut sorted = s.clone();
            sorted.sort_by(f64::total_cmp);
            let draws = 4000;
            let mut direct: Vec<f64> = (0..draws)
                .map(|_| resampled_median_sorted(&sorted, &mut rng))
                .collect();
            let mut classic: Vec<f64> = (0..draws)
                .map(|_| {
                    let mut r: Vec<f64> = (0..n).map(|_| s[rng.gen_range(0..n)]).collect();
                    median_of(&mut r)
                })
                .collect();
            direct.sort_by(f64::total_cmp);
            classic.sort_by(f64::total_cmp);
            for q in [0.025, 0.5, 0.975] {
                let (a, b) = (quantile(&direct, q), quantile(&classic, q));
                let spread = quantile(&classic, 0.975) - quantile(&classic, 0.025);
                assert!((a - b).abs() < 0.1 * spread, "n {n} q {q}: {a} vs {b}");
            }
        }
    }
}

/// The 95 % bootstrap interval of the median of `samples` (`resamples`
/// resamples, deterministic for `seed`); `None` without samples.
pub fn median_interval(samples: &[f64], resamples: usize, seed: u64) -> Option<(f64, f64)> {
    let n = samples.len();
    if n == 0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut medians: Vec<f64> = (0..resamples.max(1))
        .map(|_| {
            let mut r: Vec<f64> = (0..n).map(|_| samples[rng.gen_range(0..n)]).collect();
            median_of(&mut r)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    Some((quantile(&medians, 0.025), quantile(&medians, 0.975)))
}

#[cfg(test)]
mod interval_tests {
    use super::*;

    #[test]
    fn the_median_interval_holds_the_median() {
        let s: Vec<f64> = (1..=21).map(f64::from).collect();
        let (lo, hi) = median_interval(&s, 500, 7).expect("samples");
        assert!(
            lo <= 11.0 && hi >= 11.0 && lo >= 1.0 && hi <= 21.0,
            "{lo} {hi}"
        );
        assert_eq!(median_interval(&[], 10, 1), None);
        assert_eq!(median_interval(&[3.0], 10, 1), Some((3.0, 3.0)));
    }
}
