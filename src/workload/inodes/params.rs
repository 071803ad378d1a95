//! inodes' options, suite defaults and validation (every limit checked where the
//! user's value enters), the image sets it builds, and how much room they need.

use serde::Serialize;

use crate::image::{extend, generate, GeneratorParams, ImageShape, ImageSpec, SizeRange};
use crate::layout::MAX_LOWER_LAYERS;
use crate::workload::{sorted_unique, within, Footprint, ParamError, Suite};

/// Largest `--files-per-layer` (the generator's limit).
pub const MAX_FILES_PER_LAYER: usize = 1_000_000;
/// Largest `--dirs-per-layer`.
pub const MAX_DIRS_PER_LAYER: usize = 100_000;
/// Largest `--writes` per container.
pub const MAX_WRITES: usize = 100_000;
/// Largest `--images`.
pub const MAX_IMAGES: usize = 1_000;

/// What the user may set.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Layers per image, swept.
    pub layers: Option<Vec<usize>>,
    /// Images in the set.
    pub images: Option<usize>,
    /// Percent of each image's layers shared by all images.
    pub shared_pct: Option<u32>,
    /// Containers per image.
    pub containers: Option<usize>,
    /// Files added or modified per layer.
    pub files_per_layer: Option<usize>,
    /// Directories added per layer.
    pub dirs_per_layer: Option<usize>,
    /// Files each container modifies (it also creates as many, deletes half).
    pub writes: Option<usize>,
}

/// Parameters of the inodes workload (and of `plan`'s own measurement), resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// Layers per image, swept.
    pub layers: Vec<usize>,
    /// Images in the set.
    pub images: usize,
    /// Percent of each image's layers that are the shared base.
    pub shared_pct: u32,
    /// Containers per image.
    pub containers: usize,
    /// Files added or modified per layer.
    pub files_per_layer: usize,
    /// Directories added per layer.
    pub dirs_per_layer: usize,
    /// Largest file, bytes (sizes are log-uniform from 0).
    pub max_file_bytes: u64,
    /// Files each container modifies (copy_up).
    pub writes: usize,
    /// Files each container creates.
    pub new_files: usize,
    /// Files each container deletes (whiteouts in its upper).
    pub deletes: usize,
    /// Image seed.
    pub seed: u64,
}

impl Params {
    /// The suite's defaults with the user's overrides, validated.
    pub fn resolve(suite: Suite, o: &Options, seed: u64) -> Result<Params, ParamError> {
        let layers_default = match suite {
            Suite::Quick => vec![5, 20],
            Suite::Standard => vec![5, 20, 50],
            Suite::Full => vec![5, 20, 50, 100],
        };
        let layers = sorted_unique(o.layers.as_deref().unwrap_or(&layers_default));
        if layers.is_empty() {
            return Err(ParamError::Invalid(
                "--layers is empty; give layers per image from 1 to 500, e.g. 5,20".into(),
            ));
        }
        for &l in &layers {
            within(
                "--layers",
                l,
                1,
                MAX_LOWER_LAYERS,
                " (the kernel's lower-layer limit)",
            )?;
        }
        let shared_pct = o.shared_pct.unwrap_or(60);
        if shared_pct > 100 {
            return Err(ParamError::range(
                "--shared-pct",
                shared_pct,
                "a percent from 0 to 100",
            ));
        }
        // A share that rounds to no layer would silently share nothing.
        if shared_pct > 0 {
            if let Some(&l) = layers.iter().find(|&&l| l * shared_pct as usize / 100 == 0) {
                return Err(ParamError::range(
                    "--shared-pct",
                    shared_pct,
                    format!(
                        "{shared_pct}% of {l} layers rounds to 0 shared layers; use --shared-pct {} or more \
                         for {l}-layer images, or 0 to share nothing",
                        100usize.div_ceil(l)
                    ),
                ));
            }
        }
        let writes = within("--writes", o.writes.unwrap_or(10), 0, MAX_WRITES, "")?;
        Ok(Params {
            layers,
            images: within("--images", o.images.unwrap_or(3), 1, MAX_IMAGES, "")?,
            shared_pct,
            containers: within("--containers", o.containers.unwrap_or(2), 0, 1_000, "")?,
            files_per_layer: within(
                "--files-per-layer",
                o.files_per_layer.unwrap_or(100),
                0,
                MAX_FILES_PER_LAYER,
                "",
            )?,
            dirs_per_layer: within(
                "--dirs-per-layer",
                o.dirs_per_layer.unwrap_or(20),
                0,
                MAX_DIRS_PER_LAYER,
                "",
            )?,
            max_file_bytes: 16 * 1024,
            writes,
            new_files: writes,
            deletes: writes / 2,
            seed,
        })
    }

    /// Layers of each image that belong to the shared base.
    pub fn base_layers(&self, layers: usize) -> usize {
        layers * self.shared_pct as usize / 100
    }

    fn shape(&self, layers: usize, seed: u64) -> Result<Option<ImageShape>, ParamError> {
        if layers == 0 {
            return Ok(None);
        }
        ImageShape::try_from(GeneratorParams {
            seed,
            layers,
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
        .map(Some)
        .map_err(|e| ParamError::Invalid(e.to_string()))
    }

    /// The shared base and the images built on it, for images of `layers` layers.
    /// Fails (never an empty set) when the generator refuses the shape.
    pub fn image_set(&self, layers: usize) -> Result<(ImageSpec, Vec<ImageSpec>), ParamError> {
        let base_layers = self.base_layers(layers);
        let base = match self.shape(base_layers, self.seed)? {
            Some(s) => generate(&s),
            None => ImageSpec::default(),
        };
        let images = (0..self.images)
            .map(|i| {
                Ok(
                    match self.shape(layers - base_layers, self.seed + 1 + i as u64)? {
                        Some(s) => extend(&base, &s),
                        None => base.clone(),
                    },
                )
            })
            .collect::<Result<_, ParamError>>()?;
        Ok((base, images))
    }

    /// A generous estimate of inodes a layout may need (sizes the fresh fs),
    /// containers' own files included.
    pub fn estimate_inodes(&self, layers: usize) -> u64 {
        let per_layer = (self.files_per_layer + self.dirs_per_layer) as u64;
        let l = layers as u64;
        let images = self.images as u64;
        let containers = images * self.containers as u64;
        let flat = l * per_layer * images * (1 + self.containers as u64);
        // The legacy driver re-creates every directory in every layer, and
        // hard-links every older file into every later layer's root: free on
        // ext4 and xfs, but tmpfs charges an inode per link.
        let legacy = images * l * l * self.dirs_per_layer as u64
            + images * l * (l + 1) / 2 * self.files_per_layer as u64;
        let written = containers * (self.writes + self.new_files + self.deletes) as u64;
        2 * (flat + legacy + written) + 10_000
    }

    /// A generous estimate of bytes a layout may need, containers' writes included.
    pub fn estimate_bytes(&self, layers: usize) -> u64 {
        let files = (layers * self.files_per_layer * self.images * (self.containers + 2)) as u64;
        let containers = (self.images * self.containers) as u64;
        let written = containers
            * (self.writes as u64 * (self.max_file_bytes + 4096) + self.new_files as u64 * 8192);
        files * (self.max_file_bytes / 4 + 4096)
            + written
            + (self.estimate_inodes(layers) * 4096) / 4
            + (128 << 20)
    }

    /// The room the deepest image set needs.
    pub fn footprint(&self) -> Footprint {
        let l = self.layers.iter().copied().max().unwrap_or(1);
        Footprint {
            bytes: self.estimate_bytes(l),
            inodes: self.estimate_inodes(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(o: Options) -> Result<Params, ParamError> {
        Params::resolve(Suite::Quick, &o, 1)
    }

    #[test]
    fn every_limit_names_its_option() {
        for (o, name) in [
            (
                Options {
                    files_per_layer: Some(2_000_000),
                    ..Default::default()
                },
                "--files-per-layer 2000000",
            ),
            (
                Options {
                    dirs_per_layer: Some(200_000),
                    ..Default::default()
                },
                "--dirs-per-layer 200000",
            ),
            (
                Options {
                    writes: Some(1_000_000),
                    ..Default::default()
                },
                "--writes 1000000",
            ),
            (
                Options {
                    images: Some(0),
                    ..Default::default()
                },
                "--images 0",
            ),
            (
                Options {
                    layers: Some(vec![501]),
                    ..Default::default()
                },
                "--layers 501",
            ),
        ] {
            let err = resolve(o).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn a_share_that_rounds_to_no_layer_is_refused() {
        let err = resolve(Options {
            layers: Some(vec![5, 20]),
            shared_pct: Some(10),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("rounds to 0 shared layers") && err.contains("20"),
            "{err}"
        );
        assert!(resolve(Options {
            shared_pct: Some(0),
            ..Default::default()
        })
        .is_ok());
    }

    #[test]
    fn image_sets_share_their_base() {
        let p = resolve(Options {
            files_per_layer: Some(10),
            dirs_per_layer: Some(2),
            ..Default::default()
        })
        .expect("valid");
        let (base, images) = p.image_set(5).expect("generates");
        assert_eq!(base.depth(), 3);
        assert_eq!(images.len(), 3);
        for img in &images {
            assert_eq!(img.depth(), 5);
            assert_eq!(&img.layers[..3], &base.layers[..]);
        }
        assert!(p.estimate_bytes(5) > p.estimate_inodes(5));
    }
}
