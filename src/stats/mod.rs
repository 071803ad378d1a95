//! Pure maths over raw samples: summary statistics, least-squares fits and the
//! bootstrap the gate uses. Nothing here reads the host or knows a workload.

mod bootstrap;
mod fit;
mod summary;

pub use bootstrap::{
    bootstrap_change, bootstrap_change_shared, median_interval, median_of, seed_of, ChangeInterval,
    SortedInputs, EXACT_MAX,
};
pub use fit::{fit_line, LineFit};
pub use summary::{quantile, Stats};
