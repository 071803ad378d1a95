//! copy-up's `run` options.

use clap::Args;

use overlaybench::workload::copy_up::{self, CacheState, Procedure, Variant};

use super::OptionGroup;
use crate::cli::{choice, parse_size};

/// copy-up: the first write to a file of a lower layer.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "copy-up options")]
pub struct CopyUpArgs {
    /// File sizes, binary units (e.g. 1M,16M,64M,256M) [quick: 1M,16M,64M].
    #[arg(allow_negative_numbers = true, long, value_delimiter = ',', value_parser = parse_size)]
    pub sizes: Option<Vec<u64>>,
    /// Layers in the image; the file sits in the bottom one (1 to 500) [3].
    #[arg(allow_negative_numbers = true, long)]
    pub depth: Option<usize>,
    /// Samples per case, each in a fresh container [quick: 9].
    #[arg(allow_negative_numbers = true, long)]
    pub samples: Option<usize>,
    /// What each fresh container does first [quick: write,chmod; else all].
    #[arg(long, value_delimiter = ',', value_parser = choice::<Procedure>())]
    pub procedures: Option<Vec<Procedure>>,
    /// Overlay option sets compared [all].
    #[arg(long, value_delimiter = ',', value_parser = choice::<Variant>())]
    pub variants: Option<Vec<Variant>>,
    /// Lower file page cache before the timed op [quick: cold; else cold,warm].
    #[arg(long, value_delimiter = ',', value_parser = choice::<CacheState>())]
    pub caches: Option<Vec<CacheState>>,
    /// How many of each --image's largest regular files are timed (1 to 100) [5].
    #[arg(allow_negative_numbers = true, long)]
    pub image_files: Option<usize>,
}

impl OptionGroup for CopyUpArgs {
    const HEADING: &'static str = "copy-up options";
    type Options = copy_up::Options;
}

impl From<CopyUpArgs> for copy_up::Options {
    fn from(a: CopyUpArgs) -> Self {
        copy_up::Options {
            sizes: a.sizes,
            depth: a.depth,
            samples: a.samples,
            procedures: a.procedures,
            variants: a.variants,
            caches: a.caches,
            image_files: a.image_files,
        }
    }
}
