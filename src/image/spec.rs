use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One change a layer makes, applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Create a directory (no-op on an existing one but for its mode).
    Dir { path: PathBuf, mode: u32 },
    /// Create or replace a regular file; content is `content::fill(seed, size)`.
    File {
        path: PathBuf,
        mode: u32,
        size: u64,
        seed: u64,
    },
    /// Create a symlink.
    Symlink { path: PathBuf, target: PathBuf },
    /// Delete a file or directory of a lower layer (a whiteout in overlay2).
    Delete { path: PathBuf },
    /// Hide everything lower layers put under this directory (keeps the dir).
    Opaque { path: PathBuf },
}

/// The changes of one layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerSpec {
    /// Applied in order.
    pub changes: Vec<Change>,
}

/// An image: layers bottom (index 0) to top.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSpec {
    /// Bottom first.
    pub layers: Vec<LayerSpec>,
}

/// What a merged-tree entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A directory.
    Dir,
    /// A regular file with generated content.
    File { size: u64, seed: u64 },
    /// A symlink.
    Symlink { target: PathBuf },
}

/// One entry of the merged tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// What it is.
    pub kind: NodeKind,
    /// Permission bits.
    pub mode: u32,
    /// Index of the layer that last wrote it.
    pub layer: usize,
}

/// The merged view of an image: relative path → entry; the root is implicit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// Sorted so that a directory comes before its descendants.
    pub nodes: BTreeMap<PathBuf, Node>,
}

impl Tree {
    /// Applies one change made by `layer`.
    pub fn apply(&mut self, change: &Change, layer: usize) {
        match change {
            Change::Dir { path, mode } => {
                self.nodes
                    .entry(path.clone())
                    .and_modify(|n| n.mode = *mode)
                    .or_insert(Node {
                        kind: NodeKind::Dir,
                        mode: *mode,
                        layer,
                    });
            }
            Change::File {
                path,
                mode,
                size,
                seed,
            } => {
                self.nodes.insert(
                    path.clone(),
                    Node {
                        kind: NodeKind::File {
                            size: *size,
                            seed: *seed,
                        },
                        mode: *mode,
                        layer,
                    },
                );
            }
            Change::Symlink { path, target } => {
                self.nodes.insert(
                    path.clone(),
                    Node {
                        kind: NodeKind::Symlink {
                            target: target.clone(),
                        },
                        mode: 0o777,
                        layer,
                    },
                );
            }
            Change::Delete { path } => {
                self.remove_descendants(path);
                self.nodes.remove(path);
            }
            Change::Opaque { path } => {
                self.remove_descendants(path);
                if let Some(n) = self.nodes.get_mut(path) {
                    n.layer = layer;
                }
            }
        }
    }

    fn remove_descendants(&mut self, path: &Path) {
        let doomed: Vec<PathBuf> = self
            .nodes
            .range(path.to_path_buf()..)
            .skip_while(|(k, _)| k.as_path() == path)
            .take_while(|(k, _)| k.starts_with(path))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    /// Mode of the directory at `path` (0o755 for the root or an unknown dir).
    pub fn dir_mode(&self, path: &Path) -> u32 {
        self.nodes.get(path).map(|n| n.mode).unwrap_or(0o755)
    }

    /// Whether `path` is a directory in this tree (the root is).
    pub fn is_dir(&self, path: &Path) -> bool {
        path.as_os_str().is_empty()
            || matches!(
                self.nodes.get(path),
                Some(Node {
                    kind: NodeKind::Dir,
                    ..
                })
            )
    }
}

impl ImageSpec {
    /// The merged tree of layers `0..=top`.
    pub fn tree_at(&self, top: usize) -> Tree {
        let mut tree = Tree::default();
        for (i, layer) in self.layers.iter().enumerate().take(top + 1) {
            for c in &layer.changes {
                tree.apply(c, i);
            }
        }
        tree
    }

    /// The merged tree of the whole image.
    pub fn flatten(&self) -> Tree {
        self.tree_at(self.layers.len().saturating_sub(1))
    }

    /// Number of layers.
    pub fn depth(&self) -> usize {
        self.layers.len()
    }

    /// Total bytes of file content written by all layers (overlay2's footprint).
    pub fn layer_bytes(&self) -> u64 {
        self.layers
            .iter()
            .flat_map(|l| &l.changes)
            .map(|c| match c {
                Change::File { size, .. } => *size,
                _ => 0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(p: &str, seed: u64) -> Change {
        Change::File {
            path: p.into(),
            mode: 0o644,
            size: 1,
            seed,
        }
    }

    #[test]
    fn delete_and_opaque_hide_lower_content() {
        let image = ImageSpec {
            layers: vec![
                LayerSpec {
                    changes: vec![
                        Change::Dir {
                            path: "a".into(),
                            mode: 0o755,
                        },
                        file("a/x", 1),
                        Change::Dir {
                            path: "b".into(),
                            mode: 0o700,
                        },
                        file("b/y", 2),
                        file("a.txt", 3),
                    ],
                },
                LayerSpec {
                    changes: vec![
                        Change::Delete { path: "a".into() },
                        Change::Opaque { path: "b".into() },
                        file("b/z", 4),
                    ],
                },
            ],
        };
        let t = image.flatten();
        let paths: Vec<_> = t.nodes.keys().map(|p| p.display().to_string()).collect();
        assert_eq!(paths, vec!["a.txt", "b", "b/z"]);
        assert_eq!(t.dir_mode(Path::new("b")), 0o700);
        assert_eq!(image.tree_at(0).nodes.len(), 5);
    }
}
