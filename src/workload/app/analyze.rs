//! app's analysis (pure): samples → cases (time to ready per layout, cold and
//! warm) and the ratios to overlay2 and to plain of the same run.

use super::keys::{Cache, Ready, View, BASE_OVERLAY2, BASE_PLAIN, TIME_TO_READY};
use super::measure::Samples;
use crate::report::Derived;
use crate::workload::{CaseView, Recorded};

/// What the cases are about.
pub struct Setting<'a> {
    /// Layout names, by index in the run.
    pub layouts: &'a [&'static str],
    /// The image as the user named it.
    pub image: &'a str,
    /// Backing name.
    pub backing: &'a str,
    /// How readiness was judged.
    pub ready: Ready,
}

/// Records the cases and ratios of `s`.
pub fn record(out: &mut Recorded, set: &Setting<'_>, s: &Samples) {
    for cache in Cache::ALL {
        let view = View {
            image: set.image.to_string(),
            backing: set.backing.to_string(),
            cache,
            ready: set.ready,
            baseline: None,
        };
        let mut medians = Vec::new();
        for (li, name) in set.layouts.iter().enumerate() {
            let Some(samples) = s.series.get(&(li, cache)) else {
                continue;
            };
            if let Some(m) = out.case_of(&view, name, TIME_TO_READY, "ns", samples.clone()) {
                medians.push((*name, m));
            }
        }
        for base in [BASE_OVERLAY2, BASE_PLAIN] {
            let Some(&(_, den)) = medians.iter().find(|(n, _)| *n == base) else {
                continue;
            };
            if den <= 0.0 {
                continue;
            }
            for &(name, num) in medians.iter().filter(|(n, _)| *n != base) {
                let ratio = View {
                    baseline: Some(base.to_string()),
                    ..view.clone()
                };
                out.derived.push(Derived::ratio(
                    super::keys::NAME,
                    name,
                    ratio.params(),
                    num / den,
                    view.case_id(name, TIME_TO_READY),
                    view.case_id(base, TIME_TO_READY),
                ));
            }
        }
    }
}
