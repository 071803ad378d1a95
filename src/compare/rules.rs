//! What each workload tells the gate: which of its figures are gated by default,
//! which way is better, the threshold its measured noise allows, and which of its
//! parameters change what a case measures. Workloads implement it; the gate
//! receives the rules keyed by workload name and never names a workload.

use crate::report::{Derived, Report};

/// A workload's gate rules.
pub trait GateRules {
    /// Default relative threshold (0.25 = 25 %) for its figures, from measured noise.
    fn threshold(&self) -> f64;
    /// How its gated figures are made independent of the machine's load: the
    /// in-run reference each timing is divided by, or why none is needed
    /// (exact counts). Required, so a new workload states it.
    fn calibration(&self) -> &'static str;
    /// Whether its gated figures are timings, which a noisy machine moves
    /// (exact counts are not): `compare` judges the machine's conditions only
    /// over spans of workloads that say yes.
    fn timed(&self) -> bool;
    /// Whether the default gate uses derived figure `d` of `report` (it must also be
    /// recomputable from raw samples, which the gate checks itself).
    fn gated(&self, d: &Derived, report: &Report) -> bool;
    /// Whether a larger value of `d` is better (sharing factors, throughput).
    fn higher_is_better(&self, d: &Derived) -> bool;
    /// JSON pointers into the workload's resolved params (the report's config)
    /// whose values define what its cases measure: two reports that differ in one
    /// of them cannot be compared.
    fn identity_keys(&self) -> &'static [&'static str];
}

/// A workload's rules as the gate receives them.
#[derive(Clone, Copy)]
pub struct WorkloadRules {
    /// Key of the workload's params in the report's config (`copy_up`).
    pub config_key: &'static str,
    /// Its rules.
    pub rules: &'static (dyn GateRules + Sync),
}

impl std::fmt::Debug for WorkloadRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadRules")
            .field("config_key", &self.config_key)
            .field("threshold", &self.rules.threshold())
            .finish()
    }
}
