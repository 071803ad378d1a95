//! page-cache's `run` options.

use clap::Args;

use overlaybench::workload::page_cache;

use super::OptionGroup;
use crate::cli::parse_size;

/// page-cache: how many copies of shared files the page cache holds.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "page-cache options")]
pub struct PageCacheArgs {
    /// Numbers of containers reading the set, swept [quick: 1,2,4].
    #[arg(allow_negative_numbers = true, long, value_delimiter = ',')]
    pub page_cache_containers: Option<Vec<usize>>,
    /// Total size of the cache set, binary units [quick: 256M].
    #[arg(allow_negative_numbers = true, long, value_parser = parse_size)]
    pub cache_set: Option<u64>,
    /// Files the cache set is split into (1 to 100000) [4].
    #[arg(allow_negative_numbers = true, long)]
    pub cache_files: Option<usize>,
    /// The most bytes of each --image the containers read, binary units; its
    /// regular files in path order up to it [quick: 256M].
    #[arg(allow_negative_numbers = true, long, value_parser = parse_size)]
    pub read_budget: Option<u64>,
    /// Glob patterns (paths in the image, e.g. 'usr/lib/**') choosing which
    /// files of each --image are read [every regular file].
    #[arg(long, num_args = 1.., value_name = "GLOB")]
    pub read_set: Option<Vec<String>>,
    /// Numbers of different images (the same files in other layers, no layer
    /// shared) read at once, one container each [quick: 1,3].
    #[arg(long, value_delimiter = ',')]
    pub cache_images: Option<Vec<usize>>,
}

impl OptionGroup for PageCacheArgs {
    const HEADING: &'static str = "page-cache options";
    type Options = page_cache::Options;
}

impl From<PageCacheArgs> for page_cache::Options {
    fn from(a: PageCacheArgs) -> Self {
        page_cache::Options {
            set_bytes: a.cache_set,
            files: a.cache_files,
            containers: a.page_cache_containers,
            read_budget: a.read_budget,
            read_set: a.read_set,
            images: a.cache_images,
        }
    }
}
