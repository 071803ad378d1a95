//! Published claims about layouts, each checked on the host by the run that
//! measured both: the summary compares the claimed-better layout with the
//! other on every headline figure the workloads put forward. A claim is data
//! about layouts; no renderer names one.

/// "`better` performs better than `worse`", as someone published it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The claim, as published.
    pub text: &'static str,
    /// Where it was published.
    pub source: &'static str,
    /// The layout claimed to perform better.
    pub better: &'static str,
    /// The layout it is claimed to beat.
    pub worse: &'static str,
}

/// Every claim a report checks when it measured both layouts.
pub static CLAIMS: &[Claim] = &[Claim {
    text: "overlay2 performs better than btrfs in production",
    source: "Docker documentation, \"Select a storage driver\"",
    better: "overlay2",
    worse: "btrfs",
}];
