//! import's `run` options: the synthetic image's shape (the user's own images
//! come with `--image`).

use clap::Args;

use overlaybench::workload::import;

use super::OptionGroup;

/// import: what converting an image into each layout's store costs.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "import options")]
pub struct ImportArgs {
    /// Layers of the synthetic image imported (1 to 500) [quick: 6].
    #[arg(allow_negative_numbers = true, long)]
    pub import_layers: Option<usize>,
    /// Files added or modified per layer of it (1 to 100000) [quick: 300].
    #[arg(allow_negative_numbers = true, long)]
    pub import_files: Option<usize>,
}

impl OptionGroup for ImportArgs {
    const HEADING: &'static str = "import options";
    type Options = import::Options;
}

impl From<ImportArgs> for import::Options {
    fn from(a: ImportArgs) -> Self {
        import::Options {
            layers: a.import_layers,
            files_per_layer: a.import_files,
        }
    }
}
