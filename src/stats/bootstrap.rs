//! The bootstrap behind the gate's verdicts (criterion's rule): a figure computed
//! from several sample sets is recomputed on resamples of each, and the 95 %
//! interval of its relative change is what a verdict rests on.

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

/// Median of `v` (sorted in place).
pub fn median_of(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    quantile(v, 0.5)
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
}
