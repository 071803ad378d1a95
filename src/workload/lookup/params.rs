//! lookup's options, suite defaults and validation, and the image it builds.

use serde::Serialize;

use crate::image::{Change, ImageSpec, LayerSpec};
use crate::layout::MAX_LOWER_LAYERS;
use crate::workload::{at_least, sorted_unique, Footprint, ParamError, Suite};

/// What the user may set (everything else comes from the suite).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Lower depths to measure.
    pub depths: Option<Vec<usize>>,
    /// Distinct names per target.
    pub names: Option<usize>,
    /// Lookups timed together as one sample.
    pub batch: Option<usize>,
    /// Cold rounds per case.
    pub rounds: Option<usize>,
    /// Numbers of images sharing one store, swept (the store sweep).
    pub store_images: Option<Vec<usize>>,
}

/// Parameters of the lookup workload, resolved (written to the report's config).
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// Lower depths (image layers) measured.
    pub depths: Vec<usize>,
    /// Distinct names per target.
    pub names: usize,
    /// Lookups per timed batch.
    pub batch: usize,
    /// Cold rounds.
    pub rounds: usize,
    /// Cold rounds over each of the user's images (every path and a walk per
    /// round; `--rounds` sets it too).
    pub image_rounds: usize,
    /// Warm repetitions per round.
    pub warm_repeats: usize,
    /// Directories read for the readdir case.
    pub readdir_dirs: usize,
    /// Entries each layer adds to each readdir directory.
    pub entries_per_layer: usize,
    /// Files a container's start-up reads (in the bottom layer's `s/`).
    pub startup_files: usize,
    /// Size of each of them, bytes (above btrfs's inline limit, so they are
    /// real extents everywhere).
    pub startup_file_bytes: u64,
    /// Images sharing one store in the store sweep (image 0's names are
    /// looked up with that many images in the store).
    pub store_images: Vec<usize>,
    /// Bytes of each file of a store-sweep image (above composefs' inline
    /// limit, so its data lives in the object store).
    pub store_file_bytes: u64,
}

/// Most images in one store for the store sweep.
pub const MAX_STORE_IMAGES: usize = 1_000;

impl Params {
    /// The suite's defaults with the user's overrides, validated.
    pub fn resolve(suite: Suite, o: &Options) -> Result<Params, ParamError> {
        let (depths, names, rounds, warm_repeats, stores) = match suite {
            Suite::Quick => (
                vec![1, 2, 4, 8, 16, 32, 64, 128],
                256,
                10,
                3,
                vec![1, 4, 16],
            ),
            Suite::Standard => (
                vec![1, 2, 4, 8, 16, 32, 64, 128, 256],
                512,
                10,
                5,
                vec![1, 4, 16, 64],
            ),
            Suite::Full => (
                vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 500],
                1024,
                20,
                5,
                vec![1, 4, 16, 64, 256],
            ),
        };
        let store_images = sorted_unique(o.store_images.as_deref().unwrap_or(&stores));
        if store_images.is_empty()
            || store_images[0] == 0
            || store_images[store_images.len() - 1] > MAX_STORE_IMAGES
        {
            return Err(ParamError::range(
                "--store-images",
                format!("{store_images:?}"),
                format!("give images per store from 1 to {MAX_STORE_IMAGES}, e.g. 1,4,16"),
            ));
        }
        let depths = sorted_unique(o.depths.as_deref().unwrap_or(&depths));
        if depths.is_empty() {
            return Err(ParamError::Invalid(
                "--depths is empty; give depths from 1 to 500, e.g. 1,8,32".into(),
            ));
        }
        for &d in &depths {
            if d == 0 || d > MAX_LOWER_LAYERS {
                return Err(ParamError::range(
                    "depth",
                    d,
                    format!(
                        "the kernel stacks 1 to {MAX_LOWER_LAYERS} lower layers; use --depths between 1 and {MAX_LOWER_LAYERS}"
                    ),
                ));
            }
        }
        let batch = at_least("--batch", o.batch.unwrap_or(32), 1)?;
        Ok(Params {
            names: at_least("--names", o.names.unwrap_or(names), batch)?,
            batch,
            rounds: at_least("--rounds", o.rounds.unwrap_or(rounds), 1)?,
            // A round over a real image looks up every one of its paths, cold
            // and warm, and walks it twice: a few rounds give many batches.
            image_rounds: at_least(
                "--rounds",
                o.rounds.unwrap_or(match suite {
                    Suite::Quick => 3,
                    Suite::Standard => 5,
                    Suite::Full => 10,
                }),
                1,
            )?,
            depths,
            warm_repeats,
            readdir_dirs: 4,
            entries_per_layer: 4,
            startup_files: 16,
            startup_file_bytes: 64 * 1024,
            store_images,
            store_file_bytes: 4096,
        })
    }

    /// Scratch space for every fixture of `layouts` layouts.
    pub fn footprint(&self, layouts: usize) -> Footprint {
        let re = self.readdir_dirs * self.entries_per_layer;
        let per_layer = 8 + re;
        let layers: usize = self.depths.iter().sum();
        // The legacy layout's layer k root hard-links every older file: the
        // bottom names in every root, k layers' readdir entries in root k. Free
        // on ext4 and xfs, an inode each on tmpfs — which is sized from this.
        let legacy_links: usize = self
            .depths
            .iter()
            .map(|&d| d * self.names + re * d * (d + 1) / 2)
            .sum();
        // overlay2 diffs + plain image and copy + legacy roots.
        let inodes = (layers * per_layer
            + self.depths.len() * 4 * (2 * self.names + 64 + self.startup_files))
            * layouts.max(1)
            + legacy_links;
        // The start-up files: in each image, and copied by a flattening layout's
        // fixture and start-up containers.
        let startup = self.startup_files as u64 * self.startup_file_bytes;
        let store = self.store_images.iter().copied().max().unwrap_or(0) * self.names;
        let store_inodes = store * 2 * layouts.max(1) + 1_000;
        // The calibration directories: the found names twice (top, bottom).
        let calibration = 2 * self.names + 8;
        Footprint {
            bytes: inodes as u64 * 4096
                + startup * 3 * self.depths.len() as u64 * layouts.max(1) as u64
                + store_inodes as u64 * (self.store_file_bytes + 4096)
                + calibration as u64 * 4096
                + (64 << 20),
            inodes: (inodes + store_inodes + calibration) as u64,
        }
    }

    /// Image `i` of the store sweep: one layer, `names` files in `b/` (the
    /// same names in every image, each image's content its own).
    pub fn store_image(&self, i: usize) -> ImageSpec {
        let mut changes = vec![Change::Dir {
            path: "b".into(),
            mode: 0o755,
        }];
        changes.extend((0..self.names).map(|j| Change::File {
            path: format!("b/{}", Self::name_of(false, j)).into(),
            mode: 0o644,
            size: self.store_file_bytes,
            seed: 1 + (i * self.names + j) as u64,
        }));
        ImageSpec {
            layers: vec![LayerSpec { changes }],
        }
    }

    /// The `i`th file a container's start-up reads.
    pub fn startup_file(i: usize) -> String {
        format!("s/f{i:03}")
    }

    /// The name of the `i`th file of a target directory (`n000042`, `x000042` for missing ones).
    pub fn name_of(missing: bool, i: usize) -> String {
        let prefix = if missing { 'x' } else { 'n' };
        format!("{prefix}{i:06}")
    }

    /// The lookup image for one depth.
    ///
    /// Every layer has the dirs `b/ t/ m/ r*/` (like `/usr/lib` in every layer of a
    /// real image); the bottom layer holds the `b/` names, the top the `t/` names,
    /// `m/` stays empty (negative lookups), and every layer adds entries to each
    /// `r*/` (readdir merges them all).
    pub fn image(&self, depth: usize) -> ImageSpec {
        let dirs: Vec<String> = ["b", "t", "m"]
            .iter()
            .map(|s| s.to_string())
            .chain((0..self.readdir_dirs).map(|j| format!("r{j}")))
            .collect();
        let file = |path: String| Change::File {
            path: path.into(),
            mode: 0o644,
            size: 0,
            seed: 0,
        };
        let layers = (0..depth)
            .map(|l| {
                let mut changes: Vec<Change> = dirs
                    .iter()
                    .map(|d| Change::Dir {
                        path: d.into(),
                        mode: 0o755,
                    })
                    .collect();
                for j in 0..self.readdir_dirs {
                    changes.extend(
                        (0..self.entries_per_layer).map(|e| file(format!("r{j}/e{l}_{e}"))),
                    );
                }
                if l == 0 {
                    changes.extend(
                        (0..self.names).map(|i| file(format!("b/{}", Self::name_of(false, i)))),
                    );
                    // What a start-up reads: binaries and libraries of the base layer.
                    changes.push(Change::Dir {
                        path: "s".into(),
                        mode: 0o755,
                    });
                    changes.extend((0..self.startup_files).map(|i| Change::File {
                        path: Self::startup_file(i).into(),
                        mode: 0o755,
                        size: self.startup_file_bytes,
                        seed: i as u64 + 1,
                    }));
                }
                if l == depth - 1 {
                    changes.extend(
                        (0..self.names).map(|i| file(format!("t/{}", Self::name_of(false, i)))),
                    );
                }
                LayerSpec { changes }
            })
            .collect();
        ImageSpec { layers }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_defaults_and_limits_name_the_value() {
        let p = Params::resolve(Suite::Quick, &Options::default()).expect("valid");
        assert_eq!(p.depths, vec![1, 2, 4, 8, 16, 32, 64, 128]);
        for bad in [0, 501] {
            let o = Options {
                depths: Some(vec![bad]),
                ..Default::default()
            };
            let err = Params::resolve(Suite::Quick, &o).unwrap_err().to_string();
            assert!(
                err.contains(&format!("depth {bad}")) && err.contains("between 1 and 500"),
                "{err}"
            );
        }
        let o = Options {
            names: Some(4),
            batch: Some(8),
            ..Default::default()
        };
        assert!(Params::resolve(Suite::Quick, &o)
            .unwrap_err()
            .to_string()
            .contains("--names"));
    }

    #[test]
    fn image_puts_names_at_the_bottom_and_top() {
        let p = Params::resolve(
            Suite::Quick,
            &Options {
                names: Some(32),
                ..Default::default()
            },
        )
        .expect("valid");
        let img = p.image(3);
        let t = img.flatten();
        assert!(t.nodes.contains_key(std::path::Path::new("b/n000000")));
        assert!(t.nodes.contains_key(std::path::Path::new("t/n000031")));
        assert_eq!(
            t.nodes
                .get(std::path::Path::new("b/n000000"))
                .map(|n| n.layer),
            Some(0)
        );
        assert_eq!(
            t.nodes
                .get(std::path::Path::new("t/n000000"))
                .map(|n| n.layer),
            Some(2)
        );
    }
}
