//! A deterministic random image: same parameters and seed, same image, on any host.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::spec::{Change, ImageSpec, LayerSpec, NodeKind, Tree};
use super::ImageError;

/// File sizes are drawn log-uniformly from this range (many small, few large —
/// the shape of real images).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeRange {
    /// Smallest file, bytes.
    pub min_bytes: u64,
    /// Largest file, bytes.
    pub max_bytes: u64,
}

/// Unvalidated generator parameters.
#[derive(Debug, Clone)]
pub struct GeneratorParams {
    /// Same seed, same image.
    pub seed: u64,
    /// Number of layers.
    pub layers: usize,
    /// New or modified files per layer.
    pub files_per_layer: usize,
    /// New directories per layer.
    pub dirs_per_layer: usize,
    /// File sizes.
    pub sizes: SizeRange,
    /// Percent of each layer's files that modify a lower file instead of adding one.
    pub modify_pct: u32,
    /// Deletions per layer, as a percent of `files_per_layer`.
    pub delete_pct: u32,
    /// Opaque directories per layer, as a percent of `dirs_per_layer`.
    pub opaque_pct: u32,
    /// Symlinks per layer, as a percent of `files_per_layer`.
    pub symlink_pct: u32,
}

impl Default for GeneratorParams {
    fn default() -> Self {
        GeneratorParams {
            seed: 1,
            layers: 5,
            files_per_layer: 200,
            dirs_per_layer: 20,
            sizes: SizeRange {
                min_bytes: 0,
                max_bytes: 256 * 1024,
            },
            modify_pct: 10,
            delete_pct: 5,
            opaque_pct: 10,
            symlink_pct: 5,
        }
    }
}

/// Validated generator parameters.
#[derive(Debug, Clone)]
pub struct ImageShape(GeneratorParams);

impl TryFrom<GeneratorParams> for ImageShape {
    type Error = ImageError;
    fn try_from(p: GeneratorParams) -> Result<Self, Self::Error> {
        let range = |name, value: String, range| ImageError::OutOfRange { name, value, range };
        if !(1..=500).contains(&p.layers) {
            return Err(range("layers", p.layers.to_string(), "1..=500"));
        }
        if p.files_per_layer > 1_000_000 {
            return Err(range(
                "files_per_layer",
                p.files_per_layer.to_string(),
                "0..=1000000",
            ));
        }
        if p.sizes.min_bytes > p.sizes.max_bytes {
            return Err(range(
                "sizes",
                format!("{}..{}", p.sizes.min_bytes, p.sizes.max_bytes),
                "min <= max",
            ));
        }
        for (name, v) in [
            ("modify_pct", p.modify_pct),
            ("delete_pct", p.delete_pct),
            ("opaque_pct", p.opaque_pct),
            ("symlink_pct", p.symlink_pct),
        ] {
            if v > 100 {
                return Err(range(name, v.to_string(), "0..=100"));
            }
        }
        Ok(ImageShape(p))
    }
}

fn log_uniform(rng: &mut ChaCha8Rng, r: SizeRange) -> u64 {
    if r.min_bytes == r.max_bytes {
        return r.min_bytes;
    }
    let lo = ((r.min_bytes + 1) as f64).ln();
    let hi = ((r.max_bytes + 1) as f64).ln();
    let v = rng.gen_range(lo..=hi).exp() - 1.0;
    (v.round() as u64).clamp(r.min_bytes, r.max_bytes)
}

/// Generates the image the shape describes.
pub fn generate(shape: &ImageShape) -> ImageSpec {
    extend(&ImageSpec::default(), shape)
}

/// Generates `shape.layers` more layers on top of `base` (modifying, deleting and
/// hiding what the base holds, as a child image does); returns the whole image.
pub fn extend(base: &ImageSpec, shape: &ImageShape) -> ImageSpec {
    let p = &shape.0;
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let mut tree = base.flatten();
    let mut image = base.clone();
    for layer in base.depth()..base.depth() + p.layers {
        let mut changes = Vec::new();
        let push = |c: Change, tree: &mut Tree, changes: &mut Vec<Change>| {
            tree.apply(&c, layer);
            changes.push(c);
        };
        // Deletions and opaque dirs only touch what lower layers made.
        if layer > 0 {
            let deletes = p.files_per_layer * p.delete_pct as usize / 100;
            for _ in 0..deletes {
                let lower: Vec<PathBuf> = tree
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.layer < layer)
                    .map(|(k, _)| k.clone())
                    .collect();
                if let Some(victim) = lower.choose(&mut rng) {
                    push(
                        Change::Delete {
                            path: victim.clone(),
                        },
                        &mut tree,
                        &mut changes,
                    );
                }
            }
            let opaques = p.dirs_per_layer * p.opaque_pct as usize / 100;
            for _ in 0..opaques {
                let dirs: Vec<PathBuf> = tree
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.layer < layer && n.kind == NodeKind::Dir)
                    .map(|(k, _)| k.clone())
                    .collect();
                if let Some(d) = dirs.choose(&mut rng) {
                    push(Change::Opaque { path: d.clone() }, &mut tree, &mut changes);
                }
            }
        }
        let dirs_now = |tree: &Tree| -> Vec<PathBuf> {
            std::iter::once(PathBuf::new())
                .chain(
                    tree.nodes
                        .iter()
                        .filter(|(_, n)| n.kind == NodeKind::Dir)
                        .map(|(k, _)| k.clone()),
                )
                .collect()
        };
        for i in 0..p.dirs_per_layer {
            let parents = dirs_now(&tree);
            let parent = parents.choose(&mut rng).cloned().unwrap_or_default();
            let mode = *[0o755, 0o750, 0o700].choose(&mut rng).unwrap_or(&0o755);
            push(
                Change::Dir {
                    path: parent.join(format!("d{layer}_{i}")),
                    mode,
                },
                &mut tree,
                &mut changes,
            );
        }
        let parents = dirs_now(&tree);
        let lower_files: Vec<PathBuf> = tree
            .nodes
            .iter()
            .filter(|(_, n)| n.layer < layer && matches!(n.kind, NodeKind::File { .. }))
            .map(|(k, _)| k.clone())
            .collect();
        for i in 0..p.files_per_layer {
            let modify = !lower_files.is_empty() && rng.gen_range(0..100) < p.modify_pct;
            let path = if modify {
                lower_files.choose(&mut rng).cloned().unwrap_or_default()
            } else {
                parent_or_root(parents.choose(&mut rng)).join(format!("f{layer}_{i}"))
            };
            if !tree.is_dir(path.parent().unwrap_or(Path::new(""))) {
                continue;
            }
            let mode = *[0o644, 0o600, 0o755].choose(&mut rng).unwrap_or(&0o644);
            let size = log_uniform(&mut rng, p.sizes);
            let seed = rng.gen();
            push(
                Change::File {
                    path,
                    mode,
                    size,
                    seed,
                },
                &mut tree,
                &mut changes,
            );
        }
        for i in 0..(p.files_per_layer * p.symlink_pct as usize / 100) {
            let path = parent_or_root(parents.choose(&mut rng)).join(format!("s{layer}_{i}"));
            let target = PathBuf::from(format!("../target-{}", rng.gen_range(0..1000)));
            push(Change::Symlink { path, target }, &mut tree, &mut changes);
        }
        image.layers.push(LayerSpec { changes });
    }
    image
}

fn parent_or_root(p: Option<&PathBuf>) -> PathBuf {
    p.cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shape(seed: u64, layers: usize) -> ImageShape {
        ImageShape::try_from(GeneratorParams {
            seed,
            layers,
            files_per_layer: 30,
            dirs_per_layer: 6,
            ..GeneratorParams::default()
        })
        .expect("valid")
    }

    #[test]
    fn rejects_out_of_range_parameters_by_name() {
        let err = ImageShape::try_from(GeneratorParams {
            layers: 501,
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("layers = 501"), "{err}");
        let err = ImageShape::try_from(GeneratorParams {
            delete_pct: 101,
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("delete_pct"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn deterministic_and_well_formed(seed in any::<u64>(), layers in 1usize..6) {
            let a = generate(&shape(seed, layers));
            prop_assert_eq!(&a, &generate(&shape(seed, layers)));
            prop_assert_eq!(a.depth(), layers);
            // Extending keeps the base layers as they are.
            let child = extend(&a, &shape(seed ^ 1, 2));
            prop_assert_eq!(&child.layers[..layers], &a.layers[..]);
            prop_assert_eq!(child.depth(), layers + 2);
            // Every entry's parent is a directory of the merged tree.
            let t = a.flatten();
            for path in t.nodes.keys() {
                prop_assert!(t.is_dir(path.parent().unwrap_or(Path::new(""))), "orphan {:?}", path);
            }
            // Deletions and opaques only name what a lower layer made.
            for (i, layer) in a.layers.iter().enumerate() {
                let below = if i == 0 { Tree::default() } else { a.tree_at(i - 1) };
                for c in &layer.changes {
                    if let Change::Delete { path } | Change::Opaque { path } = c {
                        prop_assert!(i > 0);
                        prop_assert!(below.nodes.contains_key(path), "{:?} is not in a lower layer", path);
                    }
                }
            }
        }
    }
}
