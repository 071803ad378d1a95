//! storm's `run` options. Its depths and rounds mean other things than
//! lookup's, so they carry its name (`--storm-depths`, `--storm-rounds`).

use clap::Args;

use overlaybench::workload::storm;

use super::OptionGroup;
use crate::cli::choice;

/// storm: many containers started at once.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "storm options")]
pub struct StormArgs {
    /// Layers of the image the containers start from, swept (1 to 500)
    /// [quick: 1,16; standard: 1,16,64].
    #[arg(allow_negative_numbers = true, long, value_delimiter = ',')]
    pub storm_depths: Option<Vec<usize>>,
    /// Containers started at once, swept; 1 is always measured (1 to 1024)
    /// [quick: 1,4,16; standard: 1,2,4,8,16,32,64].
    #[arg(long, value_delimiter = ',')]
    pub concurrency: Option<Vec<usize>>,
    /// Storms per point [quick: 5, standard: 10].
    #[arg(allow_negative_numbers = true, long)]
    pub storm_rounds: Option<usize>,
    /// How lower layers are idmapped; asked for explicitly, a host that refuses
    /// exits 3 [all, skipped with a note where refused].
    #[arg(long, value_delimiter = ',', value_parser = choice::<storm::Idmap>())]
    pub idmap: Option<Vec<storm::Idmap>>,
    /// Mounts held while the mount table is read, swept (0 skips the phase)
    /// [quick: 0,100,1000; standard: 0,100,1000,5000].
    #[arg(long, value_delimiter = ',')]
    pub mounts_held: Option<Vec<usize>>,
    /// Layers of the image every held mount stacks (1 to 500) [16].
    #[arg(long)]
    pub held_depth: Option<usize>,
}

impl OptionGroup for StormArgs {
    const HEADING: &'static str = "storm options";
    type Options = storm::Options;
}

impl From<StormArgs> for storm::Options {
    fn from(a: StormArgs) -> Self {
        storm::Options {
            depths: a.storm_depths,
            concurrency: a.concurrency,
            rounds: a.storm_rounds,
            idmap: a.idmap,
            held: a.mounts_held,
            held_depth: a.held_depth,
        }
    }
}
