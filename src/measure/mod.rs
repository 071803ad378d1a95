//! Measuring: statistics over raw samples, least-squares fits, cache control.

pub mod cache;
pub mod census;
pub mod fit;
pub mod residency;
pub mod stats;

pub use fit::{fit_line, LineFit};
pub use stats::Stats;
