//! lookup's `run` options.

use clap::Args;

use overlaybench::workload::lookup;

use super::OptionGroup;

/// lookup: path lookups through a growing stack of lower layers.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "lookup options")]
pub struct LookupArgs {
    /// Lower depths to measure (1 to 500) [quick: 1,2,4,8,16,32,64,128].
    #[arg(allow_negative_numbers = true, long, value_delimiter = ',')]
    pub depths: Option<Vec<usize>>,
    /// Distinct names per target, each looked up once per cold round [quick: 256].
    #[arg(allow_negative_numbers = true, long)]
    pub names: Option<usize>,
    /// Lookups timed together as one sample (per-op = batch time / batch) [32].
    #[arg(allow_negative_numbers = true, long)]
    pub batch: Option<usize>,
    /// Cold rounds per case (each: evict, fresh mount, measure) [quick: 10].
    #[arg(allow_negative_numbers = true, long)]
    pub rounds: Option<usize>,
    /// Numbers of images sharing one store, swept (1 to 1000) [quick: 1,4,16].
    #[arg(long, value_delimiter = ',')]
    pub store_images: Option<Vec<usize>>,
}

impl OptionGroup for LookupArgs {
    const HEADING: &'static str = "lookup options";
    type Options = lookup::Options;
}

impl From<LookupArgs> for lookup::Options {
    fn from(a: LookupArgs) -> Self {
        lookup::Options {
            depths: a.depths,
            names: a.names,
            batch: a.batch,
            rounds: a.rounds,
            store_images: a.store_images,
        }
    }
}
