//! copy-up's options, suite defaults and validation, and the image it builds.

use serde::Serialize;

use crate::choice::Choice;
use crate::image::{Change, ImageSpec, LayerSpec};
use crate::layout::MAX_LOWER_LAYERS;
use crate::workload::{at_least, dedup_keep_order, sorted_unique, Footprint, ParamError, Suite};

/// A sequence of timed operations run in one fresh container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Procedure {
    /// `first-write` (open for write + 1-byte write + close), then `second-write`.
    Write,
    /// `chmod`, then `write-after-chmod` (the deferred data copy with metacopy).
    Chmod,
    /// `append` of one byte as the first touch.
    Append,
    /// `truncate` to half the size as the first touch.
    Truncate,
}

impl Choice for Procedure {
    const ALL: &'static [Self] = &[
        Procedure::Write,
        Procedure::Chmod,
        Procedure::Append,
        Procedure::Truncate,
    ];
    fn name(self) -> &'static str {
        match self {
            Procedure::Write => "write",
            Procedure::Chmod => "chmod",
            Procedure::Append => "append",
            Procedure::Truncate => "truncate",
        }
    }
    fn about(self) -> &'static str {
        match self {
            Procedure::Write => {
                "first-write (open for write + 1-byte write + close), then second-write"
            }
            Procedure::Chmod => {
                "chmod, then write-after-chmod (the deferred data copy with metacopy)"
            }
            Procedure::Append => "append of one byte as the first touch",
            Procedure::Truncate => "truncate to half the size as the first touch",
        }
    }
}

/// Overlay mount option sets compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// The kernel's defaults (full copy + fsync).
    Default,
    /// `metacopy=on`: metadata-only copy_up on chmod/chown.
    Metacopy,
    /// `volatile`: no fsync of the copy.
    Volatile,
}

impl Choice for Variant {
    const ALL: &'static [Self] = &[Variant::Default, Variant::Metacopy, Variant::Volatile];
    fn name(self) -> &'static str {
        match self {
            Variant::Default => "default",
            Variant::Metacopy => "metacopy",
            Variant::Volatile => "volatile",
        }
    }
    fn about(self) -> &'static str {
        match self {
            Variant::Default => "The kernel's defaults (full copy + fsync)",
            Variant::Metacopy => "metacopy=on: metadata-only copy_up on chmod/chown",
            Variant::Volatile => "volatile: no fsync of the copy",
        }
    }
}

impl Variant {
    /// The overlay mount options of this set.
    pub fn options(self) -> Vec<(String, Option<String>)> {
        match self {
            Variant::Default => vec![],
            Variant::Metacopy => vec![("metacopy".into(), Some("on".into()))],
            Variant::Volatile => vec![("volatile".into(), None)],
        }
    }
}

/// Lower file page cache state before the timed operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheState {
    /// The lower file evicted (`posix_fadvise` DONTNEED).
    Cold,
    /// The lower file read fully beforehand.
    Warm,
}

impl Choice for CacheState {
    const ALL: &'static [Self] = &[CacheState::Cold, CacheState::Warm];
    fn name(self) -> &'static str {
        match self {
            CacheState::Cold => "cold",
            CacheState::Warm => "warm",
        }
    }
    fn about(self) -> &'static str {
        match self {
            CacheState::Cold => "The lower file evicted (posix_fadvise DONTNEED)",
            CacheState::Warm => "The lower file read fully beforehand",
        }
    }
}

/// What the user may set.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// File sizes, bytes.
    pub sizes: Option<Vec<u64>>,
    /// Layers in the image.
    pub depth: Option<usize>,
    /// Samples per case.
    pub samples: Option<usize>,
    /// Procedures run.
    pub procedures: Option<Vec<Procedure>>,
    /// Overlay option sets.
    pub variants: Option<Vec<Variant>>,
    /// Lower cache states.
    pub caches: Option<Vec<CacheState>>,
    /// How many of each `--image`'s largest regular files are timed.
    pub image_files: Option<usize>,
}

/// Most of an image's largest files `--image-files` may ask for.
pub const MAX_IMAGE_FILES: usize = 100;

/// Parameters of the copy-up workload, resolved (written to the report's config).
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// File sizes, bytes.
    pub sizes: Vec<u64>,
    /// Layers in the image (the file is in the bottom one).
    pub depth: usize,
    /// Samples per case (each a fresh container).
    pub samples: usize,
    /// Samples per case of the user's images (each a fresh container that
    /// first-touches every one of the image's largest files; `--samples` sets it too).
    pub image_samples: usize,
    /// Procedures run.
    pub procedures: Vec<Procedure>,
    /// Overlay option sets.
    pub variants: Vec<Variant>,
    /// Lower cache states.
    pub caches: Vec<CacheState>,
    /// How many of each of the user's images' largest regular files are timed.
    pub image_files: usize,
}

impl Params {
    /// The suite's defaults with the user's overrides, validated.
    pub fn resolve(suite: Suite, o: &Options) -> Result<Params, ParamError> {
        let (sizes, samples) = match suite {
            Suite::Quick => (vec![1 << 20, 16 << 20, 64 << 20], 9),
            Suite::Standard => (vec![1 << 20, 16 << 20, 64 << 20, 256 << 20, 1 << 30], 7),
            Suite::Full => (
                vec![1 << 20, 16 << 20, 64 << 20, 256 << 20, 1 << 30, 2 << 30],
                10,
            ),
        };
        let sizes = sorted_unique(o.sizes.as_deref().unwrap_or(&sizes));
        if sizes.is_empty() || sizes[0] == 0 {
            return Err(ParamError::range(
                "size",
                0,
                "copy-up sizes must be at least 1 byte (e.g. --sizes 1M,64M)",
            ));
        }
        let depth = o.depth.unwrap_or(3);
        if depth == 0 || depth > MAX_LOWER_LAYERS {
            return Err(ParamError::range(
                "--depth",
                depth,
                format!(
                    "use a depth between 1 and {MAX_LOWER_LAYERS} (the kernel's lower-layer limit)"
                ),
            ));
        }
        // Quick: cold only and the two procedures that matter most, with more
        // samples — copy_up on a VM disk is noisy, and a gate needs tight medians
        // more than breadth. Standard and full measure everything.
        let quick = suite == Suite::Quick;
        let procedures = o.procedures.clone().unwrap_or_else(|| {
            if quick {
                vec![Procedure::Write, Procedure::Chmod]
            } else {
                Procedure::ALL.to_vec()
            }
        });
        let caches = o.caches.clone().unwrap_or_else(|| {
            if quick {
                vec![CacheState::Cold]
            } else {
                CacheState::ALL.to_vec()
            }
        });
        let variants = o.variants.clone().unwrap_or_else(|| Variant::ALL.to_vec());
        Ok(Params {
            sizes,
            depth,
            samples: at_least("--samples", o.samples.unwrap_or(samples), 1)?,
            image_samples: at_least(
                "--samples",
                o.samples.unwrap_or(match suite {
                    Suite::Quick => 3,
                    Suite::Standard => 5,
                    Suite::Full => 10,
                }),
                1,
            )?,
            procedures: dedup_keep_order(&procedures),
            variants: dedup_keep_order(&variants),
            caches: dedup_keep_order(&caches),
            image_files: crate::workload::within(
                "--image-files",
                o.image_files.unwrap_or(5),
                1,
                MAX_IMAGE_FILES,
                "",
            )?,
        })
    }

    /// One image per layout (+ the plain container's copy), one upper copy and
    /// one reference copy at a time.
    pub fn footprint(&self, layouts: usize) -> Footprint {
        let total: u64 = self.sizes.iter().sum();
        let max = self.sizes.iter().copied().max().unwrap_or(0);
        Footprint {
            bytes: total * (layouts as u64 + 1) + 3 * max + (64 << 20),
            inodes: 10_000,
        }
    }

    /// Where the file of `size` bytes lives in the image.
    pub fn file_name(size: u64) -> String {
        format!("data/size-{size}")
    }

    /// The image: every size as a file in the bottom layer, a small file per layer above.
    pub fn image(&self) -> ImageSpec {
        let layers = (0..self.depth)
            .map(|l| {
                let mut changes = vec![
                    Change::Dir {
                        path: "data".into(),
                        mode: 0o755,
                    },
                    Change::File {
                        path: format!("layer-{l}").into(),
                        mode: 0o644,
                        size: 4096,
                        seed: l as u64,
                    },
                ];
                if l == 0 {
                    changes.extend(self.sizes.iter().map(|&s| Change::File {
                        path: Self::file_name(s).into(),
                        mode: 0o644,
                        size: s,
                        seed: s,
                    }));
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
    fn quick_is_cold_write_and_chmod_and_zero_sizes_are_refused() {
        let p = Params::resolve(Suite::Quick, &Options::default()).expect("valid");
        assert_eq!(p.procedures, vec![Procedure::Write, Procedure::Chmod]);
        assert_eq!(p.caches, vec![CacheState::Cold]);
        assert_eq!(p.sizes, vec![1 << 20, 16 << 20, 64 << 20]);
        let zero = Options {
            sizes: Some(vec![0, 1 << 20]),
            ..Default::default()
        };
        assert!(Params::resolve(Suite::Quick, &zero).is_err());
        let deep = Options {
            depth: Some(501),
            ..Default::default()
        };
        let err = Params::resolve(Suite::Quick, &deep)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--depth 501"), "{err}");
        assert_eq!(Variant::parse("volatile"), Ok(Variant::Volatile));
        assert!(Variant::parse("fast")
            .unwrap_err()
            .contains("default, metacopy, volatile"));
    }
}
