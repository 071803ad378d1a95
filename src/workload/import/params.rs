//! import's suite defaults and the synthetic image it converts (besides the
//! user's `--image`s), and how much room that takes.

use serde::Serialize;

use crate::image::{generate, GeneratorParams, ImageShape, ImageSpec, SizeRange};
use crate::workload::{Footprint, ParamError, Suite};

/// What the user may set (the synthetic image's shape; the user's own images
/// come with `--image`).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Layers of the synthetic image.
    pub layers: Option<usize>,
    /// Files added or modified per layer.
    pub files_per_layer: Option<usize>,
}

/// Parameters of the import workload, resolved (written to the report's config).
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// Layers of the synthetic image.
    pub layers: usize,
    /// Files added or modified per layer.
    pub files_per_layer: usize,
    /// Directories added per layer.
    pub dirs_per_layer: usize,
    /// Largest file, bytes (sizes are log-uniform from 0).
    pub max_file_bytes: u64,
    /// Image seed.
    pub seed: u64,
}

impl Params {
    /// The suite's defaults, overridden by `options`.
    pub fn resolve(suite: Suite, seed: u64, options: &Options) -> Result<Params, ParamError> {
        let (layers, files) = match suite {
            Suite::Quick => (6, 300),
            Suite::Standard => (12, 500),
            Suite::Full => (24, 1000),
        };
        let layers = options.layers.unwrap_or(layers);
        let files = options.files_per_layer.unwrap_or(files);
        if !(1..=500).contains(&layers) {
            return Err(ParamError::Invalid(format!(
                "--import-layers {layers}: from 1 to 500"
            )));
        }
        if !(1..=100_000).contains(&files) {
            return Err(ParamError::Invalid(format!(
                "--import-files {files}: from 1 to 100000"
            )));
        }
        let p = Params {
            layers,
            files_per_layer: files,
            dirs_per_layer: files / 10,
            max_file_bytes: 256 * 1024,
            seed,
        };
        p.shape()?;
        Ok(p)
    }

    fn shape(&self) -> Result<ImageShape, ParamError> {
        ImageShape::try_from(GeneratorParams {
            seed: self.seed,
            layers: self.layers,
            files_per_layer: self.files_per_layer,
            dirs_per_layer: self.dirs_per_layer,
            sizes: SizeRange {
                min_bytes: 0,
                max_bytes: self.max_file_bytes,
            },
            modify_pct: 10,
            delete_pct: 5,
            opaque_pct: 5,
            symlink_pct: 5,
        })
        .map_err(|e| ParamError::Invalid(e.to_string()))
    }

    /// The synthetic image.
    pub fn image(&self) -> Result<ImageSpec, ParamError> {
        Ok(generate(&self.shape()?))
    }

    /// Room for one image at a time in every layout (stores are removed after
    /// each image): each layout may hold it twice (layered and whole-image
    /// stores), flattening layouts a third time while they work.
    pub fn footprint(&self, layouts: usize, image_bytes: u64) -> Footprint {
        let files = (self.layers * self.files_per_layer) as u64;
        let synthetic = files * (self.max_file_bytes / 8 + 4096);
        let biggest = synthetic.max(image_bytes);
        Footprint {
            bytes: biggest * 3 * (layouts as u64 + 1) + (256 << 20),
            inodes: 10_000 + files * 4 * (layouts as u64 + 1) + image_bytes / 4096,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_grow_and_generate() {
        let q = Params::resolve(Suite::Quick, 1, &Options::default()).expect("valid");
        let s = Params::resolve(Suite::Standard, 1, &Options::default()).expect("valid");
        assert!(s.layers > q.layers);
        assert_eq!(q.image().expect("generates").depth(), q.layers);
        assert!(q.footprint(4, 0).bytes > q.footprint(1, 0).bytes);
    }
}
