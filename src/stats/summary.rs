//! Summary statistics of raw samples (hyperfine/criterion style). Medians are the
//! headline; outliers are counted by modified z-score (MAD-based), never dropped.

/// Summary of one case's samples, in the case's unit.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    /// Number of samples.
    pub n: usize,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Median (the figure to quote).
    pub median: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// 95th percentile (linear interpolation).
    pub p95: f64,
    /// 99th percentile (linear interpolation).
    pub p99: f64,
    /// Sample standard deviation (n-1).
    pub stddev: f64,
    /// Median absolute deviation from the median (unscaled).
    pub mad: f64,
    /// Coefficient of variation: stddev / mean (0 when the mean is 0).
    pub cv: f64,
    /// Samples whose modified z-score |0.6745 (x - median) / MAD| exceeds 3.5.
    pub outliers: usize,
}

/// The q-quantile (0..=1) of sorted data, linearly interpolated.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

impl Stats {
    /// Statistics of `samples`; `None` when there are none (or any is not finite).
    pub fn compute(samples: &[f64]) -> Option<Stats> {
        if samples.is_empty() || samples.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        let stddev = var.sqrt();
        let median = quantile(&sorted, 0.5);
        let mut dev: Vec<f64> = sorted.iter().map(|x| (x - median).abs()).collect();
        dev.sort_by(f64::total_cmp);
        let mad = quantile(&dev, 0.5);
        let outliers = if mad > 0.0 {
            sorted
                .iter()
                .filter(|x| (0.6745 * (*x - median) / mad).abs() > 3.5)
                .count()
        } else {
            0
        };
        Some(Stats {
            n,
            min: sorted[0],
            max: sorted[n - 1],
            median,
            mean,
            p95: quantile(&sorted, 0.95),
            p99: quantile(&sorted, 0.99),
            stddev,
            mad,
            cv: if mean != 0.0 {
                stddev / mean.abs()
            } else {
                0.0
            },
            outliers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        let s = Stats::compute(&[1.0, 2.0, 3.0, 4.0, 100.0]).expect("stats");
        assert_eq!(s.n, 5);
        assert_eq!(s.median, 3.0);
        assert_eq!(s.mad, 1.0);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.max, 100.0);
        assert_eq!(s.mean, 22.0);
        assert_eq!(s.outliers, 1);
        assert!((s.p95 - 80.8).abs() < 1e-9);
        assert!(Stats::compute(&[]).is_none());
        assert!(Stats::compute(&[1.0, f64::NAN]).is_none());
    }

    proptest! {
        #[test]
        fn order_invariants(v in proptest::collection::vec(0.0f64..1e9, 1..200)) {
            let s = Stats::compute(&v).expect("stats");
            prop_assert!(s.min <= s.median && s.median <= s.p95 && s.p95 <= s.p99 && s.p99 <= s.max);
            prop_assert!(s.min <= s.mean && s.mean <= s.max);
            prop_assert!(s.stddev >= 0.0 && s.mad >= 0.0 && s.outliers <= s.n);
            let mut r = v.clone();
            r.reverse();
            prop_assert_eq!(Stats::compute(&r).expect("stats").median, s.median);
        }
    }
}
