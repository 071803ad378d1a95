//! inodes' `run` options: the same fleet shape `plan` takes, spelled the same.

use clap::Args;

use overlaybench::workload::inodes;

use super::OptionGroup;

/// inodes: what a set of images and their containers cost in inodes and bytes.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "inodes options")]
pub struct InodesArgs {
    /// Layers per image, swept (comma-separated) [quick: 5,20].
    #[arg(allow_negative_numbers = true, long, value_delimiter = ',')]
    pub layers: Option<Vec<usize>>,
    /// Images in the set (1 to 1000) [3].
    #[arg(allow_negative_numbers = true, long, value_name = "N")]
    pub images: Option<usize>,
    /// Percent of each image's layers shared by all images (the base) [60].
    #[arg(allow_negative_numbers = true, long)]
    pub shared_pct: Option<u32>,
    /// Containers per image (0 to 1000) [2].
    #[arg(allow_negative_numbers = true, long, value_name = "N")]
    pub containers: Option<usize>,
    /// Files added or modified per layer (0 to 1000000) [100].
    #[arg(allow_negative_numbers = true, long)]
    pub files_per_layer: Option<usize>,
    /// Directories added per layer (0 to 100000) [20].
    #[arg(allow_negative_numbers = true, long)]
    pub dirs_per_layer: Option<usize>,
    /// Files each container modifies (copy_up); it also creates and deletes as
    /// many (0 to 100000) [10].
    #[arg(allow_negative_numbers = true, long)]
    pub writes: Option<usize>,
}

impl OptionGroup for InodesArgs {
    const HEADING: &'static str = "inodes options";
    type Options = inodes::Options;
}

impl From<InodesArgs> for inodes::Options {
    fn from(a: InodesArgs) -> Self {
        inodes::Options {
            layers: a.layers,
            images: a.images,
            shared_pct: a.shared_pct,
            containers: a.containers,
            files_per_layer: a.files_per_layer,
            dirs_per_layer: a.dirs_per_layer,
            writes: a.writes,
        }
    }
}
